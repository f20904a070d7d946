"""fsm.py: tunnel and session state machines (RFC 2661 section 7).

LAC and LNS hosts wired in memory (tests/fsm_pair.py over tests/lossy_link.py) on
a virtual clock: the four call types, tunnel authentication and its failures,
hidden AVPs, the tie breaker, a retransmitted SCCRQ, unknown mandatory AVPs,
timers; then every (state, event) pair of each table (h2 style), and the
RFC's own tables, transcribed by hand, against what the machines do. Where a
value could be taken from the code under test (the tie breaker's winner, a
challenge response) the expectation is worked out here from the RFC instead.
Runs under pytest and under MicroPython (tests/run.py).
"""
import hashlib

import avp
import fsm
import fsm_pair
from fsm_pair import Bytes, Host, Policy, RawPeer, Script, tunnel_avps
from samples import SAMPLES
from util import raises
from vectors_xl2tpd import DIRECTION, SECRET, SEQUENCES, VECTORS

MPY = True

VENDOR_M1 = ((9, 1), (True, b"cisco"))   # a vendor AVP with M=1 nobody knows


Net = fsm_pair.Net   # bounded in virtual and in wall time


def md5_response(msg_type, secret, challenge):
    """RFC 2661 section 4.3 / 5.1.1, written out without avp.py: the Challenge
    Response is MD5 over the one-octet Message Type of the message carrying it
    (2 = SCCRP, 3 = SCCCN), the shared secret and the Challenge."""
    return hashlib.md5(bytes([msg_type]) + secret + challenge).digest()


def tb_value(octets):
    """A Tie Breaker Value as the unsigned 64-bit number it is (network order)."""
    v = 0
    for o in octets:
        v = v * 256 + o
    return v




def tunnel_of(host):
    (t,) = host.tunnels.values()
    return t


def connect(lac_kw=None, lns_kw=None, **net_kw):
    """A LAC host, an LNS host and one tunnel from the LAC, established."""
    lac = Host("lac", seed=11, **(lac_kw or {}))
    lns = Host("lns", seed=22, **(lns_kw or {}))
    net = Net(lac, lns, **net_kw)
    t = lac.open(net.now, "lns")
    net.run(lambda: t.state == "established" and tunnel_of(lns).state == "established", 60000)
    return net, lac, lns, t


def msg(mtype, avps=None):
    """A decoded sample message (tests/samples.py) of one type."""
    return avp.decode_message(avp.encode_message(mtype, SAMPLES[mtype] if avps is None else avps))


def result_of(m):
    return m.get(avp.RESULT_CODE)


# ---------------------------------------------------------------- pure helpers


def test_config_defaults_and_errors():
    c = fsm.TunnelConfig()
    assert (c.host_name, c.secret, c.auth_mode, c.hide_avps, c.use_tiebreaker) == \
        ("l2tpd", None, "none", False, False)
    assert (c.rx_window_size, c.hello_timeout, c.max_retries, c.max_sessions) == (10, 60000, 5, 0)
    assert fsm.TunnelConfig(secret="s").secret == b"s"
    e = raises(avp.LocalError, fsm.TunnelConfig, hello=1)
    assert "hello" in str(e)
    raises(avp.LocalError, fsm.TunnelConfig, auth_mode="chap")
    raises(avp.LocalError, fsm.TunnelConfig, auth_mode="challenge")      # needs a secret
    raises(avp.LocalError, fsm.TunnelConfig, hide_avps=True)             # needs a secret
    assert fsm.TunnelConfig(auth_mode="challenge", secret=b"x", hide_avps=True).hide_avps
    raises(avp.LocalError, fsm.TunnelConfig, host_name=None)          # fails now, not later
    raises(avp.LocalError, fsm.TunnelConfig, framing_caps=-1)
    raises(avp.LocalError, fsm.Tunnel, 0, c, Bytes())
    raises(avp.LocalError, fsm.Tunnel, 70000, c, Bytes())


class AllBut:
    """A scope where every id but one is taken (a 65535-key dict is too big for
    MicroPython's default heap)."""

    def __init__(self, free):
        self.free = free

    def __contains__(self, v):
        return v != self.free


def test_new_id_random_nonzero_unique():
    rng = Bytes(5)
    taken = {}
    for _ in range(3000):
        v = fsm.new_id(rng, taken)
        assert 0 < v <= 0xFFFF and v not in taken
        taken[v] = 1
    assert fsm.new_id(rng, AllBut(4242)) == 4242  # nearly full: still found
    raises(avp.LocalError, fsm.new_id, rng, AllBut(None))
    zeros = lambda n: bytes(n)                     # a source stuck at 0 never yields 0
    assert fsm.new_id(zeros, {}) == 1


def test_tie_breaker_winner_table():
    lo, hi = b"\x00" * 7 + b"\x01", b"\x80" + b"\x00" * 7
    cases = [(lo, hi, "ours"), (hi, lo, "theirs"), (lo, lo, "both"),
             (lo, None, "ours"), (None, hi, "theirs"), (None, None, None)]
    for ours, theirs, want in cases:
        assert fsm.tie_breaker_winner(ours, theirs) == want, (ours, theirs)


def test_tie_breaker_winner_from_the_rfc():
    # Ref: RFC2661 section 4.4.3: 8-octet values, 'The lower value "wins"'; equal
    # values on both sides: both discard. A lone Tie Breaker wins (the side that
    # sent none did not ask for a single tunnel). Hand-written values:
    rows = [
        ("0000000000000001", "0000000000000002", "ours"),
        ("0000000000000002", "0000000000000001", "theirs"),
        ("00000000000000ff", "0000000000000100", "ours"),      # a carry: not the last octet
        ("0100000000000000", "00ffffffffffffff", "theirs"),    # the first octet weighs most
        ("0000000000000100", "0000000000000001", "theirs"),    # network order, not little-endian
        ("7fffffffffffffff", "8000000000000000", "ours"),      # unsigned: the top bit is no sign
        ("ffffffffffffffff", "0000000000000000", "theirs"),
        ("82061a2359b62a3b", "c54fd1d01ab22574", "ours"),
        ("1234567890abcdef", "1234567890abcdef", "both"),
        ("0000000000000000", "0000000000000000", "both"),
        ("ffffffffffffffff", None, "ours"),
        (None, "ffffffffffffffff", "theirs"),
        (None, None, None),
    ]
    for ours, theirs, want in rows:
        a = bytes.fromhex(ours) if ours else None
        b = bytes.fromhex(theirs) if theirs else None
        assert fsm.tie_breaker_winner(a, b) == want, (ours, theirs, want)


def test_peek_sccrq():
    body = avp.encode_message(avp.SCCRQ, SAMPLES[avp.SCCRQ])
    d = avp.push_control(0, 0, 0, 0, body)
    assert fsm.peek_sccrq(d) == (0x1234, b"\x01\x02\x03\x04\x05\x06\x07\x08")
    assert fsm.peek_sccrq(avp.push_control(5, 0, 0, 0, body)) is None      # not tunnel 0
    other = avp.encode_message(avp.SCCCN, ())
    assert fsm.peek_sccrq(avp.push_control(0, 0, 0, 0, other)) is None
    assert fsm.peek_sccrq(b"\x00") is None
    # Hidden Assigned Tunnel ID: found with the secret.
    hidden = avp.encode_message(avp.SCCRQ, tunnel_avps(99), b"k", True, Bytes(), True)
    assert fsm.peek_sccrq(avp.push_control(0, 0, 0, 0, hidden), b"k") == (99, None)
    # An unknown M=1 AVP after the id: the id still comes out.
    bad = avp.encode_message(avp.SCCRQ, tunnel_avps(98) + [VENDOR_M1])
    assert fsm.peek_sccrq(avp.push_control(0, 0, 0, 0, bad)) == (98, None)


