"""Install and service files (issue 12): `make install` into a staging directory and a
run of the installed daemon, `make uninstall`, the systemd unit, the sample config file,
and the manual pages (generated from the code's tables, committed, rendered by groff).

The installed wrappers name their final paths (/usr/lib/l2tpd); a staged copy runs with
L2TPD_LIBDIR pointing at the staged library directory, which the wrappers honour.

make install runs pip for pyroute2-minimal: with no package index (or no pip) the install
tests are skipped, saying why, except with CI=true, where they fail. So do the groff
checks without groff. Every wait is bounded; the daemon listens on 127.0.0.1 only and is
ended by its PID.
"""
import difflib
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

import l2tpctl
import l2tpd
import rpc_unix
from daemon_util import free_udp_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "man"))
import mkman  # noqa: E402

CI = os.environ.get("CI") == "true"
INSTALL_TIMEOUT = 900     # pip may fetch from a slow index: generous, but bounded
START_TIMEOUT = 30
PAGES = {"l2tpd.8": "man8", "l2tpctl.1": "man1", "l2tpd.conf.5": "man5"}
# What pip says when it cannot get a package (no index, no network): a skip, not a failure.
NO_INDEX = ("No matching distribution", "Could not find a version", "Failed to establish",
            "Temporary failure in name resolution", "Network is unreachable",
            "ConnectionError", "ReadTimeoutError", "Max retries exceeded", "no pip")


def skip_or_fail(reason):
    if CI:
        pytest.fail(f"CI must run this test: {reason}")
    pytest.skip(reason)


