#!/usr/bin/env python3
"""loadgen: a LAC load generator for benchmarking an L2TP LNS (RFC 2661) on loopback.

One process, one thread, non-blocking: it opens many L2TP tunnels to one LNS as fast
as that LNS lets it, and optionally sessions (ICRQ/ICCN) in each, then holds them
(answering Hellos) until told to stop. It is deliberately cheap per message so that
the LNS under test, not the generator, is the bottleneck.

    loadgen.py --server 127.0.0.2:1701 --tunnels 10000 [--inflight 64]
               [--sessions N [--session-delay S]] [--hold SECONDS] [--max-time SECONDS]

Traffic and fairness (bench/README.md has the full method):
* Every tunnel has its own UDP socket bound to 127.0.0.1 (or --bind), so each has its
  own source port, as real LACs do. RLIMIT_NOFILE is raised to its hard limit; when
  that is still too small, tunnels share sockets (each with its own Assigned Tunnel
  ID, which with the source port is what an LNS demultiplexes SCCRQs by).
* At most --inflight tunnels are between "SCCRQ sent" and "SCCRP received"; a slot
  is freed when the SCCRP arrives and the SCCCN goes out.
* A tunnel counts as established when the LNS has acknowledged our SCCCN (its ZLB
  or a piggybacked Nr): the moment we know the LNS has it. A session counts as
  established when our ICCN is acknowledged.
* Reliable delivery per tunnel, as a LAC must: sliding window of the LNS's Receive
  Window Size (4 when absent), retransmission after 1, 2, 4, 8, 8 s (5 retries, then
  the tunnel is failed), go-back-N; duplicates acked at once, early messages dropped
  (the LNS retransmits), ZLB acks sent at once with Ns = our next unsent Ns.
* Hellos are acknowledged (ZLB); we never send Hellos ourselves.
* When nothing has come up for --stall seconds (5) after every tunnel was started, what
  is left counts as failed, with the reason, instead of waiting out the retransmissions.
* Sessions (--sessions N per tunnel): ICRQ with our Assigned Session ID and a Call
  Serial Number, ICCN (Tx Connect Speed, Framing Type sync) after the ICRP. At most
  --session-window ICRQs without an ICRP per tunnel. With --session-delay S the sessions
  start S seconds after every tunnel is up (a {"event": "tunnels_up"} line marks that
  moment, so a caller can sample the LNS with its idle tunnels first).

Output: JSON lines on stdout: {"event": "ready"} before the first datagram,
{"event": "established", ...stats} when every tunnel (and session) is established or
failed, {"event": "done", ...stats} when the hold ends (stdin says "stop", stdin is
closed, or --hold seconds pass). Every loop is bounded by --max-time (the whole
run) and the process exits by itself.
"""
import argparse
import json
import os
import resource
import select
import socket
import struct
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import avp  # noqa: E402  (the project's codec: builds and checks our templates)

HDR = struct.Struct("!HHHHHH")
AVPH = struct.Struct("!HHH")
CTRL_FLAGS = 0xC802          # T, L, S, version 2
MASK = 0xFFFF
HALF = 0x8000

# Tunnel states
NEW, SCCRQ_SENT, UP_PENDING, ESTABLISHED, FAILED = range(5)
# Session states (per-tunnel dict sid -> state)
S_ICRQ, S_ICCN, S_UP, S_FAILED = range(4)


def avps_of(body):
    """{attr: raw value} of the plain (not hidden) IETF AVPs of a message body."""
    out = {}
    pos, n = 0, len(body)
    while pos + 6 <= n:
        fl, vendor, attr = AVPH.unpack_from(body, pos)
        ln = fl & 0x3FF
        if ln < 6 or pos + ln > n:
            break
        if vendor == 0 and not fl & 0x4000:
            out[attr] = body[pos + 6:pos + ln]
        pos += ln
    return out


