"""Property tests of avp.py with hypothesis (CPython only).

1. encode -> decode gives back every value, for every message type, with random
   valid AVP values, hidden and not.
2. Any byte string (random, or a truncated/mutated valid message) either decodes
   or raises avp.L2TPError: never IndexError, struct.error, ValueError, UnicodeError.
"""
from hypothesis import given, settings
from hypothesis import strategies as st

import avp

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
blob = st.binary(max_size=40)


def _value(attr):
    kind, lo = avp.AVP_INFO[attr][2], avp.AVP_INFO[attr][3]
    if kind == "u16":
        return u16
    if kind == "u32":
        return u32
    if kind == "str":
        return text.filter(lambda s: len(s.encode()) >= lo)
    if kind == "bytes":
        if attr == avp.CHALLENGE_RESPONSE:
            return st.binary(min_size=16, max_size=16)
        if attr == avp.TIE_BREAKER:
            return st.binary(min_size=8, max_size=8)
        return st.binary(min_size=lo, max_size=40)
    if kind == "empty":
        return st.just(True)
    if kind == "result":
        nonempty = text.filter(bool)
        return st.one_of(st.tuples(u8, st.none(), st.none()),
                         st.tuples(u8, u8, st.none()),
                         st.tuples(u8, u8, nonempty))
    if kind == "version":
        return st.tuples(u8, u8)
    if kind == "q931":
        return st.tuples(u16, u8, st.one_of(st.none(), text.filter(bool)))
    if kind == "errors":
        return st.tuples(u32, u32, u32, u32, u32, u32)
    if kind == "accm":
        return st.tuples(u32, u32)
    if kind == "id8":
        return u8
    raise AssertionError(kind)


@st.composite
def messages(draw):
    msg_type = draw(st.sampled_from(sorted(avp.MSG_SPEC)))
    must, may = avp.MSG_SPEC[msg_type]
    chosen = list(must) + [a for a in may if draw(st.booleans())]
    avps = [(a, draw(_value(a))) for a in chosen]
    return msg_type, avps


def _rng_from(seed):
    state = [seed or 1]

    def rng(n):
        out = bytearray(n)
        for i in range(n):
            state[0] = (state[0] * 1103515245 + 12345) & 0x7FFFFFFF
            out[i] = (state[0] >> 16) & 0xFF
        return bytes(out)
    return rng


@settings(max_examples=400, deadline=None)
@given(messages(), st.booleans(), st.binary(min_size=1, max_size=20), u32)
def test_encode_decode_round_trip(message, hide, secret, seed):
    msg_type, avps = message
    body = avp.encode_message(msg_type, avps, secret=secret, hide=hide, rng=_rng_from(seed),
                              hide_sccrq=True)
    data = avp.push_control(1, 2, 3, 4, body)
    h = avp.pull_header(data)
    m = avp.decode_message(data[h.payload_offset:h.length], secret=secret)
    assert m.type == msg_type
    for attr, value in avps:
        assert m.get(attr) == value, (attr, m.get(attr), value)
    hideable = sorted(a for a, _ in avps if avp.AVP_INFO[a][5])
    assert sorted(m.hidden) == (hideable if hide else [])


def _decode_any(data):
    try:
        h = avp.pull_header(data)
        if h.control:
            avp.decode_message(data[h.payload_offset:h.length], secret=b"k")
    except avp.L2TPError:
        pass


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_codec_errors(data):
    _decode_any(data)
    _decode_any(b"\xc8\x02" + data)  # a control header start, so the AVP parser runs
    try:
        avp.decode_message(data, secret=b"k")
    except avp.L2TPError:
        pass


@settings(max_examples=300, deadline=None)
@given(messages(), st.booleans(), st.data())
def test_truncated_and_mutated_messages_raise_only_codec_errors(message, hide, data):
    msg_type, avps = message
    body = avp.encode_message(msg_type, avps, secret=b"k", hide=hide, rng=_rng_from(7),
                              hide_sccrq=True)
    wire = avp.push_control(1, 2, 3, 4, body)
    cut = data.draw(st.integers(0, len(wire)))
    _decode_any(wire[:cut])
    _decode_any(avp.push_control(1, 2, 3, 4, body[:max(0, cut - 12)]))
    pos = data.draw(st.integers(0, len(wire) - 1))
    mutated = bytearray(wire)
    mutated[pos] = data.draw(u8)
    _decode_any(bytes(mutated))
    _decode_any(bytes(mutated[:cut]))
