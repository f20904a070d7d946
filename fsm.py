"""fsm: the tunnel and session state machines of RFC 2661 section 7.

Theory of this module
---------------------
A `Tunnel` is one control connection; it owns its calls (`Session`) and its
reliable channel (`ctrlchan.ControlChannel`). Everything is sans-IO: time comes
in as `now` (ms), randomness from the `rng(n) -> bytes` the caller hands in,
datagrams leave through `t.datagrams_to_send(now)`, and what the caller must do
comes back from every call as a list of action tuples:

  ("tunnel-up", tid)                  ("tunnel-down", tid, reason, result|None)
  ("tunnel-closed", tid)              the linger is over: forget the tunnel
  ("session-created", tid, sid, type) a call the peer placed (lnic, laoc)
  ("session-up", tid, sid, info)      info: peer_session_id, session_type,
                                      sequencing_required and the call's AVPs
  ("session-down", tid, sid, reason, result|None)
  ("session-info", tid, sid, "wen"|"sli", value)
  ("error", tid, text)                something to count and log

Rules it keeps:
* Every state change is a row of a table `{(state, event): (action, next)}`,
  written one row per line of the RFC's tables, grouped by state; rows the RFC
  lacks (channel failure, timers, malformed messages) are marked "+".
* One engine (`_Machine._fire`) serves all five tables. It looks the row up
  before anything changes; a miss is handled in `_miss`: our own misuse raises
  avp.LocalError, a peer message that does not fit clears the tunnel (StopCCN
  result 7) or the call (CDN result 2, error 5), an internal event is dropped.
* Actions are `act_*` methods: they queue messages on the channel and return
  action tuples. A tunnel action may fire its calls' machines (the RFC's "send
  tunnel-open event to waiting sessions", and every call's clean-up when the
  tunnel goes); a session action never touches the tunnel's machine.
* "Acceptable" / "not acceptable" are two events ("sccrq", "sccrq-bad"). The
  check is a pure query, run only where the table has a "-bad" row; the refusal
  (result, error, text) becomes the action's argument.
* The RFC's "clean up -> idle" is `closing` while the channel lingers after a
  StopCCN (section 5.7), else `closed`; a cleaned-up call leaves `t.sessions`.
* `receive` never raises on peer input. From avp.decode_message: ParseError ->
  discarded with an "error" action; IgnoredMessage -> ignored; ProtocolError ->
  StopCCN (scope "tunnel") or CDN (scope "session") with its codes. A StopCCN
  or CDN is never answered with another.

Implemented: sections 7.2.1 (initiator and responder), 7.4.1, 7.4.2, 7.5.1,
7.5.2; tunnel authentication both ways (5.1.1, 4.4.3) whenever a secret is set;
hidden AVPs (4.3: never in StopCCN; in SCCRQ and SCCRP only with `hide_setup`,
since Cisco cannot parse them in SCCRQ and xl2tpd unhides both before it knows the
secret); result
codes (4.4.2); the tie breaker value and comparison (4.4.3); StopCCN and CDN
carry the ids we sent, tunnel messages Session ID 0 (rfc2661-notes 5.12).

Deliberately missing (the caller's, DESIGN.md): demultiplexing datagrams to
tunnels, tunnel ids, max_tunnels, comparing tie breakers across tunnels,
moving calls of a tunnel that lost the tie, the data path. Protocol versions
other than 1.0 are refused (result 5), never negotiated.
"""

import avp
from ctrlchan import ControlChannel

IDLE = "idle"
WAIT_TUNNEL = "wait-tunnel"
ESTABLISHED = "established"
CLOSING = "closing"
CLOSED = "closed"


# ---------------------------------------------------------------- tables
def _table(*rows):
    """{(state, event): (action, next_state)} from rows (states, events, action,
    next_state), one per RFC line; a line naming several states or events
    ("Receive ICRQ, ICRP, ICCN") lists them separated by spaces."""
    table = {}
    for states, events, action, nxt in rows:
        for state in states.split():
            for event in events.split():
                assert (state, event) not in table, (state, event)  # a table typo
                table[(state, event)] = (action, nxt)
    return table


# Events: a received message is its lower-case name ("sccrq", "icrp", ...), with
# "-bad" when not acceptable. Local: "open", "close", "lose-tie", "bearer-up",
# "abandon" (the peer restarted: clear without a word, see Tunnel.abandon).
# Internal: "tunnel-open", "tunnel-down", "timeout", "chan-failed", "chan-closed",
# "rx-error" (malformed or invalid message, section 7.1), "session-msg" (a
# call's message reaching its established tunnel). Rows marked + are not in
# the RFC's tables.
_UP = "idle wait-ctl-reply wait-ctl-conn established"

TUNNEL_FSM = _table(
    # State: idle                                         Ref: RFC2661 section 7.2.1
    ("idle", "open", "act_send_sccrq", "wait-ctl-reply"),
    ("idle", "sccrq", "act_send_sccrp", "wait-ctl-conn"),
    ("idle", "sccrq-bad", "act_stop", "closing"),
    ("idle", "sccrp", "act_stop_fsm", "closing"),
    ("idle", "scccn", "act_cleanup", "closed"),
    ("idle", "close lose-tie", "act_cleanup", "closed"),        # + nothing sent yet
    # State: wait-ctl-reply
    ("wait-ctl-reply", "sccrp", "act_send_scccn", "established"),
    ("wait-ctl-reply", "sccrp-bad", "act_stop", "closing"),
    ("wait-ctl-reply", "lose-tie", "act_cleanup", "closed"),  # the caller re-queues the SCCRQ
    ("wait-ctl-reply", "scccn", "act_stop_fsm", "closing"),
    # State: wait-ctl-conn
    ("wait-ctl-conn", "scccn", "act_tunnel_open", "established"),
    ("wait-ctl-conn", "scccn-bad", "act_stop", "closing"),
    ("wait-ctl-conn", "sccrp sccrq", "act_stop_fsm", "closing"),
    ("wait-ctl-reply wait-ctl-conn", "close", "act_stop", "closing"),      # +
    ("wait-ctl-reply wait-ctl-conn", "timeout", "act_timeout", "closing"),  # + establish_timeout
    # State: established ("local open request (new call)" is Tunnel.session_open)
    ("established", "close", "act_stop", "closing"),
    ("established", "sccrq sccrp scccn", "act_stop_fsm", "closing"),
    ("established", "session-msg", "act_session_msg", "established"),     # + 7.4, 7.5
    # States: idle, wait-ctl-reply, wait-ctl-conn, established
    (_UP, "stopccn", "act_peer_stop", "closing"),
    (_UP, "rx-error", "act_stop", "closing"),                   # + section 7.1
    (_UP, "chan-failed", "act_fail", "closed"),                 # + section 5.8
    (_UP, "abandon", "act_cleanup", "closed"),                  # + the peer restarted
    (_UP, "drop", "act_drop", "closed"),                        # + evicted: StopCCN once
    # State: closing (+ section 5.7: acking retransmitted StopCCNs a full cycle)
    ("closing", "chan-closed chan-failed abandon drop", "act_closed", "closed"),
)

