"""The management socket under abuse (issue 11, faults 3 and 4): client slots, eviction,
batch and output bounds, strict JSON in and out, bounded integers.

Most tests run rpc_unix's RpcServer in-process with a fake dispatcher, driven by a small
selector loop in a thread (rpc_harness's Loop, as in test_rpc_unix), and check the
server's own state and counters through `loop.call` (run in the loop thread). One runs a
real l2tpd and l2tpctl. Abusive clients that must reconnect at once run as a separate
process (`ABUSER`), ended by its PID. Every wait is bounded by WAIT: socket timeouts,
Event.wait, joins, and `wait_until`. Raw parses every line it reads as strict JSON.
"""
import json
import os
import signal
import subprocess
import sys
import threading

import pytest

import rpc_unix
from daemon_util import L2tpd, free_udp_port
from rpc_harness import WAIT, Raw, Servers, req
from rpc_unix import RpcClient, RpcError, RpcServer

BIG = 45000  # bytes: about one rpc.describe reply


class Fake:
    """A stand-in for the daemon's dispatcher that counts what it ran, per connection."""

    def __init__(self):
        self.calls = {}

    def ran(self, method=None):
        return sum(n for (m, _), n in self.calls.items() if method in (None, m))

    def ran_for(self, conn, method):
        return self.calls.get((method, conn.fd), 0)

    def __call__(self, method, params, conn):
        key = (method, conn.fd)
        self.calls[key] = self.calls.get(key, 0) + 1
        if method == "echo":
            return params
        if method == "big":  # a reply the size of rpc.describe
            return "x" * BIG
        if method == "nan.result":
            return {"v": float("nan")}
        if method == "inf.error":
            raise RpcError(rpc_unix.ERR_PARAM_BAD_VALUE, "v: bad", {"value": float("inf")})
        if method == "notify.nan":
            return conn.server.notify(conn, "event", {"v": float("-inf")})
        if method == "events.subscribe":
            conn.subscribed = True
            return True
        raise RpcError(rpc_unix.ERR_METHOD_NOT_FOUND, f"method not found: {method}")


@pytest.fixture
def serve(tmp_path):
    """serve(handler=None, **server_kwargs) -> (loop, server, path, fake): the server runs
    `handler`, else the Fake; everything is stopped afterwards."""
    servers = Servers(tmp_path)

    def start(handler=None, **kw):
        fake = Fake()
        return (*servers.start(handler or fake, **kw), fake)

    yield start
    servers.stop()


def code_of(reply):
    assert "result" not in reply, reply
    return reply["error"]["code"]


# A client that holds connections and reconnects the moment one is closed: idle ones, or
# ones that sent half a request. Runs for at most argv[4] seconds.
ABUSER = r"""
import selectors, socket, sys, time
path, n, mode, life = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
end = time.monotonic() + life
sel = selectors.DefaultSelector()

def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2.0)
    try:
        s.connect(path)
        if mode == "partial":
            s.send(b'{"jsonrpc": "2.0", "id": 1, "me')
    except OSError:
        s.close()
        return
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)

for _ in range(n):
    connect()
print("ready", flush=True)
while time.monotonic() < end:
    for key, _ in sel.select(0.1):
        try:
            data = key.fileobj.recv(4096)
        except BlockingIOError:
            continue
        except OSError:
            data = b""
        if not data:  # closed by the server: straight back in
            sel.unregister(key.fileobj)
            key.fileobj.close()
            connect()
    while len(sel.get_map()) < n and time.monotonic() < end:
        connect()
"""


class Abuser:
    def __init__(self, path, n, mode="idle", life=60.0):
        self.proc = subprocess.Popen([sys.executable, "-c", ABUSER, path, str(n), mode,
                                      str(life)], stdout=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, start_new_session=True)

    def wait_ready(self):
        box = []
        t = threading.Thread(target=lambda: box.append(self.proc.stdout.readline()),
                             daemon=True)
        t.start()
        t.join(WAIT)
        assert box == [b"ready\n"], box

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(WAIT)
        self.proc.stdout.close()


# --- Fault 3: client slots -----------------------------------------------------------------

