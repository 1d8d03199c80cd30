# The two commands of the README: `make run` and `make test`. Both install what they need.
VENV := .venv
DATA ?= ./data
ARGS ?=

.PHONY: setup setup-runtime run test lint e2e bench clean

setup:
	./scripts/setup.sh test

setup-runtime:
	./scripts/setup.sh runtime

run: setup-runtime
	$(VENV)/bin/xcp-provision serve --demo --data-dir $(DATA) $(ARGS)

lint: setup
	$(VENV)/bin/ruff check .

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
