"""avp: the RFC 2661 wire layer (L2TP header, AVPs, messages, hiding).

Theory of this module
---------------------
Everything that turns bytes into values and values into bytes lives here, and
nothing else does. It is sans-IO: no sockets, no clock, no randomness except the
`rng(n) -> bytes` callable a caller hands in (needed only to hide AVPs).

Rules it keeps:
* The decoder is total. Any byte string either decodes or raises an `L2TPError`
  subclass; never IndexError, struct.error, ValueError or UnicodeError. Every
  length is checked before it is used (MicroPython's struct does not check).
* Three tiers of error (STYLE.md item 9):
  - `ParseError`: the bytes are unusable; the caller discards them (counting).
    `VersionError` (Ver != 2, e.g. L2F) and `IgnoredMessage` (unknown Message
    Type with M=0) are kinds of it that the caller discards silently.
  - `ProtocolError`: the peer broke a rule that the RFC says to answer, carrying
    the Result Code / Error Code to send and the scope ("tunnel" -> StopCCN,
    "session" -> CDN). `.message` holds what could be decoded, so the caller can
    find the peer's Assigned Tunnel/Session ID to answer with.
  - `LocalError`: our own caller asked for something unencodable.
* AVPs are described by one table, `AVP_INFO`, and messages by `MSG_SPEC`
  (RFC 2661 section 6). Encoding takes a sequence of (attr, value) pairs and
  writes them in that order after the Message Type AVP; it never iterates a dict.
* Unknown AVPs (RFC 2661 section 4.1): M=0 is kept raw in `Message.raw` and
  counted in `Message.ignored`; M=1 is a ProtocolError (result 2, error 8)
  naming the attribute, unless the decoder was asked to be `permissive`.
  Vendor AVPs are keyed by (vendor id, type) and never confused with IETF ones.

Leniency for real peers (../shared/reference/peers-and-users.md):
* Result Code of length 8 (no Error Code; MikroTik, Android).
* Result/Error Code sent little-endian (Apple): a value above 255 whose low
  octet is 0 is byte-swapped back.
* Challenge Response longer than 16 octets (Cisco adds 6): the first 16 count.
* ICCN without (Tx) Connect Speed or Framing Type (Cisco): accepted.
* SLI and WEN decode like any other message.
* An AVP whose value has the wrong length: with M=1 it is a ProtocolError
  (result 2, error 2); with M=0 it is ignored and counted (section 7.1 spirit).

Deliberately missing: L2TPv3 (RFC 3931) formats; the table is keyed so that
they can be added without reshaping it.
"""

import struct

try:
    import hashlib
except ImportError:  # pragma: no cover - some MicroPython builds call it uhashlib
    import uhashlib as hashlib

try:
    from micropython import const
except ImportError:
    def const(x):
        return x


# ---------------------------------------------------------------- message types
# RFC 2661 section 3.2. ZLB is our pseudo type for an empty control message.
ZLB = const(0)
SCCRQ = const(1)
SCCRP = const(2)
SCCCN = const(3)
STOPCCN = const(4)
HELLO = const(6)
OCRQ = const(7)
OCRP = const(8)
OCCN = const(9)
ICRQ = const(10)
ICRP = const(11)
ICCN = const(12)
CDN = const(14)
WEN = const(15)
SLI = const(16)

MSG_NAMES = {
    ZLB: "ZLB", SCCRQ: "SCCRQ", SCCRP: "SCCRP", SCCCN: "SCCCN", STOPCCN: "StopCCN",
    HELLO: "HELLO", OCRQ: "OCRQ", OCRP: "OCRP", OCCN: "OCCN", ICRQ: "ICRQ",
    ICRP: "ICRP", ICCN: "ICCN", CDN: "CDN", WEN: "WEN", SLI: "SLI",
}

# Messages about the control connection; the rest concern one session.
# An error in the first kind is answered with StopCCN, in the second with CDN.
TUNNEL_MESSAGES = (SCCRQ, SCCRP, SCCCN, STOPCCN, HELLO)

