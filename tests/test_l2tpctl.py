"""l2tpctl.py: the command line (as a subprocess), output formatting, help (with and
without a daemon), completion, the history, and the interactive shell driven through a pty.

The daemon is a stub: a real RpcServer in a thread (test_rpc_unix.Loop) with a handler
that knows a small rpc.describe schema and a few objects. Offline help and completion use
the shipped l2tpctl-schema.json, which must equal l2tpd.describe_schema(). Every wait is
bounded; nothing depends on the wall clock.
"""
import json
import os
import pty
import re
import select
import signal
import stat
import subprocess
import sys
import time

import pytest

import l2tpctl
import rpc_unix
from rpc_unix import RpcError
from test_rpc_unix import WAIT, Loop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
L2TPCTL = os.path.join(ROOT, "l2tpctl.py")
ABSENT = "/nonexistent/l2tpd.sock"
PROMPT_TEXT = "l2tpctl> "  # no daemon: offline help, completion, errors

P_NAME = {"type": "str", "help": "Administrative name of the tunnel"}
SCHEMA = {
    "tunnel.create": {"help": "Create a tunnel to a peer", "params": {
        "dest_ipaddr": {"type": "ipaddr", "help": "Peer IP address", "required": True},
        "tunnel_name": P_NAME,
        "profile_name": {"type": "str", "help": "Tunnel profile"},
        "secret": {"type": "str", "help": "Shared secret"},
        "hide_avps": {"type": "bool", "help": "Hide AVPs (needs secret)", "default": False},
        "auth_mode": {"type": "enum", "help": "Tunnel authentication",
                      "choices": ["none", "simple", "challenge"], "default": "none"},
        "trace_flags": {"type": "flags", "help": "Trace", "choices": ["protocol", "fsm"]},
        "max_retries": {"type": "int", "help": "Retries", "min": 0, "max": 1000,
                        "default": 5},
    }},
    "tunnel.get": {"help": "Show a tunnel", "params": {"tunnel_name": P_NAME,
                                                      "tunnel_id": {"type": "int"}}},
    "tunnel.list": {"help": "List tunnels", "params": {
        "local_only": {"type": "bool", "help": "Only locally created tunnels"},
        "remote_only": {"type": "bool", "help": "Only tunnels created by peers"}}},
    "tunnel.delete": {"help": "Delete a tunnel", "params": {"tunnel_name": P_NAME}},
    "tunnel_profile.modify": {"help": "Modify a tunnel profile", "params": {
        "profile_name": {"type": "str", "required": True},
        "hello_timeout": {"type": "int", "help": "HELLO interval (s), 0 disables"}}},
    "tunnel_profile.list": {"help": "List tunnel profiles", "params": {}},
    "session.create": {"help": "Create a session", "params": {
        "tunnel_name": P_NAME, "session_name": {"type": "str"},
        "profile_name": {"type": "str", "help": "Session profile"},
        "user_password": {"type": "str", "help": "PPP password"}}},
    "session.get": {"help": "Show a session", "params": {
        "tunnel_name": P_NAME, "session_name": {"type": "str"}}},
    "session.list": {"help": "List sessions", "params": {
        "tunnel_name": P_NAME, "remote_only": {"type": "bool"}}},
    "session_profile.list": {"help": "List session profiles", "params": {}},
    "peer_profile.list": {"help": "List peer profiles", "params": {}},
    "ippool.list": {"help": "List IP pools", "params": {}},
    "system.get": {"help": "Show the system", "params": {}},
    "config.save": {"help": "Save the configuration", "params": {"file": {"type": "str"}}},
    "events.subscribe": {"help": "Stream events", "params": {}},
}

TUNNEL = {"tunnel_id": 4964, "tunnel_name": "t1", "state": "established",
          "peer_tunnel_id": 77, "hide_avps": True,
          "peer": {"host_name": "lns", "rx_window_size": 4},
          "stats": {"retransmits": 0, "tx_hellos": 3}}
SESSION = {"tunnel_id": 4964, "session_id": 54933, "session_name": "s1",
           "state": "established", "peer_session_id": 9, "stats": {"data_rx_packets": 12},
           "ppp": {"state": "opened", "user_name": "alice", "peer_ip": "10.9.0.2"}}
EVENT_TIME = 1772366400.123  # 2026-03-01T12:00:00.123Z
SEEN = []  # (method, params) the stub received, in order


def handler(method, params, conn):
    SEEN.append((method, params))
    if method == "rpc.describe":
        return SCHEMA
    if method not in SCHEMA:
        raise RpcError(rpc_unix.ERR_METHOD_NOT_FOUND, f"method not found: {method}")
    params = rpc_unix.coerce_params(method, params, SCHEMA[method]["params"])
    name = params.get("tunnel_name", "t1")
    if name != "t1" and method != "tunnel.create":
        raise RpcError.param(rpc_unix.ERR_TUNNEL_NOT_FOUND, "tunnel_name",
                             f"no tunnel named {name!r}", name)
    if method == "tunnel.create":
        return {"tunnel_id": 4964, "tunnel_name": params.get("tunnel_name")}
    if method == "tunnel.get":
        return TUNNEL
    if method == "tunnel.list":
        if params.get("remote_only"):
            return []
        return [TUNNEL, {"tunnel_id": 5, "tunnel_name": "other", "state": "wait-ctl-reply",
                         "peer_tunnel_id": 0}]
    if method == "session.create":
        return {"tunnel_id": 4964, "session_id": 54933}
    if method == "session.get":
        return SESSION
    if method == "session.list":
        return [] if params.get("remote_only") else [SESSION]
    if method == "tunnel_profile.list":
        return ["default", "fast"]
    if method == "session_profile.list":
        return ["default", "slow"]
    if method == "ippool.list":
        return [{"pool_name": "pool1", "num_addrs": 5, "num_avail": 5}]
    if method == "config.save":
        return {"file": "/etc/l2tpd/" + params["file"], "lines": 12}
    if method == "system.get":
        return {"data_path": "null", "num_tunnels": 1, "max_tunnels": 0,
                "stats": {"auth_fails": 0, "illegal_messages": 2}}
    if method == "peer_profile.list":
        return []
    if method == "events.subscribe":
        conn.subscribed = True
        conn.server.notify(conn, "event", {"event": "tunnel_up", "time": EVENT_TIME,
                                           "tunnel_id": 4964})
        conn.server.notify(conn, "event", {"event": "session_up", "tunnel_id": 4964,
                                           "session_id": 54933, "user": "a b"})
        return {"subscribed": "all"}
    return None


@pytest.fixture
def daemon(tmp_path):
    loop = Loop()
    path = str(tmp_path / "l2tpd.sock")
    loop.servers.append(rpc_unix.RpcServer(path, handler, loop.watch, log=loop.log.append))
    loop.start()
    SEEN.clear()
    yield path
    loop.stop()


