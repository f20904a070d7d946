"""kernel: the data paths behind one small interface.

l2tpd never branches on which data path it has; it calls these methods:

    dp.name                              "null", "userspace" or "kernel"
    dp.reason                            one line: why this path was chosen (system show)
    dp.tunnel_up(tid, ptid, fd, local, peer, sport, dport)
    dp.session_up(tid, sid, psid, info)  info: the fsm's session-up dict (+ ppp params)
    dp.session_down(tid, sid)
    dp.tunnel_down(tid)
    dp.data_received(tid, header, datagram, now)  a data message (T=0) for this tunnel
    dp.stats(tid, sid) -> dict           data_rx/tx packets, bytes, errors, oos counters
    dp.next_deadline() -> ms or None; dp.on_timer(now)
    dp.close()

`select(name, log, host)` picks one: "auto" takes the best that this machine supports.

The userspace path (UserspaceDataPath) in one paragraph: every session gets a TUN
device (IFF_TUN | IFF_NO_PI, created with TUNSETIFF on /dev/net/tun, non-blocking, read
through host.watch) and a PPP engine from ppp.py. IP packets the TUN yields go to the
engine; the PPP frames the engine emits become L2TP data messages (RFC 2661 3.1: T=0,
L bit set as xl2tpd does, Ns when sequencing is on, FF 03 kept) sent with
host.send_data. Data messages the daemon hands us lose their header and offset pad,
pass the sequencing rules below, and go to the engine; the IP packets it yields are
written to the TUN. When IPCP opens, the TUN gets its addresses, MTU and link state
through pyroute2.minimal's IPRoute and the daemon hears "ppp-up"; when PPP ends it
hears "ppp-down" and clears the session (CDN), which calls session_down here.

Data sequencing (RFC 2661 5.4), as implemented:
- Sending: Ns is on for the whole session when Sequencing Required was exchanged
  (`sequencing_required`). Otherwise the LNS ("server") decides: it sends Ns when its
  profile says `use_sequence_numbers`. The LAC ("client") starts with its own
  `use_sequence_numbers` and then follows the LNS: a data message with S turns Ns on, one
  without S turns it off (5.4: "MUST begin"/"MUST stop"). Turning it back on resumes
  the numbering where it stopped (5.4). Nr in data messages is sent 0 and ignored (3.1).
- Receiving: whenever a data message carries Ns it is checked against the next
  expected number, which starts at 0 (3.1: Ns begins at zero) and continues across
  periods without sequencing (16-bit serial arithmetic: up to 32767 ahead is "ahead",
  the rest is "behind"). In order: delivered. Behind (duplicate or too late): discarded, counted in
  data_rx_oos_discards; after RESYNC_AFTER such discards in a row the peer is taken to
  have restarted its numbering and we follow it. Ahead (a gap): counted in
  data_rx_oos_packets and, when reorder_timeout > 0, held in a per-session buffer of at
  most REORDER_MAX packets until the gap fills or the packet has waited reorder_timeout
  ms; then the gap is given up (data_rx_lost_packets counts the skipped numbers) and
  everything held up to that packet goes out in order. A full buffer gives up its lowest
  gap at once. Data is never retransmitted (5.4), so with reorder_timeout = 0 a gap can
  never fill: the packet is delivered at once and the gap skipped, while later
  arrivals from behind are discarded, so delivery stays in order (no reordering
  introduced, none repaired). When Sequencing Required is in force, a data message
  without Ns breaks 5.4's MUST and is discarded (data_rx_errors).
- Counters: data_rx_packets/bytes count every well-formed data message for the session
  (bytes = the PPP frame, header and offset pad excluded), before sequencing decides;
  data_tx_* count what we sent; data_rx_errors counts malformed or undeliverable data
  messages (empty payload, missing required Ns, no PPP, TUN write failure).

Deliberately missing: the kernel data path (select("kernel") says so), turning
sequencing off by itself once IPCP is up (5.4 "MAY"), IPv6 (IPV6CP) over the TUN.
Errors never stop the daemon: a failure around one session ends that session
("ppp-down" with the reason) and is logged.
"""

import heapq
import os
import struct

import avp

_SESSION_COUNTERS = ("data_rx_packets", "data_rx_bytes", "data_rx_errors",
                     "data_rx_oos_packets", "data_rx_oos_discards",
                     "data_tx_packets", "data_tx_bytes", "data_tx_errors")
# Userspace only: sequence numbers given up when a gap was skipped (lost or too late).
_USERSPACE_COUNTERS = _SESSION_COUNTERS + ("data_rx_lost_packets",)

