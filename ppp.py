"""ppp: the PPP engine of the userspace data path, IP address pools, pppd
secrets files, and the pppd launcher of the kernel data path.

Theory of this module
---------------------
`PPPEngine` is one end of one PPP link carried by one L2TP session. It is
sans-IO like the rest of the protocol core: PPP frames come in through
`receive(frame, now)`, leave through `frames_to_send(now)`, time arrives as `now`
(integer milliseconds), randomness comes from the `rng(n) -> bytes` it is handed,
and what the daemon must act on leaves as tuples through `pop_events()`:
("up", info), ("down", reason), ("auth", user, ok), ("ip", packet).

Rules it keeps:
* One option negotiation automaton (RFC 1661 section 4), written once as the
  table `FSM = {(state, event): (actions, next_state)}`, one row per cell of the
  RFC's table, runs both LCP and IPCP. What is specific to a protocol (the
  options we ask for, how we judge the peer's) lives in a small policy class
  (`LcpPolicy`, `IpcpPolicy`). Actions return frames and layer signals
  (tlu/tld/tls/tlf); they never call into another automaton. The engine reads
  the signals afterwards and moves between the phases of RFC 1661 section 3
  (dead, establish, authenticate, network, terminate).
* A lookup miss is an illegal event (RFC 1661 section 4.4): counted and logged,
  no transition, no reset.
* Every received frame is parsed totally: a malformed one is counted in
  stats["rx_malformed"] and dropped; nothing a peer sends raises.
* "down" is final and sent once: the link is over when LCP signals
  This-Layer-Finished (or when a close finds nothing left to terminate). Its
  text says why (the first cause wins). The daemon then clears the L2TP session.
  LCP renegotiating while open is allowed by the RFC; "up" may then come again.
* The LNS ("server") starts LCP itself: xl2tpd's pppd is `passive` and never
  sends first. A client may be `passive` too (pppd's `silent`): it waits in the
  Stopped state for the peer's Configure-Request.
* Frames are sent with FF 03 and a 2-octet protocol field; received ones may omit
  FF 03 (ACFC) or compress the protocol field (PFC) even though we never agree
  to either (RFC 1661 sections 6.5 and 6.6).
* Times in the configuration are seconds under OpenL2TP's PPP profile names
  (openl2tp-api.md section 1.8); a zero restart interval counts as one second.
* Negotiation never goes round in circles: an authentication method (the
  protocol, and for CHAP the Algorithm octet) the peer refused is not asked
  for again, and a method the peer insists on that we cannot do ends the link
  at once, the reason naming it ("the peer wants MS-CHAPv2 (CHAP algorithm
  0x81), which this PPP profile does not allow"). A policy that gives up sets
  `fatal`: the automaton then sends nothing more and the engine closes.

RFC parts implemented:
* RFC 1661: the automaton with Restart timer, Max-Configure, Max-Terminate and
  Max-Failure (4.1-4.6); LCP codes 1-11 (5.1-5.9); options MRU, Auth-Protocol and
  Magic-Number (6.1, 6.2, 6.4) with loop-back detection by magic number;
  Protocol-Reject of unknown protocols once LCP is open (5.7).
* RFC 1334 PAP and RFC 1994 CHAP with MD5 (algorithm 5), both roles;
  re-challenge every chap_interval seconds.
* RFC 1332 IPCP option IP-Address (3); RFC 1877 primary/secondary DNS (129,
  131) and NBNS (130, 132) addresses.
* RFC 2661 section 4.4.5 on the server: Proxy LCP (start in Opened with the
  agreement a LAC made, when we would have made it) and Proxy Authen of PAP
  and CHAP-MD5 checked against our secrets; `PPPEngine.open(now, proxy)`.

Deliberately missing: ACCM, PFC and ACFC (meaningless over L2TP: the LAC strips
link framing and transparency, RFC 2661 section 5.3), Quality-Protocol,
MRRU/Endpoint Discriminator (multilink), IP-Compression-Protocol (VJ), MS-CHAP
and EAP, CCP, IPv6CP: all are Configure-Rejected or Protocol-Rejected. RFC 1570
Identification and Time-Remaining packets (Windows sends Identification) are
ignored.

Below the engine, and equally free of I/O: `IpPool` (address blocks, reservations,
allocation that never hands out an address twice) and the pppd secrets format
(`parse_secrets`, `lookup_secret`). At the end, the glue for the kernel data
path: `read_secrets`, `pppd_args`, `pppd_exit_reason`, `spawn_pppd` (which
imports subprocess only when called, so `import ppp` works on MicroPython).
"""

try:
    import hashlib
except ImportError:  # pragma: no cover - some MicroPython builds call it uhashlib
    import uhashlib as hashlib

try:
    from micropython import const
except ImportError:
    def const(x):
        return x


# ---------------------------------------------------------------- wire values
# PPP protocol numbers (RFC 1661 section 2; assigned numbers).
PROTO_IP = const(0x0021)
PROTO_IPCP = const(0x8021)
PROTO_LCP = const(0xC021)
PROTO_PAP = const(0xC023)
PROTO_CHAP = const(0xC223)

# Codes shared by LCP and IPCP (RFC 1661 section 5; RFC 1332 section 2 uses 1-7).
CONF_REQ = const(1)
CONF_ACK = const(2)
CONF_NAK = const(3)
CONF_REJ = const(4)
TERM_REQ = const(5)
TERM_ACK = const(6)
CODE_REJ = const(7)
PROTO_REJ = const(8)     # LCP only from here on
ECHO_REQ = const(9)
ECHO_REP = const(10)
DISCARD_REQ = const(11)
IDENTIFICATION = const(12)  # RFC 1570
TIME_REMAINING = const(13)  # RFC 1570

# LCP configuration options (RFC 1661 section 6; RFC 1990 for 17-19).
LCP_MRU = const(1)
LCP_ACCM = const(2)
LCP_AUTH = const(3)
LCP_QUALITY = const(4)
LCP_MAGIC = const(5)
LCP_PFC = const(7)
LCP_ACFC = const(8)
LCP_MRRU = const(17)
LCP_SSNHF = const(18)
LCP_ENDPOINT = const(19)

# IPCP configuration options (RFC 1332 section 3; RFC 1877 section 1).
IPCP_COMPRESSION = const(2)
IPCP_ADDRESS = const(3)
IPCP_DNS_PRI = const(129)
IPCP_NBNS_PRI = const(130)
IPCP_DNS_SEC = const(131)
IPCP_NBNS_SEC = const(132)

# PAP (RFC 1334 section 2.2) and CHAP (RFC 1994 section 4) codes.
PAP_REQ = const(1)
PAP_ACK = const(2)
PAP_NAK = const(3)
CHAP_CHALLENGE = const(1)
CHAP_RESPONSE = const(2)
CHAP_SUCCESS = const(3)
CHAP_FAILURE = const(4)
CHAP_MD5 = const(5)      # the Algorithm octet of the Auth-Protocol option

_DEFAULT_MRU = const(1500)   # RFC 1661 section 6.1
_MIN_MRU = const(128)        # smallest MRU we agree to; below that we Nak
_CHALLENGE_LEN = const(16)
_ZERO_IP = b"\x00\x00\x00\x00"
_HDLC = b"\xff\x03"          # address and control (RFC 1662 section 3.1)

# Phases (RFC 1661 section 3.2); eng.state is one of these.
DEAD = "dead"
ESTABLISH = "establish"
AUTHENTICATE = "authenticate"
NETWORK = "network"
TERMINATE = "terminate"

_COUNTERS = ("rx_frames", "tx_frames", "rx_malformed", "rx_discards", "rx_ip_packets",
             "rx_ip_bytes", "tx_ip_packets", "tx_ip_bytes", "tx_ip_discards",
             "tx_protocol_rejects", "tx_echo_requests", "rx_echo_replies",
             "illegal_events")


class PPPError(Exception):
    """Misuse of this module's API (bad configuration value, pool misuse)."""

    def __init__(self, msg):
        super().__init__(msg)
        self.msg = msg


class PoolError(PPPError):
    """An IP pool operation that cannot be done; the text names the value."""


# ---------------------------------------------------------------- small codecs
def ip_bytes(text):
    """"a.b.c.d" -> 4 octets; PPPError when it is no dotted-quad IPv4 address."""
    # Strict on purpose: four decimal octets, no shorthand ("10.1"), no
    # octal or hex forms, so a typo in a profile cannot become another address.
    parts = str(text).split(".")
    if len(parts) != 4:
        raise PPPError(f"bad IPv4 address {text!r}")
    out = bytearray(4)
    for i in range(4):
        p = parts[i]
        if not p or len(p) > 3 or not p.isdigit() or int(p) > 255:
            raise PPPError(f"bad IPv4 address {text!r}")
        out[i] = int(p)
    return bytes(out)


def ip_text(b):
    """4 octets -> "a.b.c.d"."""
    return f"{b[0]}.{b[1]}.{b[2]}.{b[3]}"


def _addr(value):
    """A configured address as 4 octets, or None when unset ("", 0, 0.0.0.0)."""
    if not value:
        return None
    b = ip_bytes(value)
    return None if b == _ZERO_IP else b


# Big-endian readers; callers check the length first (MicroPython's struct
# would not), which is why these are plain index arithmetic.
def _u16(b, i=0):
    return (b[i] << 8) | b[i + 1]


def _u32(b, i=0):
    return (b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]


def _text(b):
    """Peer-supplied bytes as a printable string, for logs and reasons."""
    # Names may be UTF-8 (RFC 1994 leaves them uninterpreted); anything that
    # is not, or holds control characters, is shown as ASCII with "?" so that a
    # peer cannot put escape sequences into our log.
    try:
        s = bytes(b).decode()
    except Exception:  # not UTF-8 (MicroPython raises UnicodeError too)
        s = None
    if s is None or any(ord(c) < 32 or ord(c) == 127 for c in s):
        s = "".join(chr(c) if 32 <= c < 127 else "?" for c in b)
    return s


def _bytes(s):
    """A configured secret or name as bytes (str is UTF-8 encoded)."""
    if s is None:
        return b""
    return s.encode() if isinstance(s, str) else bytes(s)


def split_frame(frame):
    """(protocol, payload) of a received PPP frame, or None when malformed.
    FF 03 is optional (ACFC, RFC 1661 section 6.6); a protocol whose first octet
    is odd is a compressed 1-octet field (PFC, section 6.5); a 2-octet protocol
    must have an even high and an odd low octet (section 2)."""
    n = len(frame)
    i = 0
    # RFC 1662 section 3.1: FF is the all-stations address and must be
    # followed by 03 (UI); FF with anything else is no PPP frame.
    if n >= 1 and frame[0] == 0xFF:
        if n < 2 or frame[1] != 0x03:
            return None
        i = 2
    if i >= n:
        return None
    if frame[i] & 1:
        # A peer that compresses without having agreed to PFC (we never do):
        # accepted anyway, as RFC 1661 section 6.5 lets receivers be liberal.
        return frame[i], frame[i + 1:]
    if i + 2 > n or not frame[i + 1] & 1:
        return None
    return _u16(frame, i), frame[i + 2:]


def split_packet(data):
    """(code, identifier, data) of an LCP/NCP/PAP/CHAP packet, or None. Octets
    past Length are padding and ignored (RFC 1661 section 5)."""
    if len(data) < 4:
        return None
    length = _u16(data, 2)
    if length < 4 or length > len(data):
        return None  # section 5: a Length beyond the data is a malformed packet
    return data[0], data[1], data[4:length]


def parse_options(data):
    """[(type, value), ...] of a Configure-* packet, or None when an option's
    length is below 2 or runs past the end (RFC 1661 section 6)."""
    out = []
    i = 0
    n = len(data)
    while i < n:
        if i + 2 > n or data[i + 1] < 2 or i + data[i + 1] > n:
            return None
        out.append((data[i], data[i + 2:i + data[i + 1]]))
        i += data[i + 1]
    return out


def encode_options(opts):
    """[(type, value), ...] -> the options field, in the given order (section 6)."""
    out = b""
    for t, v in opts:
        out += bytes((t, len(v) + 2)) + v
    return out


def make_frame(proto, code, ident, data=b""):
    """A whole PPP control frame: FF 03, protocol, code, identifier, length, data."""
    n = len(data) + 4
    return _HDLC + bytes((proto >> 8, proto & 0xFF, code, ident & 0xFF, n >> 8, n & 0xFF)) + data


def frame_lcp(code, ident, data=b""):
    """An LCP packet as a frame (Echo, Protocol-Reject: the engine's own)."""
    return make_frame(PROTO_LCP, code, ident, data)


