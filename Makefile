# l2tpd: run, test, test-mpy, test-root, bench, lint, install.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PREFIX ?= /usr/local
DESTDIR ?=
MODULES := l2tpd.py avp.py ctrlchan.py fsm.py ppp.py kernel.py rpc_unix.py l2tpctl.py

.PHONY: venv run test test-mpy test-root bench lint install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime-deps: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.test-deps: requirements-test.txt $(VENV)/.runtime-deps
	$(BIN)/pip install -q -r requirements-test.txt
	touch $@

# The venv with the runtime dependency, for running l2tpd by hand (.venv/bin/python l2tpd.py).
venv: $(VENV)/.runtime-deps

# Start the daemon in the foreground with its embedded defaults.
run: $(VENV)/.runtime-deps
	@if [ ! -f l2tpd.py ]; then echo "make run: l2tpd.py does not exist yet (the daemon lands with issue 5)"; exit 1; fi
	$(BIN)/python l2tpd.py -f $(ARGS)

test: $(VENV)/.test-deps
	$(BIN)/python -m pytest -q tests

# The protocol modules' own tests under MicroPython (the unix port from PyPI).
test-mpy: $(VENV)/.test-deps
	$(BIN)/micropython tests/run.py

# The suites that need root: network namespaces, TUN devices, socket permissions.
test-root: $(VENV)/.test-deps
	$(BIN)/python -m pytest -q tests/test_netns.py tests/test_tun.py \
		tests/test_daemon.py::test_daemon_socket_refuses_a_user_outside_its_group \
		tests/test_rpc_unix.py::test_socket_refuses_user_outside_group

lint: $(VENV)/.test-deps
	$(BIN)/ruff check .

install:
	install -d $(DESTDIR)$(PREFIX)/lib/l2tpd $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin
	for m in $(MODULES); do [ ! -f $$m ] || install -m 0644 $$m $(DESTDIR)$(PREFIX)/lib/l2tpd/; done
	printf '#!/bin/sh\nexec python3 $(PREFIX)/lib/l2tpd/l2tpd.py "$$@"\n' > $(DESTDIR)$(PREFIX)/sbin/l2tpd
	printf '#!/bin/sh\nexec python3 $(PREFIX)/lib/l2tpd/l2tpctl.py "$$@"\n' > $(DESTDIR)$(PREFIX)/bin/l2tpctl
	chmod 0755 $(DESTDIR)$(PREFIX)/sbin/l2tpd $(DESTDIR)$(PREFIX)/bin/l2tpctl

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis

# Control-plane scale benchmarks of issue 7 (bench/README.md): our LNS beside xl2tpd,
# about 6 minutes. Writes bench/out/results.md and results.json (bench/out/ is not in
# git; bench/RESULTS.md records a run). bench-smoke: tiny sizes in well under a minute,
# only checks that every scenario still runs and produces numbers (exit 1 if not).
.PHONY: bench-smoke
bench: $(VENV)/.runtime-deps
	mkdir -p bench/out
	$(BIN)/python bench/run.py $(ARGS)

bench-smoke: $(VENV)/.runtime-deps
	mkdir -p bench/out
	$(BIN)/python bench/run.py --smoke $(ARGS)
