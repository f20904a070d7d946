"""ctrlchan: the reliable control channel of one L2TP tunnel (RFC 2661 section 5.8).

Theory of this module
---------------------
One `ControlChannel` carries the control messages of one tunnel, in both
directions, reliably and in order. It knows message bodies only as opaque bytes
(built by avp.encode_message); the only things it peeks at are the Message Type
of StopCCN and Hello. It is sans-IO: time arrives as `now` (integer
milliseconds), datagrams leave through `datagrams_to_send(now)`, and the
caller finds out when to come back through `next_deadline()`.

Rules it keeps:
* All sequence-number state lives here: Ns/Nr are free-running 16-bit counters,
  compared only through the 32768-value window of section 5.8 (`seq_le`).
* Our Ns is assigned when a message is first put on the wire, never earlier, so a
  ZLB can always carry "the next Ns we have not sent" (xl2tpd ignores a ZLB whose
  Ns is anything else; ../shared/reference/xl2tpd-peer.md quirk 2).
* Datagrams are built in `datagrams_to_send` only, so every (re)transmission
  carries the freshest Nr and an ack owed is piggybacked whenever possible.
* One retransmission timer, for the oldest unacknowledged message (the TCP
  shape): it restarts on every acknowledgement that makes progress; when it
  fires the window goes back to that message (go-back-N, paced by CWND).
* Errors in peer input are never raised: a bad datagram is dropped and counted.
  Misuse of the API (bad configuration) raises avp.LocalError.
* Events for the tunnel FSM are tuples in a queue drained by `pop_events()`:
  ("failed", reason) when retransmissions are exhausted, ("closed",) when the
  linger after StopCCN ends. After either, the channel is inert.
* Bounded receive state: an early message is kept only when it lies inside our
  advertised window (fewer than rx_window_size ahead of Nr), so the
  out-of-order queue never holds more than rx_window_size - 1 messages.
* Idle means nothing in flight and nothing queued; only then can a Hello be
  queued, so a Hello never waits behind the window or doubles up.
* Linger: sending a StopCCN turns the channel "closing" (later send() calls are
  dropped); the linger clock starts at its first transmission. Receiving one
  drops whatever we still had to send, acks at once and starts the clock. At
  the end: ("closed",), or ("failed", ...) if our StopCCN was never acked.

RFC 2661 parts implemented here:
* 5.8  Ns/Nr, duplicates acknowledged but not delivered, ZLB acks, exponential
       backoff with a cap of at least 8 s, retry limit, sliding send window.
* App. A  slow start and congestion avoidance (CWND, SSTHRESH), counting one ACK
       per newly acknowledged message.
* 5.5  Hello after `hello_timeout` without receiving anything new (control here,
       data through `note_rx`; a duplicate is no proof that the peer is alive, since
       a restarted peer replays old numbers); sent only when nothing else is
       outstanding, because an outstanding message is already a keepalive.
* 4.1  every in-order message is delivered, Hello included, so the tunnel decodes
       and checks each one (an unknown M=1 AVP in a Hello clears the tunnel too).
* 5.7  after a StopCCN is sent or received: keep acking for `linger` ms.

Deliberately missing:
* No RTT estimation: the first retransmission is always `retry_timeout` after
  the (re)start of the timer, as the RFC recommends.
* No fast retransmit on duplicate acks; lost messages wait for the timer.
* Nothing about tunnel ids beyond putting `peer_tunnel_id` in our headers; the
  daemon demultiplexes datagrams before they get here.
"""

import avp

try:
    from micropython import const
except ImportError:
    def const(x):
        return x