# ---------------------------------------------------------------- AVP types
MESSAGE_TYPE = const(0)
RESULT_CODE = const(1)
PROTOCOL_VERSION = const(2)
FRAMING_CAPABILITIES = const(3)
BEARER_CAPABILITIES = const(4)
TIE_BREAKER = const(5)
FIRMWARE_REVISION = const(6)
HOST_NAME = const(7)
VENDOR_NAME = const(8)
ASSIGNED_TUNNEL_ID = const(9)
RECEIVE_WINDOW_SIZE = const(10)
CHALLENGE = const(11)
Q931_CAUSE_CODE = const(12)
CHALLENGE_RESPONSE = const(13)
ASSIGNED_SESSION_ID = const(14)
CALL_SERIAL_NUMBER = const(15)
MINIMUM_BPS = const(16)
MAXIMUM_BPS = const(17)
BEARER_TYPE = const(18)
FRAMING_TYPE = const(19)
CALLED_NUMBER = const(21)
CALLING_NUMBER = const(22)
SUB_ADDRESS = const(23)
TX_CONNECT_SPEED = const(24)
PHYSICAL_CHANNEL_ID = const(25)
INITIAL_RECEIVED_LCP_CONFREQ = const(26)
LAST_SENT_LCP_CONFREQ = const(27)
LAST_RECEIVED_LCP_CONFREQ = const(28)
PROXY_AUTHEN_TYPE = const(29)
PROXY_AUTHEN_NAME = const(30)
PROXY_AUTHEN_CHALLENGE = const(31)
PROXY_AUTHEN_ID = const(32)
PROXY_AUTHEN_RESPONSE = const(33)
CALL_ERRORS = const(34)
ACCM = const(35)
RANDOM_VECTOR = const(36)
PRIVATE_GROUP_ID = const(37)
RX_CONNECT_SPEED = const(38)
SEQUENCING_REQUIRED = const(39)

# Capability and type bits (sections 4.4.3, 4.4.4).
FRAMING_SYNC = const(1)
FRAMING_ASYNC = const(2)
BEARER_DIGITAL = const(1)
BEARER_ANALOG = const(2)

# Proxy Authen Type values (section 4.4.5).
PROXY_AUTH_TEXT = const(1)
PROXY_AUTH_CHAP = const(2)
PROXY_AUTH_PAP = const(3)
PROXY_AUTH_NONE = const(4)
PROXY_AUTH_MSCHAPV1 = const(5)

# Result codes (section 4.4.2): StopCCN ...
STOPCCN_GENERAL = const(1)
STOPCCN_ERROR = const(2)
STOPCCN_ALREADY_EXISTS = const(3)
STOPCCN_NOT_AUTHORIZED = const(4)
STOPCCN_BAD_VERSION = const(5)
STOPCCN_SHUTTING_DOWN = const(6)
STOPCCN_FSM_ERROR = const(7)
# ... CDN ...
CDN_LOST_CARRIER = const(1)
CDN_ERROR = const(2)
CDN_ADMIN = const(3)
CDN_NO_RESOURCES_TEMP = const(4)
CDN_NO_RESOURCES_PERM = const(5)
CDN_INVALID_DEST = const(6)
CDN_NO_CARRIER = const(7)
CDN_BUSY = const(8)
CDN_NO_DIALTONE = const(9)
CDN_TIMEOUT = const(10)
CDN_NO_FRAMING = const(11)
# ... and the general error codes that go with result 2.
ERR_NONE = const(0)
ERR_NO_TUNNEL = const(1)
ERR_BAD_LENGTH = const(2)
ERR_BAD_VALUE = const(3)
ERR_NO_RESOURCES = const(4)
ERR_BAD_SESSION_ID = const(5)
ERR_VENDOR = const(6)
ERR_TRY_ANOTHER = const(7)
ERR_UNKNOWN_MANDATORY = const(8)

# Value kinds used in AVP_INFO.
_U16 = "u16"
_U32 = "u32"
_STR = "str"      # text: UTF-8 when valid, else one char per octet (latin-1)
_BYTES = "bytes"
_EMPTY = "empty"  # no value; decodes to True
_RESULT = "result"   # (result, error or None, message or None)
_VERSION = "version"  # (version, revision)
_Q931 = "q931"       # (cause, message type, advisory or None)
_ERRORS = "errors"   # (crc, framing, hw overruns, buffer overruns, timeouts, alignment)
_ACCM = "accm"       # (send accm, receive accm)
_ID8 = "id8"         # reserved octet + one-octet id; decodes to the id