def ctl(*args, path=None, stdin=None, timeout=20, env=None):
    """Run l2tpctl as a user would; returns (exit status, stdout, stderr)."""
    base = {k: v for k, v in os.environ.items() if k not in ("L2TPD_SOCKET", "COLUMNS")}
    argv = [sys.executable, L2TPCTL] + (["-s", path] if path else []) + list(args)
    p = subprocess.run(argv, input=stdin or "", capture_output=True, text=True,
                       timeout=timeout, env=dict(base, **(env or {})))
    return p.returncode, p.stdout, p.stderr


def error_json(err):
    """The one JSON object of a --json error on stderr."""
    assert err.endswith("\n") and err.count("\n") == 1, err
    return json.loads(err)


# --- Command mode ------------------------------------------------------------------------

def test_create_commands_print_one_line(daemon):
    assert ctl("tunnel", "create", "dest_ipaddr=127.0.0.2", "tunnel_name=t1", "secret=x",
               "hide_avps=yes", path=daemon) == (0, "Created tunnel 4964\n", "")
    # Values travel as strings exactly as typed; the daemon coerces them.
    assert SEEN[-1] == ("tunnel.create", {"dest_ipaddr": "127.0.0.2", "tunnel_name": "t1",
                                          "secret": "x", "hide_avps": "yes"})
    assert ctl("session", "create", "tunnel_name=t1", "session_name=s1", path=daemon) == (
        0, "Created session 4964/54933\n", "")
    assert ctl("tunnel", "profile", "modify", "profile_name=default", "hello_timeout=30",
               path=daemon) == (0, "Modified tunnel profile default\n", "")
    assert SEEN[-1] == ("tunnel_profile.modify", {"profile_name": "default",
                                                  "hello_timeout": "30"})
    assert ctl("tunnel", "delete", "tunnel_name=t1", path=daemon) == (
        0, "Deleted tunnel t1\n", "")


def test_show_human_and_json(daemon):
    rc, out, err = ctl("tunnel", "show", "tunnel_name=t1", path=daemon)
    assert (rc, err) == (0, "")
    assert out.splitlines() == [  # ids, names, state, peer first; nested blocks last
        "tunnel_id:      4964",
        "tunnel_name:    t1",
        "state:          established",
        "peer_tunnel_id: 77",
        "hide_avps:      yes",
        "peer:",
        "  host_name:      lns",
        "  rx_window_size: 4",
        "stats:",
        "  retransmits: 0",
        "  tx_hellos:   3",
    ]
    rc, out, err = ctl("--json", "session", "show", "tunnel_name=t1", "session_name=s1",
                       path=daemon)
    assert (rc, err) == (0, "")
    assert json.loads(out) == SESSION
    assert out == json.dumps(SESSION, indent=2, sort_keys=True) + "\n"
    assert SEEN[-1] == ("session.get", {"tunnel_name": "t1", "session_name": "s1"})
    # --json and -s after the command words too.
    assert ctl("session", "show", "tunnel_name=t1", "session_name=s1", "--json", "-s",
               daemon) == (0, out, "")


def test_session_show_has_a_ppp_heading(daemon):
    rc, out, err = ctl("session", "show", "tunnel_name=t1", "session_name=s1", path=daemon)
    assert (rc, err) == (0, "")
    assert out.splitlines() == [
        "tunnel_id:       4964",
        "session_id:      54933",
        "session_name:    s1",
        "state:           established",
        "peer_session_id: 9",
        "ppp:",
        "  user_name: alice",
        "  state:     opened",
        "  peer_ip:   10.9.0.2",
        "stats:",
        "  data_rx_packets: 12",
    ]


def test_list_and_system_show(daemon):
    rc, out, err = ctl("tunnel", "list", path=daemon)
    assert (rc, err) == (0, "")
    assert out.splitlines() == [
        "tunnel_id  tunnel_name  state           peer_tunnel_id  hide_avps",
        "4964       t1           established     77              yes",
        "5          other        wait-ctl-reply  0               -",
    ]
    assert ctl("tunnel", "list", "local_only", path=daemon)[0] == 0
    assert SEEN[-1] == ("tunnel.list", {"local_only": "yes"})
    assert ctl("tunnel", "profile", "list", path=daemon) == (
        0, "profile_name\ndefault\nfast\n", "")
    assert ctl("ippool", "list", path=daemon) == (
        0, "pool_name  num_addrs  num_avail\npool1      5          5\n", "")
    rc, out, err = ctl("system", "show", path=daemon)
    assert (rc, err) == (0, "")
    assert out.splitlines() == ["data_path:   null", "max_tunnels: 0", "num_tunnels: 1",
                                "stats:", "  auth_fails:       0", "  illegal_messages: 2"]
    assert json.loads(ctl("-j", "tunnel", "list", path=daemon)[1])[0]["state"] == "established"


def test_empty_lists_say_so(daemon):
    assert ctl("peer", "profile", "list", path=daemon) == (0, "no peer profiles\n", "")
    assert ctl("tunnel", "list", "remote_only", path=daemon) == (0, "no tunnels\n", "")
    assert ctl("session", "list", "remote_only", path=daemon) == (0, "no sessions\n", "")
    assert ctl("--json", "session", "list", "remote_only", path=daemon) == (0, "[]\n", "")


def test_config_save_prints_the_daemons_path(daemon):
    assert ctl("config", "save", "file=rel.conf", path=daemon) == (
        0, "Saved /etc/l2tpd/rel.conf (12 lines)\n", "")
    assert SEEN[-1] == ("config.save", {"file": "rel.conf"})
    assert json.loads(ctl("config", "save", "file=rel.conf", "--json", path=daemon)[1]) == {
        "file": "/etc/l2tpd/rel.conf", "lines": 12}


def test_errors_exit_1_with_one_line(daemon, tmp_path):
    assert ctl("tunnel", "show", "tunnel_name=x", path=daemon) == (
        1, "", "l2tpctl: error 520: tunnel_name: no tunnel named 'x'\n")
    assert ctl("tunnel", "create", "dest_ipaddr=300.1.1.1", path=daemon) == (
        1, "", "l2tpctl: error 541: dest_ipaddr: expected an IPv4 address, got '300.1.1.1'\n")
    assert ctl("tunnel", "create", "tunnel_name=a", path=daemon) == (
        1, "", "l2tpctl: error 542: dest_ipaddr: required by tunnel create\n")
    absent = str(tmp_path / "absent.sock")
    assert ctl("tunnel", "list", path=absent) == (
        1, "", f"l2tpctl: cannot connect to l2tpd at {absent}: No such file or directory "
               "(is l2tpd running?)\n")


