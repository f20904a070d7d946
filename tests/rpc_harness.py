"""The test harness for rpc_unix's server, shared by test_rpc_unix and test_rpc_limits
(and, through test_rpc_unix, test_l2tpctl).

- `Loop`: the daemon's loop in miniature, a selector loop in a thread written the way
  rpc_unix's module doc tells the daemon to (watch -> selector + fds dict,
  next_deadline/on_timer), with `call` to run a job in the loop thread, `wait_until` to
  poll server state, and an optional virtual clock (`Loop(clock=0)`, `set_clock`).
- `Servers`: what a test module's `serve` fixture builds on: RpcServers on sockets in
  tmp_path, each on a started Loop of its own, all stopped at the end.
- `Raw`: a bare client socket speaking lines, for the inputs and behaviour RpcClient
  would never produce; every reply is parsed as strict JSON (`strict_loads`).
- `req`: one JSON-RPC request line.

No helper measures elapsed wall time: every wait is bounded by WAIT (socket timeouts,
Event.wait, join timeouts, `wait_until`'s deadline), and a bound that runs out is a
failure, never a result.
"""
import json
import os
import selectors
import socket
import threading
import time

from rpc_unix import RpcServer

WAIT = 10.0  # seconds: the bound on the harness's waits for something that should happen soon


def strict_loads(data):
    """json.loads as strict parsers (jq, Go, JavaScript) read: no NaN or Infinity."""
    def refuse(name):
        raise ValueError(f"not strict JSON: {name}")

    return json.loads(data, parse_constant=refuse)


def req(method, params=None, rid=1):
    """A JSON-RPC 2.0 request line (bytes, newline-terminated); params left out if None."""
    msg = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        msg["params"] = params
    return json.dumps(msg).encode() + b"\n"


class Loop:
    """The daemon's loop in miniature: one thread, fds[fileno] = obj, timers from servers.

    Put servers in `servers` (built with `loop.watch`) before `start`; `stop` closes them.
    `clock`: None for the machine's monotonic clock; an int (ms) for a virtual clock that
    stands still until `set_clock` moves it, so idle deadlines pass exactly when a test
    says, however slow the machine."""

    def __init__(self, clock=None):
        self.clock = clock
        self.sel = selectors.DefaultSelector()
        self.fds = {}
        self.servers = []
        self.log = []
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self.sel.register(self._wake_r, selectors.EVENT_READ)
        self._jobs = []
        self._lock = threading.Lock()
        self._stop = False
        self.thread = None

    def watch(self, fd, obj, events):
        """The `watch` callback rpc_unix's objects are given: events 0 forgets fd."""
        if not events:
            self.sel.unregister(fd)
            del self.fds[fd]
        elif fd in self.fds:
            self.sel.modify(fd, events)
            self.fds[fd] = obj
        else:
            self.sel.register(fd, events)
            self.fds[fd] = obj

    def now(self):
        """The loop's time in ms: the virtual clock if there is one, else monotonic."""
        if self.clock is not None:
            return self.clock
        return int(time.monotonic() * 1000)

    def set_clock(self, ms):
        """Virtual clock: move it to `ms` and run every server's timers at that instant,
        in the loop thread; returns once they ran."""
        assert self.clock is not None and ms >= self.clock

        def job():
            self.clock = ms
            for s in self.servers:
                s.on_timer(ms)
        self.call(job)

    def run(self):
        """The loop itself (the thread's target): select until the earliest server
        deadline, dispatch readiness, run timers, then the jobs queued by `call`."""
        while not self._stop:
            deadlines = [d for d in (s.next_deadline() for s in self.servers) if d is not None]
            timeout = max(0, min(deadlines) - self.now()) / 1000 if deadlines else None
            for key, ev in self.sel.select(timeout):
                if key.fd == self._wake_r:
                    os.read(self._wake_r, 512)
                    continue
                obj = self.fds.get(key.fd)
                if obj is not None and ev & selectors.EVENT_READ:
                    obj.on_readable(self.now())
                obj = self.fds.get(key.fd)  # on_readable may have closed it
                if obj is not None and ev & selectors.EVENT_WRITE:
                    obj.on_writable(self.now())
            for s in self.servers:
                s.on_timer(self.now())
            with self._lock:
                jobs, self._jobs = self._jobs, []
            for job in jobs:
                job()

    def call(self, fn):
        """Run fn in the loop thread (the server is not thread-safe) and return its result,
        or raise its exception; fails if it has not run within WAIT."""
        done = threading.Event()
        box = {}

        def job():
            try:
                box["r"] = fn()
            except BaseException as e:
                box["e"] = e
            finally:
                done.set()

        with self._lock:
            self._jobs.append(job)
        os.write(self._wake_w, b"x")
        assert done.wait(WAIT)
        if "e" in box:
            raise box["e"]
        return box["r"]

    def wait_until(self, fn, what):
        """Poll fn (run in the loop thread) until truthy and return that; fail after WAIT
        seconds, naming `what` was awaited."""
        deadline = time.monotonic() + WAIT
        while True:
            got = self.call(fn)
            if got:
                return got
            assert time.monotonic() < deadline, f"timed out waiting for {what} ({got!r})"
            time.sleep(0.005)

    def start(self):
        """Run the loop in a daemon thread."""
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def stop(self):
        """Stop the thread (within WAIT), close every server and the loop's own fds."""
        if self.thread is not None:
            self._stop = True
            os.write(self._wake_w, b"x")
            self.thread.join(WAIT)
            assert not self.thread.is_alive()
        for s in self.servers:
            s.close()
        self.sel.close()
        os.close(self._wake_r)
        os.close(self._wake_w)