def test_idle_clients_cannot_lock_out_a_request(serve):
    loop, server, path, fake = serve()  # 16 slots
    raws = [Raw(path) for _ in range(20)]  # connect and say nothing
    loop.wait_until(lambda: server.stats["clients_accepted"] == 20, "20 clients accepted")
    assert loop.call(lambda: (len(server.connections), server.stats["clients_evicted"],
                              server.stats["clients_refused"])) == (16, 4, 0)
    with RpcClient(path) as c:
        assert c.call("echo", {"n": 1}) == {"n": 1}
    assert loop.call(lambda: server.stats["clients_evicted"]) == 5
    # The five evicted were told why, and closed; the others were never disturbed.
    notices = [r.notice() for r in raws]
    evicted = [n for n in notices if n is not None]
    assert len(evicted) == 5, notices
    for n in evicted:
        assert n["id"] is None and n["error"]["code"] == rpc_unix.ERR_EVICTED
        assert n["error"]["message"] == ("closing: a new client needs this slot (all 16 are "
                                         "taken) and this connection was idle the longest")
    assert any("evicted for a new client (idle for" in m for m in loop.log)
    for r in raws:
        r.close()


def test_partial_request_clients_are_evicted_before_idle_ones(serve):
    loop, server, path, fake = serve(max_clients=4)
    idle = Raw(path)  # the oldest connection, idle
    loop.wait_until(lambda: len(server.connections) == 1, "the idle client accepted")
    loris = [Raw(path) for _ in range(3)]
    for r in loris:
        for b in b'{"jsonrpc": "2.0", "i':  # one byte at a time, never a whole line
            r.send(bytes([b]))
    loop.wait_until(lambda: sorted(c.eviction_rank()[0] for c in server.connections.values())
                    == [0, 0, 0, 1], "three partial requests seen")
    # Each new client evicts a slow loris first, although the idle one is older.
    fresh = []
    for i in range(3):
        fresh.append(Raw(path))
        loop.wait_until(lambda n=i + 1: server.stats["clients_evicted"] == n, "an eviction")
        assert idle.notice() is None
    for r in loris:
        n = r.notice()
        assert n["error"]["code"] == rpc_unix.ERR_EVICTED, n
        assert "stuck on a partial request the longest" in n["error"]["message"]
    # Then the longest idle; a normal request gets through all along.
    with RpcClient(path) as c:
        assert c.call("echo", {"ok": 1}) == {"ok": 1}
    assert idle.notice()["error"]["code"] == rpc_unix.ERR_EVICTED
    assert all(r.notice() is None for r in fresh)
    for r in [idle] + loris + fresh:
        r.close()


@pytest.mark.parametrize("mode", ["idle", "partial"])
def test_reconnecting_abuser_cannot_hold_the_slots(serve, mode):
    loop, server, path, fake = serve(max_clients=4)
    abuser = Abuser(path, 12, mode)  # three times the slots, each back in the moment it goes
    try:
        abuser.wait_ready()
        loop.wait_until(lambda: len(server.connections) == 4, "the abuser holds every slot")
        for i in range(20):
            assert rpc_unix.call("echo", {"i": i}, path=path, timeout=WAIT) == {"i": i}
        assert loop.call(lambda: fake.ran("echo")) == 20
        assert loop.call(lambda: server.stats["clients_evicted"]) >= 1
        assert loop.call(lambda: server.stats["clients_refused"]) == 0
        assert abuser.proc.poll() is None  # it kept at it all along
    finally:
        abuser.stop()


