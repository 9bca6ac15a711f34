# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv and
# installs dshift with what it needs before running.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,plots]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/dshift demo --overwrite

# The second pass runs the kernel tests with numba's JIT off: the kernels' Python source
# runs (small inputs, under a minute), so it is checked too, not only the compiled code.
test: $(STAMP)
	$(BIN)/python -m pytest
	NUMBA_DISABLE_JIT=1 $(BIN)/python -m pytest tests/kernels -p no:cacheprovider -q

clean:
	rm -rf $(VENV) demo-output .pytest_cache .hypothesis
