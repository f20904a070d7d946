"""kernel.py with a real TUN device (root only): the userspace data path creates the
device with TUNSETIFF, pyroute2 (IPRoute) gives it its point-to-point address, MTU and
link state, packets cross in both directions between the kernel and the (fake) PPP
engine, and the device is gone once the session ends.

Skips when not root, when /dev/net/tun or the `ip` command is missing; with CI=true
those conditions fail instead. Device names carry the pid; every device is removed in
a finally block (closing the TUN fd removes a non-persistent device).
"""
import json
import os
import select
import shutil
import socket
import struct
import subprocess

import pytest

import kernel
from test_dataplane import FakeEngine, FakeHost

PID = os.getpid()
NET = PID % 250 + 1
LOCAL_IP, PEER_IP = f"198.18.{NET}.1", f"198.18.{NET}.2"   # RFC 2544 benchmark range


def need_root():
    why = None
    if os.geteuid() != 0:
        why = "needs root: creates and configures TUN devices"
    elif not os.path.exists("/dev/net/tun"):
        why = "/dev/net/tun is missing"
    elif shutil.which("ip") is None:
        why = "the ip command (iproute2) is missing"
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why} (CI=true: root tests must run, not skip)")
        pytest.skip(why)


def ip_json(*args):
    """`ip -j ...` parsed, or None when ip fails (e.g. no such device)."""
    p = subprocess.run(["ip", "-j", *args], capture_output=True, text=True, timeout=10)
    if p.returncode != 0:
        return None
    return json.loads(p.stdout or "[]")


def link_exists(name):
    return bool(ip_json("link", "show", "dev", name))


class Engines:
    def __init__(self):
        self.made = []

    def __call__(self, role, config, rng, log):
        e = FakeEngine(role, config, rng, log)
        self.made.append(e)
        return e


def wait_readable(fd, seconds=3.0):
    r, _, _ = select.select([fd], [], [], seconds)
    return bool(r)


def ipv4_udp(src, dst, sport, dport, payload):
    """A minimal IPv4/UDP packet (header checksum set, UDP checksum 0 = none)."""
    total = 20 + 8 + len(payload)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 1, 0, 64, 17, 0,
                      socket.inet_aton(src), socket.inet_aton(dst))
    s = sum(struct.unpack("!10H", hdr))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    hdr = hdr[:10] + struct.pack("!H", ~s & 0xFFFF) + hdr[12:]
    return hdr + struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def test_tun_status_as_root():
    need_root()
    ok, why = kernel.tun_status()
    assert ok, why
    dp = kernel.select("userspace", None, FakeHost())
    try:
        assert dp.name == "userspace"
    finally:
        dp.close()


def test_real_tun_created_addressed_up_and_removed():
    need_root()
    name = f"l2tpt{PID}"[:15]
    host = FakeHost()
    engines = Engines()
    logs = []
    dp = kernel.UserspaceDataPath(logs.append, host, engine_factory=engines)
    sock = None
    try:
        dp.tunnel_up(1, 2, -1, "192.0.2.1", "192.0.2.2", 1701, 1701)
        dp.session_up(1, 7, 8, dict(role="server", peer_tunnel_id=2, peer_session_id=8,
                                    interface_name=name, reorder_timeout=0, ppp={}))
        dp.on_timer(0)
        assert host.events == [], logs
        (link,) = ip_json("link", "show", "dev", name)
        assert "UP" not in link["flags"]
        assert "POINTOPOINT" in link["flags"]
        fd = dp.sessions[(1, 7)].tun.fileno()
        assert host.watched[fd] is dp.sessions[(1, 7)]

        # IPCP opened: address, peer, MTU and link state through pyroute2.
        eng = engines.made[0]
        eng.events.append(("up", {"local_ip": LOCAL_IP, "peer_ip": PEER_IP, "mtu": 1400,
                                  "dns": [], "user": "alice"}))
        dp.sessions[(1, 7)].on_readable(1)      # nothing to read; the events are pumped
        assert host.events[-1][2] == "ppp-up", (host.events, logs)
        assert host.events[-1][3]["ifname"] == name
        (info,) = ip_json("addr", "show", "dev", name)
        assert "UP" in info["flags"] and info["mtu"] == 1400
        inet = [a for a in info["addr_info"] if a["family"] == "inet"]
        assert [(a["local"], a["address"], a["prefixlen"]) for a in inet] == \
            [(LOCAL_IP, PEER_IP, 32)]

        # kernel -> TUN -> engine: a datagram routed to the peer comes out of the TUN.
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((LOCAL_IP, 0))
        sock.sendto(b"hello peer", (PEER_IP, 9))
        assert wait_readable(fd), "nothing came out of the TUN device"
        dp.sessions[(1, 7)].on_readable(2)
        pkts = [p for p in eng.sent_ip if p[16:20] == socket.inet_aton(PEER_IP)]
        assert pkts and pkts[0].endswith(b"hello peer")
        assert host.sent, "the PPP frame did not leave as an L2TP data message"

        # engine -> TUN -> kernel: a packet from the peer reaches a local socket.
        port = sock.getsockname()[1]
        sock.settimeout(3)
        eng.events.append(("ip", ipv4_udp(PEER_IP, LOCAL_IP, 4000, port, b"hello local")))
        dp.sessions[(1, 7)].on_readable(3)
        data, addr = sock.recvfrom(2048)
        assert (data, addr) == (b"hello local", (PEER_IP, 4000))

        dp.session_down(1, 7)
        assert not link_exists(name)
        assert fd not in host.watched
    finally:
        if sock is not None:
            sock.close()
        dp.close()
        if link_exists(name):
            subprocess.run(["ip", "link", "del", name], capture_output=True, timeout=10)
    assert not link_exists(name)


def test_real_tun_default_name_and_failure_on_a_taken_name():
    need_root()
    tid, sid = PID % 65536 or 1, 3
    default = kernel.tun_name(tid, sid)
    taken = f"l2tpx{PID}"[:15]
    host = FakeHost()
    dp = kernel.UserspaceDataPath(None, host, engine_factory=Engines())
    holder = kernel.LinuxTun(taken, None)   # another process's TUN, attached and busy
    try:
        dp.session_up(tid, sid, 9, dict(role="client", ppp={}))
        dp.on_timer(0)
        assert link_exists(default)
        # The name is taken: this session ends (reason logged and reported), the rest go on.
        dp.session_up(tid, sid + 1, 10, dict(role="client", interface_name=taken, ppp={}))
        dp.on_timer(0)
        (ev,) = host.events
        assert ev == (tid, sid + 1, "ppp-down",
                      {"reason": f"cannot create TUN device {taken}: Device or resource busy"})
        assert link_exists(default) and (tid, sid) in dp.sessions
        dp.close()
        assert not link_exists(default)
    finally:
        dp.close()
        holder.close()
        for n in (default, taken):
            if link_exists(n):
                subprocess.run(["ip", "link", "del", n], capture_output=True, timeout=10)
    assert not link_exists(taken)