# <linux/if_tun.h>
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFNAMSIZ = 16               # including the NUL: names are at most 15 characters

REORDER_MAX = 16            # packets held per session while a gap is open
RESYNC_AFTER = 8            # "behind" packets in a row before we follow the peer's Ns
TUN_READ_BURST = 64         # packets read from one TUN per wake-up (fairness)
_SEQ_HALF = 0x8000


class DataPathError(Exception):
    """A data path could not be set up; the message says why."""


class NullDataPath:
    """Control protocol only: sessions come up, no data moves. Data messages that
    arrive are counted per session and dropped (system counter unexpected_data_frames
    is kept by the daemon)."""

    name = "null"

    def __init__(self, log=None, reason="asked for"):
        self.log = log
        self.reason = reason
        self.sessions = {}

    def tunnel_up(self, tid, ptid, fd, local, peer, sport, dport):
        pass

    def session_up(self, tid, sid, psid, info):
        # Counters appear with the first data packet: a control-only daemon holding
        # 65,535 sessions pays nothing for them (bench F4).
        self.sessions[(tid, sid)] = None

    def session_down(self, tid, sid):
        self.sessions.pop((tid, sid), None)

    def tunnel_down(self, tid):
        for key in [k for k in self.sessions if k[0] == tid]:
            del self.sessions[key]

    def data_received(self, tid, header, datagram, now):
        key = (tid, header.session_id)
        if key not in self.sessions:
            return False
        st = self.sessions[key]
        if st is None:
            st = self.sessions[key] = dict.fromkeys(_SESSION_COUNTERS, 0)
        st["data_rx_packets"] += 1
        st["data_rx_bytes"] += header.length - header.payload_offset
        return True

    def stats(self, tid, sid):
        return dict(self.sessions.get((tid, sid)) or dict.fromkeys(_SESSION_COUNTERS, 0))

    def next_deadline(self):
        return None

    def on_timer(self, now):
        pass

    def close(self):
        self.sessions.clear()


# ------------------------------------------------------------------ helpers
def seq_offset(ns, expected):
    """How far 16-bit `ns` is ahead of `expected`: 0 in order, 1..32767 ahead, else behind."""
    return (ns - expected) & 0xFFFF


def seq_is_behind(ns, expected):
    """True when `ns` is before `expected` in 16-bit serial order (a duplicate or late)."""
    return seq_offset(ns, expected) >= _SEQ_HALF


def tun_name(tid, sid, interface_name=None):
    """The TUN device name of session (tid, sid): interface_name, else "l2tp<tid>-<sid>".

    Decimal ids always fit for L2TPv2's 16-bit ids ("l2tp65535-65535" is 15 characters);
    wider ids fall back to hex and then to the last 15 characters."""
    if interface_name:
        if len(interface_name.encode()) >= IFNAMSIZ or "/" in interface_name:
            raise DataPathError(f"interface_name {interface_name!r} is not a valid device name "
                                f"(at most {IFNAMSIZ - 1} characters, no '/')")
        return interface_name
    name = f"l2tp{tid}-{sid}"
    if len(name) >= IFNAMSIZ:
        name = f"l2tp{tid:x}-{sid:x}"
    if len(name) >= IFNAMSIZ:
        name = "l" + name[-(IFNAMSIZ - 2):]
    return name


def _errtext(e):
    """A readable reason for an OSError or a pyroute2 NetlinkError (which has .code)."""
    code = getattr(e, "code", None)
    if isinstance(code, int) and code > 0 and not isinstance(e, OSError):
        return f"{os.strerror(code)} (netlink error {code})"
    if isinstance(e, OSError) and e.errno:
        return os.strerror(e.errno)
    return f"{type(e).__name__}: {e}"


def _is_lcp_echo(frame):
    """LCP Echo-Request/Reply (code 9/10): sent with the P bit (RFC 2661 3.1)."""
    if frame[:2] == b"\xff\x03":
        frame = frame[2:]
    return len(frame) >= 3 and frame[0] == 0xC0 and frame[1] == 0x21 and frame[2] in (9, 10)


def _monotonic_ms():
    import time
    return int(time.monotonic() * 1000)


