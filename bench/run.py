#!/usr/bin/env python3
"""bench/run.py: the control-plane scale benchmarks of issue 7 (see bench/README.md).

    python bench/run.py                 # full sizes (make bench), about 6 minutes
    python bench/run.py --smoke         # tiny sizes (make bench-smoke), well under a minute
    python bench/run.py --only setup,idle --sizes 1000,5000
    python bench/run.py --profile       # our daemons run under cProfile (slower!)

Scenarios (all on loopback, null data path):
  setup     tunnel setup against an LNS: ours and xl2tpd, same generator, each size on
            a fresh LNS process (bench/loadgen.py is the LAC).
  idle      at the largest setup size: the LNS's CPU over --idle seconds with every
            tunnel established and the generator answering Hellos (both LNSes).
  mgmt      at the largest setup size, our LNS: `l2tpctl tunnel list` / `tunnel show`
            wall time (a fresh l2tpctl process each, as a user runs it) and the bare
            JSON-RPC round trip of tunnel.list / tunnel.get.
  lac       our LAC to our LNS: --lac-tunnels tunnels with one session each, created by
            JSON-RPC batches to the LAC (tunnel.create + session.create).
  sessions  65,535 sessions in one tunnel to our LNS: from the generator (ICRQ/ICCN)
            and from our LAC (session.create batches); time, and memory per session
            beyond the baseline with the idle tunnel.

Writes bench/out/results.json and bench/out/results.md (the table, also printed).
Every process it starts is in its own session and is ended by its PID only (try/finally
and atexit); every wait is bounded. Exit status 1 when a scenario crashed or produced
no numbers (the smoke check), 0 otherwise: missed targets are reported, not failures.
"""
import argparse
import atexit
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
OUT = os.path.join(BENCH, "out")
PY = sys.executable
XL2TPD = "/usr/sbin/xl2tpd"
L2TPD = os.path.join(ROOT, "l2tpd.py")   # --l2tpd: another build or a patched experiment
CLK_TCK = os.sysconf("SC_CLK_TCK")

LNS_ADDR = "127.0.0.2"
LAC_ADDR = "127.0.0.3"
GEN_ADDR = "127.0.0.1"

# Targets of issue 7 on this 2-core machine.
TARGETS = {
    "setup_10k_s": 2.0,            # 10,000 tunnels in at most 2 s
    "setup_10k_vs_xl2tpd": 5.0,    # at least 5x faster than xl2tpd at 10,000
    "setup_1k_vs_xl2tpd": 2.0,     # 1,000 tunnels within 2x of xl2tpd's time
    "bytes_per_tunnel": 3 * 1024,
    "bytes_per_session": 1.5 * 1024,
    "sessions_65535_s": 60.0,
    "idle_cpu_pct": 2.0,           # of one core, 10,000 idle tunnels
    "tunnel_list_s": 0.5,
}


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes
_procs = []


