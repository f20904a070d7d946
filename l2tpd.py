#!/usr/bin/env python3
"""l2tpd: an L2TP (RFC 2661) LAC and LNS in one daemon, managed over JSON-RPC.

The only module that does I/O and reads the clock (DESIGN.md). It owns:
- the UDP socket on the L2TP port (one for every tunnel; replies leave from the address
  the request arrived on, learnt with IP_PKTINFO, and from the L2TP port);
- the loop: one thread, `selectors`, a timer heap of (deadline, seq, key) with lazy
  cancel; per pass it reads what is ready, runs due timers, then flushes the datagrams
  of the tunnels it touched (aioquic's receive -> timers -> transmit order);
- registries in dicts: tunnels by local id, by (peer address, port, peer tunnel id) and
  by name; sessions by id and name inside their tunnel record;
- profiles (tunnel, session, ppp, peer) with OpenL2TP's inheritance, the system object,
  trace flags, events, plugins, the config file, signals.

Protocol decisions live in fsm.py (tunnels and sessions), ctrlchan.py (reliability)
and avp.py (wire); the data path behind kernel.py's small interface.

Profile inheritance (OpenL2TP's PROFILES section, openl2tp.7):
- A profile stores only the parameters set on it; an unset one falls back to the profile
  named `default` of the same kind, and that one to the built-in default (`unset` puts a
  parameter back to inheriting).
- Tunnel: request > tunnel profile (request's profile_name, else the matching peer
  profile's tunnel_profile_name, else `default`).
- Incoming tunnel: the peer profile whose name equals the peer's Host Name, else the one
  whose peer_ipaddr/netmask holds the peer's address (longest mask wins), else `default`.
- Session: request > session profile (request's profile_name, else the tunnel's
  session_profile_name, else the peer profile's) > `default`.
- PPP: request's ppp_profile_name > session profile's > tunnel's > peer profile's > `default`.

Events (pushed as JSON-RPC notifications "event" to `events.subscribe`d connections and
passed to plugin hooks of the same name): tunnel_created, tunnel_up, tunnel_down,
tunnel_deleted, session_created, session_up, session_down, session_deleted,
session_info, session_ppp_up, profile_created, profile_deleted. Each carries ids, names,
the peer address and, for downs, the reason.

Plugins (`-p FILE.py`, repeatable): a Python file whose functions named like the events
are called with (daemon, event_dict); an optional `init(daemon)` runs at load. A hook that
raises is logged and the daemon goes on.
"""

import argparse
import errno
import heapq
import importlib.util
import json
import logging
import logging.handlers
import os
import selectors
import signal
import socket
import struct
import sys
import time

import avp
import fsm
import kernel
import ppp
import rpc_unix
from rpc_unix import RpcError

VERSION = "0.1.0"
L2TP_PORT = 1701
UDP_RCVBUF = 4 << 20
MAX_WAIT = 60.0          # seconds: the longest the loop sleeps, whatever the deadlines
# Linux's IP_PKTINFO; CPython names it only from 3.13 on.
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)

# ------------------------------------------------------------------ trace flags
# OpenL2TP's names and bits (openl2tp-api.md 1.9).
TRACE_BITS = {"protocol": 1, "fsm": 2, "api": 4, "avp_info": 8, "avp_hide": 16,
              "avp_data": 32, "func": 64, "transport": 128, "data": 256, "system": 512,
              "ppp_control": 1024}
TRACE_ALL = 2047
TRACE_CHOICES = tuple(TRACE_BITS) + ("avp", "all")
_TRACE_SPEC_BITS = dict(TRACE_BITS, avp=8 | 16 | 32, all=TRACE_ALL)


# ------------------------------------------------------------------ schema
def _p(kind, default=None, help="", **kw):
    spec = {"type": kind, "help": help}
    if default is not None:
        spec["default"] = default
    if kind == "int":
        # Every integer has bounds (rpc_unix enforces the same default), and
        # rpc.describe and `help` show them.
        spec["min"], spec["max"] = rpc_unix.INT_MIN_DEFAULT, rpc_unix.INT_MAX_DEFAULT
    spec.update(kw)
    return spec


def _enum(choices, default, help):
    return _p("enum", default, help, choices=list(choices))


_FLAGS = _p("flags", 0, "trace flags: a mask or a comma list", choices=list(TRACE_CHOICES),
            bits=_TRACE_SPEC_BITS)
_NAME = _p("str", None, "a profile name")

# Times are in seconds, as in OpenL2TP; the protocol modules get milliseconds.
TUNNEL_PROFILE = {
    "host_name": _p("str", socket.gethostname(), "Host Name AVP we send"),
    "secret": _p("str", None, "shared secret: tunnel authentication and AVP hiding"),
    "auth_mode": _enum(("none", "simple", "challenge"), "none",
                       "none; simple: peer must match a peer profile; challenge: and must "
                       "pass the L2TP challenge"),
    "hide_avps": _p("bool", False, "hide AVPs (needs secret)"),
    "hide_setup_avps": _p("bool", False, "also hide AVPs in SCCRQ and SCCRP (Cisco cannot "
                          "parse them in SCCRQ; xl2tpd cannot read either)"),
    "framing_caps": _enum(("none", "sync", "async", "any"), "any", "Framing Capabilities"),
    "bearer_caps": _enum(("none", "digital", "analog", "any"), "any", "Bearer Capabilities"),
    "use_tiebreaker": _p("bool", False, "send a Tie Breaker AVP (RFC 2661 4.4.3)"),
    "hello_timeout": _p("int", 60, "seconds without rx before a HELLO (0 = off)", min=0),
    "max_retries": _p("int", 5, "retransmissions before the tunnel is cleared", min=0, max=1000),
    "retry_timeout": _p("int", 1, "first retransmission after (s)", min=1, max=3600),
    "max_retry_timeout": _p("int", 8, "cap of the doubling retransmit interval (s)", min=8,
                            max=3600),
    "rx_window_size": _p("int", 10, "Receive Window Size we advertise", min=1, max=32767),
    "tx_window_size": _p("int", 10, "cap on our send window", min=1, max=32767),
    "idle_timeout": _p("int", 0, "delete the tunnel after this long without sessions (s)",
                       min=0),
    "max_sessions": _p("int", 0, "sessions in this tunnel (0 = system limit)", min=0,
                       max=65535),
    "mtu": _p("int", 1460, "MTU passed to sessions", min=68, max=65535),
    "use_udp_checksums": _p("bool", True, "UDP checksums on data packets"),
    "do_pmtu_discovery": _p("bool", False, "path MTU discovery"),
    "allow_ppp_proxy": _p("bool", False, "userspace PPP starts from the LAC's proxy LCP "
                          "and checks its proxy PAP/CHAP (RFC 2661 4.4.5)"),
    "accept_zero_tunnel_id": _p("bool", False, "quirk: take control messages sent to "
                                "Tunnel ID 0 from the exact address and port of a tunnel "
                                "being set up (some D-Link LACs)"),
    "trace_flags": _FLAGS,
    "src_ipaddr": _p("ipaddr", None, "our address"),
    "dest_ipaddr": _p("ipaddr", None, "the peer's address"),
    "our_udp_port": _p("int", None, "our UDP port (the daemon's port)", min=1, max=65535),
    "peer_udp_port": _p("int", L2TP_PORT, "the peer's UDP port", min=1, max=65535),
    "peer_profile_name": _NAME,
    "session_profile_name": _NAME,
    "ppp_profile_name": _NAME,
}

SESSION_PROFILE = {
    "session_type": _enum(("laic", "laoc", "lnic", "lnoc"), None,
                          "call type; default laic in tunnels we created, else lnoc"),
    "sequencing_required": _p("bool", False, "send Sequencing Required"),
    "use_sequence_numbers": _p("bool", False, "data packets carry Ns/Nr"),
    "reorder_timeout": _p("int", 0, "hold out-of-order data packets up to (ms)", min=0),
    "no_ppp": _p("bool", False, "do not start PPP on this session"),
    "framing_type": _enum(("sync", "async", "any", "none"), "any", "Framing Type"),
    "bearer_type": _enum(("digital", "analog", "any", "none"), "any", "Bearer Type"),
    "minimum_bps": _p("int", 0, "Minimum BPS (outgoing calls)", min=0, max=0xFFFFFFFF),
    "maximum_bps": _p("int", 0, "Maximum BPS (outgoing calls; 0 = any)", min=0,
                      max=0xFFFFFFFF),
    "tx_connect_speed": _p("int", 1000000, "(Tx) Connect Speed", min=0, max=0xFFFFFFFF),
    "rx_connect_speed": _p("int", 0, "Rx Connect Speed (0 = same as tx)", min=0,
                           max=0xFFFFFFFF),
    "use_ppp_proxy": _p("bool", False, "take proxy LCP/auth from a local PPP (not "
                        "supported: give proxy_auth_* and the *_lcp_confreq parameters)"),
    "priv_group_id": _p("str", None, "Private Group ID"),
    "ppp_profile_name": _NAME,
    "trace_flags": _FLAGS,
}

PPP_PROFILE = {
    "asyncmap": _p("int", 0, "async control character map", min=0, max=0xFFFFFFFF),
    "mru": _p("int", 1500, "MRU", min=64, max=65535),
    "mtu": _p("int", 1500, "MTU", min=64, max=65535),
    "sync_mode": _enum(("sync", "async", "any"), "any", "PPP framing"),
    "auth_pap": _p("bool", True, "allow PAP"),
    "auth_chap": _p("bool", True, "allow CHAP"),
    "auth_mschapv1": _p("bool", True, "allow MS-CHAPv1"),
    "auth_mschapv2": _p("bool", True, "allow MS-CHAPv2"),
    "auth_eap": _p("bool", True, "allow EAP"),
    "auth_none": _p("bool", False, "allow no authentication"),
    "auth_peer": _p("bool", False, "require the peer to authenticate"),
    "chap_interval": _p("int", 10, "CHAP rechallenge interval (s)", min=0),
    "chap_max_challenge": _p("int", 10, "CHAP challenges before giving up", min=0),
    "chap_restart": _p("int", 3, "CHAP restart interval (s)", min=0),
    "pap_max_auth_requests": _p("int", 10, "PAP requests before giving up", min=0),
    "pap_restart_interval": _p("int", 3, "PAP restart interval (s)", min=0),
    "pap_timeout": _p("int", 0, "PAP server timeout (s)", min=0),
    "idle_timeout": _p("int", 0, "disconnect when idle (s)", min=0),
    "ipcp_max_config_requests": _p("int", 10, "IPCP Configure-Requests", min=0),
    "ipcp_max_config_naks": _p("int", 10, "IPCP Configure-Naks", min=0),
    "ipcp_max_terminate_requests": _p("int", 3, "IPCP Terminate-Requests", min=0),
    "ipcp_retransmit_interval": _p("int", 3, "IPCP restart timer (s)", min=0),
    "lcp_echo_failure_count": _p("int", 0, "echo failures before down", min=0),
    "lcp_echo_interval": _p("int", 0, "LCP echo interval (s; 0 = off)", min=0),
    "lcp_max_config_requests": _p("int", 10, "LCP Configure-Requests", min=0),
    "lcp_max_config_naks": _p("int", 10, "LCP Configure-Naks", min=0),
    "lcp_max_terminate_requests": _p("int", 3, "LCP Terminate-Requests", min=0),
    "lcp_retransmit_interval": _p("int", 3, "LCP restart timer (s)", min=0),
    "max_connect_time": _p("int", 0, "maximum connect time (s)", min=0),
    "max_failure_count": _p("int", 10, "maximum failures", min=0),
    "local_ipaddr": _p("ipaddr", None, "our address in IPCP"),
    "remote_ipaddr": _p("ipaddr", None, "the peer's address in IPCP"),
    "dns_ipaddr_pri": _p("ipaddr", None, "primary DNS offered"),
    "dns_ipaddr_sec": _p("ipaddr", None, "secondary DNS offered"),
    "wins_ipaddr_pri": _p("ipaddr", None, "primary WINS offered"),
    "wins_ipaddr_sec": _p("ipaddr", None, "secondary WINS offered"),
    "ip_pool_name": _p("str", None, "IP pool for the peer's address"),
    "use_radius": _p("bool", False, "use RADIUS"),
    "radius_hint": _p("str", None, "RADIUS configuration file"),
    "default_route": _p("bool", False, "add a default route through the session"),
    "multilink": _p("bool", False, "multilink PPP"),
    "local_name": _p("str", None, "our name for authentication"),
    "remote_name": _p("str", None, "the peer's name for authentication"),
    "proxy_arp": _p("bool", False, "proxy ARP for the peer"),
    "secrets_file": _p("str", "/etc/ppp/chap-secrets", "pppd-format secrets (client server "
                       "secret) for authenticating peers; CHAP and PAP"),
    "trace_flags": _FLAGS,
}

PEER_PROFILE = {
    "peer_ipaddr": _p("ipaddr", None, "match peers in this address range"),
    "peer_port": _p("int", L2TP_PORT, "the peer's UDP port", min=1, max=65535),
    "netmask": _p("ipaddr", "255.255.255.255", "mask for peer_ipaddr"),
    "lac_lns": _enum(("lac", "lns", "laclns"), "laclns", "roles we may take with this peer"),
    "tunnel_profile_name": _p("str", "default", "tunnel profile for this peer"),
    "session_profile_name": _p("str", "default", "session profile for this peer"),
    "ppp_profile_name": _p("str", "default", "PPP profile for this peer"),
}

PROFILE_KINDS = {"tunnel": TUNNEL_PROFILE, "session": SESSION_PROFILE, "ppp": PPP_PROFILE,
                 "peer": PEER_PROFILE}

SYSTEM = {
    "trace_flags": _FLAGS,
    "max_tunnels": _p("int", 0, "tunnels (0 = no limit)", min=0, max=65535),
    "max_half_open_tunnels": _p("int", 1000, "peers' tunnels being set up at once (SCCRQ "
                                "answered, no SCCCN yet); past it the oldest is cleared",
                                min=1, max=32768),
    "max_sessions": _p("int", 0, "sessions in all tunnels (0 = no limit)", min=0),
    "drain_tunnels": _p("bool", False, "refuse new tunnels and sessions, keep the rest"),
    "tunnel_establish_timeout": _p("int", 120, "clear tunnels not up within (s; 0 = never)",
                                   min=0),
    "session_establish_timeout": _p("int", 120, "clear sessions not up within (s)", min=0),
    "deny_local_tunnel_creates": _p("bool", False, "refuse tunnel create requests"),
    "deny_remote_tunnel_creates": _p("bool", False, "refuse SCCRQs"),
    "tunnel_persist_pend_timeout": _p("int", 300, "longest wait before re-creating a "
                                      "persistent tunnel (s)", min=1),
    "session_persist_pend_timeout": _p("int", 60, "wait before restoring sessions (s)", min=0),
}

TUNNEL_CREATE = dict(TUNNEL_PROFILE)
TUNNEL_CREATE.update({
    "tunnel_id": _p("int", None, "force our tunnel id (tests)", min=1, max=65535),
    "tunnel_name": _p("str", None, "administrative name"),
    "profile_name": _p("str", None, "tunnel profile to take defaults from"),
    "persist": _p("bool", False, "re-create after failure, with backoff"),
    "interface_name": _p("str", None, "interface name for sessions"),
})
TUNNEL_MODIFIABLE = ("trace_flags", "use_udp_checksums", "persist", "hello_timeout",
                     "max_retries", "retry_timeout", "max_retry_timeout", "tx_window_size",
                     "idle_timeout", "max_sessions", "mtu", "peer_profile_name",
                     "session_profile_name", "ppp_profile_name", "interface_name",
                     "hide_avps")
_TUNNEL_ID = {
    "tunnel_id": _p("int", None, "tunnel id", min=1, max=65535),
    "tunnel_name": _p("str", None, "tunnel name"),
}
_SESSION_ID = dict(_TUNNEL_ID)
_SESSION_ID.update({
    "session_id": _p("int", None, "session id", min=1, max=65535),
    "session_name": _p("str", None, "session name"),
})

SESSION_CREATE = dict(SESSION_PROFILE)
SESSION_CREATE.update(_TUNNEL_ID)
SESSION_CREATE.update({
    "session_id": _p("int", None, "force our session id (tests)", min=1, max=65535),
    "session_name": _p("str", None, "administrative name"),
    "profile_name": _p("str", None, "session profile to take defaults from"),
    "interface_name": _p("str", None, "interface name"),
    "user_name": _p("str", None, "PPP user name (client)"),
    "user_password": _p("str", None, "PPP password (client)"),
    "calling_number": _p("str", None, "Calling Number"),
    "called_number": _p("str", None, "Called Number"),
    "sub_address": _p("str", None, "Sub-Address"),
    "connect_speed": _p("str", None, "speed[:txspeed] in bit/s"),
    "proxy_auth_type": _enum(("text", "chap", "pap", "none", "mschap"), None,
                             "Proxy Authen Type"),
    "proxy_auth_name": _p("str", None, "Proxy Authen Name"),
    "proxy_auth_challenge": _p("str", None, "Proxy Authen Challenge (hex)"),
    "proxy_auth_id": _p("int", None, "Proxy Authen ID: the CHAP Identifier, or the PAP "
                        "Authenticate-Request's", min=0, max=255),
    "proxy_auth_response": _p("str", None, "Proxy Authen Response (hex; the password for "
                              "pap and text)"),
    "initial_rcvd_lcp_confreq": _p("str", None, "Initial Received LCP CONFREQ: its options "
                                   "(hex)"),
    "last_sent_lcp_confreq": _p("str", None, "Last Sent LCP CONFREQ: its options (hex)"),
    "last_rcvd_lcp_confreq": _p("str", None, "Last Received LCP CONFREQ: its options (hex)"),
})
SESSION_MODIFIABLE = ("trace_flags", "sequencing_required", "use_sequence_numbers",
                      "reorder_timeout")
_REASON = {"reason": _p("str", None, "why (sent in the Result Code message)")}

# The parameters that make up a tunnel's fsm.TunnelConfig (Daemon._tunnel_config).
_TUNNEL_CONFIG_KEYS = ("host_name", "secret", "auth_mode", "hide_avps", "hide_setup_avps",
                       "framing_caps",
                       "bearer_caps", "rx_window_size", "tx_window_size", "hello_timeout",
                       "retry_timeout", "max_retry_timeout", "max_retries", "use_tiebreaker",
                       "max_sessions")

_CAPS = {"none": 0, "sync": avp.FRAMING_SYNC, "async": avp.FRAMING_ASYNC, "any": 3,
         "digital": avp.BEARER_DIGITAL, "analog": avp.BEARER_ANALOG}
_PROXY_TYPES = {"text": avp.PROXY_AUTH_TEXT, "chap": avp.PROXY_AUTH_CHAP,
                "pap": avp.PROXY_AUTH_PAP, "none": avp.PROXY_AUTH_NONE,
                "mschap": avp.PROXY_AUTH_MSCHAPV1}

SYSTEM_COUNTERS = (
    "short_frames", "wrong_version_frames", "unexpected_data_frames", "bad_rcvd_frames",
    "total_rcvd_control_frames", "total_sent_control_frames",
    "total_control_frame_send_fails", "total_retransmitted_control_frames",
    "no_control_frame_resources", "no_peer_resources", "no_tunnel_resources",
    "no_session_resources", "no_ppp_resources", "too_many_tunnels", "too_many_sessions",
    "auth_fails", "no_matching_tunnel_id_discards", "no_matching_session_id_discards",
    "mismatched_tunnel_ids", "mismatched_session_ids", "encode_message_fails",
    "tunnel_setup_failures", "session_setup_failures", "event_queue_full_errors",
    "ignored_avps", "vendor_avps", "illegal_messages", "unsupported_messages",
    "peer_restarts", "half_open_tunnel_evictions")


