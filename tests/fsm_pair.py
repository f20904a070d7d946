"""Test helpers for fsm.py: in-memory hosts that do the daemon's share of the work,
a two-host network over tests/lossy_link.py, and a hand-driven raw peer.

    net = Net(Host("lac"), Host("lns"))
    t = net.hosts["lac"].open(net.now, "lns")       # initiator tunnel, SCCRQ queued
    net.run(lambda: t.state == "established", 10000)

`Host` keeps what DESIGN.md gives the daemon: tunnels by local tunnel id, new
SCCRQs (tunnel id 0) by (peer address, port, peer's Assigned Tunnel ID) so that a
retransmitted SCCRQ reaches the tunnel it already made, tunnel id allocation, and
the tie breaker across tunnels (section 4.4.3). Every action a tunnel returns is
kept in `host.actions`; every datagram on the wire in `net.wire`.
"""
import avp
import fsm
from ctrlchan import ControlChannel
from lossy_link import LossyLink, Rng
from util import Deadline

PORT = 1701
WALL = 60  # s: the wall-time bound on one network's life (each run takes well under 1 s)


class Bytes:
    """rng(n) -> n octets from a seeded xorshift32: the same on every Python."""

    def __init__(self, seed=1):
        self.r = Rng(seed)

    def __call__(self, n):
        return bytes([self.r.next() & 0xFF for _ in range(n)])


class Script:
    """rng(n) that first returns the given byte strings in order (each must be
    asked for with its own length), then seeded bytes: lets a replay make our
    Challenge or a session id equal to what a captured peer expects."""

    def __init__(self, *chunks, seed=3):
        self.chunks = list(chunks)
        self.rest = Bytes(seed)

    def __call__(self, n):
        if self.chunks:
            c = self.chunks.pop(0)
            assert len(c) == n, (len(c), n)
            return c
        return self.rest(n)


class Host:
    """One L2TP endpoint ("address" = its name) holding many tunnels."""

    def __init__(self, name, seed=1, policy=None, **config):
        config.setdefault("host_name", name)
        self.name = name
        self.config = fsm.TunnelConfig(**config)
        self.rng = Bytes(seed)
        self.policy = policy
        self.tunnels = {}     # local tunnel id -> Tunnel
        self.peer_of = {}     # local tunnel id -> peer address
        self.by_peer = {}     # (peer address, port, peer tunnel id) -> local tunnel id
        self.actions = []     # every action, in order
        self.closed = {}      # tunnel id -> Tunnel, once "tunnel-closed"
        self.ignored = 0      # datagrams no tunnel took
        self.last_words = []  # (peer, datagram) of tunnels already closed

    def _new(self, peer, config=None):
        tid = fsm.new_id(self.rng, self.tunnels)
        t = fsm.Tunnel(tid, config or self.config, self.rng, policy=self.policy)
        self.tunnels[tid] = t
        self.peer_of[tid] = peer
        return t

    def take(self, actions):
        for a in actions:
            assert isinstance(a, tuple), a
            self.actions.append(a)
            if a[0] == "tunnel-closed":
                t = self.tunnels.pop(a[1])
                self.closed[a[1]] = t
                # Like the daemon's forget_tunnel: a last datagram (the best-effort
                # StopCCN of a failed channel) still goes out.
                for d in t.datagrams_to_send(0):
                    self.last_words.append((self.peer_of[a[1]], d))
                for key in list(self.by_peer):
                    if self.by_peer[key] == a[1]:
                        del self.by_peer[key]
        return actions

    def open(self, now, peer, config=None):
        """Initiator tunnel to `peer`: SCCRQ queued."""
        t = self._new(peer, config)
        self.take(t.open(now))
        return t

    def receive(self, src, datagram, now):
        try:
            h = avp.pull_header(datagram)
        except avp.ParseError:
            self.ignored += 1
            return
        if not h.control:
            t = self.tunnels.get(h.tunnel_id)
            if t is not None:
                t.note_rx(now)
            return
        if h.tunnel_id:
            t = self.tunnels.get(h.tunnel_id)
            if t is None:
                self.ignored += 1
                return
            self.take(t.receive(datagram, now, h))
            return
        info = fsm.peek_sccrq(datagram, self.config.secret)
        if info is None:
            self.ignored += 1   # tunnel id 0 and no SCCRQ: nobody to give it to
            return
        key = (src, PORT, info[0])
        tid = self.by_peer.get(key)
        if tid is None:
            # Ref: RFC2661 section 4.4.3: an SCCRQ of ours outstanding to this peer?
            for mine in sorted(self.tunnels):
                t = self.tunnels[mine]
                if self.peer_of[mine] != src or t.state != "wait-ctl-reply":
                    continue
                w = fsm.tie_breaker_winner(t.tiebreaker, info[1])
                if w == "ours":
                    self.ignored += 1   # the peer discards its tunnel
                    return
                if w is not None:
                    self.take(t.discard(now))
                    if w == "both":
                        self.ignored += 1
                        return
            t = self._new(src)
            tid = t.tunnel_id
            self.by_peer[key] = tid
        self.take(self.tunnels[tid].receive(datagram, now, h))

    def outgoing(self, now):
        out, self.last_words = self.last_words, []
        for tid in sorted(self.tunnels):
            for d in self.tunnels[tid].datagrams_to_send(now):
                out.append((self.peer_of[tid], d))
        return out

    def next_deadline(self):
        best = None
        for t in self.tunnels.values():
            x = t.next_deadline()
            if x is not None and (best is None or x < best):
                best = x
        return best

    def on_timer(self, now):
        for tid in sorted(self.tunnels):
            t = self.tunnels.get(tid)
            if t is not None:
                x = t.next_deadline()
                if x is not None and x <= now:
                    self.take(t.on_timer(now))

    def of(self, kind):
        """The actions of one kind, e.g. host.of("session-up")."""
        return [a for a in self.actions if a[0] == kind]


