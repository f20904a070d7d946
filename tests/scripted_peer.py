"""A scripted L2TP peer (RFC 2661) that talks to a real l2tpd over UDP on loopback.

Theory of this module
---------------------
The daemon's own tests pair it with a copy of itself, so a fault shared by both
ends (a wrong MD5 input, a mis-hidden AVP, a wrong header bit) cancels out. This
peer is written straight from the RFC text with `struct`, `hashlib` and `socket`
and imports nothing from the project (not avp.py, ctrlchan.py, fsm.py, nor any
other module), so what it builds and checks is an independent reading of:

* section 3.1  the header: T, L, S, O, P bits, Ver, Length, Tunnel ID, Session
               ID, Ns, Nr (control messages: T=1, L=1, S=1, O=0, P=0, Ver=2);
* section 3.2  the message types;
* section 4.1  the AVP format: M and H bits, 4 reserved bits, a 10-bit Length,
               Vendor ID (0 = IETF) and Attribute Type;
* section 4.3  hiding: the subformat (2-octet original length, value, padding)
               XORed with MD5(type | secret | Random Vector), then chained
               MD5(secret | previous cipher block) per 16 octets;
* section 4.4  every RFC 2661 AVP and its value layout;
* 4.4.3/5.1.1  the Challenge Response: MD5(one octet Message Type of the
               message carrying it (2 SCCRP, 3 SCCCN) | secret | challenge);
* section 5.8  Ns/Nr: Ns starts at 0, a ZLB takes no Ns, Nr is the next Ns
               expected; duplicates are acknowledged, not delivered;
* section 8.1  L2TP over UDP, and L2F (Ver=1) datagrams for the drop tests.

The peer keeps the sequence state of one control connection at a time (the
last one it opened or answered). It acknowledges every in-order message and
every duplicate at once with a ZLB (as xl2tpd does), unless `auto_ack` is
turned off. Every wait is bounded by a socket timeout; nothing sleeps blindly.

What it deliberately does not do: retransmit (loopback does not lose
datagrams; tests resend on purpose with `resend`), windows beyond in-order
delivery, data-path PPP.
"""

import hashlib
import os
import selectors
import socket
import struct
import time

# ------------------------------------------------------------------ section 3.2
SCCRQ, SCCRP, SCCCN, STOPCCN, HELLO = 1, 2, 3, 4, 6
OCRQ, OCRP, OCCN, ICRQ, ICRP, ICCN, CDN, WEN, SLI = 7, 8, 9, 10, 11, 12, 14, 15, 16
MSG_NAMES = {1: "SCCRQ", 2: "SCCRP", 3: "SCCCN", 4: "StopCCN", 6: "HELLO", 7: "OCRQ",
             8: "OCRP", 9: "OCCN", 10: "ICRQ", 11: "ICRP", 12: "ICCN", 14: "CDN",
             15: "WEN", 16: "SLI"}

# ------------------------------------------------------------------ section 4.4
MESSAGE_TYPE = 0
RESULT_CODE = 1
PROTOCOL_VERSION = 2
FRAMING_CAPABILITIES = 3
BEARER_CAPABILITIES = 4
TIE_BREAKER = 5
FIRMWARE_REVISION = 6
HOST_NAME = 7
VENDOR_NAME = 8
ASSIGNED_TUNNEL_ID = 9
RECEIVE_WINDOW_SIZE = 10
CHALLENGE = 11
Q931_CAUSE_CODE = 12
CHALLENGE_RESPONSE = 13
ASSIGNED_SESSION_ID = 14
CALL_SERIAL_NUMBER = 15
MINIMUM_BPS = 16
MAXIMUM_BPS = 17
BEARER_TYPE = 18
FRAMING_TYPE = 19
CALLED_NUMBER = 21
CALLING_NUMBER = 22
SUB_ADDRESS = 23
TX_CONNECT_SPEED = 24
PHYSICAL_CHANNEL_ID = 25
INITIAL_RECEIVED_LCP_CONFREQ = 26
LAST_SENT_LCP_CONFREQ = 27
LAST_RECEIVED_LCP_CONFREQ = 28
PROXY_AUTHEN_TYPE = 29
PROXY_AUTHEN_NAME = 30
PROXY_AUTHEN_CHALLENGE = 31
PROXY_AUTHEN_ID = 32
PROXY_AUTHEN_RESPONSE = 33
CALL_ERRORS = 34
ACCM = 35
RANDOM_VECTOR = 36
PRIVATE_GROUP_ID = 37
RX_CONNECT_SPEED = 38
SEQUENCING_REQUIRED = 39

