"""rpc_unix.py: framing, dispatch, errors, idle and output bounds, socket permissions,
the client, the command grammar and parameter coercion.

Most tests run a real RpcServer on a socket in tmp_path, driven by rpc_harness's `Loop`,
a small selector loop in a thread written the way the module doc tells the daemon to
(watch -> selector + fds dict, next_deadline/on_timer). A few step the server by hand with
a virtual clock, or give the Loop one (`Loop(clock=0)`, moved by `set_clock`), and the
client's timeout is checked against a virtual clock and a scripted socket. No test
measures elapsed wall time; every wait is bounded (socket timeouts, Event.wait, join
timeouts).
"""
import errno
import json
import os
import socket
import stat
import tempfile
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

import rpc_unix
import util
from rpc_harness import Loop as Loop  # re-exported: test_l2tpctl imports Loop, WAIT from here
from rpc_harness import Raw, Servers, req
from rpc_unix import ConfigError, RpcClient, RpcConnectionError, RpcError, RpcServer

# seconds: the bound on this module's own waits for something that should happen at once
# (rpc_harness's Loop and Raw use rpc_harness.WAIT, the larger)
WAIT = 5.0


def stub(method, params, conn):
    """A stand-in for the daemon's dispatcher."""
    if method == "echo":
        return params
    if method == "tunnel.get":
        name = params.get("tunnel_name")
        if name != "t1":
            raise RpcError.param(rpc_unix.ERR_TUNNEL_NOT_FOUND, "tunnel_name",
                                 f"no tunnel named {name!r}", name)
        return {"tunnel_id": 4964, "tunnel_name": "t1", "state": "established"}
    if method == "events.subscribe":
        conn.subscribed = True
        return True
    if method == "emit":
        n = 0
        for i in range(params.get("count", 1)):
            n += conn.server.broadcast("event", {"seq": i, "pad": "x" * params.get("size", 0)})
        return n
    if method == "boom":
        raise KeyError("oops")
    if method == "bad.result":
        return object()
    if method == "whoami":
        return list(conn.peercred)
    raise RpcError(rpc_unix.ERR_METHOD_NOT_FOUND, f"method not found: {method}")


@pytest.fixture
def serve(tmp_path):
    """serve(handler=stub, clock=None, **server_kwargs) -> (loop, server, path); everything
    is stopped afterwards. clock=0 gives the loop a virtual clock starting at 0 ms
    (Loop.set_clock)."""
    servers = Servers(tmp_path)

    def start(handler=stub, clock=None, **kw):
        return servers.start(handler, clock=clock, **kw)

    yield start
    servers.stop()


def error_of(reply):
    assert "result" not in reply, reply
    return reply["error"]["code"], reply["error"]["message"]


# --- Round trips and errors --------------------------------------------------------------

def test_round_trip(serve):
    loop, server, path = serve()
    with RpcClient(path) as c:
        assert c.call("echo", {"a": 1, "b": [True, None], "c": "é"}) == {
            "a": 1, "b": [True, None], "c": "é"}
        assert c.call("echo") == {}  # absent params arrive as {}
        assert c.call("tunnel.get", {"tunnel_name": "t1"})["tunnel_id"] == 4964
    assert rpc_unix.call("echo", {"x": "y"}, path=path) == {"x": "y"}


def test_error_object_names_parameter_and_value(serve):
    loop, server, path = serve()
    with RpcClient(path) as c:
        with pytest.raises(RpcError) as ei:
            c.call("tunnel.get", {"tunnel_name": "x"})
        e = ei.value
        assert e.code == rpc_unix.ERR_TUNNEL_NOT_FOUND == 520
        assert e.message == str(e) == "tunnel_name: no tunnel named 'x'"
        assert e.data == {"param": "tunnel_name", "value": "x"}
        with pytest.raises(RpcError) as ei:
            c.call("nosuch.method")
        assert ei.value.code == rpc_unix.ERR_METHOD_NOT_FOUND
        assert c.call("echo", {"still": "ok"}) == {"still": "ok"}
    raw = Raw(path)
    reply = raw.ask(req("tunnel.get", {"tunnel_name": "x"}, rid="abc"))
    assert reply == {"jsonrpc": "2.0", "id": "abc", "error": {
        "code": 520, "message": "tunnel_name: no tunnel named 'x'",
        "data": {"param": "tunnel_name", "value": "x"}}}


