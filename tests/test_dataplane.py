"""kernel.py data paths without root: the userspace path with a fake host, a fake TUN
and (mostly) a fake PPP engine, on a virtual clock.

Covers the L2TP data framing (RFC 2661 3.1: L, S, O and P bits, byte by byte), the
sequencing rules of 5.4 (who sends Ns, the LAC following the LNS), reordering inside
and outside the window with reorder timeouts, duplicates, 16-bit wrap, the counters,
the TUN <-> PPP glue, failure handling (a session ends, the daemon never does), the
timer heap, `select`, and two data paths back to back with the real PPP engine until
an IP packet crosses.
"""
import errno

import avp
import kernel

LTID, LSID = 100, 10        # our ids: what received data messages carry
PTID, PSID = 200, 20        # the peer's ids: what we send
FF03 = b"\xff\x03"
IP_PROTO = b"\x00\x21"


# ------------------------------------------------------------------ fakes
class FakeHost:
    """Records what the data path asks of the daemon."""

    def __init__(self, now=0, seed=1):
        self.now = now
        self.seed = seed
        self.watched = {}        # fd -> obj
        self.watch_calls = []
        self.sent = []           # (tid, datagram)
        self.events = []         # (tid, sid, kind, info)
        self.pool = ["10.0.0.2", "10.0.0.3"]
        self.allocs = []
        self.freed = []
        self.secrets = {"alice": "wonderland"}
        self.secret_calls = []
        self.send_result = None
        self.on_event = None     # callable(tid, sid, kind, info): e.g. tear down (CDN)

    def clock(self):
        return self.now

    def rng(self, n):
        """Deterministic, different per seed (equal LCP magic numbers look like a loop)."""
        out = bytearray()
        for _ in range(n):
            self.seed = (self.seed * 1103515245 + 12345) & 0x7FFFFFFF
            out.append(self.seed >> 16 & 0xFF)
        return bytes(out)

    def watch(self, fd, obj, events):
        self.watch_calls.append((fd, events))
        if events:
            self.watched[fd] = obj
        else:
            self.watched.pop(fd, None)

    def send_data(self, tid, datagram):
        if isinstance(self.send_result, Exception):
            raise self.send_result
        self.sent.append((tid, datagram))
        return self.send_result

    def session_event(self, tid, sid, kind, info):
        self.events.append((tid, sid, kind, info))
        if self.on_event is not None:
            self.on_event(tid, sid, kind, info)

    def ippool_alloc(self, pool, owner):
        self.allocs.append((pool, owner))
        return self.pool.pop(0) if self.pool else None

    def ippool_free(self, pool, addr):
        self.freed.append((pool, addr))

    def secret_for(self, path, user):
        self.secret_calls.append((path, user))
        return self.secrets.get(user)


class FakeTun:
    next_fd = 1000

    def __init__(self, name):
        FakeTun.next_fd += 1
        self.fd = FakeTun.next_fd
        self.name = name
        self.inbox = []          # packets the kernel would route into the TUN
        self.written = []        # packets we wrote (to the kernel)
        self.configured = []
        self.closed = False
        self.fail_write = None
        self.fail_configure = None

    def fileno(self):
        return self.fd

    def read(self):
        return self.inbox.pop(0) if self.inbox else None

    def write(self, pkt):
        if self.fail_write:
            raise self.fail_write
        self.written.append(pkt)

    def configure(self, local_ip, peer_ip, mtu):
        if self.fail_configure:
            raise self.fail_configure
        self.configured.append((local_ip, peer_ip, mtu))

    def close(self):
        self.closed = True


class FakeEngine:
    """The ppp.PPPEngine API, scripted: IP frames (0x0021) become ("ip", pkt) events."""

    def __init__(self, role, config, rng, log):
        self.role = role
        self.config = config
        self.rng = rng
        self.received = []
        self.out = []
        self.events = []
        self.sent_ip = []
        self.deadline = None
        self.timers = []
        self.opened = None
        self.state = "opened"
        self.fail_receive = None

    def open(self, now):
        self.opened = now
        self.out.extend(self.config.get("_open_frames", ()))

    def receive(self, frame, now):
        if self.fail_receive:
            raise self.fail_receive
        self.received.append(frame)
        if frame[:4] == FF03 + IP_PROTO:
            self.events.append(("ip", frame[4:]))

    def frames_to_send(self, now):
        out, self.out = self.out, []
        return out

    def send_ip(self, pkt):
        self.sent_ip.append(pkt)
        self.out.append(FF03 + IP_PROTO + pkt)

    def pop_events(self):
        ev, self.events = self.events, []
        return ev

    def next_deadline(self):
        return self.deadline

    def on_timer(self, now):
        self.timers.append(now)
        self.deadline = None