# attr: (name, M bit we send, kind, min value length, max value length, may hide)
# Lengths count the value only (the AVP length minus the 6 header octets).
# Section 4.4 for each row; "may hide" follows section 4.3 and the digest table.
_MAXV = 1017  # 1023 (10-bit length) - 6
AVP_INFO = {
    MESSAGE_TYPE: ("Message Type", 1, _U16, 2, 2, 0),
    RESULT_CODE: ("Result Code", 1, _RESULT, 2, _MAXV, 0),
    PROTOCOL_VERSION: ("Protocol Version", 1, _VERSION, 2, 2, 0),
    FRAMING_CAPABILITIES: ("Framing Capabilities", 1, _U32, 4, 4, 1),
    BEARER_CAPABILITIES: ("Bearer Capabilities", 1, _U32, 4, 4, 1),
    TIE_BREAKER: ("Tie Breaker", 0, _BYTES, 8, 8, 0),
    FIRMWARE_REVISION: ("Firmware Revision", 0, _U16, 2, 2, 1),
    HOST_NAME: ("Host Name", 1, _STR, 1, _MAXV, 0),
    VENDOR_NAME: ("Vendor Name", 0, _STR, 0, _MAXV, 1),
    ASSIGNED_TUNNEL_ID: ("Assigned Tunnel ID", 1, _U16, 2, 2, 1),
    RECEIVE_WINDOW_SIZE: ("Receive Window Size", 1, _U16, 2, 2, 0),
    CHALLENGE: ("Challenge", 1, _BYTES, 1, _MAXV, 1),
    Q931_CAUSE_CODE: ("Q.931 Cause Code", 1, _Q931, 3, _MAXV, 0),
    CHALLENGE_RESPONSE: ("Challenge Response", 1, _BYTES, 16, _MAXV, 1),
    ASSIGNED_SESSION_ID: ("Assigned Session ID", 1, _U16, 2, 2, 1),
    CALL_SERIAL_NUMBER: ("Call Serial Number", 1, _U32, 4, 4, 1),
    MINIMUM_BPS: ("Minimum BPS", 1, _U32, 4, 4, 1),
    MAXIMUM_BPS: ("Maximum BPS", 1, _U32, 4, 4, 1),
    BEARER_TYPE: ("Bearer Type", 1, _U32, 4, 4, 1),
    FRAMING_TYPE: ("Framing Type", 1, _U32, 4, 4, 1),
    CALLED_NUMBER: ("Called Number", 1, _STR, 0, _MAXV, 1),
    CALLING_NUMBER: ("Calling Number", 1, _STR, 0, _MAXV, 1),
    SUB_ADDRESS: ("Sub-Address", 1, _STR, 0, _MAXV, 1),
    TX_CONNECT_SPEED: ("Connect Speed", 1, _U32, 4, 4, 1),
    PHYSICAL_CHANNEL_ID: ("Physical Channel ID", 0, _U32, 4, 4, 1),
    INITIAL_RECEIVED_LCP_CONFREQ: ("Initial Received LCP CONFREQ", 0, _BYTES, 0, _MAXV, 1),
    LAST_SENT_LCP_CONFREQ: ("Last Sent LCP CONFREQ", 0, _BYTES, 0, _MAXV, 1),
    LAST_RECEIVED_LCP_CONFREQ: ("Last Received LCP CONFREQ", 0, _BYTES, 0, _MAXV, 1),
    PROXY_AUTHEN_TYPE: ("Proxy Authen Type", 0, _U16, 2, 2, 1),
    PROXY_AUTHEN_NAME: ("Proxy Authen Name", 0, _STR, 0, _MAXV, 1),
    PROXY_AUTHEN_CHALLENGE: ("Proxy Authen Challenge", 0, _BYTES, 0, _MAXV, 1),
    PROXY_AUTHEN_ID: ("Proxy Authen ID", 0, _ID8, 2, 2, 1),
    PROXY_AUTHEN_RESPONSE: ("Proxy Authen Response", 0, _BYTES, 0, _MAXV, 1),
    CALL_ERRORS: ("Call Errors", 1, _ERRORS, 26, 26, 1),
    ACCM: ("ACCM", 1, _ACCM, 10, 10, 1),
    RANDOM_VECTOR: ("Random Vector", 1, _BYTES, 1, _MAXV, 0),
    PRIVATE_GROUP_ID: ("Private Group ID", 0, _BYTES, 0, _MAXV, 1),
    RX_CONNECT_SPEED: ("Rx Connect Speed", 0, _U32, 4, 4, 1),
    SEQUENCING_REQUIRED: ("Sequencing Required", 1, _EMPTY, 0, 0, 0),
}