def _md5(*parts):
    # RFC 1994 section 4.1 with algorithm 5: MD5 over the concatenation.
    h = hashlib.md5()
    for p in parts:
        h.update(p)
    return h.digest()


# ---------------------------------------------------------------- configuration
# The PPP profile's parameters (OpenL2TP names and defaults, openl2tp-api.md
# section 1.8) this engine uses, plus the session's credentials and the glue's
# callables. Intervals are seconds.
_DEFAULTS = (
    ("mru", 1500), ("mtu", 1500),
    ("auth_pap", True), ("auth_chap", True), ("auth_none", False), ("auth_peer", False),
    ("chap_interval", 10), ("chap_max_challenge", 10), ("chap_restart", 3),
    ("pap_max_auth_requests", 10), ("pap_restart_interval", 3), ("pap_timeout", 0),
    ("idle_timeout", 0), ("max_connect_time", 0),
    ("lcp_echo_interval", 0), ("lcp_echo_failure_count", 0),
    ("lcp_max_config_requests", 10), ("lcp_max_config_naks", 10),
    ("lcp_max_terminate_requests", 3), ("lcp_retransmit_interval", 3),
    ("ipcp_max_config_requests", 10), ("ipcp_max_config_naks", 10),
    ("ipcp_max_terminate_requests", 3), ("ipcp_retransmit_interval", 3),
    ("local_ipaddr", None), ("remote_ipaddr", None),
    ("dns_ipaddr_pri", None), ("dns_ipaddr_sec", None),
    ("wins_ipaddr_pri", None), ("wins_ipaddr_sec", None),
    ("ip_pool_name", None), ("local_name", None),
    ("user_name", None), ("user_password", None),
    ("secret_for", None),    # server: secret_for(user) -> password or None
    ("alloc_ip", None),      # server: alloc_ip(user) -> "a.b.c.d" or None
    ("passive", False),      # client: wait for the peer's LCP Configure-Request
)
# Counters and intervals: the names whose default is an int (bool is not).
_INTS = tuple(name for name, default in _DEFAULTS if type(default) is int)


class PPPConfig:
    """A resolved PPP profile plus session data. Takes the profile dict as
    keyword arguments; a None value means "the default"; names this engine has no
    use for (asyncmap, use_radius, ...) are kept in `ignored`."""

    def __init__(self, **kw):
        for name, default in _DEFAULTS:
            value = kw.pop(name, None)
            setattr(self, name, default if value is None else value)
        for name in _INTS:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise PPPError(f"{name} {value!r} must be an integer >= 0")
        if not 64 <= self.mru <= 65535:  # the PPP profile's limits
            raise PPPError(f"mru {self.mru} is outside 64..65535")
        for name in ("local_ipaddr", "remote_ipaddr", "dns_ipaddr_pri", "dns_ipaddr_sec",
                     "wins_ipaddr_pri", "wins_ipaddr_sec"):
            _addr(getattr(self, name))  # raises PPPError naming a bad one
        self.ignored = sorted(kw)


# ---------------------------------------------------------------- the automaton
INITIAL = "Initial"
STARTING = "Starting"
CLOSED = "Closed"
STOPPED = "Stopped"
CLOSING = "Closing"
STOPPING = "Stopping"
REQ_SENT = "Req-Sent"
ACK_RCVD = "Ack-Rcvd"
ACK_SENT = "Ack-Sent"
OPENED = "Opened"

# The states in which the Restart timer runs: those with TO events (section 4.1).
_TIMER_STATES = (CLOSING, STOPPING, REQ_SENT, ACK_RCVD, ACK_SENT)
_NEGOTIATING = (REQ_SENT, ACK_RCVD, ACK_SENT, OPENED)


def _table(*rows):
    """{(state, event): (action method names, next_state)} from rows (state,
    events, actions, next_state); events and actions separated by spaces."""
    table = {}
    for state, events, actions, nxt in rows:
        acts = tuple("act_" + a for a in actions.split())
        for event in events.split():
            assert (state, event) not in table, (state, event)  # a table typo
            table[(state, event)] = (acts, nxt)
    return table


# Ref: RFC1661 section 4.1, the state transition table, one row per cell; "-"
# cells (illegal events) are absent. The row marked + is not in the RFC.
FSM = _table(
    # State 0: Initial
    (INITIAL, "Up", "", CLOSED),
    (INITIAL, "Open", "tls", STARTING),
    (INITIAL, "Close", "", INITIAL),
    # State 1: Starting
    (STARTING, "Up", "irc scr", REQ_SENT),
    (STARTING, "Up-silent", "", STOPPED),  # + 4.2 Stopped, Implementation Option: wait
    (STARTING, "Open", "", STARTING),
    (STARTING, "Close", "tlf", INITIAL),
    # State 2: Closed
    (CLOSED, "Down", "", INITIAL),
    (CLOSED, "Open", "irc scr", REQ_SENT),
    (CLOSED, "Close", "", CLOSED),
    (CLOSED, "RCR+ RCR- RCA RCN RTR", "sta", CLOSED),
    (CLOSED, "RTA RXJ+ RXR", "", CLOSED),
    (CLOSED, "RUC", "scj", CLOSED),
    (CLOSED, "RXJ-", "tlf", CLOSED),
    # State 3: Stopped
    (STOPPED, "Down", "tls", STARTING),
    (STOPPED, "Open", "", STOPPED),  # [r] restart option not used
    (STOPPED, "Close", "", CLOSED),
    (STOPPED, "RCR+", "irc scr sca", ACK_SENT),
    (STOPPED, "RCR-", "irc scr scn", REQ_SENT),
    (STOPPED, "RCA RCN RTR", "sta", STOPPED),
    (STOPPED, "RTA RXJ+ RXR", "", STOPPED),
    (STOPPED, "RUC", "scj", STOPPED),
    (STOPPED, "RXJ-", "tlf", STOPPED),
    # State 4: Closing
    (CLOSING, "Down", "", INITIAL),
    (CLOSING, "Open", "", STOPPING),
    (CLOSING, "Close", "", CLOSING),
    (CLOSING, "TO+", "str", CLOSING),
    (CLOSING, "TO-", "tlf", CLOSED),
    (CLOSING, "RCR+ RCR- RCA RCN RXJ+ RXR", "", CLOSING),
    (CLOSING, "RTR", "sta", CLOSING),
    (CLOSING, "RTA", "tlf", CLOSED),
    (CLOSING, "RUC", "scj", CLOSING),
    (CLOSING, "RXJ-", "tlf", CLOSED),
    # State 5: Stopping
    (STOPPING, "Down", "", STARTING),
    (STOPPING, "Open", "", STOPPING),
    (STOPPING, "Close", "", CLOSING),
    (STOPPING, "TO+", "str", STOPPING),
    (STOPPING, "TO-", "tlf", STOPPED),
    (STOPPING, "RCR+ RCR- RCA RCN RXJ+ RXR", "", STOPPING),
    (STOPPING, "RTR", "sta", STOPPING),
    (STOPPING, "RTA", "tlf", STOPPED),
    (STOPPING, "RUC", "scj", STOPPING),
    (STOPPING, "RXJ-", "tlf", STOPPED),
    # State 6: Req-Sent
    (REQ_SENT, "Down", "", STARTING),
    (REQ_SENT, "Open", "", REQ_SENT),
    (REQ_SENT, "Close", "irc str", CLOSING),
    (REQ_SENT, "TO+", "scr", REQ_SENT),
    (REQ_SENT, "TO-", "tlf", STOPPED),  # [p] passive option not used
    (REQ_SENT, "RCR+", "sca", ACK_SENT),
    (REQ_SENT, "RCR-", "scn", REQ_SENT),
    (REQ_SENT, "RCA", "irc", ACK_RCVD),
    (REQ_SENT, "RCN", "irc scr", REQ_SENT),
    (REQ_SENT, "RTR", "sta", REQ_SENT),
    (REQ_SENT, "RTA RXJ+ RXR", "", REQ_SENT),
    (REQ_SENT, "RUC", "scj", REQ_SENT),
    (REQ_SENT, "RXJ-", "tlf", STOPPED),
    # State 7: Ack-Rcvd
    (ACK_RCVD, "Down", "", STARTING),
    (ACK_RCVD, "Open", "", ACK_RCVD),
    (ACK_RCVD, "Close", "irc str", CLOSING),
    (ACK_RCVD, "TO+", "scr", REQ_SENT),
    (ACK_RCVD, "TO-", "tlf", STOPPED),
    (ACK_RCVD, "RCR+", "sca tlu", OPENED),
    (ACK_RCVD, "RCR-", "scn", ACK_RCVD),
    (ACK_RCVD, "RCA RCN", "scr", REQ_SENT),  # [x] crossed connection
    (ACK_RCVD, "RTR", "sta", REQ_SENT),
    (ACK_RCVD, "RTA", "", REQ_SENT),
    (ACK_RCVD, "RUC", "scj", ACK_RCVD),
    (ACK_RCVD, "RXJ+ RXR", "", ACK_RCVD),
    (ACK_RCVD, "RXJ-", "tlf", STOPPED),
    # State 8: Ack-Sent
    (ACK_SENT, "Down", "", STARTING),
    (ACK_SENT, "Open", "", ACK_SENT),
    (ACK_SENT, "Close", "irc str", CLOSING),
    (ACK_SENT, "TO+", "scr", ACK_SENT),
    (ACK_SENT, "TO-", "tlf", STOPPED),
    (ACK_SENT, "RCR+", "sca", ACK_SENT),
    (ACK_SENT, "RCR-", "scn", REQ_SENT),
    (ACK_SENT, "RCA", "irc tlu", OPENED),
    (ACK_SENT, "RCN", "irc scr", ACK_SENT),
    (ACK_SENT, "RTR", "sta", REQ_SENT),
    (ACK_SENT, "RTA RXJ+ RXR", "", ACK_SENT),
    (ACK_SENT, "RUC", "scj", ACK_SENT),
    (ACK_SENT, "RXJ-", "tlf", STOPPED),
    # State 9: Opened
    (OPENED, "Down", "tld", STARTING),
    (OPENED, "Open", "", OPENED),
    (OPENED, "Close", "tld irc str", CLOSING),
    (OPENED, "RCR+", "tld scr sca", ACK_SENT),
    (OPENED, "RCR-", "tld scr scn", REQ_SENT),
    (OPENED, "RCA RCN", "tld scr", REQ_SENT),  # [x]
    (OPENED, "RTR", "tld zrc sta", STOPPING),
    (OPENED, "RTA", "tld scr", REQ_SENT),
    (OPENED, "RUC", "scj", OPENED),
    (OPENED, "RXJ+", "", OPENED),
    (OPENED, "RXJ-", "tld irc str", STOPPING),
    (OPENED, "RXR", "ser", OPENED),
)