def test_bad_input_gets_errors_and_server_keeps_serving(serve):
    loop, server, path = serve()
    raw = Raw(path)
    cases = [
        (b"{not json\n", rpc_unix.ERR_PARSE, "parse error"),
        (b"\xc3\x28\n", rpc_unix.ERR_PARSE, "parse error: invalid UTF-8"),
        (b"[" * 60000 + b"\n", rpc_unix.ERR_PARSE, "parse error"),  # deep nesting
        (b"42\n", rpc_unix.ERR_INVALID_REQUEST, "request must be a JSON object"),
        (b'{"jsonrpc":"2.0","id":1}\n', rpc_unix.ERR_INVALID_REQUEST,
         "method: expected a non-empty string"),
        (b'{"jsonrpc":"1.0","id":1,"method":"echo"}\n', rpc_unix.ERR_INVALID_REQUEST,
         'jsonrpc: expected "2.0"'),
        (b'{"jsonrpc":"2.0","id":{},"method":"echo"}\n', rpc_unix.ERR_INVALID_REQUEST,
         "id: expected a string, a number or null"),
        (b'{"jsonrpc":"2.0","id":1,"method":"echo","params":[1,2]}\n',
         rpc_unix.ERR_INVALID_PARAMS, "params: positional (array) parameters are not "
         "supported; pass an object"),
        (b'{"jsonrpc":"2.0","id":1,"method":"echo","params":"x"}\n',
         rpc_unix.ERR_INVALID_REQUEST, "params: expected an object"),
        (req("no.such"), rpc_unix.ERR_METHOD_NOT_FOUND, "method not found: no.such"),
        (req("boom"), rpc_unix.ERR_INTERNAL, "internal error in boom: KeyError: 'oops'"),
        (req("bad.result"), rpc_unix.ERR_INTERNAL, "internal error in bad.result: result "
         "is not JSON"),
    ]
    for data, code, message in cases:
        reply = raw.ask(data)
        assert error_of(reply)[0] == code, (data[:40], reply)
        assert error_of(reply)[1].startswith(message), (data[:40], reply)
    assert any("rpc boom raised" in m and "KeyError" in m for m in loop.log)
    # Blank lines are ignored; notifications (no id) are run and not answered.
    assert raw.ask(b"\n  \r\n" + req("echo", {"n": 1})[:-1] + b"\n") ["result"] == {"n": 1}
    raw.send(b'{"jsonrpc":"2.0","method":"boom"}\n')
    assert raw.ask(req("echo", {"after": "notification"}, rid=7)) == {
        "jsonrpc": "2.0", "id": 7, "result": {"after": "notification"}}
    # The same connection and a new one both still work.
    with RpcClient(path) as c:
        assert c.call("echo", {"ok": True}) == {"ok": True}


def test_batch(serve):
    loop, server, path = serve()
    raw = Raw(path)
    batch = [json.loads(req("echo", {"i": 1}, rid=1)),
             {"jsonrpc": "2.0", "method": "echo"},  # notification: no reply entry
             json.loads(req("tunnel.get", {"tunnel_name": "x"}, rid=2)), 5]
    replies = raw.ask(json.dumps(batch).encode() + b"\n")
    assert [r.get("id") for r in replies] == [1, 2, None]
    assert replies[0]["result"] == {"i": 1}
    assert replies[1]["error"]["code"] == 520
    assert replies[2]["error"]["code"] == rpc_unix.ERR_INVALID_REQUEST
    assert error_of(raw.ask(b"[]\n")) == (rpc_unix.ERR_INVALID_REQUEST, "empty batch")


def test_oversized_line_is_answered_then_closed(serve):
    loop, server, path = serve(max_request=1024)
    for data in (b"x" * 5000, b'{"jsonrpc": "2.0", "pad": "' + b"y" * 2000 + b'"}\n'):
        raw = Raw(path)
        code, message = error_of(raw.ask(data))
        assert code == rpc_unix.ERR_REQUEST_TOO_LARGE
        assert message == "request line longer than 1024 bytes"
        assert raw.closed()
    assert any("longer than 1024" in m for m in loop.log)
    # Just under the bound is fine, and other clients never noticed.
    with RpcClient(path) as c:
        assert c.call("echo", {"pad": "z" * 900}) == {"pad": "z" * 900}


def test_half_closed_client_is_answered(serve):
    # `printf '{...}' | nc -U sock`: the last request has no newline and is followed by EOF.
    loop, server, path = serve()
    raw = Raw(path)
    raw.send(req("echo", {"a": 1}) + req("echo", {"b": 2}, rid=2)[:-1])
    raw.sock.shutdown(socket.SHUT_WR)
    assert raw.line()["result"] == {"a": 1}
    assert raw.line()["result"] == {"b": 2}
    assert raw.closed()


def test_full_server_evicts_an_idle_client_for_a_new_one(serve):
    # Idle clients cannot lock a new one out: one of them makes room, told why.
    gone = []
    loop, server, path = serve(max_clients=2, on_close=gone.append)
    a, b = Raw(path), Raw(path)
    assert a.ask(req("echo"))["result"] == {} and b.ask(req("echo"))["result"] == {}
    with RpcClient(path) as c:
        assert c.call("echo") == {}      # served, not refused
        # The room was made when c was accepted, before its reply: the notice is there.
        evicted = [r for r in (a, b) if not r.quiet()]
        assert len(evicted) == 1
        code, message = error_of(evicted[0].line())
        assert code == rpc_unix.ERR_EVICTED
        assert message.startswith("closing: a new client needs this slot (all 2 are taken)")
        assert evicted[0].closed()
        assert loop.call(lambda: len(gone)) == 1
    for r in (a, b):
        r.close()