LAIC_FSM = _table(
    # State: idle                                         Ref: RFC2661 section 7.4.1
    ("idle", "open", "act_none", "wait-tunnel"),              # bearer ring: tunnel open
    ("idle", "iccn icrp cdn", "act_cleanup", "closed"),
    # State: wait-tunnel
    ("wait-tunnel", "close", "act_cleanup", "closed"),        # bearer drop or local close
    ("wait-tunnel", "tunnel-open", "act_send_icrq", "wait-reply"),
    # State: wait-reply
    ("wait-reply", "icrp", "act_send_iccn", "established"),
    ("wait-reply", "icrp-bad", "act_send_cdn", "closed"),
    ("wait-reply", "icrq", "act_cdn_fsm", "closed"),
    ("wait-reply", "cdn iccn", "act_cleanup", "closed"),
    ("wait-reply", "close", "act_send_cdn", "closed"),
    ("wait-reply", "timeout", "act_timeout", "closed"),       # + session_establish_timeout
    # State: established
    ("established", "cdn", "act_cleanup", "closed"),
    ("established", "icrq icrp iccn", "act_cdn_fsm", "closed"),
    ("established", "close", "act_send_cdn", "closed"),
    # + any state: malformed message (7.1), the tunnel went (5.7)
    ("wait-reply established", "rx-error", "act_send_cdn", "closed"),
    ("idle wait-tunnel wait-reply established", "tunnel-down", "act_gone", "closed"),
)

LNIC_FSM = _table(
    # State: idle                                         Ref: RFC2661 section 7.4.2
    ("idle", "icrq", "act_send_icrp", "wait-connect"),
    ("idle", "icrq-bad", "act_send_cdn", "closed"),
    ("idle", "icrp", "act_cdn_fsm", "closed"),
    ("idle", "iccn", "act_cleanup", "closed"),
    # State: wait-connect
    ("wait-connect", "iccn", "act_connected", "established"),
    ("wait-connect", "iccn-bad", "act_send_cdn", "closed"),
    ("wait-connect", "icrq icrp", "act_cdn_fsm", "closed"),
    ("wait-connect", "timeout", "act_timeout", "closed"),     # + session_establish_timeout
    # States: idle, wait-connect, established
    ("idle wait-connect established", "cdn", "act_cleanup", "closed"),
    ("wait-connect established", "close", "act_send_cdn", "closed"),
    # State: established
    ("established", "icrq icrp iccn", "act_cdn_fsm", "closed"),
    # + any state: malformed message (7.1), the tunnel went (5.7)
    ("wait-connect established", "rx-error", "act_send_cdn", "closed"),
    ("idle wait-connect established", "tunnel-down", "act_gone", "closed"),
)

LAOC_FSM = _table(
    # State: idle                                         Ref: RFC2661 section 7.5.1
    ("idle", "ocrq", "act_send_ocrp", "wait-cs-answer"),      # the caller opens the bearer
    ("idle", "ocrq-bad", "act_send_cdn", "closed"),
    ("idle", "ocrp", "act_cdn_fsm", "closed"),
    ("idle", "occn cdn", "act_cleanup", "closed"),
    # State: wait-cs-answer
    ("wait-cs-answer", "bearer-up", "act_send_occn", "established"),  # framing detected
    ("wait-cs-answer", "close", "act_send_cdn", "closed"),   # bearer failure
    ("wait-cs-answer", "ocrq ocrp occn", "act_cdn_fsm", "closed"),
    ("wait-cs-answer", "timeout", "act_timeout", "closed"),   # + session_establish_timeout
    # State: established
    ("established", "ocrq ocrp occn", "act_cdn_fsm", "closed"),
    # States: wait-cs-answer, established
    ("wait-cs-answer established", "cdn", "act_cleanup", "closed"),
    # State: established
    ("established", "close", "act_send_cdn", "closed"),      # bearer drop, local close
    # + any state: malformed message (7.1), the tunnel went (5.7)
    ("wait-cs-answer established", "rx-error", "act_send_cdn", "closed"),
    ("idle wait-cs-answer established", "tunnel-down", "act_gone", "closed"),
)

LNOC_FSM = _table(
    # State: idle                                         Ref: RFC2661 section 7.5.2
    ("idle", "open", "act_none", "wait-tunnel"),
    ("idle", "occn ocrp cdn", "act_cleanup", "closed"),
    # State: wait-tunnel
    ("wait-tunnel", "tunnel-open", "act_send_ocrq", "wait-reply"),
    # State: wait-reply
    ("wait-reply", "ocrp", "act_got_ocrp", "wait-connect"),
    ("wait-reply", "ocrp-bad", "act_send_cdn", "closed"),
    ("wait-reply", "occn ocrq", "act_cdn_fsm", "closed"),
    # State: wait-connect
    ("wait-connect", "occn", "act_connected", "established"),
    ("wait-connect", "ocrq ocrp", "act_cdn_fsm", "closed"),
    # States: wait-reply, wait-connect, established
    ("wait-reply wait-connect established", "cdn", "act_cleanup", "closed"),
    # State: established
    ("established", "ocrq ocrp occn", "act_cdn_fsm", "closed"),
    # States: wait-reply, wait-connect, established
    ("wait-reply wait-connect established", "close", "act_send_cdn", "closed"),
    # State: wait-tunnel
    ("wait-tunnel", "close", "act_cleanup", "closed"),
    # + any state: establishment timer, malformed message (7.1), the tunnel went (5.7)
    ("wait-reply wait-connect", "timeout", "act_timeout", "closed"),
    ("wait-reply wait-connect established", "rx-error", "act_send_cdn", "closed"),
    ("idle wait-tunnel wait-reply wait-connect established", "tunnel-down", "act_gone",
     "closed"),
)

SESSION_FSM = {"laic": LAIC_FSM, "lnic": LNIC_FSM, "laoc": LAOC_FSM, "lnoc": LNOC_FSM}

LOCAL_EVENTS = ("open", "close", "lose-tie", "bearer-up", "abandon", "drop")

# ---------------------------------------------------------------- configuration
# OpenL2TP's names and defaults (../shared/reference/openl2tp-api.md 1.5); ms.
_CONFIG = (
    ("host_name", "l2tpd"), ("secret", None), ("auth_mode", "none"), ("hide_avps", False),
    ("hide_setup", False), ("framing_caps", 3), ("bearer_caps", 3), ("rx_window_size", 10),
    ("tx_window_size", 10), ("hello_timeout", 60000), ("retry_timeout", 1000),
    ("max_retry_timeout", 8000), ("max_retries", 5), ("ack_delay", 100),
    ("use_tiebreaker", False), ("max_sessions", 0), ("vendor_name", "l2tpd"),
    ("firmware_revision", 0x0100), ("permissive", False), ("establish_timeout", 0),
    ("session_establish_timeout", 0), ("max_half_open", 1024),
)


class TunnelConfig:
    """Tunnel parameters. auth_mode: "none" (challenge only if a secret is set),
    "simple" (the caller's policy must accept the peer), "challenge" (simple, and
    a secret is required so the challenge always runs)."""

    def __init__(self, **kw):
        for name, value in _CONFIG:
            setattr(self, name, value)
        names = [n for n, _ in _CONFIG]
        for name in kw:
            if name not in names:
                raise avp.LocalError(f"unknown tunnel parameter {name!r}")
            setattr(self, name, kw[name])
        if isinstance(self.secret, str):
            self.secret = self.secret.encode()
        if self.auth_mode not in ("none", "simple", "challenge"):
            raise avp.LocalError(f"auth_mode {self.auth_mode!r} is not none, simple or challenge")
        if self.auth_mode == "challenge" and not self.secret:
            raise avp.LocalError("auth_mode challenge needs a secret")
        if (self.hide_avps or self.hide_setup) and not self.secret:
            raise avp.LocalError("hide_avps needs a secret")  # OpenL2TP error 527
        # Unencodable values fail here, not in the middle of an action.
        avp.encode_message(avp.SCCRQ, (
            (avp.HOST_NAME, self.host_name), (avp.FRAMING_CAPABILITIES, self.framing_caps),
            (avp.BEARER_CAPABILITIES, self.bearer_caps), (avp.VENDOR_NAME, self.vendor_name),
            (avp.FIRMWARE_REVISION, self.firmware_revision),
            (avp.RECEIVE_WINDOW_SIZE, self.rx_window_size)))