class Automaton:
    """The RFC 1661 option negotiation automaton of one protocol (LCP or IPCP).

    `event(name, now, pkt)` and `receive(code, ident, data, raw, now)` return a
    list whose items are frames (bytes) to send and layer signals ("tlu", "tld",
    "tls", "tlf", strings) for the engine. `why` holds the latest reason this
    layer would give for finishing."""

    def __init__(self, name, proto, policy, max_configure, max_failure, max_terminate,
                 restart_s, log=None, stats=None):
        self.name = name
        self.proto = proto
        self.policy = policy
        self.max_configure = max(1, max_configure)   # section 4.6 counters
        self.max_failure = max(1, max_failure)
        self.max_terminate = max(1, max_terminate)
        self.restart_ms = max(1, restart_s) * 1000   # the Restart timer's period
        self.state = INITIAL
        self.restart = 0         # the Restart counter
        self.deadline = None     # when the Restart timer expires
        self.naks_sent = 0       # Configure-Naks sent since our last Configure-Ack
        self.naks_rcvd = 0       # Naks/Rejects received since the last Ack (loop guard)
        self.ident = 0           # Identifier of the last packet we originated
        self.req = None          # (identifier, options) of our outstanding Configure-Request
        self.verdict = None      # [(kind, type, value)] for the request being answered
        self.term_text = b""     # data for our Terminate-Request
        self.peer_mru = _DEFAULT_MRU  # bounds Code-Reject size (section 5.6)
        self.rxr_codes = ()      # codes that are RXR events (LCP: 9, 10, 11)
        self.why = None
        self.illegal = 0         # illegal events seen (also stats["illegal_events"])
        self.stats = stats
        self._log = log

    # -- the engine (about 30 lines, like fsm.py's)
    def event(self, event, now, pkt=None):
        row = FSM.get((self.state, event))
        if row is None:
            # Section 4.4 Illegal-Event: log it, take no transition, do not reset.
            self.illegal += 1
            if self.stats is not None:
                self.stats["illegal_events"] += 1
            self._say(f"illegal event {event} in state {self.state}")
            return []
        actions, nxt = row
        if event == "TO-" and self.state in _NEGOTIATING:
            self.why = f"no answer to {self.max_configure} Configure-Requests"
        out = []
        for act in actions:
            out += getattr(self, act)(now, nxt, pkt)
        if self.state != nxt:
            self._say(f"{self.state} --{event}--> {nxt}")
        self.state = nxt
        if nxt not in _TIMER_STATES:
            self.deadline = None  # section 4.1: the timer stops outside the TO states
        return out

    def on_timer(self, now):
        if self.deadline is None or now < self.deadline:
            return []
        # Section 4.3: TO+ while the Restart counter is above zero, else TO-.
        return self.event("TO+" if self.restart > 0 else "TO-", now)

    def receive(self, code, ident, data, raw, now):
        """One received packet of this protocol -> outputs, or None if malformed.

        This is where a packet becomes one of the section 4.3 events; the policy
        judges Configure-Requests and digests Naks and Rejects here, before the
        table is consulted, so actions only have to send."""
        pkt = (code, ident, data, raw)
        if code == CONF_REQ:
            opts = parse_options(data)
            if opts is None:
                return None
            # Section 4.3 RCR+/RCR-; past Max-Failure Naks turn into Rejects (4.6).
            self.verdict = self.policy.judge(opts, self.naks_sent < self.max_failure, ident)
            if self.policy.fatal:
                return []  # the policy gave up: the engine closes, no answer
            good = all(v[0] == "ack" for v in self.verdict)
            return self.event("RCR+" if good else "RCR-", now, pkt)
        if code == CONF_ACK:
            # Section 5.2: an Ack must match our request's Identifier and options.
            if self.req is None or ident != self.req[0] or data != self.req[1]:
                self._say("Configure-Ack does not match our request: discarded")
                return []
            self.req = None
            self.naks_rcvd = 0
            if self.state in _NEGOTIATING:
                self.policy.on_ack()
            return self.event("RCA", now, pkt)
        if code == CONF_NAK or code == CONF_REJ:
            opts = parse_options(data)
            if opts is None:
                return None
            if self.req is None or ident != self.req[0]:
                return []  # section 5.3/5.4: not the answer to our latest request
            self.req = None
            if self.state in _NEGOTIATING:
                self.naks_rcvd += 1
                if self.naks_rcvd > self.max_failure:  # section 4.5 loop avoidance
                    self.policy.fatal = self.policy.fatal or "negotiation does not converge"
                elif code == CONF_NAK:
                    self.policy.on_nak(opts)
                else:
                    self.policy.on_reject(opts)
                if self.policy.fatal:
                    # Nothing acceptable is left to ask for: no new request (it
                    # could only repeat what was refused); the engine closes.
                    return []
            return self.event("RCN", now, pkt)
        if code == TERM_REQ:
            # Section 5.5: the data field is uninterpreted; peers put a reason there.
            self.why = "the peer sent Terminate-Request"
            if data:
                self.why += f" ({_text(data)})"
            return self.event("RTR", now, pkt)
        if code == TERM_ACK:
            return self.event("RTA", now, pkt)
        if code == CODE_REJ:
            if not data:
                return None
            # Section 5.6: a rejected code this protocol cannot do without is RXJ-.
            if data[0] <= CODE_REJ:
                self.why = f"the peer rejected {self.name} code {data[0]}"
                return self.event("RXJ-", now, pkt)
            return self.event("RXJ+", now, pkt)
        if code in self.rxr_codes:
            return self.event("RXR", now, pkt)  # section 4.3: Echo and Discard
        return self.event("RUC", now, pkt)      # section 4.3: answered by Code-Reject

    def assume_opened(self):
        """Proxy LCP (RFC 2661 section 4.4.5): the negotiation took place between
        the peer and the LAC, and its result was adopted by the policy. Start in
        Opened as if our Configure-Request had been Acked and we had Acked the
        peer's (no timer, no counters running) -> the "tlu" signal."""
        self._say(f"{self.state} --proxy--> {OPENED}")
        self.state = OPENED
        self.req = None
        self.restart = 0
        self.deadline = None
        self.naks_rcvd = self.naks_sent = 0
        return ["tlu"]

    # -- actions (section 4.4); each returns a list of frames and signals.
    # The four layer actions only report: the engine decides what Up, Down,
    # Started and Finished mean for the phases and the other automaton.
    def act_tlu(self, now, nxt, pkt):
        return ["tlu"]

    def act_tld(self, now, nxt, pkt):
        return ["tld"]

    def act_tls(self, now, nxt, pkt):
        return ["tls"]

    def act_tlf(self, now, nxt, pkt):
        return ["tlf"]

    def act_irc(self, now, nxt, pkt):
        # Max-Terminate when heading for Closing/Stopping, else Max-Configure.
        closing = nxt == CLOSING or nxt == STOPPING
        self.restart = self.max_terminate if closing else self.max_configure
        return []

    def act_zrc(self, now, nxt, pkt):
        # Zero the counter but let the timer run once, so the peer sees our Ack.
        self.restart = 0
        self.deadline = now + self.restart_ms
        return []

    def act_scr(self, now, nxt, pkt):
        # Section 5.1: a new Identifier for every request (retransmissions too).
        opts = encode_options(self.policy.request())
        self.ident = (self.ident + 1) & 0xFF
        self.req = (self.ident, opts)
        self.restart -= 1
        self.deadline = now + self.restart_ms
        return [make_frame(self.proto, CONF_REQ, self.ident, opts)]

    def act_sca(self, now, nxt, pkt):
        # Section 5.2: the Ack repeats the peer's options unchanged.
        self.policy.commit(self.verdict)
        self.naks_sent = 0
        return [make_frame(self.proto, CONF_ACK, pkt[1], pkt[2])]

    def act_scn(self, now, nxt, pkt):
        # Section 5.4 first: any option to reject means a Reject listing only
        # those; otherwise a Nak with our suggested values (section 5.3).
        rej = [(t, v) for kind, t, v in self.verdict if kind == "rej"]
        if rej:
            return [make_frame(self.proto, CONF_REJ, pkt[1], encode_options(rej))]
        self.naks_sent += 1
        nak = [(t, v) for kind, t, v in self.verdict if kind == "nak"]
        return [make_frame(self.proto, CONF_NAK, pkt[1], encode_options(nak))]

    def act_str(self, now, nxt, pkt):
        # Section 5.5: Terminate-Request, retransmitted on TO+ up to Max-Terminate;
        # its data carries our reason (the peer may log it).
        self.ident = (self.ident + 1) & 0xFF
        self.restart -= 1
        self.deadline = now + self.restart_ms
        return [make_frame(self.proto, TERM_REQ, self.ident, self.term_text)]

    def act_sta(self, now, nxt, pkt):
        # Section 5.5: the Ack takes the Identifier of the packet that caused it.
        return [make_frame(self.proto, TERM_ACK, pkt[1] if pkt else 0)]

    def act_scj(self, now, nxt, pkt):
        # Section 5.6: the rejected packet, truncated to fit the peer's MRU.
        return [make_frame(self.proto, CODE_REJ, self._next_ident(), pkt[3][:self.peer_mru - 4])]

    def act_ser(self, now, nxt, pkt):
        # Section 5.8: only an Echo-Request is answered; Echo-Reply and
        # Discard-Request are RXR events too but need nothing.
        if pkt[0] != ECHO_REQ or len(pkt[2]) < 4:
            return []
        return [make_frame(self.proto, ECHO_REP, pkt[1], self.policy.magic_field() + pkt[2][4:])]

    def _next_ident(self):
        self.ident = (self.ident + 1) & 0xFF
        return self.ident

    def _say(self, msg):
        if self._log is not None:
            self._log(f"{self.name}: {msg}")


# ---------------------------------------------------------------- LCP policy
# Authentication methods as the value of an Auth-Protocol option (RFC 1661
# section 6.2): the protocol, and for CHAP the Algorithm octet (RFC 1994
# section 3). A method is its value: CHAP-MD5 and MS-CHAPv2 are two methods.
AUTH_PAP = b"\xc0\x23"
AUTH_CHAP_MD5 = b"\xc2\x23\x05"
_AUTH_NAMES = {
    AUTH_PAP: "PAP",
    AUTH_CHAP_MD5: "CHAP-MD5",
    b"\xc2\x23\x80": "MS-CHAP (CHAP algorithm 0x80)",    # RFC 2433
    b"\xc2\x23\x81": "MS-CHAPv2 (CHAP algorithm 0x81)",  # RFC 2759
    b"\xc2\x27": "EAP",                                   # RFC 3748
}


def auth_method(v):
    """The method an Auth-Protocol option value names (the protocol, plus the
    Algorithm octet for CHAP), as bytes comparable with AUTH_PAP etc."""
    return bytes(v[:3]) if len(v) >= 2 and _u16(v) == PROTO_CHAP else bytes(v[:2])


def auth_name(v):
    """An Auth-Protocol option value in words: PAP, CHAP-MD5, MS-CHAPv2 ..."""
    m = auth_method(v)
    name = _AUTH_NAMES.get(m)
    if name is not None:
        return name
    if len(m) < 2:
        return "a malformed Auth-Protocol option"
    if _u16(m) == PROTO_CHAP:
        return f"CHAP algorithm 0x{m[2]:02x}" if len(m) == 3 else "CHAP without an algorithm"
    return f"authentication protocol 0x{_u16(m):04x}"


