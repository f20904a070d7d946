"""End to end: two l2tpd daemons on 127.0.0.1 and 127.0.0.2 (null data path),
managed with l2tpctl and the JSON-RPC client, as a user would."""
import errno
import json
import os
import shutil
import signal
import socket

import pytest

import rpc_unix
from daemon_util import L2tpd, free_udp_port, tunnel_state, wait_for


@pytest.fixture
def pair(tmp_path):
    port = free_udp_port()
    # Files named over RPC must lie in the configuration directory: the test's own.
    args = ["--config-dir", str(tmp_path)]
    a = L2tpd(tmp_path, "127.0.0.1", port, "a", args=args).start()
    b = L2tpd(tmp_path, "127.0.0.2", port, "b", args=args).start()
    yield a, b
    for d in (a, b):
        d.stop(signal.SIGKILL)


def _tid(d, name):
    return d.call("tunnel.get", {"tunnel_name": name})["tunnel_id"]


def _only_tunnel(d):
    rows = d.call("tunnel.list")
    assert len(rows) == 1, rows
    return rows[0]


def _established_tunnel(d):
    rows = [r for r in d.call("tunnel.list") if r["state"] == "established"]
    return rows[0] if len(rows) == 1 else None


def _sessions(d):
    return {(s["session_type"], s["state"]) for s in d.call("session.list")}


def test_all_four_call_types_with_l2tpctl(pair):
    a, b = pair
    r = a.ctl("tunnel", "create", "dest_ipaddr=127.0.0.2", f"peer_udp_port={a.port}",
              "tunnel_name=t1")
    assert r.stdout.startswith("Created tunnel ")
    wait_for(lambda: tunnel_state(a, "t1") == "established", what="t1 established")
    peer = wait_for(lambda: _established_tunnel(b), what="b's tunnel")
    shown = json.loads(a.ctl("tunnel", "show", "tunnel_name=t1", json_out=True).stdout)
    assert shown["state"] == "established" and shown["peer_tunnel_id"] == peer["tunnel_id"]
    assert shown["created_by_admin"] is True
    human = a.ctl("tunnel", "show", "tunnel_name=t1").stdout
    assert "established" in human and str(peer["tunnel_id"]) in human

    # LAC incoming call from a; the LNS (b) sees an LNS incoming call.
    r = a.ctl("session", "create", "tunnel_name=t1", "session_name=s1")
    assert r.stdout.startswith("Created session ")
    wait_for(lambda: _sessions(a) == {("laic", "established")}, what="laic up")
    wait_for(lambda: _sessions(b) == {("lnic", "established")}, what="lnic up")
    # LNS outgoing call from b; the LAC (a) sees a LAC outgoing call.
    b.ctl("session", "create", f"tunnel_id={peer['tunnel_id']}", "session_type=lnoc",
          "session_name=o1", "called_number=5551234")
    wait_for(lambda: _sessions(b) == {("lnic", "established"), ("lnoc", "established")},
             what="lnoc up")
    wait_for(lambda: _sessions(a) == {("laic", "established"), ("laoc", "established")},
             what="laoc up")
    s1 = json.loads(a.ctl("session", "show", "tunnel_name=t1", "session_name=s1",
                          json_out=True).stdout)
    assert s1["state"] == "established" and s1["session_type"] == "laic"
    lnic = [s for s in b.call("session.list") if s["session_type"] == "lnic"][0]
    assert s1["peer_session_id"] == lnic["session_id"]

    # Clean deletes, each visible on the other side.
    a.ctl("session", "delete", "tunnel_name=t1", "session_name=s1")
    wait_for(lambda: _sessions(b) == {("lnoc", "established")}, what="lnic cleared")
    b.ctl("session", "delete", f"tunnel_id={peer['tunnel_id']}", "session_name=o1")
    wait_for(lambda: _sessions(a) == set(), what="laoc cleared")
    a.ctl("tunnel", "delete", "tunnel_name=t1")
    wait_for(lambda: all(r["state"] != "established" for r in b.call("tunnel.list")),
             what="b's tunnel cleared")
    listing = a.ctl("tunnel", "list").stdout
    assert "established" not in listing