class Net:
    """Hosts joined by lossy links, driven by one virtual clock (ms)."""

    def __init__(self, *hosts, loss=0, dup=0, reorder=0, delay=10, seed=1):
        self.hosts = {}
        for h in hosts:
            self.hosts[h.name] = h
        self.links = {}
        n = seed
        for a in self.hosts:
            for b in self.hosts:
                if a != b:
                    n += 1
                    self.links[(a, b)] = LossyLink(seed=n, loss=loss, dup=dup, reorder=reorder,
                                                   delay=delay)
        self.now = 0
        self.wire = []   # (src, dst, datagram) as sent
        self.drop = None  # drop(src, dst, datagram) -> True to lose it on purpose
        # Runs are bounded in virtual time; this bounds them in wall time too, so a
        # regression spinning at one virtual instant fails instead of hanging CI.
        self.deadline = Deadline(WALL, "fsm_pair.Net")

    def flush(self):
        for name in sorted(self.hosts):
            for dst, d in self.hosts[name].outgoing(self.now):
                self.wire.append((name, dst, d))
                if self.drop is not None and self.drop(name, dst, d):
                    continue
                self.links[(name, dst)].send(d, self.now)

    def next_time(self):
        t = None
        cands = [h.next_deadline() for h in self.hosts.values()]
        cands += [link.next_arrival() for link in self.links.values()]
        for x in cands:
            if x is not None and (t is None or x < t):
                t = x
        return t

    def step(self):
        """Advance to the next event; False when nothing is left to happen."""
        if self.deadline.expired():
            self.deadline.fail(f"virtual time {self.now} ms, {len(self.wire)} datagrams sent")
        self.flush()
        t = self.next_time()
        if t is None:
            return False
        self.now = max(self.now, t)
        for (a, b) in sorted(self.links):
            for d in self.links[(a, b)].deliver(self.now):
                self.hosts[b].receive(a, d, self.now)
        for name in sorted(self.hosts):
            self.hosts[name].on_timer(self.now)
        self.flush()
        return True

    def run(self, done, limit):
        """Step until done() or nothing is left; virtual time must stay below limit."""
        while not done():
            assert self.now < limit, f"still running at {self.now} ms"
            if not self.step():
                break

    def settle(self, ms):
        """Run everything due in the next `ms` ms, then stop the clock there."""
        end = self.now + ms
        self.flush()
        while True:
            t = self.next_time()
            if t is None or t > end:
                break
            self.step()
        self.now = end

    def messages(self, src=None, mtype=None, secret=None):
        """(header, Message) for every non-ZLB control message on the wire."""
        out = []
        for s, _, d in self.wire:
            if src is not None and s != src:
                continue
            h = avp.pull_header(d)
            body = d[h.payload_offset:h.length]
            if not body:
                continue
            m = avp.decode_message(body, secret)
            if mtype is None or m.type == mtype:
                out.append((h, m))
        return out