def test_too_many_clients_only_while_every_slot_is_being_served(serve):
    # The one slot's client is in the middle of its request when another connects (the
    # handler makes it happen then): nobody can be evicted, so the newcomer is refused.
    box = {}

    def handler(method, params, conn):
        if method == "connect.another":
            box["late"] = Raw(conn.server.path)   # waits in the listen queue
            conn.server.on_readable(box["loop"].now())
            return True
        return stub(method, params, conn)
    loop, server, path = serve(handler=handler, max_clients=1)
    box["loop"] = loop
    with RpcClient(path) as a:
        assert a.call("connect.another") is True
        code, message = error_of(box["late"].line())
        assert code == rpc_unix.ERR_TOO_MANY_CLIENTS and message == "too many clients (max 1)"
        assert box["late"].closed()
        assert any("too many clients" in m for m in loop.log)
        assert a.call("echo") == {}      # the served client goes on
    box["late"].close()


# --- Idle clients, subscriptions, output bounds ------------------------------------------

def test_idle_clients_closed_subscriber_kept(serve):
    # The loop's clock is virtual: it stands at 0 ms while the clients connect and
    # moves only when the test says, so "not before idle_timeout" is exact.
    closed = []
    loop, server, path = serve(idle_timeout=300, on_close=closed.append, clock=0)
    silent = Raw(path)  # connects and sends nothing
    partial = Raw(path)
    partial.send(b'{"jsonrpc": "2.0", "id": 1, "met')  # half a request
    sub = RpcClient(path)
    assert sub.call("events.subscribe") is True
    sub_sock = sub._sock
    user = RpcClient(path)  # one call, then idle: closed too, but it reconnects by itself
    assert user.call("echo") == {}
    # Everyone was accepted (and the partial line read) at 0 ms: the server answered a
    # later client, and it serves its listening socket's queue in order.
    assert loop.call(lambda: len(server.connections)) == 4
    # 1 ms before the idle deadline: nobody has been closed or told anything.
    loop.set_clock(299)
    assert loop.call(lambda: len(server.connections)) == 4 and closed == []
    assert silent.quiet() and partial.quiet()
    # At the deadline the three idle ones go, each told why.
    loop.set_clock(300)
    for raw in (silent, partial):
        code, message = error_of(raw.line())
        assert code == rpc_unix.ERR_IDLE_TIMEOUT
        assert message == "no complete request within 300 ms; closing"
        assert raw.closed()
    assert loop.call(lambda: len(closed)) == 3
    assert loop.call(lambda: [c.subscribed for c in server.connections.values()]) == [True]
    # The idle subscriber is still there, on the same connection, receiving events.
    with RpcClient(path) as other:
        assert other.call("emit", {"count": 2}) == 2
    got = []
    while len(got) < 2:
        batch = sub.notifications(WAIT)
        assert batch, "no event within the wait"
        got += batch
    assert got == [("event", {"seq": 0, "pad": ""}), ("event", {"seq": 1, "pad": ""})]
    assert sub._sock is sub_sock
    assert sub.call("echo", {"still": 1}) == {"still": 1}
    # The idle ordinary client was dropped; its next call reconnects transparently.
    assert user.call("echo", {"again": 1}) == {"again": 1}
    sub.close()
    user.close()


def test_idle_policy_with_virtual_clock(tmp_path):
    """Drive the server by hand: exact deadlines and the watch() calls the loop sees."""
    calls = []
    server = RpcServer(str(tmp_path / "s"), stub, lambda fd, obj, ev: calls.append((obj, ev)),
                       idle_timeout=1000)
    assert calls == [(server, rpc_unix.EVENT_READ)]
    assert server.next_deadline() is None
    a = Raw(server.path)
    b = Raw(server.path)
    server.on_readable(100)  # accepts both
    conns = sorted(server.connections.values(), key=lambda c: c.fd)
    assert [(obj, ev) for obj, ev in calls[1:]] == [(c, rpc_unix.EVENT_READ) for c in conns]
    ca, cb = conns
    assert server.next_deadline() == 1100
    ca.on_readable(150)  # spurious: nothing to read yet
    b.send(req("events.subscribe"))
    cb.on_readable(200)
    assert b.line()["result"] is True
    assert cb.subscribed and cb.deadline() is None
    b.send(b'{"partial')
    cb.on_readable(300)
    assert cb.deadline() == 1300  # a subscriber may not sit on half a line either
    server.on_timer(1099)
    assert not ca.closed
    server.on_timer(1100)
    assert ca.closed and (ca, 0) in calls
    assert error_of(a.line())[0] == rpc_unix.ERR_IDLE_TIMEOUT
    b.send(b'":1}\n')
    cb.on_readable(1200)
    assert error_of(b.line())[0] == rpc_unix.ERR_INVALID_REQUEST
    assert cb.deadline() is None
    server.on_timer(10 ** 9)
    assert not cb.closed
    server.close()
    assert cb.closed and (cb, 0) in calls and (server, 0) in calls
    assert not os.path.exists(server.path)