def test_a_client_that_sent_its_request_is_served_not_evicted(tmp_path):
    """Virtual clock, by hand: the eviction order and the read before evicting."""
    fake = Fake()
    server = RpcServer(str(tmp_path / "s"), fake, lambda fd, obj, ev: None, max_clients=3)
    try:
        a, b, c = Raw(server.path), Raw(server.path), Raw(server.path)
        server.on_readable(100)
        ca, cb, cc = sorted(server.connections.values(), key=lambda x: x.fd)
        c.send(req("events.subscribe"))
        cc.on_readable(150)
        assert c.lines(1)[0]["result"] is True
        b.send(req("echo", {"b": 1}))  # sent, not yet read by the server
        # b is idle as long as a, but has a request waiting: it is served, a goes.
        d = Raw(server.path)
        server.on_readable(500)
        assert b.lines(1)[0]["result"] == {"b": 1}
        assert ca.closed and not cb.closed and not cc.closed
        assert a.lines(1)[0]["error"]["code"] == rpc_unix.ERR_EVICTED
        assert [x.eviction_rank()[:2] for x in (cb, cc)] == [(1, 500), (3, 150)]
        # An idle client goes before an idle subscriber, even a younger one.
        cd = next(x for x in server.connections.values() if x not in (cb, cc))
        e = Raw(server.path)
        server.on_readable(600)
        assert not cc.closed and cb.closed != cd.closed
        for r in (a, b, c, d, e):
            r.close()
    finally:
        server.close()


def test_the_client_being_served_is_never_evicted(tmp_path):
    """ERR_TOO_MANY_CLIENTS remains for one case: every slot's request is being handled."""
    def handler(method, params, conn):
        conn.server.on_readable(200)  # a new client arrives while this request runs
        return "served"

    server = RpcServer(str(tmp_path / "s"), handler, lambda fd, obj, ev: None, max_clients=1)
    try:
        a = Raw(server.path)
        server.on_readable(100)
        (ca,) = server.connections.values()
        b = Raw(server.path)  # waits in the listen queue
        a.send(req("anything"))
        ca.on_readable(150)
        assert a.lines(1)[0]["result"] == "served" and not ca.closed
        assert b.lines(1)[0]["error"] == {"code": rpc_unix.ERR_TOO_MANY_CLIENTS,
                                          "message": "too many clients (max 1)"}
        assert server.stats["clients_refused"] == 1 and server.stats["clients_evicted"] == 0
        a.close()
        b.close()
    finally:
        server.close()


# --- Fault 3: batches and output bounds ----------------------------------------------------

def test_batch_longer_than_max_batch_is_refused_whole(serve):
    loop, server, path, fake = serve()
    raw = Raw(path)
    n = server.max_batch + 1
    batch = [{"jsonrpc": "2.0", "id": i, "method": "echo"} for i in range(n)]
    reply = raw.ask(json.dumps(batch).encode() + b"\n")
    assert reply == {"jsonrpc": "2.0", "id": None, "error": {
        "code": rpc_unix.ERR_BATCH_TOO_LARGE,
        "message": f"batch of {n} requests; at most 512 allowed (none was run)",
        "data": {"max_batch": 512}}}
    # The line: ~1,200 rpc.describe calls in one line under 64 KiB.
    line = json.dumps([{"jsonrpc": "2.0", "id": i, "method": "rpc.describe"}
                       for i in range(1200)], separators=(",", ":")).encode() + b"\n"
    assert len(line) < server.max_request
    assert code_of(raw.ask(line)) == rpc_unix.ERR_BATCH_TOO_LARGE
    assert loop.call(lambda: (fake.ran(), server.stats["batches_refused"])) == (0, 2)
    # A batch at the bound is run; the connection is still fine.
    replies = raw.ask(json.dumps(batch[:-1]).encode() + b"\n")
    assert [r["id"] for r in replies] == list(range(n - 1))
    raw.close()


