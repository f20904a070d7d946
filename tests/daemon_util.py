"""Run real l2tpd processes on loopback addresses for the end-to-end tests.

Each daemon gets its own listen address (127.0.0.x), RPC socket and pid file in a
temporary directory; it is started in its own session and ended by its PID only.
"""
import os
import signal
import socket
import subprocess
import sys
import time

import rpc_unix

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_udp_port(addrs=("127.0.0.1", "127.0.0.2")):
    """A UDP port that is free on every address in `addrs` (bounded tries)."""
    for _ in range(50):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((addrs[0], 0))
        port = s.getsockname()[1]
        s.close()
        ok = True
        for a in addrs:
            t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                t.bind((a, port))
            except OSError:
                ok = False
            finally:
                t.close()
        if ok:
            return port
    raise RuntimeError("no free UDP port")


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

    def __init__(self, tmp, addr, port, name, args=(), config=None):
        self.addr = addr
        self.port = port
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
        cmd = [sys.executable, os.path.join(ROOT, "l2tpd.py"), "-f", "-a", self.addr,
               "-u", str(self.port), "-s", self.sock, "-P", self.pidfile,
               "--dataplane", "null"] + self.args
        if self.config:
            cmd += ["-c", self.config]
        self.log = open(self.logfile, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     cwd=self.dir)
        wait_for(lambda: self.proc.poll() is not None or self._answers(), timeout,
                 f"{self.name} to answer on {self.sock}")
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.proc.returncode}: "
                                 + self.read_log())
        return self

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