def test_notifications_delivered_in_order(serve):
    loop, server, path = serve()
    with RpcClient(path) as sub, RpcClient(path) as other:
        assert sub.notifications(0) == []
        assert other.call("emit") == 0  # nobody subscribed yet
        assert sub.call("events.subscribe") is True
        assert other.call("emit", {"count": 3}) == 3
        got = []
        while len(got) < 3:
            batch = sub.notifications(WAIT)
            assert batch
            got += batch
        assert got == [("event", {"seq": i, "pad": ""}) for i in range(3)]
        # Events that arrive while a call waits for its reply are kept for later.
        assert sub.call("emit", {"count": 2}) == 2
        assert sub.notifications(0) == [("event", {"seq": 0, "pad": ""}),
                                        ("event", {"seq": 1, "pad": ""})]
        assert loop.call(lambda: server.notify(next(
            c for c in server.connections.values() if c.subscribed), "direct", {"x": 1}))
        assert sub.notifications(WAIT) == [("direct", {"x": 1})]


def test_slow_subscriber_dropped_at_bound(serve):
    closed = threading.Event()
    loop, server, path = serve(max_output=65536, on_close=lambda conn: closed.set())
    slow = Raw(path)
    assert slow.ask(req("events.subscribe"))["result"] is True  # then never reads again
    with RpcClient(path) as other:
        sent = other.call("emit", {"count": 400, "size": 10000})  # 4 MB
        assert 0 < sent < 400
        assert closed.wait(WAIT)
        assert any("unread" in m and "bound 65536" in m for m in loop.log)
        assert loop.call(lambda: len(server.connections)) == 1
        assert other.call("echo", {"fine": 1}) == {"fine": 1}


def test_peercred(serve):
    loop, server, path = serve()
    assert rpc_unix.call("whoami", path=path) == [os.getpid(), os.getuid(), os.getgid()]


# --- The socket file ---------------------------------------------------------------------

def nowatch(fd, obj, events):
    pass


def test_socket_mode_regardless_of_umask(tmp_path):
    import grp

    for umask in (0o000, 0o077, 0o777):
        old = os.umask(umask)
        try:
            path = str(tmp_path / f"u{umask:o}" / "l2tpd.sock")  # the directory is created
            s = RpcServer(path, stub, nowatch, group=grp.getgrgid(os.getgid()).gr_name)
        finally:
            os.umask(old)
        st_ = os.stat(path)
        assert stat.S_ISSOCK(st_.st_mode)
        assert stat.S_IMODE(st_.st_mode) == 0o660
        assert st_.st_gid == os.getgid()
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o755
        s.close()
        assert not os.path.exists(path)
    s = RpcServer(str(tmp_path / "m"), stub, nowatch, mode=0o600)
    assert stat.S_IMODE(os.stat(s.path).st_mode) == 0o600
    s.close()


def test_stale_socket_replaced_live_one_and_files_kept(tmp_path):
    path = str(tmp_path / "l2tpd.sock")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(path)  # bound, never listening: what a crashed daemon leaves behind
    dead.close()
    s = RpcServer(path, stub, nowatch)
    with pytest.raises(OSError) as ei:
        RpcServer(path, stub, nowatch)
    assert ei.value.errno == errno.EADDRINUSE
    assert "already running" in str(ei.value)
    s.close()
    regular = tmp_path / "file"
    regular.write_text("keep me")
    with pytest.raises(OSError) as ei:
        RpcServer(str(regular), stub, nowatch)
    assert ei.value.errno == errno.EEXIST
    assert regular.read_text() == "keep me"
    with pytest.raises(ValueError):
        RpcServer(str(tmp_path / "g"), stub, nowatch, group="no-such-group-l2tpd")


def try_connect_as(path, uid, gid, groups):
    """Fork a child that drops to uid/gid/groups and connects; returns its errno (0 = ok)."""
    pid = os.fork()
    if pid == 0:  # the child: no pytest machinery from here on, only os._exit
        code = 99
        try:
            os.setgroups(groups)
            os.setgid(gid)
            os.setuid(uid)
            try:
                RpcClient(path, timeout=WAIT)
                code = 0
            except RpcConnectionError as e:
                code = e.errno if "Permission denied" in str(e) else 98
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_socket_refuses_user_outside_group():
    if os.geteuid() != 0:
        assert os.environ.get("CI") != "true", "CI runs as root: this test must run there"
        pytest.skip("needs root to create a group-owned socket and drop privileges")
    nobody = 65534  # nobody / nogroup on Debian; the numbers need no /etc entries
    group = 4242  # a gid nobody is not in
    top = tempfile.mkdtemp(prefix="l2tpd-rpc-", dir="/tmp")
    try:
        os.chmod(top, 0o755)  # pytest's tmp_path is 0700: nobody could not even reach it
        path = os.path.join(top, "l2tpd.sock")
        server = RpcServer(path, stub, nowatch, group=group)
        try:
            st_ = os.stat(path)
            assert (st_.st_gid, stat.S_IMODE(st_.st_mode)) == (group, 0o660)
            assert try_connect_as(path, nobody, nobody, []) == errno.EACCES
            assert try_connect_as(path, nobody, nobody, [group]) == 0
            assert try_connect_as(path, nobody, group, []) == 0
        finally:
            server.close()
    finally:
        os.rmdir(top)