def _ip_int(s):
    a, b, c, d = (int(x) for x in s.split("."))
    return (a << 24) | (b << 16) | (c << 8) | d


def _mask_len(mask):
    return bin(_ip_int(mask)).count("1")


# ------------------------------------------------------------------ profiles
class Profiles:
    """Named profiles of one kind; each stores only what was set on it."""

    def __init__(self, kind, spec):
        self.kind = kind
        self.spec = spec
        self.items = {"default": {}}
        self._snaps = {}

    def value(self, name, param):
        """The value of `param` in profile `name`: set there, else in `default`, else
        the built-in default."""
        prof = self.items.get(name)
        if prof is not None and param in prof:
            return prof[param]
        dflt = self.items["default"]
        if param in dflt:
            return dflt[param]
        return self.spec[param].get("default")

    def resolved(self, name):
        """Every parameter of profile `name`, as a snapshot shared by every object
        made from it until the profile changes: read-only (wrap it in Params)."""
        snap = self._snaps.get(name)
        if snap is None:
            snap = self._snaps[name] = {p: self.value(name, p) for p in self.spec}
        return snap

    def changed(self):
        """A profile was created, modified, unset or deleted: new objects get fresh
        snapshots; existing ones keep theirs (OpenL2TP: only new instances change)."""
        self._snaps = {}

    def copy(self):
        c = Profiles(self.kind, self.spec)
        c.items = {n: dict(v) for n, v in self.items.items()}
        return c


class Params(dict):
    """An object's parameters: its own values (this dict) over the shared snapshot of
    its profile (`base`), so ten thousand tunnels of one profile hold one copy."""

    __slots__ = ("base",)

    def __init__(self, base, own=()):
        dict.__init__(self, own)
        self.base = base

    def __missing__(self, key):
        return self.base[key]

    def get(self, key, default=None):
        if dict.__contains__(self, key):
            return dict.__getitem__(self, key)
        return self.base.get(key, default)

    def __contains__(self, key):
        return dict.__contains__(self, key) or key in self.base


# ------------------------------------------------------------------ records
class TunnelRec:
    """The daemon's view of one tunnel: the fsm.Tunnel plus what management needs."""

    __slots__ = ("tid", "t", "params", "peer", "local", "created_by_admin", "create_time",
                 "name", "create_keys", "sessions", "session_names", "restore", "deleted",
                 "scheduled", "peer_key", "persist_attempts", "was_up", "down_reason",
                 "idle_since", "idle_timer", "muted")

    def __init__(self, tid, t, params, peer, local, created_by_admin, now):
        self.tid = tid
        self.t = t                    # fsm.Tunnel
        self.params = params          # Params over the tunnel profile
        self.peer = peer              # (ip, port)
        self.local = local            # our address (ip) or None
        self.created_by_admin = created_by_admin
        self.create_time = now
        self.name = params.get("tunnel_name")
        self.create_keys = None       # names the administrator gave (config.save)
        self.sessions = {}            # sid -> SessionRec
        self.session_names = {}       # name -> sid
        self.restore = None           # admin sessions of a previous incarnation (persist)
        self.deleted = False          # deleted by the administrator: no re-create
        self.scheduled = None         # deadline pushed on the heap (lazy cancel)
        self.peer_key = None          # key in Daemon.by_peer
        self.persist_attempts = 0
        self.was_up = False
        self.down_reason = None
        self.idle_since = now
        self.idle_timer = None        # the pending idle_timeout check, if any
        self.muted = False            # its peer seems to have restarted (Daemon.stale)


class SessionRec:
    __slots__ = ("tunnel", "sid", "params", "name", "created_by_admin", "create_time",
                 "create_keys", "info", "down_reason", "ppp_profile_name", "user",
                 "ppp_expected")

    def __init__(self, tunnel, sid, params, created_by_admin, now):
        self.tunnel = tunnel
        self.sid = sid
        self.params = params
        self.name = params.get("session_name")
        self.created_by_admin = created_by_admin
        self.create_time = now
        self.create_keys = None       # names in the admin's request (admin sessions)
        self.info = None              # session-up info from the fsm (shared, not copied)
        self.down_reason = None
        self.ppp_profile_name = params.get("ppp_profile_name") or "default"
        self.user = None              # the PPP user the peer authenticated as (LNS)
        self.ppp_expected = False     # the data path runs PPP for it: up means PPP up


def _monotonic_ms():
    return int(time.monotonic() * 1000)


class Policy:
    """The decisions fsm.Tunnel asks its caller for (pure queries); one for all
    tunnels, which it finds by id."""

    def __init__(self, daemon):
        self.d = daemon

    def accept_tunnel(self, tunnel, msg):
        return self.d.accept_tunnel(self.d.tunnels[tunnel.tunnel_id], msg)

    def accept_session(self, tunnel, session_type, msg):
        return self.d.accept_session(self.d.tunnels[tunnel.tunnel_id], session_type, msg)