# ---------------------------------------------------------------- helpers
def new_id(rng, taken):
    """A random id in 1..65535 that is not a key of `taken` (tunnel or session ids)."""
    for _ in range(32):
        b = rng(2)
        v = (b[0] << 8) | b[1]
        if v and v not in taken:
            return v
    # Nearly full: walk from a random place. Free ids lie scattered, so the walk
    # is about 65535/free steps long; from a fixed start it would grow with every
    # id handed out (the last sessions of a full tunnel cost seconds: bench F5).
    b = rng(2)
    start = (b[0] << 8) | b[1]
    for i in range(0x10000):
        v = (start + i) & 0xFFFF
        if v and v not in taken:
            return v
    raise avp.LocalError("no free id: all 65535 are in use")


def tie_breaker_winner(ours, theirs):
    """Ref: RFC2661 section 4.4.3. "ours" or "theirs" (the other side silently
    discards its tunnel), "both" (equal values: both discard), None (neither
    sent one: two tunnels). The lower value wins; a lone tie breaker wins."""
    if ours is None and theirs is None:
        return None
    if theirs is None:
        return "ours"
    if ours is None:
        return "theirs"
    a = int.from_bytes(bytes(ours), "big")
    b = int.from_bytes(bytes(theirs), "big")
    return "both" if a == b else "ours" if a < b else "theirs"


def peek_sccrq(datagram, secret=None):
    """For the caller's demultiplexing: (peer's Assigned Tunnel ID or 0, Tie
    Breaker or None) when `datagram` is an SCCRQ sent to tunnel 0, else None."""
    try:
        h = avp.pull_header(datagram)
    except avp.ParseError:
        return None
    body = datagram[h.payload_offset:h.length]
    if not h.control or h.tunnel_id or avp.peek_message_type(body) != avp.SCCRQ:
        return None
    try:
        msg = avp.decode_message(body, secret)
    except avp.ProtocolError as e:
        msg = e.message  # what decoded before the fault; the tunnel will answer it
    except avp.ParseError:
        return None
    if msg is None:
        return (0, None)
    return (msg.get(avp.ASSIGNED_TUNNEL_ID, 0), msg.get(avp.TIE_BREAKER))


class CallError(avp.LocalError):
    """A call we were asked to place that the peer's capabilities or the RFC do not
    allow; `param` names the session parameter at fault, `missing` is True when
    the request lacks it (else its value cannot be used)."""

    def __init__(self, msg, param, missing=False):
        super().__init__(msg)
        self.param = param
        self.missing = missing


_BITS = {"bearer type": ((1, "digital"), (2, "analog")),
         "framing type": ((1, "sync"), (2, "async"))}


def bits_text(kind, value):
    """A Bearer or Framing Type/Capabilities mask in words: "digital", "sync or
    async", "none"."""
    names = [n for bit, n in _BITS[kind] if value & bit]
    extra = value & ~3
    if extra:
        names.append(f"0x{extra:x}")
    return " or ".join(names) or "none"


def _fit(kind, caps_name, want, caps, param):
    """The type to send: `want` (None or 3: either) within `caps`. Raises CallError."""
    if want is None:
        want = 3
    got = want & caps
    if not got or (want != 3 and want & ~caps):
        raise CallError(f"{kind} {bits_text(kind, want)} is not in the peer's {caps_name} "
                        f"({bits_text(kind, caps)})", param)
    return got


def _outside(kind, caps_name, value, caps):
    """Why a received Bearer/Framing Type is refused, or None: it sets a bit that
    is not in our `caps` (RFC 2661 4.4.3)."""
    if value & ~caps:
        return (f"{kind} {bits_text(kind, value)} is not in our {caps_name} "
                f"({bits_text(kind, caps)})")
    return None


PROXY_KEYS = ("proxy_authen_type", "proxy_authen_name", "proxy_authen_challenge",
              "proxy_authen_id", "proxy_authen_response", "initial_received_lcp_confreq",
              "last_sent_lcp_confreq", "last_received_lcp_confreq")

# Ref: RFC2661 section 4.4.5: the AVPs each Proxy Authen Type requires.
PROXY_NEEDS = {
    avp.PROXY_AUTH_TEXT: ("proxy_authen_name", "proxy_authen_response"),
    avp.PROXY_AUTH_CHAP: ("proxy_authen_name", "proxy_authen_challenge", "proxy_authen_id",
                          "proxy_authen_response"),
    avp.PROXY_AUTH_PAP: ("proxy_authen_name", "proxy_authen_id", "proxy_authen_response"),
    avp.PROXY_AUTH_NONE: (),
    avp.PROXY_AUTH_MSCHAPV1: ("proxy_authen_name", "proxy_authen_challenge",
                              "proxy_authen_id", "proxy_authen_response"),
}


def check_call(session_type, params):
    """The checks on a call we place that need no tunnel: its proxy AVPs (see
    check_proxy), which only an incoming call's ICCN carries (RFC 2661 4.4.5).
    Raises CallError naming the parameter."""
    check_proxy(params)
    if session_type != "laic":
        for key in PROXY_KEYS:
            if params.get(key) is not None:
                raise CallError("proxy LCP and authentication go in the LAC's ICCN: "
                                "only laic calls carry them", key)


def check_proxy(params):
    """Ref: RFC2661 section 4.4.5: a Proxy Authen Type travels with the AVPs its
    type requires, and proxy AVPs only with a Proxy Authen Type. Raises CallError
    naming the first missing or stray parameter."""
    ptype = params.get("proxy_authen_type")
    if ptype is None:
        for name in ("proxy_authen_name", "proxy_authen_challenge", "proxy_authen_id",
                     "proxy_authen_response"):
            if params.get(name) is not None:
                raise CallError(f"{name} needs a proxy_authen_type", name)
        return
    needs = PROXY_NEEDS.get(ptype)
    if needs is None:
        raise CallError(f"proxy authen type {ptype} is not one of RFC 2661's 1..5",
                        "proxy_authen_type")
    for name in needs:
        if params.get(name) is None:
            raise CallError(f"proxy authen type {ptype} requires {name} (RFC 2661 4.4.5)",
                            name, True)
    if ptype in (avp.PROXY_AUTH_CHAP, avp.PROXY_AUTH_MSCHAPV1) and \
            not params.get("proxy_authen_challenge"):
        # "The Challenge is a string of one or more octets."
        raise CallError("proxy_authen_challenge must be one or more octets",
                        "proxy_authen_challenge")
    if ptype == avp.PROXY_AUTH_CHAP and len(params.get("proxy_authen_response")) != 16:
        # RFC 1994 section 4.1: the MD5 CHAP Response Value is 16 octets.
        raise CallError("a CHAP (MD5) proxy_authen_response is 16 octets",
                        "proxy_authen_response")


def _fmt(why):
    """(result, error, text) as words, for reasons and logs."""
    if not why:
        return "no result code"
    r, e, text = (tuple(why) + (None, None))[:3]
    s = f"result {r}" + (f" error {e}" if e is not None else "")
    return s + (f": {text}" if text else "")