# RFC 2661 section 6: for each message, the AVPs it MUST and MAY carry
# (Message Type, and Random Vector before any hidden AVP, are implied).
MSG_SPEC = {
    # Ref: RFC2661 section 6.1
    SCCRQ: ((PROTOCOL_VERSION, HOST_NAME, FRAMING_CAPABILITIES, ASSIGNED_TUNNEL_ID),
            (BEARER_CAPABILITIES, RECEIVE_WINDOW_SIZE, CHALLENGE, TIE_BREAKER,
             FIRMWARE_REVISION, VENDOR_NAME)),
    # Ref: RFC2661 section 6.2
    SCCRP: ((PROTOCOL_VERSION, FRAMING_CAPABILITIES, HOST_NAME, ASSIGNED_TUNNEL_ID),
            (BEARER_CAPABILITIES, FIRMWARE_REVISION, VENDOR_NAME, RECEIVE_WINDOW_SIZE,
             CHALLENGE, CHALLENGE_RESPONSE)),
    # Ref: RFC2661 section 6.3
    SCCCN: ((), (CHALLENGE_RESPONSE,)),
    # Ref: RFC2661 section 6.4
    STOPCCN: ((ASSIGNED_TUNNEL_ID, RESULT_CODE), ()),
    # Ref: RFC2661 section 6.5
    HELLO: ((), ()),
    # Ref: RFC2661 section 6.6
    OCRQ: ((ASSIGNED_SESSION_ID, CALL_SERIAL_NUMBER, MINIMUM_BPS, MAXIMUM_BPS,
            BEARER_TYPE, FRAMING_TYPE, CALLED_NUMBER),
           (SUB_ADDRESS,)),
    # Ref: RFC2661 section 6.7
    OCRP: ((ASSIGNED_SESSION_ID,), (PHYSICAL_CHANNEL_ID,)),
    # Ref: RFC2661 section 6.8
    OCCN: ((TX_CONNECT_SPEED, FRAMING_TYPE), (RX_CONNECT_SPEED, SEQUENCING_REQUIRED)),
    # Ref: RFC2661 section 6.9
    ICRQ: ((ASSIGNED_SESSION_ID, CALL_SERIAL_NUMBER),
           (BEARER_TYPE, PHYSICAL_CHANNEL_ID, CALLING_NUMBER, CALLED_NUMBER, SUB_ADDRESS)),
    # Ref: RFC2661 section 6.10
    ICRP: ((ASSIGNED_SESSION_ID,), ()),
    # Ref: RFC2661 section 6.11
    ICCN: ((TX_CONNECT_SPEED, FRAMING_TYPE),
           (INITIAL_RECEIVED_LCP_CONFREQ, LAST_SENT_LCP_CONFREQ, LAST_RECEIVED_LCP_CONFREQ,
            PROXY_AUTHEN_TYPE, PROXY_AUTHEN_NAME, PROXY_AUTHEN_CHALLENGE, PROXY_AUTHEN_ID,
            PROXY_AUTHEN_RESPONSE, PRIVATE_GROUP_ID, RX_CONNECT_SPEED, SEQUENCING_REQUIRED)),
    # Ref: RFC2661 section 6.12
    CDN: ((RESULT_CODE, ASSIGNED_SESSION_ID), (Q931_CAUSE_CODE,)),
    # Ref: RFC2661 section 6.13
    WEN: ((CALL_ERRORS,), ()),
    # Ref: RFC2661 section 6.14
    SLI: ((ACCM,), ()),
}

# MUST AVPs that real peers leave out and that we accept missing anyway
# (Cisco omits both in ICCN; xl2tpd logs and continues).
LENIENT_MISSING = ((ICCN, TX_CONNECT_SPEED), (ICCN, FRAMING_TYPE))


# ---------------------------------------------------------------- errors
class L2TPError(Exception):
    """Base of every codec error. `result`/`error` are RFC 2661 section 4.4.2 codes."""

    def __init__(self, msg, result=STOPCCN_ERROR, error=ERR_NONE):
        super().__init__(msg)
        self.msg = msg
        self.result = result
        self.error = error


class ParseError(L2TPError):
    """Malformed bytes: discard the datagram (and count it)."""


class VersionError(ParseError):
    """Ver is not 2 (1 is L2F): discard silently (section 3.1)."""

    def __init__(self, msg, version):
        super().__init__(msg, STOPCCN_BAD_VERSION, 2)
        self.version = version


class IgnoredMessage(ParseError):
    """An unknown Message Type with M=0: the message is ignored (section 3.2)."""

    def __init__(self, msg, msg_type):
        super().__init__(msg)
        self.msg_type = msg_type


class ProtocolError(L2TPError):
    """A peer violation to be answered: StopCCN (scope "tunnel") or CDN ("session")."""

    def __init__(self, msg, result, error, scope="tunnel", msg_type=None, message=None):
        super().__init__(msg, result, error)
        self.scope = scope
        self.msg_type = msg_type
        self.message = message  # the partly decoded Message, when there is one


class LocalError(L2TPError):
    """Our own caller asked for something that cannot be encoded."""


# ---------------------------------------------------------------- header
_CTRL_FLAGS = const(0xC802)  # T=1 L=1 S=1 Ver=2 (section 3.1)


class Header:
    """A decoded L2TP header (section 3.1). ns/nr are None when absent."""

    def __init__(self, control, length_bit, seq_bit, offset_bit, priority, version,
                 length, tunnel_id, session_id, ns, nr, payload_offset):
        self.control = control
        self.length_bit = length_bit
        self.seq_bit = seq_bit
        self.offset_bit = offset_bit
        self.priority = priority
        self.version = version
        self.length = length
        self.tunnel_id = tunnel_id
        self.session_id = session_id
        self.ns = ns
        self.nr = nr
        self.payload_offset = payload_offset

    def __repr__(self):
        kind = "control" if self.control else "data"
        return (f"<Header {kind} tid={self.tunnel_id} sid={self.session_id} "
                f"ns={self.ns} nr={self.nr} len={self.length}>")