class Rig:
    """One UserspaceDataPath with fakes; session (LTID, LSID) <-> peer (PTID, PSID)."""

    def __init__(self, role="server", up=True, tun_error=None, **info):
        self.host = FakeHost()
        self.tuns = []
        self.engines = []
        self.logs = []
        self.tun_error = tun_error
        self.dp = kernel.UserspaceDataPath(self.logs.append, self.host,
                                           tun_factory=self._tun, engine_factory=self._eng)
        self.dp.tunnel_up(LTID, PTID, -1, "192.0.2.1", "192.0.2.2", 1701, 1701)
        self.info = dict(role=role, peer_tunnel_id=PTID, peer_session_id=PSID,
                         sequencing_required=False, use_sequence_numbers=False,
                         reorder_timeout=0, interface_name=None, mtu=1460, ppp={})
        self.info.update(info)
        if up:
            self.dp.session_up(LTID, LSID, PSID, self.info)
            if not tun_error and not info.get("no_ppp"):
                assert self.dp.next_deadline() == 0     # the start-up kick ...
                self.dp.on_timer(0)                     # ... pumps the engine's events
                assert self.dp.next_deadline() is None

    def pump(self, now=0):
        self.dp._pump(self.dp.sessions[(LTID, LSID)], now)

    def _tun(self, name):
        if self.tun_error:
            raise self.tun_error
        t = FakeTun(name)
        self.tuns.append(t)
        return t

    def _eng(self, role, config, rng, log):
        e = FakeEngine(role, config, rng, log)
        self.engines.append(e)
        return e

    @property
    def eng(self):
        return self.engines[-1]

    @property
    def tun(self):
        return self.tuns[-1]

    def rx(self, payload, ns=None, now=0, offset=None, length_bit=True, sid=LSID):
        dgram = avp.push_data(LTID, sid, payload, ns=ns, nr=0, length_bit=length_bit,
                              offset=offset)
        return self.rx_raw(dgram, now)

    def rx_raw(self, dgram, now=0):
        h = avp.pull_header(dgram)
        return self.dp.data_received(LTID, h, dgram, now)

    def got(self):
        """Payload markers the engine received, in order (frames are FF03 0021 marker)."""
        return [f[4:] for f in self.eng.received]

    def stats(self):
        return self.dp.stats(LTID, LSID)

    def sent_headers(self):
        return [avp.pull_header(d) for _, d in self.host.sent]


def ipf(i):
    """A PPP frame carrying a 1-octet 'IP packet' i (a marker for order checks)."""
    return FF03 + IP_PROTO + bytes([i & 0xFF])


def markers(*ns):
    return [bytes([n & 0xFF]) for n in ns]


def fire_timers(dp, until):
    """Run the virtual clock: every deadline up to `until`, in order."""
    while True:
        d = dp.next_deadline()
        if d is None or d > until:
            return
        dp.on_timer(d)


# ------------------------------------------------------------------ names and helpers
def test_tun_name_default_fits_ifnamsiz():
    assert kernel.tun_name(1, 2) == "l2tp1-2"
    assert kernel.tun_name(65535, 65535) == "l2tp65535-65535"
    assert len(kernel.tun_name(65535, 65535)) == 15
    assert kernel.tun_name(1, 2, "ppp-alice") == "ppp-alice"
    wide = kernel.tun_name(0xFFFFFFFF, 0xFFFFFFFF)
    assert len(wide) <= 15 and wide.startswith("l")
    assert kernel.tun_name(0x12345, 0x6789A) == "l2tp12345-6789a"


def test_tun_name_rejects_bad_interface_names():
    for bad in ("x" * 16, "a/b"):
        try:
            kernel.tun_name(1, 2, bad)
        except kernel.DataPathError as e:
            assert repr(bad) in str(e)
        else:
            raise AssertionError(bad)


def test_seq_offset_wrap_table():
    # (ns, expected, offset, behind)
    table = [(0, 0, 0, False), (1, 0, 1, False), (0, 65535, 1, False),
             (5, 65530, 11, False), (65535, 0, 65535, True), (32767, 0, 32767, False),
             (32768, 0, 32768, True), (100, 101, 65535, True), (65530, 5, 65525, True)]
    for ns, exp, off, behind in table:
        assert kernel.seq_offset(ns, exp) == off, (ns, exp)
        assert kernel.seq_is_behind(ns, exp) is behind, (ns, exp)


# ------------------------------------------------------------------ transmit framing
def test_encapsulation_byte_layout_l_bit_no_sequence():
    r = Rig(ppp={"_open_frames": [FF03 + b"\xc0\x21\x01\x01\x00\x04"]})
    (tid, dgram), = r.host.sent
    assert tid == LTID
    # flags 0x4002 (L=1, Ver=2), Length 16, peer tunnel 200, peer session 20, the frame
    assert dgram.hex() == "4002" "0010" "00c8" "0014" "ff03c021" "01010004"
    h = avp.pull_header(dgram)
    assert (h.control, h.length_bit, h.seq_bit, h.offset_bit, h.priority) == \
        (False, True, False, False, False)
    assert (h.tunnel_id, h.session_id, h.length, h.payload_offset) == (PTID, PSID, 16, 8)
    assert dgram[h.payload_offset:] == FF03 + b"\xc0\x21\x01\x01\x00\x04"


def test_encapsulation_with_sequence_numbers_and_wrap():
    r = Rig(use_sequence_numbers=True)
    r.dp.sessions[(LTID, LSID)].ns_out = 65534
    r.tun.inbox += [b"\x45" + bytes(19), b"\x45" + bytes(19), b"\x45" + bytes(19)]
    r.dp.sessions[(LTID, LSID)].on_readable(0)
    d0 = r.host.sent[0][1]
    # flags 0x4802 (L, S), Length 12+4+20, ids, Ns 65534, Nr 0
    assert d0[:12].hex() == "4802" "0024" "00c8" "0014" "fffe" "0000"
    assert [h.ns for h in r.sent_headers()] == [65534, 65535, 0]
    assert all(h.nr == 0 and h.seq_bit for h in r.sent_headers())