def test_unknown_commands_in_the_users_words(daemon):
    # The daemon does not know the method: the user reads the words they typed and
    # the nearest commands the daemon's rpc.describe has, never a JSON-RPC method name.
    assert ctl("tunnl", "list", path=daemon) == (
        2, "", "l2tpctl: unknown command 'tunnl list' (did you mean 'tunnel list'?)\n")
    assert SEEN[-2:] == [("tunnl.list", {}), ("rpc.describe", {})]
    assert ctl("tunnel", "lst", path=daemon) == (
        2, "", "l2tpctl: unknown command 'tunnel lst' (did you mean 'tunnel list'?)\n")
    assert ctl("tunnel", "frob", path=daemon) == (
        2, "", "l2tpctl: unknown command 'tunnel frob' (tunnel verbs: create, delete, list, "
               "show)\n")
    assert ctl("widget", "frob", path=daemon) == (
        2, "", "l2tpctl: unknown command 'widget frob' ('help' lists the commands)\n")
    # No daemon: the same from l2tpctl-schema.json.
    assert ctl("tunnl", "list", path=ABSENT) == (
        2, "", "l2tpctl: unknown command 'tunnl list' (did you mean 'tunnel list'?)\n")
    assert ctl("sesion", "show", path=ABSENT) == (
        2, "", "l2tpctl: unknown command 'sesion show' (did you mean 'session show'?)\n")
    assert ctl("tunnel", "profile", "shwo", path=ABSENT)[2] == (
        "l2tpctl: unknown command 'tunnel profile shwo' (did you mean "
        "'tunnel profile show'?)\n")
    assert ctl("tunnl", path=ABSENT) == (  # no verb either
        2, "", "l2tpctl: unknown command 'tunnl' (did you mean 'tunnel'?)\n")
    assert ctl("help", "tunnl", path=ABSENT) == (
        2, "", "l2tpctl: unknown command 'tunnl' (did you mean 'tunnel'?)\n")
    # A known command without a daemon is a connection error, as before.
    assert ctl("tunnel", "list", path=ABSENT)[0] == 1


def test_usage_errors_exit_2(daemon):
    rc, out, err = ctl("tunnel", path=daemon)
    assert (rc, out) == (2, "")
    assert err.splitlines() == ["l2tpctl: tunnel: missing verb (create, delete, modify, "
                                "show, list, ...)", "(l2tpctl -h shows the usage)"]
    rc, out, err = ctl("--bogus", "tunnel", "list")
    assert (rc, out) == (2, "")
    assert err.startswith("l2tpctl: unknown option --bogus\nusage: l2tpctl")
    assert ctl("tunnel", "create", "a=1", "a=2", path=daemon)[0] == 2
    assert ctl("-s")[0] == 2
    rc, out, err = ctl("-h")
    assert rc == 0 and out.startswith("usage: l2tpctl [-s PATH] [--json] OBJECT")
    assert SEEN == []  # none of these reached the daemon


def test_json_errors_on_stderr(daemon, tmp_path):
    rc, out, err = ctl("--json", "tunnel", "show", "tunnel_name=x", path=daemon)
    assert (rc, out) == (1, "")
    assert error_json(err) == {"error": {
        "code": 520, "message": "tunnel_name: no tunnel named 'x'",
        "data": {"param": "tunnel_name", "value": "x"}}}
    assert ctl("tunnel", "show", "tunnel_name=x", "--json", path=daemon) == (rc, out, err)
    # Connection errors: code -1, exit status 1.
    rc, out, err = ctl("tunnel", "list", "--json", path=str(tmp_path / "absent.sock"))
    assert (rc, out) == (1, "")
    assert error_json(err)["error"]["code"] == l2tpctl.ERR_UNREACHABLE == -1
    assert "cannot connect to l2tpd" in error_json(err)["error"]["message"]
    # Usage errors: code -2, exit status 2, no usage text.
    rc, out, err = ctl("tunnel", "--json", path=daemon)
    assert (rc, out) == (2, "")
    assert error_json(err) == {"error": {"code": -2, "message": "tunnel: missing verb "
                                         "(create, delete, modify, show, list, ...)"}}
    rc, out, err = ctl("--bogus", "-j")
    assert (rc, out, error_json(err)) == (2, "", {"error": {
        "code": l2tpctl.ERR_USAGE, "message": "unknown option --bogus"}})
    # An unknown command: JSON-RPC's method not found, exit status 2.
    rc, out, err = ctl("tunnl", "list", "--json", path=ABSENT)
    assert (rc, out, error_json(err)) == (2, "", {"error": {
        "code": -32601, "message": "unknown command 'tunnl list' (did you mean "
                                   "'tunnel list'?)"}})
    # A script's errors name the file and the line.
    rc, out, err = ctl("--json", path=daemon, stdin="tunnel list\ntunnel show tunnel_name=x\n")
    assert rc == 1
    assert error_json(err) == {"error": {
        "code": 520, "message": "tunnel_name: no tunnel named 'x'",
        "data": {"param": "tunnel_name", "value": "x"}, "file": "<stdin>", "line": 2}}
    rc, out, err = ctl("-j", path=daemon, stdin="tunnel show x='open\n")
    assert (rc, error_json(err)) == (2, {"error": {
        "code": -2, "message": "unterminated ' quote", "file": "<stdin>", "line": 1}})


def test_version():
    import l2tpd  # the test may import the daemon; l2tpctl itself never does

    assert l2tpctl.VERSION == l2tpd.VERSION
    assert ctl("--version") == (0, f"l2tpctl {l2tpd.VERSION}\n", "")
    assert ctl("-V", "--json") == (0, json.dumps({"version": l2tpd.VERSION}) + "\n", "")


def test_socket_from_environment(daemon):
    env = dict(os.environ, L2TPD_SOCKET=daemon)
    p = subprocess.run([sys.executable, L2TPCTL, "system", "show"], capture_output=True,
                       text=True, timeout=20, env=env)
    assert p.returncode == 0 and "num_tunnels: 1" in p.stdout