def test_tables_are_consistent():
    states = {"tunnel": ("idle", "wait-ctl-reply", "wait-ctl-conn", "established", "closing",
                         "closed")}
    for kind in ("laic", "lnic", "laoc", "lnoc"):
        states[kind] = ("idle", "wait-tunnel", "wait-reply", "wait-connect", "wait-cs-answer",
                        "established", "closed")
    tables = [("tunnel", fsm.TUNNEL_FSM, fsm.Tunnel)]
    tables += [(k, fsm.SESSION_FSM[k], fsm.Session) for k in ("laic", "lnic", "laoc", "lnoc")]
    for kind, table, cls in tables:
        for (state, event), (action, nxt) in table.items():
            assert state in states[kind] and nxt in states[kind], (kind, state, nxt)
            assert callable(getattr(cls, action, None)), (kind, action)
            if event.endswith("-bad"):
                assert callable(getattr(cls, "_check_" + event[:-4])), (kind, event)
                assert (state, event[:-4]) in table, (kind, state, event)


# ---------------------------------------------------------------- the four call types
def test_incoming_call_lac_to_lns_and_clear_from_lns():
    net, lac, lns, t = connect()
    u = tunnel_of(lns)
    assert lac.of("tunnel-up") == [("tunnel-up", t.tunnel_id)]
    assert lns.of("tunnel-up") == [("tunnel-up", u.tunnel_id)]
    assert t.peer_tunnel_id == u.tunnel_id and u.peer_tunnel_id == t.tunnel_id
    assert u.peer["host_name"] == "lac" and t.peer["host_name"] == "lns"
    assert t.peer["challenge_ok"] is None        # no secret, no challenge
    s, acts = t.session_open(net.now, "laic", {"calling_number": "5550100", "bearer_type": 2})
    assert acts == [] and s.state == "wait-reply"
    net.run(lambda: lns.of("session-up") and lac.of("session-up"), 10000)
    (created,) = lns.of("session-created")
    assert created[3] == "lnic"
    sid = created[2]
    up_lac, up_lns = lac.of("session-up")[0], lns.of("session-up")[0]
    assert up_lac[2] == s.session_id and up_lns[2] == sid
    assert up_lac[3]["peer_session_id"] == sid and up_lns[3]["peer_session_id"] == s.session_id
    info = up_lns[3]
    assert info["session_type"] == "lnic" and info["calling_number"] == "5550100"
    assert info["bearer_type"] == 2 and info["call_serial_number"] == 1
    assert info["tx_connect_speed"] == 1000000 and info["framing_type"] == 3
    assert info["sequencing_required"] is False
    assert s.state == "established" and u.sessions[sid].state == "established"
    # The LNS clears the call: CDN with its own Assigned Session ID, header = LAC's id.
    lns.take(u.session_close(net.now, sid, 3, 0, "admin"))
    net.run(lambda: lac.of("session-down"), 10000)
    down = lac.of("session-down")[0]
    assert down[2] == s.session_id and down[4] == (3, 0, "admin")
    (h, cdn), = net.messages("lns", avp.CDN)
    assert h.session_id == s.session_id and cdn.get(avp.ASSIGNED_SESSION_ID) == sid
    assert h.tunnel_id == t.tunnel_id
    assert not t.sessions and not u.sessions
    assert t.state == u.state == "established"


def test_outgoing_call_lns_to_lac_and_clear_from_lac():
    # The LNS opens the tunnel this time (either side may initiate, section 7.2).
    lac, lns = Host("lac", seed=3), Host("lns", seed=4)
    net = Net(lac, lns)
    u = lns.open(net.now, "lac")
    s, _ = u.session_open(net.now, "lnoc", {"called_number": "5551234", "maximum_bps": 64000})
    assert s.state == "wait-tunnel"                       # section 7.5.2: waits for the tunnel
    net.run(lambda: lac.of("session-created"), 10000)
    t = tunnel_of(lac)
    (c,) = lac.of("session-created")
    assert c[3] == "laoc"
    ls = t.sessions[c[2]]
    assert ls.state == "wait-cs-answer" and ls.peer["called_number"] == "5551234"
    assert not lns.of("session-up")
    raises(avp.LocalError, t.bearer_up, net.now, 999)
    lac.take(t.bearer_up(net.now, c[2], {"tx_connect_speed": 64000, "sequencing_required": True}))
    net.run(lambda: lns.of("session-up"), 10000)
    info = lns.of("session-up")[0][3]
    assert info["session_type"] == "lnoc" and info["tx_connect_speed"] == 64000
    assert info["sequencing_required"] is True and info["maximum_bps"] == 64000
    linfo = lac.of("session-up")[0][3]
    assert linfo["session_type"] == "laoc" and linfo["called_number"] == "5551234"
    assert linfo["sequencing_required"] is True
    # OCRQ carried our types within the LAC's capabilities.
    (_, ocrq), = net.messages("lns", avp.OCRQ)
    assert ocrq.get(avp.BEARER_TYPE) == 3 and ocrq.get(avp.MINIMUM_BPS) == 0
    lac.take(t.session_close(net.now, c[2], avp.CDN_LOST_CARRIER))
    net.run(lambda: lns.of("session-down"), 10000)
    assert lns.of("session-down")[0][4] == (1, None, None)
    assert not t.sessions and not u.sessions


def test_lac_call_waits_for_the_tunnel():
    lac, lns = Host("lac", seed=5), Host("lns", seed=6)
    net = Net(lac, lns)
    t = lac.open(net.now, "lns")
    s, acts = t.session_open(net.now, "laic")
    assert acts == [] and s.state == "wait-tunnel"
    net.run(lambda: lns.of("session-up"), 10000)
    assert s.state == "established"
    # A call closed before its tunnel exists sends nothing (section 7.4.1, wait-tunnel).
    s2, _ = lac.open(net.now, "lns").session_open(net.now, "laic")
    t2 = s2.tunnel
    lac.take(t2.session_close(net.now, s2.session_id))
    assert lac.of("session-down")[-1][2] == s2.session_id and not t2.sessions
    assert t2.session_close(net.now, s2.session_id) == []   # already gone: no-op


def test_stopccn_clears_every_session_and_lingers():
    net, lac, lns, t = connect()
    u = tunnel_of(lns)
    for _ in range(3):
        lac.take(t.session_open(net.now, "laic")[1])
    lns.take(u.session_open(net.now, "lnoc")[1])
    net.run(lambda: len(lns.of("session-created")) == 3 and len(lac.of("session-created")), 10000)
    (c,) = lac.of("session-created")
    lac.take(t.bearer_up(net.now, c[2]))
    net.run(lambda: len(lns.of("session-up")) == 4, 10000)
    lns.take(u.close(net.now, avp.STOPCCN_SHUTTING_DOWN, 0, "bye"))
    assert u.state == "closing" and len(lns.of("session-down")) == 4
    assert lns.of("tunnel-down") == [("tunnel-down", u.tunnel_id,
                                      "sent StopCCN, result 6 error 0: bye", (6, 0, "bye"))]
    assert u.close(net.now) == [] and u.discard(net.now) == []
    t0 = net.now
    net.run(lambda: not lac.tunnels and not lns.tunnels, 100000)
    assert len(lac.of("session-down")) == 4
    (down,) = lac.of("tunnel-down")
    assert down[3] == (6, 0, "bye") and "peer sent StopCCN" in down[2]
    # The StopCCN holder lingers a full cycle (section 5.7) before tunnel-closed.
    assert net.now - t0 >= 31000
    assert lac.of("tunnel-closed") and lns.of("tunnel-closed")
    (h, stop), = net.messages("lns", avp.STOPCCN)
    assert h.session_id == 0 and stop.get(avp.ASSIGNED_TUNNEL_ID) == u.tunnel_id
    assert not net.messages("lac", avp.CDN) and not net.messages("lns", avp.CDN)