def test_lcp_echo_goes_out_with_the_priority_bit():
    echo = FF03 + b"\xc0\x21\x09\x07\x00\x08\x01\x02\x03\x04"
    r = Rig(ppp={"_open_frames": [echo, FF03 + b"\xc0\x21\x01\x01\x00\x04"]})
    h1, h2 = r.sent_headers()
    assert h1.priority and not h2.priority
    assert r.host.sent[0][1][:2].hex() == "4102"


def test_tx_counters_and_send_failures():
    r = Rig()
    r.tun.inbox += [b"\x45" + bytes(19)]
    r.dp.sessions[(LTID, LSID)].on_readable(0)
    st = r.stats()
    assert (st["data_tx_packets"], st["data_tx_bytes"], st["data_tx_errors"]) == (1, 24, 0)
    r.host.send_result = OSError(errno.ENETUNREACH, "unreachable")
    r.tun.inbox += [b"\x45" + bytes(19)]
    r.dp.sessions[(LTID, LSID)].on_readable(0)
    r.host.send_result = False
    r.tun.inbox += [b"\x45" + bytes(19)]
    r.dp.sessions[(LTID, LSID)].on_readable(0)
    st = r.stats()
    assert (st["data_tx_packets"], st["data_tx_errors"]) == (1, 2)


def test_non_ipv4_packets_from_the_tun_are_not_sent():
    r = Rig()
    r.tun.inbox += [b"\x60" + bytes(39), b"\x45" + bytes(19)]
    r.dp.sessions[(LTID, LSID)].on_readable(0)
    assert r.eng.sent_ip == [b"\x45" + bytes(19)]


def test_tun_reads_are_bounded_per_wakeup():
    r = Rig()
    r.tun.inbox += [b"\x45" + bytes(19)] * (kernel.TUN_READ_BURST + 5)
    r.dp.sessions[(LTID, LSID)].on_readable(0)
    assert len(r.eng.sent_ip) == kernel.TUN_READ_BURST
    assert len(r.tun.inbox) == 5


# ------------------------------------------------------------------ receive framing
def test_decapsulation_header_variants_by_hand():
    frame = ipf(7)
    cases = [
        "0002" "0064" "000a" + frame.hex(),                         # no L, no S, no O
        "4002" "000d" "0064" "000a" + frame.hex(),                  # L
        "0802" "0064" "000a" "0000" "0000" + frame.hex(),           # S (Ns 0, Nr 0)
        "0202" "0064" "000a" "0003" "aabbcc" + frame.hex(),         # O with 3 pad octets
        "4a02" "0013" "0064" "000a" "0001" "1234" "0000" + frame.hex(),  # L S O(0)
        "4002" "000d" "0064" "000a" + frame.hex() + "deadbeef",     # L: trailing bytes cut
    ]
    r = Rig()
    for i, hx in enumerate(cases):
        assert r.rx_raw(bytes.fromhex(hx), now=i) is True, hx
    assert r.eng.received == [frame] * len(cases)
    assert r.tun.written == [b"\x07"] * len(cases)
    st = r.stats()
    assert (st["data_rx_packets"], st["data_rx_bytes"], st["data_rx_errors"]) == (6, 30, 0)


def test_empty_payload_is_an_error_and_unknown_session_is_refused():
    r = Rig()
    assert r.rx(b"") is True
    assert r.stats()["data_rx_errors"] == 1
    assert r.stats()["data_rx_packets"] == 0
    assert r.rx(ipf(1), sid=99) is False
    assert r.eng.received == []


# ------------------------------------------------------------------ RFC 2661 5.4: who sends Ns
def test_lac_follows_the_lns():
    r = Rig(role="client")
    send = r.dp.sessions[(LTID, LSID)]
    assert send.send_seq is False
    r.rx(ipf(0), ns=0)                     # the LNS turns sequencing on
    r.tun.inbox.append(b"\x45" + bytes(19))
    send.on_readable(0)
    r.rx(ipf(1))                           # ... and off again
    r.tun.inbox.append(b"\x45" + bytes(19))
    send.on_readable(0)
    r.rx(ipf(2), ns=1)                     # ... and on: numbering resumes
    r.tun.inbox.append(b"\x45" + bytes(19))
    send.on_readable(0)
    assert [h.ns for h in r.sent_headers()] == [0, None, 1]
    assert r.got() == markers(0, 1, 2)


def test_lac_with_use_sequence_numbers_starts_with_ns_until_the_lns_speaks():
    r = Rig(role="client", use_sequence_numbers=True,
            ppp={"_open_frames": [ipf(1)]})
    assert r.sent_headers()[0].ns == 0
    r.rx(ipf(0))
    assert r.dp.sessions[(LTID, LSID)].send_seq is False


def test_lns_decides_and_does_not_follow_the_lac():
    r = Rig(role="server", use_sequence_numbers=False)
    r.rx(ipf(0), ns=0)
    r.tun.inbox.append(b"\x45" + bytes(19))
    r.dp.sessions[(LTID, LSID)].on_readable(0)
    assert r.sent_headers()[-1].ns is None
    r2 = Rig(role="server", use_sequence_numbers=True)
    r2.rx(ipf(0))
    r2.tun.inbox.append(b"\x45" + bytes(19))
    r2.dp.sessions[(LTID, LSID)].on_readable(0)
    assert r2.sent_headers()[-1].ns == 0


