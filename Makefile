# Every command a developer or operator needs; the README's two commands are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format bench clean lock

# Two installs in one venv: `make run` installs the node and its run-time dependencies only (no test or lint
# tools); `make test` and `make lint` add the extras on top. Each says what it does; pip shows its progress.
RUN_STAMP := $(VENV)/.installed-run

$(BIN)/python:
	@echo "make: creating the virtual environment $(VENV) (first time only)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	@echo "make: installing the node and its run-time dependencies into $(VENV) (first time only; pip lists each)"
	$(BIN)/python -m pip install --progress-bar off -e .
	@touch $(RUN_STAMP)

$(STAMP): pyproject.toml | $(BIN)/python
	@echo "make: installing the node with its test and lint tools into $(VENV) (first time only; pip lists each)"
	$(BIN)/python -m pip install --progress-bar off -e ".[test,lint]"
	@touch $(STAMP) $(RUN_STAMP)

## run: install the node (first time only, without the test tools) and start it on its embedded SQLite database
run: $(RUN_STAMP)
	@echo "make: starting the node (Ctrl-C stops it)"
	$(BIN)/connector serve

## test: install (first time only) and run the whole test suite
test: $(STAMP)
	$(BIN)/python -m pytest

## lint: ruff, formatting, mypy --strict and the import-linter layer contracts
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/hadolint Dockerfile

## lock: write requirements.lock (the image's run-time dependencies with their hashes) from pyproject.toml
lock: $(STAMP)
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --generate-hashes --strip-extras \
		--no-emit-index-url --no-emit-find-links --no-emit-trusted-host -o requirements.lock pyproject.toml

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## bench: run every benchmark, print its figures and write the README's Performance table (never fails on time)
# BENCH_ARGS=--quick for small sizes. wrk drives the nodes when installed: as root it is installed with apt-get
# when missing, else the harness's own multi-process aiohttp load generator is used (each figure says which).
BENCH_ARGS ?=
bench: $(STAMP)
	@if ! command -v wrk >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "make: wrk is missing; installing it with apt-get (Debian package wrk)"; \
			apt-get install -y -q wrk >/dev/null || echo "make: apt-get could not install wrk; using the harness's load generator"; \
		else \
			echo "make: wrk is not installed (not root, or no apt-get); using the harness's aiohttp load generator"; \
		fi; \
	fi
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