# attr: (name, M bit the RFC requires, value layout), from each AVP's text in 4.4.
# Layouts: u16, u32, str (text), bytes, result (4.4.2), version (Ver, Rev),
# q931 (cause u16, msg u8, advisory), errors (2 reserved + 6 x u32),
# accm (2 reserved + 2 x u32), empty (no value).
AVPS = {
    MESSAGE_TYPE: ("Message Type", 1, "u16"),
    RESULT_CODE: ("Result Code", 1, "result"),
    PROTOCOL_VERSION: ("Protocol Version", 1, "version"),
    FRAMING_CAPABILITIES: ("Framing Capabilities", 1, "u32"),
    BEARER_CAPABILITIES: ("Bearer Capabilities", 1, "u32"),
    TIE_BREAKER: ("Tie Breaker", 0, "bytes"),
    FIRMWARE_REVISION: ("Firmware Revision", 0, "u16"),
    HOST_NAME: ("Host Name", 1, "str"),
    VENDOR_NAME: ("Vendor Name", 0, "str"),
    ASSIGNED_TUNNEL_ID: ("Assigned Tunnel ID", 1, "u16"),
    RECEIVE_WINDOW_SIZE: ("Receive Window Size", 1, "u16"),
    CHALLENGE: ("Challenge", 1, "bytes"),
    Q931_CAUSE_CODE: ("Q.931 Cause Code", 1, "q931"),
    CHALLENGE_RESPONSE: ("Challenge Response", 1, "bytes"),
    ASSIGNED_SESSION_ID: ("Assigned Session ID", 1, "u16"),
    CALL_SERIAL_NUMBER: ("Call Serial Number", 1, "u32"),
    MINIMUM_BPS: ("Minimum BPS", 1, "u32"),
    MAXIMUM_BPS: ("Maximum BPS", 1, "u32"),
    BEARER_TYPE: ("Bearer Type", 1, "u32"),
    FRAMING_TYPE: ("Framing Type", 1, "u32"),
    CALLED_NUMBER: ("Called Number", 1, "str"),
    CALLING_NUMBER: ("Calling Number", 1, "str"),
    SUB_ADDRESS: ("Sub-Address", 1, "str"),
    TX_CONNECT_SPEED: ("(Tx) Connect Speed", 1, "u32"),
    PHYSICAL_CHANNEL_ID: ("Physical Channel ID", 0, "u32"),
    INITIAL_RECEIVED_LCP_CONFREQ: ("Initial Received LCP CONFREQ", 0, "bytes"),
    LAST_SENT_LCP_CONFREQ: ("Last Sent LCP CONFREQ", 0, "bytes"),
    LAST_RECEIVED_LCP_CONFREQ: ("Last Received LCP CONFREQ", 0, "bytes"),
    PROXY_AUTHEN_TYPE: ("Proxy Authen Type", 0, "u16"),
    PROXY_AUTHEN_NAME: ("Proxy Authen Name", 0, "str"),
    PROXY_AUTHEN_CHALLENGE: ("Proxy Authen Challenge", 0, "bytes"),
    # "ID is a 2 octet unsigned integer, the most significant octet MUST be 0"
    PROXY_AUTHEN_ID: ("Proxy Authen ID", 0, "u16"),
    PROXY_AUTHEN_RESPONSE: ("Proxy Authen Response", 0, "bytes"),
    CALL_ERRORS: ("Call Errors", 1, "errors"),
    ACCM: ("ACCM", 1, "accm"),
    RANDOM_VECTOR: ("Random Vector", 1, "bytes"),
    PRIVATE_GROUP_ID: ("Private Group ID", 0, "bytes"),
    RX_CONNECT_SPEED: ("Rx Connect Speed", 0, "u32"),
    SEQUENCING_REQUIRED: ("Sequencing Required", 1, "empty"),
}

# Section 4.4.3 / 4.4.4 capability and type bits.
SYNC, ASYNC = 1, 2          # Framing: S bit, A bit
DIGITAL, ANALOG = 1, 2      # Bearer: D bit, A bit

# Section 4.4.5 Proxy Authen Type values.
PROXY_TEXT, PROXY_CHAP, PROXY_PAP, PROXY_NONE, PROXY_MSCHAPV1 = 1, 2, 3, 4, 5

# Section 3.1: T=1, L=1, S=1, Ver=2 (0xC802).
_T, _L, _S, _O, _P = 0x8000, 0x4000, 0x0800, 0x0200, 0x0100
CONTROL_FLAGS = _T | _L | _S | 2


# ------------------------------------------------------------------ crypto
def md5(*parts):
    h = hashlib.md5()
    for p in parts:
        h.update(p)
    return h.digest()


def challenge_response(msg_type, secret, challenge):
    """RFC 2661 4.4.3 (Challenge Response) and 5.1.1: the CHAP form of RFC 1994,
    MD5(ID | secret | challenge), where ID is the one-octet value of the Message
    Type of the message carrying the response: 2 in SCCRP, 3 in SCCCN."""
    return md5(bytes([msg_type]), _b(secret), bytes(challenge))


def _xor_stream(attr, data, secret, rv, decrypt):
    """RFC 2661 4.3: b1 = MD5(attribute type (2 octets) | S | RV), c1 = p1 xor b1;
    bi = MD5(S | c(i-1)), ci = pi xor bi, over 16-octet chunks; the last chunk may
    be short and only the octets present are XORed."""
    out = bytearray()
    key = md5(struct.pack("!H", attr), secret, rv)
    for i in range(0, len(data), 16):
        chunk = data[i:i + 16]
        res = bytes(a ^ b for a, b in zip(chunk, key))
        out += res
        cipher = chunk if decrypt else res
        key = md5(secret, cipher)
    return bytes(out)


