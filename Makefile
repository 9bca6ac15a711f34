# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv and
# installs dshift with what it needs before running:
#   demo:  dshift with the plots extra (matplotlib, for demo-output/clusters.png)
#   test:  dshift with the test, plots and dashboard extras
# Each set of extras has its own stamp file, so `make demo` then `make test` installs the
# test extras on top, and editing pyproject.toml re-installs either.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_STAMP := $(VENV)/.installed-demo
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# docker/constraints.txt pins the versions the image runs: tests and demo run the same
$(DEMO_STAMP): pyproject.toml docker/constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c docker/constraints.txt -e ".[plots]"
	touch $@

$(TEST_STAMP): pyproject.toml docker/constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c docker/constraints.txt -e ".[test,plots,dashboard]"
	touch $@

# everything the tests, the examples and benchmarks/ use
install: $(TEST_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/dshift demo --overwrite

# The second pass runs the kernel tests with numba's JIT off: the kernels' Python source
# runs (small inputs, under a minute), so it is checked too, not only the compiled code.
test: $(TEST_STAMP)
	$(BIN)/python -m pytest
	NUMBA_DISABLE_JIT=1 $(BIN)/python -m pytest tests/kernels -p no:cacheprovider -q

clean:
	rm -rf $(VENV) demo-output .pytest_cache .hypothesis
