"""docker-compose.yml without a Docker engine: schema, topology, and commands that exist."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import dask
import distributed
import jsonschema
import pytest
import yaml

ROOT = Path(__file__).parents[1]
#: The Compose Specification's JSON Schema, unmodified (source and licence: tests/data/README.md)
SCHEMA = Path(__file__).parent / "data" / "compose-spec.json"


def load(name="docker-compose.yml"):
    return yaml.safe_load((ROOT / name).read_text())


def test_compose_file_follows_the_compose_specification():
    # the spec declares draft-07 under a URL jsonschema does not recognise: name it explicitly
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    validator.validate(load())
    validator.validate(load("docker-compose.tls.yml"))
    broken = load()
    broken["services"]["worker"]["comand"] = ["typo"]  # unknown keys are refused
    assert not validator.is_valid(broken)


def test_topology_scheduler_workers_notebook_from_one_image():
    services = load()["services"]
    assert set(services) == {"scheduler", "worker", "notebook"}
    assert {s["image"] for s in services.values()} == {"dshift:latest"}
    assert services["scheduler"]["build"] == "."
    assert services["worker"]["deploy"]["replicas"] >= 2
    ports = services["scheduler"]["ports"]
    assert any(p.endswith(":8786") for p in ports) and any(p.endswith(":8787") for p in ports)
    assert services["notebook"]["environment"]["DASK_SCHEDULER_ADDRESS"] == "tcp://scheduler:8786"
    for service in services.values():  # one shared data volume
        assert "data:/data" in service["volumes"]


@pytest.mark.parametrize("compose_file", ["docker-compose.yml", "docker-compose.tls.yml"])
def test_service_commands_exist_in_the_environment(compose_file):
    services = load(compose_file)["services"]
    dask_bin = os.path.join(os.path.dirname(sys.executable), "dask")
    for name in ("scheduler", "worker"):
        command = services[name]["command"]
        assert command[0] == "dask" and command[1] == name
        help_text = subprocess.run(
            [dask_bin, command[1], "--help"], capture_output=True, text=True, check=True
        ).stdout
        for option in (c for c in command[2:] if c.startswith("--")):
            assert option in help_text, f"{name}: {option} is not an option of dask {name}"
    if "command" in services["notebook"]:
        assert services["notebook"]["command"][:2] == ["jupyter", "lab"]


def test_tls_override_switches_every_service_to_tls_with_the_generated_certificates():
    base, tls = load()["services"], load("docker-compose.tls.yml")["services"]
    assert set(tls) == set(base)  # overrides only: images, ports, replicas come from the base
    # the three files docker/make-certs.py writes, mounted from ./certs
    files = {
        "--tls-ca-file": "/certs/ca.pem",
        "--tls-cert": "/certs/cluster.pem",
        "--tls-key": "/certs/cluster-key.pem",
    }
    make_certs = (ROOT / "docker" / "make-certs.py").read_text()
    assert all(path.removeprefix("/certs/") in make_certs for path in files.values())
    for name in ("scheduler", "worker"):
        command = tls[name]["command"]
        for flag, path in files.items():
            assert command[command.index(flag) + 1] == path, (name, flag)
        # the TLS command keeps every option of the plain one
        assert {c for c in base[name]["command"] if c.startswith("--")} <= set(command)
    scheduler = tls["scheduler"]["command"]
    assert scheduler[scheduler.index("--protocol") + 1] == "tls"
    assert "tls://scheduler:8786" in tls["worker"]["command"]
    env = tls["notebook"]["environment"]
    assert env["DASK_SCHEDULER_ADDRESS"] == "tls://scheduler:8786"
    assert env["DASK_DISTRIBUTED__COMM__TLS__CA_FILE"] == files["--tls-ca-file"]
    assert env["DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT"] == files["--tls-cert"]
    assert env["DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY"] == files["--tls-key"]
    for service in tls.values():
        assert "./certs:/certs:ro" in service["volumes"]


def test_dockerfile_installs_dshift_jupyter_and_pins_matching_versions():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r'pip install -c docker/constraints.txt "\.\[plots\]" jupyterlab', dockerfile)
    pins = dict(
        line.split("==")
        for line in (ROOT / "docker" / "constraints.txt").read_text().splitlines()
        if "==" in line
    )
    assert pins["dask"] == pins["distributed"]
    # the image pins what the tests run with, so notebook, scheduler and workers match
    assert pins["dask"] == dask.__version__ and pins["distributed"] == distributed.__version__


def test_the_image_ships_a_warm_numba_cache_its_user_can_read(tmp_path):
    dockerfile = (ROOT / "Dockerfile").read_text()
    steps = dockerfile.replace("\\\n", " ").splitlines()
    warm = next(i for i, s in enumerate(steps) if s.startswith('RUN python -c "import numpy'))
    # compiled as the user that runs the services, into the cache directory they use
    assert steps.index("USER 1000:1000") < warm
    assert "NUMBA_CACHE_DIR=/tmp/numba-cache" in dockerfile
    command = re.fullmatch(r'RUN python -c "(.*)"', steps[warm].strip()).group(1)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    env.pop("NUMBA_DISABLE_JIT", None)
    subprocess.run([sys.executable, "-c", command], env=env, check=True, timeout=300)
    ask = "from dshift.kernels import _cache; print(_cache.needs_compiling())"
    done = subprocess.run(
        [sys.executable, "-c", ask], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"  # a container finds the kernels compiled