def pull_header(data):
    """Decode the L2TP header at the start of `data` (a whole UDP payload)."""
    n = len(data)
    if n < 6:
        raise ParseError(f"datagram of {n} octets is shorter than an L2TP header")
    flags = (data[0] << 8) | data[1]
    version = flags & 0x000F
    if version != 2:
        # Ref: RFC2661 section 3.1 (Ver 1 is L2F; any other version is discarded)
        raise VersionError(f"version {version} is not L2TPv2", version)
    control = bool(flags & 0x8000)
    has_len = bool(flags & 0x4000)
    has_seq = bool(flags & 0x0800)
    has_off = bool(flags & 0x0200)
    prio = bool(flags & 0x0100)
    if control and not (has_len and has_seq):
        # Ref: RFC2661 section 3.1: L and S MUST be 1 for control messages
        raise ParseError("control message without the L and S bits")
    if control and has_off:
        raise ParseError("control message with the O bit set")  # section 3.1
    need = 6 + (2 if has_len else 0) + (4 if has_seq else 0) + (2 if has_off else 0)
    if n < need:
        raise ParseError(f"datagram of {n} octets is shorter than its {need}-octet header")
    pos = 2
    length = n
    if has_len:
        length = (data[2] << 8) | data[3]
        pos = 4
        if length > n:
            raise ParseError(f"Length {length} exceeds the datagram's {n} octets")
        if length < need:
            raise ParseError(f"Length {length} is shorter than the {need}-octet header")
    tid, sid = struct.unpack_from("!HH", data, pos)
    pos += 4
    ns = nr = None
    if has_seq:
        ns, nr = struct.unpack_from("!HH", data, pos)
        pos += 4
    if has_off:
        off = (data[pos] << 8) | data[pos + 1]
        pos += 2 + off  # section 3.1: Offset Size counts the padding after it
        if pos > length:
            raise ParseError(f"Offset Size {off} runs past the end of the message")
    return Header(control, has_len, has_seq, has_off, prio, version, length,
                  tid, sid, ns, nr, pos)


def push_control(tunnel_id, session_id, ns, nr, body=b""):
    """A whole control message: the 12-octet header, then `body` (b"" = ZLB)."""
    return struct.pack("!HHHHHH", _CTRL_FLAGS, 12 + len(body), tunnel_id,
                       session_id, ns & 0xFFFF, nr & 0xFFFF) + body


def push_data(tunnel_id, session_id, payload, ns=None, nr=0, length_bit=False,
              offset=None, priority=False):
    """A data message (T=0) carrying `payload` (a PPP frame), section 3.1."""
    flags = 0x0002
    hdr = bytearray()
    if length_bit:
        flags |= 0x4000
    if ns is not None:
        flags |= 0x0800
    if offset is not None:
        flags |= 0x0200
    if priority:
        flags |= 0x0100
    size = 6 + (2 if length_bit else 0) + (4 if ns is not None else 0)
    if offset is not None:
        size += 2 + offset
    hdr += struct.pack("!H", flags)
    if length_bit:
        hdr += struct.pack("!H", size + len(payload))
    hdr += struct.pack("!HH", tunnel_id, session_id)
    if ns is not None:
        hdr += struct.pack("!HH", ns & 0xFFFF, nr & 0xFFFF)
    if offset is not None:
        hdr += struct.pack("!H", offset) + bytes(offset)
    return bytes(hdr) + payload


# ---------------------------------------------------------------- hiding
def _md5(*parts):
    h = hashlib.md5()
    for p in parts:
        h.update(p)
    return h.digest()


def _as_bytes(secret):
    if isinstance(secret, str):
        return secret.encode()
    return bytes(secret)


def _hide_xor(attr, data, secret, rv, decrypt):
    """The section 4.3 MD5 stream: b1 = MD5(type|S|RV), bi = MD5(S|c(i-1))."""
    out = bytearray(len(data))
    key = _md5(struct.pack("!H", attr), secret, rv)
    for start in range(0, len(data), 16):
        chunk = data[start:start + 16]
        for i in range(len(chunk)):
            out[start + i] = chunk[i] ^ key[i]
        # The next key is chained on the cipher text, whichever way we go.
        cipher = chunk if decrypt else out[start:start + 16]
        key = _md5(secret, bytes(cipher))
    return bytes(out)


def hide_value(attr, value, secret, rv, padding=b""):
    """Hide one AVP value (section 4.3): u16 length | value | padding, encrypted."""
    sub = struct.pack("!H", len(value)) + value + padding
    return _hide_xor(attr, sub, _as_bytes(secret), rv, False)