# --- The client on its own ---------------------------------------------------------------

def test_client_cannot_connect(tmp_path):
    path = str(tmp_path / "absent.sock")
    with pytest.raises(RpcConnectionError) as ei:
        RpcClient(path)
    assert str(ei.value) == (f"cannot connect to l2tpd at {path}: No such file or directory "
                             "(is l2tpd running?)")
    assert ei.value.errno == errno.ENOENT
    assert isinstance(ei.value, OSError)


def bounded(fn, seconds=WAIT):
    return util.bounded(fn, seconds)


def test_client_times_out_on_silent_daemon(tmp_path):
    path = str(tmp_path / "mute.sock")
    mute = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    mute.bind(path)
    mute.listen(1)  # accepts into the backlog, never answers
    try:
        c = RpcClient(path, timeout=0.2)
        with pytest.raises(RpcConnectionError) as ei:
            bounded(lambda: c.call("echo"))  # gives up by itself, long before WAIT
        assert str(ei.value) == f"no reply from l2tpd at {path} within 0.2 s"
        assert ei.value.errno == errno.ETIMEDOUT
        assert c.notifications(0) == []
        c.close()
    finally:
        mute.close()


class VirtualClock:
    """Stands in for rpc_unix._clock (seconds); only the scripted socket moves it."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class ScriptedSocket:
    """The client's socket to a daemon that answers on a virtual schedule: `replies`
    is a list of (virtual time in s, make(request) -> bytes). recv() with a timeout
    "waits" by moving the clock: to the next chunk due within the timeout, else by the
    whole timeout (then socket.timeout). `waits` records each timeout that ran out."""

    def __init__(self, clock, replies):
        self.clock = clock
        self.replies = list(replies)
        self.timeout = None
        self.requests = []
        self.waits = []

    def settimeout(self, t):
        self.timeout = t

    def connect(self, path):
        pass

    def sendall(self, data):
        for line in data.splitlines():
            self.requests.append(json.loads(line))

    def recv(self, n):
        due = self.clock.now if not self.timeout else self.clock.now + self.timeout
        if self.replies and self.replies[0][0] <= due:
            at, make = self.replies.pop(0)
            self.clock.now = max(self.clock.now, at)
            return make(self.requests[-1])
        if not self.timeout:
            if self.timeout is None:
                raise AssertionError("the client would wait for ever")
            raise BlockingIOError
        self.clock.now = due
        self.waits.append(self.timeout)
        raise socket.timeout("timed out")

    def close(self):
        pass


def scripted_client(monkeypatch, timeout, replies):
    """An RpcClient whose socket and clock are virtual: (client, clock, socket)."""
    clock = VirtualClock()
    fake = ScriptedSocket(clock, replies)
    shim = type("socket_module", (), {"socket": lambda *a: fake, "AF_UNIX": socket.AF_UNIX,
                                      "SOCK_STREAM": socket.SOCK_STREAM,
                                      "timeout": socket.timeout})
    monkeypatch.setattr(rpc_unix, "socket", shim)
    monkeypatch.setattr(rpc_unix, "_clock", clock)
    return RpcClient("/virtual/l2tpd.sock", timeout=timeout), clock, fake


def reply_to(result, part=slice(None)):
    """make(request) for a reply with `result` (or the `part` of its bytes)."""
    return lambda req: (json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": result})
                        + "\n").encode()[part]


def test_client_timeout_in_virtual_time(monkeypatch):
    # Silent daemon: the client waits its whole timeout, not less, then gives up.
    c, clock, sock = scripted_client(monkeypatch, 0.2, [])
    with pytest.raises(RpcConnectionError) as ei:
        c.call("echo")
    assert str(ei.value) == "no reply from l2tpd at /virtual/l2tpd.sock within 0.2 s"
    assert clock.now == 0.2 and sock.waits == [0.2]
    # A reply late but within the timeout is taken: the client does not give up early.
    c, clock, sock = scripted_client(monkeypatch, 0.2, [(0.15, reply_to("late"))])
    assert c.call("echo") == "late" and clock.now == 0.15 and sock.waits == []
    # The timeout bounds the whole call, not each read: a reply in two pieces must be
    # complete by 0.2 s after the call began.
    c, clock, sock = scripted_client(monkeypatch, 0.2, [(0.05, reply_to("ok", slice(0, 9))),
                                                        (0.19, reply_to("ok", slice(9, None)))])
    assert c.call("echo") == "ok" and clock.now == 0.19
    c, clock, sock = scripted_client(monkeypatch, 0.2, [(0.05, reply_to("ok", slice(0, 9))),
                                                        (0.25, reply_to("ok", slice(9, None)))])
    with pytest.raises(RpcConnectionError):
        c.call("echo")
    assert clock.now == pytest.approx(0.2) and sock.waits == [pytest.approx(0.15)]


def test_default_socket_path():
    assert rpc_unix.default_socket_path({"L2TPD_SOCKET": "/x/y.sock"}) == "/x/y.sock"
    expected = "/run/l2tpd/l2tpd.sock" if os.geteuid() == 0 else "./l2tpd.sock"
    assert rpc_unix.default_socket_path({}) == expected


def test_error_table():
    assert rpc_unix.ERR_PARAM_NOT_MODIFIABLE == 500
    assert rpc_unix.ERR_TUNNEL_HIDE_AVPS_NEEDS_SECRET == 527
    assert rpc_unix.ERROR_NAMES[520] == "TUNNEL_NOT_FOUND"
    assert rpc_unix.ERROR_NAMES[-32700] == "PARSE"
    assert len(set(rpc_unix.ERROR_NAMES)) == len(rpc_unix.ERROR_NAMES)  # codes are unique
    assert sorted(c for c in rpc_unix.ERROR_NAMES if 500 <= c < 540) == list(range(500, 528))
    e = RpcError.from_dict({"code": 541, "message": "m", "data": {"param": "p"}})
    assert (e.code, e.message, e.data) == (541, "m", {"param": "p"})
    assert RpcError.from_dict("junk").code == rpc_unix.ERR_INTERNAL
    assert RpcError(1, "x").to_dict() == {"code": 1, "message": "x"}


# --- The command grammar -----------------------------------------------------------------

def test_parse_command_examples():
    P = rpc_unix.parse_command
    assert P("tunnel create dest_ipaddr=127.0.0.2 tunnel_name=t1 secret=x hide_avps=yes") == (
        "tunnel.create", {"dest_ipaddr": "127.0.0.2", "tunnel_name": "t1", "secret": "x",
                          "hide_avps": "yes"})
    assert P("tunnel show tunnel_name=t1") == ("tunnel.get", {"tunnel_name": "t1"})
    assert P("tunnel list local_only") == ("tunnel.list", {"local_only": "yes"})
    assert P("tunnel profile modify profile_name=default hello_timeout=30") == (
        "tunnel_profile.modify", {"profile_name": "default", "hello_timeout": "30"})
    assert P("system show") == ("system.get", {})
    assert P("config save file=/tmp/x.conf") == ("config.save", {"file": "/tmp/x.conf"})
    assert P("ppp profile unset profile_name=p mtu") == ("ppp_profile.unset",
                                                        {"profile_name": "p", "mtu": "yes"})
    # argv words are already split by the shell: no quoting, only the first '=' counts.
    assert P(["tunnel", "create", "secret=a b=c", "host_name=", "x=\"q\""]) == (
        "tunnel.create", {"secret": "a b=c", "host_name": "", "x": '"q"'})


def test_parse_command_quoting():
    P = rpc_unix.parse_command
    assert P("""session create user_name='a b' user_password="p\\"w\\\\d" x=a\\ b""")[1] == {
        "user_name": "a b", "user_password": 'p"w\\d', "x": "a b"}
    assert P("tunnel create secret='it''s' y=\"$HOME\" z=a#b w=''")[1] == {
        "secret": "its", "y": "$HOME", "z": "a#b", "w": ""}
    assert P("tunnel create s='a;b' t=\"c # d\"")[1] == {"s": "a;b", "t": "c # d"}
    # A quoted or escaped '=' does not make a name=value word.
    with pytest.raises(ConfigError) as ei:
        P("tunnel create 'a=b'")
    assert ei.value.reason == "bad parameter 'a=b': expected name=value"