class LcpPolicy:
    """What LCP asks for and what it accepts (RFC 1661 section 6).

    Our request: MRU (only when not 1500), Auth-Protocol (when we authenticate
    the peer), Magic-Number. Of the peer's: MRU, Auth-Protocol (when we have
    credentials and the protocol is allowed) and Magic-Number are judged; every
    other option (ACCM, PFC, ACFC, MRRU, Endpoint Discriminator, ...) is Rejected."""

    def __init__(self, role, cfg, rng):
        self.cfg = cfg
        self.rng = rng
        self.mru = cfg.mru                  # what we ask to receive
        self.send_mru = cfg.mru != _DEFAULT_MRU
        self.magic = self._new_magic()
        self.send_magic = True
        # Server: authenticate the peer unless auth_none (OpenL2TP documents
        # auth_peer as YES for servers); client: only if auth_peer asks for it.
        require = cfg.auth_peer or (role == "server" and not cfg.auth_none)
        self.auth_choices = []              # methods, in order of preference, CHAP first
        if require and cfg.auth_chap:
            self.auth_choices.append(AUTH_CHAP_MD5)
        if require and cfg.auth_pap:
            self.auth_choices.append(AUTH_PAP)
        self.auth = self.auth_choices[0] if self.auth_choices else None  # the method we ask for
        # Methods the peer refused (Nak'd to another, or Rejected): never asked
        # for again on this link (section 6.2: then try the next most desirable).
        self.refused = []
        # Methods the peer asked us to authenticate with that we cannot, by the
        # Identifier of the request we Nak'd or Rejected them in.
        self.declined = {}
        self.fatal = None
        if require and self.auth is None:
            self.fatal = "authentication is required but neither auth_chap nor auth_pap is allowed"
        self.can_auth = bool(cfg.user_name)  # we have credentials to show
        # Agreed values.
        self.our_auth = None                # the peer must authenticate with this (protocol)
        self.peer_auth = None               # we must authenticate with this (protocol)
        self.peer_mru = _DEFAULT_MRU
        self.peer_magic = 0
        self.agreed_mru = _DEFAULT_MRU

    def _new_magic(self):
        while True:  # section 6.4: zero is not a magic number
            m = _u32(self.rng(4))
            if m:
                return m

    def magic_field(self):
        # Section 6.4: zero stands in where no magic number was agreed.
        return (self.magic if self.send_magic else 0).to_bytes(4, "big")

    def request(self):
        opts = []
        if self.send_mru:
            opts.append((LCP_MRU, self.mru.to_bytes(2, "big")))
        if self.auth is not None:
            opts.append((LCP_AUTH, self.auth))
        if self.send_magic:
            opts.append((LCP_MAGIC, self.magic.to_bytes(4, "big")))
        return opts

    def judge(self, opts, may_nak, ident=None):
        """[(verdict, type, value)] for the peer's options, verdict "ack", "nak"
        or "rej". `ident` is the request's Identifier; None judges without
        remembering anything (a proxied request, RFC 2661 section 4.4.5)."""
        out = []
        for t, v in opts:
            if t == LCP_MRU and len(v) == 2:
                # Section 6.1: we can always send less than we may; we refuse
                # an MRU too small for an IP header and options.
                if _u16(v) >= _MIN_MRU:
                    out.append(("ack", t, v))
                else:
                    out.append(("nak", t, _MIN_MRU.to_bytes(2, "big")))
            elif t == LCP_AUTH and len(v) >= 2:
                out.append(self._judge_auth(v, ident))
            elif t == LCP_MAGIC and len(v) == 4:
                m = _u32(v)
                if m == 0 or (self.send_magic and m == self.magic):
                    # Section 6.4: zero, or our own number (maybe a looped-back
                    # link): Nak with a different value.
                    out.append(("nak", t, self._new_magic().to_bytes(4, "big")))
                else:
                    out.append(("ack", t, v))
            else:
                # ACCM (2), Quality (4), PFC (7), ACFC (8), MRRU (17), SSNHF (18),
                # Endpoint Discriminator (19), callback, anything unknown, or a
                # known option with a wrong length: Reject (section 5.4).
                out.append(("rej", t, v))
            if out[-1][0] == "nak" and not may_nak:
                out[-1] = ("rej", t, v)  # section 4.6 Max-Failure
        return out

    def _judge_auth(self, v, ident):
        # Section 6.2: the peer names how we must authenticate ourselves.
        cfg = self.cfg
        m = auth_method(v)
        if self.can_auth:
            if v == AUTH_CHAP_MD5 and cfg.auth_chap:
                return ("ack", LCP_AUTH, v)
            if v == AUTH_PAP and cfg.auth_pap:
                return ("ack", LCP_AUTH, v)
        # Something we cannot do (MS-CHAP, EAP, a method the profile refuses,
        # or no credentials at all). We say so once; a peer that asks for the
        # same method again in a new request (section 5.1: a new Identifier
        # once it had our reply; a retransmission may keep the old one) insists,
        # and negotiating on until Max-Failure would only hide why it fails.
        if ident is not None:
            before = self.declined.get(m)
            if before is not None and before != ident:
                if self.can_auth:
                    self.fatal = (f"the peer requires us to authenticate with {auth_name(v)},"
                                  " which this PPP profile does not allow")
                else:
                    self.fatal = (f"the peer requires us to authenticate with {auth_name(v)},"
                                  " and we have no credentials (user_name)")
            self.declined[m] = ident
        if self.can_auth and (cfg.auth_chap or cfg.auth_pap):
            # Section 5.3: Nak with what we can do, our preference first.
            return ("nak", LCP_AUTH, AUTH_CHAP_MD5 if cfg.auth_chap else AUTH_PAP)
        return ("rej", LCP_AUTH, v)

    def commit(self, verdict):
        # Called when we Ack (section 5.2): the peer's request is now the
        # agreement. An option it left out takes its default (section 6).
        self.peer_auth = None
        self.peer_mru = _DEFAULT_MRU
        for _kind, t, v in verdict:
            if t == LCP_MRU:
                self.peer_mru = _u16(v)
            elif t == LCP_AUTH:
                self.peer_auth = _u16(v)
            elif t == LCP_MAGIC:
                self.peer_magic = _u32(v)

    def on_ack(self):
        # Our request was acknowledged as sent: the peer will authenticate with
        # self.auth and respects our MRU.
        self.our_auth = _u16(self.auth) if self.auth is not None else None
        self.agreed_mru = self.mru if self.send_mru else _DEFAULT_MRU

    def on_nak(self, opts):
        # Section 5.3: adjust what we ask for; options we did not ask for and
        # values we cannot take are ignored (the next request says so again).
        for t, v in opts:
            if t == LCP_MRU and len(v) == 2 and _u16(v) >= _MIN_MRU:
                self.mru = _u16(v)
                self.send_mru = True
            elif t == LCP_MAGIC:
                self.magic = self._new_magic()  # section 6.4: choose a new one
            elif t == LCP_AUTH and self.auth is not None and len(v) >= 2:
                self._next_auth(v)

    def _next_auth(self, suggested):
        # Section 6.2: a Nak of Auth-Protocol refuses the method we asked for
        # and suggests one. Take the suggestion if we allow it and it was never
        # refused, else the next method not refused; none left: give up at once,
        # naming what the peer wanted (the automaton then sends no request).
        if self.auth not in self.refused:
            self.refused.append(self.auth)
        want = auth_method(suggested)
        if want in self.auth_choices and want not in self.refused:
            self.auth = want
            return
        for m in self.auth_choices:
            if m not in self.refused:
                self.auth = m
                return
        if want in self.auth_choices:
            why = f"the peer wants {auth_name(want)}, which it refused before"
        else:
            why = f"the peer wants {auth_name(want)}, which this PPP profile does not allow"
        self.fatal = why + f" (refused: {', '.join(auth_name(m) for m in self.refused)})"

    def on_reject(self, opts):
        # Section 5.4: never ask for a rejected option again in this negotiation;
        # only Auth-Protocol is one we cannot do without.
        for t, _v in opts:
            if t == LCP_MRU:
                self.send_mru = False
                self.mru = _DEFAULT_MRU
            elif t == LCP_MAGIC:
                self.send_magic = False  # section 6.4: act as if it were acked
            elif t == LCP_AUTH and self.auth is not None:
                # A Reject refuses the option, not one method: the peer will
                # not authenticate at all (pppd reads it so too).
                if self.auth not in self.refused:
                    self.refused.append(self.auth)
                self.fatal = "the peer refused to authenticate (Configure-Reject of Auth-Protocol)"

    # -- Proxy LCP (RFC 2661 section 4.4.5): the LAC negotiated LCP with the peer
    def proxy_check(self, sent, received):
        """Can we carry on with the LCP agreement a LAC made with the peer?
        `sent`: the options of the LAC's last Configure-Request to the peer (what
        the peer agreed to give us); `received`: those of the peer's last one
        (what the LAC, now we, agreed to). Returns (why_not, verdict, sent_opts):
        why_not is None when the agreement is one we would have made ourselves."""
        if sent is None or received is None:
            return "no proxied LCP (Last Sent and Last Received LCP CONFREQ)", None, None
        sopts = parse_options(bytes(sent))
        ropts = parse_options(bytes(received))
        if sopts is None or ropts is None:
            return "the proxied LCP CONFREQ is malformed", None, None
        # The peer's request: every option must be one our judge would Ack.
        verdict = self.judge(ropts, True, None)
        bad = [_option_name(t) for kind, t, _v in verdict if kind != "ack"]
        if bad:
            why = f"the peer's proxied request has {', '.join(bad)}, which we would not accept"
            return why, None, None
        for _kind, t, _v in verdict:
            if t == LCP_AUTH:
                # It wanted the LAC to authenticate itself: we cannot take over
                # an exchange we did not see.
                return "the peer asked the LAC to authenticate itself", None, None
        peer_magic = None
        for _kind, t, v in verdict:
            if t == LCP_MAGIC:
                peer_magic = v
        # The LAC's request: only what we ask for ourselves, with values we would
        # accept in a Nak (MRU at least _MIN_MRU, section 6.1; a non-zero magic
        # number that is not the peer's, section 6.4).
        for t, v in sopts:
            if t == LCP_MRU and len(v) == 2 and _u16(v) >= _MIN_MRU:
                continue
            if t == LCP_MAGIC and len(v) == 4 and _u32(v) != 0 and bytes(v) != peer_magic:
                continue
            if t == LCP_AUTH and len(v) >= 2:
                continue
            why = (f"the LAC's proxied request has {_option_name(t)} {_hex(v)},"
                   " which we would not ask for or accept")
            return why, None, None
        return None, verdict, sopts

    def proxy_adopt(self, verdict, sent):
        """Take a proxied agreement (proxy_check found it acceptable) as if LCP
        had just opened: the peer's options as we had Acked them, ours as if the
        peer had Acked our request (RFC 1661 section 6: what is left out takes
        its default)."""
        self.commit(verdict)
        self.send_mru = False
        self.mru = _DEFAULT_MRU
        self.send_magic = False
        self.auth = None
        for t, v in sent:
            if t == LCP_MRU:
                self.mru = _u16(v)
                self.send_mru = True
            elif t == LCP_MAGIC:
                self.magic = _u32(v)
                self.send_magic = True
            elif t == LCP_AUTH and self.auth_choices:
                self.auth = auth_method(v)  # the engine checked it is one we allow
        self.on_ack()


_LCP_OPTION_NAMES = {LCP_MRU: "MRU", LCP_ACCM: "ACCM", LCP_AUTH: "Auth-Protocol",
                     LCP_QUALITY: "Quality-Protocol", LCP_MAGIC: "Magic-Number",
                     LCP_PFC: "PFC", LCP_ACFC: "ACFC", LCP_MRRU: "MRRU", LCP_SSNHF: "SSNHF",
                     LCP_ENDPOINT: "Endpoint-Discriminator"}


def _option_name(t):
    return _LCP_OPTION_NAMES.get(t) or f"option {t}"


def _hex(b):
    return "".join(f"{c:02x}" for c in b)


# ---------------------------------------------------------------- IPCP policy
class IpcpPolicy:
    """What IPCP asks for and what it accepts (RFC 1332 section 3, RFC 1877).

    The address we give the peer (`peer_want`: the server's remote_ipaddr or a
    pool address) is Nak'd into a peer that asks for another or none. The client
    asks for 0.0.0.0 and takes the Nak's value, the same for DNS. DNS and NBNS
    addresses we have configured are offered; anything else is Rejected."""

    def __init__(self, role, cfg):
        self.role = role
        self.fixed = _addr(cfg.local_ipaddr)
        # Our address: the configured one; a client without one asks for 0.0.0.0;
        # a server without one sends no IP-Address option.
        self.our_ip = self.fixed or (_ZERO_IP if role == "client" else None)
        self.send_ip = self.our_ip is not None
        self.peer_want = None   # set by the engine before IPCP starts (server)
        self.peer_ip = None
        # RFC 1877: what we offer (configured) and what the client asks for.
        self.offer = {IPCP_DNS_PRI: _addr(cfg.dns_ipaddr_pri),
                      IPCP_DNS_SEC: _addr(cfg.dns_ipaddr_sec),
                      IPCP_NBNS_PRI: _addr(cfg.wins_ipaddr_pri),
                      IPCP_NBNS_SEC: _addr(cfg.wins_ipaddr_sec)}
        self.ask = [IPCP_DNS_PRI, IPCP_DNS_SEC] if role == "client" else []
        self.dns = {IPCP_DNS_PRI: _ZERO_IP, IPCP_DNS_SEC: _ZERO_IP}
        self.fatal = None

    def magic_field(self):  # IPCP has no Echo (RFC 1332 section 2)
        return b""

    def request(self):
        opts = []
        if self.send_ip:
            opts.append((IPCP_ADDRESS, self.our_ip))
        for t in self.ask:
            opts.append((t, self.dns[t]))
        return opts

    def judge(self, opts, may_nak, ident=None):
        out = []
        seen_addr = False
        for t, v in opts:
            if t == IPCP_ADDRESS and len(v) == 4:
                seen_addr = True
                if self.peer_want is not None:
                    # RFC 1332 3.3: Nak with the address the peer is to use.
                    out.append(("ack", t, v) if v == self.peer_want else ("nak", t, self.peer_want))
                elif v != _ZERO_IP:
                    out.append(("ack", t, v))    # the peer knows its address
                else:
                    out.append(("rej", t, v))    # it asks, and we have none to give
            elif t in self.offer and len(v) == 4 and self.offer[t] is not None:
                # RFC 1877 section 1: Nak with the address we offer.
                out.append(("ack", t, v) if v == self.offer[t] else ("nak", t, self.offer[t]))
            else:
                # IP-Compression-Protocol (2), IP-Addresses (1), DNS/NBNS we do not
                # offer, anything unknown or of the wrong length.
                out.append(("rej", t, v))
            if out[-1][0] == "nak" and not may_nak:
                out[-1] = ("rej", t, v)
        if not seen_addr and self.peer_want is not None and may_nak:
            # RFC 1661 section 5.3: a Nak may add an option the peer left out;
            # past Max-Failure we stop adding it.
            out.append(("nak", IPCP_ADDRESS, self.peer_want))
        return out

    def commit(self, verdict):
        # The address the peer claimed and we acknowledged is its address.
        for _kind, t, v in verdict:
            if t == IPCP_ADDRESS:
                self.peer_ip = v

    def on_ack(self):
        pass

    def on_nak(self, opts):
        # RFC 1332 section 3.3 / RFC 1877: the Nak carries the value to use. A
        # configured local_ipaddr is kept (the peer may then give up on us).
        for t, v in opts:
            if t == IPCP_ADDRESS and len(v) == 4 and self.fixed is None and self.send_ip:
                self.our_ip = v       # the client takes what the server assigns
            elif t in self.ask and len(v) == 4:
                self.dns[t] = v

    def on_reject(self, opts):
        # A client that needs an address cannot go on without one; a rejected
        # DNS request just means the server has none to give (RFC 1877).
        for t, _v in opts:
            if t == IPCP_ADDRESS:
                if self.our_ip == _ZERO_IP:
                    self.fatal = "the peer refused to give us an IP address"
                self.send_ip = False
            elif t in self.ask:
                self.ask.remove(t)


