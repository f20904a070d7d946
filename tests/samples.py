"""Sample control messages: every message type with every AVP it may carry.

Shared by the codec tests, the Wireshark oracle and the MicroPython run, so it
holds only literals. Values are chosen to be recognisable in a dissector's output.
"""

import avp
from util import Rng  # noqa: F401 - the samples' users import it from here

SECRET = b"tunnel-secret"

_TUNNEL_CAPS = [
    (avp.PROTOCOL_VERSION, (1, 0)),
    (avp.FRAMING_CAPABILITIES, avp.FRAMING_SYNC | avp.FRAMING_ASYNC),
    (avp.BEARER_CAPABILITIES, avp.BEARER_ANALOG),
    (avp.FIRMWARE_REVISION, 0x0102),
    (avp.HOST_NAME, "lac.example"),
    (avp.VENDOR_NAME, "l2tpd test"),
    (avp.ASSIGNED_TUNNEL_ID, 0x1234),
    (avp.RECEIVE_WINDOW_SIZE, 10),
]

# msg_type -> [(attr, value), ...] covering the MUST and MAY AVPs of section 6.
SAMPLES = {
    avp.SCCRQ: _TUNNEL_CAPS + [
        (avp.CHALLENGE, b"0123456789abcdef"),
        (avp.TIE_BREAKER, b"\x01\x02\x03\x04\x05\x06\x07\x08"),
    ],
    avp.SCCRP: _TUNNEL_CAPS + [
        (avp.CHALLENGE, b"fedcba9876543210"),
        (avp.CHALLENGE_RESPONSE, b"\xaa" * 16),
    ],
    avp.SCCCN: [(avp.CHALLENGE_RESPONSE, b"\xbb" * 16)],
    avp.STOPCCN: [
        (avp.ASSIGNED_TUNNEL_ID, 0x1234),
        (avp.RESULT_CODE, (avp.STOPCCN_ERROR, avp.ERR_UNKNOWN_MANDATORY, "unknown AVP 45")),
    ],
    avp.HELLO: [],
    avp.OCRQ: [
        (avp.ASSIGNED_SESSION_ID, 0x4321),
        (avp.CALL_SERIAL_NUMBER, 77),
        (avp.MINIMUM_BPS, 9600),
        (avp.MAXIMUM_BPS, 1000000),
        (avp.BEARER_TYPE, avp.BEARER_DIGITAL),
        (avp.FRAMING_TYPE, avp.FRAMING_SYNC),
        (avp.CALLED_NUMBER, "5551234"),
        (avp.SUB_ADDRESS, "12"),
    ],
    avp.OCRP: [(avp.ASSIGNED_SESSION_ID, 0x5678), (avp.PHYSICAL_CHANNEL_ID, 3)],
    avp.OCCN: [
        (avp.TX_CONNECT_SPEED, 64000),
        (avp.FRAMING_TYPE, avp.FRAMING_SYNC),
        (avp.RX_CONNECT_SPEED, 32000),
        (avp.SEQUENCING_REQUIRED, True),
    ],
    avp.ICRQ: [
        (avp.ASSIGNED_SESSION_ID, 0x4321),
        (avp.CALL_SERIAL_NUMBER, 78),
        (avp.BEARER_TYPE, avp.BEARER_ANALOG),
        (avp.PHYSICAL_CHANNEL_ID, 5),
        (avp.CALLING_NUMBER, "5550001"),
        (avp.CALLED_NUMBER, "5550002"),
        (avp.SUB_ADDRESS, "7"),
    ],
    avp.ICRP: [(avp.ASSIGNED_SESSION_ID, 0x5678)],
    avp.ICCN: [
        (avp.TX_CONNECT_SPEED, 10000000),
        (avp.FRAMING_TYPE, avp.FRAMING_SYNC),
        (avp.INITIAL_RECEIVED_LCP_CONFREQ, b"\x01\x04\x05\xdc"),
        (avp.LAST_SENT_LCP_CONFREQ, b"\x05\x06\x11\x22\x33\x44"),
        (avp.LAST_RECEIVED_LCP_CONFREQ, b"\x01\x04\x05\xd4"),
        (avp.PROXY_AUTHEN_TYPE, avp.PROXY_AUTH_CHAP),
        (avp.PROXY_AUTHEN_NAME, "alice"),
        (avp.PROXY_AUTHEN_CHALLENGE, b"\x10" * 16),
        (avp.PROXY_AUTHEN_ID, 9),
        (avp.PROXY_AUTHEN_RESPONSE, b"\x20" * 16),
        (avp.PRIVATE_GROUP_ID, b"group-1"),
        (avp.RX_CONNECT_SPEED, 5000000),
        (avp.SEQUENCING_REQUIRED, True),
    ],
    avp.CDN: [
        (avp.RESULT_CODE, (avp.CDN_ADMIN, avp.ERR_NONE, "admin down")),
        (avp.ASSIGNED_SESSION_ID, 0x5678),
        (avp.Q931_CAUSE_CODE, (16, 0x5A, "normal")),
    ],
    avp.WEN: [(avp.CALL_ERRORS, (1, 2, 3, 4, 5, 6))],
    avp.SLI: [(avp.ACCM, (0xFFFFFFFF, 0x000A0000))],
}