def test_sequencing_required_keeps_ns_and_drops_data_without_it():
    for role in ("client", "server"):
        r = Rig(role=role, sequencing_required=True)
        r.rx(ipf(1))                       # no Ns: 5.4 says it MUST be there
        r.tun.inbox.append(b"\x45" + bytes(19))
        r.dp.sessions[(LTID, LSID)].on_readable(0)
        assert r.sent_headers()[-1].ns == 0, role
        assert r.eng.received == []
        assert r.stats()["data_rx_errors"] == 1


# ------------------------------------------------------------------ reordering
def test_reorder_inside_the_window_restores_order():
    r = Rig(reorder_timeout=100)
    for ns in (0, 2, 3, 1, 4):
        r.rx(ipf(ns), ns=ns, now=10)
    assert r.got() == markers(0, 1, 2, 3, 4)
    st = r.stats()
    assert (st["data_rx_oos_packets"], st["data_rx_oos_discards"]) == (2, 0)
    assert st["data_rx_lost_packets"] == 0 and st["reorder_held"] == 0
    assert r.dp.next_deadline() is None


def test_reorder_timeout_skips_the_gap_then_late_packet_is_discarded():
    r = Rig(reorder_timeout=50)
    r.rx(ipf(0), ns=0, now=0)
    r.rx(ipf(2), ns=2, now=10)
    r.rx(ipf(3), ns=3, now=20)
    assert r.got() == markers(0)
    assert r.dp.next_deadline() == 60
    r.dp.on_timer(59)
    assert r.got() == markers(0)
    r.dp.on_timer(60)
    assert r.got() == markers(0, 2, 3)
    assert r.dp.next_deadline() is None
    r.rx(ipf(1), ns=1, now=61)             # too late now
    r.rx(ipf(4), ns=4, now=62)
    assert r.got() == markers(0, 2, 3, 4)
    st = r.stats()
    assert (st["data_rx_oos_packets"], st["data_rx_oos_discards"],
            st["data_rx_lost_packets"]) == (2, 1, 1)


def test_reorder_timeout_releases_up_to_the_expired_packet_only():
    r = Rig(reorder_timeout=50)
    r.rx(ipf(0), ns=0, now=0)
    r.rx(ipf(5), ns=5, now=0)              # expires at 50
    r.rx(ipf(3), ns=3, now=30)             # expires at 80, but is below 5: goes with it
    r.rx(ipf(8), ns=8, now=40)             # expires at 90
    fire_timers(r.dp, 50)
    assert r.got() == markers(0, 3, 5)
    assert r.dp.next_deadline() == 90
    r.rx(ipf(7), ns=7, now=60)
    r.rx(ipf(6), ns=6, now=61)
    assert r.got() == markers(0, 3, 5, 6, 7, 8)
    assert r.dp.next_deadline() is None
    assert r.stats()["data_rx_lost_packets"] == 3   # 1, 2 and 4


def test_reorder_buffer_is_bounded():
    r = Rig(reorder_timeout=1000)
    r.rx(ipf(0), ns=0)
    for ns in range(2, 2 + kernel.REORDER_MAX):
        r.rx(ipf(ns), ns=ns)
    assert r.got() == markers(0)
    assert r.stats()["reorder_held"] == kernel.REORDER_MAX
    r.rx(ipf(30), ns=30)                   # one too many: the lowest gap is given up
    assert r.got() == markers(0, *range(2, 2 + kernel.REORDER_MAX))
    assert r.stats()["reorder_held"] == 1
    assert r.stats()["data_rx_lost_packets"] == 1
    assert r.dp.next_deadline() == 1000


def test_full_buffer_lower_newcomer_goes_first():
    r = Rig(reorder_timeout=1000)
    r.rx(ipf(0), ns=0)
    for ns in range(10, 10 + kernel.REORDER_MAX):
        r.rx(ipf(ns), ns=ns)
    r.rx(ipf(5), ns=5)                     # below everything held: released first
    assert r.got() == markers(0, 5)
    assert r.stats()["data_rx_lost_packets"] == 4


def test_duplicates_are_discarded():
    r = Rig(reorder_timeout=100)
    r.rx(ipf(0), ns=0)
    r.rx(ipf(0), ns=0)                     # duplicate of a delivered one
    r.rx(ipf(2), ns=2)
    r.rx(ipf(2), ns=2)                     # duplicate of a held one
    r.rx(ipf(1), ns=1)
    assert r.got() == markers(0, 1, 2)
    st = r.stats()
    assert (st["data_rx_oos_packets"], st["data_rx_oos_discards"]) == (1, 2)
    assert st["data_rx_packets"] == 5


def test_reorder_timeout_zero_delivers_ahead_and_drops_behind():
    r = Rig(reorder_timeout=0)
    for ns in (0, 2, 1, 3, 3, 5):
        r.rx(ipf(ns), ns=ns)
    assert r.got() == markers(0, 2, 3, 5)
    st = r.stats()
    assert (st["data_rx_oos_packets"], st["data_rx_oos_discards"],
            st["data_rx_lost_packets"]) == (2, 2, 2)
    assert r.dp.next_deadline() is None


def test_reorder_across_the_16_bit_wrap():
    r = Rig(reorder_timeout=100)
    r.dp.sessions[(LTID, LSID)].rx_next = 65534
    for ns in (65534, 0, 65535, 1, 65533):
        r.rx(ipf(ns), ns=ns)
    assert r.got() == [bytes([n & 0xFF]) for n in (65534, 65535, 0, 1)]
    assert r.stats()["data_rx_oos_discards"] == 1