def test_tunnel_authentication_success_and_failure(pair):
    a, b = pair
    # Peers at 127.0.0.1 must pass the challenge and hide AVPs; the peer that calls
    # itself "plain" (matched by Host Name first) gets a challenge without hiding.
    b.ctl("tunnel", "profile", "create", "profile_name=secure", "secret=s3cret",
          "auth_mode=challenge", "hide_avps=yes", "hide_setup_avps=yes")
    b.ctl("tunnel", "profile", "create", "profile_name=chal", "secret=s3cret",
          "auth_mode=challenge")
    b.ctl("peer", "profile", "create", "profile_name=lac", "peer_ipaddr=127.0.0.1",
          "tunnel_profile_name=secure")
    b.ctl("peer", "profile", "create", "profile_name=plain", "tunnel_profile_name=chal")
    dest = ["dest_ipaddr=127.0.0.2", f"peer_udp_port={a.port}"]
    a.ctl("tunnel", "create", *dest, "tunnel_name=good", "secret=s3cret", "hide_avps=yes")
    a.ctl("tunnel", "create", *dest, "tunnel_name=good2", "secret=s3cret", "host_name=plain")
    wait_for(lambda: tunnel_state(a, "good") == "established", what="auth ok")
    wait_for(lambda: tunnel_state(a, "good2") == "established", what="auth ok by name")
    shown = json.loads(a.ctl("tunnel", "show", "tunnel_name=good", json_out=True).stdout)
    assert shown["peer"]["challenge_ok"] is True

    # Wrong secret, hidden AVPs (hide_setup_avps: in SCCRP too): the first hidden AVP
    # of the SCCRP does not decrypt.
    a.ctl("tunnel", "create", *dest, "tunnel_name=bad", "secret=wrong")
    # Wrong secret, nothing hidden: the challenge response does not match.
    a.ctl("tunnel", "create", *dest, "tunnel_name=bad2", "secret=wrong", "host_name=plain")
    for name in ("bad", "bad2"):
        wait_for(lambda n=name: tunnel_state(a, n) not in ("wait-ctl-reply", "established"),
                 what=f"{name} refused")
    bad = json.loads(a.ctl("tunnel", "show", "tunnel_name=bad", json_out=True).stdout)
    assert "wrong secret" in bad["down_reason"], bad["down_reason"]
    human = a.ctl("tunnel", "show", "tunnel_name=bad2").stdout
    assert "down_reason" in human
    bad2 = a.call("tunnel.get", {"tunnel_name": "bad2"})
    theirs = [t for t in b.call("tunnel.list") if t["tunnel_id"] == bad2["peer_tunnel_id"]]
    # Either side may be the one that detects the mismatch: both say "not authorized".
    if bad2["result"] and bad2["result"]["result_code"] == 4:
        assert "challenge" in bad2["down_reason"].lower()
    else:
        assert theirs and b.call("tunnel.get", {"tunnel_id": theirs[0]["tunnel_id"]}
                                 )["result"]["result_code"] == 4
    assert b.call("system.get")["stats"]["auth_fails"] >= 1
    for name in ("good", "good2"):
        assert tunnel_state(a, name) == "established"


def test_sigterm_sends_stopccn_and_cleans_up(pair):
    a, b = pair
    a.call("tunnel.create", {"dest_ipaddr": "127.0.0.2", "peer_udp_port": a.port,
                             "tunnel_name": "t"})
    wait_for(lambda: _established_tunnel(b), what="tunnel up")
    a.send_signal(signal.SIGTERM)
    assert a.wait(10) == 0
    assert not os.path.exists(a.sock) and not os.path.exists(a.pidfile)
    # The peer learns at once from the StopCCN (no Hello timeout needed).
    rows = wait_for(lambda: [r for r in b.call("tunnel.list") if r["state"] != "established"],
                    timeout=5, what="b sees the StopCCN")
    t = b.call("tunnel.get", {"tunnel_id": rows[0]["tunnel_id"]})
    assert t["result"]["result_code"] == 6  # requester is being shut down