# ------------------------------------------------------------------ Linux: TUN + rtnetlink
class Rtnl:
    """Addresses, MTU and link state through pyroute2.minimal's IPRoute (rtnetlink),
    opened on first use and kept for the life of the data path."""

    def __init__(self):
        self.ipr = None

    def _open(self):
        if self.ipr is None:
            from pyroute2.minimal import IPRoute  # lazily: l2tpctl and tests never pay
            self.ipr = IPRoute()
        return self.ipr

    def configure(self, ifname, local_ip, peer_ip, mtu, old=None):
        """Point-to-point address local_ip peer peer_ip/32, MTU, link up.
        `old` = (local_ip, peer_ip) configured before (IPCP renegotiated): removed first."""
        import socket
        ipr = self._open()
        idx = socket.if_nametoindex(ifname)
        if old and old[0]:
            try:
                ipr.addr("del", index=idx, address=old[1] or old[0], local=old[0],
                         prefixlen=32)
            except Exception:  # already gone: nothing to undo
                pass
        if mtu:
            ipr.link("set", index=idx, mtu=int(mtu))
        if local_ip:
            # IFA_LOCAL = our address, IFA_ADDRESS = the peer's on a point-to-point link.
            ipr.addr("add", index=idx, address=peer_ip or local_ip, local=local_ip,
                     prefixlen=32)
        ipr.link("set", index=idx, state="up")

    def close(self):
        if self.ipr is not None:
            try:
                self.ipr.close()
            finally:
                self.ipr = None


class LinuxTun:
    """One non-persistent TUN device: it disappears when its fd is closed."""

    def __init__(self, name, rtnl):
        import fcntl
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        try:
            ifr = struct.pack("16sH22x", name.encode(), IFF_TUN | IFF_NO_PI)
            res = fcntl.ioctl(fd, TUNSETIFF, ifr)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        self.name = res[:IFNAMSIZ].split(b"\0", 1)[0].decode()
        self.rtnl = rtnl
        self.addrs = None
        # Only IPv4 crosses this link (IPCP); keep the kernel from sending IPv6 noise.
        try:
            with open(f"/proc/sys/net/ipv6/conf/{self.name}/disable_ipv6", "w") as f:
                f.write("1")
        except OSError:
            pass

    def fileno(self):
        return self.fd

    def read(self):
        """One IP packet, or None when nothing is waiting."""
        try:
            return os.read(self.fd, 65536)
        except BlockingIOError:
            return None

    def write(self, packet):
        os.write(self.fd, packet)

    def configure(self, local_ip, peer_ip, mtu):
        self.rtnl.configure(self.name, local_ip, peer_ip, mtu, self.addrs)
        self.addrs = (local_ip, peer_ip)

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


# ------------------------------------------------------------------ userspace data path
class _Session:
    """One session of the userspace data path (state only; the logic is in the path)."""

    def __init__(self, tid, sid, psid, ptid, role, info):
        self.key = (tid, sid)
        self.tid = tid
        self.sid = sid
        self.psid = psid
        self.ptid = ptid
        self.role = role
        self.info = info
        self.counters = dict.fromkeys(_USERSPACE_COUNTERS, 0)
        self.ifname = None
        self.tun = None
        self.eng = None
        self.dp = None
        self.fail = None             # a reason waiting to be reported as ppp-down
        self.down = False            # ppp-down reported: no more ppp-up for this session
        self.up_info = None          # the engine's "up" info once IPCP is open
        self.pool = None             # (pool name, address) held from an IP pool
        self.armed = {}              # timer kind -> armed deadline (lazy heap cancel)
        # Sequencing, RFC 2661 5.4
        self.seq_required = bool(info.get("sequencing_required"))
        self.send_seq = self.seq_required or bool(info.get("use_sequence_numbers"))
        self.ns_out = 0              # our next Ns
        self.rx_next = 0             # next expected Ns from the peer (3.1: Ns starts at 0)
        self.behind_run = 0          # consecutive "behind" packets (resync)
        self.held = {}               # ns -> (frame, deadline): waiting for a gap to fill
        self.reorder_timeout = int(info.get("reorder_timeout") or 0)

    def on_readable(self, now):
        self.dp.tun_readable(self, now)

    def on_writable(self, now):
        pass