def test_parse_command_errors():
    P = rpc_unix.parse_command
    bad = {
        "": "empty command",
        "   # only a comment": "empty command",
        "tunnel": "tunnel: missing verb (create, delete, modify, show, list, ...)",
        "tunnel profile": "tunnel profile: missing verb (create, delete, modify, show, list, "
                          "...)",
        "tunnel name=x": "tunnel: missing verb (create, delete, modify, show, list, ...)",
        "x=1 create": "expected an object name (tunnel, session, ...), got 'x=1'",
        "tunnel create a=1 a=2": "a: given twice",
        "tunnel create 9x=1": "bad parameter '9x=1': expected name=value",
        "tunnel create =1": "bad parameter '=1': expected name=value",
        "tunnel list; session list": "expected one command, got 2",
        "tunnel create a='x": "unterminated ' quote",
        "tunnel create a=x\\": "backslash at end of input",
    }
    for line, reason in bad.items():
        with pytest.raises(ConfigError) as ei:
            P(line)
        assert ei.value.reason == reason, line
        assert str(ei.value) == reason  # no file name for a single command
    with pytest.raises(ConfigError):
        P([])


CONFIG = """\
# l2tpd.conf
system modify max_tunnels=10   # trailing comment

tunnel profile create profile_name=one \\
    hello_timeout=30 \\
    secret="two words"
tunnel create tunnel_name=one dest_ipaddr=10.1.2.3 profile_name=one; \\
session create tunnel_name=one session_name=s1
ppp profile modify profile_name=default local_name='multi
line'  # quotes may span lines
tunnel create tunnel_name=x  dest_ipaddr=1.2.3.4 # a#b here is a comment
"""