def unhide_value(attr, hidden, secret, rv):
    """Reverse `hide_value`; raises ProtocolError when the length does not fit
    (which is how a wrong secret shows itself)."""
    if len(hidden) < 2:
        raise ProtocolError(f"hidden {avp_name(attr)} AVP of {len(hidden)} octets is too short",
                            STOPCCN_ERROR, ERR_BAD_LENGTH)
    plain = _hide_xor(attr, hidden, _as_bytes(secret), rv, True)
    orig = (plain[0] << 8) | plain[1]
    if orig > len(plain) - 2:
        raise ProtocolError(
            f"hidden {avp_name(attr)} AVP: decrypted length {orig} exceeds the "
            f"{len(plain) - 2} octets present (wrong secret?)", STOPCCN_ERROR, ERR_VENDOR)
    return plain[2:2 + orig]


def challenge_response(msg_type, secret, challenge):
    """MD5(ID | secret | challenge), ID = the Message Type carrying the response
    (2 in SCCRP, 3 in SCCCN): sections 4.4.3 and 5.1.1 (the CHAP form of RFC 1994)."""
    return _md5(bytes((msg_type,)), _as_bytes(secret), bytes(challenge))


# ---------------------------------------------------------------- values
def avp_name(attr):
    """A readable name for an AVP key: an IETF type or a (vendor, type) pair."""
    if isinstance(attr, tuple):
        return f"vendor {attr[0]} AVP {attr[1]}"
    info = AVP_INFO.get(attr)
    return info[0] if info else f"AVP {attr}"


def _text(raw):
    try:
        return raw.decode("utf-8")
    except Exception:  # UnicodeError on CPython; MicroPython may raise others
        return "".join([chr(b) for b in raw])


def _unswap(v):
    # Apple sends Result/Error Code little-endian: 1 arrives as 0x0100.
    if v > 0xFF and not v & 0xFF:
        return v >> 8
    return v


def _pull_value(kind, raw):
    """Decode one AVP value; lengths were checked against AVP_INFO already."""
    n = len(raw)
    if kind == _U16:
        return (raw[0] << 8) | raw[1]
    if kind == _U32:
        return struct.unpack_from("!I", raw, 0)[0]
    if kind == _STR:
        return _text(raw)
    if kind == _BYTES:
        return bytes(raw)
    if kind == _EMPTY:
        return True
    if kind == _RESULT:
        # Ref: RFC2661 section 4.4.2: Error Code and Error Message are optional
        result = _unswap((raw[0] << 8) | raw[1])
        if n == 2:
            return (result, None, None)
        if n == 3:
            raise ValueError("a Result Code of 3 octets has half an Error Code")
        error = _unswap((raw[2] << 8) | raw[3])
        return (result, error, _text(raw[4:]) if n > 4 else None)
    if kind == _VERSION:
        return (raw[0], raw[1])
    if kind == _Q931:
        cause = (raw[0] << 8) | raw[1]
        return (cause, raw[2], _text(raw[3:]) if n > 3 else None)
    if kind == _ERRORS:
        return struct.unpack_from("!IIIIII", raw, 2)
    if kind == _ACCM:
        return struct.unpack_from("!II", raw, 2)
    if kind == _ID8:
        return raw[1]
    raise ValueError("unknown kind")  # an AVP_INFO bug, not peer input


def _check_int(name, v, bits):
    if not isinstance(v, int) or isinstance(v, bool) or v < 0 or v >> bits:
        raise LocalError(f"{name}: {v!r} is not an unsigned {bits}-bit integer")
    return v


def _push_value(attr, kind, v):
    name = avp_name(attr)
    try:
        if kind == _U16:
            return struct.pack("!H", _check_int(name, v, 16))
        if kind == _U32:
            return struct.pack("!I", _check_int(name, v, 32))
        if kind == _STR:
            return v.encode("utf-8") if isinstance(v, str) else bytes(v)
        if kind == _BYTES:
            return bytes(v)
        if kind == _EMPTY:
            return b""
        if kind == _RESULT:
            result, error, text = (tuple(v) + (None, None))[:3]
            out = struct.pack("!H", _check_int(name, result, 16))
            if error is not None or text is not None:
                out += struct.pack("!H", _check_int(name, error or 0, 16))
            if text:
                out += text.encode("utf-8") if isinstance(text, str) else bytes(text)
            return out
        if kind == _VERSION:
            return bytes((_check_int(name, v[0], 8), _check_int(name, v[1], 8)))
        if kind == _Q931:
            cause, mtype, advisory = (tuple(v) + (None,))[:3]
            out = struct.pack("!HB", _check_int(name, cause, 16), _check_int(name, mtype, 8))
            if advisory:
                out += advisory.encode("utf-8") if isinstance(advisory, str) else bytes(advisory)
            return out
        if kind == _ERRORS:
            if len(v) != 6:
                raise LocalError(f"{name}: needs 6 counters, got {len(v)}")
            return b"\0\0" + struct.pack("!IIIIII", *[_check_int(name, c, 32) for c in v])
        if kind == _ACCM:
            return b"\0\0" + struct.pack("!II", _check_int(name, v[0], 32),
                                         _check_int(name, v[1], 32))
        if kind == _ID8:
            return bytes((0, _check_int(name, v, 8)))
    except LocalError:
        raise
    except Exception as e:  # wrong shape of value: tell the caller which AVP
        raise LocalError(f"{name}: cannot encode {v!r}: {e}")
    raise LocalError(f"{name}: unknown value kind {kind}")