def test_scripts_from_stdin_and_file(daemon, tmp_path):
    rc, out, err = ctl(path=daemon, stdin="tunnel show tunnel_name=t1 # comment\n"
                                          "\nsession create tunnel_name=t1 \\\n"
                                          "   session_name=s1; system show\n")
    assert (rc, err) == (0, "")
    assert "Created session 4964/54933" in out and "num_tunnels: 1" in out
    rc, out, err = ctl(path=daemon, stdin="tunnel list\ntunnel show tunnel_name=x\n"
                                          "system show\n")
    assert (rc, err) == (1, "l2tpctl: <stdin>:2: error 520: tunnel_name: no tunnel named "
                            "'x'\n")
    assert "num_tunnels" not in out  # stops at the first error
    f = tmp_path / "cmds"
    f.write_text("tunnel create dest_ipaddr=10.0.0.1 tunnel_name=t1\ntunnel show x='open\n")
    assert ctl("-f", str(f), path=daemon) == (2, "", f"l2tpctl: {f}:2: unterminated ' quote\n")
    f.write_text("tunnel create dest_ipaddr=10.0.0.1 tunnel_name=t1\n")
    assert ctl("-f", str(f), path=daemon) == (0, "Created tunnel 4964\n", "")
    # Every command name is checked before the first runs: a typo changes nothing.
    SEEN.clear()
    f.write_text("tunnel create dest_ipaddr=10.0.0.1 tunnel_name=t1\ntunnel lsit\n")
    assert ctl("-f", str(f), path=daemon) == (
        2, "", f"l2tpctl: {f}:2: unknown command 'tunnel lsit' (did you mean "
               "'tunnel list'?)\n")
    assert SEEN == [("rpc.describe", {})]


def test_help_from_describe(daemon):
    rc, out, err = ctl("help", "tunnel", "create", path=daemon)
    assert (rc, err) == (0, "")
    assert out.splitlines() == [  # required first, then by name
        "tunnel create: Create a tunnel to a peer",
        "  dest_ipaddr=A.B.C.D              Peer IP address (required)",
        "  auth_mode=none|simple|challenge  Tunnel authentication (default none)",
        "  hide_avps=yes|no                 Hide AVPs (needs secret) (default no)",
        "  max_retries=N                    Retries (0-1000) (default 5)",
        "  profile_name=TEXT                Tunnel profile",
        "  secret=TEXT                      Shared secret",
        "  trace_flags=protocol,fsm         Trace",
        "  tunnel_name=TEXT                 Administrative name of the tunnel",
    ]
    assert ctl("tunnel", "create", "?", path=daemon)[1] == out
    rc, out, err = ctl("help", path=daemon)
    assert rc == 0 and "  tunnel profile modify  Modify a tunnel profile" in out.splitlines()
    assert ctl("help", "tunnel", path=daemon)[1].splitlines()[:2] == [
        "  tunnel create          Create a tunnel to a peer",
        "  tunnel delete          Delete a tunnel"]
    rc, out, err = ctl("help", "tunnel", "create", "--json", path=daemon)
    assert (rc, json.loads(out)) == (0, {"tunnel.create": SCHEMA["tunnel.create"]})


def test_help_without_a_daemon():
    # The grammar ships with l2tpctl: help works with no daemon, and exits 0.
    rc, out, err = ctl("help", "tunnel", "create", path=ABSENT)
    assert (rc, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "tunnel create: create a tunnel to dest_ipaddr (we send SCCRQ)"
    assert any(x.startswith("  dest_ipaddr=A.B.C.D ") for x in lines)
    assert any(x.startswith("  hide_avps=yes|no ") for x in lines)
    assert ctl("tunnel", "create", "?", path=ABSENT) == (0, out, "")
    rc, out80, err = ctl("help", path=ABSENT)
    assert (rc, err) == (0, "")
    assert any(x.startswith("  tunnel profile modify ") for x in out80.splitlines())
    assert ctl("help", "ppp", "profile", "show", path=ABSENT)[0] == 0
    rc, out, _ = ctl("--json", "help", "session", "show", path=ABSENT)
    assert json.loads(out) == {"session.get": l2tpctl.load_schema()["session.get"]}
    # Wrapped to the terminal's width: $COLUMNS here, and 80 when not a terminal.
    for cols in ("80", "120"):
        out = ctl("help", path=ABSENT, env={"COLUMNS": cols})[1]
        assert max(len(x) for x in out.splitlines()) <= int(cols)
        assert (out == out80) == (cols == "80")


def test_usage_fits_80_columns():
    rc, out, err = ctl("--help")
    assert (rc, err) == (0, "") and out == l2tpctl.USAGE + "\n"
    wide = [x for x in out.splitlines() if len(x) > 80]
    assert not wide, wide


def test_help_option_after_a_command(daemon):
    # -h/--help after command words: that command's help, as `help WORDS`, exit 0.
    want = ctl("help", "tunnel", "create", path=daemon)
    assert want[0] == 0 and want[1].startswith("tunnel create: Create a tunnel to a peer")
    assert ctl("tunnel", "create", "-h", path=daemon) == want
    assert ctl("tunnel", "create", "--help", path=daemon) == want
    assert ctl("-h", "tunnel", "create", "dest_ipaddr=10.0.0.1", path=daemon) == want
    assert ctl("help", "tunnel", "create", "-h", path=daemon) == want
    assert ctl("tunnel", "-h", path=daemon) == ctl("help", "tunnel", path=daemon)
    assert not any(m == "tunnel.create" for m, _ in SEEN)  # nothing was created
    rc, out, _ = ctl("tunnel", "create", "--help", "--json", path=daemon)
    assert (rc, json.loads(out)) == (0, {"tunnel.create": SCHEMA["tunnel.create"]})
    # Without a daemon, from the schema file; an unknown command as `help` says it.
    offline = ctl("help", "session", "show", path=ABSENT)
    assert offline[0] == 0 and ctl("session", "show", "-h", path=ABSENT) == offline
    assert ctl("tunnl", "create", "-h", path=ABSENT) == (
        2, "", "l2tpctl: unknown command 'tunnl create' (did you mean 'tunnel create'?)\n")


def test_events_subscribe_streams_until_the_daemon_goes(tmp_path):
    loop = Loop()
    path = str(tmp_path / "ev.sock")
    server = rpc_unix.RpcServer(path, handler, loop.watch)
    loop.servers.append(server)
    loop.start()
    try:
        for as_json in (False, True):
            p = subprocess.Popen([sys.executable, L2TPCTL, "-s", path, "events", "subscribe"]
                                 + (["--json"] if as_json else []),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            lines = [p.stdout.readline() for _ in range(2)]
            if not as_json:  # one line per event, its ISO time first
                assert lines[0] == "2026-03-01T12:00:00.123Z tunnel_up tunnel_id=4964\n"
                assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z session_up "
                                    r"tunnel_id=4964 session_id=54933 user='a b'\n", lines[1])
                p.send_signal(signal.SIGINT)  # Ctrl-C: a clean end
                assert p.wait(WAIT) == 0
                assert p.stdout.read() == "" and p.stderr.read() == ""
            else:  # from the first line on, one compact JSON object per event
                assert lines[0] == ('{"time":"2026-03-01T12:00:00.123Z","event":"tunnel_up",'
                                    '"tunnel_id":4964}\n')
                ev = json.loads(lines[1])
                assert list(ev) == ["time", "event", "tunnel_id", "session_id", "user"]
                assert ev["event"] == "session_up" and ev["user"] == "a b"
                loop.call(server.close)  # the daemon stops: l2tpctl reports it and ends
                assert p.wait(WAIT) == 1
                assert error_json(p.stderr.read()) == {"error": {
                    "code": -1, "message": f"l2tpd at {path} closed the connection"}}
            p.stdout.close()
            p.stderr.close()
    finally:
        loop.stop()


def test_schema_file_is_the_daemons():
    import l2tpd

    with open(os.path.join(ROOT, "l2tpctl-schema.json"), encoding="utf-8") as f:
        shipped = json.load(f)
    assert shipped == l2tpd.describe_schema(), (
        "l2tpctl-schema.json differs from l2tpd.describe_schema(): run `make schema`")
    assert l2tpctl.load_schema() == shipped
    assert l2tpctl.load_schema("/nonexistent/schema.json") == {}


def test_imports_only_rpc_unix():
    code = ("import sys; sys.path.insert(0, %r); import l2tpctl; "
            "print(' '.join(sorted(sys.modules)))" % ROOT)
    mods = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=20, check=True).stdout.split())
    assert "rpc_unix" in mods
    # (selectors is not in the list: socket itself imports it on CPython 3.11.)
    forbidden = {"l2tpd", "avp", "ctrlchan", "fsm", "ppp", "kernel", "pyroute2", "readline",
                 "argparse", "threading", "subprocess", "logging", "difflib", "textwrap",
                 "shutil", "ctypes"}
    assert not mods & forbidden
    # And it runs on that alone: `-h` needs no daemon. (How fast it starts is for a
    # benchmark to measure, not for a test to assert against this machine's speed.)
    r = subprocess.run([sys.executable, L2TPCTL, "-h"], capture_output=True, text=True,
                       timeout=20, check=True, stdin=subprocess.DEVNULL)
    assert r.stdout.startswith("usage: l2tpctl") and r.stderr == "", (r.stdout, r.stderr)
    # Offline help does not load the daemon either.
    code = ("import sys; sys.path.insert(0, %r); import l2tpctl; "
            "l2tpctl.main(['-s', %r, 'help', 'tunnel', 'create']); "
            "print(' '.join(sorted(sys.modules)), file=sys.stderr)" % (ROOT, ABSENT))
    mods = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=20, check=True).stderr.split())
    assert "rpc_unix" in mods
    assert not mods & {"l2tpd", "avp", "ctrlchan", "fsm", "ppp", "kernel", "pyroute2"}


