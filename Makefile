# l2tpd: run, test, test-mpy, test-root, bench, lint, install, uninstall, man, schema.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PREFIX ?= /usr/local
DESTDIR ?=
MODULES := l2tpd.py avp.py ctrlchan.py fsm.py ppp.py kernel.py rpc_unix.py l2tpctl.py
SCHEMA  := l2tpctl-schema.json

# make install: where things go (give others on the command line: make install
# SYSCONFDIR=/opt/etc). The paths are the final ones, written into the wrappers and the
# unit; DESTDIR only prefixes where the files are put (packaging, staging).
LIBDIR     = $(PREFIX)/lib/l2tpd
SITEDIR    = $(LIBDIR)/site
BINDIR     = $(PREFIX)/bin
SBINDIR    = $(PREFIX)/sbin
MANDIR     = $(PREFIX)/share/man
SYSCONFDIR = /etc
UNITDIR    = $(PREFIX)/lib/systemd/system
# SYSTEMD=1 also installs the systemd unit (not by default: OpenWrt has procd, and a
# staged package decides for itself).
SYSTEMD    ?= 0
# DEPS=no skips pip: the python3 that runs l2tpd brings its own pyroute2-minimal.
DEPS       ?= pip
# The pip that installs requirements.txt into SITEDIR (only the package index pip is
# configured with is used: PIP_INDEX_URL, pip.conf, PIP_FIND_LINKS for wheels at hand).
PIP        ?= $(PYTHON) -m pip
# The interpreter the installed wrappers run (found on PATH at run time).
RUN_PYTHON ?= python3

.PHONY: venv run test test-mpy test-root bench lint install uninstall man schema clean

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

# A working daemon on a machine with only python3 (>= 3.9): the modules (and the
# offline command grammar l2tpctl-schema.json, when present) in LIBDIR, the runtime
# dependency installed by pip into the private SITEDIR, the wrappers sbin/l2tpd (python3
# with PYTHONPATH=SITEDIR) and bin/l2tpctl (no dependency), the manual pages, the sample
# config as SYSCONFDIR/l2tpd/l2tpd.conf.sample (an existing l2tpd.conf is never touched)
# and, with SYSTEMD=1, the unit in UNITDIR. A staged copy runs with
# L2TPD_LIBDIR=$(DESTDIR)$(LIBDIR) in the environment of the staged wrappers.
install:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 9))' || \
		{ echo "make install: $(PYTHON) is missing or older than 3.9" >&2; exit 1; }
ifneq ($(DEPS),no)
	@$(PIP) --version >/dev/null 2>&1 || { echo "make install: no pip ($(PIP)): install" \
		"it (Debian: apt-get install python3-pip; OpenWrt: opkg install python3-pip)," \
		"give one with PIP=..., or use DEPS=no if $(RUN_PYTHON) has pyroute2-minimal" >&2; \
		exit 1; }
endif
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(SYSCONFDIR)/l2tpd
	install -m 0644 $(MODULES) $(DESTDIR)$(LIBDIR)/
	[ ! -f $(SCHEMA) ] || install -m 0644 $(SCHEMA) $(DESTDIR)$(LIBDIR)/
ifneq ($(DEPS),no)
	PIP_ROOT_USER_ACTION=ignore $(PIP) install --quiet --no-input --disable-pip-version-check \
		--no-compile --upgrade --target $(DESTDIR)$(SITEDIR) -r requirements.txt
	rm -rf $(DESTDIR)$(SITEDIR)/bin
endif
	@$(PYTHON) -m compileall -q -d $(LIBDIR) $(DESTDIR)$(LIBDIR) >/dev/null || \
		echo "make install: not byte-compiled; python3 compiles at first start" >&2
	sed -e 's|@LIBDIR@|$(LIBDIR)|g' -e 's|@PYTHON@|$(RUN_PYTHON)|g' contrib/l2tpd.in \
		> $(DESTDIR)$(SBINDIR)/l2tpd
	sed -e 's|@LIBDIR@|$(LIBDIR)|g' -e 's|@PYTHON@|$(RUN_PYTHON)|g' contrib/l2tpctl.in \
		> $(DESTDIR)$(BINDIR)/l2tpctl
	chmod 0755 $(DESTDIR)$(SBINDIR)/l2tpd $(DESTDIR)$(BINDIR)/l2tpctl
	install -m 0644 man/l2tpctl.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 man/l2tpd.conf.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 man/l2tpd.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 contrib/l2tpd.conf $(DESTDIR)$(SYSCONFDIR)/l2tpd/l2tpd.conf.sample
ifeq ($(SYSTEMD),1)
	install -d $(DESTDIR)$(UNITDIR)
	sed -e 's|/usr/sbin/l2tpd|$(SBINDIR)/l2tpd|g' -e 's|/etc/l2tpd|$(SYSCONFDIR)/l2tpd|g' \
		contrib/l2tpd.service > $(DESTDIR)$(UNITDIR)/l2tpd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/l2tpd.service
endif

# Removes what install put there (give the same PREFIX, DESTDIR and the like): the
# operator's SYSCONFDIR/l2tpd/l2tpd.conf and anything else in that directory stay.
uninstall:
	rm -f $(addprefix $(DESTDIR)$(LIBDIR)/,$(MODULES) $(SCHEMA))
	rm -rf $(DESTDIR)$(LIBDIR)/__pycache__ $(DESTDIR)$(SITEDIR)
	rm -f $(DESTDIR)$(SBINDIR)/l2tpd $(DESTDIR)$(BINDIR)/l2tpctl
	rm -f $(DESTDIR)$(MANDIR)/man1/l2tpctl.1 $(DESTDIR)$(MANDIR)/man5/l2tpd.conf.5 \
		$(DESTDIR)$(MANDIR)/man8/l2tpd.8
	rm -f $(DESTDIR)$(SYSCONFDIR)/l2tpd/l2tpd.conf.sample $(DESTDIR)$(UNITDIR)/l2tpd.service
	for d in $(DESTDIR)$(LIBDIR) $(DESTDIR)$(SYSCONFDIR)/l2tpd; do \
		[ ! -d $$d ] || rmdir $$d 2>/dev/null || echo "make uninstall: kept $$d (not empty)"; \
	done

# The command grammar l2tpctl ships for help and completion without a daemon.
schema: $(VENV)/.runtime-deps
	$(BIN)/python -c 'import json, l2tpd; print(json.dumps(l2tpd.describe_schema(), indent=1, sort_keys=True))' > l2tpctl-schema.json

# The manual pages, from l2tpd's option parser and schema (commit the result: a test
# compares them with what man/mkman.py writes).
man: $(VENV)/.runtime-deps
	$(BIN)/python man/mkman.py

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