# ------------------------------------------------------------------ the daemon
class Daemon:
    def __init__(self, listen_addr="0.0.0.0", port=L2TP_PORT, sock_path=None,
                 dataplane="null", trace_flags=0, foreground=True, log=None,
                 clock=_monotonic_ms, rng=os.urandom, sock_group=None):
        self.listen_addr = listen_addr
        self.port = port
        self.sock_path = sock_path or rpc_unix.default_socket_path()
        self.clock = clock
        self.rng = rng
        self.log = log or logging.getLogger("l2tpd")
        self.start_time = time.time()
        self._t0 = clock()       # the monotonic ms at start_time (see wall_time)
        self.profiles = {k: Profiles(k, s) for k, s in PROFILE_KINDS.items()}
        self.system = {p: s.get("default") for p, s in SYSTEM.items()}
        self.system["trace_flags"] = trace_flags
        self.counters = dict.fromkeys(SYSTEM_COUNTERS, 0)
        self.msg_counters = {}   # message type -> [rx, tx, rx_bad]
        self.tunnels = {}        # local tid -> TunnelRec
        self.by_peer = {}        # (ip, port, peer tid) -> tid: a retransmitted SCCRQ
        self.tunnel_names = {}   # name -> tid
        self.opening = {}        # peer address -> {tid} we sent an SCCRQ to, not yet up
        self.zero_tid = {}       # (ip, port) -> {tid} being set up with accept_zero_tunnel_id
        self.stale = {}          # (ip, port, peer tid) -> (tid, create_time): a tunnel
        #                          whose peer sent a new SCCRQ with its key (restart?)
        self.num_sessions = 0
        self.dirty = set()       # tids with datagrams or deadlines to refresh
        self.heap = []           # (deadline, seq, key); key: tid or a Timer
        self.seq = 0
        self.plugins = []
        self._hooks = {}         # event name -> [(plugin module, hook)]
        self.running = False
        self.stopping = None     # deadline of a graceful stop
        self.config_file = None
        # Files the RPC may name (config save/restore, secrets_file) resolve inside
        # this directory (main: --config-dir, else the directory of -c, else
        # DEFAULT_CONFIG_DIR); see config_path.
        self.config_dir = DEFAULT_CONFIG_DIR
        self.policy = Policy(self)
        self._tconf = {}         # configuration key -> shared fsm.TunnelConfig
        self._keysets = {}       # interned create_keys tuples
        self._made = {}          # config line text -> ids of what it created (SIGHUP)
        self.persist_pending = {}  # name -> a persistent tunnel waiting to be re-created
        self.closing = set()     # tids down and lingering (RFC 2661 5.7)
        self.up = set()          # tids established and not yet down
        self.half_open = {}      # tid -> (seq, ip): peers' tunnels waiting for their SCCCN
        self._ho_addr = {}       # ip -> heap of (seq, tid), oldest first; lazily cleaned
        self._ho_count = {}      # ip -> how many of half_open are from it
        self._ho_max = []        # heap of (-count, ip): the host with the most (_ho_set)
        self._evicted = 0        # evictions not yet logged (_evict_log)
        self._evict_logged = -1000
        self._log_tokens = 100.0  # _log_limited's bucket
        self._log_at = clock()
        self._log_dropped = 0
        self._local_ips = {}     # packed address -> its text, one string per address
        self.pools = {}          # name -> ppp.IpPool
        self._secrets = {}       # path -> (mtime, entries)
        self.dp = kernel.select(dataplane, self._dplog, self)
        if dataplane == "auto" and self.dp.name == "null":
            # Sessions will have no PPP and carry no data: say so where it is seen.
            self.log.warning(f"data path null: sessions carry no data: {self.dp.reason}")
        self.sel = selectors.DefaultSelector()
        self.fds = {}
        self.sock = None
        self.server = None
        self.sock_group = sock_group
        self.pending_signals = []
        self._wake_r = self._wake_w = None

    # ------------------------------------------------------------- logging / trace
    def tracing(self, flag, *objs):
        """Is `flag` on for the system or any of `objs` (records)? Hot paths ask
        before they format a message."""
        mask = self.system["trace_flags"]
        for o in objs:
            if o is not None:
                mask |= o.params.get("trace_flags") or 0
        return bool(mask & flag)

    def trace(self, flag, msg, *objs):
        """Log `msg` when `flag` is on for the system or any of `objs` (records)."""
        if self.tracing(flag, *objs):
            self.log.info(msg)

    def _dplog(self, msg):
        self.trace(TRACE_BITS["data"], msg)

    # ------------------------------------------------------------- data path host
    # What kernel.py's data paths ask of the daemon (kernel.py's docstring).
    def watch(self, fd, obj, events):
        self._watch(fd, obj, events)

    def send_data(self, tid, datagram):
        rec = self.tunnels.get(tid)
        if rec is None or self.sock is None:
            return False
        return self._sendto(rec, datagram)

    def session_event(self, tid, sid, kind, info):
        rec = self.tunnels.get(tid)
        srec = rec.sessions.get(sid) if rec is not None else None
        if srec is None:
            return
        now = self.clock()
        if kind == "ppp-auth":
            # Our PPP authenticated the peer (LNS): who, and whether it passed.
            srec.user = info.get("user")
            if not info.get("ok"):
                self.counters["auth_fails"] += 1
                self._log_limited(f"{self._sname(rec, srec)} with {rec.peer[0]}: PPP "
                                  f"authentication failed for user {srec.user!r}")
        elif kind == "ppp-up":
            srec.info = dict(srec.info or (), ppp=dict(info))
            self.event("session_ppp_up", rec, srec, **{k: info.get(k) for k in
                                                        ("local_ip", "peer_ip", "user")})
        elif kind == "ppp-down":
            reason = info.get("reason") or "PPP ended"
            # RFC 2661 4.4.2: result 2 with a vendor error code and PPP's reason.
            self.dirty.add(tid)
            self.apply(rec, rec.t.session_close(now, sid, avp.CDN_ERROR, avp.ERR_VENDOR,
                                                f"PPP: {reason}"), now)

    def ippool_alloc(self, pool_name, owner):
        pool = self.pools.get(pool_name)
        return pool.alloc(owner) if pool is not None else None

    def ippool_free(self, pool_name, addr):
        pool = self.pools.get(pool_name)
        if pool is not None:
            pool.free(addr)

    def secret_for(self, path, user):
        """The password of `user` in a pppd-format secrets file, re-read when the
        file changes."""
        path = path or PPP_PROFILE["secrets_file"]["default"]
        try:
            mtime = os.stat(path).st_mtime_ns
        except OSError as e:
            self.log.warning(f"secrets file {path}: {e.strerror}")
            return None
        cached = self._secrets.get(path)
        if cached is None or cached[0] != mtime:
            try:
                data = _read_regular(path, SECRETS_MAX)
                if len(data) > SECRETS_MAX:
                    raise ValueError(f"larger than {SECRETS_MAX} bytes")
                entries = ppp.parse_secrets(data.decode("utf-8", "replace"), path,
                                            self.log.warning)
            except _NotRegular:
                self.log.warning(f"secrets file {path}: not a regular file: ignored")
                entries = []
            except (OSError, ValueError) as e:
                self.log.warning(f"secrets file {path}: {getattr(e, 'strerror', None) or e}")
                entries = []
            cached = (mtime, entries)
            self._secrets[path] = cached
        return ppp.lookup_secret(cached[1], user)

    def new_ppp_engine(self, role, config_kwargs, rng, log):
        return ppp.PPPEngine(role, ppp.PPPConfig(**config_kwargs), rng, log)

    # ------------------------------------------------------------- sockets
    def open(self):
        """Bind the UDP socket and the RPC socket; register them with the loop."""
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # No SO_REUSEADDR: with it a second daemon binds the same address and port
        # and silently takes the first one's traffic (the kernel delivers each
        # datagram to the newest socket); without it the second one fails here.
        s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        # Room for a burst of SCCRQs (every LAC back at once after an outage): the
        # default ~208 KiB holds ~160 small datagrams (bench/RESULTS.md).
        for opt in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
            try:
                if opt is not None:
                    s.setsockopt(socket.SOL_SOCKET, opt, UDP_RCVBUF)
                    break
            except OSError:
                continue   # SO_RCVBUFFORCE needs CAP_NET_ADMIN; SO_RCVBUF is capped
        try:
            s.bind((self.listen_addr, self.port))
        except OSError as e:
            s.close()
            if e.errno == errno.EADDRINUSE:
                raise OSError(e.errno, f"UDP {self.listen_addr}:{self.port}: address in use "
                              "(another l2tpd or L2TP daemon is running there)")
            raise OSError(e.errno, f"UDP {self.listen_addr}:{self.port}: {e.strerror}")
        s.setblocking(False)
        self.sock = s
        self.port = s.getsockname()[1]
        self._watch(s.fileno(), _Reader(self._on_udp), rpc_unix.EVENT_READ)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._watch(self._wake_r.fileno(), _Reader(self._on_wake), rpc_unix.EVENT_READ)
        try:
            self.server = rpc_unix.RpcServer(self.sock_path, self.handle_rpc, self._watch,
                                             group=self.sock_group, log=self.log.warning,
                                             on_close=None)
        except OSError as e:
            what = f"RPC socket {self.sock_path}"
            if e.errno == errno.EPERM and self.sock_group is not None:
                what += f": cannot give it to group {self.sock_group!r} (-g)"
            raise OSError(e.errno, f"{what}: {e.strerror or e}")

    def _watch(self, fd, obj, events):
        if not events:
            if fd in self.fds:
                self.sel.unregister(fd)
                del self.fds[fd]
        elif fd in self.fds:
            self.sel.modify(fd, events)
            self.fds[fd] = obj
        else:
            self.sel.register(fd, events)
            self.fds[fd] = obj

    def _on_wake(self, now):
        try:
            while self._wake_r.recv(64):
                pass
        except OSError:
            pass

    def _on_udp(self, now):
        # Bounded batch per pass so RPC and timers are never starved.
        for _ in range(256):
            try:
                data, anc, _flags, addr = self.sock.recvmsg(65535, 64)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self.log.warning(f"udp receive: {e}")
                return
            local = None
            for level, kind, cdata in anc:
                if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(cdata) >= 12:
                    raw = cdata[8:12]   # ipi_addr: where it was sent to
                    local = self._local_ips.get(raw)
                    if local is None:
                        local = self._local_ips[raw] = socket.inet_ntoa(raw)
            try:
                self.datagram_received(data, addr, local, now)
            except Exception:
                self.log.exception(f"while handling a datagram from {addr}")

    def _sendto(self, rec, data):
        """One datagram to a tunnel's peer, from the address the tunnel uses."""
        try:
            if rec.local and self.listen_addr in ("0.0.0.0", ""):
                pktinfo = struct.pack("=I4s4s", 0, socket.inet_aton(rec.local), bytes(4))
                self.sock.sendmsg([data], [(socket.IPPROTO_IP, IP_PKTINFO, pktinfo)],
                                  0, rec.peer)
            else:
                self.sock.sendto(data, rec.peer)
            return True
        except OSError as e:
            self.trace(TRACE_BITS["transport"], f"tunnel {rec.tid}: send failed: {e}", rec)
            return False

    def send(self, rec, data):
        """Send one control datagram (counted per message type)."""
        if not self._sendto(rec, data):
            self.counters["total_control_frame_send_fails"] += 1
            return
        self.counters["total_sent_control_frames"] += 1
        mtype = avp.peek_message_type(data[12:])
        if mtype:
            self._msg_count(mtype, 1)

    def _msg_count(self, mtype, col):
        """Count one message by type: known RFC 2661 types each, every other value in
        one "unknown" bucket (anyone can send any 16-bit value: one entry each would
        let them grow this dict and `system show` without bound)."""
        if mtype not in avp.MSG_NAMES:
            mtype = "unknown"
        row = self.msg_counters.get(mtype)
        if row is None:
            row = self.msg_counters[mtype] = [0, 0, 0]
        row[col] += 1

    # ------------------------------------------------------------- receive path
    def datagram_received(self, data, addr, local, now):
        try:
            h = avp.pull_header(data)
        except avp.VersionError:
            self.counters["wrong_version_frames"] += 1
            return
        except avp.ParseError:
            self.counters["short_frames" if len(data) < 12 else "bad_rcvd_frames"] += 1
            return
        if not h.control:
            rec = self.tunnels.get(h.tunnel_id)
            if rec is None or rec.peer[0] != addr[0]:
                self.counters["no_matching_tunnel_id_discards"] += 1
                return
            rec.t.note_rx(now)
            if not self.dp.data_received(rec.tid, h, data, now):
                self.counters["unexpected_data_frames"] += 1
            return
        self.counters["total_rcvd_control_frames"] += 1
        body = data[h.payload_offset:h.length]
        mtype = avp.peek_message_type(body)
        if mtype:
            self._msg_count(mtype, 0)
        if h.tunnel_id:
            rec = self.tunnels.get(h.tunnel_id)
            if rec is None:
                self.counters["no_matching_tunnel_id_discards"] += 1
                return
            if addr != rec.peer:
                if addr[0] == rec.peer[0] and rec.t.state == "wait-ctl-reply":
                    # RFC 2661 8.1: the responder may answer from another port; from
                    # then on the ports stay fixed.
                    if rec.params.get("accept_zero_tunnel_id"):
                        self._zero_tid_done(rec)
                        self.zero_tid.setdefault((addr[0], addr[1]), set()).add(rec.tid)
                    rec.peer = addr
                else:
                    self.counters["mismatched_tunnel_ids"] += 1
                    return
            self._feed(rec, data, h, now)
            return
        if mtype == avp.STOPCCN:
            # A peer that could not read our Assigned Tunnel ID (a hidden AVP and a
            # wrong secret) clears with Tunnel ID 0: find it by its own id (5.12).
            try:
                ptid = avp.decode_message(body).get(avp.ASSIGNED_TUNNEL_ID)
            except avp.L2TPError:
                ptid = None
            rec = self.tunnels.get(self.by_peer.get((addr[0], addr[1], ptid)))
            if rec is not None:
                self._feed(rec, data, h, now)
                return
        if mtype != avp.SCCRQ:
            rec = self._zero_tid_tunnel(addr) if self.zero_tid else None
            if rec is not None:
                self._feed(rec, data, h, now)
                return
            # Only an SCCRQ may come with Tunnel ID 0 (a ZLB for a tunnel we never
            # knew, or a peer's bug): nothing to attach it to.
            self.counters["no_matching_tunnel_id_discards"] += 1
            return
        self._incoming_sccrq(data, h, body, addr, local, now)

    def _feed(self, rec, data, h, now):
        actions = rec.t.receive(data, now, h)
        self.dirty.add(rec.tid)
        self.apply(rec, actions, now)

    def _incoming_sccrq(self, data, h, body, addr, local, now):
        # The fsm decodes the SCCRQ; here a scan of its (never hidden) Host Name, its
        # Assigned Tunnel ID and Tie Breaker is enough, unless the id was hidden.
        host, ptid, tie = _sccrq_peek(body)
        peer_prof = self.match_peer_profile(host, addr[0])
        tprof = self.profiles["peer"].value(peer_prof, "tunnel_profile_name") or "default"
        if tprof not in self.profiles["tunnel"].items:
            tprof = "default"
        base = self.profiles["tunnel"].resolved(tprof)
        if ptid is None and base.get("secret"):
            try:
                ptid = avp.decode_message(body, secret=base["secret"]).get(
                    avp.ASSIGNED_TUNNEL_ID)
            except avp.L2TPError:
                ptid = None   # the fsm answers what it cannot read
        old = None
        if ptid is not None:
            key = (addr[0], addr[1], ptid)
            old = self.tunnels.get(self.by_peer.get(key))
            if old is not None and old.t.state == "wait-ctl-conn":
                # RFC 2661 5.8: a retransmitted SCCRQ (our SCCRP is still
                # unacknowledged); the channel acks the duplicate.
                self._feed(old, data, h, now)
                return
            # Past that point the peer has no reason to repeat its SCCRQ: it restarted
            # (or redials) with the same Assigned Tunnel ID. A tunnel already down goes
            # now; an established one is remembered as stale (self.stale) and goes
            # when a new control connection with this key is up (authenticated, if
            # the profile says so), so one forged SCCRQ cannot clear a tunnel and its
            # sessions. Meanwhile it is muted: no Hello or final StopCCN of it may
            # reach the peer's new tunnel, which has the same id.
            if old is not None and old.t.state in ("closing", "closed"):
                self._peer_restarted(old, ptid, now)
            elif old is not None:
                self.stale.setdefault(key, (old.tid, old.create_time))
                self._mute(old, True)
        params = Params(base, {"peer_profile_name": peer_prof, "profile_name": tprof})
        if self.opening.get(addr[0]) and self._tie_break(tie, addr, now) == "drop":
            return
        try:
            rec = self._new_tunnel(params, addr, local, False, now)
        except RpcError as e:
            self.counters["no_tunnel_resources"] += 1
            self.log.warning(f"SCCRQ from {addr[0]}:{addr[1]}: {e.message}")
            return
        if ptid is not None:
            rec.peer_key = (addr[0], addr[1], ptid)
            self.by_peer[rec.peer_key] = rec.tid
        self.event("tunnel_created", rec)
        self._feed(rec, data, h, now)
        if rec.t.state == "wait-ctl-conn":
            self._half_open_add(rec, now)   # SCCRQs with its key now reach this one
            return
        # Refused at once (limits, policy, authentication: the StopCCN goes out now),
        # or not taken at all (malformed, or not a first message: Ns is not 0): no
        # state is kept, so a flood of such SCCRQs holds neither memory nor tunnel
        # ids; a retransmitted SCCRQ is simply answered again.
        taken = rec.t.state != "idle"
        if not taken:
            self.counters["bad_rcvd_frames"] += 1
        self.forget_tunnel(rec, now, last_words=taken)   # a stale one speaks again

    def _half_open_add(self, rec, now):
        """Count a peer's tunnel that waits for its SCCCN. Past max_half_open_tunnels
        one is dropped (StopCCN 2/4 sent once, no linger): the oldest of the address
        that holds the most, so a flood from one host (however many ports) pushes out
        its own tunnels before another peer's (issue 11, fault 6). A flood from many
        addresses faster than max_half_open_tunnels per round trip can still push
        out a slow peer: that is the limit's price for bounded memory."""
        self.seq += 1
        ip = rec.peer[0]
        self.half_open[rec.tid] = (self.seq, ip)
        heapq.heappush(self._ho_addr.setdefault(ip, []), (self.seq, rec.tid))
        self._ho_set(ip, self._ho_count.get(ip, 0) + 1)
        limit = self.system["max_half_open_tunnels"]
        while len(self.half_open) > limit:
            ip = self._ho_heaviest()
            heap = self._ho_addr[ip]
            seq, tid = heapq.heappop(heap)
            if self.half_open.get(tid, (None,))[0] != seq:
                continue   # already up or gone
            old = self.tunnels[tid]
            self._half_open_done(old)
            self.counters["half_open_tunnel_evictions"] += 1
            self._evict_log(old, limit, now)
            self.apply(old, old.t.drop(now, avp.STOPCCN_ERROR, avp.ERR_NO_RESOURCES,
                                       "too many tunnels being set up"), now)

    def _half_open_done(self, rec):
        """rec no longer waits for its SCCCN (up, down, dropped or forgotten)."""
        entry = self.half_open.pop(rec.tid, None)
        if entry is None:
            return
        ip = entry[1]
        n = self._ho_count[ip] - 1
        heap = self._ho_addr[ip]
        self._ho_set(ip, n)
        if n == 0:
            del self._ho_addr[ip]
            return
        if len(heap) > 2 * n + 64:   # drop the entries of tunnels no longer half-open
            heap[:] = [(q, t) for q, t in heap if self.half_open.get(t, (None,))[0] == q]
            heapq.heapify(heap)

    def _ho_set(self, ip, n):
        """Half-open count of one host; _ho_max (a heap of (-count, ip), entries
        that no longer match the count are dropped lazily) finds the host with the
        most in O(log hosts)."""
        if n:
            self._ho_count[ip] = n
            heapq.heappush(self._ho_max, (-n, ip))
        else:
            self._ho_count.pop(ip, None)
        if len(self._ho_max) > 4 * len(self._ho_count) + 64:
            self._ho_max = [(-c, a) for a, c in self._ho_count.items()]
            heapq.heapify(self._ho_max)

    def _ho_heaviest(self):
        while True:
            neg, ip = self._ho_max[0]
            if self._ho_count.get(ip) == -neg:
                return ip
            heapq.heappop(self._ho_max)

    def _evict_log(self, rec, limit, now):
        """One warning per second at most, however fast a flood evicts."""
        self._evicted += 1
        if now - self._evict_logged >= 1000:
            self.log.warning(f"{self._evicted} tunnel(s) being set up dropped, the last "
                             f"from {rec.peer[0]}:{rec.peer[1]}: {limit} were being set up "
                             "(max_half_open_tunnels)")
            self._evicted = 0
            self._evict_logged = now

    def _peer_restarted(self, rec, ptid, now):
        """A new SCCRQ from the (address, port, Assigned Tunnel ID) of a tunnel that is
        established or lingering after StopCCN: the peer lost that tunnel (a reboot,
        Windows numbering its tunnels from 1 again). The stale tunnel and its sessions
        are cleared without a StopCCN, which would carry the same peer tunnel id and
        clear the peer's new tunnel; the SCCRQ then opens a new one."""
        self.counters["peer_restarts"] += 1
        reason = (f"peer restarted: a new SCCRQ from {rec.peer[0]}:{rec.peer[1]} with "
                  f"Assigned Tunnel ID {ptid}")
        self.log.warning(f"tunnel {rec.tid}: {reason}; clearing it and its "
                         f"{len(rec.sessions)} session(s)")
        if self.by_peer.get(rec.peer_key) == rec.tid:
            del self.by_peer[rec.peer_key]
        rec.peer_key = None
        self.dirty.add(rec.tid)
        self.apply(rec, rec.t.abandon(now, reason), now)

    def _stale_of(self, key):
        """The live tunnel remembered as stale for a peer key, or None."""
        entry = self.stale.get(key)
        if entry is None:
            return None
        old = self.tunnels.get(entry[0])
        if old is None or old.create_time != entry[1] or old.t.state == "closed":
            del self.stale[key]
            return None
        return old

    def _mute(self, rec, on):
        """A tunnel whose peer seems to have restarted sends no Hello (its id now
        names the peer's new tunnel) and no final StopCCN; unmuted when no new
        control connection with its key is pending any more."""
        rec.muted = on
        rec.t.channel.hello_timeout = 0 if on else (rec.params.get("hello_timeout") or 0) * 1000
        self.dirty.add(rec.tid)

    def _replace_stale(self, rec, now):
        """A control connection with a stale tunnel's key is up: the peer did
        restart, and the tunnel it left behind is cleared now."""
        old = self._stale_of(rec.peer_key)
        if old is not None and old is not rec:
            del self.stale[rec.peer_key]
            self._peer_restarted(old, rec.t.peer_tunnel_id, now)

    def _stale_alone(self, key):
        """The attempt to replace a stale tunnel ended without coming up: if none
        is pending any more, the stale tunnel speaks again (the SCCRQ was forged, or
        the peer gave up); it stays stale, so a later restart still clears it."""
        old = self._stale_of(key)
        if old is None:
            return
        pending = self.tunnels.get(self.by_peer.get(key))
        if pending is None or pending is old or pending.t.state != "wait-ctl-conn":
            self.by_peer[key] = old.tid
            self._mute(old, False)

    def _zero_tid_tunnel(self, addr):
        """The accept_zero_tunnel_id quirk (some D-Link LACs send their SCCCN to
        Tunnel ID 0; accel-ppp has the same option): the newest tunnel being set up
        with that option whose peer is exactly `addr` (ip, port), or None."""
        found = None
        for tid in self.zero_tid.get((addr[0], addr[1]), ()):
            rec = self.tunnels.get(tid)
            if (rec is not None and rec.peer == addr
                    and rec.t.state in ("wait-ctl-conn", "wait-ctl-reply")
                    and (found is None or rec.create_time >= found.create_time)):
                # Several (the router redialled before its first attempt ended): the
                # newest, which its latest SCCRQ made; the older ones time out.
                found = rec
        if found is not None:
            self.trace(TRACE_BITS["protocol"], f"tunnel {found.tid}: took a message sent "
                       "to Tunnel ID 0 (accept_zero_tunnel_id)", found)
        return found

    def _zero_tid_done(self, rec):
        key = (rec.peer[0], rec.peer[1])
        tids = self.zero_tid.get(key)
        if tids is not None:
            tids.discard(rec.tid)
            if not tids:
                del self.zero_tid[key]

    def _not_opening(self, rec):
        tids = self.opening.get(rec.peer[0])
        if tids is not None:
            tids.discard(rec.tid)
            if not tids:
                del self.opening[rec.peer[0]]

    def _tie_break(self, theirs, addr, now):
        """RFC 2661 4.4.3: an SCCRQ (with Tie Breaker `theirs` or None) crossed one of
        ours to the same peer. Only the tunnels we are opening to that address are
        looked at (self.opening)."""
        for tid in sorted(self.opening.get(addr[0], ())):
            rec = self.tunnels.get(tid)
            # Compared even when ours carried none: a lone tie breaker wins (4.4.3).
            if rec is None or rec.t.state != "wait-ctl-reply" or rec.peer[1] != addr[1]:
                continue   # another host behind the same NAT address is not our peer
            winner = fsm.tie_breaker_winner(rec.t.tiebreaker, theirs)
            if winner in ("theirs", "both"):
                self.trace(TRACE_BITS["protocol"], f"tunnel {rec.tid}: lost the tie breaker",
                           rec)
                self.dirty.add(rec.tid)
                self.apply(rec, rec.t.discard(now), now)
            if winner in ("ours", "both"):
                return "drop"
        return None

    def match_peer_profile(self, host_name, ip):
        """The peer profile for a peer: by Host Name, else by address/netmask."""
        items = self.profiles["peer"].items
        if host_name and host_name != "default" and host_name in items:
            return host_name
        best, best_len = "default", -1
        if ip:
            try:
                addr = _ip_int(ip)
            except ValueError:
                addr = None
            for name in items:
                if name == "default":
                    continue
                pip = self.profiles["peer"].value(name, "peer_ipaddr")
                if not pip or addr is None:
                    continue
                mask = self.profiles["peer"].value(name, "netmask") or "255.255.255.255"
                m = _ip_int(mask)
                if addr & m == _ip_int(pip) & m and _mask_len(mask) > best_len:
                    best, best_len = name, _mask_len(mask)
        return best

    # ------------------------------------------------------------- fsm glue
    def _tunnel_config(self, params):
        """The fsm configuration for these parameters: one object shared by every
        tunnel configured alike (building and checking one per tunnel was a tenth of
        the setup time, and 256 bytes each: bench F2/F3)."""
        key = tuple(params.get(k) for k in _TUNNEL_CONFIG_KEYS) + (
            self.system["tunnel_establish_timeout"], self.system["session_establish_timeout"])
        conf = self._tconf.get(key)
        if conf is None:
            if len(self._tconf) > 1000:
                self._tconf.clear()   # bounded: per-tunnel settings could vary forever
            conf = self._tconf[key] = self._make_tunnel_config(params)
        return conf

    def _make_tunnel_config(self, params):
        secret = params.get("secret")
        return fsm.TunnelConfig(
            host_name=params["host_name"],
            secret=secret.encode() if secret else None,
            auth_mode=params["auth_mode"], hide_avps=bool(params["hide_avps"]),
            hide_setup=bool(params["hide_setup_avps"]),
            framing_caps=_CAPS[params["framing_caps"]],
            bearer_caps=_CAPS[params["bearer_caps"]],
            rx_window_size=params["rx_window_size"], tx_window_size=params["tx_window_size"],
            hello_timeout=params["hello_timeout"] * 1000,
            retry_timeout=params["retry_timeout"] * 1000,
            max_retry_timeout=params["max_retry_timeout"] * 1000,
            max_retries=params["max_retries"], use_tiebreaker=bool(params["use_tiebreaker"]),
            # Ack at the end of the loop pass: the fsm answers in the same pass, so a
            # reply still carries the ack, and a message nothing answers (SCCCN, ICCN,
            # HELLO) is acked at once instead of 100 ms later, which had capped setup
            # at one window of messages per 100 ms (bench/RESULTS.md).
            ack_delay=0,
            max_sessions=params["max_sessions"], vendor_name="l2tpd",
            establish_timeout=self.system["tunnel_establish_timeout"] * 1000,
            session_establish_timeout=self.system["session_establish_timeout"] * 1000)

    def _alloc_id(self, taken):
        for _ in range(1000):
            v = int.from_bytes(self.rng(2), "big")
            if v and v not in taken:
                return v
        raise RpcError(rpc_unix.ERR_TUNNEL_ID_ALLOC_FAILURE, "no free tunnel id")

    def _new_tunnel(self, params, peer, local, by_admin, now):
        maxt = self.system["max_tunnels"]
        # A peer's SCCRQ over the limit still gets a tunnel object, so that its
        # policy check can answer with StopCCN (accept_tunnel) instead of silence.
        # Peers' half-open tunnels have their own limit (max_half_open_tunnels): an
        # SCCRQ flood must not keep the administrator from creating tunnels either.
        if by_admin and maxt and self.active_tunnels() - len(self.half_open) >= maxt:
            self.counters["too_many_tunnels"] += 1
            raise RpcError(rpc_unix.ERR_TUNNEL_LIMIT_EXCEEDED,
                           f"max_tunnels: the limit of {maxt} tunnels is reached")
        tid = params.get("tunnel_id")
        if tid is None:
            tid = self._alloc_id(self.tunnels)
        elif tid in self.tunnels:
            raise RpcError.param(rpc_unix.ERR_TUNNEL_ALREADY_EXISTS, "tunnel_id",
                                 f"tunnel {tid} already exists", tid)
        rec = TunnelRec(tid, None, params, peer, local, by_admin, now)
        try:
            rec.t = fsm.Tunnel(tid, self._tunnel_config(params), self.rng,
                               log=self._tunnel_logger(rec), policy=self.policy)
        except avp.LocalError as e:
            # e.g. auth_mode=challenge without a secret, in a request or a profile
            raise RpcError(rpc_unix.ERR_PARAM_BAD_VALUE, f"tunnel parameters: {e.msg}")
        self.tunnels[tid] = rec
        if rec.name:
            self.tunnel_names[rec.name] = tid
        if params.get("accept_zero_tunnel_id"):
            self.zero_tid.setdefault((peer[0], peer[1]), set()).add(tid)
        if self.tracing(TRACE_BITS["system"], rec):
            self.log.info(f"tunnel {tid} created ({'local' if by_admin else 'remote'}, "
                          f"peer {peer[0]}:{peer[1]})")
        return rec

    def _tunnel_logger(self, rec):
        """The fsm's log for one tunnel, or None while its trace flags are off (a
        closure per tunnel costs memory, and formatting costs time: bench F2/F3)."""
        if not self.tracing(TRACE_BITS["protocol"] | TRACE_BITS["fsm"], rec):
            return None

        def log(msg):
            self.trace(TRACE_BITS["protocol"] | TRACE_BITS["fsm"], f"tunnel {rec.tid}: {msg}",
                       rec)
        return log

    def retrace(self):
        """Trace flags changed: give each tunnel's fsm and channel a logger or none."""
        for rec in self.tunnels.values():
            log = self._tunnel_logger(rec)
            rec.t.log = log
            rec.t.channel.set_log(log)

    def accept_tunnel(self, rec, msg):
        """Policy for an SCCRQ (we answer) or SCCRP (we asked): deny, limits, auth mode."""
        host = msg.get(avp.HOST_NAME)
        if not rec.created_by_admin:
            maxt = self.system["max_tunnels"]
            # Established tunnels only: half-open ones have their own limit, so a
            # flood of SCCRQs cannot keep a peer that completes its handshake out.
            if maxt and len(self.up) >= maxt:
                self.counters["too_many_tunnels"] += 1
                return (avp.STOPCCN_ERROR, avp.ERR_NO_RESOURCES,
                        f"the limit of {maxt} tunnels is reached")
            if self.system["deny_remote_tunnel_creates"]:
                return (avp.STOPCCN_NOT_AUTHORIZED, None, "remote tunnel creation is disabled")
            if self.system["drain_tunnels"]:
                return (avp.STOPCCN_SHUTTING_DOWN, None, "draining: no new tunnels")
        mode = rec.params.get("auth_mode")
        if mode in ("simple", "challenge"):
            name = self.match_peer_profile(host, rec.peer[0])
            if name == "default":
                return (avp.STOPCCN_NOT_AUTHORIZED, None,
                        f"no peer profile matches host {host!r} at {rec.peer[0]}")
        rec.params["peer_host_name"] = host
        return None

    def accept_session(self, rec, session_type, msg):
        if self.system["drain_tunnels"]:
            return (avp.CDN_NO_RESOURCES_TEMP, None, "draining: no new sessions")
        maxs = self.system["max_sessions"]
        if maxs and self.num_sessions >= maxs:
            self.counters["too_many_sessions"] += 1
            return (avp.CDN_NO_RESOURCES_TEMP, None, f"the limit of {maxs} sessions is reached")
        peer_prof = rec.params.get("peer_profile_name") or "default"
        roles = self.profiles["peer"].value(peer_prof, "lac_lns")
        if session_type == "lnic" and roles == "lac":
            return (avp.CDN_NO_RESOURCES_PERM, None, "we are not an LNS for this peer")
        if session_type == "laoc" and roles == "lns":
            return (avp.CDN_NO_RESOURCES_PERM, None, "we are not a LAC for this peer")
        return None

    def apply(self, rec, actions, now):
        """Map the fsm's actions to registries, the data path, events and plugins."""
        for a in actions:
            kind = a[0]
            try:
                handler = self._actions[kind]
            except KeyError:
                self.log.warning(f"tunnel {rec.tid}: unknown action {a!r}")
                continue
            handler(self, rec, a, now)

    def _act_tunnel_up(self, rec, a, now):
        self._half_open_done(rec)
        maxt = self.system["max_tunnels"]
        if not rec.created_by_admin and maxt and len(self.up) >= maxt:
            # Others completed first while this one was half-open: max_tunnels holds.
            self.counters["too_many_tunnels"] += 1
            self.apply(rec, rec.t.close(now, avp.STOPCCN_ERROR, avp.ERR_NO_RESOURCES,
                                        f"the limit of {maxt} tunnels is reached"), now)
            return
        self.up.add(rec.tid)
        if rec.peer_key in self.stale:
            self._replace_stale(rec, now)
        rec.was_up = True
        rec.persist_attempts = 0
        rec.down_reason = None
        p = rec.t.peer_tunnel_id
        if rec.peer_key is None:
            rec.peer_key = (rec.peer[0], rec.peer[1], p)
            self.by_peer.setdefault(rec.peer_key, rec.tid)
        self.dp.tunnel_up(rec.tid, p, self.sock.fileno() if self.sock else -1,
                          rec.local, rec.peer[0], self.port, rec.peer[1])
        self._not_opening(rec)
        self._zero_tid_done(rec)
        self.event("tunnel_up", rec)
        restore, rec.restore = rec.restore, None
        for sp in restore or ():
            self._restore_session(rec, sp, now)
        rec.idle_since = now
        self._arm_idle(rec)

    def _arm_idle(self, rec):
        """idle_timeout (OpenL2TP): clear a tunnel that stays without sessions. One
        timer per tunnel at most; it holds the tunnel's id, not its record, and reads
        the timeout when it fires (tunnel.modify may change it)."""
        if rec.idle_timer is not None:
            rec.idle_timer.cancelled = True
            rec.idle_timer = None
        idle = rec.params.get("idle_timeout") or 0
        if not idle or rec.sessions or rec.t.state != "established":
            return
        tid, born = rec.tid, rec.create_time

        def check(now):
            r = self.tunnels.get(tid)
            if r is None or r.create_time != born or r.idle_timer is not timer:
                return
            r.idle_timer = None
            secs = r.params.get("idle_timeout") or 0
            if not secs or r.sessions or r.t.state != "established":
                return
            if now - r.idle_since >= secs * 1000:
                self.dirty.add(tid)
                self.apply(r, r.t.close(now, avp.STOPCCN_GENERAL, None,
                                        f"idle for {secs} s without sessions"), now)
            else:
                self._arm_idle(r)
        timer = self.call_later(max(0, rec.idle_since + idle * 1000 - self.clock()), check)
        rec.idle_timer = timer

    def active_tunnels(self):
        """Tunnels that count for max_tunnels: not those lingering after StopCCN."""
        return len(self.tunnels) - len(self.closing)

    def _act_tunnel_down(self, rec, a, now):
        self.up.discard(rec.tid)
        self._half_open_done(rec)
        if not rec.was_up and rec.peer_key in self.stale:
            self._stale_alone(rec.peer_key)   # a restart's new tunnel failed
        rec.down_reason = a[2]
        self.closing.add(rec.tid)
        self._not_opening(rec)
        self.trace(TRACE_BITS["protocol"], f"tunnel {rec.tid} down: {a[2]}", rec)
        for srec in list(rec.sessions.values()):
            self._session_gone(rec, srec, srec.down_reason or a[2])
        self.dp.tunnel_down(rec.tid)
        result = a[3] if len(a) > 3 else None
        if result and result[0] == avp.STOPCCN_NOT_AUTHORIZED:
            self.counters["auth_fails"] += 1
        if not rec.was_up:
            self.counters["tunnel_setup_failures"] += 1
        self.event("tunnel_down", rec, reason=a[2], result=_result(result))

    def _act_tunnel_closed(self, rec, a, now):
        self.forget_tunnel(rec, now)

    def _act_session_created(self, rec, a, now):
        _, tid, sid, stype = a[:4]
        s = rec.t.sessions.get(sid)
        params = self._session_params({"session_type": stype}, rec)
        srec = SessionRec(rec, sid, params, False, now)
        rec.sessions[sid] = srec
        self.num_sessions += 1
        self.event("session_created", rec, srec)
        if stype == "laoc" and s is not None:
            # No real bearer to dial: the call is "connected" at once (section 5.3).
            self.apply(rec, rec.t.bearer_up(now, sid), now)

    def _act_session_up(self, rec, a, now):
        sid, info = a[2], a[3]
        srec = rec.sessions.get(sid)
        if srec is None:
            return
        srec.info = info   # the fsm built it for us: kept, not copied
        data = self._data_info(rec, srec, info)
        srec.ppp_expected = self.dp.name in ("userspace", "kernel") and not data["no_ppp"]
        self.event("session_up", rec, srec)
        # The ICCN/OCCN that brought the session up leaves before its first data
        # packet (our LCP request), else the peer drops data for a call it does not
        # know yet and PPP waits a restart interval.
        for d in rec.t.datagrams_to_send(now):
            self.send(rec, d)
        self.dp.session_up(rec.tid, sid, info.get("peer_session_id"), data)

    def _data_info(self, rec, srec, info):
        """What the data path needs for one session (kernel.py's session_up)."""
        p = srec.params
        stype = p.get("session_type") or info.get("session_type")
        pp = dict(self.profiles["ppp"].resolved(
            srec.ppp_profile_name if srec.ppp_profile_name in self.profiles["ppp"].items
            else "default"))
        # The tunnel's MTU (room for the L2TP/UDP/IP headers) caps the PPP profile's.
        pp["mtu"] = min(rec.params.get("mtu") or 1460, pp.get("mtu") or 1500)
        return {
            "role": "server" if stype in ("lnic", "lnoc") else "client",
            "session_type": stype,
            "peer_tunnel_id": rec.t.peer_tunnel_id,
            "peer_session_id": info.get("peer_session_id"),
            "sequencing_required": bool(info.get("sequencing_required")
                                        or p.get("sequencing_required")),
            "use_sequence_numbers": bool(p.get("use_sequence_numbers")),
            "reorder_timeout": p.get("reorder_timeout") or 0,
            "interface_name": p.get("interface_name") or rec.params.get("interface_name"),
            "mtu": pp["mtu"],
            "user_name": p.get("user_name"), "user_password": p.get("user_password"),
            "no_ppp": bool(p.get("no_ppp")),
            "ppp": pp,
            "ppp_proxy": self._ppp_proxy(rec, stype, info),
        }

    def _ppp_proxy(self, rec, stype, info):
        """The proxy LCP and authentication a LAC sent in its ICCN (RFC 2661 4.4.5),
        for our PPP engine to start from (ppp.PPPEngine.open), when the tunnel's
        allow_ppp_proxy is on and we are the LNS; else None (PPP starts afresh)."""
        proxy = {k: info[k] for k in fsm.PROXY_KEYS if info.get(k) is not None}
        if not proxy or stype not in ("lnic", "lnoc"):
            return None
        if not rec.params.get("allow_ppp_proxy"):
            self.trace(TRACE_BITS["protocol"], f"tunnel {rec.tid}: proxy LCP/authentication "
                       "ignored (allow_ppp_proxy is off): PPP negotiates afresh", rec)
            return None
        return proxy

    def _act_session_down(self, rec, a, now):
        sid, reason = a[2], a[3]
        srec = rec.sessions.get(sid)
        if srec is None:
            return
        srec.down_reason = reason
        self._session_gone(rec, srec, reason, _result(a[4] if len(a) > 4 else None))

    def _act_session_info(self, rec, a, now):
        srec = rec.sessions.get(a[2])
        if srec is not None:
            srec.info = dict(srec.info or (), **{a[3]: a[4]})
            self.event("session_info", rec, srec, info=a[3], value=_jsonable(a[4]))

    def _act_error(self, rec, a, now):
        self.counters["illegal_messages"] += 1
        self.trace(TRACE_BITS["protocol"], f"tunnel {rec.tid}: {a[2]}", rec)

    _actions = {"tunnel-up": _act_tunnel_up, "tunnel-down": _act_tunnel_down,
                "tunnel-closed": _act_tunnel_closed, "session-created": _act_session_created,
                "session-up": _act_session_up, "session-down": _act_session_down,
                "session-info": _act_session_info, "error": _act_error}

    def _session_gone(self, rec, srec, reason, result=None):
        if srec.sid not in rec.sessions:
            return
        # Set up means the L2TP call and, where the data path runs PPP, PPP too.
        up = srec.info is not None and (not srec.ppp_expected or bool(srec.info.get("ppp")))
        if (srec.created_by_admin and rec.params.get("persist") and not rec.deleted
                and rec.t.state in ("closing", "closed")):
            # The tunnel is going: a persistent one brings this session back when it
            # is re-created (its calls are cleared before its tunnel-down, fsm._down).
            rec.restore = (rec.restore or []) + [self.request_of(srec)]
        del rec.sessions[srec.sid]
        if srec.name and rec.session_names.get(srec.name) == srec.sid:
            del rec.session_names[srec.name]
        self.num_sessions -= 1
        if not up:
            self.counters["session_setup_failures"] += 1
        self.dp.session_down(rec.tid, srec.sid)
        self.event("session_down", rec, srec, reason=reason, result=result)
        self.event("session_deleted", rec, srec, reason=reason)
        if not rec.sessions:
            rec.idle_since = self.clock()
            self._arm_idle(rec)

    def forget_tunnel(self, rec, now, last_words=True):
        """The tunnel is gone for good (linger over): drop it from every registry,
        after sending what it still has to say (a final StopCCN) unless told not to
        (an SCCRQ that was not taken gets no answer, not even an ack)."""
        if self.tunnels.get(rec.tid) is not rec:
            return
        try:
            for d in rec.t.datagrams_to_send(now) if last_words and not rec.muted else ():
                self.send(rec, d)
        except Exception:
            self.log.exception(f"tunnel {rec.tid}: transmit")
        del self.tunnels[rec.tid]
        self.closing.discard(rec.tid)
        self.up.discard(rec.tid)
        self._half_open_done(rec)
        self._not_opening(rec)
        self._zero_tid_done(rec)
        if rec.peer_key and self.by_peer.get(rec.peer_key) == rec.tid:
            del self.by_peer[rec.peer_key]
        if rec.peer_key in self.stale:
            self._stale_alone(rec.peer_key)
        if rec.name and self.tunnel_names.get(rec.name) == rec.tid:
            del self.tunnel_names[rec.name]
        self.dirty.discard(rec.tid)
        self.event("tunnel_deleted", rec, reason=rec.down_reason)
        if (rec.created_by_admin and rec.params.get("persist") and not rec.deleted
                and not self.stopping):
            self._schedule_persist(rec, now)

    # ------------------------------------------------------------- persistence
    def _schedule_persist(self, rec, now):
        """Re-create a persistent tunnel after 1, 2, 4 ... s, capped by
        tunnel_persist_pend_timeout; its admin sessions come back when it is up."""
        n = rec.persist_attempts
        delay = min(1000 << min(n, 20), self.system["tunnel_persist_pend_timeout"] * 1000)
        name = rec.name
        create = self.request_of(rec)
        sessions = rec.restore
        self.trace(TRACE_BITS["system"], f"persistent tunnel {name or rec.tid}: re-create in "
                   f"{delay} ms (attempt {n + 1})", rec)

        def recreate(now):
            if name and self.persist_pending.pop(name, None) is None:
                return   # deleted, or made anew by the administrator, meanwhile
            try:
                new = self.create_tunnel(create, now)
            except RpcError as e:
                self.log.warning(f"persistent tunnel {name}: {e.message}")
                rec.persist_attempts = n + 1
                self._schedule_persist(rec, self.clock())
                return
            new.persist_attempts = n + 1
            new.restore = sessions
        timer = self.call_later(delay, recreate)
        if name:
            # tunnel get/list/delete and config save still know it by its name
            self.persist_pending[name] = {"create": create, "restore": sessions,
                                          "timer": timer, "at": now + delay,
                                          "attempt": n + 1, "reason": rec.down_reason}

    def _keys(self, names):
        """The sorted tuple of `names`, one object per distinct set: ten thousand
        objects created alike share it (their values live in their Params)."""
        t = tuple(sorted(set(names)))
        return self._keysets.setdefault(t, t)

    def request_of(self, rec):
        """What the administrator asked for when creating `rec` (a tunnel or session
        record), with today's values, without the ids that tie it to this incarnation."""
        return {k: rec.params.get(k) for k in rec.create_keys or ()
                if k not in ("tunnel_id", "tunnel_name", "session_id")
                or (k == "tunnel_name" and isinstance(rec, TunnelRec))}

    def admin_session_params(self, rec):
        """The create requests of a tunnel's admin sessions (for config save and for
        a persistent tunnel's re-creation), without the tunnel's own ids."""
        out = [self.request_of(s) for s in rec.sessions.values()
               if s.created_by_admin]
        return out + [dict(p) for p in rec.restore or ()]

    def _restore_session(self, rec, create, now):
        try:
            self._create_session_in(rec, dict(create), now)
        except RpcError as e:
            self.log.warning(f"tunnel {rec.tid}: cannot restore session: {e.message}")

    # ------------------------------------------------------------- timers
    class Timer:
        def __init__(self, fn):
            self.fn = fn
            self.cancelled = False

    def call_later(self, delay_ms, fn):
        t = Daemon.Timer(fn)
        self.seq += 1
        heapq.heappush(self.heap, (self.clock() + delay_ms, self.seq, t))
        return t

    def _reschedule(self, rec):
        d = rec.t.next_deadline()
        if d is not None and d != rec.scheduled:
            self.seq += 1
            heapq.heappush(self.heap, (d, self.seq, rec.tid))
        rec.scheduled = d

    def run_timers(self, now):
        heap = self.heap
        while heap and heap[0][0] <= now:
            deadline, _, key = heapq.heappop(heap)
            if isinstance(key, Daemon.Timer):
                if not key.cancelled:
                    try:
                        key.fn(now)
                    except Exception:
                        self.log.exception("timer")
                continue
            rec = self.tunnels.get(key)
            if rec is None or rec.scheduled != deadline:
                continue  # lazily cancelled
            rec.scheduled = None
            try:
                actions = rec.t.on_timer(now)
                self.dirty.add(rec.tid)
                self.apply(rec, actions, now)
            except Exception:
                self.log.exception(f"tunnel {key}: timer")

    def flush(self, now):
        dirty = self.dirty
        while dirty:
            tid = dirty.pop()
            rec = self.tunnels.get(tid)
            if rec is None:
                continue
            try:
                for d in rec.t.datagrams_to_send(now):
                    self.send(rec, d)
            except Exception:
                self.log.exception(f"tunnel {tid}: transmit")
            self._reschedule(rec)

    def next_timeout(self, now):
        best = self.heap[0][0] if self.heap else None
        for d in (self.server.next_deadline() if self.server else None,
                  self.dp.next_deadline()):
            if d is not None and (best is None or d < best):
                best = d
        if best is None:
            return MAX_WAIT
        # Capped: a deadline days away (hello_timeout=3000000) would overflow select().
        return min(max(0, best - now) / 1000.0, MAX_WAIT)

    # ------------------------------------------------------------- the loop
    def run(self):
        self.running = True
        while self.running:
            now = self.clock()
            timeout = self.next_timeout(now)
            if self.dirty:
                timeout = 0
            if self.stopping is not None:
                timeout = 0.05 if timeout is None else min(timeout, 0.05)
            try:
                ready = self.sel.select(timeout)
            except (InterruptedError, OverflowError, ValueError) as e:
                if not isinstance(e, InterruptedError):
                    self.log.error(f"select({timeout}): {e}")
                ready = []
            now = self.clock()
            for key, ev in ready:
                obj = self.fds.get(key.fd)
                if obj is not None and ev & selectors.EVENT_READ:
                    obj.on_readable(now)
                obj = self.fds.get(key.fd)
                if obj is not None and ev & selectors.EVENT_WRITE:
                    obj.on_writable(now)
            self.run_timers(now)
            d = self.dp.next_deadline()
            if d is not None and d <= now:
                try:
                    self.dp.on_timer(now)
                except Exception:
                    self.log.exception("data path timer")
            if self.server:
                self.server.on_timer(now)
            self.flush(now)
            self._handle_signals(now)
            if self.stopping is not None:
                self._check_stopped(now)

    def on_signal(self, signum, frame):
        self.pending_signals.append(signum)
        if self._wake_w is not None:
            try:
                self._wake_w.send(b"\0")
            except OSError:
                pass

    def _handle_signals(self, now):
        while self.pending_signals:
            sig = self.pending_signals.pop(0)
            if sig in (signal.SIGTERM, signal.SIGINT):
                self.begin_stop(now)
            elif sig == signal.SIGUSR1:
                self.log_status()
            elif sig == signal.SIGHUP and self.config_file:
                try:
                    self.apply_config_file(self.config_file)
                    self.log.info(f"re-applied {self.config_file}")
                except rpc_unix.ConfigError as e:
                    self.log.error(f"{e}; keeping the previous configuration")
                except Exception:
                    self.log.exception(f"{self.config_file}: SIGHUP failed; keeping the "
                                       "previous configuration")

    def log_status(self):
        """SIGUSR1: a summary of the daemon to the log (info): the data path, tunnels
        and sessions by state, IP pools, and the counters that are not zero."""
        states = {}
        for rec in self.tunnels.values():
            states[rec.t.state] = states.get(rec.t.state, 0) + 1
        # Asked for: shown whatever -L says.
        level = max(logging.INFO, self.log.getEffectiveLevel())

        def log(text):
            self.log.log(level, text)
        log(f"status: l2tpd {VERSION}, data path {self.dp.name}, "
            f"{len(self.tunnels)} tunnel(s) "
            + ("(" + ", ".join(f"{n} {st}" for st, n in sorted(states.items())) + ")"
               if states else "")
            + f", {self.num_sessions} session(s), {len(self.half_open)} half-open")
        for name in sorted(self.pools):
            d = self.pools[name].to_dict()
            log(f"status: IP pool {name}: {d.get('num_avail')} free of "
                f"{d.get('num_addrs', '?')}")
        busy = {k: v for k, v in self.counters.items() if v}
        log("status: counters: " + (", ".join(f"{k}={v}" for k, v in sorted(busy.items()))
                                    or "all zero"))

    def begin_stop(self, now, grace_ms=3000):
        """StopCCN to every peer, then wait (bounded) until they are acknowledged."""
        if self.stopping is not None:
            return
        self.log.info("stopping: clearing all tunnels")
        self.stopping = now + grace_ms
        for rec in list(self.tunnels.values()):
            rec.deleted = True
            if rec.t.state not in ("closing", "closed"):
                self.apply(rec, rec.t.close(now, avp.STOPCCN_SHUTTING_DOWN, None,
                                            "l2tpd is shutting down"), now)
                self.dirty.add(rec.tid)

    def _check_stopped(self, now):
        # Done when every StopCCN has been acknowledged (not merely sent).
        pending = [r for r in self.tunnels.values()
                   if r.t.channel.unacked and r.t.channel.state == "closing"]
        if not pending or now >= self.stopping:
            self.running = False

    def close(self):
        if self.server:
            self.server.close()
            self.server = None
        if self.sock:
            self._watch(self.sock.fileno(), None, 0)
            self.sock.close()
            self.sock = None
        for s in (self._wake_r, self._wake_w):
            if s is not None:
                s.close()
        self.dp.close()

    # ------------------------------------------------------------- events / plugins
    def event(self, name, rec=None, srec=None, **extra):
        """Tell the log (ups, downs and failures, see _log_event), subscribers,
        plugin hooks and the api trace; nothing is built when none of them listens
        (three events per tunnel: bench F2)."""
        if name in _LOGGED_EVENTS:
            self._log_event(name, rec, srec, extra)
        hooks = self._hooks.get(name)
        subs = []
        if self.server is not None:
            for conn in self.server.connections.values():
                want = conn.subscribed
                if want and (want is True or name in want):
                    subs.append(conn)
        if not hooks and not subs and not self.tracing(TRACE_BITS["api"], rec, srec):
            return
        ev = {"event": name, "time": time.time()}
        if rec is not None:
            ev.update(tunnel_id=rec.tid, tunnel_name=rec.name,
                      peer_tunnel_id=rec.t.peer_tunnel_id,
                      peer_addr=rec.peer[0], peer_port=rec.peer[1])
        if srec is not None:
            ev.update(session_id=srec.sid, session_name=srec.name,
                      peer_session_id=(srec.info or {}).get("peer_session_id"),
                      session_type=srec.params.get("session_type"))
        for k, v in extra.items():
            if v is not None:
                ev[k] = v
        self.trace(TRACE_BITS["api"], f"event {ev}", rec, srec)
        for conn in subs:
            self.server.notify(conn, "event", ev)
        for mod, hook in hooks or ():
            try:
                hook(self, dict(ev))
            except Exception:
                self.log.exception(f"plugin {getattr(mod, '__name__', mod)}: hook {name} "
                                   "raised; ignored")

    # ------------------------------------------------------------- operator's log
    @staticmethod
    def _tname(rec):
        return f"tunnel {rec.tid}" + (f" ({rec.name})" if rec.name else "")

    @staticmethod
    def _sname(rec, srec):
        return f"session {rec.tid}/{srec.sid}" + (f" ({srec.name})" if srec.name else "")

    @staticmethod
    def _user(srec):
        ppp = (srec.info or {}).get("ppp") or {}
        return ppp.get("user") or srec.user or srec.params.get("user_name")

    def _log_event(self, name, rec, srec, extra):
        """One line at level info for every tunnel and session that comes up or goes
        down, warning for one that fails before it was up (refused, timed out,
        authentication): peer, ids, names, user, reason. Failures of peers' tunnels
        and calls are rate-limited (_log_limited): a flood must not flood the log."""
        peer = f"{rec.peer[0]}:{rec.peer[1]}"
        reason = extra.get("reason")
        if name == "tunnel_up":
            host = rec.t.peer.get("host_name")
            self.log.info(f"{self._tname(rec)} up: peer {peer}"
                          + (f" ({host})" if host else "")
                          + f", peer tunnel id {rec.t.peer_tunnel_id}")
        elif name == "tunnel_down":
            if rec.was_up:
                # Cleared on request (result 1) or at shutdown (6): info; lost (the
                # peer timed out, an error, a restart): warning.
                code = (extra.get("result") or {}).get("result_code")
                level = logging.INFO if code in (1, 6) else logging.WARNING
                self.log.log(level, f"{self._tname(rec)} down: peer {peer}: {reason}")
            else:
                self._log_limited(f"{self._tname(rec)} with {peer} failed: {reason}",
                                  rec.created_by_admin)
        elif name == "session_up":
            self.log.info(f"{self._sname(rec, srec)} up: {srec.params.get('session_type')}"
                          f", peer {peer}, peer session id "
                          f"{(srec.info or {}).get('peer_session_id')}")
        elif name == "session_ppp_up":
            self.log.info(f"{self._sname(rec, srec)}: PPP up: user {self._user(srec)!r}, "
                          f"{extra.get('local_ip')} <-> {extra.get('peer_ip')}")
        elif name == "session_down":
            user = self._user(srec)
            who = f", user {user!r}" if user else ""
            if srec.info is not None and (srec.info.get("ppp") or not srec.ppp_expected):
                # Hung up (CDN result 1 or 3) or gone with its tunnel (whose line says
                # why): info; any other end of an established call: warning.
                res = extra.get("result")
                code = (res.get("result_code") if isinstance(res, dict)
                        else res[0] if res else None)
                ok = code in (1, 3) or (code is None and reason
                                        and reason.startswith("tunnel cleared"))
                self.log.log(logging.INFO if ok else logging.WARNING,
                             f"{self._sname(rec, srec)} down{who}: {reason}")
            else:
                self._log_limited(f"{self._sname(rec, srec)} with {peer} failed{who}: "
                                  f"{reason}", srec.created_by_admin)

    def _log_limited(self, text, ours=False):
        """A warning; those about peers' objects at most 20 a second (burst 100), the
        rest counted and summed up in the next line that gets through."""
        if ours:
            self.log.warning(text)
            return
        now = self.clock()
        self._log_tokens = min(100.0, self._log_tokens + (now - self._log_at) / 50.0)
        self._log_at = now
        if self._log_tokens < 1:
            self._log_dropped += 1
            return
        self._log_tokens -= 1
        if self._log_dropped:
            text += f" ({self._log_dropped} similar lines suppressed)"
            self._log_dropped = 0
        self.log.warning(text)

    def load_plugin(self, path):
        name = "l2tpd_plugin_" + os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ValueError(f"{path}: not a Python file")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        init = getattr(mod, "init", None)
        if init is not None:
            init(self)
        self.plugins.append(mod)
        for name in EVENT_NAMES:
            hook = getattr(mod, name, None)
            if callable(hook):
                self._hooks.setdefault(name, []).append((mod, hook))
        return mod

    # ------------------------------------------------------------- lookups
    @staticmethod
    def _find(what, by_id, by_name, params, id_key, name_key, code, where=""):
        """An object addressed by id or by name (OpenL2TP's convention); both given
        must agree. `what` names it in errors ("tunnel", "session")."""
        oid, name = params.get(id_key), params.get(name_key)
        if oid is None and name is None:
            raise RpcError.param(rpc_unix.ERR_PARAM_MISSING, id_key,
                                 f"give {id_key} or {name_key}")
        if name is not None:
            found = by_name.get(name)
            if found is None:
                raise RpcError.param(code, name_key, f"no {what} named {name!r}{where}", name)
            if oid is not None and oid != found:
                raise RpcError.param(rpc_unix.ERR_PARAM_CONFLICT, id_key,
                                     f"{what} {name!r} has id {found}, not {oid}", oid)
            oid = found
        obj = by_id.get(oid)
        if obj is None:
            raise RpcError.param(code, id_key, f"no {what} with id {oid}{where}", oid)
        return obj

    def find_tunnel(self, params):
        return self._find("tunnel", self.tunnels, self.tunnel_names, params, "tunnel_id",
                          "tunnel_name", rpc_unix.ERR_TUNNEL_NOT_FOUND)

    def find_session(self, params):
        rec = self.find_tunnel(params)
        srec = self._find("session", rec.sessions, rec.session_names, params, "session_id",
                          "session_name", rpc_unix.ERR_SESSION_NOT_FOUND,
                          f" in tunnel {rec.tid}")
        return rec, srec

    # ------------------------------------------------------------- tunnels
    def create_tunnel(self, req, now, validate_only=False):
        if self.system["deny_local_tunnel_creates"]:
            raise RpcError(rpc_unix.ERR_TUNNEL_CREATE_ADMIN_DISABLED,
                           "deny_local_tunnel_creates is set: tunnel create refused")
        pname = req.get("profile_name")
        dest = req.get("dest_ipaddr")
        peer_prof = req.get("peer_profile_name") or self.match_peer_profile(None, dest)
        if pname is None:
            pname = self.profiles["peer"].value(peer_prof, "tunnel_profile_name") or "default"
            if pname not in self.profiles["tunnel"].items:
                pname = "default"
        elif pname not in self.profiles["tunnel"].items:
            raise RpcError.param(rpc_unix.ERR_TUNNEL_PROFILE_NOT_FOUND, "profile_name",
                                 f"no tunnel profile named {pname!r}", pname)
        params = Params(self.profiles["tunnel"].resolved(pname), req)
        params["profile_name"] = pname
        if params.get("peer_profile_name") is None:
            params["peer_profile_name"] = peer_prof
        if not params.get("dest_ipaddr"):
            raise RpcError.param(rpc_unix.ERR_PEER_ADDRESS_MISSING, "dest_ipaddr",
                                 "a tunnel needs the peer's address")
        a = _ip_int(params["dest_ipaddr"])
        if a == 0 or a == 0xFFFFFFFF or 0xE0000000 <= a:
            # 0.0.0.0 (ourselves), broadcast, multicast and class E: no L2TP peer there
            raise RpcError.param(rpc_unix.ERR_PARAM_BAD_VALUE, "dest_ipaddr",
                                 "not a unicast address", params["dest_ipaddr"])
        if params.get("hide_avps") and not params.get("secret"):
            raise RpcError.param(rpc_unix.ERR_TUNNEL_HIDE_AVPS_NEEDS_SECRET, "hide_avps",
                                 "hiding AVPs needs a secret", True)
        if params.get("auth_mode") == "challenge" and not params.get("secret"):
            raise RpcError.param(rpc_unix.ERR_PARAM_BAD_VALUE, "auth_mode",
                                 "challenge needs a secret", "challenge")
        port = params.get("our_udp_port")
        if port is not None and port != self.port:
            raise RpcError.param(rpc_unix.ERR_NOT_SUPPORTED, "our_udp_port",
                                 f"every tunnel uses the daemon's UDP port {self.port}", port)
        name = params.get("tunnel_name")
        if name is not None and name in self.tunnel_names:
            raise RpcError.param(rpc_unix.ERR_TUNNEL_ALREADY_EXISTS, "tunnel_name",
                                 f"a tunnel named {name!r} already exists", name)
        if name is not None and not validate_only and name in self.persist_pending:
            self.persist_pending.pop(name)["timer"].cancelled = True   # this one wins
        self._check_profile_refs(params, ("session_profile_name", "ppp_profile_name"))
        if validate_only:
            return None
        local = params.get("src_ipaddr")
        if local is None and self.listen_addr not in ("0.0.0.0", ""):
            local = self.listen_addr
        rec = self._new_tunnel(params, (params["dest_ipaddr"], params["peer_udp_port"]),
                               local, True, now)
        rec.create_keys = self._keys(req)
        self.opening.setdefault(rec.peer[0], set()).add(rec.tid)
        self.event("tunnel_created", rec)
        self.dirty.add(rec.tid)
        self.apply(rec, rec.t.open(now), now)
        return rec

    def _check_profile_refs(self, params, names):
        for p in names:
            v = params.get(p)
            kind = p.split("_profile")[0]
            if v is not None and v not in self.profiles[kind].items:
                code = {"session": rpc_unix.ERR_SESSION_PROFILE_NOT_FOUND,
                        "ppp": rpc_unix.ERR_PPP_PROFILE_NOT_FOUND,
                        "tunnel": rpc_unix.ERR_TUNNEL_PROFILE_NOT_FOUND,
                        "peer": rpc_unix.ERR_PEER_PROFILE_NOT_FOUND}[kind]
                raise RpcError.param(code, p, f"no {kind} profile named {v!r}", v)

    def wall_time(self, ms):
        """A loop time (monotonic ms) as an ISO UTC timestamp."""
        return _iso(self.start_time + (ms - self._t0) / 1000.0)

    def tunnel_info(self, rec, now):
        t = rec.t
        p = rec.params
        out = {k: p.get(k) for k in TUNNEL_PROFILE if k != "secret"}
        out.update(
            tunnel_id=rec.tid, tunnel_name=rec.name, peer_tunnel_id=t.peer_tunnel_id,
            state=t.state, created_by_admin=rec.created_by_admin,
            create_time=self.wall_time(rec.create_time),
            dest_ipaddr=rec.peer[0], peer_udp_port=rec.peer[1],
            src_ipaddr=rec.local, our_udp_port=self.port,
            profile_name=p.get("profile_name"), persist=bool(p.get("persist")),
            secret_set=bool(p.get("secret")), interface_name=p.get("interface_name"),
            num_sessions=len(rec.sessions), session_ids=sorted(rec.sessions),
            peer=_peer_words(t.peer), result=_result(t.result),
            down_reason=rec.down_reason,
            actual_tx_window_size=t.channel.actual_tx_window_size,
            stats=t.channel.stats)
        return out

    # ------------------------------------------------------------- sessions
    def _session_params(self, req, rec):
        """Resolve a session's parameters by OpenL2TP's inheritance order."""
        tprof = rec.params.get("session_profile_name")
        peer_prof = rec.params.get("peer_profile_name") or "default"
        sprof = req.get("profile_name") or tprof or \
            self.profiles["peer"].value(peer_prof, "session_profile_name") or "default"
        if sprof not in self.profiles["session"].items:
            if req.get("profile_name"):
                raise RpcError.param(rpc_unix.ERR_SESSION_PROFILE_NOT_FOUND, "profile_name",
                                     f"no session profile named {sprof!r}", sprof)
            sprof = "default"
        params = Params(self.profiles["session"].resolved(sprof), req)
        params["profile_name"] = sprof
        params["ppp_profile_name"] = (req.get("ppp_profile_name")
                                      or self.profiles["session"].value(sprof,
                                                                        "ppp_profile_name")
                                      or rec.params.get("ppp_profile_name")
                                      or self.profiles["peer"].value(peer_prof,
                                                                     "ppp_profile_name")
                                      or "default")
        return params

    def create_session(self, req, now, validate_only=False):
        rec = self.find_tunnel(req)
        return self._create_session_in(rec, req, now, validate_only=validate_only)

    def _create_session_in(self, rec, req, now, validate_only=False):
        if rec.t.state in ("closing", "closed"):
            raise RpcError(rpc_unix.ERR_BAD_STATE,
                           f"tunnel {rec.tid} is {rec.t.state}: no new sessions")
        params = self._session_params(req, rec)
        stype = params.get("session_type") or ("laic" if rec.created_by_admin else "lnoc")
        if stype not in ("laic", "lnoc"):
            raise RpcError.param(rpc_unix.ERR_SESSION_TYPE_ILLEGAL_FOR_TUNNEL, "session_type",
                                 f"{stype} calls are created by the peer; create laic (as "
                                 "LAC) or lnoc (as LNS)", stype)
        roles = self.profiles["peer"].value(rec.params.get("peer_profile_name") or "default",
                                            "lac_lns")
        if (stype == "laic" and roles == "lns") or (stype == "lnoc" and roles == "lac"):
            raise RpcError.param(rpc_unix.ERR_SESSION_TYPE_ILLEGAL_FOR_TUNNEL, "session_type",
                                 f"peer profile allows only {roles} with this peer", stype)
        name = params.get("session_name")
        if name is not None and name in rec.session_names:
            raise RpcError.param(rpc_unix.ERR_SESSION_ALREADY_EXISTS, "session_name",
                                 f"a session named {name!r} already exists in tunnel "
                                 f"{rec.tid}", name)
        sid = params.get("session_id")
        if sid is not None and sid in rec.t.sessions:
            raise RpcError.param(rpc_unix.ERR_SESSION_ALREADY_EXISTS, "session_id",
                                 f"session {sid} already exists in tunnel {rec.tid}", sid)
        maxs = self.system["max_sessions"]
        if maxs and self.num_sessions >= maxs:
            self.counters["too_many_sessions"] += 1
            raise RpcError(rpc_unix.ERR_SESSION_LIMIT_EXCEEDED,
                           f"max_sessions: the limit of {maxs} sessions is reached")
        tmax = rec.params.get("max_sessions")
        if tmax and len(rec.sessions) >= tmax:
            raise RpcError(rpc_unix.ERR_TUNNEL_TOO_MANY_SESSIONS,
                           f"tunnel {rec.tid} has its maximum of {tmax} sessions")
        self._check_profile_refs(params, ("ppp_profile_name",))
        _no_ppp_proxy(req)
        call = _call_params(params, stype)
        try:
            if validate_only:   # a config file's check pass: what needs no tunnel
                fsm.check_call(stype, call)
                return None
            params["session_type"] = stype
            s, actions = rec.t.session_open(now, stype, call)
        except fsm.CallError as e:
            raise _call_error(e)
        except avp.LocalError as e:
            raise RpcError(rpc_unix.ERR_PARAM_BAD_VALUE, f"session parameters: {e.msg}")
        srec = SessionRec(rec, s.session_id, params, True, now)
        srec.create_keys = self._keys(req)
        rec.sessions[s.session_id] = srec
        if name:
            rec.session_names[name] = s.session_id
        self.num_sessions += 1
        self.event("session_created", rec, srec)
        self.dirty.add(rec.tid)
        self.apply(rec, actions, now)
        return srec

    def session_info(self, rec, srec):
        s = rec.t.sessions.get(srec.sid)
        p = srec.params
        out = {k: p.get(k) for k in SESSION_PROFILE}
        out.update(
            tunnel_id=rec.tid, tunnel_name=rec.name, session_id=srec.sid,
            session_name=srec.name,
            peer_session_id=s.peer_session_id if s is not None else None,
            session_type=p.get("session_type"),
            state=s.state if s is not None else "closed",
            created_by_admin=srec.created_by_admin,
            create_time=self.wall_time(srec.create_time),
            profile_name=p.get("profile_name"), ppp_profile_name=srec.ppp_profile_name,
            interface_name=p.get("interface_name"), user_name=self._user(srec),
            peer=_jsonable(s.peer if s is not None else {}),
            result=_result(s.result if s is not None else None))
        # The data path's counters under stats, its PPP state under ppp.
        stats = self.dp.stats(rec.tid, srec.sid)
        ppp_info = {k[4:]: stats.pop(k) for k in list(stats) if k.startswith("ppp_")}
        for k in ("interface_name", "data_sequencing"):   # state, not counters
            if k in stats:
                v = stats.pop(k)
                if v is not None or out.get(k) is None:
                    out[k] = v
        out["stats"] = stats
        if ppp_info:
            out["ppp"] = ppp_info
        return out

    # ------------------------------------------------------------- RPC
    def handle_rpc(self, method, params, conn):
        fn = self.methods.get(method)
        if fn is None:
            raise RpcError(rpc_unix.ERR_METHOD_NOT_FOUND, f"unknown method {method!r}")
        spec = self.describe()[method]["params"]
        typed = rpc_unix.coerce_params(method, params, spec)
        for k, v in typed.items():
            if isinstance(v, str):
                if not v and k.endswith("_name"):
                    raise RpcError.param(rpc_unix.ERR_PARAM_BAD_VALUE, k,
                                         "must not be empty", v)
                try:
                    v.encode("utf-8")
                except UnicodeError:
                    raise RpcError.param(rpc_unix.ERR_PARAM_BAD_VALUE, k,
                                         "is not valid text (UTF-8)", repr(v))
                bad = _control_char(v)
                if bad is not None:
                    # A newline, NUL or other control character would break the config
                    # file grammar (config save) and the logs.
                    raise RpcError.param(rpc_unix.ERR_PARAM_BAD_VALUE, k,
                                         f"contains the control character {bad!r}")
        self.trace(TRACE_BITS["api"], f"rpc {method} {sorted(typed)}")
        return fn(self, typed, conn)

    # -- system
    def m_system_get(self, p, conn):
        out = dict(self.system)
        out.update(
            version=VERSION, udp_port=self.port, listen_addr=self.listen_addr,
            dataplane=self.dp.name, dataplane_reason=getattr(self.dp, "reason", None),
            socket=self.sock_path, pid=os.getpid(),
            num_ippools=len(self.pools),
            num_tunnels=len(self.tunnels), num_sessions=self.num_sessions,
            uptime=int(time.time() - self.start_time),
            udp_rcvbuf=self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            if self.sock else None,
            stats=dict(self.counters),
            rpc=dict(self.server.stats) if self.server is not None else None,
            messages={avp.MSG_NAMES.get(k, str(k)): {"rx": v[0], "tx": v[1], "rx_bad": v[2]}
                      for k, v in sorted(self.msg_counters.items(),
                                        key=lambda kv: (type(kv[0]) is str, str(kv[0]).zfill(5)))})
        return out

    def m_system_modify(self, p, conn):
        if p.pop("reset_statistics", False):
            self.counters = dict.fromkeys(SYSTEM_COUNTERS, 0)
            self.msg_counters = {}
        self.system.update(p)
        if "trace_flags" in p:
            self.retrace()
        return self.m_system_get({}, conn)

    # -- profiles (one implementation for the four kinds)
    def _profile_method(kind, verb):
        def m(self, p, conn):
            return self.profile_op(kind, verb, p)
        m.__name__ = f"m_{kind}_profile_{verb}"
        return m

    def profile_op(self, kind, verb, p):
        profs = self.profiles[kind]
        if verb == "list":
            return sorted(profs.items)
        if verb != "get":
            profs.changed()
        name = p.pop("profile_name", None)
        if not name:
            raise RpcError.param(rpc_unix.ERR_PROFILE_NAME_MISSING, "profile_name",
                                 "a profile name is required")
        if verb == "create":
            if name in profs.items:
                raise RpcError.param(rpc_unix.ERR_PROFILE_ALREADY_EXISTS, "profile_name",
                                     f"{kind} profile {name!r} already exists", name)
            if len(profs.items) >= MAX_PROFILES:   # memory stays bounded
                raise RpcError.param(rpc_unix.ERR_PARAM_BAD_VALUE, "profile_name",
                                     f"{MAX_PROFILES} {kind} profiles exist already")
            self._check_profile_values(kind, p, name)
            profs.items[name] = dict(p)
            self.event("profile_created", kind=kind, profile_name=name)
            return {"profile_name": name}
        prof = profs.items.get(name)
        if prof is None:
            code = {"tunnel": rpc_unix.ERR_TUNNEL_PROFILE_NOT_FOUND,
                    "session": rpc_unix.ERR_SESSION_PROFILE_NOT_FOUND,
                    "ppp": rpc_unix.ERR_PPP_PROFILE_NOT_FOUND,
                    "peer": rpc_unix.ERR_PEER_PROFILE_NOT_FOUND}[kind]
            raise RpcError.param(code, "profile_name", f"no {kind} profile named {name!r}",
                                 name)
        if verb == "get":
            out = dict(profs.resolved(name))
            out["profile_name"] = name
            out["explicit"] = sorted(prof)
            if kind == "tunnel":
                out["secret"] = "********" if out.get("secret") else None
            return out
        if verb == "modify":
            self._check_profile_values(kind, p, name)
            prof.update(p)
            return {"profile_name": name}
        if verb == "unset":
            for k, v in p.items():
                if v:
                    prof.pop(k, None)
            return {"profile_name": name}
        if verb == "delete":
            if name == "default":
                raise RpcError.param(rpc_unix.ERR_NOT_PERMITTED, "profile_name",
                                     f"the default {kind} profile cannot be deleted", name)
            users = self._profile_users(kind, name)
            if users:
                raise RpcError.param(rpc_unix.ERR_PROFILE_IN_USE, "profile_name",
                                     f"{kind} profile {name!r} is used by "
                                     + ", ".join(users[:5])
                                     + (f" and {len(users) - 5} more" if len(users) > 5
                                        else ""), name)
            del profs.items[name]
            self.event("profile_deleted", kind=kind, profile_name=name)
            return {"profile_name": name}
        raise RpcError(rpc_unix.ERR_METHOD_NOT_FOUND, f"unknown verb {verb}")

    # Who may name a profile of each kind: (tunnel params, session params, profiles).
    _PROFILE_REFS = {
        "tunnel": (("profile_name",), (), (("peer", "tunnel_profile_name"),)),
        "session": (("session_profile_name",), ("profile_name",),
                    (("tunnel", "session_profile_name"), ("peer", "session_profile_name"))),
        "ppp": (("ppp_profile_name",), ("ppp_profile_name",),
                (("tunnel", "ppp_profile_name"), ("session", "ppp_profile_name"),
                 ("peer", "ppp_profile_name"))),
        "peer": (("peer_profile_name",), (), (("tunnel", "peer_profile_name"),)),
    }

    def _profile_users(self, kind, name):
        """Who names profile `name` of `kind`: tunnels, sessions and other profiles."""
        t_refs, s_refs, p_refs = self._PROFILE_REFS[kind]
        users = []
        for rec in self.tunnels.values():
            if any(rec.params.get(r) == name for r in t_refs):
                users.append(f"tunnel {rec.tid}")
            for srec in rec.sessions.values():
                if any(srec.params.get(r) == name for r in s_refs):
                    users.append(f"session {rec.tid}/{srec.sid}")
        for other, ref in p_refs:
            for pname, vals in self.profiles[other].items.items():
                if vals.get(ref) == name:
                    users.append(f"{other} profile {pname}")
        return users

    def _check_profile_values(self, kind, p, name=None):
        """Checks on the profile as it will be (this request over what it has)."""
        if kind == "session":
            _no_ppp_proxy(p)
        if kind == "ppp" and p.get("ip_pool_name") and p["ip_pool_name"] not in self.pools:
            raise RpcError.param(rpc_unix.ERR_IPPOOL_NOT_FOUND, "ip_pool_name",
                                 f"no IP pool named {p['ip_pool_name']!r}", p["ip_pool_name"])
        if kind == "ppp" and p.get("secrets_file"):
            # Read as root for every login: only from the configuration directory or
            # pppd's own, never a file of the caller's choosing.
            dirs = (self.config_dir,) + SECRETS_DIRS
            if "\0" in p["secrets_file"] or _inside(p["secrets_file"], dirs) is None:
                raise RpcError.param(rpc_unix.ERR_NOT_PERMITTED, "secrets_file",
                                     f"must lie in {' or '.join(dirs)}", p["secrets_file"])
            if os.path.exists(p["secrets_file"]) and not os.path.isfile(p["secrets_file"]):
                raise RpcError.param(rpc_unix.ERR_PARAM_BAD_VALUE, "secrets_file",
                                     "not a regular file", p["secrets_file"])
        if kind != "tunnel":
            return
        profs = self.profiles["tunnel"]

        def val(k):
            return p[k] if k in p else profs.value(name, k)
        if val("hide_avps") and not val("secret"):
            raise RpcError.param(rpc_unix.ERR_TUNNEL_HIDE_AVPS_NEEDS_SECRET, "hide_avps",
                                 "hiding AVPs needs a secret", True)
        if val("auth_mode") == "challenge" and not val("secret"):
            raise RpcError.param(rpc_unix.ERR_PARAM_BAD_VALUE, "auth_mode",
                                 "challenge needs a secret", "challenge")

    # -- tunnels
    def m_tunnel_create(self, p, conn):
        rec = self.create_tunnel(p, self.clock())
        return {"tunnel_id": rec.tid, "tunnel_name": rec.name}

    def _pending(self, p):
        """The persistent tunnel named in `p` that is waiting to be re-created."""
        name = p.get("tunnel_name")
        if name is not None and name not in self.tunnel_names:
            return self.persist_pending.get(name)
        return None

    def _pending_info(self, name, pend):
        return {"tunnel_name": name, "tunnel_id": None, "state": "persist-pending",
                "persist": True, "attempt": pend["attempt"],
                "next_attempt_in_ms": max(0, pend["at"] - self.clock()),
                "down_reason": pend["reason"], "num_sessions": 0,
                "dest_ipaddr": pend["create"].get("dest_ipaddr")}

    def m_tunnel_delete(self, p, conn):
        pend = self._pending(p)
        if pend is not None:   # not re-created after all
            pend["timer"].cancelled = True
            del self.persist_pending[p["tunnel_name"]]
            return {"tunnel_name": p["tunnel_name"], "tunnel_id": None}
        rec = self.find_tunnel(p)
        now = self.clock()
        rec.deleted = True
        if rec.name and self.tunnel_names.get(rec.name) == rec.tid:
            del self.tunnel_names[rec.name]   # the name is free at once
        if rec.t.state in ("closing", "closed"):
            return {"tunnel_id": rec.tid}
        reason = p.get("reason") or "deleted by the administrator"
        self.dirty.add(rec.tid)
        self.apply(rec, rec.t.close(now, avp.STOPCCN_GENERAL, None, reason), now)
        return {"tunnel_id": rec.tid}

    def m_tunnel_modify(self, p, conn):
        rec = self.find_tunnel(p)
        changes = {k: v for k, v in p.items() if k not in ("tunnel_id", "tunnel_name")}
        if "hide_avps" in changes and changes["hide_avps"] and not rec.params.get("secret"):
            raise RpcError.param(rpc_unix.ERR_TUNNEL_HIDE_AVPS_NEEDS_SECRET, "hide_avps",
                                 "this tunnel has no secret", True)
        self._check_profile_refs(changes, ("peer_profile_name", "session_profile_name",
                                           "ppp_profile_name"))
        rec.params.update(changes)
        if rec.create_keys is not None:   # admin tunnels: config save writes them
            rec.create_keys = self._keys(rec.create_keys + tuple(changes))
        ch = rec.t.channel
        ms = {"hello_timeout": 1000, "retry_timeout": 1000, "max_retry_timeout": 1000,
              "max_retries": 1, "tx_window_size": 1}
        for k, factor in ms.items():
            if k in changes:
                setattr(ch, k, changes[k] * factor)
        if "tx_window_size" in changes:
            ch.set_peer_window(ch.peer_rx_window_size)
        if any(k in changes for k in _TUNNEL_CONFIG_KEYS):
            rec.t.config = self._tunnel_config(rec.params)   # shared: never mutated
        if "idle_timeout" in changes:
            self._arm_idle(rec)
        if "trace_flags" in changes:
            rec.t.log = self._tunnel_logger(rec)
            rec.t.channel.set_log(rec.t.log)
        self.dirty.add(rec.tid)
        return self.tunnel_info(rec, self.clock())

    def m_tunnel_get(self, p, conn):
        pend = self._pending(p)
        if pend is not None:
            return self._pending_info(p["tunnel_name"], pend)
        return self.tunnel_info(self.find_tunnel(p), self.clock())

    def m_tunnel_list(self, p, conn):
        recs = sorted(self.tunnels.values(), key=lambda r: r.tid)
        if p.get("local_only"):
            recs = [r for r in recs if r.created_by_admin]
        if p.get("remote_only"):
            recs = [r for r in recs if not r.created_by_admin]
        rows = [{"tunnel_id": r.tid, "tunnel_name": r.name, "state": r.t.state,
                 "peer_tunnel_id": r.t.peer_tunnel_id, "dest_ipaddr": r.peer[0],
                 "num_sessions": len(r.sessions)} for r in recs]
        if not p.get("remote_only"):
            rows += [self._pending_info(n, self.persist_pending[n])
                     for n in sorted(self.persist_pending) if n not in self.tunnel_names]
        return _names_only(rows, ("tunnel_id", "tunnel_name")) if p.get("names") else rows

    # -- sessions
    def m_session_create(self, p, conn):
        srec = self.create_session(p, self.clock())
        return {"tunnel_id": srec.tunnel.tid, "session_id": srec.sid,
                "session_name": srec.name}

    def m_session_delete(self, p, conn):
        rec, srec = self.find_session(p)
        now = self.clock()
        reason = p.get("reason") or "deleted by the administrator"
        self.dirty.add(rec.tid)
        self.apply(rec, rec.t.session_close(now, srec.sid, avp.CDN_ADMIN, None, reason), now)
        return {"tunnel_id": rec.tid, "session_id": srec.sid}

    def m_session_modify(self, p, conn):
        rec, srec = self.find_session(p)
        changes = {k: v for k, v in p.items() if k in SESSION_MODIFIABLE}
        srec.params.update(changes)
        if srec.create_keys is not None:   # config save and persistence keep them
            srec.create_keys = self._keys(srec.create_keys + tuple(changes))
        return self.session_info(rec, srec)

    def m_session_get(self, p, conn):
        rec, srec = self.find_session(p)
        return self.session_info(rec, srec)

    def m_session_list(self, p, conn):
        if p.get("tunnel_id") is None and p.get("tunnel_name") is None:
            recs = sorted(self.tunnels.values(), key=lambda r: r.tid)
        else:
            recs = [self.find_tunnel(p)]
        out = []
        for rec in recs:
            for sid in sorted(rec.sessions):
                srec = rec.sessions[sid]
                if p.get("local_only") and not srec.created_by_admin:
                    continue
                if p.get("remote_only") and srec.created_by_admin:
                    continue
                s = rec.t.sessions.get(sid)
                out.append({"tunnel_id": rec.tid, "session_id": sid, "session_name": srec.name,
                            "session_type": srec.params.get("session_type"),
                            "state": s.state if s is not None else "closed",
                            "peer_session_id": s.peer_session_id if s is not None else None})
        return _names_only(out, ("tunnel_id", "session_id", "session_name")) \
            if p.get("names") else out

    # -- runtime peers and users
    def m_peer_list(self, p, conn):
        peers = {}
        for rec in self.tunnels.values():
            key = (rec.local or self.listen_addr, rec.peer[0])
            peers[key] = peers.get(key, 0) + 1
        return [{"local_addr": k[0], "peer_addr": k[1], "num_tunnels": n}
                for k, n in sorted(peers.items())]

    def m_peer_get(self, p, conn):
        want = p.get("peer_ipaddr")
        for row in self.m_peer_list({}, conn):
            if row["peer_addr"] == want:
                return row
        raise RpcError.param(rpc_unix.ERR_PEER_NOT_FOUND, "peer_ipaddr",
                             f"no tunnel with peer {want}", want)

    def m_user_list(self, p, conn):
        out = []
        for rec in self.tunnels.values():
            for srec in rec.sessions.values():
                user = self._user(srec)   # ours (LAC), or who logged in through us (LNS)
                if user:
                    ppp = (srec.info or {}).get("ppp") or {}
                    out.append({"user_name": user, "tunnel_id": rec.tid,
                                "session_id": srec.sid, "session_name": srec.name,
                                "peer_addr": rec.peer[0], "ppp_peer_ip": ppp.get("peer_ip"),
                                "created_by_admin": srec.created_by_admin})
        return sorted(out, key=lambda r: (r["tunnel_id"], r["session_id"]))

    # -- IP pools (OpenL2TP's ippoold, inside the daemon)
    def _pool(self, p):
        name = p.get("pool_name")
        pool = self.pools.get(name)
        if pool is None:
            raise RpcError.param(rpc_unix.ERR_IPPOOL_NOT_FOUND, "pool_name",
                                 f"no IP pool named {name!r}", name)
        return pool

    def _no_overlap(self, first_addr, num, pool_name):
        """An address block never overlaps another pool's, so an address is handed
        out once whatever pool a session uses. Raises RpcError naming first_addr."""
        try:
            first = ppp.ip_int(first_addr)
        except (ppp.PPPError, ValueError):
            return   # the pool's own check names it
        for other in self.pools.values():
            if other.name != pool_name and any(first < f + n and f < first + num
                                               for f, n in other.blocks):
                raise RpcError.param(rpc_unix.ERR_PARAM_CONFLICT, "first_addr",
                                     f"overlaps IP pool {other.name!r}", first_addr)

    def _pool_call(self, fn, *args):
        """A pool operation; its errors name first_addr (the block it is about)."""
        try:
            return fn(*args)
        except ppp.PPPError as e:
            raise RpcError.param(rpc_unix.ERR_PARAM_BAD_VALUE, "first_addr", str(e))

    def m_ippool_create(self, p, conn):
        name = p["pool_name"]
        if name in self.pools:
            raise RpcError.param(rpc_unix.ERR_IPPOOL_ALREADY_EXISTS, "pool_name",
                                 f"IP pool {name!r} already exists", name)
        if len(self.pools) >= MAX_POOLS:
            raise RpcError.param(rpc_unix.ERR_PARAM_BAD_VALUE, "pool_name",
                                 f"{MAX_POOLS} IP pools exist already")
        if p.get("first_addr") and not p.get("num_addrs"):
            raise RpcError.param(rpc_unix.ERR_PARAM_MISSING, "num_addrs",
                                 "first_addr needs num_addrs")
        if p.get("first_addr"):
            self._no_overlap(p["first_addr"], p["num_addrs"], name)
        pool = self._pool_call(ppp.IpPool, name, p.get("first_addr"), p.get("num_addrs") or 0,
                               p.get("netmask"))
        self.pools[name] = pool
        return pool.to_dict()

    def m_ippool_delete(self, p, conn):
        pool = self._pool(p)
        users = sorted(n for n in self.profiles["ppp"].items
                       if self.profiles["ppp"].items[n].get("ip_pool_name") == pool.name)
        if users:
            raise RpcError.param(rpc_unix.ERR_IPPOOL_IN_USE, "pool_name",
                                 f"IP pool {pool.name!r} is named by PPP profile(s) "
                                 f"{', '.join(users)} (ip_pool_name)", pool.name)
        if pool.allocated:
            raise RpcError.param(rpc_unix.ERR_IPPOOL_IN_USE, "pool_name",
                                 f"IP pool {pool.name!r} has {len(pool.allocated)} addresses "
                                 "in use", pool.name)
        del self.pools[pool.name]
        return {"pool_name": pool.name}

    def m_ippool_modify(self, p, conn):
        pool = self._pool(p)
        if p.get("first_addr"):
            self._no_overlap(p["first_addr"], p.get("num_addrs") or 1, pool.name)
            self._pool_call(pool.add_block, p["first_addr"], p.get("num_addrs") or 1)
        if "netmask" in p:
            pool.netmask = p["netmask"]
        return pool.to_dict()

    def _pool_block(verb):
        def m(self, p, conn):
            pool = self._pool(p)
            if verb == "reserve" and len(pool.reserved) + (p.get("num_addrs") or 1) > \
                    MAX_RESERVED:
                # One entry per reserved address: bounded, so one call cannot stall
                # the loop or take the memory (a pool may span 2**24 addresses).
                raise RpcError.param(rpc_unix.ERR_PARAM_BAD_VALUE, "num_addrs",
                                     f"at most {MAX_RESERVED} reserved addresses per pool",
                                     p.get("num_addrs"))
            if verb == "add_block":
                self._no_overlap(p["first_addr"], p.get("num_addrs") or 1, pool.name)
            self._pool_call(getattr(pool, verb), p["first_addr"], p.get("num_addrs") or 1)
            return pool.to_dict()
        m.__name__ = f"m_ippool_{verb}"
        return m

    m_ippool_add_block = _pool_block("add_block")
    m_ippool_remove_block = _pool_block("remove_block")
    m_ippool_reserve = _pool_block("reserve")
    m_ippool_unreserve = _pool_block("unreserve")

    def m_ippool_get(self, p, conn):
        return self._pool(p).to_dict()

    def m_ippool_list(self, p, conn):
        return [{"pool_name": n, "num_addrs": self.pools[n].num_addrs,
                 "num_avail": self.pools[n].num_avail} for n in sorted(self.pools)]

    # -- events, config, describe
    def m_events_subscribe(self, p, conn):
        names = p.get("events")
        if names is not None and not isinstance(names, list):
            raise RpcError.param(rpc_unix.ERR_PARAM_BAD_VALUE, "events",
                                 "give event names, e.g. tunnel_up,session_down", names)
        conn.subscribed = set(names) if names else True
        return {"subscribed": sorted(names) if names else "all"}

    def m_events_unsubscribe(self, p, conn):
        conn.subscribed = False
        return {"subscribed": None}

    def config_path(self, name, param="file"):
        """A file named over RPC: relative names are taken inside the configuration
        directory, and whatever the name, the file (symlinks resolved) must lie in
        it. Raises RpcError (ERR_NOT_PERMITTED) naming `param` otherwise: the socket's
        group manages the daemon, never the files of the root it runs as."""
        if "\0" in name:
            raise RpcError.param(rpc_unix.ERR_PARAM_BAD_VALUE, param, "contains a NUL")
        path = os.path.join(self.config_dir, name)
        real = _inside(path, (self.config_dir,))
        if real is None:
            raise RpcError.param(rpc_unix.ERR_NOT_PERMITTED, param,
                                 f"outside the configuration directory {self.config_dir}",
                                 name)
        return real

    def m_config_save(self, p, conn):
        if p.get("file"):
            path = self.config_path(p["file"])
        elif self.config_file:
            path = self.config_file   # -c: chosen on the command line by root
        else:
            raise RpcError.param(rpc_unix.ERR_PARAM_MISSING, "file",
                                 "no file given and the daemon has no -c file")
        text = self.config_text()
        if os.path.isdir(path):
            raise RpcError.param(rpc_unix.ERR_PARAM_BAD_VALUE, "file",
                                 f"{path} is a directory", p.get("file"))
        # A fresh temporary name, created exclusively and never through a symlink:
        # whoever can write in the directory cannot point it at another file.
        tmp = f"{path}.tmp.{os.getpid()}.{self.rng(4).hex()}"
        try:
            data = text.encode("utf-8")
            # 0600: the file holds secrets and passwords.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                         | getattr(os, "O_NOFOLLOW", 0), 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            try:   # the rename itself survives a crash once its directory is synced
                dfd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
            except OSError:
                pass   # some filesystems cannot fsync a directory; the file is whole
        except (OSError, ValueError, UnicodeError) as e:
            try:
                os.unlink(tmp)
            except (OSError, ValueError):
                pass
            why = getattr(e, "strerror", None) or type(e).__name__
            raise RpcError.param(rpc_unix.ERR_CONFIG_FILE, "file",
                                 f"cannot write {path}: {why}", path)
        return {"file": path, "lines": text.count("\n")}

    def m_config_restore(self, p, conn):
        path = self.config_path(p["file"])
        try:
            n = self.apply_config_file(path)
        except rpc_unix.ConfigError as e:
            # The file's own text is never quoted back over the socket (a group member
            # must not read a root-only file through our errors): the line number and
            # the parameter only; the whole reason goes to the daemon's log.
            if getattr(e, "checked", False):
                reason = e.reason
            else:
                self.log.error(f"config restore: {e}")
                param = getattr(e, "param", None)
                reason = (f"{param}: not valid here" if param else "not a valid command") \
                    + " (the daemon's log says why)"
            where = f"{path}:{e.lineno}" if e.lineno else path
            raise RpcError(rpc_unix.ERR_CONFIG_FILE, f"{where}: {reason}",
                           {"file": path, "line": e.lineno})
        return {"file": path, "commands": n}

    def m_rpc_describe(self, p, conn):
        return self.describe()

    _describe = None

    def describe(self):
        if Daemon._describe is None:
            Daemon._describe = _build_describe()
        return Daemon._describe

    # ------------------------------------------------------------- config file
    def apply_config_file(self, path):
        """Apply a config file of l2tpctl commands, whole or not at all. The file is
        read and parsed, then every line is checked (profiles, pools and the system
        object are applied on a snapshot as they come, tunnel and session lines are
        validated against what exists and what earlier lines of the same file
        create); then the tunnel, session and system lines run in file order. Any
        failure, in either pass, restores the previous profiles, pools, system
        settings and tunnel parameters, removes what this file created, and raises
        ConfigError naming FILE:LINE. Returns the number of commands."""
        text = _read_config(path)
        cmds = rpc_unix.parse_config(text, path, CONFIG_VERBS)
        import copy  # only here: a snapshot to restore if a line fails
        saved = ({k: v.copy() for k, v in self.profiles.items()}, dict(self.system),
                 copy.deepcopy(self.pools))
        later = []
        made = {"names": set(), "ids": set()}   # tunnels earlier lines will create
        try:
            for lineno, method, params in cmds:
                if method not in self.methods:
                    raise rpc_unix.ConfigError(f"unknown command {method}", path, lineno)
                try:
                    self._config_line(method, params, later, lineno, made)
                except RpcError as e:
                    raise _config_error(e, path, lineno)
            self._config_apply(later, path)
        except rpc_unix.ConfigError:
            self.profiles, self.system, self.pools = saved
            raise
        return len(cmds)

    def _config_line(self, method, params, later, lineno, made):
        """Check pass of one line (apply_config_file)."""
        typed = rpc_unix.coerce_params(method, params, self.describe()[method]["params"])
        obj = method.split(".")[0]
        if obj in ("tunnel", "session"):
            self._config_check(method, typed, made)
            later.append((lineno, method, typed))
        elif obj == "system":
            # In file order with the tunnels: a deny flag or limit set after them
            # must not refuse them (config save writes it last).
            later.append((lineno, method, typed))
        elif method == "ippool.create" and typed["pool_name"] in self.pools:
            pass   # re-applied on SIGHUP: the pool and its addresses stay
        elif method in ("ippool.add_block", "ippool.reserve") and \
                self._already_in_pool(method, typed):
            pass
        elif method.endswith("_profile.create") and \
                typed.get("profile_name") in self.profiles[obj[:-8]].items:
            # Re-applied on SIGHUP: an existing profile is modified.
            self.profile_op(obj[:-8], "modify", typed)
        else:
            self.methods[method](self, typed, None)

    def _config_apply(self, later, path):
        """Run pass: tunnel, session and system lines in order; on a failure undo what
        this pass did and raise ConfigError (the caller restores the profiles)."""
        now = self.clock()
        created, sessions, modified = [], [], []
        for lineno, method, typed in later:
            try:
                self._config_run(method, typed, now, created, sessions, modified)
            except RpcError as e:
                self.log.error(f"{path}:{lineno}: {e.message}; undoing this file")
                for rec, srec in reversed(sessions):
                    if rec.tid in self.tunnels and srec.sid in rec.sessions:
                        self.m_session_delete({"tunnel_id": rec.tid, "session_id": srec.sid},
                                              None)
                for rec in reversed(created):
                    if self.tunnels.get(rec.tid) is rec:
                        self.m_tunnel_delete({"tunnel_id": rec.tid}, None)
                    for key, ids in list(self._made.items()):
                        if ids[0] == rec.tid:
                            del self._made[key]
                for rec, old in reversed(modified):
                    if self.tunnels.get(rec.tid) is rec:
                        self.m_tunnel_modify(dict(old, tunnel_id=rec.tid), None)
                raise _config_error(e, path, lineno)
    def _already_in_pool(self, method, p):
        pool = self.pools.get(p["pool_name"])
        if pool is None:
            return False
        d = pool.to_dict()["addr_block" if method == "ippool.add_block" else "rsvd_block"]
        want = {"first_addr": p["first_addr"], "num_addrs": p.get("num_addrs") or 1}
        return want in d

    def _config_made(self, method, p):
        """The live object an earlier application of this very line made, if it is
        still there: a re-applied file (SIGHUP) must not make it again, even when it
        has no name (the line's text is the key)."""
        key = rpc_unix.format_command(method, p)
        made = self._made.get(key)
        if made is None:
            return key, None
        rec = self.tunnels.get(made[0])
        if rec is None or rec.create_time != made[1]:
            return key, None
        if method == "tunnel.create":
            return key, rec
        srec = rec.sessions.get(made[2])
        return key, srec if srec is not None and srec.create_time == made[3] else None

    def _config_check(self, method, p, made):
        if method == "tunnel.create":
            for k, key in (("tunnel_name", "names"), ("tunnel_id", "ids")):
                if p.get(k) is not None:
                    made[key].add(p[k])
            if p.get("tunnel_name") in self.tunnel_names or self._config_made(method, p)[1]:
                return
            self.create_tunnel(p, 0, validate_only=True)
        elif method == "session.create":
            name, tid = p.get("tunnel_name"), p.get("tunnel_id")
            if name is None and tid is None:
                raise RpcError.param(rpc_unix.ERR_PARAM_MISSING, "tunnel_name",
                                     "give tunnel_id or tunnel_name")
            if (tid is None and name not in self.tunnel_names) or \
                    (tid is not None and tid not in self.tunnels):
                if name in made["names"] if tid is None else tid in made["ids"]:
                    # The tunnel comes from an earlier line of the same file: check
                    # what does not need it.
                    self._check_session_request(p)
                    return
                what, v = ("tunnel_name", name) if tid is None else ("tunnel_id", tid)
                raise RpcError.param(rpc_unix.ERR_TUNNEL_NOT_FOUND, what,
                                     "no such tunnel, running or created by an earlier "
                                     "line of this file", v)
            rec = self.find_tunnel(p)
            if p.get("session_name") not in rec.session_names and \
                    not self._config_made(method, p)[1]:
                self._create_session_in(rec, p, 0, validate_only=True)

    def _check_session_request(self, p):
        for k, kind, code in (("profile_name", "session", rpc_unix.ERR_SESSION_PROFILE_NOT_FOUND),
                              ("ppp_profile_name", "ppp", rpc_unix.ERR_PPP_PROFILE_NOT_FOUND)):
            v = p.get(k)
            if v is not None and v not in self.profiles[kind].items:
                raise RpcError.param(code, k, f"no {kind} profile named {v!r}", v)
        _call_params(p, p.get("session_type") or "laic")

    def _config_run(self, method, p, now, created, sessions, modified):
        """One tunnel/session/system line; what it creates or modifies is recorded in
        `created`, `sessions` and `modified` for _config_apply to undo."""
        key, made = self._config_made(method, p)
        if method == "tunnel.create" and (p.get("tunnel_name") in self.tunnel_names
                                          or made is not None):
            rec = made or self.tunnels[self.tunnel_names[p["tunnel_name"]]]
            mod = {k: v for k, v in p.items() if k in TUNNEL_MODIFIABLE}
            modified.append((rec, {k: rec.params.get(k) for k in mod}))
            mod["tunnel_id"] = rec.tid
            self.m_tunnel_modify(mod, None)
        elif method == "tunnel.create":
            rec = self.create_tunnel(p, now)
            created.append(rec)
            self._made[key] = (rec.tid, rec.create_time)
        elif method == "session.create":
            rec = self.find_tunnel(p)
            if p.get("session_name") in rec.session_names or made is not None:
                return
            srec = self._create_session_in(rec, p, now)
            sessions.append((rec, srec))
            self._made[key] = (rec.tid, rec.create_time, srec.sid, srec.create_time)
        else:
            self.methods[method](self, p, None)

    def _name_tunnel(self, rec):
        """Give an unnamed admin tunnel a free name, so that a saved config can name
        it in its session lines and a re-applied one finds it."""
        name, n = f"tunnel{rec.tid}", 1
        while name in self.tunnel_names:
            n += 1
            name = f"tunnel{rec.tid}-{n}"
        rec.name = name
        rec.params["tunnel_name"] = name
        rec.create_keys = self._keys((rec.create_keys or ()) + ("tunnel_name",))
        self.tunnel_names[name] = rec.tid

    def config_text(self):
        """The current profiles, system settings and admin tunnels/sessions as
        config-file commands (restart with it to restore them)."""
        lines = [f"# written by l2tpd {VERSION} on {_iso(time.time())}"]
        for name in sorted(self.pools):
            pool = self.pools[name]
            blocks = pool.to_dict()["addr_block"]
            first = blocks[0] if blocks else {}
            lines.append(rpc_unix.format_command("ippool.create", dict(
                pool_name=name, netmask=pool.netmask, **first)))
            for b in blocks[1:]:
                lines.append(rpc_unix.format_command("ippool.add_block",
                                                     dict(pool_name=name, **b)))
            for b in pool.to_dict()["rsvd_block"]:
                lines.append(rpc_unix.format_command("ippool.reserve",
                                                     dict(pool_name=name, **b)))
        for kind in ("ppp", "session", "tunnel", "peer"):
            profs = self.profiles[kind]
            for name in sorted(profs.items, key=lambda n: (n != "default", n)):
                vals = dict(profs.items[name])
                if name == "default" and not vals:
                    continue
                verb = "modify" if name == "default" else "create"
                vals = dict(profile_name=name, **vals)
                lines.append(rpc_unix.format_command(f"{kind}_profile.{verb}", vals))
        for rec in sorted(self.tunnels.values(), key=lambda r: r.tid):
            if not rec.created_by_admin or rec.deleted:
                continue
            if not rec.name:
                self._name_tunnel(rec)
            cp = self.request_of(rec)
            lines.append(rpc_unix.format_command("tunnel.create", cp))
            for sp in self.admin_session_params(rec):
                sp["tunnel_name"] = cp["tunnel_name"]
                lines.append(rpc_unix.format_command("session.create", sp))
        for name in sorted(self.persist_pending):
            if name in self.tunnel_names:
                continue
            pend = self.persist_pending[name]
            lines.append(rpc_unix.format_command("tunnel.create", pend["create"]))
            for sp in pend["restore"] or ():
                lines.append(rpc_unix.format_command("session.create",
                                                     dict(sp, tunnel_name=name)))
        # Last: deny_local_tunnel_creates, max_tunnels ... must not refuse the
        # tunnels of the file itself.
        sysmod = {k: v for k, v in self.system.items()
                  if v != SYSTEM[k].get("default") and v is not None}
        if sysmod:
            lines.append(rpc_unix.format_command("system.modify", sysmod))
        return "\n".join(lines) + "\n"

    methods = {}