_MASK = const(0xFFFF)
_HALF = const(0x8000)       # section 5.8: the "less than or equal" window
_MAX_WINDOW = const(0x7FFF)  # keeps every in-flight Ns on one side of that window
_MIN_RTO_CAP = const(8000)   # section 5.8: a backoff cap MUST be no less than 8 s
_MAX_ACK_DELAY = const(500)  # well under any peer's 1 s retransmission (OpenL2TP: 500)
_DEFAULT_PEER_RWS = const(4)  # section 5.8: RWS AVP absent -> assume 4
# Bounded send queue. A peer that acks slowly while it keeps sending requests
# would grow the queue of our answers without limit: past MAX_UNACKED messages not
# yet acknowledged the channel fails and the tunnel is cleared (with its best-effort
# StopCCN). Receiving is never held back: two peers that both withheld acks while
# their queues were long would wait for each other for ever. The tunnel refuses
# new local calls earlier, at BUSY (see `busy`), so an administrator's burst cannot
# reach the limit.
MAX_UNACKED = const(4096)
BUSY = const(2048)

OPEN = "open"
CLOSING = "closing"
CLOSED = "closed"
FAILED = "failed"

_HELLO_BODY = avp.encode_message(avp.HELLO, ())

# Counters kept here, named as OpenL2TP's tunnel statistics (openl2tp-api.md 1.6).
# The data_* counters belong to the data path and are not kept here.
_COUNTERS = ("retransmits", "tx_zlbs", "tx_zlb_fails", "rx_zlbs", "duplicate_pkt_discards",
             "rx_hellos", "tx_hellos", "tx_hello_fails", "control_rx_packets",
             "control_rx_bytes", "control_rx_oos_packets", "control_rx_oos_discards",
             "control_tx_packets", "control_tx_bytes")
# Their positions in the counter list (a list costs a third of a dict per tunnel).
_C_RETRANSMITS = const(0)
_C_TX_ZLBS = const(1)
_C_TX_ZLB_FAILS = const(2)
_C_RX_ZLBS = const(3)
_C_DUPLICATE_PKT_DISCARDS = const(4)
_C_RX_HELLOS = const(5)
_C_TX_HELLOS = const(6)
_C_TX_HELLO_FAILS = const(7)
_C_CONTROL_RX_PACKETS = const(8)
_C_CONTROL_RX_BYTES = const(9)
_C_CONTROL_RX_OOS_PACKETS = const(10)
_C_CONTROL_RX_OOS_DISCARDS = const(11)
_C_CONTROL_TX_PACKETS = const(12)
_C_CONTROL_TX_BYTES = const(13)


def seq_le(a, b):
    """True when Ns `a` is "less than or equal" to `b`: within the 32768 values
    that end at b (RFC 2661 section 5.8; with b = 15, 0..15 and 32784..65535)."""
    return ((b - a) & _MASK) < _HALF


def _window(value, what):
    if not isinstance(value, int) or not 1 <= value <= _MAX_WINDOW:
        raise avp.LocalError(f"{what} {value!r} is outside 1..{_MAX_WINDOW}")
    return value


def _count(value, what, low=0):
    if not isinstance(value, int) or value < low:
        raise avp.LocalError(f"{what} {value!r} must be an integer >= {low}")
    return value


