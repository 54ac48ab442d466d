# Two set-up commands (see README): `make demo` runs the main job, `make test` passes the tests.
# Each creates .venv and installs what it needs. TORCH_SPEC picks the torch build: the default is the
# pinned CPU wheel; GPU users override it, e.g. `make demo TORCH_SPEC="torch==2.13.0 --index-url ..."`.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/neuronscope demo --out runs/demo

test: $(STAMP)
	$(BIN)/ruff check neuronscope tests benchmarks figures
	HF_HUB_OFFLINE=1 $(BIN)/pytest -q

clean:
	rm -rf $(VENV) runs