def lossy_run(seed):
    """Four LAC and four LNS calls on one tunnel over a link that loses 20%,
    duplicates 10% and reorders 10%; all cleared by the LAC at the end."""
    net, lac, lns, t = connect(loss=20, dup=10, reorder=10, seed=seed)
    u = tunnel_of(lns)
    for _ in range(4):
        lac.take(t.session_open(net.now, "laic")[1])
        lns.take(u.session_open(net.now, "lnoc")[1])
    done = []

    def ready():
        for c in lac.of("session-created"):
            if c[2] not in done:
                done.append(c[2])
                lac.take(t.bearer_up(net.now, c[2]))    # the LAC's outgoing call answers
        return len(lac.of("session-up")) == 8 and len(lns.of("session-up")) == 8
    net.run(ready, 200000)
    kinds = sorted([a[3]["session_type"] for a in lac.of("session-up")])
    assert kinds == ["laic"] * 4 + ["laoc"] * 4
    kinds = sorted([a[3]["session_type"] for a in lns.of("session-up")])
    assert kinds == ["lnic"] * 4 + ["lnoc"] * 4
    for sid in sorted(t.sessions)[:4]:
        lac.take(t.session_close(net.now, sid))
    net.run(lambda: len(lns.of("session-down")) == 4, 200000)
    lac.take(t.close(net.now))
    net.run(lambda: not lac.tunnels and not lns.tunnels, 400000)
    assert len(lac.of("session-down")) == len(lns.of("session-down")) == 8
    assert t.channel.stats["retransmits"] + u.channel.stats["retransmits"] > 0


def test_all_four_call_types_over_a_lossy_link():
    for seed in (1, 2, 3):
        lossy_run(seed)


# ---------------------------------------------------------------- tunnel authentication
def test_challenge_both_ways_succeeds():
    net, lac, lns, t = connect({"secret": b"s3cret"},
                               {"secret": b"s3cret", "auth_mode": "challenge"})
    u = tunnel_of(lns)
    assert t.peer["challenge_ok"] is True and u.peer["challenge_ok"] is True
    (_, rq), = net.messages("lac", avp.SCCRQ)
    (_, rp), = net.messages("lns", avp.SCCRP)
    (_, cn), = net.messages("lac", avp.SCCCN)
    assert rp.get(avp.CHALLENGE_RESPONSE) == avp.challenge_response(2, b"s3cret",
                                                                    rq.get(avp.CHALLENGE))
    assert cn.get(avp.CHALLENGE_RESPONSE) == avp.challenge_response(3, b"s3cret",
                                                                    rp.get(avp.CHALLENGE))
    # The same, from the RFC with hashlib: not avp.challenge_response checking itself.
    assert rp.get(avp.CHALLENGE_RESPONSE) == md5_response(2, b"s3cret", rq.get(avp.CHALLENGE))
    assert cn.get(avp.CHALLENGE_RESPONSE) == md5_response(3, b"s3cret", rp.get(avp.CHALLENGE))
    lac.take(t.session_open(net.now, "laic")[1])
    net.run(lambda: lns.of("session-up"), 10000)


def test_wrong_secret_refused_with_result_4():
    net, lac, lns, t = connect({"secret": b"one"}, {"secret": b"two"})
    assert t.state in ("closing", "closed") and not lac.of("tunnel-up")
    why = (4, 0, "not authorized: wrong Challenge Response in SCCRP")
    (down,) = lac.of("tunnel-down")
    assert down[3] == why and "not authorized" in down[2]
    net.run(lambda: lns.of("tunnel-down"), 10000)
    assert lns.of("tunnel-down")[0][3] == why
    assert not lns.of("tunnel-up")


def test_missing_response_in_sccrp():
    t = fsm.Tunnel(10, fsm.TunnelConfig(secret=b"k", ack_delay=0), Bytes(1))
    raw = RawPeer(t, secret=b"k")
    t.open(0)
    raw.pump()
    _, rq = raw.last(avp.SCCRQ)
    assert avp.CHALLENGE in rq and rq.get(avp.TIE_BREAKER) is None   # off by default
    acts = raw.send(avp.SCCRP, tunnel_avps(77))
    assert acts[-1] == ("tunnel-down", 10, "sent StopCCN, result 4 error 0: not authorized: "
                        "no Challenge Response in SCCRP", (4, 0, "not authorized: no Challenge "
                                                           "Response in SCCRP"))
    h, stop = raw.last(avp.STOPCCN)
    assert h.tunnel_id == 77 and stop.get(avp.ASSIGNED_TUNNEL_ID) == 10


def responder(secret=None, **kw):
    """A responder tunnel (id 20) and a raw initiator (id 77). The clock stands
    still in raw tests, so acks go at once (ack_delay 0)."""
    kw.setdefault("ack_delay", 0)
    t = fsm.Tunnel(20, fsm.TunnelConfig(secret=secret, **kw), Bytes(2))
    return t, RawPeer(t, secret=secret)


def test_scccn_response_wrong_or_missing():
    for resp, text in ((b"\x00" * 16, "wrong"), (None, "no")):
        t, raw = responder(b"k")
        raw.sccrq()
        _, rp = raw.last(avp.SCCRP)
        assert t.state == "wait-ctl-conn" and avp.CHALLENGE in rp
        acts = raw.send(avp.SCCCN, [(avp.CHALLENGE_RESPONSE, resp)] if resp else [])
        assert acts[-1][3] == (4, 0, f"not authorized: {text} Challenge Response in SCCCN")
        _, stop = raw.last(avp.STOPCCN)
        assert result_of(stop)[0] == 4 and t.state == "closing"
    # The right response gets in.
    t, raw = responder(b"k")
    raw.sccrq()
    _, rp = raw.last(avp.SCCRP)
    good = md5_response(3, b"k", rp.get(avp.CHALLENGE))     # RFC 2661 5.1.1, by hand
    assert good == avp.challenge_response(3, b"k", rp.get(avp.CHALLENGE))
    assert raw.send(avp.SCCCN, [(avp.CHALLENGE_RESPONSE, good)]) == [("tunnel-up", 20)]
    # The SCCRP answered our Challenge in the same way (type 2 = SCCRP).
    t, raw = responder(b"k")
    raw.sccrq([(avp.CHALLENGE, b"0123456789abcdef")])
    _, rp = raw.last(avp.SCCRP)
    assert rp.get(avp.CHALLENGE_RESPONSE) == md5_response(2, b"k", b"0123456789abcdef")


def test_challenged_without_a_secret():
    t, raw = responder()
    raw.sccrq([(avp.CHALLENGE, b"abcd")])
    _, stop = raw.last(avp.STOPCCN)
    assert result_of(stop) == (2, 6, "SCCRQ has a Challenge but no secret is configured")
    # The same as initiator, challenged in SCCRP.
    t = fsm.Tunnel(10, fsm.TunnelConfig(), Bytes(1))
    raw = RawPeer(t)
    t.open(0)
    raw.pump()
    raw.send(avp.SCCRP, tunnel_avps(77) + [(avp.CHALLENGE, b"abcd")])
    assert result_of(raw.last(avp.STOPCCN)[1])[:2] == (2, 6)


def test_policy_simple_mode_refuses_unknown_peer():
    pol = Policy(deny=("raw",))
    t = fsm.Tunnel(20, fsm.TunnelConfig(auth_mode="simple"), Bytes(2), policy=pol)
    raw = RawPeer(t)
    acts = raw.sccrq()
    assert pol.asked == [("tunnel", "raw")]
    assert acts == [("tunnel-down", 20, "sent StopCCN, result 4 error 0: no peer profile "
                     "matches raw", (4, 0, "no peer profile matches raw"))]
    h, stop = raw.last(avp.STOPCCN)
    assert h.tunnel_id == 77 and h.session_id == 0      # the peer's id, learned from SCCRQ
    # The initiator asks too (SCCRP).
    net, lac, lns, t = connect({"policy": Policy(deny=("lns",))})
    assert lac.of("tunnel-down")[0][3] == (4, 0, "no peer profile matches lns")


def test_protocol_version_refused():
    t, raw = responder()
    avps = tunnel_avps(77)
    avps[0] = (avp.PROTOCOL_VERSION, (3, 0))
    raw.send(avp.SCCRQ, avps)
    assert result_of(raw.last(avp.STOPCCN)[1])[:2] == (5, 1)


