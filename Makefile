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

# The real boot (issue 11): a QEMU VM PXE-boots from `serve`, installs, boots Xen, joins a pool.
e2e: setup
	$(VENV)/bin/xcp-provision lab run --vms 1 $(ARGS)

# 1,000 concurrent registrations into one pool (ARGS="--postgres --dns" for the other setups).
bench-register: setup
	$(VENV)/bin/python bench/register_bench.py $(ARGS)

# TFTP: 50 curl clients x 1 MiB, ours vs tftpd-hpa; a 100-host rack boot vs tftpd-hpa + nginx.
bench-tftp: setup
	$(VENV)/bin/python bench/tftp_bench.py $(ARGS)

bench-rack: setup
	$(VENV)/bin/python bench/rack_boot_bench.py $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