# --- Output, help and completion as functions --------------------------------------------

def test_render():
    r = l2tpctl.render
    assert r("tunnel.create", {}, {"tunnel_id": 4964}) == "Created tunnel 4964"
    assert r("session.create", {"tunnel_name": "t"}, {"session_id": 9}) == (
        "Created session t/9")
    assert r("session.delete", {"tunnel_name": "t", "session_name": "s"}, None) == (
        "Deleted session t/s")
    assert r("ppp_profile.unset", {"profile_name": "p", "mtu": "yes"}, None) == (
        "Modified ppp profile p")
    assert r("system.modify", {"max_tunnels": "3"}, None) == "Modified system"
    assert r("tunnel.get", {}, None) == ""
    assert r("tunnel.list", {}, []) == "no tunnels"
    assert r("session.list", {}, []) == "no sessions"
    assert r("user.list", {}, []) == "no users"
    assert r("peer.list", {}, []) == "no peers"
    assert r("ippool.list", {}, []) == "no IP pools"
    assert r("tunnel_profile.list", {}, []) == "no tunnel profiles"
    assert r("ppp_profile.list", {}, ["default"]) == "profile_name\ndefault"
    assert r("tunnel.list", {}, [1, 2]) == "1\n2"
    assert r("user.list", {}, [{"user_name": "u", "tunnel_id": 1, "x": {"n": 1},
                                "peer_addr": "192.0.2.1", "session_id": 7}]) == (
        "tunnel_id  session_id  user_name  peer_addr\n"
        "1          7           u          192.0.2.1")
    assert r("peer.list", {}, [{"num_tunnels": 1, "local_addr": "a", "peer_addr": "b"}]) == (
        "peer_addr  local_addr  num_tunnels\nb          a           1")
    assert r("x.get", {}, {"list": [1, "a"], "none": None, "empty": [], "f": False}) == (
        "empty: -\nf:     no\nlist:  1, a\nnone:  -")
    assert r("x.get", {}, "text") == "text"
    assert r("config.save", {"file": "rel.conf"}, {"file": "/etc/l2tpd/rel.conf",
                                                   "lines": 1}) == (
        "Saved /etc/l2tpd/rel.conf (1 line)")
    assert r("config.restore", {"file": "a"}, {"file": "/etc/l2tpd/a", "commands": 4}) == (
        "Restored /etc/l2tpd/a (4 commands)")
    assert r("ippool.add_block", {"pool_name": "p", "first_addr": "10.0.0.1",
                                  "num_addrs": "5"}, {"pool_name": "p"}) == (
        "Added 10.0.0.1 (5 addresses) to ippool p")
    # Peer capabilities print as the daemon gives them (words, lists).
    assert r("tunnel.get", {}, {"tunnel_id": 1, "peer": {
        "framing_caps": ["sync", "async"], "bearer_caps": "analog"}}) == (
        "tunnel_id: 1\npeer:\n  bearer_caps:  analog\n  framing_caps: sync, async")


def test_render_event():
    e = l2tpctl.render_event
    assert e("event", {"event": "tunnel_up", "time": EVENT_TIME, "tunnel_id": 1,
                       "tunnel_name": None, "peer": {"a": 1}}, False) == (
        '2026-03-01T12:00:00.123Z tunnel_up tunnel_id=1 peer={"a":1}')
    assert e("event", {"event": "x", "a": 1}, True, now=0) == (
        '{"time":"1970-01-01T00:00:00.000Z","event":"x","a":1}')
    assert e("other", {"a": "b c"}, False, now=0.5) == "1970-01-01T00:00:00.500Z other a='b c'"
    assert l2tpctl.iso_time(EVENT_TIME) == "2026-03-01T12:00:00.123Z"