def _build_methods():
    m = {
        "system.get": Daemon.m_system_get, "system.modify": Daemon.m_system_modify,
        "tunnel.create": Daemon.m_tunnel_create, "tunnel.delete": Daemon.m_tunnel_delete,
        "tunnel.modify": Daemon.m_tunnel_modify, "tunnel.get": Daemon.m_tunnel_get,
        "tunnel.list": Daemon.m_tunnel_list,
        "session.create": Daemon.m_session_create, "session.delete": Daemon.m_session_delete,
        "session.modify": Daemon.m_session_modify, "session.get": Daemon.m_session_get,
        "session.list": Daemon.m_session_list,
        "peer.list": Daemon.m_peer_list, "peer.get": Daemon.m_peer_get,
        "user.list": Daemon.m_user_list,
        "events.subscribe": Daemon.m_events_subscribe,
        "events.unsubscribe": Daemon.m_events_unsubscribe,
        "config.save": Daemon.m_config_save, "config.restore": Daemon.m_config_restore,
        "rpc.describe": Daemon.m_rpc_describe,
    }
    for verb in ("create", "delete", "modify", "get", "list", "add_block", "remove_block",
                 "reserve", "unreserve"):
        m[f"ippool.{verb}"] = getattr(Daemon, f"m_ippool_{verb}")
    for kind in PROFILE_KINDS:
        for verb in ("create", "delete", "modify", "get", "list", "unset"):
            m[f"{kind}_profile.{verb}"] = Daemon._profile_method(kind, verb)
    return m