def test_parse_config():
    got = rpc_unix.parse_config(CONFIG, "l2tpd.conf")
    assert got == [
        (2, "system.modify", {"max_tunnels": "10"}),
        (4, "tunnel_profile.create", {"profile_name": "one", "hello_timeout": "30",
                                      "secret": "two words"}),
        (7, "tunnel.create", {"tunnel_name": "one", "dest_ipaddr": "10.1.2.3",
                              "profile_name": "one"}),
        (8, "session.create", {"tunnel_name": "one", "session_name": "s1"}),
        (9, "ppp_profile.modify", {"profile_name": "default", "local_name": "multi\nline"}),
        (11, "tunnel.create", {"tunnel_name": "x", "dest_ipaddr": "1.2.3.4"}),
    ]
    assert rpc_unix.parse_config("", "empty.conf") == []
    assert rpc_unix.parse_config("\n# nothing\n;;\n", "x") == []


def test_parse_config_errors_name_file_and_line():
    cases = [
        ("system modify a=1\n\ntunnel\n", 3, "tunnel: missing verb (create, delete, modify, "
                                             "show, list, ...)"),
        ("a b\nc d x=\"open\n\n\n", 2, 'unterminated " quote'),
        ("a b c=1 \\\n d=2 d=3\n", 1, "d: given twice"),
        ("a b\n\n'x' y 'z=\n", 3, "unterminated ' quote"),
    ]
    for text, line, reason in cases:
        with pytest.raises(ConfigError) as ei:
            rpc_unix.parse_config(text, "/etc/l2tpd.conf")
        e = ei.value
        assert (e.filename, e.lineno, e.reason) == ("/etc/l2tpd.conf", line, reason), text
        assert str(e) == f"/etc/l2tpd.conf:{line}: {reason}"
    with pytest.raises(ConfigError) as ei:
        rpc_unix.parse_config("tunnel create a=1\ntunnel show a=1\n", "c",
                              verbs=rpc_unix.CONFIG_VERBS)
    assert str(ei.value) == "c:2: tunnel show: only create, modify commands are allowed here"


def test_format_command():
    F = rpc_unix.format_command
    assert F("tunnel.create", {"dest_ipaddr": "10.0.0.1", "hide_avps": True, "persist": False,
                               "hello_timeout": 60, "host_name": None}) == (
        "tunnel create dest_ipaddr=10.0.0.1 hide_avps=yes persist=no hello_timeout=60")
    assert F("tunnel_profile.get", {"profile_name": "a b"}) == (
        "tunnel profile show profile_name='a b'")
    assert F("system.get") == "system show"
    assert F("system.modify", {"trace_flags": ["protocol", "fsm"]}) == (
        "system modify trace_flags=protocol,fsm")
    assert F("x.y", {"a": "", "b": "it's", "c": "#x", "d": "a;b", "e": 'q"\\'}) == (
        "x y a='' b=\"it's\" c='#x' d='a;b' e='q\"\\'")
    with pytest.raises(ValueError):
        F("nodot", {})
    with pytest.raises(ValueError):
        F("x.y", {"a": {"nested": 1}})
    assert rpc_unix.command_words("peer_profile.list") == ["peer", "profile", "list"]


def test_format_then_parse_round_trip_examples():
    cases = [("tunnel.create", {"secret": "s3cr3t with 'quotes' and \"more\"\\"}),
             ("ppp_profile.modify", {"local_name": "a\nb", "radius_hint": "/etc/radius.conf"}),
             ("session.delete", {"tunnel_name": "t;1", "session_name": "#s"})]
    for method, params in cases:
        assert rpc_unix.parse_command(rpc_unix.format_command(method, params)) == (
            method, params)
    text = "\n".join(rpc_unix.format_command(m, p) for m, p in cases)
    assert [(m, p) for _, m, p in rpc_unix.parse_config(text, "saved.conf")] == cases


NAMES = st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True)


@given(obj=NAMES.filter(lambda s: not s.endswith("_profile")),
       profile=st.booleans(), verb=NAMES.filter(lambda s: s not in ("show", "profile")),
       params=st.dictionaries(NAMES, st.text(max_size=20), max_size=5))