def test_completions():
    c = l2tpctl.completions
    assert c(SCHEMA, "", "") == ["config ", "events ", "ippool ", "peer ", "session ",
                                 "system ", "tunnel ", "help ", "quit ", "exit "]
    assert c(SCHEMA, "", "tu") == ["tunnel "]
    assert c(SCHEMA, "tunnel ", "") == ["create ", "delete ", "list ", "show ", "profile "]
    assert c(SCHEMA, "tunnel ", "pr") == ["profile "]
    assert c(SCHEMA, "tunnel profile ", "") == ["list ", "modify "]
    assert c(SCHEMA, "peer ", "") == ["profile "]  # only profile methods exist for peer
    assert c(SCHEMA, "tunnel create ", "") == [
        "auth_mode=", "dest_ipaddr=", "hide_avps=", "max_retries=", "profile_name=",
        "secret=", "trace_flags=", "tunnel_name="]
    assert c(SCHEMA, "tunnel create dest_ipaddr=1.2.3.4 ", "d") == []  # already given
    assert c(SCHEMA, "tunnel create ", "auth_mode=c") == ["auth_mode=challenge "]
    assert c(SCHEMA, "tunnel create ", "hide_avps=") == ["hide_avps=yes ", "hide_avps=no "]
    assert c(SCHEMA, "tunnel create ", "trace_flags=") == [
        "trace_flags=protocol", "trace_flags=fsm"]
    assert c(SCHEMA, "tunnel create ", "trace_flags=fsm,") == ["trace_flags=fsm,protocol"]
    assert c(SCHEMA, "tunnel profile modify ", "he") == ["hello_timeout="]
    assert c(SCHEMA, "help ", "s") == ["session ", "system "]
    assert c(SCHEMA, "help tunnel ", "cr") == ["create "]
    assert c(SCHEMA, "bogus ", "") == []
    assert c(SCHEMA, "tunnel bogus ", "") == []
    assert c({}, "", "") == ["help ", "quit ", "exit "]


def test_completion_of_existing_names():
    asked = []

    def lookup(method, params):
        asked.append((method, params))
        return handler(method, params, None)

    c = l2tpctl.completions
    assert c(SCHEMA, "tunnel show ", "tunnel_name=", lookup) == [
        "tunnel_name=other ", "tunnel_name=t1 "]
    assert c(SCHEMA, "tunnel show ", "tunnel_name=o", lookup) == ["tunnel_name=other "]
    assert c(SCHEMA, "tunnel show ", "tunnel_id=", lookup) == [
        "tunnel_id=4964 ", "tunnel_id=5 "]
    assert asked[-1] == ("tunnel.list", {})
    # Sessions of the tunnel named on the line.
    assert c(SCHEMA, "session show tunnel_name=t1 ", "session_name=", lookup) == [
        "session_name=s1 "]
    assert asked[-1] == ("session.list", {"tunnel_name": "t1"})
    # profile_name= offers the profiles of the command's kind.
    assert c(SCHEMA, "tunnel profile modify ", "profile_name=", lookup) == [
        "profile_name=default ", "profile_name=fast "]
    assert asked[-1] == ("tunnel_profile.list", {})
    assert c(SCHEMA, "tunnel create ", "profile_name=f", lookup) == ["profile_name=fast "]
    assert c(SCHEMA, "session create ", "profile_name=", lookup) == [
        "profile_name=default ", "profile_name=slow "]
    assert asked[-1] == ("session_profile.list", {})
    # Not the names of existing objects for the one being created; nothing for values
    # no list knows; nothing (and no error) when the daemon does not answer.
    n = len(asked)
    assert c(SCHEMA, "tunnel create ", "tunnel_name=", lookup) == []
    assert c(SCHEMA, "tunnel create ", "secret=", lookup) == []
    assert len(asked) == n
    assert c(SCHEMA, "tunnel show ", "tunnel_name=", lambda m, p: None) == []
    assert c(SCHEMA, "tunnel show ", "tunnel_name=") == []  # no lookup at all
    src = l2tpctl.name_source
    schema = l2tpctl.load_schema()
    assert src(schema, "ppp_profile.create", "ip_pool_name") == ("ippool.list", "pool_name")
    assert src(schema, "ippool.delete", "pool_name") == ("ippool.list", "pool_name")
    assert src(schema, "peer_profile.create", "tunnel_profile_name") == (
        "tunnel_profile.list", "profile_name")
    assert src(schema, "session.create", "profile_name") == (
        "session_profile.list", "profile_name")
    assert src(schema, "ppp_profile.create", "profile_name") is None


def test_help_text_edges():
    h = l2tpctl.help_text
    with pytest.raises(l2tpctl.UnknownCommand) as e:
        h(SCHEMA, ["bogus"])
    assert str(e.value) == "unknown command 'bogus' ('help' lists the commands)"
    with pytest.raises(l2tpctl.UnknownCommand) as e:
        h(SCHEMA, ["tunnel", "frob"])
    assert str(e.value) == ("unknown command 'tunnel frob' (tunnel verbs: create, delete, "
                            "list, show)")
    assert h(SCHEMA, ["system", "show", "x=1"]) == "system show: Show the system\n  (no parameters)"
    assert h(SCHEMA, ["tunnel", "get"]) == h(SCHEMA, ["tunnel", "show"])
    assert h({}, []).startswith("The command list is unavailable")
    assert l2tpctl.context_help(SCHEMA, "tunnel create ", "auth_mode=") == (
        "  auth_mode=none|simple|challenge  Tunnel authentication (default none)")
    assert l2tpctl.context_help(SCHEMA, "tunnel ", "create").startswith("tunnel create: ")
    assert l2tpctl.context_help(SCHEMA, "tunnl ", "") == (
        "unknown command 'tunnl' (did you mean 'tunnel'?)")


def test_help_fits_80_and_120_columns():
    schema = l2tpctl.load_schema()
    topics = [[]] + [rpc_unix.command_words(m) for m in schema] + [["tunnel"], ["ppp"]]
    for width in (80, 120):
        for words in topics:
            for line in l2tpctl.help_text(schema, words, width).splitlines():
                assert len(line) <= width, (width, words, line)
    narrow = l2tpctl.help_text(schema, ["tunnel", "create"], 80).splitlines()
    wide = l2tpctl.help_text(schema, ["tunnel", "create"], 120).splitlines()
    assert len(wide) < len(narrow)  # the wider terminal is used


