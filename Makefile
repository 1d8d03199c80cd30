# The two commands of the README: `make run` and `make test`. Both install what they need.
VENV := .venv
DATA ?= ./data
ARGS ?=

.PHONY: setup setup-runtime run test lint e2e e2e-rack e2e-raid e2e-examples e2e-ipv6 e2e-all \
	bench-register bench-tftp bench-tftp-window bench-rack bench-storm bench-two-servers \
	bench-wsgi clean

setup:
	./scripts/setup.sh test

setup-runtime:
	./scripts/setup.sh runtime

run: setup-runtime
	$(VENV)/bin/xcp-provision serve --demo --data-dir $(DATA) $(ARGS)

# Style (ruff) and the layers of pyproject.toml's [tool.importlinter] (lint-imports).
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

# Two pytest workers, each given whole files (their module fixtures build images and boot VMs
# once) in the order tests/conftest.py collects them, slow ones first: a VM under TCG keeps one
# core busy while the other mostly waits. TEST_JOBS=0 runs the suite in one process. The 20
# slowest tests are listed at the end: they decide whether CI keeps within its hour.
TEST_JOBS ?= 2

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest -n $(TEST_JOBS) --dist loadfile --no-loadscope-reorder --durations=20 $(ARGS)

# The real-boot lab: a QEMU VM PXE-boots from `serve`, installs, boots Xen and joins a pool;
# exits 0 only when every step happened.
e2e: setup
	$(VENV)/bin/xcp-provision lab run --vms 1 $(ARGS)

# The rack lab: 4 VMs (2 BIOS, 2 UEFI), each with a BMC (ipmi_sim), powered on through the API,
# installed into a pool, then one rolling reinstall of the pool (2 at a time) through the API.
e2e-rack: setup
	$(VENV)/bin/xcp-provision lab run --vms 4 --bmc --reinstall --max-parallel 2 $(ARGS)

# The RAID lab: 2 VMs, each installed onto a software RAID1 of its two disks, then booted with
# its second disk pulled: Xen and dom0 must come up and the host must report its mirror degraded.
e2e-raid: setup
	$(VENV)/bin/xcp-provision lab run --vms 2 --raid $(ARGS)

# XCP-ng 8.3's documentation answer files, unchanged: a UEFI VM installs the fresh-install
# example (3 SATA disks), a BIOS VM the RAID1 example (2), from the site's pxehost.example.com
# (the lab's DNS and nginx); judged from their serial consoles and the site's logs.
e2e-examples: setup
	$(VENV)/bin/xcp-provision lab run --xcpng-examples $(ARGS)

# A host installed over IPv4 and managed over IPv6 alone: it registers over IPv6 with a server
# known by a dual-stack name, joins the pool, and the lab's BIND holds its AAAA and ip6.arpa PTR.
# ARGS=autoconf: dom0 takes its address by SLAAC from the site's router advertisements instead
# of the profile's static one; ARGS=dhcp: from the site's DHCPv6 server.
e2e-ipv6: setup
	$(VENV)/bin/xcp-provision lab run --ipv6 $(ARGS)

# Every real-boot lab, one after the other (each exits non-zero when a check fails).
e2e-all: e2e e2e-rack e2e-raid e2e-examples e2e-ipv6

# 1,000 concurrent registrations into one pool (ARGS="--postgres --dns" for the other setups).
bench-register: setup
	$(VENV)/bin/python bench/register_bench.py $(ARGS)

# TFTP: 50 curl clients x 1 MiB, ours vs tftpd-hpa.
bench-tftp: setup
	$(VENV)/bin/python bench/tftp_bench.py $(ARGS)

# TFTP windows (RFC 7440): one 1 MiB loader over 1 ms of added latency, lock-step vs windows.
bench-tftp-window: setup
	$(VENV)/bin/python bench/tftp_window_bench.py $(ARGS)

# A rack of 100 hosts booting at once: ours (alone, then behind nginx) vs tftpd-hpa + nginx.
bench-rack: setup
	$(VENV)/bin/python bench/rack_boot_bench.py $(ARGS)

# A boot storm of 1,000 hosts from their first DHCP packet, in network namespaces: ours vs dnsmasq
# (proxy-DHCP) + tftpd-hpa + nginx (the per-round ratio; goal 1.25x, no host lost). Needs root.
bench-storm: setup
	$(VENV)/bin/python bench/boot_storm_bench.py $(ARGS)

# Two servers on one PostgreSQL: 200 hosts and 1,000 registrations split between them, against
# one server taking all of it (the ratio per round; goal 1.6x).
bench-two-servers: setup
	$(VENV)/bin/python bench/two_servers_bench.py $(ARGS)

# The WSGI server under our app: waitress (serve) vs gunicorn gthread vs granian (WSGI and RSGI),
# on /healthz and answer files; gunicorn and granian come from the bench extra, never needed to run.
bench-wsgi: setup
	$(VENV)/bin/pip install -q -e '.[bench]'
	$(VENV)/bin/python bench/wsgi_bench.py $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