class RawPeer:
    """A peer driven by hand: crafted message bodies through a real ControlChannel,
    wired straight to one fsm.Tunnel (no loss). `got` holds (header, Message) for
    everything the tunnel sent, `actions` what the tunnel returned."""

    def __init__(self, tunnel, tunnel_id=77, secret=None, seed=9):
        self.t = tunnel
        self.tunnel_id = tunnel_id
        self.secret = secret
        self.rng = Bytes(seed)
        self.ch = ControlChannel(ack_delay=0)
        self.got = []
        self.actions = []
        self.now = 0

    def send(self, mtype, avps=(), sid=0, hide=False, body=None):
        if body is None:
            body = avp.encode_message(mtype, avps, self.secret, hide, self.rng, hide)
        self.ch.send(body, self.now, sid)
        return self.pump()

    def pump(self):
        """Move datagrams both ways until quiet; return the tunnel's new actions."""
        new = []
        for _ in range(20):
            moved = False
            for d in self.ch.datagrams_to_send(self.now):
                new += self.t.receive(d, self.now)
                moved = True
            for d in self.t.datagrams_to_send(self.now):
                moved = True
                h = avp.pull_header(d)
                for _sid, body in self.ch.receive(d, self.now, h):
                    m = avp.decode_message(body, self.secret)
                    self.got.append((h, m))
                    if m.type in (avp.SCCRQ, avp.SCCRP):
                        self.ch.peer_tunnel_id = m.get(avp.ASSIGNED_TUNNEL_ID)
            if not moved:
                break
        self.actions += new
        return new

    def last(self, mtype=None):
        for h, m in reversed(self.got):
            if mtype is None or m.type == mtype:
                return h, m
        return None, None

    def sccrq(self, extra=(), hide=False):
        """Open towards a responder tunnel: our SCCRQ."""
        return self.send(avp.SCCRQ, tunnel_avps(self.tunnel_id) + list(extra), hide=hide)


def tunnel_avps(tid, name="raw"):
    """The MUST AVPs of SCCRQ/SCCRP (section 6.1, 6.2) plus a window."""
    return [(avp.PROTOCOL_VERSION, (1, 0)), (avp.HOST_NAME, name),
            (avp.FRAMING_CAPABILITIES, 3), (avp.ASSIGNED_TUNNEL_ID, tid),
            (avp.BEARER_CAPABILITIES, 3), (avp.RECEIVE_WINDOW_SIZE, 4)]


class Policy:
    """A recording policy: refuse tunnels from host names in `deny`, and calls
    while `busy` is set (the daemon's system-wide limit)."""

    def __init__(self, deny=(), busy=False):
        self.deny = deny
        self.busy = busy
        self.asked = []

    def accept_tunnel(self, tunnel, msg):
        name = msg.get(avp.HOST_NAME)
        self.asked.append(("tunnel", name))
        if name in self.deny:
            return (4, 0, f"no peer profile matches {name}")
        return None

    def accept_session(self, tunnel, session_type, msg):
        self.asked.append(("session", session_type))
        return (4, 4, "system session limit") if self.busy else None