class Servers:
    """RpcServers for one test, each on its own started Loop, the sockets in `tmp_path`
    (l2tpd1.sock, l2tpd2.sock, ...); `stop` stops them all. A `serve` fixture yields a
    function that calls `start` and stops the lot afterwards."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.loops = []

    def start(self, handler, clock=None, **server_kwargs):
        """A server running `handler` on a new Loop (see Loop for `clock`), logging into
        loop.log unless `log` is given -> (loop, server, path)."""
        loop = Loop(clock)
        self.loops.append(loop)
        path = str(self.tmp_path / f"l2tpd{len(self.loops)}.sock")
        server_kwargs.setdefault("log", loop.log.append)
        server = RpcServer(path, handler, loop.watch, **server_kwargs)
        loop.servers.append(server)
        loop.start()
        return loop, server, path

    def stop(self):
        for loop in self.loops:
            loop.stop()


class Raw:
    """A bare client socket speaking lines, for what RpcClient would never send or do.

    Every read waits up to WAIT; every line received is parsed with `strict_loads`, so a
    reply that strict parsers would refuse (NaN, Infinity) fails the test."""

    def __init__(self, path):
        """Connect to `path`; while the server's listen queue is full, retry for up to
        WAIT (the server accepts soon). A connect that the queue takes returns at once."""
        deadline = time.monotonic() + WAIT
        while True:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(WAIT)
            try:
                self.sock.connect(path)
                break
            except BlockingIOError:  # the listen queue is full: the server accepts soon
                self.sock.close()
                assert time.monotonic() < deadline, "listen queue full for too long"
                time.sleep(0.005)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def lines(self, n):
        """The next n lines, parsed strictly (waits up to WAIT per read); fails if the
        server closes first."""
        while self.buf.count(b"\n") < n:
            data = self.sock.recv(1 << 20)
            assert data, "connection closed while waiting for a line"
            self.buf += data
        parts = self.buf.split(b"\n", n)
        self.buf = parts[n]
        return [strict_loads(p) for p in parts[:n]]

    def line(self):
        """The next line, parsed strictly."""
        return self.lines(1)[0]

    def ask(self, data):
        """Send `data` (one or more lines) and return the first line of the reply."""
        self.send(data)
        return self.line()

    def closed(self):
        """True once the server closes (waits up to WAIT); replies before EOF are dropped."""
        while True:
            data = self.sock.recv(65536)
            if not data:
                return True

    def quiet(self):
        """True if the server has neither sent anything nor closed: checked without
        waiting (what has arrived by now is what the server did before now)."""
        self.sock.setblocking(False)
        try:
            self.sock.recv(65536, socket.MSG_PEEK)
            return False  # data, or b"" for a close
        except BlockingIOError:
            return True
        finally:
            self.sock.settimeout(WAIT)

    def notice(self):
        """What the server sent and closed with, without waiting: the first line that has
        arrived, parsed strictly; "eof" for a close with nothing before it; None if
        nothing has arrived (still open)."""
        self.sock.setblocking(False)
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return None
        finally:
            self.sock.settimeout(WAIT)
        return strict_loads(data.split(b"\n")[0]) if data else "eof"

    def close(self):
        self.sock.close()