def test_mask_secrets():
    def m(line):
        return l2tpctl.mask_secrets(line, SCHEMA)

    assert m("tunnel create dest_ipaddr=10.0.0.1 secret=hush") == (
        "tunnel create dest_ipaddr=10.0.0.1 secret=<hidden>")
    assert m("session create user_password='a b' proxy_auth_response=0a0b; system show") == (
        "session create user_password=<hidden> proxy_auth_response=<hidden>; system show")
    assert m('x y radius_secret="q\\" r" db_password=\'open') == (
        "x y radius_secret=<hidden> db_password=<hidden>")
    assert m("tunnel create 'sec'ret=s3 secret tunnel_name=secret") == (
        "tunnel create 'sec'ret=<hidden> secret tunnel_name=secret")
    assert m("tunnel list") == "tunnel list"
    # A name that is not a parameter of that command (a misspelling) is hidden, and a
    # secret's name in any case.
    assert m("tunnel profile modify profile_name=zz secert=hunter2") == (
        "tunnel profile modify profile_name=zz secert=<hidden>")
    assert m("tunnel create dest_ipaddr=10.0.0.1 SECRET=hunter2 Tunnel_Name=t") == (
        "tunnel create dest_ipaddr=10.0.0.1 SECRET=<hidden> Tunnel_Name=<hidden>")
    assert m("session create tunnel_name=t1 user_pasword='a b' ; tunnel get  tunnel_name=t1"
             " tunnel_nmae=x") == ("session create tunnel_name=t1 user_pasword=<hidden> ; "
                                   "tunnel get  tunnel_name=t1 tunnel_nmae=<hidden>")
    # The command as rpc_unix reads it: "show" is get, "profile" makes a profile object.
    assert m("tunnel show tunnel_name=t1 hello_timeout=3") == (
        "tunnel show tunnel_name=t1 hello_timeout=<hidden>")
    assert m("tunnel profile modify hello_timeout=3 local_only") == (
        "tunnel profile modify hello_timeout=3 local_only")
    # An unknown command, or no schema at all: no parameter is known.
    assert m("tunnl create tunnel_name=t1") == "tunnl create tunnel_name=<hidden>"
    assert l2tpctl.mask_secrets("tunnel create dest_ipaddr=1.2.3.4", {}) == (
        "tunnel create dest_ipaddr=<hidden>")
    assert l2tpctl.is_secret("User_PassWord") and l2tpctl.is_secret("RADIUS_SECRET")
    assert l2tpctl.hides(SCHEMA, "tunnel.create", "secert")
    assert not l2tpctl.hides(SCHEMA, "tunnel.create", "tunnel_name")


# --- The interactive shell ---------------------------------------------------------------

class Pty:
    """l2tpctl on a pseudo-terminal, with bounded reads."""

    def __init__(self, argv, env):
        master, slave = pty.openpty()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     start_new_session=True)
        os.close(slave)
        self.fd = master
        self.seen = ""

    def read(self, timeout):
        """One read, carriage returns dropped; None if nothing came in time, False at the
        end (EIO: the child closed the terminal)."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return None
        try:
            data = os.read(self.fd, 4096)
        except OSError:
            data = b""
        return data.decode(errors="replace").replace("\r", "") if data else False

    def expect(self, text, timeout=WAIT):
        """Read until `text` has appeared since the last expect; returns what came."""
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, f"timed out waiting for {text!r}; got {self.seen!r}"
            data = self.read(left)
            assert data is not False, (
                f"l2tpctl ended while waiting for {text!r}; got {self.seen!r}")
            self.seen += data or ""
        got, _, self.seen = self.seen.partition(text)
        return got + text

    def rest(self, timeout=WAIT):
        """Everything until l2tpctl closes the terminal."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"l2tpctl did not end; got {self.seen!r}"
            data = self.read(left)
            if data is False:
                got, self.seen = self.seen, ""
                return got
            self.seen += data or ""

    def send(self, text):
        os.write(self.fd, text.encode())

    def interrupt(self):
        """SIGINT, as Ctrl-C sends, until the prompt comes back; returns what came. (The
        readline loop only sees a signal that lands while it waits for input, so one may
        be missed; more than one may then each give a prompt.)"""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            self.proc.send_signal(signal.SIGINT)
            try:
                return self.expect(PROMPT_TEXT, timeout=0.5)
            except AssertionError:
                continue
        return self.expect(PROMPT_TEXT, timeout=0)

    def close(self):
        if self.proc.poll() is None:  # a failed test left it at the prompt
            self.proc.kill()
        self.proc.wait(WAIT)
        os.close(self.fd)


def shell_env(tmp_path, hist):
    env = dict(os.environ, L2TPCTL_HISTFILE=str(hist), TERM="dumb", INPUTRC="/dev/null",
               HOME=str(tmp_path))
    env.pop("L2TPD_SOCKET", None)
    env.pop("COLUMNS", None)
    return env


def test_shell_completion_help_and_history(daemon, tmp_path):
    hist = tmp_path / "history"
    sh = Pty([sys.executable, L2TPCTL, "-s", daemon], shell_env(tmp_path, hist))
    try:
        sh.expect("quit leaves")
        sh.expect("l2tpctl> ")
        sh.send("tun\t")  # object name
        sh.expect("tunnel ")
        sh.send("li\t")  # verb
        sh.expect("list ")
        sh.send("\r")
        out = sh.expect("l2tpctl> ")
        assert "tunnel_id  tunnel_name" in out and "wait-ctl-reply" in out
        sh.send("tunnel create dest_i\t")  # parameter name, as name=
        sh.expect("dest_ipaddr=")
        sh.send("10.0.0.1 auth_mode=ch\t")  # enum value
        sh.expect("auth_mode=challenge ")
        sh.send("secret=hush\r")
        assert "Created tunnel 4964" in sh.expect("l2tpctl> ")
        assert SEEN[-1] == ("tunnel.create", {"dest_ipaddr": "10.0.0.1",
                                              "auth_mode": "challenge", "secret": "hush"})
        sh.send("tunnel show tunnel_name=t\t")  # a name that exists in the daemon
        sh.expect("tunnel_name=t1 ")
        sh.send("\r")
        assert "tunnel_id:      4964" in sh.expect("l2tpctl> ")
        assert ("tunnel.list", {}) in SEEN
        # The ? key: help at once, then the line as it was, to go on typing.
        sh.send("tunnel profile modify ?")
        out = sh.expect("l2tpctl> tunnel profile modify ")
        assert "  hello_timeout=N    HELLO interval (s), 0 disables" in out
        sh.send("profile_name=default hello_timeout=30\r")
        assert "Modified tunnel profile default" in sh.expect("l2tpctl> ")
        assert SEEN[-1] == ("tunnel_profile.modify", {"profile_name": "default",
                                                      "hello_timeout": "30"})
        sh.send("?")  # on an empty line: the command list
        out = sh.expect("l2tpctl> ")
        assert "tunnel profile modify  Modify a tunnel profile" in out
        sh.send("tunnel create auth_mode=?")  # one parameter
        out = sh.expect("l2tpctl> tunnel create auth_mode=")
        assert "auth_mode=none|simple|challenge  Tunnel authentication (default none)" in out
        sh.send("\x15")  # Ctrl-U: drop the line
        # A typed ? (Ctrl-V ?) and Enter: the help, then the line offered again.
        sh.send("session show \x16?\r")
        sh.expect("session show: Show a session")
        sh.expect("l2tpctl> session show ")
        sh.send("tunnel_name=nope\r")
        assert "error 520: tunnel_name: no tunnel named 'nope'" in sh.expect("l2tpctl> ")
        sh.send("tunnl list\r")
        assert ("error: unknown command 'tunnl list' (did you mean 'tunnel list'?)"
                in sh.expect("l2tpctl> "))
        # A misspelt secret parameter: the daemon refuses it, the history file hides it.
        sh.send("tunnel profile modify profile_name=zz secert=hunter2 SECRET=hunter3\r")
        assert "secert: unknown parameter" in sh.expect("l2tpctl> ")
        # A line with a secret the history file hides is refused, not sent.
        n = len(SEEN)
        sh.send("tunnel profile modify profile_name=zz secert=<hidden>\r")
        assert ("error: secert: the history hides this value; type it again"
                in sh.expect("l2tpctl> "))
        sh.send("tunnel create dest_ipaddr=10.0.0.1 secret=<hidden>\r")
        assert ("error: secret: the history hides this value; type it again"
                in sh.expect("l2tpctl> "))
        assert len(SEEN) == n
        sh.send("quit\r")
        assert sh.proc.wait(WAIT) == 0
    finally:
        sh.close()
    text = hist.read_text()
    lines = text.splitlines()
    assert "tunnel list " in lines or "tunnel list" in lines
    assert "profile_name=default hello_timeout=30" not in lines  # the whole line is kept
    assert "tunnel profile modify profile_name=default hello_timeout=30" in lines
    # The secret is not in the file; the rest of its line is.
    assert "hush" not in text
    assert ("tunnel create dest_ipaddr=10.0.0.1 auth_mode=challenge secret=<hidden>"
            in lines)
    assert "hunter" not in text
    assert "tunnel profile modify profile_name=zz secert=<hidden> SECRET=<hidden>" in lines
    assert stat.S_IMODE(os.stat(hist).st_mode) == 0o600
    assert SEEN.count(("rpc.describe", {})) == 1  # fetched once per session