# ---------------------------------------------------------------- authentication
class Authenticator:
    """We authenticate the peer: CHAP-MD5 (RFC 1994) or PAP (RFC 1334).

    `result` is set when an outcome is known: ("ok", user) or ("fail", user,
    reason); the engine consumes it. `pending` is true until the first success."""

    def __init__(self, cfg, rng):
        self.cfg = cfg
        self.rng = rng
        self.proto = None
        self.pending = False
        self.deadline = None
        self.result = None
        self.user = None
        self.ident = 0
        self.challenge = None    # the current Challenge frame
        self.value = b""
        self.tries = 0
        self.answer = None       # the reply frame given for the current Identifier

    def start(self, proto, now):
        """LCP opened with `proto` agreed: RFC 1994 section 2 has the authenticator
        send the first Challenge; RFC 1334 section 2 has the peer speak first."""
        self.proto = proto
        self.pending = True
        self.user = None
        if proto == PROTO_CHAP:
            return self._challenge(now)
        # PAP: the peer sends first; pap_timeout bounds the wait (0 = none).
        t = self.cfg.pap_timeout
        self.deadline = now + t * 1000 if t else None
        return []

    def stop(self):
        self.proto = None
        self.pending = False
        self.deadline = None

    def proxy(self, proto, user, ident, challenge, response, now):
        """Check the credentials a LAC collected from the peer (RFC 2661 section
        4.4.5, Proxy Authen AVPs) as if the peer had just sent them to us, and
        answer the peer for the LAC with the proxied Identifier (the peer still
        waits for CHAP Success or PAP Authenticate-Ack). `proto` is what the
        proxied LCP agreed; for PAP `response` is the password in clear and
        `ident` may be None (then the peer's retransmitted Authenticate-Request
        gets our answer)."""
        self.proto = proto
        self.pending = True
        self.user = None
        self.deadline = None
        secret = self._secret(user)
        if proto == PROTO_CHAP:
            # RFC 1994 section 4.1: MD5(Identifier | secret | Challenge).
            ok = (secret is not None and len(response) == 16
                  and response == _md5(bytes((ident,)), _bytes(secret), challenge))
            self.ident = ident
            self.value = challenge
            self.tries = 1
            msg = b"Authenticated" if ok else b"Authentication failed"
            self.answer = make_frame(PROTO_CHAP, CHAP_SUCCESS if ok else CHAP_FAILURE, ident, msg)
            out = [self.answer]
            if ok and self.cfg.chap_interval:
                self.deadline = now + self.cfg.chap_interval * 1000  # re-challenge as usual
            what = "CHAP"
        else:
            # RFC 1334 section 2.2.1: the password is compared as sent.
            ok = secret is not None and response == _bytes(secret)
            msg = b"Authenticated" if ok else b"Authentication failed"
            out = [] if ident is None else [
                make_frame(PROTO_PAP, PAP_ACK if ok else PAP_NAK, ident, bytes((len(msg),)) + msg)]
            what = "PAP"
        self._outcome(ok, user, "proxy " + what)
        if not ok:
            why = "no secret for this user" if secret is None else (
                f"the proxied {what} credentials do not match the secret")
            self.result = ("fail", user, f"proxy authentication failed for user {user} ({why})")
        return out

    def _challenge(self, now):
        # RFC 1994 section 4.1: a new Identifier and a new random value each time.
        self.ident = (self.ident + 1) & 0xFF
        self.value = self.rng(_CHALLENGE_LEN)
        name = _bytes(self.cfg.local_name or "l2tpd")
        # Value-Size, Value, Name: our name lets the peer pick its secret.
        self.challenge = make_frame(PROTO_CHAP, CHAP_CHALLENGE, self.ident,
                                    bytes((_CHALLENGE_LEN,)) + self.value + name)
        self.answer = None
        self.tries = 1
        self.deadline = now + max(1, self.cfg.chap_restart) * 1000
        return [self.challenge]

    def on_timer(self, now):
        if self.deadline is None or now < self.deadline:
            return []
        self.deadline = None
        if self.proto == PROTO_PAP:
            self.result = ("fail", None, f"PAP: no Authenticate-Request within "
                                         f"{self.cfg.pap_timeout} s")
            return []
        if self.answer is not None:
            return self._challenge(now)   # RFC 1994 section 2: challenge again
        if self.tries >= max(1, self.cfg.chap_max_challenge):
            self.result = ("fail", None, f"CHAP: no Response to {self.tries} Challenges")
            return []
        self.tries += 1
        self.deadline = now + max(1, self.cfg.chap_restart) * 1000
        return [self.challenge]

    def receive(self, proto, code, ident, data, now):
        """A PAP/CHAP packet from the peer -> frames; None when malformed."""
        if proto != self.proto:
            return []
        if proto == PROTO_CHAP:
            return self._chap(code, ident, data, now)
        return self._pap(code, ident, data)

    def _chap(self, code, ident, data, now):
        # RFC 1994 section 4.1: Response = Value-Size, Value, Name; we look the
        # secret up by Name and compare with our own MD5. Section 4.2: Success or
        # Failure copies the Response's Identifier.
        if code != CHAP_RESPONSE:
            return []
        if not data or 1 + data[0] > len(data):
            return None
        if ident != self.ident:
            return []  # RFC 1994 section 4.1: not for the current Challenge
        if self.answer is not None:
            return [self.answer]  # a lost Success/Failure: the same reply again
        n = data[0]
        user = _text(data[1 + n:])
        secret = self._secret(user)
        ok = (secret is not None and n == 16
              and data[1:17] == _md5(bytes((ident,)), _bytes(secret), self.value))
        if ok and self.user is not None and user != self.user:
            ok = False  # a re-challenge must not change who is logged in
        code = CHAP_SUCCESS if ok else CHAP_FAILURE
        msg = b"Authenticated" if ok else b"Authentication failed"
        self.answer = make_frame(PROTO_CHAP, code, ident, msg)
        self.deadline = None
        if ok and self.cfg.chap_interval:
            # Section 2 step 4: challenge again at intervals (pppd's chap-interval).
            self.deadline = now + self.cfg.chap_interval * 1000
        self._outcome(ok, user, "CHAP")
        return [self.answer]

    def _pap(self, code, ident, data):
        if code != PAP_REQ:
            return []
        # RFC 1334 section 2.2.1: Peer-ID Length, Peer-ID, Passwd-Length, Password.
        if not data or 2 + data[0] > len(data) or 2 + data[0] + data[1 + data[0]] > len(data):
            return None
        n = data[0]
        user = _text(data[1:1 + n])
        password = data[2 + n:2 + n + data[1 + n]]
        # Section 2.2.2: Ack or Nak with the Request's Identifier and a message.
        # A repeated Request (our Ack lost) is simply judged again.
        secret = self._secret(user)
        ok = secret is not None and password == _bytes(secret)
        msg = b"Authenticated" if ok else b"Authentication failed"
        self.deadline = None
        self._outcome(ok, user, "PAP")
        return [make_frame(PROTO_PAP, PAP_ACK if ok else PAP_NAK, ident, bytes((len(msg),)) + msg)]

    def _secret(self, user):
        # The glue's lookup (a secrets file); no lookup means nobody gets in.
        fn = self.cfg.secret_for
        return fn(user) if fn is not None else None

    def _outcome(self, ok, user, what):
        # Only the first success is news for the engine; any failure ends the link.
        if ok:
            if self.pending:
                self.result = ("ok", user)
            self.pending = False
            self.user = user
        else:
            self.result = ("fail", user, f"{what} authentication of {user!r} failed")


class Authenticatee:
    """We authenticate ourselves to the peer with user_name / user_password.
    `result` is None or ("fail", None, reason); `pending` until accepted."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.proto = None
        self.pending = False
        self.deadline = None
        self.result = None
        self.ident = 0
        self.tries = 0

    def start(self, proto, now):
        self.proto = proto
        self.pending = True
        self.tries = 0
        if proto == PROTO_PAP:
            return self._pap_request(now)  # RFC 1334 section 2.1: the peer sends first
        return []                          # CHAP: wait for the Challenge

    def stop(self):
        self.proto = None
        self.pending = False
        self.deadline = None

    def _pap_request(self, now):
        # RFC 1334 section 2.2.1: a new Identifier for every Authenticate-Request.
        self.tries += 1
        self.ident = (self.ident + 1) & 0xFF
        self.deadline = now + max(1, self.cfg.pap_restart_interval) * 1000
        user = _bytes(self.cfg.user_name)[:255]
        pw = _bytes(self.cfg.user_password)[:255]
        data = bytes((len(user),)) + user + bytes((len(pw),)) + pw
        return [make_frame(PROTO_PAP, PAP_REQ, self.ident, data)]

    def on_timer(self, now):
        if self.deadline is None or now < self.deadline:
            return []
        self.deadline = None
        if self.tries >= max(1, self.cfg.pap_max_auth_requests):
            self.result = ("fail", None, f"PAP: no answer to {self.tries} Authenticate-Requests")
            return []
        return self._pap_request(now)

    def receive(self, proto, code, ident, data, now):
        """The authenticator's packets -> our answers; None when malformed."""
        if proto != self.proto:
            return []  # not what LCP agreed: silently discarded
        if proto == PROTO_PAP:
            # RFC 1334 section 2.2.2: only the answer to our latest Request counts.
            if code not in (PAP_ACK, PAP_NAK) or ident != self.ident or not self.pending:
                return []
            if code == PAP_ACK:
                self.pending = False
                self.deadline = None
            else:
                msg = data[1:1 + data[0]] if data else b""
                self.result = ("fail", None, "PAP: the peer refused our credentials"
                               + (f" ({_text(msg)})" if msg else ""))
            return []
        if code == CHAP_CHALLENGE:
            if not data or data[0] == 0 or 1 + data[0] > len(data):
                return None
            # RFC 1994 section 4.1: Value = MD5(Identifier | secret | Challenge).
            value = _md5(bytes((ident,)), _bytes(self.cfg.user_password), data[1:1 + data[0]])
            self.ident = ident
            return [make_frame(PROTO_CHAP, CHAP_RESPONSE, ident,
                               bytes((16,)) + value + _bytes(self.cfg.user_name))]
        # RFC 1994 section 4.2: Success/Failure for the Response we sent last.
        if ident != self.ident:
            return []
        if code == CHAP_SUCCESS:
            self.pending = False
        elif code == CHAP_FAILURE:
            self.result = ("fail", None, "CHAP: the peer refused our credentials"
                           + (f" ({_text(data)})" if data else ""))
        return []


