# Two commands do all the set-up on a fresh machine:
#   make demo   builds the virtual environment if needed, then runs solvent's main job
#   make test   builds the virtual environment if needed, then runs the whole test suite

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
CONFORMANCE ?= ../shared/conformance

.PHONY: demo test venv conformance bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "solvent needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/solvent simulate

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 -p no:cacheprovider

conformance: $(STAMP)
	$(BIN)/solvent conformance $(CONFORMANCE)

bench: $(STAMP)
	$(BIN)/solvent bench screening --accounts 1000000 --positions 10000000

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .hypothesis
