"""Run real l2tpd processes on loopback addresses for the end-to-end tests.

Each daemon gets its own listen address (127.0.0.x), RPC socket and pid file in a
temporary directory; it is started in its own session and ended by its PID only.

Ports: a port found free is closed again before the daemon binds it, so another
process may take it in between (it happened under load). Two things remove that
race: free_udp_port picks ports outside the kernel's ephemeral range, which no
socket binding port 0 or sending unbound can be handed; and L2tpd.start() sees a
daemon that could not bind its port, picks a new one free on every address of
the port's group (a pair on 127.0.0.1 and 127.0.0.2 shares one port number),
moves the group's running daemons there, and starts again (bounded). So read the
port from the daemon (`d.port`) after start(), not from the number first chosen.
"""
import os
import random
import signal
import socket
import subprocess
import sys
import time

import rpc_unix

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_rng = random.Random()   # seeded from the OS: parallel test runs pick different ports
_GROUP = {}    # port -> the addresses free_udp_port found it free on (daemons sharing it)
_MOVED = {}    # port -> the port its group moved to after a clash
_RUNNING = {}  # port -> [L2tpd] started on it and not stopped


def _ephemeral_range():
    """The kernel's range for automatically assigned ports (bind to 0, connect)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999   # Linux's default


def _free_on_all(port, addrs):
    for a in addrs:
        t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            t.bind((a, port))
        except OSError:
            return False
        finally:
            t.close()
    return True


def free_udp_port(addrs=("127.0.0.1", "127.0.0.2")):
    """A UDP port free on every address in `addrs` now, picked at random outside the
    ephemeral range: between this check and the daemon's bind only a process asking
    for this very number can take it (L2tpd.start() moves the daemon if one did)."""
    addrs = tuple(addrs)
    lo, hi = _ephemeral_range()
    spans = [(b, e) for b, e in ((10000 if lo > 12000 else 1024, lo), (hi + 1, 65536))
             if e - b >= 256]
    total = sum(e - b for b, e in spans)
    for _ in range(200):
        if total:
            r = _rng.randrange(total)
            for b, e in spans:
                if r < e - b:
                    port = b + r
                    break
                r -= e - b
        else:  # no room outside the ephemeral range: let the kernel pick one
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((addrs[0], 0))
            port = s.getsockname()[1]
            s.close()
        if _free_on_all(port, addrs):
            _GROUP[port] = addrs
            return port
    raise RuntimeError(f"no UDP port free on all of {addrs} in 200 tries")


def _follow(port):
    """The port a group now uses, if its daemons moved after a clash."""
    for _ in range(100):
        if port not in _MOVED:
            break
        port = _MOVED[port]
    return port


def wait_for(cond, timeout=10.0, what="condition", interval=0.02):
    """Poll `cond()` until it returns something truthy; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = cond()
        except (rpc_unix.RpcError, OSError) as e:
            last = e
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class L2tpd:
    """One daemon process."""

    PORT_TRIES = 5  # starts on a new port after the daemon found its port taken

    def __init__(self, tmp, addr, port, name, args=(), config=None):
        self.addr = addr
        self.port = _follow(port)  # where the rest of its group went, if it moved
        self.name = name
        self.dir = os.path.join(str(tmp), name)
        os.makedirs(self.dir, exist_ok=True)
        self.sock = os.path.join(self.dir, "l2tpd.sock")
        self.pidfile = os.path.join(self.dir, "l2tpd.pid")
        self.logfile = os.path.join(self.dir, "l2tpd.log")
        self.config = config
        self.args = list(args)
        self.proc = None

    def start(self, timeout=10.0):
        """Start the daemon and wait until it answers RPC. If it could not bind its UDP
        port because something else holds it, it is started again on a new port (with
        the other running daemons of its port group), at most PORT_TRIES times."""
        for attempt in range(self.PORT_TRIES):
            log_start = os.path.getsize(self.logfile) if os.path.exists(self.logfile) else 0
            self._launch()
            wait_for(lambda: self.proc.poll() is not None or self._answers(), timeout,
                     f"{self.name} to answer on {self.sock}")
            if self.proc.poll() is None:
                _RUNNING.setdefault(self.port, []).append(self)
                return self
            if attempt + 1 == self.PORT_TRIES or not self._port_clash(log_start):
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}: "
                                     + self.read_log())
            self.log.close()
            self.proc = None
            self._move()
        raise AssertionError("unreachable")

    def _launch(self):
        cmd = [sys.executable, os.path.join(ROOT, "l2tpd.py"), "-f", "-a", self.addr,
               "-u", str(self.port), "-s", self.sock, "-P", self.pidfile,
               "--dataplane", "null"] + self.args
        if self.config:
            cmd += ["-c", self.config]
        self.log = open(self.logfile, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     cwd=self.dir)

    def _port_clash(self, log_start):
        """Did the daemon just exit because its UDP port was taken? Its log says it
        could not open its sockets, with "in use" (EADDRINUSE), or the port is held."""
        with open(self.logfile, "rb") as f:
            f.seek(log_start)
            out = f.read().decode(errors="replace")
        lines = [ln.lower() for ln in out.splitlines() if "cannot open sockets" in ln]
        if not lines:
            return False
        return any("in use" in ln for ln in lines) or not _free_on_all(self.port, (self.addr,))

    def _move(self):
        """A new port for this daemon and the running daemons of its group, free on all
        of their addresses; the others are restarted there. Callers start a group back
        to back, before using it; a member that already has tunnels is not restarted
        behind the test's back: that fails instead, saying why."""
        old = self.port
        others = [d for d in _RUNNING.get(old, []) if d is not self and d.proc is not None]
        for d in others:
            try:
                busy = d.call("tunnel.list")
            except (rpc_unix.RpcError, OSError) as e:
                busy = e
            if busy:
                raise AssertionError(f"{self.name}: port {old} on {self.addr} was taken while "
                                     f"{d.name} uses it ({busy!r}); cannot move them")
        addrs = set(_GROUP.get(old, ())) | {self.addr} | {d.addr for d in others}
        new = free_udp_port(tuple(sorted(addrs)))
        _MOVED[old] = new
        print(f"daemon_util: {self.addr}:{old} was taken; {self.name} and "
              f"{[d.name for d in others]} move to port {new}", file=sys.stderr)
        for d in others:
            d.stop()
            d.port = new
            d.start()
        self.port = new

    def _answers(self):
        try:
            self.call("system.get")
            return True
        except OSError:
            return False

    def call(self, method, params=None, timeout=5.0):
        return rpc_unix.call(method, params or {}, path=self.sock, timeout=timeout)

    def ctl(self, *words, check=True, json_out=False, timeout=20):
        cmd = [sys.executable, os.path.join(ROOT, "l2tpctl.py"), "-s", self.sock]
        if json_out:
            cmd.append("--json")
        r = subprocess.run(cmd + list(words), capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise AssertionError(f"l2tpctl {' '.join(words)} -> {r.returncode}: {r.stderr}")
        return r

    def read_log(self):
        try:
            with open(self.logfile, "rb") as f:
                return f.read().decode(errors="replace")[-4000:]
        except OSError:
            return ""

    def send_signal(self, sig):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def wait(self, timeout=10.0):
        return self.proc.wait(timeout)

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """End the daemon (by its PID); SIGKILL if it does not go in time."""
        if self.proc is None:
            return None
        group = _RUNNING.get(self.port, [])
        if self in group:
            group.remove(self)
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)
        self.log.close()
        rc = self.proc.returncode
        self.proc = None
        return rc


def tunnel_state(d, name):
    return d.call("tunnel.get", {"tunnel_name": name})["state"]