# ---------------------------------------------------------------- the engine
class PPPEngine:
    """One end of one PPP link. See the module's theory for the contract.

    role "server" (the LNS side) authenticates the peer and assigns its address;
    "client" (the LAC / dial-in side) authenticates itself and takes the address
    it is given. The engine owns the phases of RFC 1661 section 3: it starts and
    stops the automata, the two sides of authentication and the timers that are
    not the Restart timer (echo, idle, connect time)."""

    def __init__(self, role, config, rng, log=None):
        if role not in ("server", "client"):
            raise PPPError(f"role {role!r} is neither 'server' nor 'client'")
        cfg = config
        self.role = role
        self.cfg = cfg
        self.rng = rng
        self._log = log
        self.stats = dict.fromkeys(_COUNTERS, 0)
        self.phase = DEAD
        self.lcp = Automaton("LCP", PROTO_LCP, LcpPolicy(role, cfg, rng),
                             cfg.lcp_max_config_requests, cfg.lcp_max_config_naks,
                             cfg.lcp_max_terminate_requests, cfg.lcp_retransmit_interval,
                             log, self.stats)
        self.lcp.rxr_codes = (ECHO_REQ, ECHO_REP, DISCARD_REQ)
        self.ipcp = Automaton("IPCP", PROTO_IPCP, IpcpPolicy(role, cfg),
                              cfg.ipcp_max_config_requests, cfg.ipcp_max_config_naks,
                              cfg.ipcp_max_terminate_requests, cfg.ipcp_retransmit_interval,
                              log, self.stats)
        self.authenticator = Authenticator(cfg, rng)
        self.authenticatee = Authenticatee(cfg)
        self.user = cfg.user_name if role == "client" else None
        self.allocated_ip = None   # what alloc_ip gave us: the glue frees it
        self.reason = None         # the first cause of the link going down
        self.done = False
        self._out = []
        self._events = []
        self._now = 0
        self.echo_deadline = None
        self.echo_pending = 0      # Echo-Requests sent since the last Echo-Reply
        self.echo_ident = 0
        self.echo_rejected = False
        self.idle_deadline = None
        self.last_ip = 0
        self.connect_deadline = None
        self._proxy_creds = None   # (user, ident, challenge, response) to check at LCP up

    @property
    def state(self):
        """The phase (RFC 1661 section 3.2): dead, establish, authenticate,
        network or terminate. eng.lcp.state / eng.ipcp.state are the automata's."""
        return self.phase

    # -- the contract
    def open(self, now, proxy=None):
        """Lower layer up: the server sends its LCP Configure-Request; a passive
        client waits for the peer's (RFC 1661 section 4.3 Up and Open).

        `proxy` (server only; a client given one raises PPPError) is what a LAC
        forwarded in its ICCN (RFC 2661 section 4.4.5, Proxy LCP and Proxy
        Authen AVPs), a dict with any of these keys (fsm's session-up names):
          "initial_received_lcp_confreq", "last_sent_lcp_confreq",
          "last_received_lcp_confreq": bytes, the LCP options of that
              Configure-Request from its first option on (the Length and
              Identifier are not included, section 4.4.5);
          "proxy_authen_type": int, 1 text, 2 CHAP, 3 PAP, 4 none, 5 MS-CHAPv1
              (section 10.5);
          "proxy_authen_name": str; "proxy_authen_challenge": bytes;
          "proxy_authen_id": int 0..255; "proxy_authen_response": bytes (the
              CHAP Response value; for PAP the password in clear).
        When the proxied agreement is one our LcpPolicy would have made (every
        option of Last Received would be Acked, Last Sent asks nothing we would
        not ask or accept, its Auth-Protocol is one the profile allows and
        matches the Proxy Authen Type), LCP starts in Opened with it; proxied
        PAP or CHAP-MD5 credentials (all the AVPs section 4.4.5 requires for
        the type) are then checked against our secrets, with the same events as
        our own authentication. Proxy Authen Type 4 (or no usable credentials):
        we authenticate the peer ourselves with the protocol the proxied LCP
        agreed. Anything else: LCP is negotiated afresh, as section 4.4.5 lets
        the LNS do (and RFC 2661 section 9.5 requires it be possible). Which
        path was taken, and why, goes to the log."""
        self._now = now
        if proxy is not None and self.role != "server":
            raise PPPError("only the server (LNS) takes proxied LCP and authentication")
        if self.done or self.phase != DEAD:
            return
        self.phase = ESTABLISH
        if self.lcp.policy.fatal:  # a configuration that cannot work: say so at once
            self.reason = "LCP: " + self.lcp.policy.fatal
            self._finish()
            return
        if proxy and self._open_proxied(now, proxy):
            self._check(now)
            return
        self._lcp("Open", now)
        silent = self.cfg.passive and self.role == "client"
        self._lcp("Up-silent" if silent else "Up", now)
        self._check(now)

    def _open_proxied(self, now, proxy):
        """Start from the LAC's LCP agreement when we can; False: negotiate."""
        plan, creds, why = self._proxy_plan(proxy)
        if plan is None:
            self._say(f"proxy: negotiating LCP afresh: {why}")
            return False
        self._say(f"proxy: LCP taken from the LAC; {why}")
        pol = self.lcp.policy
        pol.proxy_adopt(plan[0], plan[1])
        self._proxy_creds = creds
        self._run(self.lcp, self.lcp.assume_opened(), now)
        return True

    def _proxy_plan(self, proxy):
        """((verdict, sent_opts) or None, credentials or None, why) for a proxy
        dict: None when LCP must be negotiated afresh; credentials when the
        proxied ones are to be checked, else our own authentication runs."""
        pol = self.lcp.policy
        why, verdict, sent = pol.proxy_check(proxy.get("last_sent_lcp_confreq"),
                                             proxy.get("last_received_lcp_confreq"))
        if why is not None:
            return None, None, why
        plan = (verdict, sent)
        if not pol.auth_choices:
            return plan, None, "this profile does not authenticate the peer"
        agreed = None
        for t, v in sent:
            if t == LCP_AUTH:
                agreed = auth_method(v)
        if agreed is None:
            return None, None, ("the proxied LCP agreed no authentication,"
                                " which this profile requires")
        if agreed not in pol.auth_choices:
            return None, None, (f"the proxied LCP agreed {auth_name(agreed)},"
                                " which this PPP profile does not allow")
        atype = proxy.get("proxy_authen_type")
        name = proxy.get("proxy_authen_name")
        ident = proxy.get("proxy_authen_id")
        challenge = proxy.get("proxy_authen_challenge")
        response = proxy.get("proxy_authen_response")
        if atype == 2 or atype == 3:
            want = AUTH_CHAP_MD5 if atype == 2 else AUTH_PAP
            if agreed != want:
                return None, None, (f"Proxy Authen Type {atype} does not match the"
                                    f" {auth_name(agreed)} the proxied LCP agreed")
            if not isinstance(ident, int) or not 0 <= ident <= 255:
                ident = None
            # Section 4.4.5: type 2 needs Name, Challenge, ID and Response; for
            # type 3 we need Name and Response (the ID only lets us answer).
            missing = [k for k, ok in (("Proxy Authen Name", name is not None),
                                       ("Proxy Authen Challenge", bool(challenge) or atype == 3),
                                       ("Proxy Authen ID", ident is not None or atype == 3),
                                       ("Proxy Authen Response", response is not None)) if not ok]
            if missing:
                return None, None, f"proxied {auth_name(agreed)} lacks {', '.join(missing)}"
            user = _text(_bytes(name))
            creds = (user, ident, _bytes(challenge), _bytes(response))
            return plan, creds, f"checking the proxied {auth_name(agreed)} credentials of {user}"
        what = "no Proxy Authen Type" if atype is None else f"Proxy Authen Type {atype}"
        return plan, None, f"{what}: authenticating the peer ourselves with {auth_name(agreed)}"

    def close(self, now, reason="closed by request"):
        """LCP Close: Terminate-Request, then ("down", reason)."""
        self._now = now
        if self.phase != DEAD and not self.done:
            self._shutdown(now, reason)

    def receive(self, frame, now):
        """One PPP frame from the peer. Never raises on what the peer sent;
        results show up in frames_to_send() and pop_events()."""
        self._now = now
        if self.done:
            return
        st = self.stats
        st["rx_frames"] += 1
        split = split_frame(frame)
        if split is None:
            st["rx_malformed"] += 1
            return
        proto, payload = split
        if proto == PROTO_IP:
            if self.ipcp.state == OPENED:
                st["rx_ip_packets"] += 1
                st["rx_ip_bytes"] += len(payload)
                self.last_ip = now
                self._events.append(("ip", payload))
            else:
                st["rx_discards"] += 1  # RFC 1661 section 3.5: not before IPCP is open
            return
        payload = bytes(payload)  # control traffic is compared and kept: own a copy
        if proto == PROTO_LCP:
            self._rx_lcp(payload, now)
        elif self.lcp.state != OPENED:
            st["rx_discards"] += 1      # section 3.4: only LCP until LCP is open
        elif proto == PROTO_IPCP:
            pkt = split_packet(payload)
            if pkt is None:
                st["rx_malformed"] += 1
            elif self.phase != NETWORK:
                st["rx_discards"] += 1  # section 3.5: NCPs wait for authentication
            else:
                out = self.ipcp.receive(pkt[0], pkt[1], pkt[2], payload, now)
                if out is None:
                    st["rx_malformed"] += 1
                else:
                    self._run(self.ipcp, out, now)
        elif proto == PROTO_PAP or proto == PROTO_CHAP:
            self._rx_auth(proto, payload, now)
        else:
            # Section 5.7: Protocol-Reject, the protocol and as much of the
            # frame's information field as the peer's MRU takes.
            st["tx_protocol_rejects"] += 1
            data = bytes((proto >> 8, proto & 0xFF)) + payload
            self._out.append(frame_lcp(PROTO_REJ, self.lcp._next_ident(),
                                       data[:self.lcp.policy.peer_mru - 4]))
        self._check(now)

    def frames_to_send(self, now):
        """Frames for the peer, in order, each starting FF 03; the queue empties."""
        self._now = now
        out = self._out
        self._out = []
        self.stats["tx_frames"] += len(out)
        return out

    def send_ip(self, packet):
        """An IPv4 packet for the peer (protocol 0x0021); dropped and counted
        unless IPCP is open (RFC 1661 section 3.6)."""
        if self.ipcp.state != OPENED or self.done:
            self.stats["tx_ip_discards"] += 1
            return
        self.stats["tx_ip_packets"] += 1
        self.stats["tx_ip_bytes"] += len(packet)
        self.last_ip = self._now
        self._out.append(b"\xff\x03\x00\x21" + packet)

    def pop_events(self):
        """("ip", packet), ("up", info), ("down", reason), ("auth", user, ok)."""
        out = self._events
        self._events = []
        return out

    def next_deadline(self):
        """The earliest of our timers in ms, or None when nothing is pending."""
        best = None
        for d in (self.lcp.deadline, self.ipcp.deadline, self.authenticator.deadline,
                  self.authenticatee.deadline, self.echo_deadline, self.idle_deadline,
                  self.connect_deadline):
            if d is not None and (best is None or d < best):
                best = d
        return best

    def on_timer(self, now):
        """Run every timer that is due at `now` (calling early does nothing)."""
        self._now = now
        if self.done:
            return
        # The Restart timers first (RFC 1661 section 4.6), then authentication
        # retries, then the keepalive and the two session limits of the profile.
        self._run(self.lcp, self.lcp.on_timer(now), now)
        self._run(self.ipcp, self.ipcp.on_timer(now), now)
        self._out += self.authenticator.on_timer(now)
        self._out += self.authenticatee.on_timer(now)
        if self.echo_deadline is not None and now >= self.echo_deadline:
            self._echo(now)
        if self.idle_deadline is not None and now >= self.idle_deadline:
            # idle_timeout (pppd's `idle`): no IP packet either way for that long.
            # The deadline slides lazily: we only look when it comes due.
            idle = self.cfg.idle_timeout * 1000
            if now - self.last_ip >= idle:
                self._shutdown(now, f"idle for {self.cfg.idle_timeout} s")
            else:
                self.idle_deadline = self.last_ip + idle
        if self.connect_deadline is not None and now >= self.connect_deadline:
            self._shutdown(now, f"maximum connect time of {self.cfg.max_connect_time} s reached")
        self._check(now)

    # -- receiving
    def _rx_lcp(self, payload, now):
        pkt = split_packet(payload)
        if pkt is None:
            self.stats["rx_malformed"] += 1
            return
        code, ident, data = pkt
        opened = self.lcp.state == OPENED
        if code == PROTO_REJ:
            if len(data) < 2:
                self.stats["rx_malformed"] += 1
            elif opened:  # section 5.7: only valid in the Opened state
                self._protocol_rejected(_u16(data), now)
            return
        if code == IDENTIFICATION or code == TIME_REMAINING:
            return  # RFC 1570: informational; Windows sends Identification
        if code == ECHO_REP and opened and len(data) >= 4:
            # Section 6.4: a reply carrying our own magic number is our own
            # request looped back, not an answer.
            if not (self.lcp.policy.send_magic and data[:4] == self.lcp.policy.magic_field()):
                self.stats["rx_echo_replies"] += 1
                self.echo_pending = 0
        if code == CODE_REJ and data and data[0] == ECHO_REQ:
            self.echo_rejected = True   # the peer cannot echo: stop asking
            self.echo_deadline = None
        out = self.lcp.receive(code, ident, data, payload, now)
        if out is None:
            self.stats["rx_malformed"] += 1
        else:
            self._run(self.lcp, out, now)

    def _protocol_rejected(self, proto, now):
        # Section 5.7: a Protocol-Reject is RXJ- for the protocol it names (the
        # peer will never speak it) and RXJ+ for anything we can do without.
        if proto == PROTO_IPCP:
            self.ipcp.why = "the peer rejected IPCP (Protocol-Reject)"
            self._ipcp("RXJ-", now)
        elif proto == PROTO_LCP:
            self.lcp.why = "the peer rejected LCP (Protocol-Reject)"
            self._lcp("RXJ-", now)
        elif proto in (PROTO_PAP, PROTO_CHAP) and (
                proto == self.authenticator.proto or proto == self.authenticatee.proto):
            self._shutdown(now, f"the peer rejected protocol 0x{proto:04x} (Protocol-Reject)")
        else:
            self._lcp("RXJ+", now)

    def _rx_auth(self, proto, payload, now):
        pkt = split_packet(payload)
        if pkt is None:
            self.stats["rx_malformed"] += 1
            return
        # The peer's answers come to whichever side of authentication owns the code:
        # CHAP Response and PAP Request are for our Authenticator.
        to_us = (proto == PROTO_CHAP and pkt[0] == CHAP_RESPONSE) or (
            proto == PROTO_PAP and pkt[0] == PAP_REQ)
        side = self.authenticator if to_us else self.authenticatee
        out = side.receive(proto, pkt[0], pkt[1], pkt[2], now)
        if out is None:
            self.stats["rx_malformed"] += 1
        else:
            self._out += out

    # -- running the automata and the phases (RFC 1661 section 3)
    def _lcp(self, event, now):
        self._run(self.lcp, self.lcp.event(event, now), now)

    def _ipcp(self, event, now):
        self._run(self.ipcp, self.ipcp.event(event, now), now)

    def _run(self, layer, outputs, now):
        """Queue an automaton's frames; act on its signals, in order. LCP's
        Up/Down drive the phases; IPCP's Up is the session's "up". IPCP Down
        (the peer renegotiating IPCP) needs nothing: IP waits until it reopens.
        tls is not needed here: our lower layers are always there."""
        for item in outputs:
            if not isinstance(item, str):
                self._out.append(item)
            elif layer is self.lcp:
                if item == "tlu":
                    self._lcp_up(now)
                elif item == "tld":
                    self._lcp_down(now)
                elif item == "tlf":
                    self._finish()
            elif item == "tlu":
                self._ipcp_up(now)
            elif item == "tlf":
                # Our only NCP finished: nothing left to carry (section 3.7).
                self._shutdown(now, "IPCP: " + (self.ipcp.why or "finished"))

    def _lcp_up(self, now):
        # Section 3.5: Authentication phase, both directions at once.
        self.phase = AUTHENTICATE
        pol = self.lcp.policy
        self.lcp.peer_mru = pol.peer_mru
        self.ipcp.peer_mru = pol.peer_mru
        creds, self._proxy_creds = self._proxy_creds, None
        if pol.our_auth is not None and creds is not None:
            self._out += self.authenticator.proxy(pol.our_auth, creds[0], creds[1], creds[2],
                                                  creds[3], now)
        elif pol.our_auth is not None:
            self._out += self.authenticator.start(pol.our_auth, now)
        if pol.peer_auth is not None:
            self._out += self.authenticatee.start(pol.peer_auth, now)
        if self.cfg.lcp_echo_interval and not self.echo_rejected:
            self.echo_pending = 0
            self.echo_deadline = now + self.cfg.lcp_echo_interval * 1000

    def _lcp_down(self, now):
        # LCP left Opened: everything above it is down (section 4.4 tld).
        closing = self.lcp.state in (CLOSING, STOPPING)
        self.phase = TERMINATE if closing else ESTABLISH
        self.authenticator.stop()
        self.authenticatee.stop()
        self.echo_deadline = self.idle_deadline = self.connect_deadline = None
        if self.ipcp.state != INITIAL:
            self._ipcp("Down", now)

    def _network(self, now):
        # Section 3.6: Network-Layer Protocol phase; the server decides first
        # which address the peer gets, and gives up clearly when it has none.
        self.phase = NETWORK
        pol = self.ipcp.policy
        if self.role == "server" and pol.peer_want is None:
            addr = _addr(self.cfg.remote_ipaddr)
            if addr is None:
                addr = self._alloc()
            if addr is None:
                pool = self.cfg.ip_pool_name
                if pool:
                    why = f"no address for the peer: pool {pool} is exhausted"
                elif self.cfg.alloc_ip is not None:
                    why = "no address for the peer: no remote_ipaddr and the IP pool gave none"
                else:
                    why = "no address for the peer: set remote_ipaddr or ip_pool_name"
                self._shutdown(now, why)
                return
            pol.peer_want = addr
        self._ipcp("Open", now)
        self._ipcp("Up", now)

    def _alloc(self):
        # One allocation per engine: a renegotiation keeps the address, and the
        # glue frees `allocated_ip` when the session ends (never the engine).
        fn = self.cfg.alloc_ip
        if self.allocated_ip is None and fn is not None:
            got = fn(self.user)
            try:
                addr = _addr(got)
            except PPPError:
                addr = None
            if addr is not None:
                self.allocated_ip = got
        return _addr(self.allocated_ip) if self.allocated_ip else None

    def _ipcp_up(self, now):
        # IPCP opened: the session carries IP. A client still at 0.0.0.0 was
        # acknowledged without an address and has nothing to configure.
        pol = self.ipcp.policy
        if pol.our_ip == _ZERO_IP:
            self._shutdown(now, "IPCP: the peer gave us no IP address")
            return
        peer = pol.peer_ip or pol.peer_want
        if self.role == "client":
            dns = [pol.dns[t] for t in (IPCP_DNS_PRI, IPCP_DNS_SEC) if pol.dns[t] != _ZERO_IP]
        else:
            dns = [pol.offer[t] for t in (IPCP_DNS_PRI, IPCP_DNS_SEC) if pol.offer[t]]
        # mru: what we receive (agreed in LCP); mtu: what we send, bounded by
        # the peer's MRU (RFC 1661 section 6.1).
        lcp = self.lcp.policy
        info = {"local_ip": ip_text(pol.our_ip) if pol.our_ip else None,
                "peer_ip": ip_text(peer) if peer else None,
                "dns": [ip_text(d) for d in dns],
                "user": self.user,
                "mru": lcp.agreed_mru,
                "mtu": min(self.cfg.mtu, lcp.peer_mru)}
        self._say(f"up: {info}")
        self.last_ip = now
        if self.cfg.idle_timeout:
            self.idle_deadline = now + self.cfg.idle_timeout * 1000
        if self.cfg.max_connect_time:
            self.connect_deadline = now + self.cfg.max_connect_time * 1000
        self._events.append(("up", info))

    def _echo(self, now):
        # LCP echo keepalive (pppd's lcp-echo-interval / lcp-echo-failure):
        # after `failure_count` unanswered Echo-Requests the peer is gone.
        n = self.cfg.lcp_echo_failure_count
        if n and self.echo_pending >= n:
            self.echo_deadline = None
            self._shutdown(now, f"the peer did not answer {n} LCP Echo-Requests")
            return
        self.echo_ident = (self.echo_ident + 1) & 0xFF
        self._out.append(frame_lcp(ECHO_REQ, self.echo_ident, self.lcp.policy.magic_field()))
        self.stats["tx_echo_requests"] += 1
        self.echo_pending += 1
        self.echo_deadline = now + self.cfg.lcp_echo_interval * 1000

    def _check(self, now):
        """After every input: act on policy verdicts and authentication outcomes,
        and leave the Authentication phase once neither side is pending (RFC 1661
        section 3.5: authentication completes before any NCP starts)."""
        if self.done:
            return
        for layer in (self.lcp, self.ipcp):
            why, layer.policy.fatal = layer.policy.fatal, None
            if why:
                self._shutdown(now, f"{layer.name}: {why}")
        a = self.authenticator
        if a.result is not None:
            r, a.result = a.result, None
            self._events.append(("auth", r[1], r[0] == "ok"))
            if r[0] == "ok":
                self.user = r[1]
            else:
                self._shutdown(now, r[2])
        b = self.authenticatee
        if b.result is not None:
            r, b.result = b.result, None
            self._shutdown(now, r[2])
        if self.phase == AUTHENTICATE and not a.pending and not b.pending:
            self._network(now)

    def _shutdown(self, now, reason):
        # Section 3.7: Terminate-Request via the LCP Close event. The first
        # cause is the one reported.
        if self.done:
            return
        if self.reason is None:
            self.reason = reason
            self._say(f"closing: {reason}")
            self.lcp.term_text = _bytes(reason)[:200]
        self._lcp("Close", now)
        if self.lcp.state in (INITIAL, CLOSED):
            self._finish()  # nothing to terminate (Stopped/Initial + Close)

    def _finish(self):
        # LCP This-Layer-Finished: the link is over (section 3.1 Link Dead).
        if self.done:
            return
        self.done = True
        self.phase = DEAD
        for x in (self.lcp, self.ipcp, self.authenticator, self.authenticatee):
            x.deadline = None
        self.echo_deadline = self.idle_deadline = self.connect_deadline = None
        reason = self.reason or self.lcp.why or "LCP finished"
        self._say(f"down: {reason}")
        self._events.append(("down", reason))

    def _say(self, msg):
        if self._log is not None:
            self._log(msg)