def test_persistent_tunnel_comes_back_after_peer_restart(pair, tmp_path):
    a, b = pair
    a.call("system.modify", {"tunnel_persist_pend_timeout": 2})
    a.call("tunnel.create", {"dest_ipaddr": "127.0.0.2", "peer_udp_port": a.port,
                             "tunnel_name": "p", "persist": True, "hello_timeout": 1,
                             "retry_timeout": 1, "max_retries": 1})
    wait_for(lambda: tunnel_state(a, "p") == "established", what="p up")
    a.call("session.create", {"tunnel_name": "p", "session_name": "ps"})
    wait_for(lambda: _sessions(a) == {("laic", "established")}, what="session up")
    first = _tid(a, "p")
    b.stop(signal.SIGKILL)   # no StopCCN: a finds out through Hello and retransmits
    wait_for(lambda: tunnel_state(a, "p") != "established", timeout=30, what="p down")
    b.start()
    wait_for(lambda: tunnel_state(a, "p") == "established" and _tid(a, "p") != first,
             timeout=40, what="p re-created")
    wait_for(lambda: _sessions(a) == {("laic", "established")}, what="session restored")
    assert [s["session_name"] for s in a.call("session.list")] == ["ps"]


def test_config_save_and_restart_restores_objects(pair, tmp_path):
    a, b = pair
    conf = str(tmp_path / "saved.conf")
    a.ctl("tunnel", "profile", "create", "profile_name=tp", "hello_timeout=30")
    a.ctl("ppp", "profile", "modify", "profile_name=default", "mru=1400")
    a.ctl("system", "modify", "max_tunnels=50")
    a.ctl("tunnel", "create", "dest_ipaddr=127.0.0.2", f"peer_udp_port={a.port}",
          "tunnel_name=c1", "profile_name=tp")
    a.ctl("session", "create", "tunnel_name=c1", "session_name=cs")
    wait_for(lambda: _sessions(a) == {("laic", "established")}, what="session up")
    r = a.ctl("config", "save", f"file={conf}")
    assert os.path.exists(conf) and r.returncode == 0
    assert a.stop() == 0
    a.config = conf
    a.start()
    assert a.call("system.get")["max_tunnels"] == 50
    assert a.call("tunnel_profile.get", {"profile_name": "tp"})["hello_timeout"] == 30
    assert a.call("ppp_profile.get", {"profile_name": "default"})["mru"] == 1400
    wait_for(lambda: tunnel_state(a, "c1") == "established", what="c1 restored")
    assert a.call("tunnel.get", {"tunnel_name": "c1"})["hello_timeout"] == 30
    wait_for(lambda: [s["session_name"] for s in a.call("session.list")
                      if s["state"] == "established"] == ["cs"], what="cs restored")


def test_config_error_names_the_line_and_sighup_keeps_state(tmp_path):
    port = free_udp_port(("127.0.0.1",))
    conf = tmp_path / "l2tpd.conf"
    conf.write_text("# comment\ntunnel profile create profile_name=x \\\n  hello_timeout=5\n"
                    "tunnel profile create profile_name=y hello_timeout=abc\n")
    d = L2tpd(tmp_path, "127.0.0.1", port, "c", config=str(conf))
    with pytest.raises(AssertionError) as e:
        d.start()
    assert "l2tpd.conf:4" in str(e.value) and "hello_timeout" in str(e.value)
    d.stop()
    conf.write_text("tunnel profile create profile_name=x hello_timeout=5\n")
    d = L2tpd(tmp_path, "127.0.0.1", port, "c2", config=str(conf)).start()
    try:
        assert d.call("tunnel_profile.get", {"profile_name": "x"})["hello_timeout"] == 5
        conf.write_text("tunnel profile modify profile_name=x hello_timeout=7\n"
                        "session profile create profile_name=s bogus=1\n")
        d.send_signal(signal.SIGHUP)
        wait_for(lambda: "bogus" in d.read_log(), what="SIGHUP error logged")
        assert d.call("tunnel_profile.get", {"profile_name": "x"})["hello_timeout"] == 5
        assert "l2tpd.conf:2" in d.read_log()
        conf.write_text("tunnel profile modify profile_name=x hello_timeout=7\n")
        d.send_signal(signal.SIGHUP)
        wait_for(lambda: d.call("tunnel_profile.get",
                                {"profile_name": "x"})["hello_timeout"] == 7,
                 what="SIGHUP applied")
    finally:
        d.stop()