# Session AVPs by name: the keys of params, Session.peer and session-up info.
_CALL_AVPS = (
    (avp.CALL_SERIAL_NUMBER, "call_serial_number"), (avp.MINIMUM_BPS, "minimum_bps"),
    (avp.MAXIMUM_BPS, "maximum_bps"), (avp.BEARER_TYPE, "bearer_type"),
    (avp.FRAMING_TYPE, "framing_type"), (avp.CALLED_NUMBER, "called_number"),
    (avp.CALLING_NUMBER, "calling_number"), (avp.SUB_ADDRESS, "sub_address"),
    (avp.TX_CONNECT_SPEED, "tx_connect_speed"), (avp.RX_CONNECT_SPEED, "rx_connect_speed"),
    (avp.PHYSICAL_CHANNEL_ID, "physical_channel_id"),
    (avp.SEQUENCING_REQUIRED, "sequencing_required"), (avp.PRIVATE_GROUP_ID, "private_group_id"),
    (avp.PROXY_AUTHEN_TYPE, "proxy_authen_type"), (avp.PROXY_AUTHEN_NAME, "proxy_authen_name"),
    (avp.PROXY_AUTHEN_CHALLENGE, "proxy_authen_challenge"),
    (avp.PROXY_AUTHEN_ID, "proxy_authen_id"), (avp.PROXY_AUTHEN_RESPONSE, "proxy_authen_response"),
    (avp.INITIAL_RECEIVED_LCP_CONFREQ, "initial_received_lcp_confreq"),
    (avp.LAST_SENT_LCP_CONFREQ, "last_sent_lcp_confreq"),
    (avp.LAST_RECEIVED_LCP_CONFREQ, "last_received_lcp_confreq"),
)
_PEER_ONLY = ((avp.RESULT_CODE, "result_code"), (avp.Q931_CAUSE_CODE, "q931_cause_code"),
              (avp.CALL_ERRORS, "call_errors"), (avp.ACCM, "accm"))
_SESSION_KEYS = dict(_CALL_AVPS + _PEER_ONLY)
_PARAM_ATTR = dict([(name, attr) for attr, name in _CALL_AVPS])
_CALL_ATTRS = set([attr for attr, _ in _CALL_AVPS])
_TUNNEL_KEYS = dict((
    (avp.PROTOCOL_VERSION, "protocol_version"), (avp.HOST_NAME, "host_name"),
    (avp.VENDOR_NAME, "vendor_name"), (avp.FIRMWARE_REVISION, "firmware_revision"),
    (avp.FRAMING_CAPABILITIES, "framing_caps"), (avp.BEARER_CAPABILITIES, "bearer_caps"),
    (avp.RECEIVE_WINDOW_SIZE, "rx_window_size"), (avp.TIE_BREAKER, "tiebreaker"),
    (avp.ASSIGNED_TUNNEL_ID, "tunnel_id"), (avp.RESULT_CODE, "result_code"),
))


_MAX_CALLS = 0xFFFF


def _check_params(params):
    """Refuse unknown keys and unencodable values now, not in the middle of an action."""
    for key in params:
        if key == "session_id":
            continue
        if key not in _PARAM_ATTR:
            raise avp.LocalError(f"unknown session parameter {key!r}")
        v = params[key]
        if v is not None and v is not False:
            avp.encode_message(avp.ICCN, ((_PARAM_ATTR[key], v),))


# ---------------------------------------------------------------- engine
class _Machine:
    """The engine shared by tunnels and sessions (STYLE.md item 7)."""

    # Tunnels and sessions exist by the ten thousand: no per-instance dict on
    # CPython (bench F3/F4). MicroPython ignores __slots__; nothing relies on it.
    __slots__ = ("state", "table")

    def _fire(self, event, now, msg=None, arg=None):
        row = self.table.get((self.state, event))
        if row is None:
            return self._miss(event, now, msg, arg)
        action, nxt = row
        self._say(f"{self.state} --{event}--> {nxt} ({action})")
        out = getattr(self, action)(now, msg, arg)
        self.state = nxt
        return out

    def _miss(self, event, now, msg, arg):
        if event in LOCAL_EVENTS:
            raise avp.LocalError(f"{event} is not allowed in state {self.state}")
        if msg is None or self.state in (CLOSING, CLOSED):
            self._say(f"{event} ignored in state {self.state}")
            return []  # an internal event with nothing to do
        why = arg if isinstance(arg, tuple) else None  # "session-msg" carries a sid
        self._say(f"unexpected {msg.name} in state {self.state}")
        out = self.act_fsm_error(now, msg, why)
        self.state = self.FAILED_STATE
        return out

    def _classify(self, msg):
        """The event for a received message: its name, or name + "-bad" when the
        table splits it by acceptability here and the check refuses it."""
        ev = msg.name.lower()
        if (self.state, ev + "-bad") in self.table:
            why = getattr(self, "_check_" + ev)(msg)
            if why:
                return ev + "-bad", why
        return ev, None