# ---------------------------------------------------------------- messages
class Message:
    """A decoded control message.

    type    - Message Type (ZLB for an empty body)
    avps    - {attr: value} for every IETF AVP we know (last one wins if repeated)
    raw     - {(vendor, attr): (mbit, bytes)} for vendor AVPs and unknown IETF AVPs
    ignored - how many AVPs were ignored (unknown or malformed with M=0, reserved bits)
    hidden  - the attrs that arrived hidden
    """

    def __init__(self, msg_type):
        self.type = msg_type
        self.avps = {}
        self.raw = {}
        self.ignored = 0
        self.hidden = []

    def get(self, attr, default=None):
        return self.avps.get(attr, default)

    def __contains__(self, attr):
        return attr in self.avps

    @property
    def name(self):
        return MSG_NAMES.get(self.type, f"message type {self.type}")

    def __repr__(self):
        parts = [f"{avp_name(a)}={self.avps[a]!r}" for a in sorted(self.avps)]
        return f"<{self.name} {' '.join(parts)}>"


def message_scope(msg_type):
    """"tunnel" when an error in this message clears the tunnel, else "session"."""
    return "tunnel" if msg_type in TUNNEL_MESSAGES or msg_type not in MSG_SPEC else "session"


def peek_message_type(body):
    """The Message Type of an encoded body without decoding it; None for a ZLB
    or a body too short to tell (the Message Type AVP is never hidden)."""
    if len(body) < 8:
        return None
    return (body[6] << 8) | body[7]


def decode_message(body, secret=None, permissive=False):
    """Decode the AVPs of one control message (the octets after the header).

    `secret` unhides hidden AVPs; `permissive` keeps unknown M=1 AVPs (raw)
    instead of raising, for peers that set M on their vendor AVPs.
    """
    body = bytes(body)
    n = len(body)
    if n == 0:
        return Message(ZLB)
    if n < 8:
        raise ParseError(f"control message body of {n} octets has no Message Type AVP")
    flags, vendor, attr, mtype = struct.unpack_from("!HHHH", body, 0)
    # Ref: RFC2661 section 4.4.1: Message Type is the first AVP, 8 octets, never hidden
    if vendor != 0 or attr != MESSAGE_TYPE or (flags & 0x3FF) != 8 or flags & 0x4000:
        raise ParseError("the first AVP is not a plain 8-octet Message Type AVP")
    if mtype not in MSG_SPEC:
        if flags & 0x8000:
            # Ref: RFC2661 section 3.2: unknown type with M=1 clears the tunnel
            raise ProtocolError(f"unknown mandatory message type {mtype}",
                                STOPCCN_ERROR, ERR_BAD_VALUE, "tunnel", mtype)
        raise IgnoredMessage(f"unknown message type {mtype} (M=0): ignored", mtype)
    msg = Message(mtype)
    scope = message_scope(mtype)
    rv = None
    pos = 8
    sec = _as_bytes(secret) if secret is not None else None
    while pos < n:
        if n - pos < 6:
            raise ParseError(f"{msg.name}: {n - pos} stray octets after the last AVP")
        flags, vendor, attr = struct.unpack_from("!HHH", body, pos)
        length = flags & 0x3FF
        if length < 6 or pos + length > n:
            raise ParseError(f"{msg.name}: AVP {vendor}:{attr} length {length} does not fit "
                             f"the {n - pos} octets left")
        m = bool(flags & 0x8000)
        value = body[pos + 6:pos + length]
        pos += length
        key = attr if vendor == 0 else (vendor, attr)
        info = AVP_INFO.get(attr) if vendor == 0 else None
        # Ref: RFC2661 section 4.1: reserved bits set -> treat as unrecognized
        if info is None or flags & 0x3C00:
            if m and not permissive:
                raise ProtocolError(
                    f"{msg.name}: unknown mandatory {avp_name(key)}", STOPCCN_ERROR,
                    ERR_UNKNOWN_MANDATORY, scope, mtype, msg)
            msg.raw[(vendor, attr)] = (m, value)
            msg.ignored += 1
            continue
        if flags & 0x4000:
            # Ref: RFC2661 section 4.3: hidden with the last preceding Random Vector
            try:
                if sec is None:
                    raise ProtocolError(f"{msg.name}: hidden {info[0]} AVP but no secret is "
                                        "configured", STOPCCN_ERROR, ERR_VENDOR)
                if rv is None:
                    raise ProtocolError(f"{msg.name}: hidden {info[0]} AVP without a "
                                        "preceding Random Vector", STOPCCN_ERROR, ERR_BAD_VALUE)
                value = unhide_value(attr, value, sec, rv)
            except ProtocolError as e:
                if m:
                    raise ProtocolError(e.msg, e.result, e.error, scope, mtype, msg)
                msg.ignored += 1
                continue
            msg.hidden.append(attr)
        name, _, kind, lo, hi, _ = info
        vlen = len(value)
        if attr == CHALLENGE_RESPONSE and vlen > 16:
            value = value[:16]  # Cisco appends 6 octets; the first 16 are the MD5
            vlen = 16
        try:
            if vlen < lo or vlen > hi:
                raise ValueError(f"length {vlen} is outside {lo}..{hi}")
            msg.avps[attr] = _pull_value(kind, value)
        except Exception as e:
            if m:
                raise ProtocolError(f"{msg.name}: malformed {name} AVP: {e}", STOPCCN_ERROR,
                                    ERR_BAD_LENGTH, scope, mtype, msg)
            msg.ignored += 1
            continue
        if attr == RANDOM_VECTOR:
            rv = value
    must = MSG_SPEC[mtype][0]
    for attr in must:
        if attr not in msg.avps and (mtype, attr) not in LENIENT_MISSING:
            # Section 6 lists it as MUST; the RFC names no error code for this, so
            # "bad value" with a message naming the attribute.
            raise ProtocolError(f"{msg.name}: missing mandatory {avp_name(attr)} AVP",
                                STOPCCN_ERROR, ERR_BAD_VALUE, scope, mtype, msg)
    return msg