def test_numbering_starts_at_zero_so_early_reordering_is_repaired():
    r = Rig(reorder_timeout=100)
    r.rx(ipf(1), ns=1)
    r.rx(ipf(0), ns=0)
    assert r.got() == markers(0, 1)
    r2 = Rig(reorder_timeout=100)                # a peer starting elsewhere: one gap
    r2.rx(ipf(1), ns=1000, now=0)
    r2.rx(ipf(2), ns=1001, now=0)
    fire_timers(r2.dp, 100)
    assert r2.got() == markers(1, 2)
    assert r2.stats()["data_rx_lost_packets"] == 1000


def test_resync_after_a_run_of_old_packets():
    r = Rig(reorder_timeout=100)
    r.dp.sessions[(LTID, LSID)].rx_next = 1000
    r.rx(ipf(0), ns=1000)
    for i in range(kernel.RESYNC_AFTER):
        r.rx(ipf(i + 1), ns=i)             # the peer restarted at 0
    assert r.got() == markers(0, kernel.RESYNC_AFTER)
    r.rx(ipf(99), ns=kernel.RESYNC_AFTER)
    assert r.got() == markers(0, kernel.RESYNC_AFTER, 99)
    assert r.stats()["data_rx_oos_discards"] == kernel.RESYNC_AFTER - 1


def test_sequencing_switched_off_flushes_held_packets_in_order():
    r = Rig(role="client", reorder_timeout=100)
    r.rx(ipf(0), ns=0)
    r.rx(ipf(3), ns=3)
    r.rx(ipf(2), ns=2)
    r.rx(ipf(9))                           # the LNS stops sending Ns
    assert r.got() == markers(0, 2, 3, 9)
    assert r.dp.next_deadline() is None


# ------------------------------------------------------------------ timers
def test_engine_deadlines_through_the_heap_with_lazy_cancel():
    r = Rig()
    e = r.eng
    e.deadline = 500
    r.tun.inbox.append(b"\x45" + bytes(19))
    r.dp.sessions[(LTID, LSID)].on_readable(0)   # pump re-arms
    assert r.dp.next_deadline() == 500
    for d in range(600, 2000):                   # the engine moves its deadline often
        e.deadline = d
        r.pump()
    assert r.dp.next_deadline() == 1999
    assert len(r.dp.heap) <= 64 + 4 * len(r.dp.sessions) + 1
    r.dp.on_timer(1998)
    assert e.timers == []
    r.dp.on_timer(1999)
    assert e.timers == [1999]
    assert r.dp.next_deadline() is None


def test_many_sessions_share_one_heap():
    r = Rig(up=False)
    for sid in range(1, 51):
        r.dp.session_up(LTID, sid, sid + 1000, dict(r.info))
        r.eng.deadline = 10_000 - sid
        r.dp._pump(r.dp.sessions[(LTID, sid)], 0)
    r.dp.on_timer(0)                             # kicks
    assert r.dp.next_deadline() == 10_000 - 50
    r.dp.session_down(LTID, 50)
    assert r.dp.next_deadline() == 10_000 - 49
    fire_timers(r.dp, 10_000)
    assert sum(len(e.timers) for e in r.engines) == 49
    assert r.dp.next_deadline() is None


# ------------------------------------------------------------------ PPP glue
def test_ip_from_ppp_goes_to_the_tun_and_rx_counts():
    r = Rig()
    r.rx(FF03 + IP_PROTO + b"\x45" + bytes(19))
    assert r.tun.written == [b"\x45" + bytes(19)]
    st = r.stats()
    assert (st["data_rx_packets"], st["data_rx_bytes"]) == (1, 24)
    r.tun.fail_write = OSError(errno.EIO, "io")
    r.rx(ipf(1))
    assert r.stats()["data_rx_errors"] == 1


def test_ppp_up_configures_the_tun_and_tells_the_daemon():
    r = Rig(ppp={"mtu": 1400})
    assert r.host.watched[r.tun.fd] is r.dp.sessions[(LTID, LSID)]
    assert r.tun.name == "l2tp100-10"
    r.eng.events.append(("up", {"local_ip": "10.0.0.1", "peer_ip": "10.0.0.2",
                                "dns": ["10.0.0.53"], "user": "alice", "mru": 1400}))
    r.pump()
    assert r.tun.configured == [("10.0.0.1", "10.0.0.2", 1400)]
    assert r.host.events == [(LTID, LSID, "ppp-up", {
        "local_ip": "10.0.0.1", "peer_ip": "10.0.0.2", "dns": ["10.0.0.53"],
        "user": "alice", "ifname": "l2tp100-10", "mtu": 1400})]
    assert r.dp.lookup_ip("10.0.0.2") == (LTID, LSID)
    st = r.stats()
    assert (st["ppp_local_ip"], st["ppp_peer_ip"], st["ppp_user"], st["interface_name"]) == \
        ("10.0.0.1", "10.0.0.2", "alice", "l2tp100-10")
    r.eng.events.append(("down", "LCP terminated by peer"))
    r.pump(1)
    assert r.host.events[-1] == (LTID, LSID, "ppp-down", {"reason": "LCP terminated by peer"})


def test_interface_name_and_engine_config_from_session_info():
    r = Rig(role="client", interface_name="ppp-test", user_name="alice",
            user_password="pw", ppp={"mru": 1400, "secrets_file": "/etc/x", "ip_pool_name": "p"})
    assert r.tun.name == "ppp-test"
    cfg = r.eng.config
    assert cfg["mru"] == 1400 and cfg["user_name"] == "alice" and cfg["user_password"] == "pw"
    assert "secrets_file" not in cfg and cfg["ip_pool_name"] == "p"  # named in reasons
    assert r.eng.role == "client"
    assert cfg["secret_for"]("alice") == "wonderland"
    assert r.host.secret_calls == [("/etc/x", "alice")]