# ---------------------------------------------------------------- tunnel
class Tunnel(_Machine):
    """One control connection (RFC 2661 section 7.2) and its calls."""

    __slots__ = ("tunnel_id", "peer_tunnel_id", "config", "rng", "policy", "log", "channel",
                 "sessions", "peer", "result", "tiebreaker", "_challenge", "_deadline",
                 "_timers", "_serial", "half_open")

    FAILED_STATE = CLOSING

    def __init__(self, tunnel_id, config, rng, log=None, policy=None):
        if not isinstance(tunnel_id, int) or not 0 < tunnel_id <= 0xFFFF:
            raise avp.LocalError(f"tunnel id {tunnel_id!r} is not in 1..65535")
        c = config
        self.tunnel_id = tunnel_id
        self.peer_tunnel_id = 0
        self.state = IDLE
        self.table = TUNNEL_FSM
        self.config = c
        self.rng = rng
        self.policy = policy
        self.log = log
        self.channel = ControlChannel(c.rx_window_size, c.tx_window_size, c.retry_timeout,
                                      c.max_retry_timeout, c.max_retries, c.hello_timeout,
                                      c.ack_delay, log=log)
        self.sessions = {}
        self.peer = {}
        self.result = None
        self.tiebreaker = None
        self._challenge = None  # the Challenge we sent, when we sent one
        self._deadline = None   # establishment timer
        self._timers = {}       # sid -> session establishment deadline
        self._serial = 0        # Call Serial Numbers we hand out
        self.half_open = 0      # calls the peer placed that are not up yet

    # -------------------------------------------------------- public API
    def open(self, now):
        """Initiator: send SCCRQ."""
        return self._fire("open", now)

    def close(self, now, result=1, error=None, text=None):
        """StopCCN (section 5.7); every call goes with it."""
        if self.state in (CLOSING, CLOSED):
            return []
        return self._fire("close", now, None, (result, error, text))

    def discard(self, now):
        """Drop the tunnel silently: it lost the tie breaker (section 4.4.3)."""
        if self.state in (CLOSING, CLOSED):
            return []
        return self._fire("lose-tie", now, None, "lost the tie breaker")

    def abandon(self, now, reason):
        """Clear the tunnel and its calls at once, sending nothing: the peer has
        started a new control connection with the same Assigned Tunnel ID (it
        restarted), so a StopCCN or CDN for this one would carry that id and
        clear the peer's new tunnel. Returns the tunnel-down (unless it was
        already down) and tunnel-closed actions."""
        if self.state == CLOSED:
            return []
        return self._fire("abandon", now, None, reason)

    def drop(self, now, result, error=None, text=None):
        """Clear the tunnel at once with one StopCCN sent best-effort (never
        retransmitted, no linger: section 5.7 "may"), for a caller that must not
        keep state for it (a half-open tunnel evicted under an SCCRQ flood)."""
        if self.state == CLOSED:
            return []
        return self._fire("drop", now, None, (result, error, text))

    def call_types(self, session_type, params):
        """Bearer Type and Framing Type for a call we place, as
        {"bearer_type": int, "framing_type": int}, from the requested values in
        `params` (3 = either) within the capabilities the peer advertised.

        Ref: RFC2661 sections 4.4.3 and 6.9: an LNS MUST have received Bearer
        Capabilities to request an outgoing call, and sets only bits the LAC
        advertised; a Framing Type is never outside the Framing Capabilities
        received. Raises CallError naming the parameter when no type fits."""
        c, p = self.config, self.peer
        params = params or {}
        out = {}
        if session_type == "lnoc":
            bc = p.get("bearer_caps")
            if not bc:
                raise CallError("the peer sent no Bearer Capabilities (or none set), so it "
                                "takes no outgoing calls (RFC 2661 6.9)", "session_type")
            out["bearer_type"] = _fit("bearer type", "Bearer Capabilities",
                                      params.get("bearer_type"), bc, "bearer_type")
        fc = p.get("framing_caps", 3)
        if session_type != "lnoc":
            fc &= c.framing_caps   # the framing we negotiated: ours and the peer's
        out["framing_type"] = _fit("framing type", "Framing Capabilities",
                                   params.get("framing_type"), fc, "framing_type")
        return out

    def receive(self, datagram, now, header=None):
        """Any control datagram for this tunnel. Never raises on peer input."""
        if self.state == CLOSED:
            return []
        out = []
        for sid, body in self.channel.receive(datagram, now, header):
            if self.state in (CLOSING, CLOSED):
                break  # Ref: RFC2661 section 5.7: after StopCCN only acks matter
            out += self._deliver(sid, body, now)
        return out + self._channel_events(now)

    def on_timer(self, now):
        if self.state == CLOSED:
            return []
        self.channel.on_timer(now)
        out = self._channel_events(now)
        if self._deadline is not None and now >= self._deadline:
            self._deadline = None
            out += self._fire("timeout", now)
        for sid in sorted(self._timers):
            s = self.sessions.get(sid)
            if s is not None and now >= self._timers[sid]:
                del self._timers[sid]
                out += s._fire("timeout", now)
        return out

    def next_deadline(self):
        if self.state == CLOSED:
            return None
        if self.channel.has_events:
            return 0   # the channel failed inside a send: on_timer clears us now
        best = self.channel.next_deadline()
        for t in [self._deadline] + list(self._timers.values()):
            if t is not None and (best is None or t < best):
                best = t
        return best

    def datagrams_to_send(self, now):
        if self.state == CLOSED:
            return self.channel.take_final()   # a best-effort StopCCN, nothing else
        return self.channel.datagrams_to_send(now)

    def note_rx(self, now):
        self.channel.note_rx(now)

    def session_open(self, now, session_type, params=None):
        """A call we place: "laic" (ICRQ) or "lnoc" (OCRQ). It waits in
        wait-tunnel until the tunnel is established."""
        if session_type not in ("laic", "lnoc"):
            raise avp.LocalError(f"session type {session_type!r}: only laic or lnoc start here")
        if self.state in (CLOSING, CLOSED):
            raise avp.LocalError(f"tunnel {self.tunnel_id} is {self.state}")
        params = dict(params or {})
        _check_params(params)
        check_call(session_type, params)
        if self.state == ESTABLISHED:
            self.call_types(session_type, params)  # refused now, not after the fact
        sid = params.pop("session_id", None) or new_id(self.rng, self.sessions)
        if sid in self.sessions or not 0 < sid <= 0xFFFF:
            raise avp.LocalError(f"session id {sid} is in use or out of range")
        m = min(self.config.max_sessions or _MAX_CALLS, _MAX_CALLS)
        if len(self.sessions) >= m:
            raise avp.LocalError(f"max_sessions {m} reached on tunnel {self.tunnel_id}")
        if self.channel.busy:
            raise avp.LocalError(f"tunnel {self.tunnel_id} is busy: {self.channel.unacked} "
                                 "messages wait for the peer's acknowledgement; try again")
        s = Session(self, sid, session_type, params)
        s.announced = True
        self.sessions[sid] = s
        out = s._fire("open", now)
        if self.state == ESTABLISHED:
            out += s._fire("tunnel-open", now)
        return s, out

    def session_close(self, now, sid, result=3, error=None, text=None):
        """CDN (section 5.6); an unknown or finished session is a no-op."""
        s = self.sessions.get(sid)
        return s._fire("close", now, None, (result, error, text)) if s else []

    def bearer_up(self, now, sid, params=None):
        """LAOC: the outgoing call is connected (section 7.5.1): send OCCN."""
        s = self.sessions.get(sid)
        if s is None:
            raise avp.LocalError(f"no session {sid} on tunnel {self.tunnel_id}")
        params = dict(params or {})
        _check_params(params)
        return s._fire("bearer-up", now, None, params)

    def session_info(self, now, sid, kind, value):
        """Send "wen" (LAC: the six Call Errors counters, section 6.13) or "sli"
        (LNS: (send_accm, recv_accm), section 6.14) for an established call."""
        s = self.sessions.get(sid)
        if s is None or s.state != ESTABLISHED or kind not in ("wen", "sli"):
            raise avp.LocalError(f"cannot send {kind} for session {sid}")
        mtype, attr = (avp.WEN, avp.CALL_ERRORS) if kind == "wen" else (avp.SLI, avp.ACCM)
        self._send(now, mtype, ((attr, tuple(value)),), s.peer_session_id)
        return []

    # -------------------------------------------------------- internals
    def _say(self, text):
        if self.log is not None:
            self.log(text)

    def _send(self, now, mtype, avps, session_id=0, hide=True):
        c = self.config
        # Nothing hidden in SCCRQ/SCCRP unless hide_setup: Cisco cannot parse hidden
        # AVPs in SCCRQ, and xl2tpd unhides both before it looks its secret up, so it
        # drops a tunnel whose SCCRP we hid (tests/test_xl2tpd_interop.py).
        if mtype == avp.SCCRQ or mtype == avp.SCCRP:
            hide = hide and c.hide_setup
        body = avp.encode_message(mtype, avps, c.secret, hide and c.hide_avps, self.rng,
                                  c.hide_setup)
        self.channel.send(body, now, session_id)

    def _channel_events(self, now):
        out = []
        for ev in self.channel.pop_events():
            if ev[0] == "failed":
                out += self._fire("chan-failed", now, None, "control channel failed: " + ev[1])
            else:
                out += self._fire("chan-closed", now)
        return out

    def _deliver(self, sid, body, now):
        """Decode one in-order message and hand it to the right machine."""
        c = self.config
        try:
            msg = avp.decode_message(body, c.secret, c.permissive)
        except avp.IgnoredMessage as e:
            self._say(e.msg)
            return []
        except avp.ParseError as e:
            return [("error", self.tunnel_id, "discarded a malformed message: " + e.msg)]
        except avp.ProtocolError as e:
            return self._rx_error(sid, e, now)
        if msg.type not in avp.TUNNEL_MESSAGES:
            return self._fire("session-msg", now, msg, sid)
        if msg.type == avp.HELLO:
            return []  # the channel keeps Hellos; nothing for the machine
        ev, why = self._classify(msg)
        return self._fire(ev, now, msg, why)

    def _rx_error(self, sid, e, now):
        why = (e.result, e.error, e.msg)
        if e.msg_type == avp.STOPCCN:
            # Never answer a StopCCN with a StopCCN: take it as the peer's goodbye.
            return self._fire("stopccn", now, e.message, why)
        if e.scope == "tunnel" or self.state != ESTABLISHED:
            return self._fire("rx-error", now, e.message, why)
        s = self.sessions.get(sid) if sid else None
        if s is None and e.msg_type in (avp.ICRQ, avp.OCRQ):
            return self._peer_call(now, e.message, why)
        if s is None:
            return [("error", self.tunnel_id, f"{e.msg} (for unknown session {sid}): ignored")]
        if e.msg_type == avp.CDN:
            return s._fire("cdn", now, e.message, why)
        return s._fire("rx-error", now, e.message, why)

    def _peer_call(self, now, msg, why):
        """ICRQ or OCRQ: a call the peer places gets a session in idle."""
        kind = "lnic" if msg.type == avp.ICRQ else "laoc"
        if len(self.sessions) >= _MAX_CALLS:
            # Every session id is taken: refuse without one (Assigned Session ID 0,
            # we assigned none), to the peer's id, rather than stay silent.
            psid = msg.get(avp.ASSIGNED_SESSION_ID) or 0
            why = (avp.CDN_NO_RESOURCES_TEMP, avp.ERR_NO_RESOURCES,
                   f"all {_MAX_CALLS} session ids of this tunnel are in use")
            self._send(now, avp.CDN, ((avp.RESULT_CODE, why), (avp.ASSIGNED_SESSION_ID, 0)),
                       psid)
            return [("error", self.tunnel_id, f"{msg.name} refused: {why[2]}")]
        s = Session(self, new_id(self.rng, self.sessions), kind)
        self.sessions[s.session_id] = s
        s.half = True
        self.half_open += 1
        if why:
            return s._fire(msg.name.lower() + "-bad", now, msg, why)
        ev, why = s._classify(msg)
        return s._fire(ev, now, msg, why)

    def _learn(self, msg):
        """Record what the peer told us in SCCRQ/SCCRP, and its tunnel id."""
        if msg is None:
            return
        for attr in msg.avps:
            if attr in _TUNNEL_KEYS:
                self.peer[_TUNNEL_KEYS[attr]] = msg.avps[attr]
        tid = msg.get(avp.ASSIGNED_TUNNEL_ID)
        if tid and not self.peer_tunnel_id and msg.type in (avp.SCCRQ, avp.SCCRP):
            self.peer_tunnel_id = self.channel.peer_tunnel_id = tid
        if msg.type in (avp.SCCRQ, avp.SCCRP):
            self.channel.set_peer_window(msg.get(avp.RECEIVE_WINDOW_SIZE))

    def _caps(self):
        """The AVPs SCCRQ and SCCRP share after the MUST ones (section 6.1, 6.2)."""
        c = self.config
        avps = [(avp.BEARER_CAPABILITIES, c.bearer_caps),
                (avp.FIRMWARE_REVISION, c.firmware_revision),
                (avp.VENDOR_NAME, c.vendor_name), (avp.RECEIVE_WINDOW_SIZE, c.rx_window_size)]
        if c.secret:
            # Ref: RFC2661 section 5.1.1: we authenticate whenever we have a secret.
            self._challenge = bytes(self.rng(16))
            avps.append((avp.CHALLENGE, self._challenge))
        return avps

    def _arm(self, now):
        t = self.config.establish_timeout
        self._deadline = now + t if t else None

    def _down(self, now, reason, result):
        """Clean up: every call goes (section 5.7), then the tunnel-down action."""
        if result is not None:
            self.result = result
        self._deadline = None
        out = []
        for sid in sorted(self.sessions):
            out += self.sessions[sid]._fire("tunnel-down", now, None, reason)
        return out + [("tunnel-down", self.tunnel_id, reason, result)]

    # -------------------------------------------------------- checks (pure)
    def _check_peer(self, msg):
        ver = msg.get(avp.PROTOCOL_VERSION)
        if ver[0] != 1:
            # Ref: RFC2661 section 4.4.2: result 5, Error Code = highest version we speak
            return (5, 1, f"protocol version {ver[0]}.{ver[1]} is not supported (1.0 is)")
        if not msg.get(avp.ASSIGNED_TUNNEL_ID):
            return (2, 3, f"{msg.name}: Assigned Tunnel ID 0")
        if avp.CHALLENGE in msg and not self.config.secret:
            # Ref: RFC2661 section 5.1.1: answering needs the shared secret
            return (2, 6, f"{msg.name} has a Challenge but no secret is configured")
        return None

    def _check_auth(self, msg):
        # Ref: RFC2661 section 5.1.1: a wrong or missing response disallows the tunnel
        if self._challenge is None:
            return None
        got = msg.get(avp.CHALLENGE_RESPONSE)
        if got is None:
            return (4, 0, f"not authorized: no Challenge Response in {msg.name}")
        if got != avp.challenge_response(msg.type, self.config.secret, self._challenge):
            return (4, 0, f"not authorized: wrong Challenge Response in {msg.name}")
        return None

    def _check_policy(self, msg):
        p = self.policy
        return p.accept_tunnel(self, msg) if p is not None else None

    def _check_sccrq(self, msg):
        return self._check_peer(msg) or self._check_policy(msg)

    def _check_sccrp(self, msg):
        return self._check_peer(msg) or self._check_auth(msg) or self._check_policy(msg)

    def _check_scccn(self, msg):
        return self._check_auth(msg)

    # -------------------------------------------------------- actions
    def act_send_sccrq(self, now, msg, arg):
        c = self.config
        avps = [(avp.PROTOCOL_VERSION, (1, 0)), (avp.HOST_NAME, c.host_name),
                (avp.FRAMING_CAPABILITIES, c.framing_caps),
                (avp.ASSIGNED_TUNNEL_ID, self.tunnel_id)] + self._caps()
        if c.use_tiebreaker:
            self.tiebreaker = bytes(self.rng(8))
            avps.append((avp.TIE_BREAKER, self.tiebreaker))  # Ref: RFC2661 section 4.4.3
        self._send(now, avp.SCCRQ, avps)
        self._arm(now)
        return []

    def act_send_sccrp(self, now, msg, arg):
        c = self.config
        self._learn(msg)
        avps = [(avp.PROTOCOL_VERSION, (1, 0)), (avp.FRAMING_CAPABILITIES, c.framing_caps),
                (avp.HOST_NAME, c.host_name),
                (avp.ASSIGNED_TUNNEL_ID, self.tunnel_id)] + self._caps()
        if avp.CHALLENGE in msg and c.secret:  # Ref: RFC2661 4.4.3: MD5(2 | secret | chal)
            avps.append((avp.CHALLENGE_RESPONSE, avp.challenge_response(
                avp.SCCRP, c.secret, msg.get(avp.CHALLENGE))))
        self._send(now, avp.SCCRP, avps)
        self._arm(now)
        return []

    def act_send_scccn(self, now, msg, arg):
        self._learn(msg)
        avps = []
        if avp.CHALLENGE in msg and self.config.secret:  # Ref: RFC2661 4.4.3: MD5(3 | ...)
            avps.append((avp.CHALLENGE_RESPONSE, avp.challenge_response(
                avp.SCCCN, self.config.secret, msg.get(avp.CHALLENGE))))
        self._send(now, avp.SCCCN, avps)
        return self.act_tunnel_open(now, msg, arg)

    def act_tunnel_open(self, now, msg, arg):
        """Established: tell the caller, then the calls waiting for the tunnel."""
        self._deadline = None
        self.peer["challenge_ok"] = True if self._challenge is not None else None
        out = [("tunnel-up", self.tunnel_id)]
        for sid in sorted(self.sessions):
            s = self.sessions[sid]
            if s.state == WAIT_TUNNEL:
                out += s._fire("tunnel-open", now)
        return out

    def act_stop(self, now, msg, arg):
        """StopCCN with `arg` as (result, error, text), then clean up (section 5.7).
        It carries the Assigned Tunnel ID we sent and is never hidden, so a peer
        with the wrong secret can still read why."""
        if msg is not None and not self.peer_tunnel_id:
            self._learn(msg)  # a refused SCCRQ/SCCRP: answer to the peer's tunnel id
        why = arg or (avp.STOPCCN_GENERAL, None, None)
        self._send(now, avp.STOPCCN, ((avp.ASSIGNED_TUNNEL_ID, self.tunnel_id),
                                      (avp.RESULT_CODE, why)), hide=False)
        return self._down(now, "sent StopCCN, " + _fmt(why), why)

    def act_stop_fsm(self, now, msg, arg):
        # Ref: RFC2661 section 7.1: a message in an improper sequence clears the tunnel
        why = arg or (avp.STOPCCN_FSM_ERROR, 0, f"unexpected {msg.name} in state {self.state}")
        return self.act_stop(now, msg, why)

    act_fsm_error = act_stop_fsm

    def act_timeout(self, now, msg, arg):
        ms = self.config.establish_timeout
        return self.act_stop(now, None, (avp.STOPCCN_GENERAL, 0, f"not established in {ms} ms"))

    def act_peer_stop(self, now, msg, arg):
        """The peer's StopCCN: the channel acks it and lingers (section 5.7)."""
        result = msg.get(avp.RESULT_CODE) if msg is not None else None
        self.peer["result_code"] = result
        text = "peer sent StopCCN, " + _fmt(result)
        if arg:
            text += f" (malformed: {arg[2]})"
        return self._down(now, text, result)

    def act_cleanup(self, now, msg, arg):
        """Silent clean-up: nothing was sent to stop (section 7.2.1, 4.4.3)."""
        text = arg if isinstance(arg, str) else (f"{msg.name} in state {self.state}"
                                                if msg is not None else "closed before use")
        return self._down(now, text, None) + [("tunnel-closed", self.tunnel_id)]

    def act_fail(self, now, msg, arg):
        """The channel gave up. Ref: RFC2661 section 5.8: the tunnel and all its
        sessions MUST be cleared; one StopCCN goes out unreliably (5.7 allows it)
        so the peer clears now instead of after its own Hellos fail."""
        self._stop_once((avp.STOPCCN_GENERAL, 0, str(arg)[:200]))
        return self._down(now, arg, None) + [("tunnel-closed", self.tunnel_id)]

    def act_drop(self, now, msg, arg):
        why = arg or (avp.STOPCCN_GENERAL, None, None)
        self._stop_once(why)
        return self._down(now, "sent StopCCN, " + _fmt(why), why) + [
            ("tunnel-closed", self.tunnel_id)]

    def _stop_once(self, why):
        """A StopCCN outside the reliable channel (it may be full or failed)."""
        if self.peer_tunnel_id:
            self.channel.send_final(avp.encode_message(avp.STOPCCN, (
                (avp.ASSIGNED_TUNNEL_ID, self.tunnel_id), (avp.RESULT_CODE, why))))

    def act_closed(self, now, msg, arg):
        return [("tunnel-closed", self.tunnel_id)]

    def act_session_msg(self, now, msg, sid):
        """A call's message on an established tunnel: find the call, run its table."""
        s = self.sessions.get(sid) if sid else None
        if s is None and msg.type in (avp.ICRQ, avp.OCRQ):
            return self._peer_call(now, msg, None)
        if s is None and msg.type == avp.CDN:
            # Ref: RFC2661 section 4.4.4: a CDN carries the sender's Assigned Session
            # ID, so a call cleared before our id reached the peer is still found.
            psid = msg.get(avp.ASSIGNED_SESSION_ID)
            for x in self.sessions.values():
                if x.peer_session_id == psid:
                    s = x
        if s is None:
            # Ref: RFC2661 sections 7.4.1, 7.5.2 (idle: clean up): no answer, so a
            # peer that already cleared the call is never confused (xl2tpd quirk 1).
            return [("error", self.tunnel_id, f"{msg.name} for unknown session {sid}: ignored")]
        if msg.type in (avp.WEN, avp.SLI):
            return s._report(msg)
        ev, why = s._classify(msg)
        return s._fire(ev, now, msg, why)


