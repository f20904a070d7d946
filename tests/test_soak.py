"""Issue 11's soak: everything hostile at once against one real daemon, then a
legitimate tunnel and session must still come up, the daemon's memory must stay
within RSS_BOUND and its log must hold no traceback.

At the same time, on loopback only, each stream bounded in count and wall time:
- 200,000 hostile datagrams: random bytes, and mutations (flipped, cut, spliced
  octets) of valid messages of every type, aimed at tunnel 0, at random tunnel
  ids and at a live tunnel;
- an SCCRQ flood from many source ports that never completes (half-open tunnels);
- an ICRQ flood on an established tunnel that never sends ICCN (half-open calls);
- management-socket abuse: idle and one-byte clients that reconnect at once, a
  huge batch from a client that never reads, NaN and 4,000-digit integers.
"""
import json
import os
import random
import signal
import socket
import threading
import time

import pytest

import avp
from daemon_util import L2tpd, free_udp_port, wait_for
from samples import SAMPLES
from scripted_peer import ScriptedPeer

HOSTILE = 200_000
RSS_BOUND = 128 << 20          # bytes; an idle daemon holds about 32 MiB (README)
WALL = 240.0                   # seconds any stream may run at most


def _not_json(name):
    raise ValueError(f"{name} in a reply")


def _rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _valid_messages():
    out = []
    for mtype, avps in sorted(SAMPLES.items()):
        try:
            out.append(avp.encode_message(mtype, avps))
        except avp.L2TPError:
            continue
    return out


def _counted(name, counts, fn, *args):
    """Run one stream in a thread; an exception in it fails the test, not just the
    thread."""
    def run():
        try:
            counts[name] = fn(*args)
        except BaseException as e:   # noqa: BLE001 - reported below
            counts[name] = e
    return threading.Thread(target=run, name=name)


def _hostile(target, live_tid, stop, rng):
    bodies = _valid_messages()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.9", 0))
    deadline = time.monotonic() + WALL
    try:
        for i in range(HOSTILE):
            if stop.is_set() or time.monotonic() > deadline:
                break
            kind = i % 4
            if kind == 0:
                d = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 80)))
            else:
                tid = (0, rng.randrange(1, 65536), live_tid)[kind - 1]
                d = bytearray(avp.push_control(tid, rng.randrange(0, 4), rng.randrange(65536),
                                               rng.randrange(65536), rng.choice(bodies)))
                for _ in range(rng.randrange(1, 6)):
                    op = rng.randrange(3)
                    if op == 0 and d:
                        d[rng.randrange(len(d))] = rng.getrandbits(8)
                    elif op == 1 and len(d) > 1:
                        del d[rng.randrange(len(d)):]
                    else:
                        d[rng.randrange(len(d) + 1):0] = rng.choice(bodies)[:rng.randrange(20)]
                d = bytes(d)
            try:
                s.sendto(d, target)
            except OSError:
                pass   # a full buffer on loopback: the flood goes on
            if i % 2000 == 0:
                time.sleep(0.001)   # let the daemon's receive buffer drain a little
    finally:
        s.close()
    return i + 1


def _sccrq_flood(target, stop, count=3000):
    socks = []
    deadline = time.monotonic() + WALL
    try:
        for i in range(count):
            if stop.is_set() or time.monotonic() > deadline:
                break
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.10", 0))
            body = avp.encode_message(avp.SCCRQ, [
                (avp.PROTOCOL_VERSION, (1, 0)), (avp.HOST_NAME, "flood"),
                (avp.FRAMING_CAPABILITIES, 3), (avp.ASSIGNED_TUNNEL_ID, i % 65535 + 1)])
            s.sendto(avp.push_control(0, 0, 0, 0, body), target)
            socks.append(s)
            if len(socks) >= 200:   # keep few descriptors; the ports stay distinct enough
                for x in socks:
                    x.close()
                socks = []
    finally:
        for x in socks:
            x.close()
    return i + 1


def _icrq_flood(peer, stop, count=3000):
    deadline = time.monotonic() + WALL
    for i in range(count):
        if stop.is_set() or time.monotonic() > deadline:
            break
        peer.icrq()
        if i % 50 == 0:
            peer.drain(0.01)
    return i + 1