class Proc:
    """A process we started, in its own session; stopped by its PID only."""

    def __init__(self, argv, name, logpath, stdin=None, stdout=None, cwd=None, env=None):
        self.name = name
        self.logpath = logpath
        self.logf = open(logpath, "wb")
        self.p = subprocess.Popen(argv, stdin=stdin, stdout=stdout or self.logf,
                                  stderr=self.logf, start_new_session=True, cwd=cwd, env=env)
        self.pid = self.p.pid
        _procs.append(self)

    def alive(self):
        return self.p.poll() is None

    def stop(self, sig=signal.SIGTERM, grace=10.0):
        if self.p.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(grace)
            except subprocess.TimeoutExpired:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.p.wait(5)
        if self in _procs:
            _procs.remove(self)
        self.logf.close()
        return self.p.returncode

    def log_tail(self, n=15):
        try:
            with open(self.logpath, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return lines[-n:]
        except OSError:
            return []


def _cleanup():
    for p in list(_procs):
        try:
            p.stop(signal.SIGKILL, 2.0)
        except Exception:
            pass


atexit.register(_cleanup)


def _on_signal(signum, frame):
    raise SystemExit(f"interrupted by signal {signum}")


# ---------------------------------------------------------------- /proc sampling
def cpu_seconds(pid):
    """CPU time (user + system) of every thread of `pid`: schedstat (ns) when the kernel
    has it, else /proc/PID/stat (clock ticks)."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
        for tid in tids:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        pass
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def mem_kb(pid):
    """{'rss': VmRSS, 'hwm': VmHWM} in kB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                out["rss"] = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                out["hwm"] = int(line.split()[1])
    return out


def sample(proc):
    m = mem_kb(proc.pid)
    return {"t": time.monotonic(), "cpu": cpu_seconds(proc.pid), "rss_kb": m.get("rss"),
            "hwm_kb": m.get("hwm")}


def udp_bound(addr, port):
    """True when some socket is bound to addr:port (reads /proc/net/udp)."""
    a = socket.inet_aton(addr)
    want = f"{a[3]:02X}{a[2]:02X}{a[1]:02X}{a[0]:02X}:{port:04X}"
    try:
        with open("/proc/net/udp") as f:
            return any(line.split()[1] == want for line in f.readlines()[1:])
    except OSError:
        return False


def wait_until(cond, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.02)
    raise RuntimeError(f"timed out after {timeout} s waiting for {what}")


def free_port(addrs):
    for _ in range(100):
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
        if ok and not udp_bound(addrs[0], port):
            return port
    raise RuntimeError("no free UDP port")


# ---------------------------------------------------------------- the daemons
class Ours:
    """Our l2tpd (null data path), optionally under cProfile."""
    impl = "l2tpd"

    def __init__(self, tmp, addr, name, profile=None, memprof=None):
        self.addr = addr
        self.port = free_port([addr])
        self.sock = os.path.join(tmp, f"{name}.sock")
        argv = [PY]
        self.profile = profile
        self.memprof = memprof
        if profile:
            argv += ["-m", "cProfile", "-o", profile]
        elif memprof:
            argv += [os.path.join(BENCH, "memprof.py"), memprof, "--"]
        argv += [L2TPD, "-f", "-a", addr, "-u", str(self.port),
                 "-s", self.sock, "--dataplane", "null"]
        self.proc = Proc(argv, name, os.path.join(tmp, f"{name}.log"), cwd=ROOT)
        wait_until(lambda: not self.proc.alive() or (os.path.exists(self.sock)
                                                    and udp_bound(addr, self.port)),
                   20, f"{name} to listen")
        if not self.proc.alive():
            raise RuntimeError(f"{name} exited: {self.proc.log_tail()}")
        # The RPC socket answers: the loop is running.
        Rpc(self.sock).call("system.get")

    def snapshot(self, n):
        """memprof: take tracemalloc snapshot n (0 = the baseline); wait for report n."""
        if not self.memprof:
            return
        os.kill(self.proc.pid, signal.SIGUSR1)
        if n:
            wait_until(lambda: os.path.exists(f"{self.memprof}.{n}.txt"), 600,
                       "the tracemalloc report")
        else:
            time.sleep(2.0)

    def stop(self):
        # SIGTERM: graceful stop (StopCCN to every peer), which also lets cProfile write.
        return self.proc.stop(signal.SIGTERM, grace=60.0 if self.profile else 15.0)


class Xl2tpd:
    """xl2tpd 1.3.x as LNS, from a generated config in a temp dir, under setsid, in the
    foreground (-D). Never its packaged service."""
    impl = "xl2tpd"

    def __init__(self, tmp, addr, name):
        self.addr = addr
        self.port = free_port([addr])
        d = os.path.join(tmp, name)
        os.makedirs(d, exist_ok=True)
        conf = os.path.join(d, "xl2tpd.conf")
        with open(conf, "w") as f:
            f.write(f"[global]\nlisten-addr = {addr}\nport = {self.port}\n"
                    f"access control = no\n\n[lns default]\nexclusive = no\n"
                    f"hostname = xl2tpd-lns\n")
        secrets = os.path.join(d, "l2tp-secrets")
        with open(secrets, "w"):
            pass
        os.chmod(secrets, 0o600)
        argv = [XL2TPD, "-D", "-c", conf, "-s", secrets, "-p", os.path.join(d, "xl2tpd.pid"),
                "-C", os.path.join(d, "l2tp-control")]
        self.proc = Proc(argv, name, os.path.join(d, "xl2tpd.log"), cwd=d,
                         stdin=subprocess.DEVNULL)
        wait_until(lambda: not self.proc.alive() or udp_bound(addr, self.port), 20,
                   f"{name} to listen")
        if not self.proc.alive():
            raise RuntimeError(f"{name} exited: {self.proc.log_tail()}")

    def stop(self):
        return self.proc.stop(signal.SIGTERM, grace=10.0)


def xl2tpd_version():
    try:
        r = subprocess.run([XL2TPD, "-v"], capture_output=True, text=True, timeout=5)
        return (r.stdout + r.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return None


# ---------------------------------------------------------------- JSON-RPC
class Rpc:
    """A minimal line-JSON-RPC client with batches (the daemon answers a JSON array of
    requests with an array of replies) and non-blocking event reading."""

    def __init__(self, path, timeout=60.0):
        self.path = path
        self.timeout = timeout
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.buf = b""
        self.id = 0
        self.events = {}
        self.last_event = {}

    def close(self):
        self.s.close()

    def _line(self, timeout):
        end = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"no reply from {self.path} within {timeout} s")
            self.s.settimeout(left)
            data = self.s.recv(1 << 20)
            if not data:
                raise RuntimeError(f"{self.path} closed the connection")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def _req(self, method, params):
        self.id += 1
        r = {"jsonrpc": "2.0", "id": self.id, "method": method}
        if params:
            r["params"] = params
        return r

    def call(self, method, params=None):
        self.s.sendall(json.dumps(self._req(method, params)).encode() + b"\n")
        while True:
            msg = self._line(self.timeout)
            if isinstance(msg, dict) and "id" in msg:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]
            self._note(msg)

    def batch(self, calls):
        """[(method, params), ...] -> [result or {'error': ...}, ...] in order."""
        reqs = [self._req(m, p) for m, p in calls]
        self.s.sendall(json.dumps(reqs).encode() + b"\n")
        while True:
            msg = self._line(self.timeout)
            if isinstance(msg, list):
                by_id = {r.get("id"): r for r in msg}
                return [by_id.get(q["id"], {}).get("result", by_id.get(q["id"], {}))
                        for q in reqs]
            if isinstance(msg, dict) and msg.get("error") and msg.get("id") is None:
                raise RuntimeError(f"batch refused: {msg['error']}")
            self._note(msg)

    def _note(self, msg):
        if isinstance(msg, dict) and msg.get("method") == "event":
            name = msg["params"].get("event")
            self.events[name] = self.events.get(name, 0) + 1
            self.last_event[name] = time.monotonic()
            if name in ("tunnel_down", "session_down"):
                key = name + ": " + str(msg["params"].get("reason"))
                self.events[key] = self.events.get(key, 0) + 1

    def drain(self, wait=0.0):
        """Read every event already sent (waiting up to `wait` s for the first)."""
        self.s.settimeout(wait if wait > 0 else 0.0)
        try:
            while True:
                data = self.s.recv(1 << 20)
                if not data:
                    raise RuntimeError(f"{self.path} closed the event connection")
                self.buf += data
                self.s.settimeout(0.0)
        except (BlockingIOError, socket.timeout):
            pass
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            if line.strip():
                self._note(json.loads(line))


def subscriber(path, names):
    r = Rpc(path)
    r.call("events.subscribe", {"events": names})
    return r