def test_output_bounded_for_clients_that_never_read(serve):
    loop, server, path, fake = serve()
    limit = server.max_output
    bound = limit + BIG + 100 + server.max_batch * 200  # one reply over, small errors
    # Eight clients each send the biggest batch allowed of big replies, and never read.
    batch = json.dumps([{"jsonrpc": "2.0", "id": i, "method": "big"}
                        for i in range(server.max_batch)]).encode() + b"\n"
    raws = [Raw(path) for _ in range(8)]
    for r in raws:
        r.send(batch)
    loop.wait_until(lambda: len(server.connections) == 8 and all(
        c.events == rpc_unix.EVENT_WRITE for c in server.connections.values()),
        "every client stalled on its output")
    state = loop.call(lambda: [(c.output_bytes, fake.ran_for(c, "big"))
                               for c in server.connections.values()])
    for queued, ran in state:
        assert queued <= bound
        assert limit // (BIG + 50) <= ran <= limit // BIG + 1  # while under the bound
    assert loop.call(server.output_bytes) <= 8 * bound
    assert loop.call(lambda: server.stats["peak_output"]) <= bound
    assert loop.call(lambda: server.stats["batch_requests_not_run"]) == sum(
        server.max_batch - ran for _, ran in state)
    # What one of them gets when it does read: the replies that fit, then an error each.
    replies = raws[0].lines(1)[0]
    ran = sum(1 for r in replies if "result" in r)
    assert limit // (BIG + 50) <= ran <= limit // BIG + 1
    assert [r["id"] for r in replies] == list(range(server.max_batch))
    assert all(r["result"] == "x" * BIG for r in replies[:ran])
    assert {(r["error"]["code"], r["error"]["message"]) for r in replies[ran:]} == {
        (rpc_unix.ERR_OUTPUT_LIMIT, f"not run: the replies before it in this batch passed "
                                    f"{limit} bytes")}
    for r in raws:
        r.close()


def test_pipelined_requests_wait_for_a_slow_reader_none_lost(serve):
    loop, server, path, fake = serve()
    raw = Raw(path)
    n = 200  # 9 MB of replies if all were queued at once
    raw.send(b"".join(req("big", rid=i) for i in range(n)))
    loop.wait_until(lambda: any(c.events == rpc_unix.EVENT_WRITE
                                for c in server.connections.values()), "the client stalled")
    ran, queued = loop.call(lambda: next((fake.ran("big"), c.output_bytes)
                                         for c in server.connections.values()))
    assert ran <= server.max_output // BIG + 1
    assert queued <= server.max_output + BIG + 100
    # Reading lets the rest through, in order, and nothing was dropped or refused.
    replies = raw.lines(n)
    assert [r["id"] for r in replies] == list(range(n))
    assert all(r["result"] == "x" * BIG for r in replies)
    assert loop.call(lambda: server.stats["peak_output"]) <= server.max_output + BIG + 100
    assert raw.ask(req("echo", {"after": 1}))["result"] == {"after": 1}
    raw.close()


# --- Fault 4: strict JSON ------------------------------------------------------------------

def test_nan_and_infinity_requests_are_refused(serve):
    loop, server, path, fake = serve()
    raw = Raw(path)
    cases = [
        (b'{"jsonrpc":"2.0","id":1,"method":"echo","params":{"x":NaN}}',
         "parse error: NaN is not valid JSON"),
        (b'{"jsonrpc":"2.0","id":1,"method":"echo","params":{"x":Infinity}}',
         "parse error: Infinity is not valid JSON"),
        (b'{"jsonrpc":"2.0","id":1,"method":"echo","params":{"x":[-Infinity]}}',
         "parse error: -Infinity is not valid JSON"),
        (b'{"jsonrpc":"2.0","id":1,"method":"echo","params":{"x":1e999}}',
         "parse error: number 1e999 is out of range"),
        (b'{"jsonrpc":"2.0","id":NaN,"method":"echo"}', "parse error: NaN is not valid JSON"),
        (b'[{"jsonrpc":"2.0","id":1,"method":"echo","params":{"x":-1e400}}]',
         "parse error: number -1e400 is out of range"),
        (b'{"jsonrpc":"2.0","id":1,"method":"echo","params":{"x":' + b"9" * 5000 + b"}}",
         "parse error: "),
    ]
    for line, message in cases:
        reply = raw.ask(line + b"\n")
        assert reply["id"] is None and code_of(reply) == rpc_unix.ERR_PARSE == -32700, line
        assert reply["error"]["message"].startswith(message), reply
    assert loop.call(fake.ran) == 0  # none of them reached the dispatcher
    # Ids that would not come back unchanged to JavaScript or Go.
    for rid in (2 ** 53, -(2 ** 53), 10 ** 400):
        reply = raw.ask(b'{"jsonrpc":"2.0","method":"echo","id":%d}\n' % rid)
        assert code_of(reply) == rpc_unix.ERR_INVALID_REQUEST and reply["id"] is None
    assert raw.ask(req("echo", {"x": 1.5e300}, rid=2 ** 53 - 1)) == {
        "jsonrpc": "2.0", "id": 2 ** 53 - 1, "result": {"x": 1.5e300}}
    raw.close()