class ControlChannel:
    """The reliable delivery layer of one tunnel's control connection."""

    # No per-instance dict on CPython: it was a quarter of a tunnel's memory (bench
    # F3). MicroPython ignores __slots__, and nothing here relies on it.
    __slots__ = ("rx_window_size", "tx_window_size", "retry_timeout",
                 "max_retry_timeout", "max_retries", "hello_timeout", "ack_delay",
                 "linger", "_log", "peer_tunnel_id", "state", "_events", "_cnt",
                 "_msgs", "_head", "_una", "_nxt", "_ns", "peer_rx_window_size",
                 "actual_tx_window_size", "_cwnd", "_ssthresh", "_acc", "_rto",
                 "_retries", "_rtx_at", "_linger_at", "_nr", "_ooo", "_peer_ns",
                 "_peer_nr", "_ack_at", "_last_rx", "_final")

    def __init__(self, rx_window_size=10, tx_window_size=10, retry_timeout=1000,
                 max_retry_timeout=8000, max_retries=5, hello_timeout=60000,
                 ack_delay=100, linger=31000, log=None):
        # Configuration (OpenL2TP's names; times in ms). rx_window_size is what the
        # FSM advertises in the Receive Window Size AVP; it also bounds our
        # out-of-order queue.
        self.rx_window_size = _window(rx_window_size, "rx_window_size")
        self.tx_window_size = _window(tx_window_size, "tx_window_size")
        self.retry_timeout = _count(retry_timeout, "retry_timeout", 1)
        # Ref: RFC2661 section 5.8: the cap MUST be no less than 8 s.
        self.max_retry_timeout = max(_count(max_retry_timeout, "max_retry_timeout"),
                                     _MIN_RTO_CAP, self.retry_timeout)
        self.max_retries = _count(max_retries, "max_retries")
        self.hello_timeout = _count(hello_timeout or 0, "hello_timeout")  # 0 = off
        self.ack_delay = min(_count(ack_delay, "ack_delay"), _MAX_ACK_DELAY)
        self.linger = _count(linger, "linger")
        self._log = log
        self.peer_tunnel_id = 0   # header Tunnel ID; 0 until the FSM learns it (5.12)
        self.state = OPEN
        self._events = []
        self._cnt = [0] * len(_COUNTERS)

        # Send side. _msgs[_head:] holds (session_id, body, msg_type) for every
        # message not yet acknowledged: first those in flight (Ns _una, _una+1,
        # ... _ns-1), then those not yet sent. _nxt is the next Ns to put on the
        # wire: _ns normally, walked back to _una by a retransmission timeout.
        self._msgs = []
        self._head = 0
        self._una = 0     # oldest unacknowledged Ns
        self._nxt = 0     # next Ns to (re)transmit
        self._ns = 0      # next new Ns (section 5.8: starts at 0)
        self.peer_rx_window_size = _DEFAULT_PEER_RWS
        self.actual_tx_window_size = min(_DEFAULT_PEER_RWS, self.tx_window_size)
        self._cwnd = 1    # Appendix A: CWND starts at one packet
        self._ssthresh = self.actual_tx_window_size
        self._acc = 0     # acks counted towards the next CWND step (congpkt_acc)
        self._rto = self.retry_timeout
        self._retries = 0
        self._rtx_at = None
        self._linger_at = None

        # Receive side: _nr is the next Ns we expect; _ooo maps Ns -> (sid, body)
        # for messages that arrived early, never more than rx_window_size - 1.
        self._nr = 0
        self._ooo = {}
        self._peer_ns = 0
        self._peer_nr = 0
        self._ack_at = None   # when a ZLB must go if nothing piggybacks our Nr
        self._last_rx = None  # time of the last message received (for Hello)
        self._final = None    # a last datagram to send once, after failure

    # ------------------------------------------------------------- public API
    def set_peer_window(self, rws):
        """Use the peer's Receive Window Size AVP (None when it sent none)."""
        if rws is None:
            rws = _DEFAULT_PEER_RWS  # Ref: RFC2661 section 5.8: absent -> 4
        # Peer input is clamped, never refused: 0 is invalid (5.8) and behaves as
        # 1; above 32767 the sequence-number comparison would become ambiguous.
        rws = min(max(int(rws), 1), _MAX_WINDOW)
        self.peer_rx_window_size = rws
        self.actual_tx_window_size = min(rws, self.tx_window_size)
        # Ref: RFC2661 Appendix A: SSTHRESH starts at the advertised window.
        self._ssthresh = self.actual_tx_window_size
        self._cwnd = min(self._cwnd, self.actual_tx_window_size)

    def send(self, body, now, session_id=0):
        """Queue one control message (an encoded body) for reliable delivery."""
        if self.state != OPEN:
            # Nothing may follow a StopCCN (section 5.7); after failure nothing can.
            self._say(f"dropping a message queued in state {self.state}")
            return
        if self._last_rx is None:
            self._last_rx = now   # the idle clock starts with the first activity
        mtype = avp.peek_message_type(body)
        if mtype == avp.STOPCCN:
            self.state = CLOSING  # the linger clock starts when it is first sent
        elif len(self._msgs) - self._head >= MAX_UNACKED:
            self._finish(FAILED, ("failed", f"{MAX_UNACKED} messages wait for the peer's "
                                            "acknowledgement"))
            return
        self._msgs.append((session_id, bytes(body), mtype))

    def take_final(self):
        """[the datagrams queued by send_final] once, else []."""
        final, self._final = self._final, None
        return final or []

    def send_final(self, body, session_id=0):
        """Queue `body` (a StopCCN) to go out once, unreliably, after the channel has
        failed: RFC 2661 5.7 lets a side that gives up tell the peer, so the peer
        clears within a round trip instead of keeping the tunnel for minutes."""
        # Which Ns the peer waits for is unknown: the one it last asked for (its
        # Nr; it heard none of our unacknowledged messages) or the next new one (it
        # heard them, its acks were lost). Both go: the wrong one is a duplicate,
        # acked and dropped, the right one is taken in order.
        body = bytes(body)
        self._final = [avp.push_control(self.peer_tunnel_id, session_id, ns, self._nr, body)
                       for ns in sorted(set((self._peer_nr, self._ns)))]

    def set_log(self, log):
        """Replace the log callable (None: silent), e.g. when trace flags change."""
        self._log = log

    def note_rx(self, now):
        """A data message arrived for this tunnel: it counts for the Hello timer (5.5)."""
        self._last_rx = now

    def receive(self, datagram, now, header=None):
        """Take one control datagram; return the [(session_id, body), ...] it
        makes deliverable, in order. Never raises on peer input."""
        if self.state == CLOSED or self.state == FAILED:
            return []
        if header is None:
            try:
                header = avp.pull_header(datagram)
            except avp.ParseError as e:
                self._say(f"discarding a bad datagram: {e.msg}")
                return []
        if not header.control or header.ns is None or header.nr is None:
            return []
        ns = header.ns
        body = bytes(datagram[header.payload_offset:header.length])
        cnt = self._cnt
        cnt[_C_CONTROL_RX_PACKETS] += 1
        cnt[_C_CONTROL_RX_BYTES] += len(datagram)
        self._peer_ns = ns
        self._peer_nr = header.nr
        # Ref: RFC2661 section 5.8: the Nr of every message, ZLB or duplicate, acks.
        self._acked(header.nr, now)
        if not body:
            cnt[_C_RX_ZLBS] += 1   # a ZLB takes no Ns (5.8): nothing more to do
            self._last_rx = now
            return []
        ahead = (ns - self._nr) & _MASK
        if ahead >= _HALF or ns in self._ooo:
            # Ref: RFC2661 section 5.8: a duplicate is discarded but MUST be acked;
            # the peer retransmits because our ack went missing, so ack at once.
            # It is no proof that the peer is alive (a restarted peer replaying an
            # old Ns, say): the Hello clock keeps running (5.5).
            cnt[_C_DUPLICATE_PKT_DISCARDS] += 1
            self._ack_at = now
            return []
        self._last_rx = now
        if ahead:
            # Ref: RFC2661 section 5.8: early messages may be queued or discarded.
            cnt[_C_CONTROL_RX_OOS_PACKETS] += 1
            if ahead < self.rx_window_size:
                self._ooo[ns] = (header.session_id, body)
            else:
                cnt[_C_CONTROL_RX_OOS_DISCARDS] += 1
            return []
        out = []
        stop = False
        item = (header.session_id, body)
        while item is not None:
            self._nr = (self._nr + 1) & _MASK
            mtype = avp.peek_message_type(item[1])
            if mtype == avp.HELLO:
                cnt[_C_RX_HELLOS] += 1
            # Every message is delivered, Hello included: the tunnel decodes and
            # checks it like any other (section 4.1: an unknown M=1 AVP clears it).
            out.append(item)
            stop = stop or mtype == avp.STOPCCN
            item = self._ooo.pop(self._nr, None)
        if self._ack_at is None:
            self._ack_at = now + self.ack_delay
        if stop:
            self._peer_closed(now)
        return out

    def datagrams_to_send(self, now):
        """Whole L2TP control datagrams to put on the wire now."""
        if self.state == CLOSED or self.state == FAILED:
            return self.take_final()
        out = []
        msgs = self._msgs
        while True:
            off = (self._nxt - self._una) & _MASK
            i = self._head + off
            # Appendix A / 5.8: at most CWND (<= the peer's window) in flight.
            if off >= self._cwnd or i >= len(msgs):
                break
            sid, body, mtype = msgs[i]
            if self._nxt == self._ns:
                self._ns = (self._ns + 1) & _MASK   # first transmission takes an Ns
                if mtype == avp.HELLO:
                    self._cnt[_C_TX_HELLOS] += 1
                elif mtype == avp.STOPCCN:
                    # Ref: RFC2661 section 5.7: keep state a full cycle (31 s).
                    self._linger_at = now + self.linger
            else:
                self._cnt[_C_RETRANSMITS] += 1
                if self._log is not None:
                    self._log(f"retransmitting Ns {self._nxt} (timeout {self._retries})")
            # Ref: RFC2661 section 5.8: a retransmission carries the current Nr.
            out.append(avp.push_control(self.peer_tunnel_id, sid, self._nxt, self._nr, body))
            self._nxt = (self._nxt + 1) & _MASK
            if self._rtx_at is None:
                self._rtx_at = now + self._rto
        if out:
            self._ack_at = None   # our Nr went out piggybacked
        elif self._ack_at is not None and now >= self._ack_at:
            # Ref: RFC2661 section 5.8: explicit ack by ZLB, Ns not incremented.
            # Session ID 0 and Ns = next unsent: xl2tpd-peer.md quirks 1 and 2.
            out.append(avp.push_control(self.peer_tunnel_id, 0, self._ns, self._nr))
            self._cnt[_C_TX_ZLBS] += 1
            self._ack_at = None
        for d in out:
            self._cnt[_C_CONTROL_TX_PACKETS] += 1
            self._cnt[_C_CONTROL_TX_BYTES] += len(d)
        return out

    def next_deadline(self):
        """The earliest time on_timer must run (ms), or None. O(1)."""
        best = self._rtx_at
        for t in (self._ack_at, self._linger_at, self._hello_at()):
            if t is not None and (best is None or t < best):
                best = t
        return best

    def on_timer(self, now):
        """Handle every deadline that is due at `now`."""
        if self._rtx_at is not None and now >= self._rtx_at:
            self._timeout(now)
        # Retransmission failure is checked first: an unacked StopCCN at the end
        # of the linger is reported as "failed", an acked one as "closed".
        if self._linger_at is not None and now >= self._linger_at and self.state == CLOSING:
            self._say("linger after StopCCN over")
            self._finish(CLOSED, ("closed",))
        hello = self._hello_at()
        if hello is not None and now >= hello:
            # Ref: RFC2661 section 5.5: Hello after hello_timeout without rx.
            self._msgs.append((0, _HELLO_BODY, avp.HELLO))
        # The delayed ack needs nothing here: datagrams_to_send sends it when due.

    @property
    def in_flight(self):
        """How many messages are on the wire and not yet acknowledged."""
        return (self._ns - self._una) & _MASK

    @property
    def unacked(self):
        """How many messages are not yet acknowledged: in flight or still queued."""
        return len(self._msgs) - self._head

    @property
    def busy(self):
        """True while BUSY or more of our messages wait for acknowledgement: the
        tunnel places no new calls of its own until the peer catches up."""
        return len(self._msgs) - self._head >= BUSY

    @property
    def has_events(self):
        """True while events wait for pop_events (e.g. a failure inside send)."""
        return bool(self._events)

    def pop_events(self):
        """Return and clear the queued events ("failed", reason) / ("closed",)."""
        ev = self._events
        self._events = []
        return ev

    @property
    def stats(self):
        """A snapshot of the transport statistics under OpenL2TP's names."""
        s = dict(zip(_COUNTERS, self._cnt))
        s["ns"] = self._ns
        s["nr"] = self._nr
        s["peer_ns"] = self._peer_ns
        s["peer_nr"] = self._peer_nr
        s["cwnd"] = self._cwnd
        s["ssthresh"] = self._ssthresh
        s["congpkt_acc"] = self._acc
        return s

    # ------------------------------------------------------------- internals
    def _say(self, msg):
        if self._log is not None:
            self._log(msg)

    def _hello_at(self):
        # Only when idle: nothing in flight or queued (an outstanding message is
        # retransmitted until acked or failed, which already tests the peer).
        if (self.state != OPEN or not self.hello_timeout or self._last_rx is None
                or self._head != len(self._msgs)):
            return None
        return self._last_rx + self.hello_timeout

    def _acked(self, nr, now):
        """Process a received Nr: everything before it has arrived (5.8)."""
        n = (nr - self._una) & _MASK
        if n == 0 or n > ((self._ns - self._una) & _MASK):
            return   # nothing new, or an ack for Ns we never sent: ignored
        window = self.actual_tx_window_size
        for _ in range(n):
            # Ref: RFC2661 Appendix A: +1 per ACK in slow start (CWND < SSTHRESH),
            # else +1 per CWND ACKs (congestion avoidance); never above the window.
            if self._cwnd < self._ssthresh:
                self._cwnd += 1
            else:
                self._acc += 1
                if self._acc >= self._cwnd:
                    self._cwnd += 1
                    self._acc = 0
        if self._cwnd > window:
            self._cwnd = window
        self._head += n
        if self._head == len(self._msgs) or (self._head >= 64
                                              and 2 * self._head >= len(self._msgs)):
            # Amortised O(1) removal from the front; an idle channel keeps no body.
            del self._msgs[:self._head]
            self._head = 0
        # A go-back pass that had not reached the new una starts at una.
        if ((self._nxt - nr) & _MASK) > ((self._ns - nr) & _MASK):
            self._nxt = nr
        self._una = nr
        # Progress: the backoff and the retry count start over (5.8).
        self._rto = self.retry_timeout
        self._retries = 0
        self._rtx_at = now + self._rto if self._una != self._ns else None

    def _timeout(self, now):
        """The oldest unacked message was not acknowledged in time."""
        self._retries += 1
        if self._retries > self.max_retries:
            sid, body, mtype = self._msgs[self._head]
            if mtype == avp.HELLO:
                self._cnt[_C_TX_HELLO_FAILS] += 1
            name = avp.MSG_NAMES.get(mtype, str(mtype))
            # Ref: RFC2661 section 5.8: the tunnel and all sessions MUST be cleared.
            self._finish(FAILED, ("failed", f"no acknowledgement for {name} Ns {self._una}"
                                            f" after {self.max_retries} retransmissions"))
            return
        # Ref: RFC2661 Appendix A: on retransmission SSTHRESH = CWND/2, CWND = 1.
        self._ssthresh = max(self._cwnd // 2, 1)
        self._cwnd = 1
        self._acc = 0
        self._nxt = self._una
        # Ref: RFC2661 section 5.8: exponential backoff, capped (cap >= 8 s).
        self._rto = min(self._rto * 2, self.max_retry_timeout)
        self._rtx_at = now + self._rto

    def _peer_closed(self, now):
        """A StopCCN was delivered: ack it now and linger (section 5.7). Nothing
        we still had to send matters any more."""
        self.state = CLOSING
        self._msgs = []
        self._head = 0
        self._una = self._nxt = self._ns
        self._rtx_at = None
        self._ack_at = now
        t = now + self.linger
        if self._linger_at is None or t > self._linger_at:
            self._linger_at = t

    def _finish(self, state, event):
        self.state = state
        self._events.append(event)
        self._msgs = []
        self._head = 0
        self._una = self._nxt = self._ns
        self._ooo = {}
        self._rtx_at = self._ack_at = self._linger_at = None