# ---------------------------------------------------------------- hidden AVPs
def test_hidden_avps_on():
    kw = {"secret": b"hide", "hide_avps": True}
    net, lac, lns, t = connect(kw, kw)
    s, acts = t.session_open(net.now, "laic", {"calling_number": "123"})
    lac.take(acts)
    net.run(lambda: lns.of("session-up"), 10000)
    assert lns.of("session-up")[0][3]["calling_number"] == "123"
    msgs = net.messages(secret=b"hide")
    hidden = [m for _, m in msgs if m.hidden]
    assert len(hidden) >= 4                      # SCCRP, SCCCN, ICRQ, ICRP, ICCN...
    for _, m in msgs:
        if m.type in (avp.SCCRQ, avp.SCCRP):
            assert not m.hidden                  # nothing hidden in setup by default
        if m.type == avp.ICRQ:
            assert avp.CALLING_NUMBER in m.hidden and avp.ASSIGNED_SESSION_ID in m.hidden
    lac.take(t.close(net.now))
    net.run(lambda: lns.of("tunnel-down"), 10000)
    (_, stop), = net.messages("lac", avp.STOPCCN, b"hide")
    assert not stop.hidden                       # readable even with a wrong secret


def test_hidden_setup_messages_when_asked():
    kw = {"secret": b"hide", "hide_avps": True, "hide_setup": True}
    net, lac, lns, t = connect(kw, dict(kw))
    (_, rq), = net.messages("lac", avp.SCCRQ, b"hide")
    (_, rp), = net.messages("lns", avp.SCCRP, b"hide")
    assert avp.ASSIGNED_TUNNEL_ID in rq.hidden and avp.ASSIGNED_TUNNEL_ID in rp.hidden
    assert t.state == "established"


def test_hidden_avp_without_a_secret_refused():
    t, raw = responder()
    raw.secret = b"k"
    raw.sccrq(hide=True)
    raw.secret = None
    (h, stop) = raw.last(avp.STOPCCN)
    assert result_of(stop)[:2] == (2, 6) and "no secret" in result_of(stop)[2]


# ---------------------------------------------------------------- tie breaker
def tie(seed_a, seed_b, tb_a=True, tb_b=True):
    a = Host("a", seed=seed_a, use_tiebreaker=tb_a)
    b = Host("b", seed=seed_b, use_tiebreaker=tb_b)
    net = Net(a, b)
    ta, tb = a.open(0, "b"), b.open(0, "a")          # SCCRQs cross on the wire
    net.settle(5000)
    return net, a, b, ta, tb


def test_tie_breaker_both_outcomes():
    seen = []
    # The winners, worked out once by hand from the Tie Breaker values these seeds
    # put on the wire (e.g. seeds 1, 2: a sent c54fd1d0..., b sent 82061a23...).
    for seed_a, seed_b, winner in ((1, 2, "b"), (2, 1, "a"), (5, 6, "b"), (6, 5, "a")):
        net, a, b, ta, tb = tie(seed_a, seed_b)
        # And the rule itself, from the SCCRQs on the wire (section 4.4.3: lower wins).
        (_, rqa), = net.messages("a", avp.SCCRQ)
        (_, rqb), = net.messages("b", avp.SCCRQ)
        va, vb = tb_value(rqa.get(avp.TIE_BREAKER)), tb_value(rqb.get(avp.TIE_BREAKER))
        assert va != vb and ("a" if va < vb else "b") == winner, (seed_a, seed_b)
        win, lose, wt, lt = (a, b, ta, tb) if winner == "a" else (b, a, tb, ta)
        seen.append(win.name)
        assert wt.state == "established"             # the winner's own SCCRQ made the tunnel
        assert lt.state == "closed"                  # the loser dropped it silently
        (down,) = lose.of("tunnel-down")
        assert down[1] == lt.tunnel_id and down[2] == "lost the tie breaker"
        assert len(win.tunnels) == 1 and len(lose.tunnels) == 1
        assert tunnel_of(lose).peer_tunnel_id == wt.tunnel_id
        stops = [m for _, m in net.messages(mtype=avp.STOPCCN)]
        assert not stops                             # silently: no StopCCN
    assert "a" in seen and "b" in seen


def test_tie_breaker_equal_lone_and_absent():
    net, a, b, ta, tb = tie(9, 9)                    # same stream: equal values
    assert ta.tiebreaker == tb.tiebreaker
    assert ta.state == tb.state == "closed" and not a.tunnels and not b.tunnels
    net, a, b, ta, tb = tie(1, 2, tb_a=False)        # only b sent one: b wins
    assert tb.state == "established" and ta.state == "closed"
    net, a, b, ta, tb = tie(1, 2, False, False)      # neither: two tunnels (off by default)
    assert ta.state == tb.state == "established"
    assert len(a.tunnels) == len(b.tunnels) == 2


# ---------------------------------------------------------------- demultiplexing
def test_retransmitted_sccrq_opens_no_second_tunnel():
    lac, lns = Host("lac", seed=1), Host("lns", seed=2)
    net = Net(lac, lns)
    lost = []

    def drop(src, dst, d):
        h = avp.pull_header(d)
        if src == "lns" and not lost and avp.peek_message_type(d[12:]) == avp.SCCRP:
            lost.append(h)
            return True
        return False
    net.drop = drop
    t = lac.open(0, "lns")
    net.run(lambda: t.state == "established" and tunnel_of(lns).state == "established", 20000)
    assert lost and len(net.messages("lac", avp.SCCRQ)) >= 2     # SCCRQ went twice
    u = tunnel_of(lns)
    assert len(lns.tunnels) == 1 and u.state == "established"
    assert u.channel.stats["duplicate_pkt_discards"] >= 1
    # Several tunnels between the same two hosts are fine.
    t2 = lac.open(net.now, "lns")
    net.run(lambda: t2.state == "established", 60000)
    assert len(lns.tunnels) == 2


# ---------------------------------------------------------------- xl2tpd replayed
def vector(name):
    d = VECTORS[name]
    d = bytes.fromhex(d) if isinstance(d, str) else d
    h = avp.pull_header(d)
    body = d[h.payload_offset:h.length]
    return d, h, (avp.decode_message(body, SECRET) if body else None)


def sent(t, now=0):
    """(header, Message or None) for what the tunnel puts on the wire now."""
    out = []
    for d in t.datagrams_to_send(now):
        h = avp.pull_header(d)
        body = d[h.payload_offset:h.length]
        out.append((h, avp.decode_message(body, SECRET) if body else None))
    return out


def sid16(v):
    return bytes(((v >> 8) & 0xFF, v & 0xFF))


def test_xl2tpd_lac_replayed_to_our_lns():
    """The captured xl2tpd LAC's messages, fed in order to our responder tunnel
    whose Challenge and session id are made equal to the xl2tpd LNS's."""
    for run in ("plain", "hidden"):
        _, _, rp = vector(run + "_sccrp")
        _, _, icrp = vector(run + "_icrp")
        chunks = [rp.get(avp.CHALLENGE)] if run == "hidden" else []
        rng = Script(*(chunks + [sid16(icrp.get(avp.ASSIGNED_SESSION_ID))]))
        cfg = fsm.TunnelConfig(ack_delay=0, secret=SECRET if run == "hidden" else None)
        t = fsm.Tunnel(rp.get(avp.ASSIGNED_TUNNEL_ID), cfg, rng)
        acts, out = [], []
        for name in SEQUENCES[run]:
            if DIRECTION[name] == "lac>lns":
                acts += t.receive(vector(name)[0], 0)
                out += sent(t)
        names = [a[0] for a in acts]
        assert names == ["tunnel-up", "session-created", "session-up", "session-down",
                         "tunnel-down"], (run, acts)
        assert t.peer["challenge_ok"] is (True if run == "hidden" else None)
        msgs = [(h, m) for h, m in out if m is not None]
        assert [m.type for _, m in msgs] == [avp.SCCRP, avp.ICRP]
        (h1, sccrp), (h2, ours) = msgs
        _, h0, sccrq = vector(run + "_sccrq")
        assert (h1.tunnel_id, h1.session_id, h1.ns, h1.nr) == (sccrq.get(avp.ASSIGNED_TUNNEL_ID),
                                                               0, 0, 1)
        # Same secret, same challenge: the very response xl2tpd's LNS sent.
        assert sccrp.get(avp.CHALLENGE_RESPONSE) == rp.get(avp.CHALLENGE_RESPONSE)
        _, _, icrq = vector(run + "_icrq")
        assert h2.session_id == icrq.get(avp.ASSIGNED_SESSION_ID)
        assert ours.get(avp.ASSIGNED_SESSION_ID) == icrp.get(avp.ASSIGNED_SESSION_ID)
        info = acts[2][3]
        assert (info["tx_connect_speed"], info["framing_type"]) == (0, avp.FRAMING_SYNC)
        assert acts[3][4] == (1, 0, None) and acts[4][3] == (1, 0, "Goodbye!")
        assert t.state == "closing" and not t.sessions