def test_replies_and_notifications_are_always_strict_json(serve):
    loop, server, path, fake = serve()
    raw = Raw(path)  # Raw parses every line with strict_loads
    reply = raw.ask(req("nan.result", rid=1))
    assert reply == {"jsonrpc": "2.0", "id": 1, "error": {
        "code": rpc_unix.ERR_INTERNAL, "message": "internal error in nan.result: result is "
                                                  "not JSON"}}
    assert any("nan.result: result is not strict JSON" in m for m in loop.log)
    reply = raw.ask(req("inf.error", rid=2))  # error data that is not JSON is left out
    assert reply["error"] == {"code": rpc_unix.ERR_PARAM_BAD_VALUE, "message": "v: bad"}
    assert raw.ask(req("events.subscribe", rid=3))["result"] is True
    assert raw.ask(req("notify.nan", rid=4)) == {"jsonrpc": "2.0", "id": 4, "result": False}
    assert loop.call(lambda: server.broadcast("event", {"v": float("nan")})) == 0
    assert any("notification 'event' not sent: not strict JSON" in m for m in loop.log)
    batch = [json.loads(req(m, rid=i)) for i, m in enumerate(["nan.result", "echo"])]
    replies = raw.ask(json.dumps(batch).encode() + b"\n")
    assert [code_of(replies[0]), replies[1]["result"]] == [rpc_unix.ERR_INTERNAL, {}]
    # The client refuses to send them too.
    with RpcClient(path) as c:
        with pytest.raises(ValueError):
            c.call("echo", {"x": float("nan")})
        assert c.call("echo", {"x": 1}) == {"x": 1}
    raw.close()


# --- Fault 4: bounded integers -------------------------------------------------------------

def bad_value(name, value, spec):
    with pytest.raises(RpcError) as ei:
        rpc_unix.coerce_params("tunnel_profile.modify", {name: value}, {name: spec})
    e = ei.value
    assert e.code == rpc_unix.ERR_PARAM_BAD_VALUE == 541
    assert e.data == {"param": name, "value": value}
    return e.message


def test_huge_integers_are_refused_with_the_parameter_error():
    unbounded = {"type": "int", "min": 0}  # no max in the spec: the default 32-bit range
    hex4000 = "0x" + "f" * 4000
    assert bad_value("hello_timeout", hex4000, unbounded) == (
        "hello_timeout: '0xffffffffffffffffffffffffffffffffffffffffffffffffffffff... is "
        "above the maximum 4294967295")
    assert bad_value("mtu", hex4000, {"type": "int", "min": 68, "max": 65535}).endswith(
        "is above the maximum 65535")
    assert bad_value("hello_timeout", "-" + hex4000, unbounded).endswith(
        "is below the minimum 0")
    # Decimal strings past CPython's int-string limit (4,300 digits), and leading zeros.
    assert bad_value("hello_timeout", "9" * 5000, unbounded).endswith(
        "is above the maximum 4294967295")
    assert rpc_unix.coerce_value("x", "0" * 5000 + "30", unbounded) == 30
    # Ints as JSON gives them, and one too big for str() (it cannot come from JSON).
    assert bad_value("hello_timeout", 10 ** 4000, unbounded) == (
        "hello_timeout: an integer too large to show is above the maximum 4294967295")
    with pytest.raises(RpcError) as ei:
        rpc_unix.coerce_value("hello_timeout", 10 ** 5000, unbounded)
    assert ei.value.message == ("hello_timeout: an integer too large to show is above the "
                                "maximum 4294967295")
    assert bad_value("hello_timeout", 2 ** 32, unbounded) == (
        "hello_timeout: 4294967296 is above the maximum 4294967295")
    assert rpc_unix.coerce_value("x", 2 ** 32 - 1, unbounded) == 2 ** 32 - 1
    assert rpc_unix.coerce_value("x", "0xFFFFFFFF", unbounded) == 2 ** 32 - 1
    # Only ASCII digits, no underscores (int() would take both).
    assert bad_value("x", "1_000", unbounded) == "x: expected an integer, got '1_000'"
    assert bad_value("x", "\u0663", unbounded) == "x: expected an integer, got '\u0663'"
    assert bad_value("x", "0x", unbounded) == "x: expected an integer, got '0x'"
    assert [rpc_unix.coerce_value("x", v, unbounded) for v in (" +30 ", "0X1e", "-0x0")] == [
        30, 30, 0]
    # Flag masks and booleans too.
    flags = {"type": "flags", "choices": ["a"], "bits": {"a": 1}}
    assert bad_value("trace_flags", hex4000, flags).endswith("is above the maximum 4294967295")
    assert bad_value("b", 10 ** 4000, {"type": "bool"}) == (
        "b: expected yes or no, got an integer too large to show")