def test_pool_address_is_allocated_once_and_freed_on_session_down():
    r = Rig(ppp={"ip_pool_name": "pool1"})
    alloc = r.eng.config["alloc_ip"]
    assert alloc("alice") == "10.0.0.2"
    assert alloc("alice") == "10.0.0.2"          # renegotiation keeps it
    assert r.host.allocs == [("pool1", "100/10")]
    tun = r.tun
    r.dp.session_down(LTID, LSID)
    assert r.host.freed == [("pool1", "10.0.0.2")]
    assert tun.closed and r.host.watch_calls[-1] == (tun.fd, 0)
    assert r.dp.stats(LTID, LSID)["data_rx_packets"] == 0
    assert r.rx(ipf(1)) is False


def test_no_pool_no_allocation():
    r = Rig()
    assert r.eng.config["alloc_ip"]("alice") is None
    assert r.host.allocs == []


def test_tun_creation_failure_ends_the_session_from_the_timer():
    r = Rig(tun_error=PermissionError(errno.EPERM, "Operation not permitted"))
    assert r.host.events == []                   # not from inside session_up
    assert r.dp.next_deadline() == 0
    r.dp.on_timer(0)
    (tid, sid, kind, info), = r.host.events
    assert (tid, sid, kind) == (LTID, LSID, "ppp-down")
    assert info["reason"] == ("cannot create TUN device l2tp100-10: "
                              "Operation not permitted")
    assert r.engines == []
    assert r.rx(ipf(1)) is True and r.stats()["data_rx_errors"] == 1


def test_bad_interface_name_ends_the_session():
    r = Rig(interface_name="much-too-long-name")
    r.dp.on_timer(0)
    assert r.host.events[0][2] == "ppp-down"
    assert "much-too-long-name" in r.host.events[0][3]["reason"]


def test_tun_configure_failure_ends_the_session():
    r = Rig()
    r.tun.fail_configure = OSError(errno.EEXIST, "File exists")
    r.eng.events.append(("up", {"local_ip": "10.0.0.1", "peer_ip": "10.0.0.2"}))
    r.pump()
    assert r.host.events == [(LTID, LSID, "ppp-down",
                              {"reason": "cannot configure l2tp100-10: File exists"})]


def test_engine_exception_ends_the_session_and_is_contained():
    r = Rig()
    r.eng.fail_receive = ValueError("boom")
    assert r.rx(ipf(1)) is True
    assert r.host.events[-1][2] == "ppp-down"
    assert "boom" in r.host.events[-1][3]["reason"]
    assert r.stats()["data_rx_errors"] == 1


def test_ppp_down_is_reported_once_and_daemon_may_tear_down_inside_the_call():
    r = Rig()
    r.host.on_event = lambda tid, sid, kind, info: r.dp.session_down(tid, sid)
    r.eng.events += [("down", "auth failed"), ("down", "again"), ("ip", b"\x45")]
    r.pump()
    assert [e[2] for e in r.host.events] == ["ppp-down"]
    assert (LTID, LSID) not in r.dp.sessions
    assert r.tun.closed


def test_no_ppp_session_counts_and_drops():
    r = Rig(no_ppp=True)
    assert r.engines == [] and r.tuns == []
    assert r.rx(ipf(1)) is True
    st = r.stats()
    assert (st["data_rx_packets"], st["data_rx_errors"]) == (1, 1)


def test_tunnel_down_ends_its_sessions_only():
    r = Rig(up=False)
    r.dp.tunnel_up(LTID + 1, PTID + 1, -1, "192.0.2.1", "192.0.2.3", 1701, 1701)
    for tid in (LTID, LTID + 1):
        for sid in (1, 2):
            r.dp.session_up(tid, sid, 5, dict(r.info))
    r.dp.tunnel_down(LTID)
    assert sorted(r.dp.sessions) == [(LTID + 1, 1), (LTID + 1, 2)]
    assert [t.closed for t in r.tuns] == [True, True, False, False]
    r.dp.close()
    assert r.dp.sessions == {} and all(t.closed for t in r.tuns)
    assert r.host.watched == {}


def test_session_up_twice_replaces_the_old_one():
    r = Rig()
    old = r.tun
    r.dp.session_up(LTID, LSID, PSID, dict(r.info))
    assert old.closed and not r.tun.closed and len(r.dp.sessions) == 1


def test_null_data_path_is_unchanged():
    dp = kernel.NullDataPath()
    dp.session_up(1, 2, 3, {})
    dgram = avp.push_data(1, 2, b"abcd", length_bit=True)
    assert dp.data_received(1, avp.pull_header(dgram), dgram, 0) is True
    assert dp.stats(1, 2)["data_rx_bytes"] == 4
    assert dp.next_deadline() is None
    dp.on_timer(0)
    dp.tunnel_down(1)
    assert dp.stats(1, 2)["data_rx_packets"] == 0


# ------------------------------------------------------------------ select
def test_select_names(monkeypatch):
    monkeypatch.setattr(kernel, "kernel_l2tp_status", lambda: (False, "no family"))
    assert kernel.select("null").name == "null"
    for name, text in (("kernel", "not implemented"), ("bogus", "unknown data path"),
                       ("userspace", "needs the daemon's host")):
        try:
            kernel.select(name)
        except kernel.DataPathError as e:
            assert text in str(e), (name, str(e))
        else:
            raise AssertionError(name)