def test_xl2tpd_lns_replayed_to_our_lac():
    """The captured xl2tpd LNS's messages, fed to our initiator tunnel whose
    Challenge and session id are made equal to the xl2tpd LAC's."""
    for run in ("plain", "hidden"):
        _, _, rq = vector(run + "_sccrq")
        _, _, icrq = vector(run + "_icrq")
        chunks = [rq.get(avp.CHALLENGE)] if run == "hidden" else []
        rng = Script(*(chunks + [sid16(icrq.get(avp.ASSIGNED_SESSION_ID))]))
        cfg = fsm.TunnelConfig(ack_delay=0, secret=SECRET if run == "hidden" else None)
        t = fsm.Tunnel(rq.get(avp.ASSIGNED_TUNNEL_ID), cfg, rng)
        acts = t.open(0)
        out = sent(t)
        for name in SEQUENCES[run]:
            if DIRECTION[name] != "lns>lac":
                continue
            acts += t.receive(vector(name)[0], 0)
            if name.endswith("_sccrp"):
                s, more = t.session_open(0, "laic")
                acts += more
            out += sent(t)
        assert [a[0] for a in acts] == ["tunnel-up", "session-up", "session-down"], (run, acts)
        msgs = [(h, m) for h, m in out if m is not None]
        assert [m.type for _, m in msgs] == [avp.SCCRQ, avp.SCCCN, avp.ICRQ, avp.ICCN]
        assert [h.ns for h, _ in msgs] == [0, 1, 2, 3]
        _, _, scccn = vector(run + "_scccn")
        assert msgs[1][1].get(avp.CHALLENGE_RESPONSE) == scccn.get(avp.CHALLENGE_RESPONSE)
        _, _, icrp = vector(run + "_icrp")
        assert msgs[3][0].session_id == icrp.get(avp.ASSIGNED_SESSION_ID)
        assert acts[1][3]["peer_session_id"] == icrp.get(avp.ASSIGNED_SESSION_ID)
        assert acts[2][4] == (1, 0, None) and t.state == "established"
        assert t.peer["host_name"] == "lns-capture" and t.peer["vendor_name"] == "xelerance.com"


# ---------------------------------------------------------------- errors
def test_unknown_mandatory_avp_in_a_tunnel_message():
    t, raw = responder()
    acts = raw.sccrq([VENDOR_M1])
    h, stop = raw.last(avp.STOPCCN)
    assert result_of(stop) == (2, 8, "SCCRQ: unknown mandatory vendor 9 AVP 1")
    assert h.tunnel_id == 77 and acts[-1][3] == (2, 8, "SCCRQ: unknown mandatory vendor 9 AVP 1")
    # Later in establishment: an SCCCN carrying it.
    t, raw = responder()
    raw.sccrq()
    raw.send(avp.SCCCN, [VENDOR_M1])
    assert result_of(raw.last(avp.STOPCCN)[1])[:2] == (2, 8) and t.state == "closing"
    # permissive keeps the vendor AVP and the tunnel.
    t, raw = responder(permissive=True)
    raw.sccrq([VENDOR_M1])
    raw.send(avp.SCCCN)
    assert t.state == "established"


def established(**kw):
    t, raw = responder(**kw)
    raw.sccrq()
    raw.send(avp.SCCCN)
    assert t.state == "established"
    return t, raw


def icrq(sid=0x4321, extra=()):
    return [(avp.ASSIGNED_SESSION_ID, sid), (avp.CALL_SERIAL_NUMBER, 1)] + list(extra)


def test_unknown_mandatory_avp_in_a_session_message():
    t, raw = established()
    acts = raw.send(avp.ICRQ, icrq(0x4321, [VENDOR_M1]))
    h, cdn = raw.last(avp.CDN)
    assert result_of(cdn) == (2, 8, "ICRQ: unknown mandatory vendor 9 AVP 1")
    assert h.session_id == 0x4321 and cdn.get(avp.ASSIGNED_SESSION_ID)
    assert acts[0][0] == "error" and not t.sessions and t.state == "established"
    # In a call that exists: ICCN with it clears that call, not the tunnel.
    raw.send(avp.ICRQ, icrq(0x99))
    (c,) = [a for a in raw.actions if a[0] == "session-created"]
    acts = raw.send(avp.ICCN, [(avp.TX_CONNECT_SPEED, 1), (avp.FRAMING_TYPE, 1), VENDOR_M1],
                    sid=c[2])
    assert acts == [("session-down", 20, c[2], "sent CDN, result 2 error 8: ICCN: unknown "
                     "mandatory vendor 9 AVP 1", (2, 8, "ICCN: unknown mandatory vendor 9 AVP 1"))]
    h, cdn = raw.last(avp.CDN)
    assert h.session_id == 0x99 and cdn.get(avp.ASSIGNED_SESSION_ID) == c[2]
    assert t.state == "established" and not t.sessions
    # A missing MUST AVP: the codec's result, CDN again.
    raw.send(avp.ICRQ, [(avp.ASSIGNED_SESSION_ID, 0x77)])
    assert "missing mandatory Call Serial Number" in result_of(raw.last(avp.CDN)[1])[2]


def test_malformed_stopccn_is_not_answered():
    t, raw = established()
    acts = raw.send(avp.STOPCCN, [(avp.ASSIGNED_TUNNEL_ID, 77), (avp.RESULT_CODE, (1,)),
                                  VENDOR_M1])
    assert t.state == "closing" and raw.last(avp.STOPCCN) == (None, None)
    assert acts[-1][0] == "tunnel-down" and "malformed" in acts[-1][2]


def test_messages_that_do_not_fit_the_state():
    t, raw = established()
    raw.send(avp.SCCRQ, tunnel_avps(78))
    assert result_of(raw.last(avp.STOPCCN)[1]) == (7, 0, "unexpected SCCRQ in state established")
    # A call message before the tunnel is up clears the tunnel (section 7.1).
    t, raw = responder()
    raw.sccrq()
    raw.send(avp.ICRQ, icrq())
    assert result_of(raw.last(avp.STOPCCN)[1]) == (7, 0, "unexpected ICRQ in state wait-ctl-conn")
    # ICRP to an LNS call: CDN result 2, error 5 (Session ID invalid in this context).
    t, raw = established()
    raw.send(avp.ICRQ, icrq(0x55))
    sid = raw.actions[-1][2]
    acts = raw.send(avp.ICRP, [(avp.ASSIGNED_SESSION_ID, 0x55)], sid=sid)
    assert result_of(raw.last(avp.CDN)[1]) == (2, 5, "unexpected ICRP in state wait-connect")
    assert acts[0][0] == "session-down" and t.state == "established"


def test_message_for_an_unknown_session_is_ignored():
    t, raw = established()
    n = len(raw.got)
    acts = raw.send(avp.CDN, [(avp.RESULT_CODE, (1,)), (avp.ASSIGNED_SESSION_ID, 5)], sid=4444)
    acts += raw.send(avp.ICCN, [(avp.TX_CONNECT_SPEED, 1), (avp.FRAMING_TYPE, 1)], sid=4444)
    assert [a[0] for a in acts] == ["error", "error"] and "unknown session 4444" in acts[1][2]
    assert len(raw.got) == n and t.state == "established"     # nothing sent back