def hide(attr, value, secret, rv, padding=b""):
    """RFC 2661 4.3: the Hidden AVP Subformat (2-octet length of the original
    value, the value, padding) encrypted for attribute `attr`."""
    sub = struct.pack("!H", len(value)) + bytes(value) + bytes(padding)
    return _xor_stream(attr, sub, _b(secret), bytes(rv), False)


def unhide(attr, hidden, secret, rv):
    """RFC 2661 4.3 reversed; ValueError when the original length does not fit
    what was decrypted (the sign of a wrong secret)."""
    plain = _xor_stream(attr, bytes(hidden), _b(secret), bytes(rv), True)
    if len(plain) < 2:
        raise ValueError(f"hidden AVP {attr}: {len(plain)} octets, no length field")
    n = struct.unpack("!H", plain[:2])[0]
    if n > len(plain) - 2:
        raise ValueError(f"hidden AVP {attr}: original length {n} > {len(plain) - 2}")
    return plain[2:2 + n]


def _b(s):
    if s is None:
        return None
    return s.encode() if isinstance(s, str) else bytes(s)


# ------------------------------------------------------------------ values (4.4)
def encode_value(attr, value):
    """The octets of an AVP value from a Python value, by the layout in AVPS;
    bytes pass through untouched (raw values, unknown AVPs)."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    kind = AVPS[attr][2] if attr in AVPS else "bytes"
    if kind == "u16":
        return struct.pack("!H", value)
    if kind == "u32":
        return struct.pack("!I", value)
    if kind == "str":
        return value.encode("utf-8")
    if kind == "empty":
        return b""
    if kind == "version":
        return bytes(value)
    if kind == "result":
        # 4.4.2: Result Code, then optional Error Code, then optional message
        result, error, text = (tuple(value) + (None, None))[:3]
        out = struct.pack("!H", result)
        if error is not None or text:
            out += struct.pack("!H", error or 0)
        if text:
            out += text.encode("utf-8")
        return out
    if kind == "q931":
        cause, mtype, adv = (tuple(value) + (None,))[:3]
        return struct.pack("!HB", cause, mtype) + (adv.encode() if adv else b"")
    if kind == "errors":
        return b"\0\0" + struct.pack("!6I", *value)
    if kind == "accm":
        return b"\0\0" + struct.pack("!II", *value)
    raise ValueError(f"cannot encode {value!r} for AVP {attr}")


def decode_value(attr, raw):
    """A Python value from the octets of a vendor-0 AVP value, by the layout in
    AVPS; raw bytes for unknown attributes or values of the wrong size."""
    kind = AVPS[attr][2] if attr in AVPS else "bytes"
    n = len(raw)
    if kind == "u16" and n == 2:
        return struct.unpack("!H", raw)[0]
    if kind == "u32" and n == 4:
        return struct.unpack("!I", raw)[0]
    if kind == "str":
        return raw.decode("utf-8", "replace")
    if kind == "empty" and n == 0:
        return True
    if kind == "version" and n == 2:
        return (raw[0], raw[1])
    if kind == "result" and n >= 2:
        result = struct.unpack("!H", raw[:2])[0]
        error = struct.unpack("!H", raw[2:4])[0] if n >= 4 else None
        text = raw[4:].decode("utf-8", "replace") if n > 4 else None
        return (result, error, text)
    if kind == "q931" and n >= 3:
        return (struct.unpack("!H", raw[:2])[0], raw[2],
                raw[3:].decode("utf-8", "replace") if n > 3 else None)
    if kind == "errors" and n == 26:
        return struct.unpack("!6I", raw[2:])
    if kind == "accm" and n == 10:
        return struct.unpack("!II", raw[2:])
    return bytes(raw)


# ------------------------------------------------------------------ building
class Avp:
    """One AVP to send (4.1). `value` is a Python value or raw bytes; `m` defaults
    to the RFC's M bit for known attributes (else 0); `hidden` hides it with the
    message's secret (4.3); `length` overrides the Length field (bad lengths);
    `reserved` sets the 4 reserved bits; `vendor` other than 0 makes it a
    vendor AVP."""

    def __init__(self, attr, value=b"", m=None, hidden=False, vendor=0, length=None,
                 reserved=0, padding=b""):
        self.attr = attr
        self.value = value
        self.m = (AVPS[attr][1] if attr in AVPS and vendor == 0 else 0) if m is None else m
        self.hidden = hidden
        self.vendor = vendor
        self.length = length
        self.reserved = reserved
        self.padding = padding

    def __repr__(self):
        return f"Avp({self.vendor}:{self.attr}={self.value!r}, m={self.m}, h={self.hidden})"


def _avp_octets(m, h, reserved, vendor, attr, value, length=None):
    """RFC 2661 4.1: |M|H|rsvd(4)|Length(10)|Vendor ID|Attribute Type|value."""
    n = 6 + len(value) if length is None else length
    flags = (0x8000 if m else 0) | (0x4000 if h else 0) | ((reserved & 0xF) << 10) | (n & 0x3FF)
    return struct.pack("!HHH", flags, vendor, attr) + value


def build_body(msg_type, avps=(), secret=None, mtype_m=1):
    """A control message body (section 3.2, 4.1): the Message Type AVP first (M=1
    for every RFC message type), then `avps` in order. Each item is an `Avp` or an
    (attr, value) pair. A Random Vector AVP (16 random octets) is put before the
    first hidden AVP unless one was given earlier (4.3)."""
    out = _avp_octets(mtype_m, 0, 0, 0, MESSAGE_TYPE, struct.pack("!H", msg_type))
    rv = None
    for a in avps:
        if not isinstance(a, Avp):
            a = Avp(*a)
        raw = encode_value(a.attr, a.value) if a.vendor == 0 else bytes(a.value)
        if a.vendor == 0 and a.attr == RANDOM_VECTOR:
            rv = raw
        if a.hidden:
            if secret is None:
                raise ValueError("hiding an AVP needs a secret")
            if rv is None:
                rv = os.urandom(16)
                out += _avp_octets(1, 0, 0, 0, RANDOM_VECTOR, rv)
            raw = hide(a.attr, raw, secret, rv, a.padding)
        out += _avp_octets(a.m, a.hidden, a.reserved, a.vendor, a.attr, raw, a.length)
    return out


def control_header(tunnel_id, session_id, ns, nr, body_len, flags=CONTROL_FLAGS):
    """Section 3.1 control header: flags, Length (whole message), Tunnel ID,
    Session ID (both the recipient's), Ns, Nr."""
    return struct.pack("!HHHHHH", flags, 12 + body_len, tunnel_id, session_id,
                       ns & 0xFFFF, nr & 0xFFFF)


def control_message(tunnel_id, session_id, ns, nr, body=b""):
    """A whole control message; an empty body is a ZLB (section 5.8)."""
    return control_header(tunnel_id, session_id, ns, nr, len(body)) + body


def data_message(tunnel_id, session_id, payload, ns=None, nr=0, length_bit=False,
                 version=2):
    """Section 3.1 data message (T=0), optionally with L and S fields."""
    flags = (version & 0xF) | (_L if length_bit else 0) | (_S if ns is not None else 0)
    hdr = struct.pack("!H", flags)
    size = 6 + (2 if length_bit else 0) + (4 if ns is not None else 0)
    if length_bit:
        hdr += struct.pack("!H", size + len(payload))
    hdr += struct.pack("!HH", tunnel_id, session_id)
    if ns is not None:
        hdr += struct.pack("!HH", ns, nr)
    return hdr + payload


def l2f_packet():
    """An L2F (RFC 2341) packet: the first 16 bits carry Ver=1 in the low bits,
    which is what section 3.1 / 8.1 tell an L2TP receiver to discard silently."""
    # F K P S 0 0 0 0 0 0 0 0 C Ver=1 | Protocol=1 (L2F_ILLEGAL..) | Seq | MID | CLID | Len
    return struct.pack("!HBBHHH", 0x0001, 0x02, 0, 0, 0x1234, 16) + b"\x01\x00\x00\x00"


# ------------------------------------------------------------------ parsing
class ParsedAvp:
    """One received AVP: vendor, attr, m, h (hidden on the wire), reserved bits,
    plain (the value octets, unhidden), value (decoded for known vendor-0 AVPs)."""

    def __init__(self, vendor, attr, m, h, reserved, plain, wire):
        self.vendor = vendor
        self.attr = attr
        self.m = m
        self.h = h
        self.reserved = reserved
        self.plain = plain
        self.wire = wire
        self.value = decode_value(attr, plain) if vendor == 0 else plain

    @property
    def name(self):
        if self.vendor == 0 and self.attr in AVPS:
            return AVPS[self.attr][0]
        return f"AVP {self.vendor}:{self.attr}"

    def __repr__(self):
        return f"{self.name}{'(H)' if self.h else ''}={self.value!r}"


class Packet:
    """A received datagram: header fields (section 3.1) and, for a control message,
    its Message Type and AVPs (4.1), hidden ones unhidden with the secret (4.3).
    `seq` is how the peer filed it: "new" (in order), "dup", "ahead", "sccrq"
    (SCCRQs are outside any connection's numbering), "zlb", "data" or None."""

    def __init__(self, data, src=None):
        self.data = bytes(data)
        self.src = src
        self.sock = None
        self.seq = None
        self.time = time.monotonic()
        self.mtype = None
        self.mtype_m = None
        self.avps = []
        self.ver = self.length = self.tunnel_id = self.session_id = None
        self.ns = self.nr = None
        self.control = False
        self.body = b""

    # header flags
    @property
    def zlb(self):
        return self.control and not self.body

    @property
    def name(self):
        if not self.control:
            return "data" if self.ver == 2 else f"ver{self.ver}"
        if self.zlb:
            return "ZLB"
        return MSG_NAMES.get(self.mtype, f"type{self.mtype}")

    def find(self, attr, vendor=0):
        for a in self.avps:
            if a.vendor == vendor and a.attr == attr:
                return a
        return None

    def get(self, attr, default=None):
        a = self.find(attr)
        return default if a is None else a.value

    def has(self, attr):
        return self.find(attr) is not None

    def hidden(self, attr):
        a = self.find(attr)
        return a is not None and a.h

    @property
    def result(self):
        """Result Code AVP as (result, error, message), or None."""
        return self.get(RESULT_CODE)

    def __repr__(self):
        if not self.control:
            return f"<{self.name} tid={self.tunnel_id} sid={self.session_id}>"
        avps = " ".join(repr(a) for a in self.avps[1:])
        return (f"<{self.name} tid={self.tunnel_id} sid={self.session_id} ns={self.ns} "
                f"nr={self.nr} {avps}>")


def parse(data, secret=None, src=None):
    """Parse one UDP payload. Raises ValueError when it breaks section 3.1 or 4.1
    (the daemon must never send such a thing)."""
    p = Packet(data, src)
    if len(data) < 6:
        raise ValueError(f"{len(data)} octets: shorter than any L2TP header")
    flags = struct.unpack("!H", data[:2])[0]
    p.ver = flags & 0xF
    p.control = bool(flags & _T)
    if p.ver != 2:
        return p
    pos = 2
    if flags & _L:
        p.length = struct.unpack("!H", data[2:4])[0]
        pos = 4
    p.tunnel_id, p.session_id = struct.unpack("!HH", data[pos:pos + 4])
    pos += 4
    if flags & _S:
        p.ns, p.nr = struct.unpack("!HH", data[pos:pos + 4])
        pos += 4
    if flags & _O:
        off = struct.unpack("!H", data[pos:pos + 2])[0]
        pos += 2 + off
    if not p.control:
        p.body = data[pos:p.length] if p.length else data[pos:]
        return p
    # Section 3.1: L and S MUST be 1, O and P MUST be 0 on control messages.
    if flags & (_L | _S) != (_L | _S) or flags & (_O | _P):
        raise ValueError(f"control message with header flags {flags:#06x}")
    if p.length != len(data):
        raise ValueError(f"Length {p.length} but the datagram has {len(data)} octets")
    p.body = data[12:p.length]
    body = p.body
    rv = None
    i = 0
    while i < len(body):
        if len(body) - i < 6:
            raise ValueError(f"{len(body) - i} stray octets after the last AVP")
        fl, vendor, attr = struct.unpack("!HHH", body[i:i + 6])
        n = fl & 0x3FF
        if n < 6 or i + n > len(body):
            raise ValueError(f"AVP {vendor}:{attr} has Length {n}")
        wire = body[i + 6:i + n]
        m, h, res = bool(fl & 0x8000), bool(fl & 0x4000), (fl >> 10) & 0xF
        plain = wire
        if h:
            if secret is None or rv is None:
                raise ValueError(f"hidden AVP {attr} without secret or Random Vector")
            plain = unhide(attr, wire, _b(secret), rv)
        if vendor == 0 and attr == RANDOM_VECTOR:
            rv = wire
        p.avps.append(ParsedAvp(vendor, attr, m, h, res, plain, wire))
        i += n
    if body:
        first = p.avps[0]
        if first.vendor != 0 or first.attr != MESSAGE_TYPE or first.h or len(first.plain) != 2:
            raise ValueError("the first AVP is not the Message Type AVP (4.4.1)")
        p.mtype = first.value
        p.mtype_m = first.m
    return p


def _seq_before(a, b):
    """Section 5.8: `a` lies in the 32768 values before `b` (a duplicate of ours)."""
    return 0 < ((b - a) & 0xFFFF) <= 0x8000


# ------------------------------------------------------------------ the peer
class ScriptedPeer:
    """One end of L2TP control connections, scripted by a test.

    addr: the loopback address to bind (port 0: any free port, or `port`);
    daemon: (address, port) of the daemon; secret: the shared secret for
    challenges and hidden AVPs (sections 4.3, 5.1.1)."""

    def __init__(self, addr, daemon, secret=None, host_name="scripted-peer", port=0,
                 timeout=3.0):
        self.secret = _b(secret)
        self.host_name = host_name
        self.daemon = tuple(daemon)
        self.timeout = timeout
        self.sock = self.new_socket(addr, port, first=True)
        self.addr = self.sock.getsockname()
        self.socks = [self.sock]
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.sock, selectors.EVENT_READ)
        self.auto_ack = True
        self.tid = None          # our Assigned Tunnel ID for the current connection
        self.peer_tid = 0        # the daemon's: the Tunnel ID we put in headers
        self.ns = 0              # next Ns we send (5.8)
        self.nr = 0              # next Ns we expect from the daemon
        self.acked = 0           # the highest Nr the daemon sent us
        self.challenge = None    # the Challenge we sent last
        self.sent = []           # datagrams we sent, in order
        self.received = []       # every Packet received on the main socket
        self.inbox = []          # in-order messages not yet taken by expect()
        self.sccrqs = []         # SCCRQs received and not yet taken by expect()
        self.serial = 0

    # ------------------------------------------------------------- sockets
    def new_socket(self, addr=None, port=0, first=False):
        """A UDP socket bound to `addr` (default: the peer's) on `port` (0: any):
        for sending from another port or address (section 8.1 tests)."""
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((addr if addr is not None else self.addr[0], port))
        s.settimeout(self.timeout)
        if not first:
            self.socks.append(s)
        return s

    def close(self):
        try:
            self.sel.close()
        except Exception:
            pass
        for s in self.socks:
            s.close()

    def send_raw(self, data, sock=None, to=None):
        """Any octets, from `sock` (default the main socket) to the daemon."""
        (sock or self.sock).sendto(bytes(data), to or self.daemon)
        return bytes(data)

    def resend(self, data, sock=None):
        """Send an earlier datagram again, octet for octet (a retransmission)."""
        return self.send_raw(data, sock)

    def recv_on(self, sock, timeout):
        """Every datagram arriving on `sock` within `timeout` s, parsed (no state)."""
        out = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return out
            sock.settimeout(left)
            try:
                data, src = sock.recvfrom(65535)
            except (socket.timeout, BlockingIOError):
                return out
            p = parse(data, self.secret, src)
            p.sock = sock
            out.append(p)

    # ------------------------------------------------------------- sending
    def send(self, msg_type, avps=(), session_id=0, tunnel_id=None, sock=None,
             advance=True, ns=None, nr=None, mtype_m=1):
        """One control message of the current connection (section 3.1, 5.8): header
        Tunnel ID = the daemon's id (0 before we know it), Ns = ours, Nr = the next
        we expect. `advance=False` leaves our Ns where it was (a stray copy)."""
        body = build_body(msg_type, avps, self.secret, mtype_m)
        data = control_message(self.peer_tid if tunnel_id is None else tunnel_id, session_id,
                               self.ns if ns is None else ns, self.nr if nr is None else nr,
                               body)
        if advance and ns is None:
            self.ns = (self.ns + 1) & 0xFFFF
        self.sent.append(data)
        return self.send_raw(data, sock)

    def zlb(self, sock=None, tunnel_id=None):
        """Explicit acknowledgement (5.8): no body, Ns = our next unsent, Nr."""
        data = control_message(self.peer_tid if tunnel_id is None else tunnel_id, 0,
                               self.ns, self.nr)
        return self.send_raw(data, sock)

    def _new_id(self):
        while True:
            v = struct.unpack("!H", os.urandom(2))[0]
            if v:
                return v

    def _setup_avps(self, framing_caps, bearer_caps, rws, tid, hide_setup):
        """The AVPs an SCCRQ and SCCRP share (6.1, 6.2) after Protocol Version."""
        avps = [(PROTOCOL_VERSION, (1, 0)), (HOST_NAME, self.host_name)]
        if framing_caps is not None:
            avps.append(Avp(FRAMING_CAPABILITIES, framing_caps, hidden=hide_setup))
        if tid is not None:
            avps.append(Avp(ASSIGNED_TUNNEL_ID, tid, hidden=hide_setup))
        if bearer_caps is not None:
            avps.append(Avp(BEARER_CAPABILITIES, bearer_caps, hidden=hide_setup))
        avps += [Avp(FIRMWARE_REVISION, 0x0100, hidden=hide_setup),
                 Avp(VENDOR_NAME, "scripted", hidden=hide_setup)]
        if rws is not None:
            avps.append((RECEIVE_WINDOW_SIZE, rws))
        return avps

    def sccrq(self, tid=None, challenge=None, tie_breaker=None, framing_caps=SYNC | ASYNC,
              bearer_caps=DIGITAL | ANALOG, rws=4, extra=(), hide_setup=False, sock=None):
        """Open a new control connection (6.1): an SCCRQ with Ns 0, Nr 0 and header
        Tunnel ID 0 (4.4.3 Assigned Tunnel ID: 0 until the peer's id is known).
        `bearer_caps=None` / `framing_caps=None` leave those AVPs out; `tid=0`
        sends an Assigned Tunnel ID of 0."""
        self.ns = self.nr = self.acked = 0
        self.peer_tid = 0
        self.tid = self._new_id() if tid is None else tid
        self.inbox = []
        self.challenge = challenge
        avps = self._setup_avps(framing_caps, bearer_caps, rws, self.tid, hide_setup)
        if challenge is not None:
            avps.append(Avp(CHALLENGE, challenge, hidden=hide_setup))
        if tie_breaker is not None:
            avps.append((TIE_BREAKER, tie_breaker))
        avps += list(extra)
        self.sccrq_datagram = self.send(SCCRQ, avps, tunnel_id=0, sock=sock)
        return self.sccrq_datagram

    def scccn(self, sccrp, response=None, tunnel_id=None, sock=None, extra=(), advance=True):
        """SCCCN (6.3) for `sccrp`, with the Challenge Response the RFC requires when
        the SCCRP carried a Challenge (or `response` to force one)."""
        avps = []
        if response is None and sccrp.has(CHALLENGE):
            response = challenge_response(SCCCN, self.secret, sccrp.get(CHALLENGE))
        if response is not None:
            avps.append((CHALLENGE_RESPONSE, response))
        return self.send(SCCCN, avps + list(extra), tunnel_id=tunnel_id, sock=sock,
                         advance=advance)

    def establish(self, challenge=None, timeout=None, **kw):
        """A whole control connection set-up as initiator (5.1, 7.2.1): SCCRQ,
        SCCRP (its Challenge Response checked when we challenged), SCCCN (with our
        response to its Challenge), then the daemon's ack. Returns the SCCRP."""
        self.sccrq(challenge=challenge, **kw)
        rp = self.expect(SCCRP, timeout)
        if challenge is not None:
            want = challenge_response(SCCRP, self.secret, challenge)
            got = rp.get(CHALLENGE_RESPONSE)
            if got != want:
                raise AssertionError(f"SCCRP Challenge Response {got!r}, expected {want!r}")
        self.scccn_datagram = self.scccn(rp)
        self.expect_ack(timeout)
        return rp

    def answer_sccrq(self, sccrq=None, tid=None, challenge=None, framing_caps=SYNC | ASYNC,
                     bearer_caps=DIGITAL | ANALOG, rws=4, response=None, timeout=None,
                     sock=None, wait_scccn=True, hide_setup=False):
        """Be the responder (6.2): take the daemon's SCCRQ (waiting for one unless
        given), answer with an SCCRP from `sock` (default the main socket), with
        the Challenge Response its Challenge requires, then wait for the SCCCN and
        check its response to our `challenge`. Returns (sccrq, scccn or None)."""
        if sccrq is None:
            sccrq = self.expect(SCCRQ, timeout)
        self.ns = 0
        self.nr = (sccrq.ns + 1) & 0xFFFF
        self.acked = 0
        self.peer_tid = sccrq.get(ASSIGNED_TUNNEL_ID)
        self.tid = self._new_id() if tid is None else tid
        self.inbox = []
        self.challenge = challenge
        if sock is not None and sock is not self.sock:
            # From now on the connection lives on that socket (RFC 2661 8.1).
            self.sel.unregister(self.sock)
            self.sock = sock
            self.sel.register(sock, selectors.EVENT_READ)
        avps = self._setup_avps(framing_caps, bearer_caps, rws, self.tid, hide_setup)
        if response is None and sccrq.has(CHALLENGE):
            response = challenge_response(SCCRP, self.secret, sccrq.get(CHALLENGE))
        if response is not None:
            avps.append(Avp(CHALLENGE_RESPONSE, response, hidden=hide_setup))
        if challenge is not None:
            avps.append(Avp(CHALLENGE, challenge, hidden=hide_setup))
        self.send(SCCRP, avps)
        if not wait_scccn:
            return sccrq, None
        cn = self.expect(SCCCN, timeout)
        if challenge is not None:
            want = challenge_response(SCCCN, self.secret, challenge)
            got = cn.get(CHALLENGE_RESPONSE)
            if got != want:
                raise AssertionError(f"SCCCN Challenge Response {got!r}, expected {want!r}")
        return sccrq, cn

    def hello(self, extra=()):
        """HELLO (6.5): Session ID 0, Message Type only, plus any `extra` AVPs."""
        return self.send(HELLO, list(extra))

    def stopccn(self, result=(1, 0, "scripted peer closes"), tid=None):
        """StopCCN (6.4) with the Assigned Tunnel ID we first sent (4.4.3)."""
        return self.send(STOPCCN, [(ASSIGNED_TUNNEL_ID, self.tid if tid is None else tid),
                                   (RESULT_CODE, result)])

    def icrq(self, sid=None, serial=None, bearer_type=None, extra=(), hidden=False,
             session_id=0):
        """ICRQ (6.6 of the LAC): Assigned Session ID, Call Serial Number and an
        optional Bearer Type; header Session ID 0 (the daemon's is unknown).
        Returns our session id."""
        sid = self._new_id() if sid is None else sid
        if serial is None:
            self.serial += 1
            serial = self.serial
        avps = [Avp(ASSIGNED_SESSION_ID, sid, hidden=hidden),
                Avp(CALL_SERIAL_NUMBER, serial, hidden=hidden)]
        if bearer_type is not None:
            avps.append(Avp(BEARER_TYPE, bearer_type, hidden=hidden))
        self.send(ICRQ, avps + list(extra), session_id=session_id)
        return sid

    def iccn(self, daemon_sid, framing_type=SYNC, speed=1000000, extra=()):
        """ICCN (6.11): (Tx) Connect Speed and Framing Type."""
        return self.send(ICCN, [(TX_CONNECT_SPEED, speed), (FRAMING_TYPE, framing_type)]
                         + list(extra), session_id=daemon_sid)

    def incoming_call(self, sid=None, framing_type=SYNC, hidden=False, timeout=None):
        """A whole incoming call as LAC (5.2.1): ICRQ, ICRP, ICCN, then the ack.
        Returns (our session id, the daemon's session id, the ICRP)."""
        sid = self.icrq(sid, hidden=hidden)
        rp = self.expect(ICRP, timeout)
        dsid = rp.get(ASSIGNED_SESSION_ID)
        self.iccn(dsid, framing_type)
        self.expect_ack(timeout)
        return sid, dsid, rp

    def answer_icrq(self, sid=None, timeout=None):
        """Be the LNS for the daemon's incoming call (5.2.1): ICRQ -> our ICRP ->
        its ICCN. Returns (icrq, iccn, our session id)."""
        rq = self.expect(ICRQ, timeout)
        sid = self._new_id() if sid is None else sid
        self.send(ICRP, [(ASSIGNED_SESSION_ID, sid)], session_id=rq.get(ASSIGNED_SESSION_ID))
        cn = self.expect(ICCN, timeout)
        return rq, cn, sid

    def ocrq(self, sid=None, serial=None, minimum_bps=0, maximum_bps=0xFFFFFFFF,
             bearer_type=DIGITAL, framing_type=SYNC, called_number="5551234", extra=()):
        """OCRQ (6.6) as the LNS: every MUST AVP of section 6.6. Returns our sid."""
        sid = self._new_id() if sid is None else sid
        if serial is None:
            self.serial += 1
            serial = self.serial
        self.send(OCRQ, [(ASSIGNED_SESSION_ID, sid), (CALL_SERIAL_NUMBER, serial),
                         (MINIMUM_BPS, minimum_bps), (MAXIMUM_BPS, maximum_bps),
                         (BEARER_TYPE, bearer_type), (FRAMING_TYPE, framing_type),
                         (CALLED_NUMBER, called_number)] + list(extra))
        return sid

    def answer_ocrq(self, rq=None, sid=None, framing_type=SYNC, timeout=None):
        """Be the LAC for the daemon's outgoing call (5.2.2): its OCRQ (waited for
        unless given) -> our OCRP and OCCN. Returns (ocrq, our session id)."""
        if rq is None:
            rq = self.expect(OCRQ, timeout)
        sid = self._new_id() if sid is None else sid
        dsid = rq.get(ASSIGNED_SESSION_ID)
        self.send(OCRP, [(ASSIGNED_SESSION_ID, sid)], session_id=dsid)
        self.send(OCCN, [(TX_CONNECT_SPEED, 1000000), (FRAMING_TYPE, framing_type)],
                  session_id=dsid)
        self.expect_ack(timeout)
        return rq, sid

    def cdn(self, daemon_sid, sid, result=(3, 0, "scripted peer hangs up")):
        """CDN (6.12): Result Code and our Assigned Session ID."""
        return self.send(CDN, [(RESULT_CODE, result), (ASSIGNED_SESSION_ID, sid)],
                         session_id=daemon_sid)

    # ------------------------------------------------------------- receiving
    def _file(self, p):
        """Classify a control datagram of the main socket against our state (5.8)."""
        if not p.control or p.ver != 2:
            p.seq = "data"
            return
        if p.mtype == SCCRQ:
            p.seq = "sccrq"    # a new connection: no place in ours
            self.sccrqs.append(p)
            return
        if p.tunnel_id != (self.tid or 0):
            p.seq = "foreign"  # for another connection of ours: not numbered here
            return
        if ((p.nr - self.acked) & 0xFFFF) < 0x8000:
            self.acked = p.nr
        if p.zlb:
            p.seq = "zlb"
            return
        d = (p.ns - self.nr) & 0xFFFF
        if d == 0:
            p.seq = "new"
            self.nr = (self.nr + 1) & 0xFFFF
            if p.mtype == SCCRP and not self.peer_tid:
                self.peer_tid = p.get(ASSIGNED_TUNNEL_ID) or 0
            self.inbox.append(p)
            if self.auto_ack:
                self.zlb()
        elif _seq_before(p.ns, self.nr):
            p.seq = "dup"      # 5.8: discarded, but MUST be acknowledged
            if self.auto_ack:
                self.zlb()
        else:
            p.seq = "ahead"

    def pump(self, timeout):
        """Receive one datagram on the main socket (within `timeout` s), file it and
        return it; None on timeout."""
        timeout = max(0.0, timeout)
        if not self.sel.select(timeout):
            return None
        try:
            data, src = self.sock.recvfrom(65535)
        except (BlockingIOError, socket.timeout):
            return None
        try:
            p = parse(data, self.secret, src)
        except ValueError as e:
            raise AssertionError(f"the daemon sent a malformed datagram ({e}): {data.hex()}")
        p.sock = self.sock
        self.received.append(p)
        self._file(p)
        return p

    def drain(self, timeout):
        """Everything received within `timeout` s (ZLBs included)."""
        out = []
        deadline = time.monotonic() + timeout
        while True:
            p = self.pump(deadline - time.monotonic())
            if p is None:
                return out
            out.append(p)

    def expect(self, msg_type, timeout=None, allow_stop=False):
        """The next in-order message of type `msg_type` (an SCCRQ: any SCCRQ),
        waiting at most `timeout` s; ZLBs and duplicates are skipped (and acked).
        A StopCCN while waiting for something else fails at once, naming its
        Result Code."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            for i, p in enumerate(self.inbox):
                if p.mtype == msg_type:
                    del self.inbox[i]
                    return p
                if p.mtype == STOPCCN and msg_type != STOPCCN and not allow_stop:
                    raise AssertionError(f"expected {MSG_NAMES.get(msg_type)}, got {p!r}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {MSG_NAMES.get(msg_type, msg_type)} within "
                                     f"{timeout} s; received {seen!r}")
            p = self.pump(left)
            if p is None:
                continue
            seen.append(p)
            if msg_type == SCCRQ and self.sccrqs:
                return self.sccrqs.pop(0)

    def expect_ack(self, timeout=None):
        """Wait until the daemon has acknowledged everything we sent (Nr = our Ns)."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while self.acked != self.ns:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"our Ns {self.ns - 1} was not acked within {timeout} s "
                                     f"(last Nr {self.acked})")
            self.pump(left)

    def messages(self, msg_type=None):
        """Every non-ZLB control message received so far (of `msg_type`)."""
        return [p for p in self.received if p.control and not p.zlb
                and (msg_type is None or p.mtype == msg_type)]