def pip_for_install():
    """make's PIP: python3's own pip when it has one (as on the target), else the pip of
    the interpreter running the tests (Debian's python3 may come without pip)."""
    py = shutil.which("python3")
    if py is None:
        skip_or_fail("no python3 on PATH (the installed wrappers run python3)")
    r = subprocess.run([py, "-m", "pip", "--version"], capture_output=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    return f"{py} -m pip" if r.returncode == 0 else f"{sys.executable} -m pip"


def make(*args, timeout=INSTALL_TIMEOUT):
    if shutil.which("make") is None:
        skip_or_fail("no make")
    env = dict(os.environ)
    for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL"):   # not the outer `make test`'s
        env.pop(k, None)
    return subprocess.run(["make", "-C", ROOT, "--no-print-directory", *args],
                          capture_output=True, text=True, timeout=timeout, env=env,
                          stdin=subprocess.DEVNULL)


def install(*args):
    r = make("install", f"PIP={pip_for_install()}", *args)
    if r.returncode != 0:
        out = r.stdout + r.stderr
        hit = next((m for m in NO_INDEX if m in out), None)
        if hit is not None:
            lines = [ln for ln in out.splitlines() if hit in ln]
            skip_or_fail(f"make install could not get pyroute2-minimal with pip: {lines[0]}")
        raise AssertionError(f"make install {' '.join(args)} -> {r.returncode}:\n{out[-4000:]}")
    return r


def files_under(top):
    """Every non-directory below `top`, relative to it."""
    out = set()
    for d, _dirs, names in os.walk(top):
        for n in names:
            out.add(os.path.relpath(os.path.join(d, n), top))
    return out


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    """make install DESTDIR=<tmp>/stage PREFIX=/usr SYSTEMD=1, as a packager stages it."""
    stage = tmp_path_factory.mktemp("install") / "stage"
    install(f"DESTDIR={stage}", "PREFIX=/usr", "SYSTEMD=1")
    return stage


def staged_env(stage):
    env = dict(os.environ, L2TPD_LIBDIR=f"{stage}/usr/lib/l2tpd")
    env.pop("PYTHONPATH", None)
    env.pop("L2TPD_SOCKET", None)
    return env


# ------------------------------------------------------------------ make install
def test_install_puts_every_file_at_its_final_path(staged):
    files = files_under(staged)
    lib = "usr/lib/l2tpd"
    want = {f"{lib}/{m}" for m in ("l2tpd.py", "avp.py", "ctrlchan.py", "fsm.py", "ppp.py",
                                    "kernel.py", "rpc_unix.py", "l2tpctl.py")}
    want |= {"usr/sbin/l2tpd", "usr/bin/l2tpctl", "etc/l2tpd/l2tpd.conf.sample",
             "usr/lib/systemd/system/l2tpd.service"}
    want |= {f"usr/share/man/{sec}/{page}" for page, sec in PAGES.items()}
    if os.path.exists(os.path.join(ROOT, "l2tpctl-schema.json")):
        want.add(f"{lib}/l2tpctl-schema.json")
    assert want <= files, sorted(want - files)
    assert any(f.startswith(f"{lib}/site/pyroute2/") for f in files), "no pyroute2 in site/"
    assert not any(f.startswith(f"{lib}/site/bin/") for f in files)
    # Nothing outside these trees; no operator config written.
    for f in files:
        assert f.startswith((f"{lib}/", "usr/sbin/", "usr/bin/", "usr/share/man/",
                             "etc/l2tpd/", "usr/lib/systemd/system/")), f
    assert "etc/l2tpd/l2tpd.conf" not in files
    for w in ("usr/sbin/l2tpd", "usr/bin/l2tpctl"):
        assert os.access(staged / w, os.X_OK), w
    # The staging directory is nowhere in what was installed (wrappers, unit, byte code,
    # pip's records): the installed copy finds its files at /usr, not under DESTDIR.
    needle = str(staged).encode()
    leaked = [f for f in files if needle in (staged / f).read_bytes()]
    assert not leaked, leaked
    assert "/usr/lib/l2tpd" in (staged / "usr/sbin/l2tpd").read_text()
    assert "ExecStart=/usr/sbin/l2tpd " in \
        (staged / "usr/lib/systemd/system/l2tpd.service").read_text()


def test_installed_daemon_runs_from_the_staging_directory(staged, tmp_path):
    env = staged_env(staged)
    sbin, bin_ = str(staged / "usr/sbin/l2tpd"), str(staged / "usr/bin/l2tpctl")
    r = subprocess.run([sbin, "--version"], capture_output=True, text=True, timeout=60,
                       env=env, stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and r.stdout.strip() == f"l2tpd {l2tpd.VERSION}", r

    # The sample config as the operator's, and a plugin that shows where the daemon's
    # process finds pyroute2 (it must be the private site directory).
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    conf = conf_dir / "l2tpd.conf"
    shutil.copy(staged / "etc/l2tpd/l2tpd.conf.sample", conf)
    mark = tmp_path / "pyroute2-path"
    plugin = tmp_path / "where.py"
    plugin.write_text("import os\nimport pyroute2.minimal\n\n"
                      f"with open({str(mark)!r}, 'w') as f:\n"
                      "    f.write(os.path.abspath(pyroute2.minimal.__file__))\n")
    sock = str(tmp_path / "l2tpd.sock")
    pidfile = str(tmp_path / "l2tpd.pid")
    logfile = tmp_path / "l2tpd.log"
    proc = None
    try:
        for _attempt in range(5):   # another process may take the port first: try anew
            port = free_udp_port(("127.0.0.1",))
            with open(logfile, "wb") as log:
                proc = subprocess.Popen(
                    [sbin, "-f", "-a", "127.0.0.1", "-u", str(port), "-s", sock,
                     "-P", pidfile, "--dataplane", "null", "-c", str(conf), "-p", str(plugin)],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                    start_new_session=True, cwd=str(tmp_path))
            deadline = time.monotonic() + START_TIMEOUT
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    rpc_unix.call("system.get", {}, path=sock, timeout=2)
                    break
                except (OSError, rpc_unix.RpcError):
                    time.sleep(0.05)
            if proc.poll() is None or "cannot open sockets" not in logfile.read_text():
                break
        assert proc.poll() is None, f"l2tpd exited {proc.returncode}: {logfile.read_text()}"
        assert rpc_unix.call("system.get", {}, path=sock, timeout=5)["udp_port"] == port

        # exec: the wrapper's PID is the daemon's (systemd's $MAINPID gets the signals).
        with open(pidfile) as f:
            assert int(f.read()) == proc.pid
        site = str(staged / "usr/lib/l2tpd/site") + os.sep
        assert mark.read_text().startswith(site), mark.read_text()

        r = subprocess.run([bin_, "-s", sock, "system", "show"], capture_output=True,
                           text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stderr
        assert "127.0.0.1" in r.stdout and str(port) in r.stdout, r.stdout
        r = subprocess.run([bin_, "-s", sock, "ippool", "show", "pool_name=users"],
                           capture_output=True, text=True, timeout=60, env=env,
                           stdin=subprocess.DEVNULL)
        assert r.returncode == 0 and "users" in r.stdout, (r.stdout, r.stderr)

        # SIGHUP (the unit's ExecReload) applies the file again and the daemon stays.
        before = logfile.read_text()
        os.kill(proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + START_TIMEOUT
        while "re-applied" not in logfile.read_text()[len(before):] and \
                time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert "re-applied" in logfile.read_text()[len(before):], logfile.read_text()
        assert proc.poll() is None

        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(START_TIMEOUT) == 0, logfile.read_text()
        assert not os.path.exists(sock)
    finally:
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(START_TIMEOUT)


def test_uninstall_removes_what_install_put_there(tmp_path):
    """A prefix that is the final place itself (DESTDIR empty): the wrappers run without
    L2TPD_LIBDIR; uninstall leaves no file but the operator's config."""
    prefix, etc = tmp_path / "prefix", tmp_path / "etc"
    args = [f"PREFIX={prefix}", f"SYSCONFDIR={etc}", "SYSTEMD=1"]
    install(*args)
    assert (prefix / "lib/systemd/system/l2tpd.service").exists()
    env = dict(os.environ)
    env.pop("L2TPD_LIBDIR", None)
    for cmd in ([str(prefix / "sbin/l2tpd"), "--version"], [str(prefix / "bin/l2tpctl"), "-h"]):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env,
                           stdin=subprocess.DEVNULL)
        assert r.returncode == 0, (cmd, r.stderr)
    # Installing again over it works (pip --upgrade into site/) and changes nothing else.
    before = files_under(tmp_path)
    install(*args)
    assert files_under(tmp_path) == before
    (etc / "l2tpd/l2tpd.conf").write_text("# the operator's\n")

    r = make("uninstall", *args, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert files_under(tmp_path) == {"etc/l2tpd/l2tpd.conf"}
    assert not (prefix / "lib/l2tpd").exists()


# ------------------------------------------------------------------ systemd unit
def unit_settings():
    """{key: [values]} of contrib/l2tpd.service (every section)."""
    out = {}
    with open(os.path.join(ROOT, "contrib", "l2tpd.service")) as f:
        for ln in f:
            ln = ln.strip()
            if ln and not ln.startswith(("#", ";", "[")):
                k, _, v = ln.partition("=")
                out.setdefault(k.strip(), []).append(v.strip())
    return out


def test_systemd_unit_runs_the_daemon_as_documented():
    u = unit_settings()
    start = u["ExecStart"][0].split()
    assert start[0] == "/usr/sbin/l2tpd" and "-f" in start
    assert start[start.index("-c") + 1] == f"{l2tpd.DEFAULT_CONFIG_DIR}/l2tpd.conf"
    sock = start[start.index("-s") + 1] if "-s" in start else rpc_unix.SYSTEM_SOCKET
    assert sock == rpc_unix.SYSTEM_SOCKET
    assert u["RuntimeDirectory"] == [os.path.basename(os.path.dirname(sock))]
    assert u["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert u.get("KillSignal", ["SIGTERM"]) == ["SIGTERM"]
    # The daemon waits up to 3 s for StopCCN acks: systemd must not kill it before.
    assert int(u["TimeoutStopSec"][0]) >= 10
    caps = u["CapabilityBoundingSet"][0].split()
    assert {"CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE"} <= set(caps)
    assert u.get("PrivateDevices", ["no"]) == ["no"]   # /dev/net/tun
    assert "/dev/net/tun rw" in u["DeviceAllow"]
    assert "AF_NETLINK" in u["RestrictAddressFamilies"][0]
    # ReadWritePaths of the config dir (config save), '-': may be missing.
    assert f"-{l2tpd.DEFAULT_CONFIG_DIR}" in u["ReadWritePaths"]
    assert u["WantedBy"] == ["multi-user.target"]


def test_systemd_analyze_verifies_the_installed_unit(staged, tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        skip_or_fail("no systemd-analyze (Debian package systemd)")
    text = (staged / "usr/lib/systemd/system/l2tpd.service").read_text()
    if shutil.which("man") is None:
        if CI:
            pytest.fail("CI must have man (Debian package man-db) to verify Documentation=")
        text = re.sub(r"(?m)^Documentation=.*\n", "", text)   # verify runs man for these
    unit = tmp_path / "l2tpd.service"   # the staged daemon, so that ExecStart exists
    unit.write_text(text.replace("/usr/sbin/l2tpd", str(staged / "usr/sbin/l2tpd")))
    env = dict(os.environ, MANPATH=str(staged / "usr/share/man"))   # Documentation=man:
    r = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True,
                       timeout=120, env=env, stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and not r.stderr.strip(), r.stdout + r.stderr


# ------------------------------------------------------------------ sample config
SAMPLE = os.path.join(ROOT, "contrib", "l2tpd.conf")


def apply_sample(tmp_path, text):
    path = tmp_path / "l2tpd.conf"
    path.write_text(text)
    d = l2tpd.Daemon(listen_addr="127.0.0.1", port=1701, sock_path=str(tmp_path / "s.sock"))
    sent = []
    d._sendto = lambda rec, data: sent.append(rec.peer) or True   # nothing leaves
    d.config_dir = str(tmp_path)
    return d, d.apply_config_file(str(path))


def test_sample_config_applies(tmp_path):
    with open(SAMPLE) as f:
        text = f.read()
    d, n = apply_sample(tmp_path, text)
    assert n == len(rpc_unix.parse_config(text, SAMPLE, l2tpd.CONFIG_VERBS)) >= 5
    assert set(d.pools) == {"users"}
    assert "branches" in d.profiles["peer"].items
    assert not d.tunnels
    ppp = d.handle_rpc("ppp_profile.get", {"profile_name": "default"}, None)
    assert ppp["ip_pool_name"] == "users" and ppp["auth_peer"] is True
    tp = d.handle_rpc("tunnel_profile.get", {"profile_name": "default"}, None)
    assert tp["auth_mode"] == "challenge"

    # The commented LAC example: its commands start with '#' and a letter, their
    # continuation lines with '#' and four blanks; prose comments with '# '.
    lac = re.sub(r"(?m)^#(?=[a-z]|    )", "", text)
    assert lac.count("\n") == text.count("\n") and lac != text
    d, n = apply_sample(tmp_path, lac)
    assert "isp" in d.profiles["tunnel"].items and "isp" in d.profiles["ppp"].items
    (rec,) = d.tunnels.values()
    assert rec.peer[0] == "198.51.100.1"
    assert len(rec.sessions) == 1


# ------------------------------------------------------------------ manual pages
def test_man_pages_match_the_code():
    want = mkman.build()
    stale = []
    for name, text in want.items():
        path = os.path.join(ROOT, "man", name)
        have = open(path, encoding="utf-8").read() if os.path.exists(path) else ""
        if have != text:
            diff = difflib.unified_diff(have.splitlines(), text.splitlines(),
                                        f"man/{name} (committed)", "generated", lineterm="", n=1)
            stale.append("\n".join(list(diff)[:40]))
    assert not stale, ("the manual pages differ from the code's tables: run `make man` and "
                       "commit man/\n" + "\n".join(stale))


def test_man_pages_cover_every_option_and_command():
    pages = mkman.build()
    page8 = pages["l2tpd.8"].replace("\\-", "-")
    for a in l2tpd.build_parser()._actions:
        for opt in a.option_strings:
            assert f"\\fB{opt}\\fR" in page8, opt
    page1 = pages["l2tpctl.1"].replace("\\-", "-")
    usage = l2tpctl.USAGE.split("examples:")[0]
    for opt in set(re.findall(r"(?<![\w-])--?[a-zA-Z][a-z-]*", usage)):
        assert f"\\fB{opt}\\fR" in page1, opt
    schema = l2tpd.describe_schema()
    conf = pages["l2tpd.conf.5"].replace("\\-", "-")
    ctl = pages["l2tpctl.1"].replace("\\-", "-")
    for m, entry in schema.items():
        title = f'.SS "{" ".join(rpc_unix.command_words(m))}"'
        assert title in ctl, m
        assert (title in conf) == (m.partition(".")[2] in l2tpd.CONFIG_VERBS), m
        for p in entry["params"]:
            assert f"\\fB{p}" in ctl, (m, p)


def test_man_pages_render_without_warnings():
    groff = shutil.which("groff")
    if groff is None:
        skip_or_fail("no groff (Debian packages groff-base, man-db)")
    for name in PAGES:
        r = subprocess.run([groff, "-man", "-Tutf8", "-ww", "-rLL=78n", "-P-cbou",
                            os.path.join(ROOT, "man", name)],
                           capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
        assert r.returncode == 0 and not r.stderr, (name, r.stderr.decode(errors="replace"))
        text = r.stdout.decode("utf-8")
        assert "NAME" in text and "SEE ALSO" in text, name
        wide = [ln for ln in text.splitlines() if len(ln) > 80]
        assert not wide, (name, wide[:3])