def _only(spec, names):
    return {k: spec[k] for k in names}


def _bools(spec):
    return {k: _p("bool", None, f"unset {k}") for k in spec}


def _build_describe():
    name = {"profile_name": _p("str", None, "profile name", required=True)}
    sel = {"local_only": _p("bool", False, "only objects created here"),
           "remote_only": _p("bool", False, "only objects created by peers"),
           "names": _p("bool", False, "names only")}
    d = {
        "system.get": ({}, "the system object: settings, status, counters"),
        "system.modify": (dict(SYSTEM, reset_statistics=_p("bool", False, "zero counters")),
                          "change system settings"),
        "tunnel.create": (TUNNEL_CREATE, "create a tunnel to dest_ipaddr (we send SCCRQ)"),
        "tunnel.delete": (dict(_TUNNEL_ID, **_REASON), "clear a tunnel (StopCCN)"),
        "tunnel.modify": (dict(_TUNNEL_ID, **_only(TUNNEL_CREATE, TUNNEL_MODIFIABLE)),
                          "change a tunnel at run time"),
        "tunnel.get": (dict(_TUNNEL_ID, config=_p("bool", False, "configuration"),
                            transport=_p("bool", False, "transport status")),
                       "show one tunnel"),
        "tunnel.list": (sel, "list tunnels"),
        "session.create": (SESSION_CREATE, "create a session (ICRQ as LAC, OCRQ as LNS)"),
        "session.delete": (dict(_SESSION_ID, **_REASON), "clear a session (CDN)"),
        "session.modify": (dict(_SESSION_ID, **_only(SESSION_CREATE, SESSION_MODIFIABLE)),
                           "change a session at run time"),
        "session.get": (_SESSION_ID, "show one session"),
        "session.list": (dict(_TUNNEL_ID, **sel), "list sessions (of one tunnel or all)"),
        "peer.list": ({}, "peers we have tunnels with"),
        "peer.get": ({"peer_ipaddr": _p("ipaddr", None, "peer address", required=True),
                      "local_ipaddr": _p("ipaddr", None, "our address")}, "one peer"),
        "user.list": ({}, "sessions with a PPP user name"),
        "events.subscribe": ({"events": _p("flags", None, "event names (default all)",
                                           choices=list(EVENT_NAMES))},
                             "push events to this connection"),
        "events.unsubscribe": ({}, "stop pushing events"),
        "config.save": ({"file": _p("str", None, "where (default: the -c file)")},
                        "write profiles, system settings and admin tunnels/sessions"),
        "config.restore": ({"file": _p("str", None, "config file", required=True)},
                           "apply a config file"),
        "rpc.describe": ({}, "this schema"),
    }
    pool = {"pool_name": _p("str", None, "IP pool name", required=True)}
    block = dict(pool, first_addr=_p("ipaddr", None, "first address", required=True),
                 num_addrs=_p("int", 1, "how many addresses", min=1, max=1 << 24))
    d.update({
        "ippool.create": (dict(pool, first_addr=_p("ipaddr", None, "first address"),
                               num_addrs=_p("int", None, "how many", min=1, max=1 << 24),
                               netmask=_p("ipaddr", None, "netmask given to peers")),
                          "create an IP pool (optionally with its first block)"),
        "ippool.delete": (pool, "delete an IP pool (none of its addresses in use)"),
        "ippool.modify": (dict(pool, first_addr=_p("ipaddr", None, "add a block from here"),
                               num_addrs=_p("int", None, "size of that block", min=1,
                                            max=1 << 24),
                               netmask=_p("ipaddr", None, "netmask")),
                          "change an IP pool; first_addr/num_addrs add a block"),
        "ippool.get": (pool, "show an IP pool, its blocks and allocations"),
        "ippool.list": ({}, "list IP pools"),
        "ippool.add_block": (block, "add an address block"),
        "ippool.remove_block": (block, "remove an address block"),
        "ippool.reserve": (block, "never hand out these addresses"),
        "ippool.unreserve": (block, "hand these addresses out again"),
    })
    for kind, spec in PROFILE_KINDS.items():
        d[f"{kind}_profile.create"] = (dict(name, **spec), f"create a {kind} profile")
        d[f"{kind}_profile.modify"] = (dict(name, **spec), f"change a {kind} profile")
        d[f"{kind}_profile.unset"] = (dict(name, **_bools(spec)),
                                      f"return {kind} profile parameters to inheritance")
        d[f"{kind}_profile.get"] = (name, f"show a {kind} profile")
        d[f"{kind}_profile.delete"] = (name, f"delete a {kind} profile")
        d[f"{kind}_profile.list"] = ({}, f"list {kind} profiles")
    return {m: {"help": h, "params": p} for m, (p, h) in d.items()}