def test_cdn_before_icrp_finds_the_call_by_peer_id():
    # The LAC gives up before it learned our id: header Session ID 0 (section 7.4.1).
    t, raw = established()
    raw.send(avp.ICRQ, icrq(0x66))
    sid = raw.actions[-1][2]
    acts = raw.send(avp.CDN, [(avp.RESULT_CODE, (avp.CDN_LOST_CARRIER,)),
                              (avp.ASSIGNED_SESSION_ID, 0x66)], sid=0)
    assert acts == [("session-down", 20, sid, "peer sent CDN, result 1", (1, None, None))]


def test_malformed_message_discarded():
    t, raw = established()
    acts = raw.send(None, body=b"\x80\x08\x00\x00\x00\x00\x00\x0c\x00")   # stray octets
    assert acts[0][0] == "error" and t.state == "established"
    # An unknown message type with M=0 is ignored (section 3.2).
    assert raw.send(None, body=b"\x00\x08\x00\x00\x00\x00\x00\x63") == []
    # ... with M=1 it clears the tunnel.
    raw.send(None, body=b"\x80\x08\x00\x00\x00\x00\x00\x63")
    assert result_of(raw.last(avp.STOPCCN)[1])[:2] == (2, 3)


# ---------------------------------------------------------------- limits, info
def test_max_sessions_and_policy_refusals():
    pol = Policy()
    t, raw = established(max_sessions=2)
    t.policy = pol
    for sid in (1, 2, 3):
        raw.send(avp.ICRQ, icrq(sid))
    h, cdn = raw.last(avp.CDN)
    assert h.session_id == 3 and result_of(cdn) == (4, 4, "max_sessions 2 reached")
    assert len(t.sessions) == 2 and pol.asked == [("session", "lnic")] * 2
    raises(avp.LocalError, t.session_open, 0, "lnoc")            # our own calls too
    pol.busy = True
    for s in list(t.sessions):
        t.session_close(0, s)
    raw.pump()
    raw.send(avp.OCRQ, SAMPLES[avp.OCRQ])
    assert result_of(raw.last(avp.CDN)[1]) == (4, 4, "system session limit")
    raises(avp.LocalError, t.session_open, 0, "lnic")            # not ours to start


def test_ocrq_for_a_bearer_we_lack():
    t, raw = established(bearer_caps=avp.BEARER_ANALOG)
    raw.send(avp.OCRQ, SAMPLES[avp.OCRQ])                       # digital
    assert result_of(raw.last(avp.CDN)[1]) == (
        5, 0, "bearer type digital is not in our Bearer Capabilities (analog)")


def test_wen_sli_and_proxy_avps_reported():
    net, lac, lns, t = connect()
    u = tunnel_of(lns)
    proxy = {"proxy_authen_type": avp.PROXY_AUTH_CHAP, "proxy_authen_name": "alice",
             "proxy_authen_challenge": b"\x10" * 16, "proxy_authen_id": 9,
             "proxy_authen_response": b"\x20" * 16,
             "initial_received_lcp_confreq": b"\x01\x04\x05\xdc",
             "last_sent_lcp_confreq": b"\x05\x06\x11\x22\x33\x44",
             "last_received_lcp_confreq": b"\x01\x04\x05\xd4",
             "private_group_id": b"g1", "rx_connect_speed": 5000}
    s, acts = t.session_open(net.now, "laic", proxy)
    lac.take(acts)
    net.run(lambda: lns.of("session-up"), 10000)
    info = lns.of("session-up")[0][3]
    for k in proxy:
        assert info[k] == proxy[k], k
    assert info["peer_session_id"] == s.session_id
    lac.take(t.session_info(net.now, s.session_id, "wen", (1, 2, 3, 4, 5, 6)))
    lns.take(u.session_info(net.now, lns.of("session-up")[0][2], "sli", (0xFFFFFFFF, 0)))
    net.run(lambda: lns.of("session-info") and lac.of("session-info"), 10000)
    assert lns.of("session-info") == [("session-info", u.tunnel_id, lns.of("session-up")[0][2],
                                       "wen", (1, 2, 3, 4, 5, 6))]
    assert lac.of("session-info") == [("session-info", t.tunnel_id, s.session_id, "sli",
                                       (0xFFFFFFFF, 0))]
    raises(avp.LocalError, t.session_info, net.now, 1234, "wen", (0,) * 6)
    raises(avp.LocalError, t.session_info, net.now, s.session_id, "hello", ())
    raises(avp.LocalError, t.session_open, net.now, "laic", {"colour": 1})
    raises(avp.LocalError, t.session_open, net.now, "laic", {"tx_connect_speed": -1})
    raises(avp.LocalError, t.session_open, net.now, "laic", {"session_id": s.session_id})


def test_forced_session_id():
    net, lac, lns, t = connect()
    s, acts = t.session_open(net.now, "laic", {"session_id": 4242})
    assert s.session_id == 4242 and t.sessions[4242] is s


# ---------------------------------------------------------------- timers, failure
def test_channel_failure_clears_tunnel_and_sessions():
    net, lac, lns, t = connect({"hello_timeout": 5000})
    lac.take(t.session_open(net.now, "laic")[1])
    net.run(lambda: lns.of("session-up"), 10000)
    for link in net.links.values():
        link.down = True
    net.run(lambda: not lac.tunnels, 200000)
    names = [a[0] for a in lac.actions[-3:]]
    assert names == ["session-down", "tunnel-down", "tunnel-closed"]
    down = lac.of("tunnel-down")[0]
    assert down[2].startswith("control channel failed: no acknowledgement for ")
    assert down[3] is None and t.state == "closed"
    assert lac.of("session-down")[0][3].startswith("tunnel cleared: control channel failed")
    # One best-effort StopCCN went out (RFC 2661 5.7; lost here: the links are down),
    # as two copies: with the Ns the peer last asked for (it heard none of our
    # unacknowledged messages: the session's ICCN is Ns 3 here) and with the next new
    # one (it heard them); then nothing more.
    stops = net.messages("lac", avp.STOPCCN)
    assert sorted(h.ns for h, _ in stops) == [3, 4], [h.ns for h, _ in stops]
    for h, stop in stops:
        assert h.tunnel_id == t.peer_tunnel_id
        assert stop.get(avp.ASSIGNED_TUNNEL_ID) == t.tunnel_id
        assert stop.get(avp.RESULT_CODE)[:2] == (1, 0)
    assert t.datagrams_to_send(net.now) == [] and t.next_deadline() is None


def test_establish_timeout():
    lac, lns = Host("lac", seed=1, establish_timeout=3000), Host("lns", seed=2)
    net = Net(lac, lns)
    net.links[("lac", "lns")].down = True
    t = lac.open(0, "lns")
    net.run(lambda: lac.of("tunnel-down"), 10000)
    assert net.now == 3000 and t.state == "closing"
    assert lac.of("tunnel-down")[0][3] == (1, 0, "not established in 3000 ms")
    net.run(lambda: not lac.tunnels, 100000)


def initiator_with_raw_lns(**kw):
    kw.setdefault("ack_delay", 0)
    t = fsm.Tunnel(10, fsm.TunnelConfig(**kw), Bytes(1))
    raw = RawPeer(t)
    t.open(0)
    raw.pump()
    raw.send(avp.SCCRP, tunnel_avps(77))
    assert t.state == "established"
    return t, raw


def test_session_establish_timeout():
    t, raw = initiator_with_raw_lns(session_establish_timeout=2000)
    s, _ = t.session_open(0, "laic")
    raw.pump()
    assert raw.last(avp.ICRQ)[1] is not None and t.next_deadline() <= 2000
    acts = t.on_timer(2000)
    assert acts[0][0] == "session-down" and acts[0][4] == (10, 0, "not established in 2000 ms")
    raw.pump()
    assert result_of(raw.last(avp.CDN)[1])[0] == 10
    # The LNS side uses result 3.
    t, raw = established(session_establish_timeout=500)
    raw.send(avp.ICRQ, icrq())
    acts = t.on_timer(t.next_deadline())
    assert acts[0][4][0] == 3 and not t.sessions