def _rpc_abuse(path, stop, errors):
    deadline = time.monotonic() + WALL
    held = []
    rounds = 0
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            for _ in range(20):       # idle and one-byte clients, reconnecting at once
                try:
                    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    c.settimeout(1.0)
                    c.connect(path)
                    c.send(b"{")
                    held.append(c)
                except OSError:
                    pass
            try:
                c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                c.settimeout(1.0)
                c.connect(path)
                batch = [{"jsonrpc": "2.0", "id": i, "method": "rpc.describe"}
                         for i in range(1000)]   # about 57 kB: under max_request
                c.sendall(json.dumps(batch).encode() + b"\n")   # never read
                held.append(c)
            except OSError:
                pass
            for bad in (b'{"jsonrpc":"2.0","id":1,"method":"system.get","params":NaN}\n',
                        b'{"jsonrpc":"2.0","id":2,"method":"tunnel_profile.modify",'
                        b'"params":{"profile_name":"default","hello_timeout":"0x'
                        + b"f" * 4000 + b'"}}\n'):
                try:
                    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
                        c.settimeout(2.0)
                        c.connect(path)
                        c.sendall(bad)
                        reply = c.recv(65536)
                        if reply:
                            try:
                                json.loads(reply.split(b"\n")[0],
                                           parse_constant=_not_json)
                            except ValueError as e:
                                errors.append(f"a reply is not strict JSON: {e}")
                except OSError:
                    pass
            while len(held) > 60:
                held.pop(0).close()
            rounds += 1
            stop.wait(0.05)
    finally:
        for c in held:
            c.close()
    return rounds


@pytest.fixture
def target(tmp_path):
    port = free_udp_port(("127.0.0.1",))
    d = L2tpd(tmp_path, "127.0.0.1", port, "soak",
              args=["--config-dir", str(tmp_path)]).start()
    yield d
    d.stop(signal.SIGKILL)


def test_soak_everything_hostile_at_once(target):
    d = target
    addr = ("127.0.0.1", d.port)
    pid = d.proc.pid
    rss0 = _rss(pid)
    flooder = ScriptedPeer("127.0.0.11", addr, timeout=5.0)
    legit = None
    try:
        flooder.establish()
        stop = threading.Event()
        errors = []
        rng = random.Random(20261129)
        counts = {}
        threads = [
            _counted("hostile", counts, _hostile, addr, flooder.peer_tid, stop, rng),
            _counted("sccrq", counts, _sccrq_flood, addr, stop),
            _counted("icrq", counts, _icrq_flood, flooder, stop),
            _counted("rpc", counts, _rpc_abuse, d.sock, stop, errors),
        ]
        for t in threads:
            t.start()
        peak = rss0
        try:
            for t in threads[:3]:
                while t.is_alive():
                    t.join(0.5)
                    peak = max(peak, _rss(pid))
        finally:
            stop.set()
            for t in threads:
                t.join(WALL)
        assert not [t for t in threads if t.is_alive()], "a hostile stream did not stop"
        assert counts["hostile"] == HOSTILE and counts["sccrq"] == 3000, counts
        assert counts["icrq"] == 3000 and counts["rpc"] > 0, counts
        assert errors == []
        assert d.proc.poll() is None, d.read_log()
        peak = max(peak, _rss(pid))
        assert peak <= RSS_BOUND, f"RSS {peak >> 20} MiB (start {rss0 >> 20} MiB)"

        # A legitimate peer still gets a tunnel and a session.
        legit = ScriptedPeer("127.0.0.12", addr, timeout=5.0)
        legit.establish()
        _sid, dsid, rp = legit.incoming_call()
        assert rp.name == "ICRP" and dsid
        got = wait_for(lambda: [s for s in d.call("session.list")
                                if s.get("state") == "established"], 10, "the session up")
        assert got
        stats = d.call("system.get")
        # 3,000 SCCRQs that never complete against max_half_open_tunnels 1,000.
        assert stats["stats"]["half_open_tunnel_evictions"] > 0
        assert len(d.call("tunnel.list")) <= stats["max_half_open_tunnels"] + 2
        assert len(stats["messages"]) <= 20          # known types and one bucket
        assert stats["rpc"]["batches_refused"] > 0 and stats["rpc"]["clients_evicted"] > 0
    finally:
        flooder.close()
        if legit is not None:
            legit.close()
    log = d.read_log() if os.path.getsize(d.logfile) < 4000 else open(d.logfile).read()
    assert "Traceback" not in log, log[-3000:]