def describe_schema():
    """rpc.describe as data that does not depend on the machine: the command grammar
    l2tpctl ships (l2tpctl-schema.json) so that help and completion work without a
    daemon, and the manual pages are made from. The default host name (this host's)
    is written as the text "(host name)". Shape: {method: {"help": str, "params":
    {name: {"type", "help", "default", "min", "max", "choices", "required"}}}}."""
    import copy
    d = copy.deepcopy(_build_describe())
    for entry in d.values():
        hn = entry["params"].get("host_name")
        if hn is not None and "default" in hn:
            hn["default"] = "(host name)"
    return json.loads(json.dumps(d, default=str))


# What a config file may say: OpenL2TP's create/modify, and the pool block verbs
# (config save writes them).
CONFIG_VERBS = rpc_unix.CONFIG_VERBS | {"add_block", "reserve"}

_LOGGED_EVENTS = frozenset(("tunnel_up", "tunnel_down", "session_up", "session_ppp_up",
                            "session_down"))

EVENT_NAMES = ("tunnel_created", "tunnel_up", "tunnel_down", "tunnel_deleted",
               "session_created", "session_up", "session_down", "session_deleted",
               "session_info", "session_ppp_up", "profile_created", "profile_deleted")

Daemon.methods = _build_methods()


# ------------------------------------------------------------------ helpers
class _Reader:
    def __init__(self, fn):
        self.on_readable = fn

    def on_writable(self, now):
        pass