def test_select_auto_and_userspace(monkeypatch):
    host = FakeHost()
    logs = []
    monkeypatch.setattr(kernel, "kernel_l2tp_status", lambda: (False, "no family"))
    monkeypatch.setattr(kernel, "tun_status", lambda: (True, "/dev/net/tun usable"))
    dp = kernel.select("auto", logs.append, host)
    assert dp.name == "userspace"
    assert dp.reason == "auto: kernel lacks L2TP (no family); /dev/net/tun usable"
    assert kernel.select("userspace", None, host).name == "userspace"
    monkeypatch.setattr(kernel, "tun_status", lambda: (False, "cannot create TUN devices: x"))
    dp = kernel.select("auto", logs.append, host)
    assert dp.name == "null"
    assert dp.reason == "auto: kernel lacks L2TP (no family); cannot create TUN devices: x"
    try:
        kernel.select("userspace", None, host)
    except kernel.DataPathError as e:
        assert str(e) == ("the userspace data path is unavailable: "
                          "cannot create TUN devices: x")
    else:
        raise AssertionError("no error")
    assert kernel.select("auto").name == "null"      # no host: null, said why
    monkeypatch.setattr(kernel, "kernel_l2tp_status", lambda: (True, "family present"))
    monkeypatch.setattr(kernel, "pppd_path", lambda: "/usr/sbin/pppd")
    monkeypatch.setattr(kernel, "tun_status", lambda: (True, "/dev/net/tun usable"))
    dp = kernel.select("auto", None, host)
    assert dp.name == "userspace" and "not implemented yet" in dp.reason


# ------------------------------------------------------------------ two data paths back to back
class Wire:
    """Two data paths whose hosts deliver each other's data datagrams (in memory)."""

    def __init__(self, make_engine=None, lns_info=None, lac_info=None, reverse=False):
        self.now = 0
        self.reverse = reverse           # deliver each batch in reverse order
        self.queue = []                  # (to_index, datagram)
        self.hosts = [FakeHost(seed=1), FakeHost(seed=2)]
        self.tuns = [[], []]
        self.dps = []
        for i, host in enumerate(self.hosts):
            host.send_data = self._sender(i)
            host.clock = lambda: self.now
            self.dps.append(kernel.UserspaceDataPath(
                None, host, tun_factory=self._tun_factory(i),
                engine_factory=make_engine, clock=lambda: self.now))
        # LNS: local tid 1 sid 11, LAC: local tid 2 sid 22
        self.ids = [(1, 11, 2, 22), (2, 22, 1, 11)]
        for dp, (tid, _sid, ptid, _psid) in zip(self.dps, self.ids):
            dp.tunnel_up(tid, ptid, -1, "192.0.2.1", "192.0.2.2", 1701, 1701)
        base = dict(sequencing_required=False, use_sequence_numbers=False,
                    reorder_timeout=100, interface_name=None, mtu=1460)
        infos = [dict(base, role="server", **(lns_info or {})),
                 dict(base, role="client", **(lac_info or {}))]
        for dp, (tid, sid, ptid, psid), info in zip(self.dps, self.ids, infos):
            dp.session_up(tid, sid, psid, dict(info, peer_tunnel_id=ptid,
                                                  peer_session_id=psid))

    def _sender(self, i):
        def send(tid, dgram):
            self.queue.append((1 - i, dgram))
        return send

    def _tun_factory(self, i):
        def make(name):
            t = FakeTun(name)
            self.tuns[i].append(t)
            return t
        return make

    def deliver(self):
        n = 0
        while self.queue:
            if self.reverse:
                self.queue.reverse()
            to, dgram = self.queue.pop(0)
            h = avp.pull_header(dgram)
            assert self.dps[to].data_received(self.ids[to][0], h, dgram, self.now)
            n += 1
        return n

    def run(self, until, step_check=None):
        """Deliver, run due timers, jump the clock; stop at `until` or when check is true."""
        while self.now <= until:
            for dp in self.dps:
                dp.on_timer(self.now)
            self.deliver()
            if step_check and step_check():
                return True
            ds = [d for d in (dp.next_deadline() for dp in self.dps) if d is not None]
            if not ds:
                return False
            self.now = max(self.now + 1, min(ds))
        return False


def test_fake_engines_back_to_back_with_sequencing():
    w = Wire(make_engine=FakeEngine, lns_info=dict(use_sequence_numbers=True))
    lns, lac = w.dps
    w.run(0)
    w.tuns[0][0].inbox.append(b"\x45from-lns")
    lns.sessions[(1, 11)].on_readable(0)
    w.deliver()
    w.tuns[1][0].inbox.append(b"\x45from-lac")
    lac.sessions[(2, 22)].on_readable(0)
    w.deliver()
    assert w.tuns[1][0].written == [b"\x45from-lns"]
    assert w.tuns[0][0].written == [b"\x45from-lac"]
    assert lac.sessions[(2, 22)].send_seq is True     # followed the LNS
    assert lns.stats(1, 11)["data_tx_packets"] == lac.stats(2, 22)["data_rx_packets"] == 1


def real_engine(role, config_kwargs, rng, log):
    """What the daemon's host.new_ppp_engine builds."""
    import ppp
    return ppp.PPPEngine(role, ppp.PPPConfig(**config_kwargs), rng, log)