def test_local_misuse_raises():
    t, raw = established()
    raises(avp.LocalError, t.open, 0)
    raises(avp.LocalError, t.discard, 0)                 # established: lose-tie has no row
    raises(avp.LocalError, t.session_open, 0, "laoc")
    t.close(0)
    raises(avp.LocalError, t.session_open, 0, "laic")
    assert t.close(0) == [] and t.discard(0) == []
    idle = fsm.Tunnel(3, fsm.TunnelConfig(), Bytes())
    assert idle.close(0) == [("tunnel-down", 3, "closed before use", None), ("tunnel-closed", 3)]
    assert idle.receive(b"junk", 0) == []


# ---------------------------------------------------------------- every (state, event)
MESSAGES = {"sccrq": avp.SCCRQ, "sccrp": avp.SCCRP, "scccn": avp.SCCCN, "stopccn": avp.STOPCCN,
            "icrq": avp.ICRQ, "icrp": avp.ICRP, "iccn": avp.ICCN, "ocrq": avp.OCRQ,
            "ocrp": avp.OCRP, "occn": avp.OCCN, "cdn": avp.CDN, "session-msg": avp.ICRQ}
ARGS = {"close": (3, 0, "test"), "rx-error": (2, 8, "test"), "chan-failed": "test failure",
        "lose-tie": "test tie", "tunnel-down": "test", "bearer-up": {}}


def event_input(event):
    """(msg, arg) for an event: a sample message for message events, the refusal
    for "-bad" ones, the argument the public API would pass for local ones."""
    base = event[:-4] if event.endswith("-bad") else event
    m = msg(MESSAGES[base]) if base in MESSAGES else None
    arg = (2, 3, "refused") if event.endswith("-bad") else ARGS.get(event)
    if event == "session-msg":
        arg = 0
    return m, arg


def all_events(tables):
    evs = set(["open", "close", "lose-tie", "bearer-up", "tunnel-open", "tunnel-down", "timeout",
               "chan-failed", "chan-closed", "rx-error", "session-msg"])
    for name in MESSAGES:
        evs.add(name)
        evs.add(name + "-bad")
    for table in tables:
        for _, e in table:
            evs.add(e)
    return sorted(evs)


def fire(machine, event, states_after):
    m, arg = event_input(event)
    before = machine.state
    row = machine.table.get((before, event))
    try:
        out = machine._fire(event, 0, m, arg)
    except avp.LocalError:
        assert row is None and event in fsm.LOCAL_EVENTS, (before, event)
        assert machine.state == before
        return None
    assert isinstance(out, list), (before, event)
    for a in out:
        assert isinstance(a, tuple) and isinstance(a[0], str), a
    if row is not None:
        assert machine.state == row[1], (before, event, machine.state)
    else:
        assert machine.state in states_after, (before, event, machine.state)
    return out


def test_tunnel_table_every_state_and_event():
    states = ("idle", "wait-ctl-reply", "wait-ctl-conn", "established", "closing", "closed")
    n = 0
    for secret in (None, b"k"):
        for state in states:
            for event in all_events([fsm.TUNNEL_FSM]):
                t = fsm.Tunnel(5, fsm.TunnelConfig(secret=secret), Bytes(n))
                t.peer_tunnel_id = t.channel.peer_tunnel_id = 7
                s, _ = t.session_open(0, "laic")              # a call waiting for the tunnel
                t.state = state
                out = fire(t, event, (state, "closing"))
                n += 1
                if out is None:
                    continue
                if t.state in ("closing", "closed") and state not in ("closing", "closed"):
                    assert [a for a in out if a[0] == "tunnel-down"], (state, event)
                    assert not t.sessions and s.state == "closed"
                if t.state == "closed" and state != "closed":
                    assert out[-1] == ("tunnel-closed", 5), (state, event)
                for d in t.datagrams_to_send(0):
                    avp.decode_message(d[12:], secret)     # whatever went out is well-formed
    assert n == 2 * len(states) * len(all_events([fsm.TUNNEL_FSM]))


def test_session_tables_every_state_and_event():
    states = ("idle", "wait-tunnel", "wait-reply", "wait-connect", "wait-cs-answer",
              "established", "closed")
    tables = [fsm.SESSION_FSM[k] for k in ("laic", "lnic", "laoc", "lnoc")]
    n = 0
    for kind in ("laic", "lnic", "laoc", "lnoc"):
        for state in states:
            for event in all_events(tables):
                t, raw = established()
                s = fsm.Session(t, 100, kind)
                s.peer_session_id = 200
                s.announced = True
                t.sessions[100] = s
                s.state = state
                out = fire(s, event, (state, "closed"))
                n += 1
                if out is None or state == "closed":
                    continue
                assert (s.state == "closed") == (100 not in t.sessions), (kind, state, event)
                if s.state == "closed" and state != "closed":
                    assert out and out[-1][0] == "session-down", (kind, state, event, out)
                if s.state == "established" and state != "established":
                    assert out[-1][0] == "session-up"
                raw.pump()
                assert t.state == "established"          # a call never takes the tunnel down
                for h, m in raw.got:
                    if m.type not in (avp.SCCRP,):
                        assert h.session_id in (0, 200), (kind, state, event)
    assert n == 4 * len(states) * len(all_events(tables))


def test_new_id_when_nearly_full_walks_from_a_random_place():
    class AllBut:
        """Every id is taken except `free` (new_id only asks `in`)."""

        def __init__(self, *free):
            self.free = set(free)

        def __contains__(self, v):
            return v not in self.free
    taken = AllBut(5, 60000)
    # Every random try hits a taken id; the walk starts where the last draw points.
    draws = [b"\x00\x01"] * 32 + [b"\xea\x60"]   # 0xea60 = 60000

    def rng(n):
        return draws.pop(0)
    assert fsm.new_id(rng, taken) == 60000
    draws[:] = [b"\x00\x01"] * 32 + [b"\xff\xff"]  # wraps past 65535 and 0
    assert fsm.new_id(rng, taken) == 5
    raises(avp.LocalError, fsm.new_id, lambda n: b"\x00\x01", AllBut())


# ---------------------------------------------------------------- the RFC's own tables
# RFC 2661 section 7, transcribed by hand row by row (not read from fsm.py):
# (state, event, new state, the messages the RFC's Action column sends). A row
# naming several states or events in the RFC is written out once per pair.
#
# The RFC's words in our event names: "acceptable" is the message's name and
# "not acceptable" the name + "-bad"; "Local Open request" and "Bearer Ring" are
# open; "Admin Tunnel Close", "local close request", "Bearer line drop" and
# "Bearer failure" are close; "lose tie-breaker" is lose-tie; "Bearer answer,
# framing detected" is bearer-up; "tunnel-open" is tunnel-open.
#
# The RFC's "idle" after a clean-up: a tunnel that sent or received a StopCCN is
# "closing" (the reliable delivery must be allowed to run before the tunnel is
# destroyed, sections 7.1 and 5.7; 7.6: the recipient acknowledges, then
# releases); a tunnel cleaned up without a word is "closed"; a call that is
# cleaned up is "closed" (its record is gone from the tunnel).
RFC_TUNNEL = [
    # 7.2.1 Control Connection Establishment
    ("idle", "open", "wait-ctl-reply", ["SCCRQ"]),
    ("idle", "sccrq", "wait-ctl-conn", ["SCCRP"]),
    ("idle", "sccrq-bad", "closing", ["StopCCN"]),
    ("idle", "sccrp", "closing", ["StopCCN"]),
    ("idle", "scccn", "closed", []),
    # "Send SCCCN, Send tunnel-open event to waiting sessions": the waiting LAC
    # call goes on with its ICRQ (7.4.1 wait-tunnel).
    ("wait-ctl-reply", "sccrp", "established", ["SCCCN", "ICRQ"]),
    ("wait-ctl-reply", "sccrp-bad", "closing", ["StopCCN"]),
    ("wait-ctl-reply", "lose-tie", "closed", []),
    ("wait-ctl-reply", "scccn", "closing", ["StopCCN"]),
    ("wait-ctl-conn", "scccn", "established", ["ICRQ"]),
    ("wait-ctl-conn", "scccn-bad", "closing", ["StopCCN"]),
    ("wait-ctl-conn", "sccrp", "closing", ["StopCCN"]),
    ("wait-ctl-conn", "sccrq", "closing", ["StopCCN"]),
    ("established", "close", "closing", ["StopCCN"]),
    ("established", "sccrq", "closing", ["StopCCN"]),
    ("established", "sccrp", "closing", ["StopCCN"]),
    ("established", "scccn", "closing", ["StopCCN"]),
    ("idle", "stopccn", "closing", []),
    ("wait-ctl-reply", "stopccn", "closing", []),
    ("wait-ctl-conn", "stopccn", "closing", []),
    ("established", "stopccn", "closing", []),
]