class UserspaceDataPath:
    """TUN device + L2TP data framing + the PPP engine per session, in this process.

    tun_factory(name) -> object with fileno(), read(), write(pkt),
    configure(local_ip, peer_ip, mtu), close() and .name; default: a real TUN.
    engine_factory(role, config_kwargs, rng, log) -> a ppp.PPPEngine-like object;
    default: host.new_ppp_engine (the daemon builds ppp.PPPEngine(role,
    ppp.PPPConfig(**config_kwargs), rng, log)).
    clock() -> ms: used only where the interface passes no `now` (session_up);
    default host.clock, else the monotonic clock. rng(n): default host.rng, else os.urandom.
    """

    name = "userspace"

    def __init__(self, log, host, tun_factory=None, engine_factory=None, clock=None,
                 rng=None, reason="asked for"):
        self.log = log
        self.host = host
        self.reason = reason
        self.rtnl = None
        self.tun_factory = tun_factory or self._real_tun
        # The PPP engine comes from the daemon (host.new_ppp_engine), so that this
        # module imports no protocol module but avp (DESIGN.md's arrows).
        self.engine_factory = engine_factory or getattr(host, "new_ppp_engine", None)
        self.clock = clock or getattr(host, "clock", None) or _monotonic_ms
        self.rng = rng or getattr(host, "rng", None) or os.urandom
        self.tunnels = {}            # tid -> peer tunnel id
        self.sessions = {}           # (tid, sid) -> _Session
        self.by_tunnel = {}          # tid -> set of sids
        self.by_ip = {}              # peer's IPv4 address -> (tid, sid)
        self.heap = []               # (deadline, seq, session, kind), lazily cancelled
        self.seq = 0

    # ------------------------------------------------------------- plumbing
    def _log(self, msg, s=None):
        if self.log is not None:
            self.log(f"session {s.tid}/{s.sid}: {msg}" if s is not None else msg)

    def _real_tun(self, name):
        if self.rtnl is None:
            self.rtnl = Rtnl()
        return LinuxTun(name, self.rtnl)

    def _alive(self, s):
        return self.sessions.get(s.key) is s

    def _notify(self, s, kind, info):
        """Tell the daemon; it may call session_down() from inside this call."""
        if kind == "ppp-down":
            if s.down:
                return
            s.down = True
        try:
            self.host.session_event(s.tid, s.sid, kind, info)
        except Exception as e:  # the daemon's problem, but never ours to die of
            self._log(f"session_event {kind} failed: {_errtext(e)}", s)

    def _end(self, s, reason):
        """End the session from inside the data path (its PPP or TUN failed)."""
        self._log(f"ending: {reason}", s)
        self._notify(s, "ppp-down", {"reason": reason})

    # ------------------------------------------------------------- timers
    def _arm(self, s, kind, deadline):
        """Arm (or move) the session's `kind` timer; stale heap entries are skipped later."""
        if s.armed.get(kind) == deadline:
            return
        s.armed[kind] = deadline
        if deadline is None:
            return
        self.seq += 1
        heapq.heappush(self.heap, (deadline, self.seq, s, kind))
        if len(self.heap) > 64 + 4 * len(self.sessions):
            # Compact: drop entries that were re-armed or whose session is gone.
            self.heap = [e for e in self.heap if self._live(e)]
            heapq.heapify(self.heap)

    def _live(self, entry):
        deadline, _, s, kind = entry
        return self._alive(s) and s.armed.get(kind) == deadline

    def next_deadline(self):
        heap = self.heap
        while heap and not self._live(heap[0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def on_timer(self, now):
        due = []
        heap = self.heap
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if self._live(entry):
                entry[2].armed[entry[3]] = None
                due.append(entry)
        for _, _, s, kind in due:
            if not self._alive(s):
                continue
            try:
                if kind == "ppp":
                    s.eng.on_timer(now)
                    self._pump(s, now)
                elif kind == "reorder":
                    out = []
                    self._reorder_expire(s, now, out)
                    self._deliver(s, out, now)
                elif kind == "kick":
                    if s.fail:
                        self._end(s, s.fail)
                    else:
                        self._pump(s, now)
            except Exception as e:
                self._end(s, f"internal error ({kind} timer): {_errtext(e)}")

    # ------------------------------------------------------------- interface
    def tunnel_up(self, tid, ptid, fd, local, peer, sport, dport):
        self.tunnels[tid] = ptid

    def tunnel_down(self, tid):
        for sid in sorted(self.by_tunnel.get(tid, ())):
            self.session_down(tid, sid)
        self.by_tunnel.pop(tid, None)
        self.tunnels.pop(tid, None)

    def session_up(self, tid, sid, psid, info):
        """Start the session's TUN and PPP engine. Never raises: a failure is reported
        as "ppp-down" from the next on_timer (not from inside this call)."""
        info = dict(info or {})
        now = self.clock()
        if (tid, sid) in self.sessions:
            self.session_down(tid, sid)
        ptid = info.get("peer_tunnel_id") or self.tunnels.get(tid, 0)
        if psid is None:
            psid = info.get("peer_session_id") or 0
        role = info.get("role") or "server"
        s = _Session(tid, sid, psid, ptid, role, info)
        s.dp = self
        self.sessions[s.key] = s
        self.by_tunnel.setdefault(tid, set()).add(sid)
        if info.get("no_ppp"):
            self._log("no_ppp: data is counted and dropped", s)
            return
        try:
            s.ifname = tun_name(tid, sid, info.get("interface_name"))
            s.tun = self.tun_factory(s.ifname)
            s.ifname = s.tun.name
            self.host.watch(s.tun.fileno(), s, 1)
        except Exception as e:
            what = f"TUN device {s.ifname}" if s.ifname else "TUN device"
            s.fail = f"cannot create {what}: {_errtext(e) if isinstance(e, OSError) else e}"
            self._log(s.fail, s)
            self._close_tun(s)
            self._arm(s, "kick", now)
            return
        try:
            if self.engine_factory is None:
                raise RuntimeError("no PPP engine: the host offers no new_ppp_engine")
            s.eng = self.engine_factory(role, self._engine_config(s), self.rng, self._englog(s))
            # Proxy LCP and authentication from the LAC (RFC 2661 4.4.5), when the
            # daemon allows it (allow_ppp_proxy): ppp.PPPEngine.open documents the dict.
            proxy = info.get("ppp_proxy")
            if proxy:
                s.eng.open(now, proxy=proxy)
            else:
                s.eng.open(now)
            for frame in s.eng.frames_to_send(now):
                self._send_frame(s, frame)
            # Events wait for the kick: the daemon is inside its session-up handling now.
            self._arm(s, "kick", now)
            self._arm(s, "ppp", s.eng.next_deadline())
        except Exception as e:
            s.fail = f"cannot start PPP: {_errtext(e)}"
            self._log(s.fail, s)
            self._arm(s, "kick", now)

    def session_down(self, tid, sid):
        s = self.sessions.pop((tid, sid), None)
        if s is None:
            return
        sids = self.by_tunnel.get(tid)
        if sids is not None:
            sids.discard(sid)
        if s.up_info and self.by_ip.get(s.up_info.get("peer_ip")) == s.key:
            del self.by_ip[s.up_info["peer_ip"]]
        s.held.clear()
        s.armed.clear()
        self._close_tun(s)
        if s.pool is not None:
            pool, addr = s.pool
            s.pool = None
            try:
                self.host.ippool_free(pool, addr)
            except Exception as e:
                self._log(f"ippool_free {pool} {addr}: {_errtext(e)}", s)

    def _close_tun(self, s):
        tun, s.tun = s.tun, None
        if tun is None:
            return
        try:
            fd = tun.fileno()
            if fd is not None and fd >= 0:
                self.host.watch(fd, s, 0)
        except Exception as e:
            self._log(f"unwatch TUN: {_errtext(e)}", s)
        try:
            tun.close()  # a non-persistent TUN device is removed with its last fd
        except Exception as e:
            self._log(f"closing TUN {s.ifname}: {_errtext(e)}", s)

    def lookup_ip(self, addr):
        """(tid, sid) of the session whose peer was given IPv4 address `addr`, or None."""
        return self.by_ip.get(addr)

    def stats(self, tid, sid):
        s = self.sessions.get((tid, sid))
        if s is None:
            return dict.fromkeys(_USERSPACE_COUNTERS, 0)
        st = dict(s.counters)
        st["interface_name"] = s.ifname
        st["data_sequencing"] = s.send_seq
        st["reorder_held"] = len(s.held)
        if s.eng is not None:
            st["ppp_state"] = getattr(s.eng, "state", None)
        if s.up_info:
            st["ppp_local_ip"] = s.up_info.get("local_ip")
            st["ppp_peer_ip"] = s.up_info.get("peer_ip")
            st["ppp_user"] = s.up_info.get("user")
        return st

    def close(self):
        for key in list(self.sessions):
            self.session_down(*key)
        self.tunnels.clear()
        self.by_tunnel.clear()
        self.heap = []
        if self.rtnl is not None:
            try:
                self.rtnl.close()
            except Exception as e:
                self._log(f"closing rtnetlink: {_errtext(e)}")
            self.rtnl = None

    # ------------------------------------------------------------- PPP engine glue
    def _englog(self, s):
        if self.log is None:
            return None
        return lambda msg: self._log(f"ppp: {msg}", s)

    def _engine_config(self, s):
        """PPPConfig keyword arguments: the PPP profile, session overrides, glue callables."""
        info = s.info
        kw = dict(info.get("ppp") or {})
        secrets_file = kw.pop("secrets_file", None)
        pool_name = kw.get("ip_pool_name")  # the engine names it in its reasons
        for k in ("user_name", "user_password"):
            if info.get(k):
                kw[k] = info[k]
        if "mtu" not in kw and info.get("mtu"):
            kw["mtu"] = info["mtu"]
        host = self.host

        def secret_for(user):
            return host.secret_for(secrets_file, user)

        def alloc_ip(user):
            if not pool_name:
                return None
            if s.pool is not None:  # renegotiation: keep the address we hold
                return s.pool[1]
            addr = host.ippool_alloc(pool_name, f"{s.tid}/{s.sid}")
            if addr:
                s.pool = (pool_name, addr)
            return addr

        kw["secret_for"] = secret_for
        kw["alloc_ip"] = alloc_ip
        return kw

    def _pump(self, s, now):
        """Send what the engine has queued, act on its events, re-arm its timer."""
        eng = s.eng
        if eng is None:
            return
        for frame in eng.frames_to_send(now):
            self._send_frame(s, frame)
        for ev in eng.pop_events():
            if not self._alive(s):
                return
            self._engine_event(s, ev, now)
        if self._alive(s) and s.eng is eng:
            self._arm(s, "ppp", eng.next_deadline())

    def _engine_event(self, s, ev, now):
        kind = ev[0]
        if kind == "ip":
            if s.tun is None:
                s.counters["data_rx_errors"] += 1
                return
            try:
                s.tun.write(ev[1])
            except OSError as e:
                s.counters["data_rx_errors"] += 1
                self._log(f"TUN write: {_errtext(e)}", s)
        elif kind == "up":
            self._ppp_up(s, dict(ev[1] or {}))
        elif kind == "down":
            self._log(f"PPP down: {ev[1]}", s)
            self._notify(s, "ppp-down", {"reason": ev[1]})
        elif kind == "auth":
            self._log(f"PPP authentication of {ev[1]!r}: {'ok' if ev[2] else 'failed'}", s)
            self._notify(s, "ppp-auth", {"user": ev[1], "ok": bool(ev[2])})
        else:
            self._log(f"PPP event {ev!r} ignored", s)

    def _ppp_up(self, s, info):
        if s.down:
            return
        local_ip, peer_ip = info.get("local_ip"), info.get("peer_ip")
        mtu = info.get("mtu") or (s.info.get("ppp") or {}).get("mtu") or s.info.get("mtu")
        if s.tun is not None:
            try:
                s.tun.configure(local_ip, peer_ip, mtu)
            except Exception as e:
                self._end(s, f"cannot configure {s.ifname}: {_errtext(e)}")
                return
        if s.up_info and self.by_ip.get(s.up_info.get("peer_ip")) == s.key:
            del self.by_ip[s.up_info["peer_ip"]]
        s.up_info = info
        if peer_ip:
            self.by_ip[peer_ip] = s.key
        self._log(f"PPP up on {s.ifname}: {local_ip} peer {peer_ip} mtu {mtu}", s)
        self._notify(s, "ppp-up", {"local_ip": local_ip, "peer_ip": peer_ip,
                                   "dns": list(info.get("dns") or ()), "user": info.get("user"),
                                   "ifname": s.ifname, "mtu": mtu})

    # ------------------------------------------------------------- transmit
    def _send_frame(self, s, frame):
        """One PPP frame to the peer as an L2TP data message (RFC 2661 3.1)."""
        ns = None
        if s.send_seq:
            ns = s.ns_out
            s.ns_out = (ns + 1) & 0xFFFF
        dgram = avp.push_data(s.ptid, s.psid, frame, ns=ns, nr=0, length_bit=True,
                              priority=_is_lcp_echo(frame))
        try:
            ok = self.host.send_data(s.tid, dgram)
        except OSError as e:
            ok = False
            self._log(f"send: {_errtext(e)}", s)
        if ok is False:
            s.counters["data_tx_errors"] += 1
            return
        s.counters["data_tx_packets"] += 1
        s.counters["data_tx_bytes"] += len(frame)

    def tun_readable(self, s, now):
        """IP packets from the session's TUN device go to its PPP engine."""
        if not self._alive(s) or s.tun is None:
            return
        try:
            for _ in range(TUN_READ_BURST):
                try:
                    pkt = s.tun.read()
                except OSError as e:
                    self._log(f"TUN read: {_errtext(e)}", s)
                    break
                if not pkt:
                    break
                if s.eng is not None and pkt[0] >> 4 == 4:
                    s.eng.send_ip(pkt)
            self._pump(s, now)
        except Exception as e:
            self._end(s, f"internal error (TUN read): {_errtext(e)}")

    # ------------------------------------------------------------- receive
    def data_received(self, tid, header, datagram, now):
        """A data message (T=0) of tunnel `tid`. False: no such session (the daemon counts)."""
        s = self.sessions.get((tid, header.session_id))
        if s is None:
            return False
        c = s.counters
        frame = bytes(datagram[header.payload_offset:header.length])  # pull_header checked
        if not frame:
            c["data_rx_errors"] += 1
            return True
        c["data_rx_packets"] += 1
        c["data_rx_bytes"] += len(frame)
        out = []
        try:
            self._sequence(s, header.ns, frame, now, out)
            self._deliver(s, out, now)
        except Exception as e:
            c["data_rx_errors"] += 1
            self._end(s, f"internal error (data receive): {_errtext(e)}")
        return True

    def _sequence(self, s, ns, frame, now, out):
        """RFC 2661 5.4 on one received frame; frames ready for PPP are appended to out."""
        c = s.counters
        if ns is None:
            if s.seq_required:
                # 5.4: with Sequencing Required, Ns MUST be present at all times.
                c["data_rx_errors"] += 1
                return
            if s.role == "client":
                s.send_seq = False          # 5.4: the LAC MUST stop sending Ns
            self._release_all(s, out)
            out.append(frame)
            return
        if s.role == "client":
            s.send_seq = True               # 5.4: the LAC MUST begin sending Ns
        off = seq_offset(ns, s.rx_next)
        if off == 0:
            s.behind_run = 0
            out.append(frame)
            s.rx_next = (ns + 1) & 0xFFFF
            self._drain(s, out)
        elif off >= _SEQ_HALF:
            s.behind_run += 1
            if s.behind_run < RESYNC_AFTER:
                c["data_rx_oos_discards"] += 1
                return
            # The peer restarted its numbering: follow it (held packets are older).
            self._log(f"data Ns resynchronised to {ns} (expected {s.rx_next})", s)
            s.behind_run = 0
            c["data_rx_oos_packets"] += 1
            s.held.clear()
            self._arm(s, "reorder", None)
            out.append(frame)
            s.rx_next = (ns + 1) & 0xFFFF
        elif ns in s.held:
            c["data_rx_oos_discards"] += 1  # a duplicate of a packet we hold
        else:
            s.behind_run = 0
            c["data_rx_oos_packets"] += 1
            if s.reorder_timeout <= 0:
                c["data_rx_lost_packets"] += off
                out.append(frame)
                s.rx_next = (ns + 1) & 0xFFFF
                return
            s.held[ns] = (frame, now + s.reorder_timeout)
            if len(s.held) > REORDER_MAX:
                self._release_upto(s, self._lowest_held(s), out)
            self._arm_reorder(s)

    def _drain(self, s, out):
        while s.held and s.rx_next in s.held:
            out.append(s.held.pop(s.rx_next)[0])
            s.rx_next = (s.rx_next + 1) & 0xFFFF
        self._arm_reorder(s)

    def _lowest_held(self, s):
        base = s.rx_next
        return min(s.held, key=lambda n: seq_offset(n, base))

    def _release_upto(self, s, ns, out):
        """Give up the gaps before held `ns`: every held packet up to it goes out in order."""
        while s.held and not seq_is_behind(ns, s.rx_next):
            n = self._lowest_held(s)
            s.counters["data_rx_lost_packets"] += seq_offset(n, s.rx_next)
            out.append(s.held.pop(n)[0])
            s.rx_next = (n + 1) & 0xFFFF
            if n == ns:
                break
        self._drain(s, out)

    def _release_all(self, s, out):
        while s.held:
            self._release_upto(s, self._lowest_held(s), out)

    def _reorder_expire(self, s, now, out):
        """reorder_timeout passed for some held packet: give up the gaps up to the highest
        such Ns (held packets below it go out with it, to keep the order)."""
        expired = [n for n, (_, dl) in s.held.items() if dl <= now]
        if expired:
            base = s.rx_next
            self._release_upto(s, max(expired, key=lambda n: seq_offset(n, base)), out)
        self._arm_reorder(s)

    def _arm_reorder(self, s):
        self._arm(s, "reorder", min(dl for _, dl in s.held.values()) if s.held else None)

    def _deliver(self, s, frames, now):
        """In-order PPP frames to the session's engine."""
        if not frames:
            return
        if s.eng is None:
            s.counters["data_rx_errors"] += len(frames)  # no_ppp, or PPP failed to start
            return
        for frame in frames:
            s.eng.receive(frame, now)
        self._pump(s, now)



# ------------------------------------------------------------------ what this machine has
def kernel_l2tp_status():
    """(True, why) when the kernel offers the L2TP generic netlink family, else (False, why)."""
    try:
        from pyroute2.minimal import L2tp
    except ImportError as e:
        L2tp = None
        why = f"pyroute2 is missing ({e})"
    if L2tp is not None:
        try:
            L2tp().close()
            return True, "generic netlink family 'l2tp' present"
        except Exception as e:
            why = f"generic netlink family 'l2tp' unavailable: {_errtext(e)}"
    for path in ("/proc/net/pppol2tp", "/sys/module/l2tp_netlink"):
        if os.path.exists(path):
            return True, f"{path} exists"
    return False, why


def pppd_path():
    """pppd's path, or None (the kernel data path hands the PPPoL2TP socket to pppd)."""
    import shutil
    return shutil.which("pppd") or next(
        (p for p in ("/usr/sbin/pppd", "/sbin/pppd") if os.access(p, os.X_OK)), None)


def _pyroute2_hint():
    """How to get pyroute2-minimal for this copy: a source checkout has its venv;
    an installed one (make install) its private site directory."""
    here = os.path.dirname(os.path.abspath(__file__))
    if os.path.isdir(os.path.join(here, ".venv")):
        return ("run l2tpd with the checkout's venv: make venv, then "
                f"{os.path.join(here, '.venv', 'bin', 'python')} l2tpd.py")
    site = os.path.join(here, "site")
    return (f"pip install --target {site} pyroute2-minimal (where make install puts it), "
            "or install it for the python3 that runs l2tpd")


def tun_status():
    """(True, why) when this process can create TUN devices, else (False, why). Probes
    by creating a throw-away device (the kernel picks the free name for "%d")."""
    try:
        tun = LinuxTun("l2tpchk%d", None)
    except ImportError as e:
        return False, f"no fcntl.ioctl here ({e})"
    except OSError as e:
        if e.errno in (1, 13):  # EPERM, EACCES
            return False, (f"cannot create TUN devices: {_errtext(e)} "
                           "(needs root or CAP_NET_ADMIN)")
        return False, f"cannot create TUN devices: /dev/net/tun: {_errtext(e)}"
    tun.close()
    try:
        import pyroute2.minimal  # noqa: F401 - addresses and links are set through it
    except ImportError as e:
        return False, f"pyroute2-minimal is not installed ({e}): {_pyroute2_hint()}"
    return True, "/dev/net/tun usable"


def select(name, log=None, host=None):
    """The data path for --dataplane NAME (auto, kernel, userspace, null).

    auto: kernel when the kernel has L2TP and pppd exists (not implemented yet, so it
    goes on to the next), else userspace when TUN devices can be created and the
    daemon handed a host, else null. The chosen path's .reason says why."""
    if name == "null":
        return NullDataPath(log, "asked for (--dataplane null)")
    if name == "kernel":
        raise DataPathError("the kernel data path is not implemented yet; "
                            "use --dataplane userspace or null")
    if name == "userspace":
        if host is None:
            raise DataPathError("the userspace data path needs the daemon's host object")
        ok, why = tun_status()
        if not ok:
            raise DataPathError(f"the userspace data path is unavailable: {why}")
        return UserspaceDataPath(log, host, reason="asked for (--dataplane userspace)")
    if name == "auto":
        k_ok, k_why = kernel_l2tp_status()
        pppd = pppd_path()
        if k_ok and pppd:
            notes = [f"kernel has L2TP ({k_why}) but the kernel data path is not "
                     "implemented yet"]
        elif k_ok:
            notes = [f"kernel has L2TP ({k_why}) but pppd is missing"]
        else:
            notes = [f"kernel lacks L2TP ({k_why})"]
        if host is None:
            notes.append("no host for the userspace path")
        else:
            t_ok, t_why = tun_status()
            if t_ok:
                reason = "auto: " + "; ".join(notes) + f"; {t_why}"
                if log is not None:
                    log(f"data path userspace: {reason}")
                return UserspaceDataPath(log, host, reason=reason)
            notes.append(t_why)
        reason = "auto: " + "; ".join(notes)
        if log is not None:
            log(f"data path null: {reason}")
        return NullDataPath(log, reason)
    raise DataPathError(f"unknown data path {name!r} (auto, kernel, userspace, null)")