def _push_avp(out, mbit, hidden, vendor, attr, value):
    length = 6 + len(value)
    if length > 1023:
        raise LocalError(f"{avp_name(attr)}: value of {len(value)} octets is too long for an AVP")
    out += struct.pack("!HHH", (0x8000 if mbit else 0) | (0x4000 if hidden else 0) | length,
                       vendor, attr)
    out += value


def encode_message(msg_type, avps, secret=None, hide=False, rng=None, hide_sccrq=False):
    """Encode a control message body: the Message Type AVP, then `avps` in order.

    avps   - a sequence of (attr, value); a vendor or raw AVP is
             ((vendor, attr), (mbit, bytes)).
    hide   - hide every AVP that section 4.3 allows to be hidden, using `secret`
             and `rng(n) -> n random octets` for the Random Vector and padding.
    hide_sccrq - also hide in SCCRQ (off by default: Cisco cannot parse it, and
             xl2tpd unhides an SCCRQ before it knows the secret).
    A hidden value carries a 2-octet length, so it may be at most 1015 octets
    (1017 plain); random padding is only added below 990 octets.
    """
    if msg_type not in MSG_SPEC:
        raise LocalError(f"unknown message type {msg_type}")
    out = bytearray()
    _push_avp(out, 1, 0, 0, MESSAGE_TYPE, struct.pack("!H", msg_type))
    hiding = hide and (msg_type != SCCRQ or hide_sccrq)
    if hiding and (secret is None or rng is None):
        raise LocalError("hiding AVPs needs a secret and a random source")
    sec = _as_bytes(secret) if hiding else None
    rv = None
    for attr, value in avps:
        if isinstance(attr, tuple):
            mbit, raw = value
            _push_avp(out, mbit, 0, attr[0], attr[1], bytes(raw))
            continue
        info = AVP_INFO.get(attr)
        if info is None:
            raise LocalError(f"unknown AVP type {attr}")
        name, mbit, kind, lo, hi, may_hide = info
        raw = _push_value(attr, kind, value)
        if not lo <= len(raw) <= hi:
            raise LocalError(f"{name}: value length {len(raw)} is outside {lo}..{hi}")
        if attr == RANDOM_VECTOR:
            rv = raw
        hidden = hiding and may_hide
        if hidden:
            if rv is None:
                # Ref: RFC2661 section 4.3: a Random Vector precedes the first hidden AVP
                rv = bytes(rng(16))
                _push_avp(out, 1, 0, 0, RANDOM_VECTOR, rv)
            # Random padding of 0-15 octets so the length does not give the value away.
            pad = bytes(rng(rng(1)[0] & 15)) if len(raw) < 990 else b""
            raw = hide_value(attr, raw, sec, rv, pad)
        _push_avp(out, mbit, hidden, 0, attr, raw)
    return bytes(out)