# ---------------------------------------------------------------- session
class Session(_Machine):
    """One call on a tunnel; its table is chosen by its type (section 7.4, 7.5)."""

    __slots__ = ("tunnel", "session_id", "session_type", "peer_session_id", "peer", "local",
                 "call", "result", "announced", "half")

    FAILED_STATE = CLOSED

    def __init__(self, tunnel, session_id, session_type, params=None):
        self.tunnel = tunnel
        self.session_id = session_id
        self.peer_session_id = 0
        self.session_type = session_type
        self.table = SESSION_FSM[session_type]
        self.state = IDLE
        self.peer = {}       # what the peer sent, by name
        self.local = dict(params or {})  # what we send, by name (the params)
        self.call = {}       # the call as exchanged both ways: the session-up info
        self.result = None
        self.announced = False  # the caller knows of it (session_open / session-created)
        self.half = False       # counted in tunnel.half_open (placed by the peer, not up)

    def _report(self, msg):
        """WEN and SLI change no state (sections 6.13, 6.14): record, report."""
        self._learn(msg)
        kind = "wen" if msg.type == avp.WEN else "sli"
        value = msg.get(avp.CALL_ERRORS if kind == "wen" else avp.ACCM)
        return [("session-info", self.tunnel.tunnel_id, self.session_id, kind, value)]

    def _say(self, text):
        self.tunnel._say(f"session {self.session_id}: {text}")

    def _send(self, now, mtype, avps):
        self.tunnel._send(now, mtype, avps, self.peer_session_id)

    def _learn(self, msg):
        """Record the peer's AVPs, and its session id the first time."""
        for attr in msg.avps:
            name = _SESSION_KEYS.get(attr)
            if name is not None:
                self.peer[name] = msg.avps[attr]
                if attr in _CALL_ATTRS:
                    self.call[name] = msg.avps[attr]
        psid = msg.get(avp.ASSIGNED_SESSION_ID)
        if psid and not self.peer_session_id:
            self.peer_session_id = psid

    def _avps(self, mtype, defaults):
        """Our AVPs for `mtype` in section 6 order, from params over defaults."""
        if self.local is None:
            self.local = {}
        for key in defaults:
            if self.local.get(key) is None:
                self.local[key] = defaults[key]
        must, may = avp.MSG_SPEC[mtype]
        out = []
        if avp.ASSIGNED_SESSION_ID in must:
            out.append((avp.ASSIGNED_SESSION_ID, self.session_id))
        for attr in must + may:
            name = _SESSION_KEYS.get(attr)
            v = self.local.get(name) if name in _PARAM_ATTR else None
            if v is not None and v is not False:
                out.append((attr, v))
                self.call[name] = v
        return out

    def _arm(self, now):
        t = self.tunnel.config.session_establish_timeout
        if t:
            self.tunnel._timers[self.session_id] = now + t

    def _settled(self):
        if self.half:
            self.half = False
            self.tunnel.half_open -= 1

    def _up(self):
        self._settled()
        self.tunnel._timers.pop(self.session_id, None)
        # The call dict itself is the session-up info (the caller keeps it), and what
        # we would send is no longer needed once the call is up: a full tunnel holds
        # 65,535 of these (bench F4).
        info = self.call
        info["peer_session_id"] = self.peer_session_id
        info["session_type"] = self.session_type
        info["sequencing_required"] = bool(info.get("sequencing_required"))
        self.local = None
        return [("session-up", self.tunnel.tunnel_id, self.session_id, info)]

    def _down(self, reason, result):
        t = self.tunnel
        self._settled()
        self.result = result
        t.sessions.pop(self.session_id, None)
        t._timers.pop(self.session_id, None)
        if self.announced:
            return [("session-down", t.tunnel_id, self.session_id, reason, result)]
        return [("error", t.tunnel_id, f"{self.session_type} call {self.session_id}: {reason}")]

    # -------------------------------------------------------- checks (pure)
    def _check_id(self, msg):
        if not msg.get(avp.ASSIGNED_SESSION_ID):
            return (avp.CDN_ERROR, avp.ERR_BAD_VALUE, f"{msg.name}: Assigned Session ID 0")
        return None

    def _check_call(self, msg):
        t = self.tunnel
        m = min(t.config.max_sessions or _MAX_CALLS, _MAX_CALLS)
        if len(t.sessions) > m:  # this call is already counted
            # Temporary: calls come and go; the peer may retry or try another LNS.
            return (avp.CDN_NO_RESOURCES_TEMP, avp.ERR_NO_RESOURCES, f"max_sessions {m} reached")
        h = t.config.max_half_open
        if h and t.half_open > h:
            # A peer that never completes its calls (ICRQ without ICCN) must not
            # fill the tunnel: they are bounded apart from established ones.
            return (avp.CDN_NO_RESOURCES_TEMP, avp.ERR_NO_RESOURCES,
                    f"{h} calls are already being set up in this tunnel")
        if t.policy is not None:
            return t.policy.accept_session(t, self.session_type, msg)
        return None

    def _check_icrq(self, msg):
        return self._check_id(msg) or self._check_call(msg)

    def _check_ocrq(self, msg):
        # Ref: RFC2661 sections 4.4.3 and 4.4.5: the LNS sets only bits we advertised
        # in Bearer and Framing Capabilities; "attempts to do so will result in the
        # call being rejected" (result 5: we lack the facilities, for good).
        c = self.tunnel.config
        why = (_outside("bearer type", "Bearer Capabilities", msg.get(avp.BEARER_TYPE, 0),
                        c.bearer_caps)
               or _outside("framing type", "Framing Capabilities",
                           msg.get(avp.FRAMING_TYPE, 0), c.framing_caps))
        if why:
            return (avp.CDN_NO_RESOURCES_PERM, 0, why)
        return self._check_id(msg) or self._check_call(msg)

    _check_icrp = _check_ocrp = _check_id

    def _check_iccn(self, msg):
        # Cisco may leave Framing Type out: accepted (avp.py's leniency notes).
        why = _outside("framing type", "Framing Capabilities", msg.get(avp.FRAMING_TYPE, 0),
                       self.tunnel.config.framing_caps)
        return (avp.CDN_ERROR, avp.ERR_BAD_VALUE, why) if why else None

    # -------------------------------------------------------- actions
    def act_none(self, now, msg, arg):
        return []

    def act_cleanup(self, now, msg, arg):
        """The call is over without a word from us (a CDN, or a message for a
        call that cannot be, section 7.4/7.5 "clean up")."""
        if msg is not None and msg.type == avp.CDN:
            self._learn(msg)
            result = msg.get(avp.RESULT_CODE)
            text = "peer sent CDN, " + _fmt(result) + (f" (malformed: {arg[2]})" if arg else "")
            return self._down(text, result)
        name = msg.name if msg is not None else "local close"
        return self._down(f"{name} in state {self.state}", None)

    def act_send_cdn(self, now, msg, arg):
        """CDN with `arg` as (result, error, text) and our Assigned Session ID."""
        if msg is not None and not self.peer_session_id:
            self._learn(msg)  # a refused request: answer to the peer's id
        why = arg or (avp.CDN_ADMIN, None, None)
        self._send(now, avp.CDN, ((avp.RESULT_CODE, why),
                                  (avp.ASSIGNED_SESSION_ID, self.session_id)))
        return self._down("sent CDN, " + _fmt(why), why)

    def act_cdn_fsm(self, now, msg, arg):
        # The message names this call's Session ID, where it is out of place.
        why = arg or (avp.CDN_ERROR, avp.ERR_BAD_SESSION_ID,
                      f"unexpected {msg.name} in state {self.state}")
        return self.act_send_cdn(now, None, why)

    act_fsm_error = act_cdn_fsm

    def act_timeout(self, now, msg, arg):
        ms = self.tunnel.config.session_establish_timeout
        # LAC: result 10 (not established in the time allotted by the LAC);
        # LNS: result 3 (administrative: our own timer).
        r = 10 if self.session_type in ("laic", "laoc") else avp.CDN_ADMIN
        return self.act_send_cdn(now, None, (r, 0, f"not established in {ms} ms"))

    def act_gone(self, now, msg, arg):
        return self._down("tunnel cleared: " + str(arg), None)

    def act_send_request(self, now, msg, arg):
        """ICRQ (LAIC) or OCRQ (LNOC): the call we place, once the tunnel is up.
        A call the peer's capabilities cannot take goes without a word (4.4.3)."""
        t = self.tunnel
        try:
            types = t.call_types(self.session_type, self.local)
        except CallError as e:
            return self._down("cannot place the call: " + e.msg, None)
        t._serial += 1
        d = {"call_serial_number": t._serial}
        mtype = avp.ICRQ
        if self.session_type == "lnoc":
            mtype = avp.OCRQ  # Ref: RFC2661 section 6.9: these four are MUST in OCRQ
            d.update(minimum_bps=0, maximum_bps=0xFFFFFFFF, called_number="")
            self.local.update(types)
        self._send(now, mtype, self._avps(mtype, d))
        self._arm(now)
        return []

    act_send_icrq = act_send_ocrq = act_send_request

    def act_send_reply(self, now, msg, arg):
        """ICRP or OCRP: the peer's call is accepted; the caller hears of it."""
        self._learn(msg)
        mtype = avp.ICRP if msg.type == avp.ICRQ else avp.OCRP
        self._send(now, mtype, self._avps(mtype, {}))
        self._arm(now)
        self.announced = True
        return [("session-created", self.tunnel.tunnel_id, self.session_id, self.session_type)]

    act_send_icrp = act_send_ocrp = act_send_reply

    def act_send_connected(self, now, msg, arg):
        """ICCN (LAIC, on ICRP) or OCCN (LAOC, on bearer-up with `arg` params)."""
        if msg is not None:
            self._learn(msg)
        if arg:
            self.local = dict(self.local or (), **arg)
        d = {"tx_connect_speed": 1000000}  # OpenL2TP's default connect speed
        if self.session_type == "laic":
            mtype = avp.ICCN
            # Ref: RFC2661 section 4.4.3: within the Framing Capabilities received.
            try:
                self.local["framing_type"] = self.tunnel.call_types("laic", self.local)[
                    "framing_type"]
            except CallError as e:
                return self.act_send_cdn(now, None, (avp.CDN_NO_RESOURCES_PERM, 0, e.msg))
        else:
            mtype = avp.OCCN  # the framing the OCRQ allowed, within ours
            ft = self.call.get("framing_type") or 3
            self.local["framing_type"] = (ft & self.tunnel.config.framing_caps) or ft
        self._send(now, mtype, self._avps(mtype, d))
        return self._up()

    act_send_iccn = act_send_occn = act_send_connected

    def act_connected(self, now, msg, arg):
        """LNS: ICCN or OCCN received; the data path may start."""
        self._learn(msg)
        return self._up()

    def act_got_ocrp(self, now, msg, arg):
        self._learn(msg)
        return []