def _real_engine_wire(**kw):
    return Wire(make_engine=real_engine, **kw)


def test_real_ppp_engines_back_to_back_until_an_ip_packet_crosses():
    w = _real_engine_wire(
        lns_info=dict(ppp={"local_ipaddr": "10.9.0.1", "ip_pool_name": "pool",
                           "auth_pap": True, "auth_chap": True, "auth_peer": True,
                           "secrets_file": "/etc/ppp/chap-secrets"},
                      use_sequence_numbers=True),
        lac_info=dict(user_name="alice", user_password="wonderland", ppp={}))
    lns_host, lac_host = w.hosts
    lns_host.pool = ["10.9.0.7"]

    def both_up():
        return (any(e[2] == "ppp-up" for e in lns_host.events)
                and any(e[2] == "ppp-up" for e in lac_host.events))
    assert w.run(60_000, both_up), (lns_host.events, lac_host.events)
    (lns_up,) = [e[3] for e in lns_host.events if e[2] == "ppp-up"]
    (lac_up,) = [e[3] for e in lac_host.events if e[2] == "ppp-up"]
    assert (lns_up["local_ip"], lns_up["peer_ip"]) == ("10.9.0.1", "10.9.0.7")
    assert (lac_up["local_ip"], lac_up["peer_ip"]) == ("10.9.0.7", "10.9.0.1")
    assert lns_up["ifname"] == "l2tp1-11" and lac_up["ifname"] == "l2tp2-22"
    lns_tun, lac_tun = w.tuns[0][0], w.tuns[1][0]
    assert lns_tun.configured[-1][:2] == ("10.9.0.1", "10.9.0.7")
    assert lac_tun.configured[-1][:2] == ("10.9.0.7", "10.9.0.1")
    assert lns_host.allocs == [("pool", "1/11")]
    assert lns_host.secret_calls and lns_host.secret_calls[0] == ("/etc/ppp/chap-secrets",
                                                                 "alice")
    # An IP packet from the LAC side's kernel crosses to the LNS side's kernel.
    pkt = bytes.fromhex("4500001c00000000401100000a09000a0a090001") + b"\x00\x07\x00\x09" \
        + b"\x00\x08\x00\x00"
    lac_tun.inbox.append(pkt)
    w.dps[1].sessions[(2, 22)].on_readable(w.now)
    w.deliver()
    assert lns_tun.written == [pkt]
    assert w.dps[1].sessions[(2, 22)].send_seq is True   # the LAC followed the LNS
    lns_st, lac_st = w.dps[0].stats(1, 11), w.dps[1].stats(2, 22)
    assert lns_st["data_rx_packets"] == lac_st["data_tx_packets"]
    assert lac_st["data_rx_packets"] == lns_st["data_tx_packets"]
    assert lns_st["data_rx_errors"] == lac_st["data_rx_errors"] == 0
    w.dps[0].session_down(1, 11)
    assert lns_host.freed == [("pool", "10.9.0.7")]


def test_real_ppp_over_a_reordering_link_with_sequencing_required():
    w = _real_engine_wire(
        lns_info=dict(ppp={"local_ipaddr": "10.9.0.1", "remote_ipaddr": "10.9.0.2"},
                      sequencing_required=True),
        lac_info=dict(ppp={}, user_name="alice", user_password="wonderland",
                      sequencing_required=True), reverse=True)

    def both_up():
        return all(any(e[2] == "ppp-up" for e in h.events) for h in w.hosts)
    assert w.run(60_000, both_up), [h.events for h in w.hosts]
    for dp, (tid, sid, _, _) in zip(w.dps, w.ids):
        st = dp.stats(tid, sid)
        assert st["data_sequencing"] is True
        assert st["data_rx_errors"] == st["data_rx_oos_discards"] == 0
        assert st["data_rx_lost_packets"] == 0
    assert sum(dp.stats(t, s)["data_rx_oos_packets"] for dp, (t, s, _, _) in
               zip(w.dps, w.ids)) > 0
    # a burst of IP packets, reversed on the wire, arrives in order
    lac_tun, lns_tun = w.tuns[1][0], w.tuns[0][0]
    pkts = [b"\x45" + bytes([i]) * 19 for i in range(5)]
    lac_tun.inbox += pkts
    w.dps[1].sessions[(2, 22)].on_readable(w.now)
    w.deliver()
    assert lns_tun.written == pkts


def test_real_ppp_wrong_password_ends_the_session():
    w = _real_engine_wire(
        lns_info=dict(ppp={"local_ipaddr": "10.9.0.1", "remote_ipaddr": "10.9.0.2",
                           "auth_peer": True}),
        lac_info=dict(user_name="alice", user_password="wrong", ppp={}))
    w.hosts[0].on_event = lambda tid, sid, kind, info: (
        kind == "ppp-down" and w.dps[0].session_down(tid, sid))
    w.run(60_000, lambda: any(e[2] == "ppp-down" for e in w.hosts[0].events))
    # The daemon hears who failed to log in (auth_fails, the log), then the end.
    assert [e[2:] for e in w.hosts[0].events[:-1]] == [("ppp-auth", {"user": "alice",
                                                                     "ok": False})]
    (tid, sid, kind, info) = w.hosts[0].events[-1]
    assert (tid, sid, kind) == (1, 11, "ppp-down")
    assert info["reason"]
    assert w.dps[0].sessions == {} and w.tuns[0][0].closed