def test_shell_without_daemon(tmp_path):
    hist = tmp_path / "h"
    hist.write_text("tunnel create dest_ipaddr=10.0.0.1 secret=<hidden>\n")
    sh = Pty([sys.executable, L2TPCTL, "-s", str(tmp_path / "none.sock")],
             shell_env(tmp_path, hist))
    try:
        sh.expect("l2tpctl> ")
        sh.send("system show\r")
        assert "cannot connect to l2tpd at" in sh.expect("l2tpctl> ")
        sh.send("tunnel\r")
        assert "error: tunnel: missing verb" in sh.expect("l2tpctl> ")
        # The grammar is l2tpctl's own: completion and ? help work with no daemon, and
        # names of existing objects are silently not offered.
        sh.send("tun\t")
        sh.expect("tunnel ")
        sh.send("create ?")
        out = sh.expect("l2tpctl> tunnel create ")
        assert "tunnel create: create a tunnel to dest_ipaddr" in out
        sh.send("\x15tunnel show tunnel_name=\t?")
        out = sh.expect("tunnel_name=TEXT")
        assert "cannot connect" not in out
        sh.expect("l2tpctl> tunnel show tunnel_name=")
        sh.send("\x15tunnl list\r")  # (Ctrl-U first: the line redrawn, a prompt)
        sh.expect("error: unknown command 'tunnl list' (did you mean 'tunnel list'?)")
        sh.expect("l2tpctl> ")
        # A line from the history whose secret it hides is refused, not sent.
        sh.send("tunnel create dest_ipaddr=10.0.0.1 secret=<hidden>\r")
        assert ("error: secret: the history hides this value; type it again"
                in sh.expect("l2tpctl> "))
        # Ctrl-C abandons the line on a clean new one.
        sh.send("tunn")
        sh.expect("tunn")
        assert re.fullmatch(r"(\nl2tpctl> )+", sh.interrupt())
        sh.send("system show\r")  # the abandoned "tunn" is gone
        assert sh.expect("l2tpctl> ").startswith("system show\ncannot connect")
        sh.send("\x04")  # Ctrl-D leaves, ending the line first
        assert sh.rest() == "\n"
        assert sh.proc.wait(WAIT) == 0
    finally:
        sh.close()
    assert "system show" in hist.read_text()


def names_handler(method, params, conn):
    """A daemon with tunnels gamma and delta, sessions s-g1 and s-g2 in gamma."""
    SEEN.append((method, params))
    if method == "rpc.describe":
        return SCHEMA
    if method == "tunnel.list":
        return [{"tunnel_id": 1, "tunnel_name": "gamma"}, {"tunnel_id": 2, "tunnel_name": "delta"}]
    if method == "session.list":
        if params.get("tunnel_name") != "gamma":
            return []
        return [{"tunnel_id": 1, "session_id": 11, "session_name": "s-g1"},
                {"tunnel_id": 1, "session_id": 12, "session_name": "s-g2"}]
    if method == "session.get":
        return {"tunnel_id": 1, "session_id": 11, "session_name": params["session_name"]}
    raise RpcError(rpc_unix.ERR_METHOD_NOT_FOUND, f"method not found: {method}")


def test_shell_double_tab_lists_names_and_question_mark_helps(tmp_path):
    """Double TAB lists the candidates (readline calls that completion type '?' too); only
    the ? key shows help."""
    loop = Loop()
    path = str(tmp_path / "l2tpd.sock")
    loop.servers.append(rpc_unix.RpcServer(path, names_handler, loop.watch,
                                           log=loop.log.append))
    loop.start()
    sh = Pty([sys.executable, L2TPCTL, "-s", path], shell_env(tmp_path, tmp_path / "h"))
    try:
        sh.expect("l2tpctl> ")
        sh.send("tunnel show tunnel_name=\t\t")
        out = sh.expect("l2tpctl> tunnel show tunnel_name=")
        assert "tunnel_name=gamma" in out and "tunnel_name=delta" in out, out
        assert "TEXT" not in out and "Administrative name" not in out, out
        sh.send("\x15session show tunnel_name=gamma session_name=s-g\t\t")
        out = sh.expect("s-g2")
        assert "session_name=s-g1" in out and "TEXT" not in out, out
        sh.expect("l2tpctl> session show tunnel_name=gamma session_name=s-g")
        # The ? key on the same word: that parameter's help, the line left as it was.
        sh.send("?")
        out = sh.expect("l2tpctl> session show tunnel_name=gamma session_name=s-g")
        assert "session_name=TEXT" in out and "s-g1" not in out, out
        sh.send("1\r")
        sh.expect("l2tpctl> ")
        assert ("session.get", {"tunnel_name": "gamma", "session_name": "s-g1"}) in SEEN
        # One TAB on a unique name still completes it.
        sh.send("tunnel show tunnel_name=g\t")
        sh.expect("tunnel_name=gamma ")
        sh.send("\x15quit\r")
        assert sh.proc.wait(WAIT) == 0
    finally:
        sh.close()
        loop.stop()
