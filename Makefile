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

## bench: run every benchmark and print its figures (never fails on time)
bench: $(STAMP)
	for script in bench/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