RFC_SESSION = {
    # 7.4.1 LAC Incoming Call States
    "laic": [
        ("idle", "open", "wait-tunnel", []),
        ("idle", "iccn", "closed", []),
        ("idle", "icrp", "closed", []),
        ("idle", "cdn", "closed", []),
        ("wait-tunnel", "close", "closed", []),
        ("wait-tunnel", "tunnel-open", "wait-reply", ["ICRQ"]),
        ("wait-reply", "icrp", "established", ["ICCN"]),
        ("wait-reply", "icrp-bad", "closed", ["CDN"]),
        ("wait-reply", "icrq", "closed", ["CDN"]),
        ("wait-reply", "cdn", "closed", []),
        ("wait-reply", "iccn", "closed", []),
        ("wait-reply", "close", "closed", ["CDN"]),
        ("established", "cdn", "closed", []),
        ("established", "icrq", "closed", ["CDN"]),
        ("established", "icrp", "closed", ["CDN"]),
        ("established", "iccn", "closed", ["CDN"]),
        ("established", "close", "closed", ["CDN"]),
    ],
    # 7.4.2 LNS Incoming Call States
    "lnic": [
        ("idle", "icrq", "wait-connect", ["ICRP"]),
        ("idle", "icrq-bad", "closed", ["CDN"]),
        ("idle", "icrp", "closed", ["CDN"]),
        ("idle", "iccn", "closed", []),
        ("wait-connect", "iccn", "established", []),
        ("wait-connect", "iccn-bad", "closed", ["CDN"]),
        ("wait-connect", "icrq", "closed", ["CDN"]),
        ("wait-connect", "icrp", "closed", ["CDN"]),
        ("idle", "cdn", "closed", []),
        ("wait-connect", "cdn", "closed", []),
        ("established", "cdn", "closed", []),
        ("wait-connect", "close", "closed", ["CDN"]),
        ("established", "close", "closed", ["CDN"]),
        ("established", "icrq", "closed", ["CDN"]),
        ("established", "icrp", "closed", ["CDN"]),
        ("established", "iccn", "closed", ["CDN"]),
    ],
    # 7.5.1 LAC Outgoing Call States
    "laoc": [
        ("idle", "ocrq", "wait-cs-answer", ["OCRP"]),
        ("idle", "ocrq-bad", "closed", ["CDN"]),
        ("idle", "ocrp", "closed", ["CDN"]),
        ("idle", "occn", "closed", []),
        ("idle", "cdn", "closed", []),
        ("wait-cs-answer", "bearer-up", "established", ["OCCN"]),
        ("wait-cs-answer", "close", "closed", ["CDN"]),
        ("wait-cs-answer", "ocrq", "closed", ["CDN"]),
        ("wait-cs-answer", "ocrp", "closed", ["CDN"]),
        ("wait-cs-answer", "occn", "closed", ["CDN"]),
        ("established", "ocrq", "closed", ["CDN"]),
        ("established", "ocrp", "closed", ["CDN"]),
        ("established", "occn", "closed", ["CDN"]),
        ("wait-cs-answer", "cdn", "closed", []),
        ("established", "cdn", "closed", []),
        ("established", "close", "closed", ["CDN"]),
    ],
    # 7.5.2 LNS Outgoing Call States
    "lnoc": [
        ("idle", "open", "wait-tunnel", []),
        ("idle", "occn", "closed", []),
        ("idle", "ocrp", "closed", []),
        ("idle", "cdn", "closed", []),
        ("wait-tunnel", "tunnel-open", "wait-reply", ["OCRQ"]),
        ("wait-reply", "ocrp", "wait-connect", []),
        ("wait-reply", "ocrp-bad", "closed", ["CDN"]),
        ("wait-reply", "occn", "closed", ["CDN"]),
        ("wait-reply", "ocrq", "closed", ["CDN"]),
        ("wait-connect", "occn", "established", []),
        ("wait-connect", "ocrq", "closed", ["CDN"]),
        ("wait-connect", "ocrp", "closed", ["CDN"]),
        ("wait-reply", "cdn", "closed", []),
        ("wait-connect", "cdn", "closed", []),
        ("established", "cdn", "closed", []),
        ("established", "ocrq", "closed", ["CDN"]),
        ("established", "ocrp", "closed", ["CDN"]),
        ("established", "occn", "closed", ["CDN"]),
        ("wait-reply", "close", "closed", ["CDN"]),
        ("wait-connect", "close", "closed", ["CDN"]),
        ("established", "close", "closed", ["CDN"]),
        ("wait-tunnel", "close", "closed", []),
    ],
}


def sent_names(raw, since):
    return [m.name for _, m in raw.got[since:]]


def test_tunnel_follows_the_rfc_table():
    """Each row of RFC 2661 7.2.1: the tunnel in that state, the event, then the
    state it is in and the messages that reached the peer."""
    for state, event, want, want_sent in RFC_TUNNEL:
        t = fsm.Tunnel(5, fsm.TunnelConfig(ack_delay=0), Bytes(7))
        s, _ = t.session_open(0, "laic")              # a call waiting for the tunnel
        t.state = state
        if state != "idle":
            t.peer_tunnel_id = t.channel.peer_tunnel_id = 0x1234
        raw = RawPeer(t)
        m, arg = event_input(event)
        row = (state, event)
        out = t._fire(event, 0, m, arg)
        raw.pump()
        assert t.state == want, (row, t.state, want)
        assert sent_names(raw, 0) == want_sent, (row, sent_names(raw, 0), want_sent)
        if want == "established":
            assert ("tunnel-up", 5) in out, row
            assert s.state == "wait-reply", (row, s.state)  # the tunnel-open event
        elif want in ("closing", "closed"):
            assert not t.sessions and s.state == "closed", row   # cleaned up with its calls
            assert [a for a in out if a[0] == "tunnel-down"], (row, out)
        else:
            assert s.state == "wait-tunnel", (row, s.state)
    # "established, Local Open request (new call): Send tunnel-open event to
    # waiting sessions, established": a new call goes straight on.
    t, raw = established()
    n = len(raw.got)
    s, _ = t.session_open(0, "laic")
    raw.pump()
    assert t.state == "established" and s.state == "wait-reply"
    assert sent_names(raw, n) == ["ICRQ"]


def test_sessions_follow_the_rfc_tables():
    """Each row of RFC 2661 7.4.1, 7.4.2, 7.5.1, 7.5.2 on an established tunnel."""
    for kind in ("laic", "lnic", "laoc", "lnoc"):
        for state, event, want, want_sent in RFC_SESSION[kind]:
            t, raw = established()
            s = fsm.Session(t, 100, kind)
            s.peer_session_id = 200
            s.announced = True
            t.sessions[100] = s
            s.state = state
            n = len(raw.got)
            m, arg = event_input(event)
            row = (kind, state, event)
            s._fire(event, 0, m, arg)
            raw.pump()
            assert s.state == want, (row, s.state, want)
            assert sent_names(raw, n) == want_sent, (row, sent_names(raw, n), want_sent)
            assert (100 in t.sessions) == (want != "closed"), row
            for h, _ in raw.got[n:]:
                assert h.session_id == 200, row      # to the peer's session id
            assert t.state == "established", row     # a call never takes the tunnel down