def result_text(raw):
    """'result/error message' from a Result Code AVP value."""
    if raw is None or len(raw) < 2:
        return "no result code"
    res = (raw[0] << 8) | raw[1]
    err = (raw[2] << 8) | raw[3] if len(raw) >= 4 else None
    msg = raw[4:].decode("utf-8", "replace") if len(raw) > 4 else ""
    return f"{res}/{err} {msg}".strip()


class Tunnel:
    __slots__ = ("idx", "tid", "sock", "peer", "peer_tid", "state", "msgs", "una", "nxt",
                 "ns_hi", "nr", "window", "rto", "rtx_at", "retries", "ack_owed",
                 "t_start", "t_est", "sess_todo", "sess_out", "next_sid", "serial",
                 "sess", "reason")

    def __init__(self, idx, sock, peer):
        self.idx = idx
        self.tid = idx + 1
        self.sock = sock
        self.peer = peer
        self.peer_tid = 0
        self.state = NEW
        self.msgs = []      # (session id in header, body, message type, ref), Ns una, una+1..
        self.una = 0        # oldest unacknowledged Ns
        self.nxt = 0        # next Ns to (re)transmit
        self.ns_hi = 0      # next Ns never sent yet (a ZLB carries it)
        self.nr = 0         # next Ns expected from the LNS
        self.window = 4     # the LNS's Receive Window Size (RFC 2661 5.8 default)
        self.rto = 1.0
        self.rtx_at = None
        self.retries = 0
        self.ack_owed = False
        self.t_start = None
        self.t_est = None
        self.sess_todo = 0
        self.sess_out = 0
        self.next_sid = 1
        self.serial = 0
        self.sess = None
        self.reason = None


