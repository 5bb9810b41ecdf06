# Two commands do all set-up: `make drill` runs the joint task force drill on a fresh four-agency
# cluster, `make test` runs the tests.
# Both create .venv (with the first Python >= 3.11 found) and install `-e .[dev]` into it first.
PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	2>/dev/null && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP_FLAGS := --quiet --disable-pip-version-check

.DEFAULT_GOAL := help
.PHONY: help drill drills test test-fast lint proto proto-check bench bench-quick clean

help:
	@echo "make drill        the joint task force drill on a fresh four-agency cluster on loopback"
	@echo "make drills       every drill in drills/, each on a fresh cluster"
	@echo "make test         the test suite (real nodes, real TLS, real SQLite)"
	@echo "make test-fast    the suite without tests marked slow"
	@echo "make lint         ruff check, ruff format --check, mypy --strict"
	@echo "make proto        regenerate accord/v1 from protos/"
	@echo "make proto-check  fail if the committed generated code differs from a regeneration"
	@echo "make bench        benchmarks (bench-quick: a short run)"
	@echo "make clean        remove .venv and caches"

# Rebuilt when pyproject.toml changes; a failed install leaves no stamp, so the next run retries.
$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Accord needs Python 3.11 or newer (python3 -V: $$(python3 -V 2>&1)); set PYTHON=/path/to/python3.11" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_FLAGS) --upgrade pip
	$(BIN)/python -m pip install $(PIP_FLAGS) -e '.[dev]'
	touch $(STAMP)

drill: $(STAMP)
	$(BIN)/accord drill run drills/joint-task-force.toml

# Every shipped drill, each on its own fresh cluster; all run even when one fails.
drills: $(STAMP)
	@status=0; for f in drills/*.toml; do \
		echo "=== $$f"; $(BIN)/accord drill run $$f || status=1; \
	done; exit $$status

test: $(STAMP)
	$(BIN)/python -m pytest

# The suite without the tests marked slow (fault injection, drills, browsers): for quick loops.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m 'not slow'

# All three run even when one fails, so one run shows every problem.
lint: $(STAMP)
	@status=0; \
	echo "ruff check ."; $(BIN)/ruff check . || status=1; \
	echo "ruff format --check ."; $(BIN)/ruff format --check . || status=1; \
	echo "mypy"; $(BIN)/mypy || status=1; \
	exit $$status

proto: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -I protos --python_out=. --pyi_out=. --grpc_python_out=. protos/accord/v1/*.proto

# Regenerate into a scratch directory and fail on any difference from what is committed.
proto-check: $(STAMP)
	rm -rf .proto-check && mkdir -p .proto-check
	$(BIN)/python -m grpc_tools.protoc -I protos --python_out=.proto-check --pyi_out=.proto-check --grpc_python_out=.proto-check protos/accord/v1/*.proto
	for f in .proto-check/accord/v1/*; do diff -u accord/v1/$$(basename $$f) $$f || exit 1; done
	@for f in accord/v1/*_pb2*.py*; do test -e .proto-check/$$f || { echo "$$f has no .proto source" >&2; exit 1; }; done
	rm -rf .proto-check

bench: $(STAMP)
	$(BIN)/python -m bench

bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) .proto-check .pytest_cache .mypy_cache .ruff_cache drill-reports