def _raw(path, data, timeout=5.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    s.sendall(data)
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    s.close()
    return json.loads(buf)


def test_bad_rpc_input_gets_errors_and_the_daemon_keeps_serving(pair):
    a, _ = pair
    idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    idle.connect(a.sock)   # connects and sends nothing
    try:
        assert _raw(a.sock, b"{not json\n")["error"]["code"] == rpc_unix.ERR_PARSE
        r = _raw(a.sock, b'{"jsonrpc":"2.0","id":1,"method":"nope.get"}\n')
        assert r["error"]["code"] == rpc_unix.ERR_METHOD_NOT_FOUND
        r = _raw(a.sock, b'{"jsonrpc":"2.0","id":2,"method":"tunnel_profile.modify",'
                         b'"params":{"profile_name":"default","hello_timeout":"abc"}}\n')
        assert r["error"]["code"] == rpc_unix.ERR_PARAM_BAD_VALUE
        assert "hello_timeout" in r["error"]["message"]
        r = _raw(a.sock, b'{"jsonrpc":"2.0","id":3,"method":"tunnel.create",'
                         b'"params":{"dest_ipaddr":"127.0.0.2","helo_timeout":1}}\n')
        assert r["error"]["code"] == rpc_unix.ERR_PARAM_UNKNOWN
        assert "helo_timeout" in r["error"]["message"]
        r = _raw(a.sock, b'{"jsonrpc":"2.0","id":4,"method":"tunnel.create",'
                         b'"params":{"dest_ipaddr":12}}\n')
        assert r["error"]["code"] == rpc_unix.ERR_PARAM_BAD_VALUE
        r = _raw(a.sock, b'{"jsonrpc":"2.0","id":5,"method":"tunnel.get",'
                         b'"params":{"tunnel_name":"missing"}}\n')
        assert r["error"]["code"] == rpc_unix.ERR_TUNNEL_NOT_FOUND
        r = _raw(a.sock, b"x" * 200000 + b"\n")
        assert r["error"]["code"] == rpc_unix.ERR_REQUEST_TOO_LARGE
        # Still serving, with the silent client still connected.
        assert a.call("system.get")["num_tunnels"] == 0
        r = a.ctl("tunnel", "show", "tunnel_name=missing", check=False)
        assert r.returncode == 1 and "missing" in r.stderr and r.stderr.count("\n") == 1
    finally:
        idle.close()


def test_events_and_plugins(tmp_path):
    port = free_udp_port()
    plugin = tmp_path / "plug.py"
    out = tmp_path / "plugin.out"
    plugin.write_text(
        "def tunnel_up(daemon, ev):\n"
        f"    open({str(out)!r}, 'a').write('up %s\\n' % ev['tunnel_id'])\n"
        "def tunnel_created(daemon, ev):\n"
        "    raise RuntimeError('a broken hook')\n")
    a = L2tpd(tmp_path, "127.0.0.1", port, "a", args=["-p", str(plugin)]).start()
    b = L2tpd(tmp_path, "127.0.0.2", port, "b").start()
    try:
        with rpc_unix.RpcClient(a.sock) as c:
            c.call("events.subscribe")
            tid = a.call("tunnel.create", {"dest_ipaddr": "127.0.0.2",
                                           "peer_udp_port": b.port})["tunnel_id"]
            seen = []

            def got_up():
                seen.extend(c.notifications(0.2))
                return [p for m, p in seen if p.get("event") == "tunnel_up"]
            up = wait_for(got_up, what="tunnel_up event")
            assert up[0]["tunnel_id"] == tid and up[0]["peer_addr"] == "127.0.0.2"
            assert [p["event"] for m, p in seen][0] == "tunnel_created"
        wait_for(lambda: out.exists() and f"up {tid}" in out.read_text(), what="plugin hook")
        assert "a broken hook" in a.read_log()
        assert a.call("system.get")["num_tunnels"] == 1
    finally:
        a.stop(signal.SIGKILL)
        b.stop(signal.SIGKILL)


def test_socket_mode_and_default_profiles(pair):
    a, _ = pair
    assert os.stat(a.sock).st_mode & 0o777 == 0o660
    for kind in ("tunnel", "session", "ppp", "peer"):
        assert "default" in a.call(f"{kind}_profile.list")
        with pytest.raises(rpc_unix.RpcError) as e:
            a.call(f"{kind}_profile.delete", {"profile_name": "default"})
        assert e.value.code == rpc_unix.ERR_NOT_PERMITTED
    a.call("tunnel_profile.create", {"profile_name": "x", "hello_timeout": 9})
    assert a.call("tunnel_profile.get", {"profile_name": "x"})["hello_timeout"] == 9
    a.call("tunnel_profile.modify", {"profile_name": "default", "max_retries": 7})
    assert a.call("tunnel_profile.get", {"profile_name": "x"})["max_retries"] == 7
    a.call("tunnel_profile.unset", {"profile_name": "x", "hello_timeout": True})
    assert a.call("tunnel_profile.get", {"profile_name": "x"})["hello_timeout"] == 60


def test_daemon_socket_refuses_a_user_outside_its_group(tmp_path):
    if os.geteuid() != 0:
        assert os.environ.get("CI") != "true", "CI runs as root: this test must run there"
        pytest.skip("needs root to drop privileges in a helper process")
    import tempfile

    from test_rpc_unix import try_connect_as
    top = tempfile.mkdtemp(prefix="l2tpd-grp-", dir="/tmp")
    os.chmod(top, 0o755)
    d = L2tpd(top, "127.0.0.1", free_udp_port(("127.0.0.1",)), "g", args=["-g", "4242"])
    os.makedirs(d.dir, exist_ok=True)
    os.chmod(d.dir, 0o755)
    d.start()
    try:
        st = os.stat(d.sock)
        assert (st.st_gid, st.st_mode & 0o777) == (4242, 0o660)
        assert try_connect_as(d.sock, 65534, 65534, []) == errno.EACCES
        assert try_connect_as(d.sock, 65534, 65534, [4242]) == 0
        assert d.call("system.get")["num_tunnels"] == 0
    finally:
        d.stop()
        shutil.rmtree(top, ignore_errors=True)


def test_idle_timeout_clears_a_tunnel_without_sessions(pair):
    a, b = pair
    a.call("tunnel.create", {"dest_ipaddr": "127.0.0.2", "peer_udp_port": a.port,
                             "tunnel_name": "idle", "idle_timeout": 1})
    wait_for(lambda: tunnel_state(a, "idle") == "established", what="up")
    wait_for(lambda: tunnel_state(a, "idle") == "closing", timeout=5, what="idle close")
    assert "idle" in a.call("tunnel.get", {"tunnel_name": "idle"})["down_reason"]


def test_inconsistent_tunnel_parameters_are_refused_with_a_reason(pair):
    a, _ = pair
    r = a.ctl("tunnel", "create", "dest_ipaddr=127.0.0.2", "auth_mode=challenge", check=False)
    assert r.returncode == 1 and "secret" in r.stderr
    r = a.ctl("tunnel", "create", "dest_ipaddr=127.0.0.2", "hide_avps=yes", check=False)
    assert r.returncode == 1 and "secret" in r.stderr
    assert a.call("tunnel.list") == []


def test_session_created_before_its_tunnel_is_up_is_created_once(pair):
    a, b = pair
    # One batch: both requests are handled in one loop pass, before any SCCRP.
    batch = json.dumps([
        {"jsonrpc": "2.0", "id": 1, "method": "tunnel.create",
         "params": {"dest_ipaddr": "127.0.0.2", "peer_udp_port": a.port,
                    "tunnel_name": "early"}},
        {"jsonrpc": "2.0", "id": 2, "method": "session.create",
         "params": {"tunnel_name": "early"}}]).encode() + b"\n"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(a.sock)
    s.sendall(batch)
    replies = json.loads(s.makefile().readline())
    s.close()
    assert [r["id"] for r in replies if "result" in r] == [1, 2], replies
    wait_for(lambda: _sessions(a) == {("laic", "established")}, what="session up")
    wait_for(lambda: _sessions(b) == {("lnic", "established")}, what="peer session up")
    assert len(a.call("session.list")) == 1 and len(b.call("session.list")) == 1


# ---------------------------------------------------------------- review findings
def test_very_long_timers_do_not_stop_the_daemon(pair):
    a, _ = pair
    # 3,000,000 s is past what select() can wait (2**31 ms): the loop caps its sleep.
    a.ctl("tunnel", "create", "dest_ipaddr=127.0.0.2", f"peer_udp_port={a.port}",
          "tunnel_name=t", "hello_timeout=3000000", "idle_timeout=2200000")
    wait_for(lambda: tunnel_state(a, "t") == "established", what="up")
    for _ in range(3):   # each call is a new connection; the crash came after one closed
        assert a.call("system.get")["num_tunnels"] == 1
    assert a.proc.poll() is None


def test_non_utf8_config_names_the_line_at_start_and_on_sighup(tmp_path):
    port = free_udp_port(("127.0.0.1",))
    conf = tmp_path / "l2tpd.conf"
    conf.write_bytes(b"system modify max_tunnels=5\n# caf\xe9\n")
    d = L2tpd(tmp_path, "127.0.0.1", port, "u", config=str(conf))
    with pytest.raises(AssertionError) as e:
        d.start()
    assert "l2tpd.conf:2: not UTF-8" in str(e.value)
    d.stop()
    conf.write_bytes(b"system modify max_tunnels=5\n")
    d = L2tpd(tmp_path, "127.0.0.1", port, "u2", config=str(conf)).start()
    try:
        conf.write_bytes(b"system modify max_tunnels=7\n# caf\xe9\n")
        d.send_signal(signal.SIGHUP)
        wait_for(lambda: "not UTF-8" in d.read_log(), what="SIGHUP error logged")
        assert d.call("system.get")["max_tunnels"] == 5
        assert d.proc.poll() is None
    finally:
        d.stop()


def test_sighup_does_not_duplicate_unnamed_objects(pair, tmp_path):
    a, b = pair
    conf = tmp_path / "unnamed.conf"
    conf.write_text(f"tunnel create dest_ipaddr=127.0.0.2 peer_udp_port={a.port}\n")
    a.call("config.restore", {"file": str(conf)})
    wait_for(lambda: [t["state"] for t in a.call("tunnel.list")] == ["established"],
             what="up")
    tid = a.call("tunnel.list")[0]["tunnel_id"]
    a.call("session.create", {"tunnel_id": tid})
    for _ in range(2):
        a.call("config.restore", {"file": str(conf)})
    assert [t["tunnel_id"] for t in a.call("tunnel.list")] == [tid]
    assert len(a.call("session.list")) == 1


def test_config_save_never_steals_a_name_and_restores_with_deny_set(pair, tmp_path):
    a, b = pair
    dest = {"dest_ipaddr": "127.0.0.2", "peer_udp_port": a.port}
    unnamed = a.call("tunnel.create", dict(dest))["tunnel_id"]
    named = a.call("tunnel.create", dict(dest, tunnel_name=f"tunnel{unnamed}"))["tunnel_id"]
    a.call("system.modify", {"deny_local_tunnel_creates": True})
    conf = str(tmp_path / "saved.conf")
    a.call("config.save", {"file": conf})
    assert os.stat(conf).st_mode & 0o777 == 0o600          # secrets may be in it
    assert a.call("tunnel.get", {"tunnel_name": f"tunnel{unnamed}"})["tunnel_id"] == named
    names = sorted(t["tunnel_name"] for t in a.call("tunnel.list"))
    assert len(set(names)) == 2
    a.stop()
    a.config = conf
    a.start()   # the deny flag is applied after the file's own tunnels
    assert sorted(t["tunnel_name"] for t in a.call("tunnel.list")) == names
    assert a.call("system.get")["deny_local_tunnel_creates"] is True


def test_profiles_in_use_and_inconsistent_profiles_are_refused(pair):
    a, _ = pair
    a.call("tunnel_profile.create", {"profile_name": "tp", "secret": "x"})
    a.call("tunnel.create", {"dest_ipaddr": "127.0.0.2", "peer_udp_port": a.port,
                             "profile_name": "tp"})
    with pytest.raises(rpc_unix.RpcError) as e:
        a.call("tunnel_profile.delete", {"profile_name": "tp"})
    assert e.value.code == rpc_unix.ERR_PROFILE_IN_USE and "tunnel" in e.value.message
    a.call("tunnel_profile.modify", {"profile_name": "tp", "hide_avps": True})  # has secret
    with pytest.raises(rpc_unix.RpcError) as e:
        a.call("tunnel_profile.modify", {"profile_name": "default", "auth_mode": "challenge"})
    assert "secret" in e.value.message
    with pytest.raises(rpc_unix.RpcError) as e:
        a.call("tunnel.create", {"dest_ipaddr": "127.0.0.2", "tunnel_name": ""})
    assert e.value.data["param"] == "tunnel_name"


def test_idle_timeout_set_later_with_modify(pair):
    a, _ = pair
    a.call("tunnel.create", {"dest_ipaddr": "127.0.0.2", "peer_udp_port": a.port,
                             "tunnel_name": "i"})
    wait_for(lambda: tunnel_state(a, "i") == "established", what="up")
    a.call("tunnel.modify", {"tunnel_name": "i", "idle_timeout": 1})
    wait_for(lambda: tunnel_state(a, "i") == "closing", timeout=5, what="idle close")


def test_an_lns_at_max_tunnels_answers_with_stopccn(pair):
    a, b = pair
    b.call("system.modify", {"max_tunnels": 1})
    dest = {"dest_ipaddr": "127.0.0.2", "peer_udp_port": a.port}
    a.call("tunnel.create", dict(dest, tunnel_name="one"))
    wait_for(lambda: tunnel_state(a, "one") == "established", what="first up")
    a.call("tunnel.create", dict(dest, tunnel_name="two"))
    # Refused at once with a reason, not left to retransmit into silence.
    wait_for(lambda: tunnel_state(a, "two") == "closing", timeout=3, what="refused")
    r = a.call("tunnel.get", {"tunnel_name": "two"})["result"]
    assert (r["result_code"], r["error_code"]) == (2, 4) and "limit" in r["error_message"]
    assert b.call("system.get")["stats"]["too_many_tunnels"] == 1
    assert [t["state"] for t in b.call("tunnel.list")].count("established") == 1
    # The refused tunnel lingers (31 s) but does not hold the slot of a cleared one.
    a.call("tunnel.delete", {"tunnel_name": "one"})
    wait_for(lambda: all(t["state"] != "established" for t in b.call("tunnel.list")),
             what="one cleared")
    a.call("tunnel.create", dict(dest, tunnel_name="three"))
    wait_for(lambda: tunnel_state(a, "three") == "established", what="three up")


def test_a_thousand_calls_at_once_between_two_daemons(pair):
    # Both sides with hundreds of messages in flight must keep acking each other
    # (an earlier flow control withheld acks on both sides and deadlocked).
    a, b = pair
    a.call("tunnel.create", {"dest_ipaddr": "127.0.0.2", "peer_udp_port": b.port,
                             "tunnel_name": "t"})
    wait_for(lambda: tunnel_state(a, "t") == "established", 10, "up")
    # Two JSON-RPC batches of 500: 1000 ICRQs queued in two loop passes.
    import json
    import socket
    for batch in range(2):
        reqs = [{"jsonrpc": "2.0", "id": batch * 500 + i, "method": "session.create",
                 "params": {"tunnel_name": "t"}} for i in range(500)]
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
            c.settimeout(30)
            c.connect(a.sock)
            c.sendall(json.dumps(reqs).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = c.recv(1 << 20)
                assert chunk, "the daemon closed the connection"
                buf += chunk
        assert all("result" in r for r in json.loads(buf)), buf[:300]
    wait_for(lambda: sum(s["state"] == "established" for s in b.call("session.list"))
             == 1000, 60, "1000 calls up on the LNS")
    assert sum(s["state"] == "established" for s in a.call("session.list")) == 1000
