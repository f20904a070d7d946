"""Issue 12, the daemon's side of operating it: start-up errors as one line and a
non-zero exit (checked before detaching), --version and -L, the log lines a user
sees at the default level, SIGUSR1's status summary, the warning when auto falls
back to the null data path, and pools that a PPP profile names.

Expected texts are the ones the README's quick start shows."""
import logging
import os
import signal
import subprocess
import sys

import pytest

import kernel
import l2tpd
import rpc_unix
from daemon_util import ROOT, L2tpd, free_udp_port, wait_for

DAEMON = [sys.executable, os.path.join(ROOT, "l2tpd.py")]


def _run(args, timeout=30):
    return subprocess.run(DAEMON + args, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("args, names", [
    (["-g", "no-such-group-here"], "-g no-such-group-here"),
    (["-u", "70000"], "-u 70000"),
    (["-u", "abc"], "-u"),
    (["-P", "/nonexistent-dir/l2tpd.pid"], "-P /nonexistent-dir/l2tpd.pid"),
    (["-s", "/nonexistent-dir/l2tpd.sock"], "-s /nonexistent-dir/l2tpd.sock"),
    (["--config-dir", "/nonexistent-dir"], "--config-dir /nonexistent-dir"),
    (["-c", "/nonexistent-dir/l2tpd.conf"], "-c /nonexistent-dir/l2tpd.conf"),
    (["-L", "loud"], "-L/--log-level"),
    (["-P", "/tmp"], "-P /tmp"),                       # a directory, not a pid file
    (["--dataplane", "warp"], "--dataplane"),
])
def test_bad_options_end_with_one_line_naming_them(tmp_path, args, names):
    base = ["-a", "127.0.0.1", "-u", str(free_udp_port(("127.0.0.1",))),
            "-s", str(tmp_path / "s.sock")]
    # Daemon mode (no -f): every check happens before detaching, so the exit status
    # is the failure's, not 0 from a parent that forked.
    r = _run(base + args)
    assert r.returncode != 0
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and names in lines[0] and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "s.sock").exists()         # nothing left behind


def test_a_socket_path_that_is_not_a_socket(tmp_path):
    f = tmp_path / "not-a-socket"
    f.write_text("x")
    r = _run(["-f", "-a", "127.0.0.1", "-u", str(free_udp_port(("127.0.0.1",))),
              "-s", str(f)])
    assert r.returncode == 1 and "is not a socket" in r.stderr
    assert f.read_text() == "x"


def test_version():
    r = _run(["--version"])
    assert r.returncode == 0 and r.stdout.strip() == f"l2tpd {l2tpd.VERSION}"


@pytest.fixture
def pair(tmp_path):
    port = free_udp_port()
    a = L2tpd(tmp_path, "127.0.0.1", port, "a").start()
    b = L2tpd(tmp_path, "127.0.0.2", a.port, "b").start()
    yield a, b
    for d in (a, b):
        d.stop(signal.SIGKILL)


def test_default_level_logs_ups_and_downs_and_sigusr1_status(pair):
    a, b = pair
    tid = a.call("tunnel.create", {"dest_ipaddr": "127.0.0.2", "peer_udp_port": b.port,
                                   "tunnel_name": "t1"})["tunnel_id"]
    wait_for(lambda: a.call("tunnel.get", {"tunnel_id": tid})["state"] == "established",
             10, "tunnel up")
    sid = a.call("session.create", {"tunnel_name": "t1", "session_name": "s1"})["session_id"]
    wait_for(lambda: f"session {tid}/{sid} (s1) up" in a.read_log(), 10, "session log line")
    a.call("session.delete", {"tunnel_name": "t1", "session_name": "s1"})
    a.call("tunnel.delete", {"tunnel_name": "t1"})
    wait_for(lambda: f"tunnel {tid} (t1) down" in a.read_log(), 10, "tunnel down line")
    log = a.read_log()
    assert f"tunnel {tid} (t1) up: peer 127.0.0.2:{b.port}" in log
    assert f"session {tid}/{sid} (s1) down: sent CDN, result 3" in log
    # The LNS side logs the same call from its end.
    wait_for(lambda: "lnic, peer 127.0.0.1" in b.read_log(), 10, "LNS session line")
    a.send_signal(signal.SIGUSR1)
    wait_for(lambda: "status: l2tpd" in a.read_log(), 10, "status summary")
    assert "status: counters:" in a.read_log()
    assert a.proc.poll() is None and a.call("system.get")   # alive and answering


