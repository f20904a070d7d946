"""l2tpctl.py: the command line (as a subprocess), output formatting, help, completion,
and the interactive shell driven through a pty.

The daemon is a stub: a real RpcServer in a thread (test_rpc_unix.Loop) with a handler
that knows a small rpc.describe schema and a few objects. Every wait is bounded.
"""
import json
import os
import pty
import select
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

P_NAME = {"type": "str", "help": "Administrative name of the tunnel"}
SCHEMA = {
    "tunnel.create": {"help": "Create a tunnel to a peer", "params": {
        "dest_ipaddr": {"type": "ipaddr", "help": "Peer IP address", "required": True},
        "tunnel_name": P_NAME,
        "secret": {"type": "str", "help": "Shared secret"},
        "hide_avps": {"type": "bool", "help": "Hide AVPs (needs secret)", "default": False},
        "auth_mode": {"type": "enum", "help": "Tunnel authentication",
                      "choices": ["none", "simple", "challenge"], "default": "none"},
        "trace_flags": {"type": "flags", "help": "Trace", "choices": ["protocol", "fsm"]},
    }},
    "tunnel.get": {"help": "Show a tunnel", "params": {"tunnel_name": P_NAME,
                                                      "tunnel_id": {"type": "int"}}},
    "tunnel.list": {"help": "List tunnels", "params": {
        "local_only": {"type": "bool", "help": "Only locally created tunnels"}}},
    "tunnel.delete": {"help": "Delete a tunnel", "params": {"tunnel_name": P_NAME}},
    "tunnel_profile.modify": {"help": "Modify a tunnel profile", "params": {
        "profile_name": {"type": "str", "required": True},
        "hello_timeout": {"type": "int", "help": "HELLO interval (s), 0 disables"}}},
    "session.create": {"help": "Create a session", "params": {
        "tunnel_name": P_NAME, "session_name": {"type": "str"}}},
    "session.get": {"help": "Show a session", "params": {
        "tunnel_name": P_NAME, "session_name": {"type": "str"}}},
    "peer_profile.list": {"help": "List peer profiles", "params": {}},
    "system.get": {"help": "Show the system", "params": {}},
    "events.subscribe": {"help": "Stream events", "params": {}},
}

TUNNEL = {"tunnel_id": 4964, "tunnel_name": "t1", "state": "established",
          "peer_tunnel_id": 77, "hide_avps": True,
          "peer": {"host_name": "lns", "rx_window_size": 4},
          "stats": {"retransmits": 0, "tx_hellos": 3}}
SESSION = {"tunnel_id": 4964, "session_id": 54933, "session_name": "s1",
           "state": "established", "peer_session_id": 9, "stats": {"data_rx_packets": 12}}
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
        return [TUNNEL, {"tunnel_id": 5, "tunnel_name": "other", "state": "wait-ctl-reply",
                         "peer_tunnel_id": 0}]
    if method == "session.create":
        return {"tunnel_id": 4964, "session_id": 54933}
    if method == "session.get":
        return SESSION
    if method == "system.get":
        return {"data_path": "null", "num_tunnels": 1, "max_tunnels": 0,
                "stats": {"auth_fails": 0, "illegal_messages": 2}}
    if method == "peer_profile.list":
        return []
    if method == "events.subscribe":
        conn.subscribed = True
        conn.server.notify(conn, "event", {"event": "tunnel-up", "tunnel_id": 4964})
        conn.server.notify(conn, "event", {"event": "session-up", "tunnel_id": 4964,
                                           "session_id": 54933, "user": "a b"})
        return True
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


