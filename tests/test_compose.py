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
import yaml

ROOT = Path(__file__).parents[1]
SCHEMA = ROOT.parent / "shared" / "data" / "compose-spec.json"


def load():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_file_follows_the_compose_specification():
    # the spec declares draft-07 under a URL jsonschema does not recognise: name it explicitly
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    validator.validate(load())
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


def test_service_commands_exist_in_the_environment():
    services = load()["services"]
    dask_bin = os.path.join(os.path.dirname(sys.executable), "dask")
    for name in ("scheduler", "worker"):
        command = services[name]["command"]
        assert command[0] == "dask" and command[1] == name
        help_text = subprocess.run(
            [dask_bin, command[1], "--help"], capture_output=True, text=True, check=True
        ).stdout
        for option in (c for c in command[2:] if c.startswith("--")):
            assert option in help_text, f"{name}: {option} is not an option of dask {name}"
    assert services["notebook"]["command"][:2] == ["jupyter", "lab"]


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
