# Two commands do all set-up: `make drill` runs a three-agency exchange, `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: drill demo test lint proto proto-check bench bench-quick clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

drill demo: $(STAMP)
	$(BIN)/accord demo

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

proto: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -I protos --python_out=. --pyi_out=. --grpc_python_out=. protos/accord/v1/*.proto

# Regenerate into a scratch directory and fail on any difference from what is committed.
proto-check: $(STAMP)
	rm -rf .proto-check && mkdir -p .proto-check
	$(BIN)/python -m grpc_tools.protoc -I protos --python_out=.proto-check --pyi_out=.proto-check --grpc_python_out=.proto-check protos/accord/v1/*.proto
	for f in .proto-check/accord/v1/*; do diff -u accord/v1/$$(basename $$f) $$f || exit 1; done
	rm -rf .proto-check

bench: $(STAMP)
	$(BIN)/python -m bench

bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) .proto-check .pytest_cache .mypy_cache .ruff_cache