# ---------------------------------------------------------------- the generator
class Gen:
    """bench/loadgen.py as a child process; its JSON lines arrive through next_event."""

    def __init__(self, tmp, name, args):
        argv = [PY, os.path.join(BENCH, "loadgen.py")] + [str(a) for a in args]
        self.proc = Proc(argv, name, os.path.join(tmp, f"{name}.log"),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.buf = b""
        os.set_blocking(self.proc.p.stdout.fileno(), False)

    def next_event(self, timeout):
        end = time.monotonic() + timeout
        fd = self.proc.p.stdout.fileno()
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"loadgen: no output within {timeout} s")
            import select
            r, _, _ = select.select([fd], [], [], min(left, 0.5))
            if r:
                data = os.read(fd, 1 << 20)
                if not data:
                    raise RuntimeError(f"loadgen exited: {self.proc.log_tail()}")
                self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def wait_for(self, event, timeout):
        end = time.monotonic() + timeout
        while True:
            ev = self.next_event(max(0.1, end - time.monotonic()))
            if ev["event"] == event:
                return ev

    def stop_hold(self):
        try:
            self.proc.p.stdin.write(b"stop\n")
            self.proc.p.stdin.close()
        except (BrokenPipeError, OSError):
            pass

    def finish(self):
        return self.proc.stop(signal.SIGTERM, grace=10.0)


# ---------------------------------------------------------------- scenarios
def _per_unit(before_kb, after_kb, n):
    if not n or before_kb is None or after_kb is None:
        return None
    return round((after_kb - before_kb) * 1024 / n)


def scenario_setup(cfg, tmp, impl, n, idle=0.0, mgmt=False):
    """Tunnel setup of n tunnels against one fresh LNS; optionally idle and management."""
    name = f"{impl}-lns-{n}"
    prof = os.path.join(OUT, f"profile-setup-{n}.pstats") if cfg.profile and impl == "l2tpd" \
        else None
    mem = os.path.join(OUT, f"memprof-setup-{n}") if cfg.memprof else None
    lns = Ours(tmp, LNS_ADDR, name, profile=prof, memprof=mem) if impl == "l2tpd" else \
        Xl2tpd(tmp, LNS_ADDR, name)
    gen = None
    res = {"scenario": "setup", "impl": impl, "tunnels": n}
    try:
        time.sleep(0.3)
        if mem:
            lns.snapshot(0)
        s0 = sample(lns.proc)
        args = ["--server", f"{LNS_ADDR}:{lns.port}", "--tunnels", n, "--bind", GEN_ADDR,
                "--inflight", cfg.inflight, "--max-time", cfg.max_setup + idle + 120]
        if idle or mgmt:
            args += ["--hold", idle + 300]
        gen = Gen(tmp, f"gen-{name}", args)
        gen.wait_for("ready", 60)
        ev = gen.wait_for("established", cfg.max_setup + 60)
        s1 = sample(lns.proc)
        if mem:
            lns.snapshot(1)
            res["memprof"] = os.path.relpath(mem + ".1.txt", ROOT)
        t_est = ev.get("time_last_established")
        res.update(
            established=ev["established"], failed=ev["failed"], time_s=t_est,
            time_last_sccrp_s=ev.get("time_last_sccrp"),
            rate_per_s=round(ev["established"] / t_est) if t_est else None,
            latency_p50_s=ev.get("setup_latency_p50"),
            latency_p99_s=ev.get("setup_latency_p99"),
            milestones_s=ev.get("milestones"),
            cpu_s=round(s1["cpu"] - s0["cpu"], 3),
            rss_base_kb=s0["rss_kb"], rss_kb=s1["rss_kb"], hwm_kb=s1["hwm_kb"],
            bytes_per_tunnel=_per_unit(s0["rss_kb"], s1["rss_kb"], ev["established"]),
            gen_retransmits=ev["stats"]["retransmits"],
            gen_duplicates=ev["stats"]["duplicates"],
            gen_fail_reasons=ev.get("reasons"), timed_out=bool(ev.get("timed_out")))
        log(f"setup {impl} {n}: {ev['established']} established, {ev['failed']} failed, "
            f"last at {t_est} s, LNS cpu {res['cpu_s']} s, RSS {s1['rss_kb']} kB")
        if idle and not ev.get("timed_out"):
            time.sleep(cfg.settle)
            i0 = sample(lns.proc)
            time.sleep(idle)
            i1 = sample(lns.proc)
            cpu = i1["cpu"] - i0["cpu"]
            wall = i1["t"] - i0["t"]
            res["idle"] = {"seconds": round(wall, 2), "cpu_s": round(cpu, 3),
                           "cpu_pct_of_core": round(100 * cpu / wall, 3),
                           "rss_kb": i1["rss_kb"], "settle_s": cfg.settle}
            log(f"idle {impl} {n}: {res['idle']}")
        if mgmt and impl == "l2tpd":
            res["mgmt"] = measure_mgmt(lns, cfg.mgmt_reps)
            log(f"mgmt {n}: {res['mgmt']}")
        if idle or mgmt:
            gen.stop_hold()
            done = gen.wait_for("done", 60)
            if "idle" in res:
                res["idle"]["hellos_answered_in_hold"] = done.get("hold_stats", {}).get(
                    "hellos")
        res["lns_alive"] = lns.proc.alive()
        if not lns.proc.alive():
            res["lns_log_tail"] = lns.proc.log_tail()
    finally:
        if gen is not None:
            gen.finish()
        rc = lns.stop()
        res["lns_exit"] = rc
    if prof:
        res["profile"] = summarize_profile(prof, f"setup-{n}")
    return res