def test_huge_integer_through_the_server(serve):
    def handler(method, params, conn):
        return rpc_unix.coerce_params(method, params, {"hello_timeout": {"type": "int",
                                                                         "min": 0}})

    loop, server, path, _ = serve(handler)
    raw = Raw(path)
    reply = raw.ask(req("x.modify", {"hello_timeout": "0x" + "f" * 4000}))
    assert code_of(reply) == rpc_unix.ERR_PARAM_BAD_VALUE
    assert reply["error"]["data"]["param"] == "hello_timeout"
    assert reply["error"]["message"].endswith("is above the maximum 4294967295")
    reply = raw.ask(req("x.modify", {"hello_timeout": 10 ** 4000}))  # a JSON number
    assert code_of(reply) == rpc_unix.ERR_PARAM_BAD_VALUE
    assert raw.ask(req("x.modify", {"hello_timeout": "0x1e"}))["result"] == {
        "hello_timeout": 30}
    assert not any("raised" in m for m in loop.log)  # no traceback, no internal error
    raw.close()


# --- End to end: a real daemon and l2tpctl ---------------------------------------------------

def test_daemon_l2tpctl_gets_through_abuse(tmp_path):
    d = L2tpd(tmp_path, "127.0.0.1", free_udp_port(("127.0.0.1",)), "d").start()
    raws = []
    abuser = None
    try:
        # Sixteen idle connections and four slow lorises: more than the 16 slots.
        raws = [Raw(d.sock) for _ in range(16)]
        for _ in range(4):
            raws.append(Raw(d.sock))
            raws[-1].send(b'{"jsonrpc": "2.0", "id": 1, "met')
        d.ctl("system", "show")
        # A 4,000-digit hex value is refused naming the parameter; show still works.
        r = d.ctl("tunnel", "profile", "modify", "profile_name=default",
                  "hello_timeout=0x" + "f" * 4000, check=False)
        assert r.returncode != 0
        assert "error 541: hello_timeout: '0xfff" in r.stderr
        assert "is above the maximum" in r.stderr and "Traceback" not in r.stderr
        assert d.call("tunnel_profile.get", {"profile_name": "default"})["hello_timeout"] == 60
        # NaN is refused; the daemon's replies parse strictly.
        raw = Raw(d.sock)
        reply = raw.ask(b'{"jsonrpc":"2.0","id":1,"method":"system.get","params":'
                        b'{"x":NaN}}\n')
        assert code_of(reply) == rpc_unix.ERR_PARSE
        describe = raw.ask(req("rpc.describe"))["result"]
        assert "system.get" in describe
        raw.close()
        # An abuser that reconnects the moment it is closed, with more connections than
        # there are slots: l2tpctl still gets through, every time.
        abuser = Abuser(d.sock, 24, "partial")
        abuser.wait_ready()
        for _ in range(3):
            d.ctl("system", "show")
        assert "Traceback" not in d.read_log()
    finally:
        if abuser is not None:
            abuser.stop()
        for r in raws:
            r.close()
        d.stop()