class _NotRegular(Exception):
    pass


def _read_regular(path, limit):
    """The bytes of a regular file, at most `limit` + 1 of them (the caller tells a
    larger file by its length). Opened non-blocking, so a named pipe or a device is
    refused at once (_NotRegular) instead of stopping the single-threaded daemon in
    open() or read(). Raises OSError when it cannot be read."""
    import stat
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _NotRegular(path)
        return f.read(limit + 1)


def _read_config(path):
    """A config file's text: a regular file, bounded, UTF-8 (errors name the line
    and never quote the file)."""
    def refuse(reason, lineno=None):
        e = rpc_unix.ConfigError(reason, path, lineno)
        e.checked = True   # says nothing of the file's content
        return e
    try:
        data = _read_regular(path, CONFIG_MAX)
    except _NotRegular:
        raise refuse("not a regular file")
    except (OSError, ValueError) as e:
        raise refuse(f"cannot read: {getattr(e, 'strerror', None) or type(e).__name__}")
    if len(data) > CONFIG_MAX:
        raise refuse(f"larger than {CONFIG_MAX} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise refuse("not UTF-8 text", data[:e.start].count(b"\n") + 1)


CONFIG_MAX = 16 << 20
MAX_PROFILES = 4096      # of each kind
MAX_POOLS = 1024
MAX_RESERVED = 65536     # reserved addresses per pool
SECRETS_MAX = 16 << 20
DEFAULT_CONFIG_DIR = "/etc/l2tpd"
# Where a PPP profile's secrets_file may come from, beside the config directory.
SECRETS_DIRS = ("/etc/ppp",)


def _no_ppp_proxy(p):
    """use_ppp_proxy (OpenL2TP: take the proxy AVPs from the LAC's own PPP) cannot
    act here, where the LAC runs no PPP with the caller: refused, not ignored."""
    if p.get("use_ppp_proxy"):
        raise RpcError.param(rpc_unix.ERR_NOT_SUPPORTED, "use_ppp_proxy",
                             "our LAC runs no PPP of its own to proxy: give the proxy AVPs "
                             "with proxy_auth_* and *_lcp_confreq instead", True)


_FRAMING_WORDS = {0: "none", 1: "sync", 2: "async", 3: "any"}
_BEARER_WORDS = {0: "none", 1: "digital", 2: "analog", 3: "any"}


def _names_only(rows, keys):
    """list's names=yes: only the identifying fields of each row (scripts, completion)."""
    return [{k: r.get(k) for k in keys} for r in rows]


def _peer_words(peer):
    """What the peer sent in SCCRQ/SCCRP for `tunnel show`: its capabilities in the
    words of our own framing_caps/bearer_caps (a mask with other bits in hex)."""
    out = _jsonable(peer)
    for key, words in (("framing_caps", _FRAMING_WORDS), ("bearer_caps", _BEARER_WORDS)):
        v = peer.get(key)
        if isinstance(v, int):
            out[key] = words.get(v, f"0x{v:x}")
    return out


def _config_error(e, path, lineno):
    """The ConfigError for an RpcError met applying line `lineno` of `path`; it keeps
    the parameter's name (config restore reports only that over the socket)."""
    err = rpc_unix.ConfigError(e.message, path, lineno)
    err.param = e.data.get("param") if isinstance(e.data, dict) else None
    return err


def _control_char(text):
    """The first C0 control character (or DEL) in `text` other than tab, or None."""
    for ch in text:
        if (ch < " " and ch != "\t") or ch == "\x7f":
            return ch
    return None


def _inside(path, dirs):
    """`path` with symlinks resolved, if it lies inside one of `dirs` (resolved
    too), else None."""
    real = os.path.realpath(path)
    for d in dirs:
        top = os.path.realpath(d)
        if real == top or real.startswith(top.rstrip("/") + "/"):
            return real
    return None


def _iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _result(r):
    if not r:
        return None
    r = tuple(r) + (None, None)
    return {"result_code": r[0], "error_code": r[1], "error_message": r[2]}


def _jsonable(v):
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    return v


def _sccrq_peek(body):
    """(Host Name, Assigned Tunnel ID, Tie Breaker) of an SCCRQ body, each None when
    absent, hidden or malformed, by walking the AVP headers only; the fsm decodes
    the message properly. Host Name and Tie Breaker are never hidden (4.3)."""
    host = ptid = tie = None
    pos, n = 8, len(body)
    while pos + 6 <= n:
        flags, vendor, attr = struct.unpack_from("!HHH", body, pos)
        length = flags & 0x3FF
        if length < 6 or pos + length > n:
            break
        if vendor == 0 and not flags & 0x4000:
            value = body[pos + 6:pos + length]
            if attr == avp.HOST_NAME:
                host = bytes(value).decode("utf-8", "replace")
            elif attr == avp.ASSIGNED_TUNNEL_ID and length == 8:
                ptid = (value[0] << 8) | value[1]
            elif attr == avp.TIE_BREAKER and length == 14:
                tie = bytes(value)
        pos += length
    return host, ptid, tie


# fsm's call parameter names -> ours (OpenL2TP's), for errors that name one.
_CALL_PARAM_NAMES = {"initial_received_lcp_confreq": "initial_rcvd_lcp_confreq",
                     "last_received_lcp_confreq": "last_rcvd_lcp_confreq",
                     "proxy_authen_type": "proxy_auth_type",
                     "proxy_authen_name": "proxy_auth_name",
                     "proxy_authen_challenge": "proxy_auth_challenge",
                     "proxy_authen_id": "proxy_auth_id",
                     "proxy_authen_response": "proxy_auth_response"}


def _call_error(e):
    """The RPC error for an fsm.CallError: it names our parameter."""
    name = _CALL_PARAM_NAMES.get(e.param, e.param)
    text = e.msg
    for theirs, ours in _CALL_PARAM_NAMES.items():
        text = text.replace(theirs, ours)
    if e.missing:
        code = rpc_unix.ERR_PARAM_MISSING
    elif name == "session_type":
        code = rpc_unix.ERR_SESSION_TYPE_ILLEGAL_FOR_TUNNEL
    else:
        code = rpc_unix.ERR_PARAM_BAD_VALUE
    return RpcError.param(code, name, text)


def _call_params(p, stype):
    """The fsm's session_open params from resolved session parameters."""
    call = {
        "framing_type": _CAPS.get(p.get("framing_type") or "any", 3),
        "bearer_type": _CAPS.get(p.get("bearer_type") or "any", 3),
        "tx_connect_speed": p.get("tx_connect_speed") or 0,
        "sequencing_required": bool(p.get("sequencing_required")),
    }
    speed = p.get("connect_speed")
    if speed:
        try:
            parts = [int(x) for x in speed.split(":")]
        except ValueError:
            raise RpcError.param(rpc_unix.ERR_PARAM_BAD_VALUE, "connect_speed",
                                 "expected speed[:txspeed] in bit/s", speed)
        call["rx_connect_speed"] = parts[0]
        call["tx_connect_speed"] = parts[-1]
    elif p.get("rx_connect_speed"):
        call["rx_connect_speed"] = p["rx_connect_speed"]
    if p.get("minimum_bps") is not None:
        call["minimum_bps"] = p["minimum_bps"]
    if p.get("maximum_bps"):   # 0 means any: the fsm sends 0xFFFFFFFF (RFC 2661 4.4.5)
        call["maximum_bps"] = p["maximum_bps"]
        if call["maximum_bps"] < (p.get("minimum_bps") or 0):
            raise RpcError.param(rpc_unix.ERR_PARAM_BAD_VALUE, "maximum_bps",
                                 f"below minimum_bps {p['minimum_bps']}", p["maximum_bps"])
    if stype == "lnoc":
        call["called_number"] = p.get("called_number") or ""
    for k in ("called_number", "calling_number", "sub_address"):
        if p.get(k) is not None:
            call[k] = p[k]
    if p.get("priv_group_id"):
        call["private_group_id"] = p["priv_group_id"].encode()
    if p.get("session_id"):
        call["session_id"] = p["session_id"]
    # Proxy AVPs (RFC 2661 4.4.5); fsm.check_proxy says which each type needs.
    if p.get("proxy_auth_type"):
        call["proxy_authen_type"] = _PROXY_TYPES[p["proxy_auth_type"]]
    if p.get("proxy_auth_name") is not None:
        call["proxy_authen_name"] = p["proxy_auth_name"]
    if p.get("proxy_auth_id") is not None:
        call["proxy_authen_id"] = p["proxy_auth_id"]
    for k, n in (("proxy_auth_challenge", "proxy_authen_challenge"),
                 ("proxy_auth_response", "proxy_authen_response"),
                 ("initial_rcvd_lcp_confreq", "initial_received_lcp_confreq"),
                 ("last_sent_lcp_confreq", "last_sent_lcp_confreq"),
                 ("last_rcvd_lcp_confreq", "last_received_lcp_confreq")):
        if p.get(k) is not None:
            try:
                call[n] = bytes.fromhex(p[k])
            except ValueError:
                raise RpcError.param(rpc_unix.ERR_PARAM_BAD_VALUE, k,
                                     "expected hex octets", p[k])
    return call


# ------------------------------------------------------------------ main
def parse_trace_flags(text):
    try:
        return rpc_unix.coerce_value("-d", text, _FLAGS)
    except RpcError as e:
        raise argparse.ArgumentTypeError(e.message)


# -L names: syslog's (RFC 5424) with the usual short and long spellings.
LOG_LEVELS = {"emerg": logging.CRITICAL, "alert": logging.CRITICAL, "crit": logging.CRITICAL,
              "critical": logging.CRITICAL, "err": logging.ERROR, "error": logging.ERROR,
              "warning": logging.WARNING, "warn": logging.WARNING, "notice": 25,
              "info": logging.INFO, "debug": logging.DEBUG}


_SYSLOG_NUMBERS = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")


def parse_log_level(text):
    text = str(text).lower()
    if text.isdigit() and int(text) < len(_SYSLOG_NUMBERS):
        text = _SYSLOG_NUMBERS[int(text)]   # syslog's numbers: 0 emerg ... 7 debug
    level = LOG_LEVELS.get(text)
    if level is None:
        raise argparse.ArgumentTypeError(
            f"unknown log level {text!r} (one of {', '.join(LOG_LEVELS)})")
    return level


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        """One line naming the option, exit status 2 (argparse adds the usage)."""
        self.exit(2, f"l2tpd: {message} (l2tpd --help)\n")


def build_parser():
    """l2tpd's command line (argparse), for main and for the manual page."""
    ap = _Parser(prog="l2tpd", description="L2TP (RFC 2661) LAC/LNS daemon")
    ap.add_argument("--version", action="version", version=f"l2tpd {VERSION}")
    ap.add_argument("-f", action="store_true", help="stay in the foreground, log to stderr")
    ap.add_argument("-L", "--log-level", metavar="LEVEL", type=parse_log_level,
                    default=logging.INFO,
                    help="least severe messages logged: debug, info (default), notice, "
                         "warning, err, crit, alert, emerg, or syslog's 7..0")
    ap.add_argument("-c", metavar="FILE", help="config file of l2tpctl commands")
    ap.add_argument("--config-dir", metavar="DIR",
                    help="files named over RPC (config save/restore, secrets_file) must "
                         f"lie here (default: the directory of -c, else {DEFAULT_CONFIG_DIR})")
    ap.add_argument("-s", metavar="PATH", help="RPC socket (default /run/l2tpd/l2tpd.sock "
                    "as root, ./l2tpd.sock otherwise)")
    ap.add_argument("-a", metavar="ADDR", default="0.0.0.0", help="listen address (all)")
    ap.add_argument("-u", metavar="PORT", type=int, default=L2TP_PORT,
                    help="UDP port (1701)")
    ap.add_argument("--dataplane", choices=("auto", "kernel", "userspace", "null"),
                    default="auto", help="data path (auto)")
    ap.add_argument("-d", metavar="FLAGS", type=parse_trace_flags, default=0,
                    help="system trace flags: a mask or a comma list of "
                    + ", ".join(TRACE_CHOICES))
    ap.add_argument("-P", metavar="PIDFILE", help="write our pid here")
    ap.add_argument("-p", metavar="PLUGIN", action="append", default=[],
                    help="load a plugin (a Python file); repeatable")
    ap.add_argument("-g", metavar="GROUP", help="group that may use the RPC socket")
    return ap


def parse_args(argv):
    return build_parser().parse_args(argv)


def check_environment(args, sock_path):
    """What start-up needs from its options and the machine, checked before anything
    is opened or the daemon detaches: the first problem as one line naming the
    option, or None."""
    import stat
    if not 1 <= args.u <= 65535:
        return f"-u {args.u}: a UDP port is 1..65535"
    if args.g is not None and not args.g.isdigit():
        try:
            rpc_unix._resolve_gid(args.g)
        except ValueError:
            return f"-g {args.g}: no such group"
    if args.P:
        d = os.path.dirname(os.path.abspath(args.P))
        if not os.path.isdir(d):
            return f"-P {args.P}: directory {d} does not exist"
        if not os.access(d, os.W_OK):
            return f"-P {args.P}: directory {d} is not writable"
        if os.path.exists(args.P) and not os.path.isfile(args.P):
            return f"-P {args.P}: exists and is not a regular file"
    if args.s:   # an explicit socket path: its directory must be there already
        d = os.path.dirname(os.path.abspath(sock_path))
        if not os.path.isdir(d):
            return f"-s {sock_path}: directory {d} does not exist"
    try:
        st = os.lstat(sock_path)
    except OSError:
        st = None
    if st is not None and not stat.S_ISSOCK(st.st_mode):
        return f"-s {sock_path}: exists and is not a socket"
    if args.config_dir and not os.path.isdir(args.config_dir):
        return f"--config-dir {args.config_dir}: not a directory"
    if args.c and not os.path.isfile(args.c):
        return f"-c {args.c}: " + ("not a regular file" if os.path.exists(args.c)
                                    else "no such file")
    return None


def setup_logging(foreground, level=logging.INFO):
    logging.addLevelName(25, "NOTICE")
    log = logging.getLogger("l2tpd")
    log.setLevel(level)
    if foreground:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("%(asctime)s l2tpd: %(message)s"))
    elif os.path.exists("/dev/log"):
        h = logging.handlers.SysLogHandler("/dev/log", logging.handlers.SysLogHandler.LOG_DAEMON)
        h.setFormatter(logging.Formatter("l2tpd[%(process)d]: %(message)s"))
        h.priority_map = dict(h.priority_map, NOTICE="notice")
    else:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("%(asctime)s l2tpd: %(message)s"))
    log.handlers[:] = [h]
    return log