# ---------------------------------------------------------------- IP pools
# Pools keep addresses as ints: ranges, ordering and set membership are then
# plain arithmetic, and a block of a million addresses costs nothing until used.
def ip_int(text):
    """"a.b.c.d" -> int (PPPError when malformed)."""
    return _u32(ip_bytes(text))


def int_ip(n):
    """int -> "a.b.c.d"."""
    return f"{n >> 24}.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def _pool_addr(value):
    try:
        return ip_int(value)
    except PPPError:
        raise PoolError(f"bad IPv4 address {value!r}")


def _pool_count(num):
    if not isinstance(num, int) or num < 1:
        raise PoolError(f"num_addrs {num!r} must be an integer >= 1")
    return num


class IpPool:
    """A named set of IPv4 addresses handed to peers at IPCP (the daemon's
    replacement for OpenL2TP's ippoold).

    Addresses come in blocks (first address, count). Reserved addresses are
    never handed out. `alloc` gives never-used addresses first, then freed ones
    in the order they were freed (so a just-freed address is reused last), and
    never an address that is allocated: allocations are kept in a dict. A free
    address always sits in one of two queues (the unused rest of the blocks, or
    the freed addresses), so exhaustion (None) is exact; a queue entry that is
    no longer free when it comes up is skipped."""

    def __init__(self, name, first_addr=None, num_addrs=0, netmask=None):
        self.name = name
        if netmask is not None:
            _pool_addr(netmask)
        self.netmask = netmask
        self.blocks = []        # sorted [(first, count)] of ints
        self.reserved = set()   # ints
        self.allocated = {}     # int -> owner
        self._fresh = []        # [[next, end], ...] parts of blocks never handed out
        self._freed = []        # ints, oldest first, from _head on
        self._head = 0
        self.stats = {"num_allocs": 0, "num_frees": 0, "num_alloc_fails": 0}
        if first_addr is not None and num_addrs:
            self.add_block(first_addr, num_addrs)

    def _contains(self, a):
        for first, n in self.blocks:
            if first <= a < first + n:
                return True
        return False

    def _free_addr(self, a):
        # The one test every hand-out passes: in a block, not reserved, not taken.
        return a not in self.allocated and a not in self.reserved and self._contains(a)

    def add_block(self, first_addr, num_addrs):
        a = _pool_addr(first_addr)
        n = _pool_count(num_addrs)
        if a + n > 1 << 32:
            raise PoolError(f"block {first_addr}+{n} runs past 255.255.255.255")
        for first, count in self.blocks:
            if a < first + count and first < a + n:
                raise PoolError(f"block {first_addr}+{n} overlaps block "
                                f"{int_ip(first)}+{count} of pool {self.name}")
        self.blocks.append((a, n))
        self.blocks.sort()
        self._fresh.append([a, a + n])  # its addresses join the never-used queue

    def remove_block(self, first_addr, num_addrs):
        """Remove a block given exactly as added. Addresses in it that are
        allocated stay so until freed, and are then not handed out again."""
        key = (_pool_addr(first_addr), _pool_count(num_addrs))
        if key not in self.blocks:
            raise PoolError(f"pool {self.name} has no block {first_addr}+{num_addrs}")
        self.blocks.remove(key)
        for a in [r for r in self.reserved if key[0] <= r < key[0] + key[1]]:
            self.reserved.discard(a)

    def reserve(self, first_addr, num_addrs=1):
        """Keep addresses of the pool from being handed out (e.g. the LNS's own
        address, static users). All must be in the pool, else nothing changes;
        an address allocated now stays allocated, and is kept back once freed."""
        a = _pool_addr(first_addr)
        n = _pool_count(num_addrs)
        for x in range(a, a + n):
            if not self._contains(x):
                raise PoolError(f"{int_ip(x)} is not in pool {self.name}")
        for x in range(a, a + n):
            self.reserved.add(x)

    def unreserve(self, first_addr, num_addrs=1):
        """Make reserved addresses available again (others are left alone)."""
        a = _pool_addr(first_addr)
        n = _pool_count(num_addrs)
        for x in range(a, a + n):
            if x in self.reserved:
                self.reserved.discard(x)
                self._freed.append(x)

    def alloc(self, owner=None):
        """An address as "a.b.c.d" for `owner`, or None when the pool is exhausted."""
        # Never-used addresses first, block by block, in address order.
        while self._fresh:
            rng = self._fresh[0]
            while rng[0] < rng[1]:
                a = rng[0]
                rng[0] += 1
                if self._free_addr(a):
                    return self._take(a, owner)
            self._fresh.pop(0)
        # Then freed ones, oldest first: a stale route or ARP entry for a
        # just-freed address has the longest time to go away.
        while self._head < len(self._freed):
            a = self._freed[self._head]
            self._head += 1
            if self._head > 64 and self._head * 2 > len(self._freed):
                self._freed = self._freed[self._head:]  # compact the consumed front
                self._head = 0
            if self._free_addr(a):
                return self._take(a, owner)
        self.stats["num_alloc_fails"] += 1
        return None

    def _take(self, a, owner):
        self.allocated[a] = owner
        self.stats["num_allocs"] += 1
        return int_ip(a)

    def free(self, addr):
        """Return an allocated address; False if it was not allocated."""
        try:
            a = ip_int(addr)
        except PPPError:
            return False
        if a not in self.allocated:
            return False
        del self.allocated[a]
        self._freed.append(a)
        self.stats["num_frees"] += 1
        return True

    @property
    def num_addrs(self):
        return sum(n for _, n in self.blocks)

    @property
    def num_avail(self):
        # Computed when asked (an RPC), not kept up to date on every change.
        used = sum(1 for a in self.allocated if self._contains(a))
        held = sum(1 for a in self.reserved if a not in self.allocated and self._contains(a))
        return self.num_addrs - used - held

    def to_dict(self):
        """The pool as shown by ippool.get (OpenL2TP's ippool field names)."""
        return {
            "pool_name": self.name,
            "netmask": self.netmask,
            "num_addrs": self.num_addrs,
            "num_avail": self.num_avail,
            "addr_block": [{"first_addr": int_ip(a), "num_addrs": n} for a, n in self.blocks],
            "rsvd_block": [{"first_addr": int_ip(a), "num_addrs": n}
                           for a, n in _runs(sorted(self.reserved))],
            "allocated": [{"addr": int_ip(a), "owner": self.allocated[a]}
                          for a in sorted(self.allocated)],
            "stats": dict(self.stats),
        }