def ctl(*args, path=None, stdin=None, timeout=20):
    """Run l2tpctl as a user would; returns (exit status, stdout, stderr)."""
    env = {k: v for k, v in os.environ.items() if k != "L2TPD_SOCKET"}
    argv = [sys.executable, L2TPCTL] + (["-s", path] if path else []) + list(args)
    p = subprocess.run(argv, input=stdin or "", capture_output=True, text=True,
                       timeout=timeout, env=env)
    return p.returncode, p.stdout, p.stderr


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
    assert out.splitlines() == [
        "tunnel_id:      4964",
        "tunnel_name:    t1",
        "peer_tunnel_id: 77",
        "state:          established",
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


def test_list_and_system_show(daemon):
    rc, out, err = ctl("tunnel", "list", path=daemon)
    assert (rc, err) == (0, "")
    assert out.splitlines() == [
        "tunnel_id  tunnel_name  peer_tunnel_id  state           hide_avps",
        "4964       t1           77              established     yes",
        "5          other        0               wait-ctl-reply  -",
    ]
    assert ctl("tunnel", "list", "local_only", path=daemon)[0] == 0
    assert SEEN[-1] == ("tunnel.list", {"local_only": "yes"})
    assert ctl("peer", "profile", "list", path=daemon) == (0, "", "")
    rc, out, err = ctl("system", "show", path=daemon)
    assert (rc, err) == (0, "")
    assert out.splitlines() == ["data_path:   null", "max_tunnels: 0", "num_tunnels: 1",
                                "stats:", "  auth_fails:       0", "  illegal_messages: 2"]
    assert json.loads(ctl("-j", "tunnel", "list", path=daemon)[1])[0]["state"] == "established"


def test_errors_exit_1_with_one_line(daemon, tmp_path):
    assert ctl("tunnel", "show", "tunnel_name=x", path=daemon) == (
        1, "", "l2tpctl: error 520: tunnel_name: no tunnel named 'x'\n")
    assert ctl("tunnel", "create", "dest_ipaddr=300.1.1.1", path=daemon) == (
        1, "", "l2tpctl: error 541: dest_ipaddr: expected an IPv4 address, got '300.1.1.1'\n")
    assert ctl("tunnel", "create", "tunnel_name=a", path=daemon) == (
        1, "", "l2tpctl: error 542: dest_ipaddr: required by tunnel.create\n")
    assert ctl("widget", "frob", path=daemon) == (
        1, "", "l2tpctl: error -32601: method not found: widget.frob\n")
    absent = str(tmp_path / "absent.sock")
    assert ctl("tunnel", "list", path=absent) == (
        1, "", f"l2tpctl: cannot connect to l2tpd at {absent}: No such file or directory "
               "(is l2tpd running?)\n")


def test_usage_errors_exit_2(daemon):
    rc, out, err = ctl("tunnel", path=daemon)
    assert (rc, out) == (2, "")
    assert err.splitlines()[0] == ("l2tpctl: tunnel: missing verb (create, delete, modify, "
                                   "show, list, ...)")
    rc, out, err = ctl("--bogus", "tunnel", "list")
    assert (rc, out) == (2, "")
    assert err.startswith("l2tpctl: unknown option --bogus\nusage: l2tpctl")
    assert ctl("tunnel", "create", "a=1", "a=2", path=daemon)[0] == 2
    assert ctl("-s")[0] == 2
    rc, out, err = ctl("-h")
    assert rc == 0 and out.startswith("usage: l2tpctl [-s PATH] [--json] OBJECT")
    assert SEEN == []  # none of these reached the daemon


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


def test_help_from_describe(daemon):
    rc, out, err = ctl("help", "tunnel", "create", path=daemon)
    assert (rc, err) == (0, "")
    assert out.splitlines() == [
        "tunnel create: Create a tunnel to a peer",
        "  auth_mode=none|simple|challenge  Tunnel authentication (default none)",
        "  dest_ipaddr=A.B.C.D              Peer IP address (required)",
        "  hide_avps=yes|no                 Hide AVPs (needs secret) (default no)",
        "  secret=TEXT                      Shared secret",
        "  trace_flags=protocol,fsm         Trace",
        "  tunnel_name=TEXT                 Administrative name of the tunnel",
    ]
    assert ctl("tunnel", "create", "?", path=daemon)[1] == out
    rc, out, err = ctl("help", path=daemon)
    assert rc == 0 and "  tunnel profile modify  Modify a tunnel profile" in out.splitlines()
    assert ctl("help", "tunnel", path=daemon)[1].splitlines()[0] == (
        "tunnel create: Create a tunnel to a peer")


def test_events_subscribe_streams_until_the_daemon_goes(tmp_path):
    loop = Loop()
    path = str(tmp_path / "ev.sock")
    server = rpc_unix.RpcServer(path, handler, loop.watch)
    loop.servers.append(server)
    loop.start()
    try:
        p = subprocess.Popen([sys.executable, L2TPCTL, "-s", path, "events", "subscribe"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines = [p.stdout.readline() for _ in range(2)]
        assert lines == ["event event=tunnel-up tunnel_id=4964\n",
                         "event event=session-up tunnel_id=4964 session_id=54933 "
                         "user='a b'\n"]
        loop.call(server.close)  # the daemon stops: l2tpctl reports it and ends
        assert p.wait(WAIT) == 1
        assert p.stderr.read() == f"l2tpctl: l2tpd at {path} closed the connection\n"
        p.stdout.close()
        p.stderr.close()
    finally:
        loop.stop()


def test_imports_only_rpc_unix():
    code = ("import sys; sys.path.insert(0, %r); import l2tpctl; "
            "print(' '.join(sorted(sys.modules)))" % ROOT)
    mods = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=20, check=True).stdout.split())
    assert "rpc_unix" in mods
    # (selectors is not in the list: socket itself imports it on CPython 3.11.)
    forbidden = {"l2tpd", "avp", "ctrlchan", "fsm", "ppp", "kernel", "pyroute2", "readline",
                 "argparse", "threading", "subprocess", "logging"}
    assert not mods & forbidden
    # And it runs on that alone: `-h` needs no daemon. (How fast it starts is for a
    # benchmark to measure, not for a test to assert against this machine's speed.)
    r = subprocess.run([sys.executable, L2TPCTL, "-h"], capture_output=True, text=True,
                       timeout=20, check=True, stdin=subprocess.DEVNULL)
    assert r.stdout.startswith("usage: l2tpctl") and r.stderr == "", (r.stdout, r.stderr)


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
    assert r("tunnel.list", {}, []) == ""
    assert r("tunnel.list", {}, [1, 2]) == "1\n2"
    assert r("user.list", {}, [{"user_name": "u", "tunnel_id": 1, "x": {"n": 1}}]) == (
        "tunnel_id  user_name\n1          u")
    assert r("x.get", {}, {"list": [1, "a"], "none": None, "empty": [], "f": False}) == (
        "empty: -\nf:     no\nlist:  1, a\nnone:  -")
    assert r("x.get", {}, "text") == "text"
    assert l2tpctl.render_event("e", {"a": {"b": 1}}, False) == 'e {"a": {"b": 1}}'
    assert l2tpctl.render_event("e", {"a": 1}, True) == '{"method": "e", "params": {"a": 1}}'


def test_completions():
    c = l2tpctl.completions
    assert c(SCHEMA, "", "") == ["events ", "peer ", "session ", "system ", "tunnel ",
                                 "help ", "quit ", "exit "]
    assert c(SCHEMA, "", "tu") == ["tunnel "]
    assert c(SCHEMA, "tunnel ", "") == ["create ", "delete ", "list ", "show ", "profile "]
    assert c(SCHEMA, "tunnel ", "pr") == ["profile "]
    assert c(SCHEMA, "tunnel profile ", "") == ["modify "]
    assert c(SCHEMA, "peer ", "") == ["profile "]  # only profile methods exist for peer
    assert c(SCHEMA, "tunnel create ", "") == [
        "auth_mode=", "dest_ipaddr=", "hide_avps=", "secret=", "trace_flags=", "tunnel_name="]
    assert c(SCHEMA, "tunnel create dest_ipaddr=1.2.3.4 ", "d") == []  # already given
    assert c(SCHEMA, "tunnel create ", "auth_mode=c") == ["auth_mode=challenge "]
    assert c(SCHEMA, "tunnel create ", "hide_avps=") == ["hide_avps=yes ", "hide_avps=no "]
    assert c(SCHEMA, "tunnel profile modify ", "he") == ["hello_timeout="]
    assert c(SCHEMA, "help ", "s") == ["session ", "system "]
    assert c(SCHEMA, "help tunnel ", "cr") == ["create "]
    assert c(SCHEMA, "bogus ", "") == []
    assert c(SCHEMA, "tunnel bogus ", "") == []
    assert c({}, "", "") == ["help ", "quit ", "exit "]


def test_help_text_edges():
    h = l2tpctl.help_text
    assert h(SCHEMA, ["bogus"]).startswith("unknown command 'bogus'; objects: events, peer")
    assert h(SCHEMA, ["tunnel", "frob"]) == (
        "tunnel: unknown verb 'frob'; verbs: create, delete, list, show")
    assert h(SCHEMA, ["system", "show", "x=1"]) == "system show: Show the system\n  (no parameters)"
    assert h({}, []).startswith("The daemon's command list is unavailable.")


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

    def expect(self, text, timeout=WAIT):
        """Read until `text` has appeared since the last expect; returns what came."""
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, f"timed out waiting for {text!r}; got {self.seen!r}"
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    data = os.read(self.fd, 4096)
                except OSError:  # EIO: the child closed the terminal
                    data = b""
                assert data, f"l2tpctl ended while waiting for {text!r}; got {self.seen!r}"
                self.seen += data.decode(errors="replace").replace("\r", "")
        got, _, self.seen = self.seen.partition(text)
        return got + text

    def send(self, text):
        os.write(self.fd, text.encode())

    def close(self):
        if self.proc.poll() is None:  # a failed test left it at the prompt
            self.proc.kill()
        self.proc.wait(WAIT)
        os.close(self.fd)


def test_shell_completion_help_and_history(daemon, tmp_path):
    hist = tmp_path / "history"
    env = dict(os.environ, L2TPCTL_HISTFILE=str(hist), TERM="dumb", INPUTRC="/dev/null",
               HOME=str(tmp_path))
    env.pop("L2TPD_SOCKET", None)
    sh = Pty([sys.executable, L2TPCTL, "-s", daemon], env)
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
        sh.send("\r")
        assert "Created tunnel 4964" in sh.expect("l2tpctl> ")
        assert SEEN[-1] == ("tunnel.create", {"dest_ipaddr": "10.0.0.1",
                                              "auth_mode": "challenge"})
        sh.send("?\r")  # the command list
        out = sh.expect("l2tpctl> ")
        assert "tunnel profile modify  Modify a tunnel profile" in out
        sh.send("tunnel profile modify ?\r")  # one command's parameters
        out = sh.expect("l2tpctl> ")
        assert "hello_timeout=N    HELLO interval (s), 0 disables" in out
        sh.expect("tunnel profile modify ")  # the line is offered again
        sh.send("profile_name=default hello_timeout=30\r")
        assert "Modified tunnel profile default" in sh.expect("l2tpctl> ")
        sh.send("tunnel show tunnel_name=nope\r")
        assert "error 520: tunnel_name: no tunnel named 'nope'" in sh.expect("l2tpctl> ")
        sh.send("help session show\r")
        assert "session show: Show a session" in sh.expect("l2tpctl> ")
        sh.send("quit\r")
        assert sh.proc.wait(WAIT) == 0
    finally:
        sh.close()
    lines = hist.read_text().splitlines()
    assert "tunnel list " in lines or "tunnel list" in lines
    assert "profile_name=default hello_timeout=30" not in lines  # the whole line is kept
    assert "tunnel profile modify profile_name=default hello_timeout=30" in lines
    assert SEEN.count(("rpc.describe", {})) == 1  # fetched once per session


def test_shell_without_daemon_and_eof(tmp_path):
    env = dict(os.environ, L2TPCTL_HISTFILE=str(tmp_path / "h"), TERM="dumb",
               INPUTRC="/dev/null", HOME=str(tmp_path))
    sh = Pty([sys.executable, L2TPCTL, "-s", str(tmp_path / "none.sock")], env)
    try:
        sh.expect("l2tpctl> ")
        sh.send("system show\r")
        assert "cannot connect to l2tpd at" in sh.expect("l2tpctl> ")
        sh.send("tunnel\r")
        assert "error: tunnel: missing verb" in sh.expect("l2tpctl> ")
        sh.send("\x04")  # Ctrl-D
        assert sh.proc.wait(WAIT) == 0
    finally:
        sh.close()
    assert "system show" in (tmp_path / "h").read_text()