def daemonize():
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    fd = os.open(os.devnull, os.O_RDWR)
    for i in (0, 1, 2):
        os.dup2(fd, i)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    log = setup_logging(args.f, args.log_level)
    sock_path = args.s or rpc_unix.default_socket_path({})
    problem = check_environment(args, sock_path)
    if problem:
        print(f"l2tpd: {problem}", file=sys.stderr)
        return 1
    try:
        d = Daemon(listen_addr=args.a, port=args.u, sock_path=sock_path,
                   dataplane=args.dataplane, trace_flags=args.d, foreground=args.f, log=log,
                   sock_group=int(args.g) if args.g and args.g.isdigit() else args.g)
    except kernel.DataPathError as e:
        print(f"l2tpd: {e}", file=sys.stderr)
        return 1
    d.config_dir = os.path.abspath(args.config_dir or (os.path.dirname(os.path.abspath(args.c))
                                                        if args.c else DEFAULT_CONFIG_DIR))
    if args.c:
        d.config_file = args.c   # SIGHUP re-applies it
        try:
            d.apply_config_file(args.c)
        except rpc_unix.ConfigError as e:
            print(f"l2tpd: {e}", file=sys.stderr)
            return 1
    for path in args.p:
        try:
            d.load_plugin(path)
        except Exception as e:
            print(f"l2tpd: plugin {path}: {e}", file=sys.stderr)
            return 1
    try:
        d.open()
    except OSError as e:
        why = e.strerror or str(e)
        if e.filename:
            why += f": {e.filename}"
        if e.errno == errno.EACCES and args.u < 1024:
            why += f" (port {args.u} needs root or CAP_NET_BIND_SERVICE)"
        print(f"l2tpd: cannot open sockets: {why}", file=sys.stderr)
        d.close()
        return 1
    pidf = None
    if args.P:   # opened before detaching, so that a failure is seen; written after
        try:
            pidf = open(args.P, "w")
        except OSError as e:
            print(f"l2tpd: -P {args.P}: {e.strerror}", file=sys.stderr)
            d.close()
            return 1
    if not args.f:
        if not os.path.exists("/dev/log"):
            print("l2tpd: no syslog (/dev/log): once detached nothing is logged; run with "
                  "-f to log to stderr", file=sys.stderr)
        daemonize()
    if pidf is not None:
        with pidf:
            pidf.write(f"{os.getpid()}\n")
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
        signal.signal(sig, d.on_signal)
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)   # never a silent death by signal
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    # The banner: one line, with a timestamp like every other (l2tpctl -s SOCKET ...).
    log.info(f"l2tpd {VERSION} listening on {d.listen_addr}:{d.port}, data path "
             f"{d.dp.name}, RPC socket {d.sock_path}")
    try:
        d.run()
    finally:
        d.close()
        if args.P:
            try:
                os.unlink(args.P)
            except OSError:
                pass
    log.info("l2tpd stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