def test_format_then_parse_round_trip_property(obj, profile, verb, params):
    method = f"{obj}{'_profile' if profile else ''}.{verb}"
    line = rpc_unix.format_command(method, params)
    assert rpc_unix.parse_command(line) == (method, params)
    assert rpc_unix.parse_config(line + "\n" + line, "f") == [(1, method, params)] + [
        (1 + line.count("\n") + 1, method, params)]


# --- Schema-driven coercion --------------------------------------------------------------

SPEC = {
    "dest_ipaddr": {"type": "ipaddr", "required": True},
    "hello_timeout": {"type": "int", "min": 0, "max": 3600},
    "hide_avps": {"type": "bool"},
    "tunnel_name": {"type": "str"},
    "auth_mode": {"type": "enum", "choices": ["none", "simple", "challenge"]},
    "trace_flags": {"type": "flags", "choices": ["protocol", "fsm", "api"],
                    "bits": {"protocol": 1, "fsm": 2, "api": 4}},
    "lac_lns": {"type": "flags", "choices": ["lac", "lns"]},
}


def test_coerce_params_strings_and_typed_json():
    C = rpc_unix.coerce_params
    assert C("tunnel.create", {"dest_ipaddr": "10.0.0.01", "hello_timeout": "0x1e",
                               "hide_avps": "YES", "auth_mode": "Challenge",
                               "trace_flags": "protocol,api", "lac_lns": "lns"}, SPEC) == {
        "dest_ipaddr": "10.0.0.1", "hello_timeout": 30, "hide_avps": True,
        "auth_mode": "challenge", "trace_flags": 5, "lac_lns": ["lns"]}
    assert C("tunnel.create", {"dest_ipaddr": "1.2.3.4", "hello_timeout": 60,
                               "hide_avps": False, "trace_flags": 3,
                               "lac_lns": ["lac", "lns"]}, SPEC) == {
        "dest_ipaddr": "1.2.3.4", "hello_timeout": 60, "hide_avps": False,
        "trace_flags": 3, "lac_lns": ["lac", "lns"]}
    for v, want in (("off", False), ("on", True), (1, True), ("0", False), ("true", True)):
        assert rpc_unix.coerce_value("b", v, {"type": "bool"}) is want


def test_coerce_params_errors():
    C = rpc_unix.coerce_params
    ok = {"dest_ipaddr": "1.2.3.4"}
    cases = [
        ({"hello_timeout": "abc"}, 541, "hello_timeout: expected an integer, got 'abc'"),
        ({"hello_timeout": True}, 541, "hello_timeout: expected an integer, got True"),
        ({"hello_timeout": "4000"}, 541, "hello_timeout: 4000 is above the maximum 3600"),
        ({"hello_timeout": -1}, 541, "hello_timeout: -1 is below the minimum 0"),
        ({"hide_avps": "maybe"}, 541, "hide_avps: expected yes or no, got 'maybe'"),
        ({"tunnel_name": 5}, 541, "tunnel_name: expected a string, got 5"),
        ({"dest_ipaddr": "300.1.1.1"}, 541,
         "dest_ipaddr: expected an IPv4 address, got '300.1.1.1'"),
        ({"auth_mode": "x"}, 541, "auth_mode: expected one of none, simple, challenge, "
                                  "got 'x'"),
        ({"trace_flags": "protocol,bogus"}, 541,
         "trace_flags: unknown flag 'bogus', expected some of protocol, fsm, api"),
        ({"hello_timout": "3"}, 540,
         "hello_timout: unknown parameter for tunnel create (did you mean hello_timeout?)"),
        ({"zzz": "3"}, 540, "zzz: unknown parameter for tunnel create"),
    ]
    for params, code, message in cases:
        with pytest.raises(RpcError) as ei:
            C("tunnel.create", dict(ok, **params), SPEC)
        assert (ei.value.code, ei.value.message) == (code, message)
        name = next(iter(params))
        assert ei.value.data == {"param": name, "value": params[name]}
    with pytest.raises(RpcError) as ei:
        C("tunnel.create", {}, SPEC)
    assert (ei.value.code, ei.value.message, ei.value.data) == (
        542, "dest_ipaddr: required by tunnel create", {"param": "dest_ipaddr"})
    with pytest.raises(RpcError) as ei:
        C("tunnel.create", {"dest_ipaddr": "1.2.3.4" * 20}, SPEC)
    assert ei.value.message.endswith("...")  # long values are shortened in the message


def test_socket_appears_only_when_listening_and_a_dead_temp_name_is_cleared(tmp_path):
    path = str(tmp_path / "l2tpd.sock")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(path + "~")       # what a daemon killed between bind and rename leaves
    dead.close()
    server = RpcServer(path, stub, nowatch)
    try:
        assert not os.path.exists(path + "~")
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(path)         # listening as soon as the name exists
        c.close()
    finally:
        server.close()
    assert not os.path.exists(path)