class LoadGen:
    def __init__(self, server, tunnels, inflight=64, sessions=0, session_window=64,
                 bind="127.0.0.1", max_time=300.0, hold=0.0, rx_window=64, max_retries=5,
                 out=sys.stdout, host_name="loadgen", stall=5.0, session_delay=0.0):
        if not 0 < tunnels <= 65535:
            raise ValueError("tunnels must be in 1..65535")
        if sessions > 65535:
            raise ValueError("at most 65535 sessions per tunnel")
        self.server = server
        self.n = tunnels
        self.inflight_max = inflight
        self.sessions = sessions
        self.session_window = session_window
        self.bind = bind
        self.max_time = max_time
        self.hold = hold
        self.rx_window = rx_window
        self.max_retries = max_retries
        self.out = out
        self.host_name = host_name
        self.stall = stall
        self.session_delay = session_delay
        self.sessions_started = not (sessions and session_delay)
        self.last_progress = None
        self.stats = dict(sent=0, received=0, retransmits=0, send_errors=0, zlbs_sent=0,
                          duplicates=0, out_of_order=0, hellos=0, unexpected=0,
                          stopccns=0, cdns=0, unknown_tunnel=0, tunnels_failed=0,
                          sessions_failed=0)
        self.reasons = {}
        self.active = set()    # tunnels with a retransmission timer running
        self.dirty = set()     # tunnels to flush at the end of this pass
        self.inflight = 0
        self.established = 0
        self.sessions_up = 0
        self.t_last_reply = None
        self.t_last_est = None
        self.t_last_sess = None
        self.milestones = []
        self.sess_milestones = []
        self.setup_times = []
        self.t_sessions = None
        self._build_templates()
        self._open_sockets()

    # ------------------------------------------------------------- setup
    def _build_templates(self):
        self.sccrq = []
        for i in range(self.n):
            self.sccrq.append(avp.encode_message(avp.SCCRQ, (
                (avp.PROTOCOL_VERSION, (1, 0)), (avp.HOST_NAME, self.host_name),
                (avp.FRAMING_CAPABILITIES, 3), (avp.ASSIGNED_TUNNEL_ID, i + 1),
                (avp.BEARER_CAPABILITIES, 3), (avp.FIRMWARE_REVISION, 0x0100),
                (avp.VENDOR_NAME, "l2tpd-bench"),
                (avp.RECEIVE_WINDOW_SIZE, self.rx_window))))
        self.scccn = avp.encode_message(avp.SCCCN, ())
        icrq = avp.encode_message(avp.ICRQ, ((avp.ASSIGNED_SESSION_ID, 0x1234),
                                             (avp.CALL_SERIAL_NUMBER, 0x56789ABC),
                                             (avp.BEARER_TYPE, 2)))
        # Message Type (8) | Assigned Session ID (6 + 2) | Call Serial Number (6 + 4) | ...
        assert icrq[14:16] == b"\x12\x34" and icrq[22:26] == b"\x56\x78\x9a\xbc"
        self.icrq_parts = (icrq[:14], icrq[16:22], icrq[26:])
        self.iccn = avp.encode_message(avp.ICCN, ((avp.TX_CONNECT_SPEED, 10000000),
                                                  (avp.FRAMING_TYPE, avp.FRAMING_SYNC)))
        # The patched ICRQ must still be a valid message for the project's codec.
        m = avp.decode_message(self._icrq(7, 9))
        assert m.get(avp.ASSIGNED_SESSION_ID) == 7 and m.get(avp.CALL_SERIAL_NUMBER) == 9

    def _icrq(self, sid, serial):
        a, b, c = self.icrq_parts
        return a + struct.pack("!H", sid) + b + struct.pack("!I", serial) + c

    def _open_sockets(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = self.n + 64
        if soft < want and (hard == resource.RLIM_INFINITY or hard > soft):
            new = want if hard == resource.RLIM_INFINITY else min(want, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            soft = new
        nsock = max(1, min(self.n, soft - 64))
        self.per_socket = -(-self.n // nsock)
        self.ep = select.epoll()
        self.socks = {}
        self.tunnels = []
        sock = None
        for i in range(self.n):
            if i % self.per_socket == 0:
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 18)
                sock.bind((self.bind, 0))
                sock.setblocking(False)
                self.socks[sock.fileno()] = sock
                self.ep.register(sock.fileno(), select.EPOLLIN)
            self.tunnels.append(Tunnel(i, sock, self.server))
        self.nsockets = len(self.socks)

    # ------------------------------------------------------------- output
    def emit(self, event, **kw):
        kw["event"] = event
        self.out.write(json.dumps(kw) + "\n")
        self.out.flush()

    def summary(self, now):
        t0 = self.t0
        st = sorted(self.setup_times)

        def pct(p):
            return round(st[min(len(st) - 1, int(p * len(st)))], 6) if st else None
        return dict(
            tunnels=self.n, sockets=self.nsockets, inflight=self.inflight_max,
            established=self.established,
            failed=self.stats["tunnels_failed"],
            time_last_established=None if self.t_last_est is None else round(
                self.t_last_est - t0, 6),
            time_last_sccrp=None if self.t_last_reply is None else round(
                self.t_last_reply - t0, 6),
            setup_latency_p50=pct(0.5), setup_latency_p99=pct(0.99),
            milestones=[round(x - t0, 4) for x in self.milestones],
            sessions_per_tunnel=self.sessions,
            sessions_established=self.sessions_up,
            sessions_failed=self.stats["sessions_failed"],
            time_last_session=None if self.t_last_sess is None else round(
                self.t_last_sess - t0, 6),
            time_sessions_start=None if self.t_sessions is None else round(
                self.t_sessions - t0, 6),
            session_milestones=[round(x - t0, 4) for x in self.sess_milestones],
            elapsed=round(now - t0, 6), stats=self.stats,
            reasons=dict(list(self.reasons.items())[:20]))

    def _reason(self, text):
        self.reasons[text] = self.reasons.get(text, 0) + 1

    # ------------------------------------------------------------- the channel
    def send(self, t, pkt):
        try:
            t.sock.sendto(pkt, t.peer)
            self.stats["sent"] += 1
        except OSError:
            self.stats["send_errors"] += 1   # as a loss: the retransmission timer helps

    def queue(self, t, sid, body, mtype, ref=None):
        t.msgs.append((sid, body, mtype, ref))
        self.dirty.add(t)

    def flush(self, t, now):
        q = t.msgs
        lim = min(len(q), t.window)
        off = (t.nxt - t.una) & MASK
        sent = False
        while off < lim:
            sid, body, _mtype, _ref = q[off]
            self.send(t, HDR.pack(CTRL_FLAGS, 12 + len(body), t.peer_tid, sid, t.nxt, t.nr)
                      + body)
            if t.nxt == t.ns_hi:
                t.ns_hi = (t.ns_hi + 1) & MASK
            else:
                self.stats["retransmits"] += 1
            t.nxt = (t.nxt + 1) & MASK
            off += 1
            sent = True
        if sent:
            t.ack_owed = False
            if t.rtx_at is None:
                t.rtx_at = now + t.rto
                self.active.add(t)
        elif t.ack_owed:
            self.send(t, HDR.pack(CTRL_FLAGS, 12, t.peer_tid, 0, t.ns_hi, t.nr))
            self.stats["zlbs_sent"] += 1
            t.ack_owed = False

    def acked(self, t, nr, now):
        n = (nr - t.una) & MASK
        if n == 0 or n > ((t.ns_hi - t.una) & MASK):
            return
        q = t.msgs
        for i in range(n):
            mtype = q[i][2]
            if mtype == avp.SCCCN:
                self.tunnel_up(t, now)
            elif mtype == avp.ICCN:
                self.session_up(t, q[i][3], now)
        del q[:n]
        if ((t.nxt - nr) & MASK) > ((t.ns_hi - nr) & MASK):
            t.nxt = nr
        t.una = nr
        t.rto = 1.0
        t.retries = 0
        if t.una != t.ns_hi:
            t.rtx_at = now + t.rto
        else:
            t.rtx_at = None
            self.active.discard(t)
        self.refill(t)
        self.dirty.add(t)

    def on_timers(self, now):
        for t in [t for t in self.active if t.rtx_at is not None and now >= t.rtx_at]:
            t.retries += 1
            if t.retries > self.max_retries:
                self.fail(t, f"no acknowledgement after {self.max_retries} retransmissions "
                             f"(state {t.state})", now)
                continue
            t.rto = min(t.rto * 2, 8.0)
            t.nxt = t.una
            t.rtx_at = now + t.rto
            self.dirty.add(t)

    # ------------------------------------------------------------- tunnels
    def start(self, t, now):
        t.state = SCCRQ_SENT
        t.t_start = self.last_progress = now
        self.inflight += 1
        self.queue(t, 0, self.sccrq[t.idx], avp.SCCRQ)

    def tunnel_up(self, t, now):
        if t.state != UP_PENDING:
            return
        t.state = ESTABLISHED
        t.t_est = now
        self.established += 1
        self.t_last_est = self.last_progress = now
        self.setup_times.append(now - t.t_start)
        if self.established * 10 >= (len(self.milestones) + 1) * self.n:
            self.milestones.append(now)

    def fail(self, t, why, now):
        if t.state == FAILED:
            return
        if t.state == SCCRQ_SENT:
            self.inflight -= 1
        t.state = FAILED
        t.reason = why
        self.stats["tunnels_failed"] += 1
        self._reason("tunnel: " + why)
        self._fail_sessions(t, "tunnel failed")
        t.msgs = []
        t.una = t.nxt = t.ns_hi
        t.rtx_at = None
        self.active.discard(t)

    # ------------------------------------------------------------- sessions
    def _fail_sessions(self, t, why):
        """Every session of `t` not yet up or failed, and every one not yet started,
        counts as failed."""
        if not self.sessions:
            return
        n = 0
        if t.sess:
            for sid, st in t.sess.items():
                if st == S_ICRQ or st == S_ICCN:
                    t.sess[sid] = S_FAILED
                    n += 1
        n += self.sessions - (len(t.sess) if t.sess else 0)
        t.sess_todo = 0
        if t.sess is None:
            t.sess = {}
        # Mark the never-started ones as taken so a second call counts nothing.
        for k in range(self.sessions - len(t.sess)):
            t.sess[-1 - k] = S_FAILED
        if n:
            self.stats["sessions_failed"] += n
            self._reason(f"session: {why}")

    def start_sessions(self, t):
        if t.state == ESTABLISHED or t.state == UP_PENDING:
            if t.sess is None:
                t.sess = {}
            t.sess_todo = self.sessions
            self.refill(t)

    def refill(self, t):
        if not t.sess_todo or t.state == FAILED:
            return
        while (t.sess_todo and t.sess_out < self.session_window
               and len(t.msgs) - ((t.nxt - t.una) & MASK) < t.window):
            sid = t.next_sid
            t.next_sid += 1
            t.sess_todo -= 1
            t.sess_out += 1
            t.serial += 1
            t.sess[sid] = S_ICRQ
            self.queue(t, 0, self._icrq(sid, t.serial), avp.ICRQ, sid)

    def session_up(self, t, sid, now):
        if t.sess.get(sid) != S_ICCN:
            return
        t.sess[sid] = S_UP
        self.sessions_up += 1
        self.t_last_sess = self.last_progress = now
        total = self.n * self.sessions
        if self.sessions_up * 20 >= (len(self.sess_milestones) + 1) * total:
            self.sess_milestones.append(now)

    # ------------------------------------------------------------- receive
    def on_datagram(self, data, addr, now):
        self.stats["received"] += 1
        if len(data) < 12:
            return
        flags, length, tid, sid, ns, nr = HDR.unpack_from(data)
        if flags & 0xC80F != 0xC802 or length > len(data) or length < 12:
            return
        t = self.tunnels[tid - 1] if 0 < tid <= self.n else None
        if t is None or t.state == FAILED:
            self.stats["unknown_tunnel"] += 1
            return
        if addr != t.peer:
            t.peer = addr   # RFC 2661 8.1: the LNS may answer from another port
        body = data[12:length]
        if not body:
            self.acked(t, nr, now)
            return
        d = (ns - t.nr) & MASK
        if d:
            if d >= HALF:
                self.stats["duplicates"] += 1
                t.ack_owed = True
                self.dirty.add(t)
            else:
                self.stats["out_of_order"] += 1
            self.acked(t, nr, now)
            return
        t.nr = (t.nr + 1) & MASK
        t.ack_owed = True
        self.dirty.add(t)
        self.acked(t, nr, now)
        mtype = (body[6] << 8) | body[7] if len(body) >= 8 else None
        if mtype == avp.HELLO:
            self.stats["hellos"] += 1
        elif mtype == avp.SCCRP:
            self.on_sccrp(t, body, now)
        elif mtype == avp.ICRP:
            self.on_icrp(t, sid, body, now)
        elif mtype == avp.CDN:
            self.on_cdn(t, sid, body, now)
        elif mtype == avp.STOPCCN:
            self.stats["stopccns"] += 1
            a = avps_of(body)
            self.fail(t, "StopCCN " + result_text(a.get(avp.RESULT_CODE)), now)
            # Ack it at once (RFC 2661 5.7) even though the tunnel is gone for us.
            self.send(t, HDR.pack(CTRL_FLAGS, 12, t.peer_tid, 0, t.ns_hi, t.nr))
        else:
            self.stats["unexpected"] += 1
            self._reason(f"unexpected message type {mtype}")

    def on_sccrp(self, t, body, now):
        if t.state != SCCRQ_SENT:
            self.stats["unexpected"] += 1
            return
        a = avps_of(body)
        ptid = a.get(avp.ASSIGNED_TUNNEL_ID)
        if not ptid or len(ptid) != 2:
            self.fail(t, "SCCRP without Assigned Tunnel ID", now)
            return
        t.peer_tid = (ptid[0] << 8) | ptid[1]
        rws = a.get(avp.RECEIVE_WINDOW_SIZE)
        t.window = max(1, (rws[0] << 8) | rws[1]) if rws and len(rws) == 2 else 4
        t.state = UP_PENDING
        self.inflight -= 1
        self.t_last_reply = now
        self.queue(t, 0, self.scccn, avp.SCCCN)
        if self.sessions:
            t.sess = {}
            if not self.session_delay:
                t.sess_todo = self.sessions
                self.refill(t)

    def on_icrp(self, t, sid, body, now):
        if t.sess is None or t.sess.get(sid) != S_ICRQ:
            self.stats["unexpected"] += 1
            return
        psid = avps_of(body).get(avp.ASSIGNED_SESSION_ID)
        if not psid or len(psid) != 2:
            self._session_failed(t, sid, "ICRP without Assigned Session ID")
            return
        t.sess[sid] = S_ICCN
        t.sess_out -= 1
        self.queue(t, (psid[0] << 8) | psid[1], self.iccn, avp.ICCN, sid)
        self.refill(t)

    def on_cdn(self, t, sid, body, now):
        self.stats["cdns"] += 1
        self._session_failed(t, sid, "CDN " + result_text(avps_of(body).get(avp.RESULT_CODE)))

    def _session_failed(self, t, sid, why):
        st = t.sess.get(sid) if t.sess else None
        if st is None or st in (S_UP, S_FAILED):
            self._reason("after setup: " + why)
            return
        if st == S_ICRQ:
            t.sess_out -= 1
        t.sess[sid] = S_FAILED
        self.stats["sessions_failed"] += 1
        self._reason("session: " + why)
        self.refill(t)

    # ------------------------------------------------------------- the loop
    def finished(self):
        if self.established + self.stats["tunnels_failed"] < self.n:
            return False
        if not self.sessions:
            return True
        return self.sessions_up + self.stats["sessions_failed"] >= self.n * self.sessions

    def run(self):
        ep, socks = self.ep, self.socks
        stdin_fd = None
        if self.hold:
            stdin_fd = sys.stdin.fileno()
            os.set_blocking(stdin_fd, False)
            ep.register(stdin_fd, select.EPOLLIN | select.EPOLLHUP)
        self.emit("ready", tunnels=self.n, sockets=self.nsockets, per_socket=self.per_socket)
        self.t0 = now = time.monotonic()
        hard_end = self.t0 + self.max_time
        next_start = 0
        next_timer = now + 0.05
        phase = "setup"
        hold_end = None
        sessions_at = None
        while now < hard_end:
            if phase == "setup":
                while self.inflight < self.inflight_max and next_start < self.n:
                    self.start(self.tunnels[next_start], now)
                    next_start += 1
            for t in self.dirty:
                self.flush(t, now)
            self.dirty.clear()
            events = ep.poll(0.02)
            now = time.monotonic()
            for fd, _ev in events:
                if fd == stdin_fd:
                    try:
                        line = os.read(fd, 4096)
                    except BlockingIOError:
                        continue
                    if not line or b"stop" in line:
                        hold_end = now
                        ep.unregister(fd)
                        stdin_fd = None
                    continue
                s = socks.get(fd)
                if s is None:
                    continue
                for _ in range(64):
                    try:
                        data, addr = s.recvfrom(4096)
                    except (BlockingIOError, InterruptedError):
                        break
                    self.on_datagram(data, addr, now)
            if now >= next_timer:
                self.on_timers(now)
                next_timer = now + 0.05
            if (not self.sessions_started and next_start >= self.n
                    and self.established + self.stats["tunnels_failed"] >= self.n):
                if sessions_at is None:
                    for t in self.dirty:
                        self.flush(t, now)
                    self.dirty.clear()
                    self.emit("tunnels_up", **self.summary(now))
                    sessions_at = now + self.session_delay
                    self.last_progress = sessions_at
                elif now >= sessions_at:
                    self.sessions_started = True
                    self.t_sessions = now
                    for t in self.tunnels:
                        self.start_sessions(t)
            if (phase == "setup" and self.stall and now - self.last_progress > self.stall
                    and next_start >= self.n):
                # Nothing established for `stall` s: what is left counts as failed.
                for t in self.tunnels:
                    if t.state != ESTABLISHED and t.state != FAILED:
                        self.fail(t, f"stalled: no progress for {self.stall:g} s", now)
                    elif t.state == ESTABLISHED and (t.sess_todo or t.sess is not None
                                                     or not self.session_delay):
                        self._fail_sessions(t, f"stalled: no progress for {self.stall:g} s")
            if phase == "setup" and self.finished():
                for t in self.dirty:
                    self.flush(t, now)
                self.dirty.clear()
                self.emit("established", **self.summary(now))
                if not self.hold:
                    return 0
                phase = "hold"
                self.stats_at_hold = dict(self.stats)
                if hold_end is None:
                    hold_end = now + self.hold
            if phase == "hold" and hold_end is not None and now >= hold_end:
                break
        for t in self.dirty:
            self.flush(t, now)
        s = self.summary(now)
        if phase == "setup":
            s["timed_out"] = True
            self.emit("established", **s)
            return 1
        held = {k: self.stats[k] - self.stats_at_hold.get(k, 0) for k in self.stats}
        self.emit("done", hold_stats=held, **s)
        return 0


def parse_addr(text):
    host, _, port = text.rpartition(":")
    if not host.startswith("127."):
        raise argparse.ArgumentTypeError("only loopback (127.x.x.x) servers are allowed")
    return (host, int(port))


def main(argv=None):
    ap = argparse.ArgumentParser(prog="loadgen", description=__doc__.split("\n")[0])
    ap.add_argument("--server", type=parse_addr, required=True, help="LNS ADDR:PORT (127.x)")
    ap.add_argument("--tunnels", type=int, default=1000)
    ap.add_argument("--inflight", type=int, default=64, help="SCCRQs awaiting SCCRP at most")
    ap.add_argument("--sessions", type=int, default=0, help="sessions per tunnel")
    ap.add_argument("--session-delay", type=float, default=0.0,
                    help="start sessions this long after every tunnel is up (s), after a "
                    "'tunnels_up' line; 0 = each tunnel at once after its SCCCN")
    ap.add_argument("--session-window", type=int, default=64,
                    help="ICRQs awaiting ICRP per tunnel at most")
    ap.add_argument("--rx-window", type=int, default=64, help="Receive Window Size we send")
    ap.add_argument("--bind", default="127.0.0.1", help="our address (127.x)")
    ap.add_argument("--hold", type=float, default=0.0,
                    help="after setup, keep answering Hellos this long (s) or until stdin "
                    "says stop / closes")
    ap.add_argument("--max-time", type=float, default=300.0, help="hard bound on the run (s)")
    ap.add_argument("--stall", type=float, default=5.0,
                    help="during setup, give up on what is left after this long without "
                    "progress (s; 0 = wait for the retransmissions to fail)")
    a = ap.parse_args(argv)
    if not a.bind.startswith("127."):
        ap.error("--bind must be a loopback address")
    g = LoadGen(a.server, a.tunnels, a.inflight, a.sessions, a.session_window, a.bind,
                a.max_time, a.hold, a.rx_window, stall=a.stall,
                session_delay=a.session_delay)
    return g.run()


if __name__ == "__main__":
    sys.exit(main())