def measure_mgmt(lns, reps):
    """l2tpctl round trips (fresh process each, what a user sees) and bare RPC calls."""
    ctl = [PY, os.path.join(ROOT, "l2tpctl.py"), "-s", lns.sock]
    rpc = Rpc(lns.sock)
    tl = rpc.call("tunnel.list")
    some = tl[len(tl) // 2]["tunnel_id"] if tl else None
    out = {"tunnels_listed": len(tl)}

    def timed(argv):
        t = time.monotonic()
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        if r.returncode:
            raise RuntimeError(f"{' '.join(argv[2:])}: exit {r.returncode}: "
                               f"{r.stderr.decode()[-300:]}")
        return time.monotonic() - t, len(r.stdout)

    def rpc_timed(method, params):
        t = time.monotonic()
        rpc.call(method, params)
        return time.monotonic() - t

    rows = {"l2tpctl tunnel list": [timed(ctl + ["tunnel", "list"]) for _ in range(reps)],
            "l2tpctl --json tunnel list": [timed(ctl + ["--json", "tunnel", "list"])
                                           for _ in range(reps)]}
    if some is not None:
        rows["l2tpctl tunnel show"] = [timed(ctl + ["tunnel", "show", f"tunnel_id={some}"])
                                       for _ in range(reps)]
    for k, v in rows.items():
        out[k] = {"median_s": round(statistics.median(x[0] for x in v), 4),
                  "max_s": round(max(x[0] for x in v), 4), "output_bytes": v[0][1]}
    t = [rpc_timed("tunnel.list", None) for _ in range(reps)]
    out["rpc tunnel.list"] = {"median_s": round(statistics.median(t), 4),
                              "max_s": round(max(t), 4)}
    if some is not None:
        t = [rpc_timed("tunnel.get", {"tunnel_id": some}) for _ in range(reps)]
        out["rpc tunnel.get"] = {"median_s": round(statistics.median(t), 4),
                                 "max_s": round(max(t), 4)}
    # For reference: the interpreter start-up and l2tpctl's imports, without any call.
    t = [timed([PY, "-c", f"import sys; sys.path.insert(0, {ROOT!r}); import l2tpctl"])[0]
         for _ in range(reps)]
    out["python start-up + import l2tpctl (no call)"] = {
        "median_s": round(statistics.median(t), 4)}
    rpc.close()
    return out


def _wait_events(subs, want, timeout, poll=0.05):
    """Drain the subscribers until want(subs) or timeout; returns the elapsed seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for s in subs:
            s.drain(poll / len(subs))
        if want():
            return True
    return False


def scenario_lac(cfg, tmp, n):
    """Our LAC to our LNS: n tunnels with one session each, created over JSON-RPC."""
    lns = Ours(tmp, LNS_ADDR, f"l2tpd-lns-lac{n}")
    lac = Ours(tmp, LAC_ADDR, f"l2tpd-lac-{n}")
    res = {"scenario": "lac", "impl": "l2tpd", "tunnels": n, "sessions": n}
    subs = []
    try:
        names = ["tunnel_up", "session_up", "tunnel_down", "session_down"]
        ev_lac, ev_lns = subscriber(lac.sock, names), subscriber(lns.sock, names)
        subs = [ev_lac, ev_lns]
        time.sleep(0.3)
        a0, b0 = sample(lac.proc), sample(lns.proc)
        rpc = Rpc(lac.sock)
        t0 = time.monotonic()
        created = 0
        errors = {}
        while created < n and time.monotonic() - t0 < cfg.max_setup:
            for s in subs:
                s.drain()
            up = ev_lac.events.get("session_up", 0)
            down = ev_lac.events.get("session_down", 0)
            room = cfg.inflight - (created - up - down)
            if room <= 0:
                subs[0].drain(0.005)
                continue
            k = min(room, n - created, 100)
            calls = []
            for i in range(created, created + k):
                calls.append(("tunnel.create", {"dest_ipaddr": LNS_ADDR,
                                                "peer_udp_port": lns.port,
                                                "tunnel_name": f"t{i}"}))
                # Named: an unnamed session created before its tunnel is up is
                # created twice (bench/RESULTS.md, finding F5).
                calls.append(("session.create", {"tunnel_name": f"t{i}",
                                                 "session_name": f"s{i}"}))
            for r in rpc.batch(calls):
                if isinstance(r, dict) and "error" in r:
                    key = str(r["error"].get("message"))[:80]
                    errors[key] = errors.get(key, 0) + 1
            created += k

        def done():
            return (ev_lac.events.get("session_up", 0) + ev_lac.events.get("session_down", 0)
                    >= n and ev_lns.events.get("session_up", 0)
                    + ev_lns.events.get("session_down", 0) >= n)
        ok = _wait_events(subs, done, cfg.max_setup)
        t_last = max(ev_lac.last_event.get("session_up", t0),
                     ev_lns.last_event.get("session_up", t0))
        a1, b1 = sample(lac.proc), sample(lns.proc)
        res.update(
            completed=ok, time_s=round(t_last - t0, 4),
            lac_tunnels_up=ev_lac.events.get("tunnel_up", 0),
            lac_sessions_up=ev_lac.events.get("session_up", 0),
            lns_sessions_up=ev_lns.events.get("session_up", 0),
            downs={k: v for k, v in {**ev_lac.events, **ev_lns.events}.items()
                   if "down" in k},
            rpc_errors=errors,
            lac_cpu_s=round(a1["cpu"] - a0["cpu"], 3), lns_cpu_s=round(b1["cpu"] - b0["cpu"], 3),
            lac_rss_kb=a1["rss_kb"], lns_rss_kb=b1["rss_kb"],
            lac_bytes_per_tunnel_and_session=_per_unit(a0["rss_kb"], a1["rss_kb"], n),
            lns_bytes_per_tunnel_and_session=_per_unit(b0["rss_kb"], b1["rss_kb"], n))
        res["rate_per_s"] = round(res["lns_sessions_up"] / res["time_s"]) \
            if res["time_s"] else None
        rpc.close()
        log(f"lac {n}: {res}")
    finally:
        for s in subs:
            s.close()
        lac.stop()
        lns.stop()
    return res


def scenario_sessions_gen(cfg, tmp, n):
    """The generator opens one tunnel to our LNS, then n sessions (ICRQ/ICCN) in it."""
    prof = os.path.join(OUT, "profile-sessions-gen.pstats") if cfg.profile else None
    mem = os.path.join(OUT, "memprof-sessions-gen") if cfg.memprof else None
    lns = Ours(tmp, LNS_ADDR, "l2tpd-lns-sessions-gen", profile=prof, memprof=mem)
    gen = None
    res = {"scenario": "sessions", "driver": "loadgen", "impl": "l2tpd", "sessions": n}
    try:
        gen = Gen(tmp, "gen-sessions", [
            "--server", f"{LNS_ADDR}:{lns.port}", "--tunnels", 1, "--sessions", n,
            "--session-delay", 5.0 if cfg.memprof else 1.0, "--session-window", cfg.session_window,
            "--bind", GEN_ADDR, "--max-time", cfg.max_sessions + 30, "--stall", 10])
        gen.wait_for("tunnels_up", 30)
        time.sleep(0.5)
        if mem:
            lns.snapshot(0)
        s0 = sample(lns.proc)
        ev = gen.wait_for("established", cfg.max_sessions + 60)
        s1 = sample(lns.proc)
        if mem:
            lns.snapshot(1)
            res["memprof"] = os.path.relpath(mem + ".1.txt", ROOT)
        t = None
        if ev.get("time_last_session") is not None:
            t = round(ev["time_last_session"] - ev["time_sessions_start"], 4)
        res.update(
            established=ev["sessions_established"], failed=ev["sessions_failed"],
            time_s=t, rate_per_s=round(ev["sessions_established"] / t) if t else None,
            milestones_s=[round(x - ev["time_sessions_start"], 3)
                          for x in ev.get("session_milestones", [])],
            lns_cpu_s=round(s1["cpu"] - s0["cpu"], 3),
            lns_rss_base_kb=s0["rss_kb"], lns_rss_kb=s1["rss_kb"], lns_hwm_kb=s1["hwm_kb"],
            lns_bytes_per_session=_per_unit(s0["rss_kb"], s1["rss_kb"],
                                            ev["sessions_established"]),
            gen_stats=ev["stats"], gen_fail_reasons=ev.get("reasons"),
            timed_out=bool(ev.get("timed_out")))
        if t:
            res["lns_cpu_pct_of_core"] = round(100 * res["lns_cpu_s"] / t, 1)
        res["lns_alive"] = lns.proc.alive()
        log(f"sessions (loadgen) {n}: {res['established']} up in {t} s, "
            f"{res['lns_bytes_per_session']} B/session")
    finally:
        if gen is not None:
            gen.finish()
        lns.stop()
    if prof:
        res["profile"] = summarize_profile(prof, "sessions-gen")
    return res


def scenario_sessions_lac(cfg, tmp, n):
    """Our LAC opens one tunnel to our LNS, then n sessions by session.create batches."""
    prof_lac = os.path.join(OUT, "profile-sessions-lac.pstats") if cfg.profile else None
    lns = Ours(tmp, LNS_ADDR, "l2tpd-lns-sessions-lac")
    lac = Ours(tmp, LAC_ADDR, "l2tpd-lac-sessions", profile=prof_lac)
    res = {"scenario": "sessions", "driver": "l2tpd LAC (JSON-RPC)", "impl": "l2tpd",
           "sessions": n}
    subs = []
    try:
        names = ["tunnel_up", "session_up", "tunnel_down", "session_down"]
        ev_lac, ev_lns = subscriber(lac.sock, names), subscriber(lns.sock, names)
        subs = [ev_lac, ev_lns]
        rpc = Rpc(lac.sock)
        tid = rpc.call("tunnel.create", {"dest_ipaddr": LNS_ADDR, "peer_udp_port": lns.port,
                                         "tunnel_name": "big"})["tunnel_id"]
        if not _wait_events(subs, lambda: ev_lac.events.get("tunnel_up"), 10):
            raise RuntimeError("the tunnel did not come up")
        time.sleep(0.5)
        a0, b0 = sample(lac.proc), sample(lns.proc)
        t0 = time.monotonic()
        created = 0
        errors = {}
        while created < n and time.monotonic() - t0 < cfg.max_sessions:
            for s in subs:
                s.drain()
            if ev_lac.events.get("tunnel_down"):
                break
            up = ev_lac.events.get("session_up", 0)
            down = ev_lac.events.get("session_down", 0)
            room = cfg.session_outstanding - (created - up - down)
            if room <= 0:
                ev_lac.drain(0.005)
                continue
            k = min(room, n - created, 500)
            for r in rpc.batch([("session.create", {"tunnel_id": tid})] * k):
                if isinstance(r, dict) and "error" in r:
                    key = str(r["error"].get("message"))[:80]
                    errors[key] = errors.get(key, 0) + 1
            created += k

        def done():
            return (ev_lns.events.get("session_up", 0) + ev_lns.events.get("session_down", 0)
                    >= n - sum(errors.values()) or ev_lac.events.get("tunnel_down"))
        left = max(5.0, cfg.max_sessions - (time.monotonic() - t0))
        ok = _wait_events(subs, done, left)
        t_last = max(ev_lac.last_event.get("session_up", t0),
                     ev_lns.last_event.get("session_up", t0))
        a1, b1 = sample(lac.proc), sample(lns.proc)
        t = round(t_last - t0, 4)
        up = ev_lns.events.get("session_up", 0)
        res.update(
            completed=bool(ok) and up == n, created=created, established=up,
            lac_sessions_up=ev_lac.events.get("session_up", 0), time_s=t,
            rate_per_s=round(up / t) if t else None, rpc_errors=errors,
            downs={k: v for k, v in {**ev_lac.events, **ev_lns.events}.items()
                   if "down" in k},
            lac_cpu_s=round(a1["cpu"] - a0["cpu"], 3), lns_cpu_s=round(b1["cpu"] - b0["cpu"], 3),
            lac_rss_base_kb=a0["rss_kb"], lac_rss_kb=a1["rss_kb"],
            lns_rss_base_kb=b0["rss_kb"], lns_rss_kb=b1["rss_kb"],
            lac_bytes_per_session=_per_unit(a0["rss_kb"], a1["rss_kb"], up),
            lns_bytes_per_session=_per_unit(b0["rss_kb"], b1["rss_kb"], up),
            outstanding_bound=cfg.session_outstanding)
        rpc.close()
        log(f"sessions (our LAC) {n}: {up} up in {t} s")
    finally:
        for s in subs:
            s.close()
        lac.stop()
        lns.stop()
    if prof_lac:
        res["profile"] = summarize_profile(prof_lac, "sessions-lac")
    return res


# ---------------------------------------------------------------- profiles
def summarize_profile(path, tag, top=25):
    """Top functions by cumulative and by own time, written next to the .pstats."""
    import io
    import pstats
    if not os.path.exists(path):
        return {"error": "no profile written (daemon killed?)"}
    buf = io.StringIO()
    st = pstats.Stats(path, stream=buf)
    st.strip_dirs().sort_stats("cumulative").print_stats(top)
    st.sort_stats("tottime").print_stats(top)
    txt = os.path.join(OUT, f"profile-{tag}.txt")
    with open(txt, "w") as f:
        f.write(buf.getvalue())
    return {"pstats": os.path.relpath(path, ROOT), "text": os.path.relpath(txt, ROOT)}


# ---------------------------------------------------------------- report
def machine_info():
    cpu = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short=12", "HEAD"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--",
                                "*.py"], capture_output=True, text=True,
                               timeout=10).stdout.rstrip()
        if dirty:
            commit += " (+ uncommitted changes in: " + ", ".join(
                sorted({ln[3:] for ln in dirty.splitlines()})) + ")"
    except (OSError, subprocess.TimeoutExpired):
        commit = None
    mem = None
    try:
        with open("/proc/meminfo") as f:
            mem = f.readline().split(":")[1].strip()
    except OSError:
        pass
    return {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "host": platform.node(), "nproc": os.cpu_count(), "cpu": cpu, "memory": mem,
            "kernel": platform.release(), "python": platform.python_version(),
            "commit": commit, "xl2tpd": xl2tpd_version()}


def _fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, float):
        v = f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return f"{v}{unit}"


def _ratio(a, b):
    if a is None or b is None or not b:
        return "-"
    return f"{a / b:.2f}x"


def _mark(ok):
    return "-" if ok is None else ("met" if ok else "MISSED")


def render(results, mode):
    m = results["machine"]
    L = [f"# l2tpd control-plane benchmarks ({mode})", "",
         f"- date: {m['date']}; commit: {m['commit']}",
         f"- machine: {m['nproc']} x {m['cpu']}, {m['memory']} RAM, Linux {m['kernel']}, "
         f"Python {m['python']}; xl2tpd: {m['xl2tpd']}",
         f"- generator: bench/loadgen.py, {results['config']['inflight']} SCCRQs in flight, "
         "one UDP socket per tunnel on 127.0.0.1; LNS on 127.0.0.2; null data path", ""]
    setup = [r for r in results["runs"] if r.get("scenario") == "setup"]
    if setup:
        L += ["## 1. Tunnel setup against an LNS", "",
              "| tunnels | LNS | established (failed) | time to last (s) | last SCCRP (s) | "
              "tunnels/s | LNS CPU (s) | RSS before -> after (MB) | bytes/tunnel | "
              "gen retransmits |",
              "|---:|---|---|---:|---:|---:|---:|---|---:|---:|"]
        for r in setup:
            if "error" in r:
                L.append(f"| {r['tunnels']} | {r['impl']} | ERROR: {r['error'][:80]} |"
                         " | | | | | | |")
                continue
            L.append(f"| {r['tunnels']} | {r['impl']} | {r['established']} ({r['failed']}) | "
                     f"{_fmt(r['time_s'])} | {_fmt(r['time_last_sccrp_s'])} | "
                     f"{_fmt(r['rate_per_s'])} | {_fmt(r['cpu_s'])} | "
                     f"{r['rss_base_kb'] / 1024:.1f} -> {r['rss_kb'] / 1024:.1f} | "
                     f"{_fmt(r['bytes_per_tunnel'])} | {r['gen_retransmits']} |")
        L += ["", "Ours vs xl2tpd (ratio ours / xl2tpd; < 1 is better for us):", "",
              "| tunnels | time | CPU | RSS after | xl2tpd / ours time (speed-up) |",
              "|---:|---:|---:|---:|---:|"]
        by = {(r["impl"], r["tunnels"]): r for r in setup if "error" not in r}
        for n in sorted({r["tunnels"] for r in setup}):
            a, b = by.get(("l2tpd", n)), by.get(("xl2tpd", n))
            if a and b:
                L.append(f"| {n} | {_ratio(a['time_s'], b['time_s'])} | "
                         f"{_ratio(a['cpu_s'], b['cpu_s'])} | "
                         f"{_ratio(a['rss_kb'], b['rss_kb'])} | "
                         f"{_ratio(b['time_s'], a['time_s'])} |")
        L += ["", "Growth within a run (time at which 10%, 20% ... 100% of the tunnels were "
              "established, s):", ""]
        for r in setup:
            if r.get("milestones_s"):
                L.append(f"- {r['impl']} {r['tunnels']}: {r['milestones_s']}")
        L.append("")
    idle = [r for r in setup if r.get("idle")]
    if idle:
        L += ["## 4. Idle cost", "",
              "| LNS | tunnels | window (s) | LNS CPU (s) | % of one core | Hellos answered |",
              "|---|---:|---:|---:|---:|---:|"]
        for r in idle:
            i = r["idle"]
            L.append(f"| {r['impl']} | {r['established']} | {i['seconds']} | {i['cpu_s']} | "
                     f"{i['cpu_pct_of_core']} | {_fmt(i.get('hellos_answered_in_hold'))} |")
        L.append("")
    lac = [r for r in results["runs"] if r.get("scenario") == "lac"]
    if lac:
        L += ["## 2. Our LAC to our LNS (one session per tunnel, JSON-RPC batches)", ""]
        for r in lac:
            if "error" in r:
                L.append(f"- ERROR: {r['error']}")
                continue
            L += ["| tunnels+sessions | time to last session up (s) | per s | LAC CPU (s) | "
                  "LNS CPU (s) | LAC RSS (MB) | LNS RSS (MB) | downs / RPC errors |",
                  "|---:|---:|---:|---:|---:|---:|---:|---|",
                  f"| {r['tunnels']} | {_fmt(r['time_s'])} | {_fmt(r['rate_per_s'])} | "
                  f"{r['lac_cpu_s']} | {r['lns_cpu_s']} | {r['lac_rss_kb'] / 1024:.1f} | "
                  f"{r['lns_rss_kb'] / 1024:.1f} | {r['downs'] or '-'} / "
                  f"{r['rpc_errors'] or '-'} |"]
        L.append("")
    sess = [r for r in results["runs"] if r.get("scenario") == "sessions"]
    if sess:
        L += ["## 3. Sessions in one tunnel", "",
              "| driver | sessions up (failed) | time (s) | sessions/s | LNS CPU (s) | "
              "LNS bytes/session | LAC bytes/session |",
              "|---|---|---:|---:|---:|---:|---:|"]
        for r in sess:
            if "error" in r:
                L.append(f"| {r.get('driver')} | ERROR: {r['error'][:80]} | | | | | |")
                continue
            L.append(f"| {r['driver']} | {r.get('established')} "
                     f"({r.get('failed', r['sessions'] - (r.get('established') or 0))}) | "
                     f"{_fmt(r.get('time_s'))} | {_fmt(r.get('rate_per_s'))} | "
                     f"{r.get('lns_cpu_s')} | {_fmt(r.get('lns_bytes_per_session'))} | "
                     f"{_fmt(r.get('lac_bytes_per_session'))} |")
        for r in sess:
            if r.get("milestones_s"):
                L.append(f"\n- {r['driver']}: time at 5%, 10% ... 100% of sessions: "
                         f"{r['milestones_s']}")
        L.append("")
    mg = [r for r in setup if r.get("mgmt")]
    if mg:
        L += ["## 5. Management at scale (our LNS)", "",
              "| tunnels | call | median (s) | max (s) |", "|---:|---|---:|---:|"]
        for r in mg:
            for k, v in r["mgmt"].items():
                if isinstance(v, dict):
                    L.append(f"| {r['mgmt']['tunnels_listed']} | {k} | {v['median_s']} | "
                             f"{_fmt(v.get('max_s'))} |")
        L.append("")
    if results.get("targets"):
        L += ["## Targets", "", "| target | measured | |", "|---|---|---|"]
        for t in results["targets"]:
            L.append(f"| {t['target']} | {t['measured']} | {_mark(t['ok'])} |")
        L.append("")
    if results.get("errors"):
        L += ["## Errors", ""] + [f"- {e}" for e in results["errors"]] + [""]
    return "\n".join(L)


def check_targets(results):
    runs = results["runs"]
    by = {(r["impl"], r["tunnels"]): r for r in runs
          if r.get("scenario") == "setup" and "error" not in r}
    out = []

    def add(target, measured, ok):
        out.append({"target": target, "measured": measured, "ok": ok})
    ours10, x10 = by.get(("l2tpd", 10000)), by.get(("xl2tpd", 10000))
    ours1, x1 = by.get(("l2tpd", 1000)), by.get(("xl2tpd", 1000))
    if ours10:
        ok = ours10["time_s"] is not None and ours10["time_s"] <= TARGETS["setup_10k_s"] \
            and not ours10["failed"]
        add("10,000 tunnels in <= 2 s", f"{_fmt(ours10['time_s'])} s", ok)
        if x10 and ours10["time_s"] and x10["time_s"]:
            sp = x10["time_s"] / ours10["time_s"]
            add(">= 5x faster than xl2tpd at 10,000", f"{sp:.2f}x", sp >= 5)
    if ours1 and x1 and ours1["time_s"] and x1["time_s"]:
        r = ours1["time_s"] / x1["time_s"]
        add("1,000 tunnels within 2x of xl2tpd", f"{r:.2f}x xl2tpd's time", r <= 2)
    ours = sorted((r for (i, n), r in by.items() if i == "l2tpd" and r["time_s"]),
                  key=lambda r: r["tunnels"])
    if len(ours) >= 2:
        a, b = ours[0], ours[-1]
        per_a, per_b = a["time_s"] / a["tunnels"], b["time_s"] / b["tunnels"]
        add(f"setup time linear in the tunnel count ({a['tunnels']} -> {b['tunnels']})",
            f"time per tunnel x{per_b / per_a:.2f}", per_b / per_a <= 1.5)
    per = [r["bytes_per_tunnel"] for (i, n), r in by.items()
           if i == "l2tpd" and n == max(x[1] for x in by if x[0] == "l2tpd")]
    if per and per[0] is not None:
        add("<= 3 KiB per tunnel", f"{per[0]} B", per[0] <= TARGETS["bytes_per_tunnel"])
    for r in runs:
        if r.get("scenario") != "sessions" or "error" in r:
            continue
        b = r.get("lns_bytes_per_session")
        if b is not None:
            add(f"<= 1.5 KiB per session (LNS, {r['driver']})", f"{b} B",
                b <= TARGETS["bytes_per_session"])
        if r.get("lac_bytes_per_session") is not None:
            add(f"<= 1.5 KiB per session (LAC, {r['driver']})",
                f"{r['lac_bytes_per_session']} B",
                r["lac_bytes_per_session"] <= TARGETS["bytes_per_session"])
        if r["sessions"] == 65535:
            ok = r.get("time_s") is not None and r.get("established") == 65535 and \
                r["time_s"] <= TARGETS["sessions_65535_s"]
            add(f"65,535 sessions in one tunnel in <= 60 s ({r['driver']})",
                f"{r.get('established')} up, {_fmt(r.get('time_s'))} s", ok)
    for r in runs:
        if r.get("idle") and r["impl"] == "l2tpd" and r["tunnels"] >= 10000:
            p = r["idle"]["cpu_pct_of_core"]
            add("10,000 idle tunnels <= 2% of one core", f"{p}%",
                p <= TARGETS["idle_cpu_pct"])
        if r.get("mgmt") and r["tunnels"] >= 10000:
            v = r["mgmt"].get("l2tpctl tunnel list", {}).get("median_s")
            if v is not None:
                add("`tunnel list` at 10,000 tunnels < 0.5 s", f"{v} s",
                    v < TARGETS["tunnel_list_s"])
    return out


# ---------------------------------------------------------------- main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: check it all runs")
    ap.add_argument("--only", default="setup,idle,mgmt,lac,sessions",
                    help="comma list of scenarios")
    ap.add_argument("--sizes", help="tunnel counts for setup (default 1000,5000,10000)")
    ap.add_argument("--impls", default="l2tpd,xl2tpd", help="LNSes to compare")
    ap.add_argument("--idle", type=float, help="idle window (s; default 120)")
    ap.add_argument("--sessions", type=int, help="sessions in one tunnel (default 65535)")
    ap.add_argument("--session-drivers", default="loadgen,lac")
    ap.add_argument("--lac-tunnels", type=int, help="scenario 2 size (default 1000)")
    ap.add_argument("--inflight", type=int, default=64,
                    help="setups in flight (generator SCCRQs, LAC tunnel+session pairs)")
    ap.add_argument("--session-window", type=int, default=64,
                    help="generator: ICRQs awaiting ICRP at most")
    ap.add_argument("--session-outstanding", type=int, default=2000,
                    help="our LAC: sessions created but not yet up at most")
    ap.add_argument("--profile", action="store_true",
                    help="run our daemons under cProfile; summaries in bench/out/")
    ap.add_argument("--l2tpd", help="run this script as our daemon instead of l2tpd.py "
                    "(another checkout, or an experiment that patches it)")
    ap.add_argument("--memprof", action="store_true",
                    help="run our LNS under tracemalloc (bench/memprof.py); reports of what "
                    "grew during setup / session setup in bench/out/memprof-*.txt")
    ap.add_argument("--out", default=None, help="results directory (bench/out)")
    a = ap.parse_args(argv)
    global OUT, L2TPD
    # A smoke run never overwrites the results of a full one.
    OUT = os.path.abspath(a.out) if a.out else (os.path.join(OUT, "smoke") if a.smoke else OUT)
    L2TPD = os.path.abspath(a.l2tpd) if a.l2tpd else L2TPD

    smoke = a.smoke
    a.sizes = [int(x) for x in (a.sizes or ("50" if smoke else "1000,5000,10000")).split(",")]
    a.idle = a.idle if a.idle is not None else (3.0 if smoke else 120.0)
    a.sessions = a.sessions or (200 if smoke else 65535)
    a.lac_tunnels = a.lac_tunnels or (20 if smoke else 1000)
    a.settle = 1.0 if smoke else 3.0
    a.mgmt_reps = 2 if smoke else 5
    a.max_setup = 60.0 if smoke else 240.0
    a.max_sessions = 60.0 if smoke else 300.0
    only = set(a.only.split(","))
    impls = [x for x in a.impls.split(",") if x]
    if "xl2tpd" in impls and not os.access(XL2TPD, os.X_OK):
        log(f"{XL2TPD} is not installed: xl2tpd columns are skipped")
        impls.remove("xl2tpd")
    os.makedirs(OUT, exist_ok=True)
    signal.signal(signal.SIGTERM, _on_signal)
    tmp = tempfile.mkdtemp(prefix="l2tpd-bench-")
    mode = "smoke" if smoke else "full"
    results = {"mode": mode, "machine": machine_info(),
               "config": {k: v for k, v in vars(a).items()}, "runs": [], "errors": []}

    def attempt(fn, *args, **kw):
        label = f"{fn.__name__}{args}"
        try:
            r = fn(a, tmp, *args, **kw)
            results["runs"].append(r)
            return r
        except Exception as e:
            log(f"{label} failed: {e}")
            traceback.print_exc()
            results["errors"].append(f"{label}: {type(e).__name__}: {e}")
            return None

    try:
        if "setup" in only or "idle" in only or "mgmt" in only:
            big = max(a.sizes)
            for n in a.sizes:
                for impl in impls:
                    idle = a.idle if ("idle" in only and n == big) else 0.0
                    mgmt = "mgmt" in only and n == big and impl == "l2tpd"
                    r = attempt(scenario_setup, impl, n, idle=idle, mgmt=mgmt)
                    if r is None:
                        results["runs"].append({"scenario": "setup", "impl": impl,
                                                "tunnels": n, "error": results["errors"][-1]})
        if "lac" in only:
            attempt(scenario_lac, a.lac_tunnels)
        if "sessions" in only:
            drivers = a.session_drivers.split(",")
            if "loadgen" in drivers:
                if attempt(scenario_sessions_gen, a.sessions) is None:
                    results["runs"].append({"scenario": "sessions", "driver": "loadgen",
                                            "sessions": a.sessions,
                                            "error": results["errors"][-1]})
            if "lac" in drivers:
                if attempt(scenario_sessions_lac, a.sessions) is None:
                    results["runs"].append({"scenario": "sessions",
                                            "driver": "l2tpd LAC (JSON-RPC)",
                                            "sessions": a.sessions,
                                            "error": results["errors"][-1]})
    finally:
        _cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    results["targets"] = [] if smoke else check_targets(results)
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(results, f, indent=2, default=str)
    md = render(results, mode)
    with open(os.path.join(OUT, "results.md"), "w") as f:
        f.write(md + "\n")
    print(md)
    bad = list(results["errors"])
    for r in results["runs"]:
        if r.get("scenario") == "setup" and "error" not in r and not r.get("established"):
            bad.append(f"setup {r['impl']} {r['tunnels']}: nothing established")
        if r.get("scenario") == "sessions" and "error" not in r and not r.get("established"):
            bad.append(f"sessions {r.get('driver')}: nothing established")
        if r.get("scenario") == "lac" and "error" not in r and not r.get("lns_sessions_up"):
            bad.append("lac: no session established")
    if bad:
        log("FAILED: " + "; ".join(bad))
        return 1
    log(f"results in {os.path.relpath(OUT, os.getcwd())}/results.md and results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