def test_a_refused_tunnel_is_logged_with_its_reason(pair):
    a, b = pair
    b.call("tunnel_profile.modify", {"profile_name": "default", "secret": "right"})
    a.call("tunnel.create", {"dest_ipaddr": "127.0.0.2", "peer_udp_port": b.port,
                             "tunnel_name": "t2", "secret": "wrong"})
    # RFC 2661 5.1.1: each side checks the other's Challenge Response; the LAC finds
    # the SCCRP's wrong and clears (StopCCN result 4, not authorized); both log it.
    wait_for(lambda: "(t2) with 127.0.0.2" in a.read_log(), 10, "the LAC's failure line")
    assert "failed: sent StopCCN, result 4" in a.read_log()
    wait_for(lambda: "failed: peer sent StopCCN, result 4" in b.read_log(), 10, "the LNS")
    assert "wrong Challenge Response" in b.read_log()


def test_a_peer_that_times_out_is_a_warning_even_at_level_warning(tmp_path):
    port = free_udp_port()
    a = L2tpd(tmp_path, "127.0.0.1", port, "a", args=["-L", "4"]).start()   # 4: warning
    b = L2tpd(tmp_path, "127.0.0.2", a.port, "b").start()
    try:
        a.call("tunnel.create", {"dest_ipaddr": "127.0.0.2", "peer_udp_port": b.port,
                                 "tunnel_name": "t", "hello_timeout": 1, "retry_timeout": 1,
                                 "max_retries": 1})
        wait_for(lambda: a.call("tunnel.get", {"tunnel_name": "t"})["state"] ==
                 "established", 10, "up")
        b.stop(signal.SIGKILL)                   # the peer vanishes without a word
        wait_for(lambda: "(t) down" in a.read_log(), 30, "the timeout line")
        log = a.read_log()
        assert "control channel failed" in log and " up: " not in log   # info hidden
    finally:
        a.stop(signal.SIGKILL)
        b.stop(signal.SIGKILL)


def test_auto_falling_back_to_null_warns_with_the_fix(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(kernel, "tun_status", lambda: (False, "cannot create TUN devices: "
                                                               "Operation not permitted "
                                                               "(needs root or CAP_NET_ADMIN)"))
    with caplog.at_level(logging.WARNING, logger="l2tpd"):
        d = l2tpd.Daemon(sock_path=str(tmp_path / "x.sock"), dataplane="auto")
    assert d.dp.name == "null"
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("data path null" in w and "CAP_NET_ADMIN" in w for w in warned), warned
    shown = d.handle_rpc("system.get", {}, None)
    assert shown["dataplane"] == "null" and "CAP_NET_ADMIN" in shown["dataplane_reason"]


def test_pyroute2_hint_fits_the_copy(tmp_path, monkeypatch):
    monkeypatch.setattr(kernel, "__file__", str(tmp_path / "lib" / "kernel.py"))
    assert "pip install --target" in kernel._pyroute2_hint()      # an installed copy
    (tmp_path / "lib" / ".venv").mkdir(parents=True)
    assert "make venv" in kernel._pyroute2_hint()                 # a source checkout


def test_a_pool_named_by_a_ppp_profile_cannot_go(tmp_path):
    d = l2tpd.Daemon(sock_path=str(tmp_path / "x.sock"), dataplane="null")
    call = lambda m, **p: d.handle_rpc(m, p, None)   # noqa: E731
    call("ippool.create", pool_name="p", first_addr="10.9.0.1", num_addrs=4)
    with pytest.raises(rpc_unix.RpcError) as e:
        call("ppp_profile.modify", profile_name="default", ip_pool_name="nope")
    assert e.value.code == rpc_unix.ERR_IPPOOL_NOT_FOUND and e.value.data["param"] == \
        "ip_pool_name"
    call("ppp_profile.modify", profile_name="default", ip_pool_name="p")
    with pytest.raises(rpc_unix.RpcError) as e:
        call("ippool.delete", pool_name="p")
    assert e.value.code == rpc_unix.ERR_IPPOOL_IN_USE and "default" in e.value.message
    call("ppp_profile.unset", profile_name="default", ip_pool_name=True)
    call("ippool.delete", pool_name="p")