def _runs(ints):
    """Sorted ints -> [(first, count)] of consecutive runs."""
    out = []
    for a in ints:
        if out and out[-1][0] + out[-1][1] == a:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((a, 1))
    return out


# ---------------------------------------------------------------- secrets files
def _words(line):
    """pppd's secrets syntax for one line: words split by white space; "..." or
    '...' quote white space; a backslash takes the next character literally; a
    # at the start of a word (outside quotes) comments out the rest."""
    words = []
    cur = None
    quote = None
    i = 0
    n = len(line)
    while i < n:
        c = line[i]
        i += 1
        if c == "\\" and i < n:
            cur = (cur or "") + line[i]
            i += 1
        elif quote is not None:
            if c == quote:
                quote = None
            else:
                cur += c
        elif c in "\"'":
            quote = c
            cur = cur or ""
        elif c in " \t\r\n":
            if cur is not None:
                words.append(cur)
                cur = None
        elif c == "#" and cur is None:
            break
        else:
            cur = (cur or "") + c
    if cur is not None:
        words.append(cur)
    return words


def parse_secrets(text, filename=None, log=None):
    """pppd chap-secrets / pap-secrets text -> [(client, server, secret, addrs)].
    Lines with fewer than three words are skipped (and logged)."""
    out = []
    lineno = 0
    for line in text.split("\n"):
        lineno += 1
        w = _words(line)
        if not w:
            continue
        if len(w) < 3:
            if log is not None:
                log(f"{filename or 'secrets'}:{lineno}: fewer than 3 words, skipped")
            continue
        out.append((w[0], w[1], w[2], w[3:]))
    return out


def lookup_secret(entries, client, server=None):
    """The secret for `client` talking to `server` (None: any server). An exact
    name beats the * wildcard, the client field before the server field, and
    the first of equally good lines wins."""
    best = None
    best_score = -1
    for c, s, secret, _ in entries:
        if c != client and c != "*":
            continue
        if server is not None and s != server and s != "*":
            continue
        score = (2 if c == client else 0) + (1 if server is not None and s == server else 0)
        if score > best_score:
            best, best_score = secret, score
    return best


# ---------------------------------------------------------------- pppd glue
# Below this line: the kernel data path's pppd and the secrets file on disk.
# They do I/O, so the sans-IO engine above never calls them.
def read_secrets(path, log=None):
    """Parse a secrets file; a missing or unreadable file gives no entries."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        if log is not None:
            log(f"cannot read secrets file {path}: {e}")
        return []
    return parse_secrets(text, path, log)


def _flag(ppp, name, default=False):
    v = ppp.get(name)
    return default if v is None else bool(v)


def pppd_args(fd, tunnel_id, session_id, peer_tunnel_id, peer_session_id, ppp, lns_mode,
              user_name=None, user_password=None, interface_name=None, send_seq=False,
              recv_seq=False, reorder_timeout=0, ipparam=None, pppd="/usr/sbin/pppd"):
    """The argv for pppd on a PPPoL2TP socket `fd` (inherited by the child),
    from a resolved PPP profile dict `ppp` (OpenL2TP names; openl2tp-api.md
    section 1.8). The peer ids are known to the kernel through the socket and
    are not passed; the daemon allocates from ip_pool_name itself and passes the
    result as remote_ipaddr (there is no ippoold for pppd's ippool.so)."""
    a = [pppd, "plugin", "pppol2tp.so", "pppol2tp", str(fd),
         "pppol2tp_tunnel_id", str(tunnel_id), "pppol2tp_session_id", str(session_id)]
    if lns_mode:
        a.append("pppol2tp_lns_mode")
    if send_seq:
        a.append("pppol2tp_send_seq")
    if recv_seq:
        a.append("pppol2tp_recv_seq")
    if reorder_timeout:
        a += ["pppol2tp_reorderto", str(reorder_timeout)]
    if interface_name:
        a += ["ifname", interface_name]
    # What OpenL2TP's ppp_unix always adds: no compression of any kind.
    a += ["nodetach", "local", "noipdefault", "noaccomp", "nopcomp", "nobsdcomp",
          "nodeflate", "nopredictor1", "novj", "novjccomp"]
    if ppp.get("sync_mode") == "sync":
        a.append("sync")
    if ppp.get("asyncmap"):
        a += ["asyncmap", f"{ppp['asyncmap']:x}"]
    for name, opt in (("mru", "mru"), ("mtu", "mtu")):
        if ppp.get(name):
            a += [opt, str(ppp[name])]
    # Authentication: a server requires the peer to authenticate unless
    # auth_none; a client only with auth_peer. Disallowed methods are refused.
    require = _flag(ppp, "auth_peer") or (lns_mode and not _flag(ppp, "auth_none"))
    a.append("auth" if require else "noauth")
    for name, opt in (("auth_pap", "pap"), ("auth_chap", "chap"), ("auth_mschapv1", "mschap"),
                      ("auth_mschapv2", "mschap-v2"), ("auth_eap", "eap")):
        allowed = _flag(ppp, name, True)
        if not allowed:
            a.append("refuse-" + opt)
        elif require and opt in ("pap", "chap"):
            a.append("require-" + opt)
    for name, opt in (("chap_interval", "chap-interval"),
                      ("chap_max_challenge", "chap-max-challenge"),
                      ("chap_restart", "chap-restart"),
                      ("pap_max_auth_requests", "pap-max-authreq"),
                      ("pap_restart_interval", "pap-restart"), ("pap_timeout", "pap-timeout"),
                      ("idle_timeout", "idle"), ("max_connect_time", "maxconnect"),
                      ("lcp_echo_interval", "lcp-echo-interval"),
                      ("lcp_echo_failure_count", "lcp-echo-failure"),
                      ("lcp_max_config_requests", "lcp-max-configure"),
                      ("lcp_max_config_naks", "lcp-max-failure"),
                      ("lcp_max_terminate_requests", "lcp-max-terminate"),
                      ("lcp_retransmit_interval", "lcp-restart"),
                      ("ipcp_max_config_requests", "ipcp-max-configure"),
                      ("ipcp_max_config_naks", "ipcp-max-failure"),
                      ("ipcp_max_terminate_requests", "ipcp-max-terminate"),
                      ("ipcp_retransmit_interval", "ipcp-restart")):
        if ppp.get(name):
            a += [opt, str(ppp[name])]
    local = ppp.get("local_ipaddr") or ""
    remote = ppp.get("remote_ipaddr") or ""
    if local or remote:
        a.append(f"{local}:{remote}")
    for name, opt in (("dns_ipaddr_pri", "ms-dns"), ("dns_ipaddr_sec", "ms-dns"),
                      ("wins_ipaddr_pri", "ms-wins"), ("wins_ipaddr_sec", "ms-wins")):
        if ppp.get(name):
            a += [opt, str(ppp[name])]
    a.append("defaultroute" if _flag(ppp, "default_route") else "nodefaultroute")
    a += ["multilink"] if _flag(ppp, "multilink") else ["noendpoint", "nomultilink"]
    if _flag(ppp, "proxy_arp"):
        a.append("proxyarp")
    if ppp.get("local_name"):
        a += ["name", ppp["local_name"]]
    if ppp.get("remote_name"):
        a += ["remotename", ppp["remote_name"]]
    if (ppp.get("trace_flags") or 0) & 1024:   # OpenL2TP's ppp_control trace bit
        a += ["debug", "kdebug", "1"]
    a += ["ipparam", ipparam or "l2tp"]
    if user_name:
        a += ["user", user_name]
    if user_password:
        # Visible in the process list, as with OpenL2TP; pppd has no other
        # plain option for it.
        a += ["password", user_password]
    return a


# pppd(8) EXIT STATUS, as documented.
PPPD_EXIT = {
    0: "pppd exited normally",
    1: "pppd: fatal error",
    2: "pppd: error in the options",
    3: "pppd: not run by root or not setuid root",
    4: "pppd: the kernel does not support PPP",
    5: "pppd: terminated by SIGINT, SIGTERM or SIGHUP",
    6: "pppd: could not lock the serial port",
    7: "pppd: could not open the serial port",
    8: "pppd: the connect script failed",
    9: "pppd: the pty command could not be run",
    10: "pppd: PPP negotiation failed",
    11: "pppd: the peer failed or refused to authenticate",
    12: "pppd: the link was idle",
    13: "pppd: the connect time limit was reached",
    14: "pppd: callback negotiated",
    15: "pppd: the peer does not answer LCP Echo-Requests",
    16: "pppd: the modem hung up",
    17: "pppd: loop-back detected",
    18: "pppd: the init script failed",
    19: "pppd: we failed to authenticate to the peer",
}


def pppd_exit_reason(status):
    """Text for a pppd exit status (a negative status: killed by that signal,
    as subprocess reports it)."""
    if status is None:
        return "pppd is still running"
    if status < 0:
        return f"pppd was killed by signal {-status}"
    return PPPD_EXIT.get(status, f"pppd exited with status {status}")


def spawn_pppd(argv, fd):
    """Start pppd with `fd` inherited (same number) and stdin/out on /dev/null.
    CPython only: subprocess is imported here, not at module load."""
    import subprocess
    return subprocess.Popen(argv, pass_fds=(fd,), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, start_new_session=True)
