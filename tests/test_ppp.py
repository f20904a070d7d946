"""ppp.py: the PPP engine in memory (server engine wired to a client engine, a
virtual clock, a deterministic rng), hand-built frames from the RFCs, IP pools
and the secrets format.

Runs under pytest and under MicroPython (tests/run.py): plain functions, bare
asserts, no pytest imports. CPython-only parts (pppd argv, files) are in
test_ppp_glue.py.
"""
import hashlib

import ppp
from util import Rng, raises

MPY = True

SECRETS = {"alice": "wonderland", "bob": "builder"}


def unhex(s):
    return bytes.fromhex(s.replace(" ", ""))




def server(seed=1, **kw):
    base = {"local_ipaddr": "10.0.0.1", "remote_ipaddr": "10.0.0.2",
            "secret_for": SECRETS.get}
    base.update(kw)
    return ppp.PPPEngine("server", ppp.PPPConfig(**base), Rng(seed))


def client(seed=2, **kw):
    base = {"user_name": "alice", "user_password": "wonderland"}
    base.update(kw)
    return ppp.PPPEngine("client", ppp.PPPConfig(**base), Rng(seed))


def proto_of(f):
    return (f[2] << 8) | f[3]


class Pair:
    """A server and a client engine joined by an in-memory link. `drop(direction,
    frame)` decides which frames are lost ("s>c" or "c>s")."""

    def __init__(self, s=None, c=None):
        self.s = s or server()
        self.c = c or client()
        self.now = 0
        self.sent = []     # (direction, frame), everything put on the link
        self.ev = {"s": [], "c": []}
        self.drop = None

    def start(self):
        self.s.open(self.now)
        self.c.open(self.now)
        self.transfer()
        return self

    def transfer(self):
        """Deliver frames both ways until neither side has anything to send."""
        moved = True
        while moved:
            moved = False
            for src, dst, d in ((self.s, self.c, "s>c"), (self.c, self.s, "c>s")):
                for f in src.frames_to_send(self.now):
                    moved = True
                    self.sent.append((d, f))
                    assert len(self.sent) < 20000
                    if self.drop is None or not self.drop(d, f):
                        dst.receive(f, self.now)
            self.ev["s"] += self.s.pop_events()
            self.ev["c"] += self.c.pop_events()

    def run(self, until):
        """Advance the clock deadline by deadline until `until` (ms)."""
        self.transfer()
        while True:
            ds = [d for d in (self.s.next_deadline(), self.c.next_deadline()) if d is not None]
            if not ds or min(ds) > until:
                break
            self.now = max(self.now, min(ds))
            self.s.on_timer(self.now)
            self.c.on_timer(self.now)
            self.transfer()
        self.now = max(self.now, until)

    def kinds(self, side):
        return [e[0] for e in self.ev[side]]

    def event(self, side, kind):
        for e in self.ev[side]:
            if e[0] == kind:
                return e
        return None


def lcp_frame(code, ident, data=b""):
    """An LCP packet built by hand (RFC 1661 section 5), independent of ppp.py."""
    n = len(data) + 4
    return b"\xff\x03\xc0\x21" + bytes((code, ident, n >> 8, n & 0xFF)) + data


def ipcp_frame(code, ident, data=b""):
    n = len(data) + 4
    return b"\xff\x03\x80\x21" + bytes((code, ident, n >> 8, n & 0xFF)) + data


def opened_pair(**skw):
    p = Pair(server(**skw)).start()
    assert p.s.ipcp.state == "Opened" and p.c.ipcp.state == "Opened"
    return p


# ---------------------------------------------------------------- both roles, end to end
def test_chap_success_brings_both_sides_up_with_addresses():
    p = Pair().start()
    assert p.s.state == "network" and p.c.state == "network"
    assert p.s.lcp.state == "Opened" and p.c.lcp.state == "Opened"
    assert ("auth", "alice", True) in p.ev["s"]
    up_s = p.event("s", "up")[1]
    up_c = p.event("c", "up")[1]
    assert up_s == {"local_ip": "10.0.0.1", "peer_ip": "10.0.0.2", "dns": [], "user": "alice",
                    "mru": 1500, "mtu": 1500}
    assert up_c["local_ip"] == "10.0.0.2" and up_c["peer_ip"] == "10.0.0.1"
    assert up_c["user"] == "alice" and "down" not in p.kinds("s") + p.kinds("c")
    # CHAP was used: a Challenge went out, no PAP at all.
    protos = [proto_of(f) for d, f in p.sent]
    assert 0xC223 in protos and 0xC023 not in protos
    assert p.s.next_deadline() is not None  # the CHAP re-challenge (chap_interval 10)


def test_chap_failure_downs_both_sides_with_reasons():
    p = Pair(c=client(user_password="wrong")).start()
    p.run(60000)
    assert ("auth", "alice", False) in p.ev["s"]
    assert p.event("s", "down") == ("down", "CHAP authentication of 'alice' failed")
    assert p.event("c", "down") == ("down", "CHAP: the peer refused our credentials "
                                            "(Authentication failed)")
    assert "up" not in p.kinds("s") + p.kinds("c")
    assert p.s.done and p.c.done and p.s.next_deadline() is None


def test_chap_unknown_user_fails():
    p = Pair(c=client(user_name="mallory")).start()
    p.run(60000)
    assert ("auth", "mallory", False) in p.ev["s"]
    assert p.event("s", "down")[1] == "CHAP authentication of 'mallory' failed"


def test_pap_success_when_chap_is_not_allowed():
    p = Pair(server(auth_chap=False)).start()
    assert ("auth", "alice", True) in p.ev["s"]
    assert p.event("c", "up")[1]["local_ip"] == "10.0.0.2"
    protos = [proto_of(f) for d, f in p.sent]
    assert 0xC023 in protos and 0xC223 not in protos


def test_pap_failure():
    p = Pair(server(auth_chap=False), client(user_password="nope")).start()
    p.run(60000)
    assert ("auth", "alice", False) in p.ev["s"]
    assert p.event("s", "down")[1] == "PAP authentication of 'alice' failed"
    assert p.event("c", "down")[1] == ("PAP: the peer refused our credentials "
                                       "(Authentication failed)")


def test_client_naks_chap_and_the_server_falls_back_to_pap():
    p = Pair(c=client(auth_chap=False)).start()
    assert ("auth", "alice", True) in p.ev["s"]
    assert p.s.lcp.policy.our_auth == ppp.PROTO_PAP
    naks = [f for d, f in p.sent if d == "c>s" and f[2:5] == b"\xc0\x21\x03"]
    assert naks and naks[0][8:] == unhex("0304c023")  # Nak: Auth-Protocol PAP


def test_client_without_credentials_rejects_auth_and_the_server_gives_up():
    p = Pair(c=client(user_name=None, user_password=None)).start()
    p.run(60000)
    assert p.event("s", "down")[1] == ("LCP: the peer refused to authenticate "
                                       "(Configure-Reject of Auth-Protocol)")


def test_no_auth_when_auth_none():
    p = Pair(server(auth_none=True), client(user_name=None)).start()
    assert "auth" not in p.kinds("s")
    assert p.event("s", "up")[1]["user"] is None
    assert p.event("c", "up")[1]["local_ip"] == "10.0.0.2"


def test_required_auth_with_no_method_allowed_goes_down_at_once():
    s = server(auth_chap=False, auth_pap=False)
    s.open(0)
    assert s.pop_events() == [("down", "LCP: authentication is required but neither "
                                       "auth_chap nor auth_pap is allowed")]
    assert s.frames_to_send(0) == []


def test_ip_packets_flow_once_ipcp_is_open():
    s, c = server(), client()
    c.send_ip(b"E early")
    assert c.stats["tx_ip_discards"] == 1
    p = Pair(s, c).start()
    c.send_ip(b"E\x00 packet one")
    s.send_ip(b"E\x00 packet two")
    p.transfer()
    assert ("ip", b"E\x00 packet one") in p.ev["s"]
    assert ("ip", b"E\x00 packet two") in p.ev["c"]
    assert s.stats["rx_ip_packets"] == 1 and s.stats["rx_ip_bytes"] == 13
    # The data frame is FF 03 00 21 + packet.
    assert (("c>s", b"\xff\x03\x00\x21E\x00 packet one")) in p.sent


def test_ipcp_offers_dns_and_the_client_takes_it():
    p = Pair(server(dns_ipaddr_pri="192.0.2.53", dns_ipaddr_sec="192.0.2.54")).start()
    assert p.event("c", "up")[1]["dns"] == ["192.0.2.53", "192.0.2.54"]
    assert p.event("s", "up")[1]["dns"] == ["192.0.2.53", "192.0.2.54"]


def test_ipcp_without_dns_rejects_the_clients_request():
    p = Pair().start()
    assert p.event("c", "up")[1]["dns"] == []
    assert p.c.ipcp.policy.ask == []  # the client stopped asking after the Reject
    rej = [f for d, f in p.sent if d == "s>c" and f[2:5] == b"\x80\x21\x04"]
    assert rej[0][8:] == unhex("8106 00000000 8306 00000000")


def test_address_from_a_pool_and_exhaustion_reason():
    pool = ppp.IpPool("p", "10.1.0.10", 1)
    kw = {"remote_ipaddr": None, "ip_pool_name": "p", "alloc_ip": pool.alloc}
    p1 = Pair(server(**kw)).start()
    assert p1.event("c", "up")[1]["local_ip"] == "10.1.0.10"
    assert p1.s.allocated_ip == "10.1.0.10"
    assert pool.allocated == {ppp.ip_int("10.1.0.10"): "alice"}
    p2 = Pair(server(**kw)).start()
    p2.run(60000)
    assert p2.event("s", "down") == ("down", "no address for the peer: pool p is exhausted")
    assert "up" not in p2.kinds("s") and p2.s.allocated_ip is None
    assert p2.event("c", "down") is not None
    # Released (by the glue) when the session ends, it can be handed out again.
    assert pool.free(p1.s.allocated_ip)
    p3 = Pair(server(**kw)).start()
    assert p3.event("c", "up")[1]["local_ip"] == "10.1.0.10"


def test_server_without_any_address_for_the_peer():
    p = Pair(server(remote_ipaddr=None)).start()
    p.run(60000)
    assert p.event("s", "down")[1] == ("no address for the peer: "
                                       "set remote_ipaddr or ip_pool_name")


def test_server_without_local_address_sends_no_ip_address_option():
    p = Pair(server(local_ipaddr=None)).start()
    assert p.event("s", "up")[1]["local_ip"] is None
    assert p.event("c", "up")[1] == {"local_ip": "10.0.0.2", "peer_ip": None, "dns": [],
                                     "user": "alice", "mru": 1500, "mtu": 1500}


def test_mru_and_mtu_from_the_profile():
    p = Pair(server(mru=1400, mtu=1400), client(mru=1300)).start()
    assert p.event("s", "up")[1]["mru"] == 1400 and p.event("s", "up")[1]["mtu"] == 1300
    assert p.event("c", "up")[1]["mru"] == 1300 and p.event("c", "up")[1]["mtu"] == 1400


# ---------------------------------------------------------------- LNS active, LAC passive
def test_the_lns_starts_lcp_with_the_rfc_layout():
    s = server()
    s.open(0)
    frames = s.frames_to_send(0)
    magic = Rng(1)(4)
    # FF 03, LCP, Configure-Request id 1 length 15: Auth-Protocol CHAP MD5, Magic-Number.
    assert frames == [unhex("ff03 c021 01 01 000f 0305c22305 0506") + magic]
    assert s.next_deadline() == 3000 and s.lcp.state == "Req-Sent"


def test_passive_client_waits_for_the_peer():
    c = client(passive=True)
    c.open(0)
    assert c.frames_to_send(0) == [] and c.next_deadline() is None
    assert c.lcp.state == "Stopped"
    p = Pair(server(), c)
    p.s.open(0)
    p.transfer()
    assert p.event("c", "up") is not None and p.event("s", "up") is not None
    # The client spoke only after the server: its request and its Ack together.
    assert p.sent[0][0] == "s>c"
    assert [f[4] for d, f in p.sent[1:3]] == [ppp.CONF_REQ, ppp.CONF_ACK]


def test_passive_client_closed_before_anything_happened():
    c = client(passive=True)
    c.open(0)
    c.close(5, "admin")
    assert c.pop_events() == [("down", "admin")] and c.frames_to_send(5) == []


# ---------------------------------------------------------------- option rejects, hand-built
def test_configure_reject_lists_exactly_the_unsupported_lcp_options():
    s = server()
    s.open(0)
    s.frames_to_send(0)
    opts = unhex("0104 05dc"          # MRU 1500
                 "0206 00000000"      # ACCM (RFC 1662)
                 "0506 11223344"      # Magic-Number
                 "0702"               # PFC
                 "0802"               # ACFC
                 "1104 05f4"          # MRRU (RFC 1990)
                 "1309 0102030405060" "7")  # Endpoint Discriminator, class 1
    s.receive(lcp_frame(1, 0x42, opts), 0)
    out = s.frames_to_send(0)
    rejected = unhex("0206 00000000 0702 0802 1104 05f4 1309 01020304050607")
    assert out == [lcp_frame(4, 0x42, rejected)]
    # The same request without them is acknowledged verbatim (section 5.2).
    s.receive(lcp_frame(1, 0x43, unhex("0104 05dc 0506 11223344")), 0)
    assert s.frames_to_send(0) == [lcp_frame(2, 0x43, unhex("0104 05dc 0506 11223344"))]
    assert s.lcp.state == "Ack-Sent"


def test_configure_request_with_mru_and_magic_from_the_rfc_layout():
    # RFC 1661 sections 5.1, 6.1, 6.4: our own request when the MRU is not 1500.
    c = client(mru=1400)
    c.open(0)
    magic = Rng(2)(4)
    assert c.frames_to_send(0) == [unhex("ff03 c021 01 01 000e 0104 0578 0506") + magic]


def test_small_mru_is_naked_and_after_max_failure_rejected():
    s = server(lcp_max_config_naks=3)
    s.open(0)
    s.frames_to_send(0)
    replies = []
    for i in range(5):
        s.receive(lcp_frame(1, i, unhex("0104 0040")), 0)  # MRU 64
        replies.append(s.frames_to_send(0)[0])
    assert [r[4] for r in replies] == [3, 3, 3, 4, 4]
    assert replies[0][8:] == unhex("0104 0080")  # Nak suggests 128
    assert replies[3][8:] == unhex("0104 0040")  # Reject repeats the option


def test_our_own_magic_number_is_naked_with_another():
    s = server()
    s.open(0)
    mine = s.frames_to_send(0)[0][-4:]
    s.receive(lcp_frame(1, 9, b"\x05\x06" + mine), 0)
    out = s.frames_to_send(0)[0]
    assert out[4] == ppp.CONF_NAK and out[8:10] == b"\x05\x06" and out[10:14] != mine
    s.receive(lcp_frame(1, 10, unhex("0506 00000000")), 0)  # zero is never a magic number
    out = s.frames_to_send(0)[0]
    assert out[4] == ppp.CONF_NAK and out[10:14] != b"\x00\x00\x00\x00"


def test_rejected_magic_and_mru_are_no_longer_requested():
    c = client(mru=1400)
    c.open(0)
    req = c.frames_to_send(0)[0]
    c.receive(lcp_frame(4, req[5], unhex("0104 0578") + req[12:18]), 0)
    assert c.frames_to_send(0)[0][8:] == b""  # empty Configure-Request
    assert c.lcp.policy.magic_field() == b"\x00\x00\x00\x00"


def test_client_naks_an_auth_protocol_it_cannot_do():
    c = client()
    c.open(0)
    c.frames_to_send(0)
    c.receive(lcp_frame(1, 7, unhex("0305 c223 81")), 0)  # MS-CHAPv2
    assert c.frames_to_send(0) == [lcp_frame(3, 7, unhex("0305 c22305"))]
    c2 = client(auth_chap=False)
    c2.open(0)
    c2.frames_to_send(0)
    c2.receive(lcp_frame(1, 7, unhex("0305 c223 05")), 0)
    assert c2.frames_to_send(0) == [lcp_frame(3, 7, unhex("0304 c023"))]


# ------------------------------------------------ auth methods the peer refuses (issue 10, fault 5)
def _lcp_requests(frames):
    return [f for f in frames if f[2:5] == b"\xc0\x21\x01"]


def _nak_auth_until_it_stops(s, naks, limit=12):
    """A scripted peer: answers each LCP Configure-Request of `s` with a Nak of
    Auth-Protocol, the suggestion taken in turn from `naks` (the last repeats),
    until `s` sends no more requests. -> (requests seen, the last frames)."""
    seen = []
    out = s.frames_to_send(0)
    while len(seen) < limit:
        reqs = _lcp_requests(out)
        if not reqs:
            break
        seen.append(reqs[-1])
        s.receive(lcp_frame(3, reqs[-1][5], naks[min(len(seen), len(naks)) - 1]), 0)
        out = s.frames_to_send(0)
    return seen, out


def _auth_options(reqs):
    # The Auth-Protocol option of each request, found by hand (RFC 1661 section 6).
    out = []
    for f in reqs:
        i, opts = 0, f[8:]
        while i < len(opts):
            if opts[i] == 3:
                out.append(bytes(opts[i:i + opts[i + 1]]))
            i += opts[i + 1]
    return out


def test_windows_client_wanting_mschapv2_ends_the_link_naming_it():
    # RFC 1661 section 6.2: a Nak of CHAP-MD5 (c223 05) suggesting MS-CHAPv2
    # (c223 81). We may try PAP once; the peer Naks it the same way; nothing
    # allowed is left, so the link ends at once with what the peer wanted.
    s = server()
    s.open(0)
    magic = Rng(1)(4)
    reqs, last = _nak_auth_until_it_stops(s, [unhex("0305 c223 81")])
    assert reqs == [lcp_frame(1, 1, unhex("0305 c22305 0506") + magic),
                    lcp_frame(1, 2, unhex("0304 c023 0506") + magic)]
    reason = ("LCP: the peer wants MS-CHAPv2 (CHAP algorithm 0x81), which this PPP profile"
              " does not allow (refused: CHAP-MD5, PAP)")
    # No third request: a Terminate-Request carrying the reason (section 5.5).
    assert last == [lcp_frame(5, 3, reason.encode())]
    s.receive(lcp_frame(6, 3), 0)
    assert s.pop_events() == [("down", reason)]
    assert s.done and s.next_deadline() is None


def test_chap_only_server_gives_up_after_the_first_mschapv2_nak():
    s = server(auth_pap=False)
    s.open(0)
    reqs, last = _nak_auth_until_it_stops(s, [unhex("0305 c223 81")])
    assert _auth_options(reqs) == [unhex("0305 c22305")]
    assert last[0][2:5] == b"\xc0\x21\x05" and len(last) == 1
    s.receive(lcp_frame(6, last[0][5]), 0)
    assert s.pop_events() == [("down", "LCP: the peer wants MS-CHAPv2 (CHAP algorithm 0x81),"
                                       " which this PPP profile does not allow"
                                       " (refused: CHAP-MD5)")]


def test_a_peer_flipping_between_methods_is_never_offered_one_twice():
    # CHAP-MD5 Nak'd to PAP, then PAP Nak'd back to CHAP-MD5: both are refused.
    s = server()
    s.open(0)
    reqs, last = _nak_auth_until_it_stops(s, [unhex("0304 c023"), unhex("0305 c22305")])
    assert _auth_options(reqs) == [unhex("0305 c22305"), unhex("0304 c023")]
    s.receive(lcp_frame(6, last[0][5]), 0)
    assert s.pop_events() == [("down", "LCP: the peer wants CHAP-MD5, which it refused before"
                                       " (refused: CHAP-MD5, PAP)")]


def test_naks_name_eap_ms_chap_and_unknown_methods():
    for sugg, name in (("0304 c227", "EAP"), ("0305 c223 80", "MS-CHAP (CHAP algorithm 0x80)"),
                       ("0305 c223 06", "CHAP algorithm 0x06"),
                       ("0304 c481", "authentication protocol 0xc481")):
        s = server(auth_pap=False)
        s.open(0)
        reqs, last = _nak_auth_until_it_stops(s, [unhex(sugg)])
        assert len(reqs) == 1
        s.receive(lcp_frame(6, last[0][5]), 0)
        assert s.pop_events() == [("down", f"LCP: the peer wants {name}, which this PPP"
                                           " profile does not allow (refused: CHAP-MD5)")]


def test_authenticatee_naks_once_and_ends_when_the_peer_insists():
    # RFC 1661 section 5.1: a new request after our Nak has a new Identifier; the
    # same Identifier is a retransmission (our Nak may be lost) and is Nak'd again.
    c = client()
    c.open(0)
    c.frames_to_send(0)
    c.receive(lcp_frame(1, 7, unhex("0305 c223 81")), 0)
    assert c.frames_to_send(0) == [lcp_frame(3, 7, unhex("0305 c22305"))]
    c.receive(lcp_frame(1, 7, unhex("0305 c223 81")), 0)
    assert c.frames_to_send(0) == [lcp_frame(3, 7, unhex("0305 c22305"))]
    c.receive(lcp_frame(1, 8, unhex("0305 c223 81")), 0)
    out = c.frames_to_send(0)
    reason = ("LCP: the peer requires us to authenticate with MS-CHAPv2 (CHAP algorithm 0x81),"
              " which this PPP profile does not allow")
    assert len(out) == 1 and out[0][2:5] == b"\xc0\x21\x05" and out[0][8:] == reason.encode()
    c.receive(lcp_frame(6, out[0][5]), 0)
    assert c.pop_events() == [("down", reason)]


def test_authenticatee_without_credentials_ends_when_auth_is_asked_again():
    c = client(user_name=None, user_password=None)
    c.open(0)
    c.frames_to_send(0)
    c.receive(lcp_frame(1, 1, unhex("0305 c22305")), 0)
    assert c.frames_to_send(0) == [lcp_frame(4, 1, unhex("0305 c22305"))]
    c.receive(lcp_frame(1, 2, unhex("0305 c22305")), 0)
    out = c.frames_to_send(0)
    assert len(out) == 1 and out[0][2:5] == b"\xc0\x21\x05"
    c.receive(lcp_frame(6, out[0][5]), 0)
    assert c.pop_events() == [("down", "LCP: the peer requires us to authenticate with CHAP-MD5,"
                                       " and we have no credentials (user_name)")]


# ------------------------------------------------ proxy LCP and authentication (RFC 2661 4.4.5)
# A LAC that ran LCP and PAP/CHAP with the user forwards the result in its ICCN:
# the options of the last Configure-Requests each way, and the credentials.
# Expected answers are built here by hand from RFC 1994/1334 with hashlib.
LAC_MAGIC = unhex("0a0b0c0d")
CHAP_ID = 0x37
CHAP_VALUE = bytes(range(16, 32))


def proxied_server(logs=None, **kw):
    base = {"local_ipaddr": "10.0.0.1", "remote_ipaddr": "10.0.0.2",
            "secret_for": SECRETS.get}
    base.update(kw)
    return ppp.PPPEngine("server", ppp.PPPConfig(**base), Rng(1),
                         logs.append if logs is not None else None)


def chap_proxy(password="wonderland", user="alice", **extra):
    # RFC 1994 section 4.1: Response Value = MD5(Identifier | secret | Challenge).
    value = hashlib.md5(bytes((CHAP_ID,)) + password.encode() + CHAP_VALUE).digest()
    d = {"last_sent_lcp_confreq": unhex("0305 c22305 0506") + LAC_MAGIC,
         "last_received_lcp_confreq": unhex("0104 05d4 0506 01020304"),
         "initial_received_lcp_confreq": unhex("0104 05d4 0206 00000000 0506 01020304"),
         "proxy_authen_type": 2, "proxy_authen_name": user,
         "proxy_authen_challenge": CHAP_VALUE, "proxy_authen_id": CHAP_ID,
         "proxy_authen_response": value}
    d.update(extra)
    return d


def pap_proxy(password=b"builder", **extra):
    d = {"last_sent_lcp_confreq": unhex("0304 c023 0506") + LAC_MAGIC,
         "last_received_lcp_confreq": unhex("0506 01020304"),
         "proxy_authen_type": 3, "proxy_authen_name": "bob", "proxy_authen_id": 5,
         "proxy_authen_response": password}
    d.update(extra)
    return d


OUR_IPCP_REQ = ipcp_frame(1, 1, unhex("0306 0a000001"))  # RFC 1332 IP-Address 10.0.0.1


def finish_ipcp(s):
    """The peer's side of IPCP by hand: Ack our request, ask for 10.0.0.2."""
    s.receive(ipcp_frame(2, 1, unhex("0306 0a000001")), 0)
    s.receive(ipcp_frame(1, 0x61, unhex("0306 0a000002")), 0)
    assert s.frames_to_send(0) == [ipcp_frame(2, 0x61, unhex("0306 0a000002"))]
    return [e for e in s.pop_events() if e[0] == "up"]


def test_proxied_lcp_is_taken_and_ipcp_starts_at_once():
    logs = []
    s = proxied_server(logs, auth_none=True, lcp_echo_interval=5)
    s.open(0, proxy={"last_sent_lcp_confreq": unhex("0506") + LAC_MAGIC,
                     "last_received_lcp_confreq": unhex("0104 05d4 0506 01020304"),
                     "proxy_authen_type": 4})
    # No LCP Configure-Request: the first frame is IPCP's (RFC 1661 section 3.6).
    assert s.frames_to_send(0) == [OUR_IPCP_REQ]
    assert s.lcp.state == "Opened" and s.state == "network"
    assert any(m.startswith("proxy: LCP taken from the LAC") for m in logs)
    # The peer's MRU 1492 bounds what we send; mru 1500: the LAC asked none.
    assert finish_ipcp(s) == [("up", {"local_ip": "10.0.0.1", "peer_ip": "10.0.0.2", "dns": [],
                                      "user": None, "mru": 1500, "mtu": 1492})]
    # Our magic number is the one the LAC gave the peer (section 6.4, Echo).
    s.on_timer(5000)
    assert s.frames_to_send(5000) == [lcp_frame(9, 1, LAC_MAGIC)]


def _expect_fresh_lcp(proxy, why, **kw):
    logs = []
    s = proxied_server(logs, **kw)
    s.open(0, proxy=proxy)
    out = s.frames_to_send(0)
    assert [f[2:5] for f in out] == [b"\xc0\x21\x01"], out  # an LCP Configure-Request
    assert s.lcp.state == "Req-Sent" and s.state == "establish"
    said = [m for m in logs if m.startswith("proxy: negotiating LCP afresh: ")]
    assert len(said) == 1 and why in said[0], (said, why)
    return s, out[0]


def test_proxied_lcp_with_an_option_we_reject_is_renegotiated():
    # ACCM (2) in the peer's last request: we Configure-Reject it ourselves.
    s, req = _expect_fresh_lcp(chap_proxy(last_received_lcp_confreq=unhex(
        "0206 00000000 0506 01020304")), "ACCM")
    assert req == lcp_frame(1, 1, unhex("0305 c22305 0506") + Rng(1)(4))


def test_proxied_lcp_with_a_small_mru_is_renegotiated():
    _expect_fresh_lcp(chap_proxy(last_received_lcp_confreq=unhex("0104 0040")), "MRU")


def test_proxied_lcp_the_lac_asked_more_of_is_renegotiated():
    # PFC (7) in the LAC's request: more than we ask for ourselves.
    _expect_fresh_lcp(chap_proxy(last_sent_lcp_confreq=unhex("0305 c22305 0702")), "PFC")
    # The same magic number both ways: a looped-back link (RFC 1661 section 6.4).
    _expect_fresh_lcp(chap_proxy(last_sent_lcp_confreq=unhex("0305 c22305 0506 01020304"),
                                 last_received_lcp_confreq=unhex("0506 01020304")),
                      "Magic-Number")


def test_proxied_lcp_with_an_auth_method_we_do_not_allow_is_renegotiated():
    _expect_fresh_lcp(chap_proxy(last_sent_lcp_confreq=unhex("0305 c22381")), "MS-CHAPv2")
    _expect_fresh_lcp(pap_proxy(), "PAP", auth_pap=False)


def test_proxied_lcp_without_authentication_is_renegotiated_when_we_require_it():
    _expect_fresh_lcp({"last_sent_lcp_confreq": unhex("0506") + LAC_MAGIC,
                       "last_received_lcp_confreq": unhex("0506 01020304"),
                       "proxy_authen_type": 4}, "no authentication")


def test_proxy_authen_type_must_match_the_agreed_method_and_bring_its_avps():
    _expect_fresh_lcp(chap_proxy(proxy_authen_type=3), "does not match")
    p = chap_proxy()
    del p["proxy_authen_id"]
    _expect_fresh_lcp(p, "Proxy Authen ID")
    _expect_fresh_lcp(chap_proxy(proxy_authen_challenge=b""), "Proxy Authen Challenge")
    _expect_fresh_lcp({"proxy_authen_type": 2}, "no proxied LCP")


def test_proxied_chap_is_verified_and_the_peer_goes_straight_to_ipcp():
    logs = []
    s = proxied_server(logs)
    s.open(0, proxy=chap_proxy())
    # RFC 1994 section 4.2: Success with the LAC's Identifier, then IPCP; no LCP.
    assert s.frames_to_send(0) == [unhex("ff03 c223 03 37 0011") + b"Authenticated", OUR_IPCP_REQ]
    assert s.pop_events() == [("auth", "alice", True)]
    assert s.lcp.state == "Opened" and s.lcp.policy.our_auth == ppp.PROTO_CHAP
    assert any("checking the proxied CHAP-MD5 credentials of alice" in m for m in logs)
    up = finish_ipcp(s)
    assert up[0][1]["user"] == "alice" and up[0][1]["mtu"] == 1492
    # Re-challenge after chap_interval (10 s) with the next Identifier (section 2).
    s.on_timer(10000)
    chal = s.frames_to_send(10000)
    assert len(chal) == 1 and chal[0][2:6] == unhex("c223 01 38")


def test_proxied_chap_with_a_wrong_response_ends_the_link_naming_the_user():
    s = proxied_server()
    s.open(0, proxy=chap_proxy(password="guess"))
    out = s.frames_to_send(0)
    assert out[0] == unhex("ff03 c223 04 37 0019") + b"Authentication failed"
    assert [f[2:5] for f in out[1:]] == [b"\xc0\x21\x05"]  # Terminate-Request, no IPCP
    assert s.pop_events() == [("auth", "alice", False)]
    s.receive(lcp_frame(6, out[1][5]), 0)
    (down,) = s.pop_events()
    assert down == ("down", "proxy authentication failed for user alice"
                            " (the proxied CHAP credentials do not match the secret)")


def test_proxied_chap_of_an_unknown_user_fails():
    s = proxied_server()
    s.open(0, proxy=chap_proxy(user="mallory"))
    assert s.frames_to_send(0)[0][4] == ppp.CHAP_FAILURE
    assert s.pop_events() == [("auth", "mallory", False)]
    assert s.reason == "proxy authentication failed for user mallory (no secret for this user)"


def test_proxied_pap_is_verified():
    s = proxied_server()
    s.open(0, proxy=pap_proxy())
    # RFC 1334 section 2.2.2: Authenticate-Ack with the Request's Identifier.
    assert s.frames_to_send(0) == [unhex("ff03 c023 02 05 0012 0d") + b"Authenticated",
                                   OUR_IPCP_REQ]
    assert s.pop_events() == [("auth", "bob", True)]
    assert finish_ipcp(s)[0][1]["user"] == "bob"


def test_proxied_pap_without_an_id_is_answered_when_the_peer_asks_again():
    # Without Proxy Authen ID we cannot address an Ack; the peer retransmits its
    # Authenticate-Request (RFC 1334 section 2.2.1) and gets our answer then.
    p = pap_proxy()
    del p["proxy_authen_id"]
    s = proxied_server()
    s.open(0, proxy=p)
    assert s.frames_to_send(0) == [OUR_IPCP_REQ]
    assert s.pop_events() == [("auth", "bob", True)]
    s.receive(unhex("ff03 c023 01 09 0010 03") + b"bob" + b"\x07" + b"builder", 0)
    assert s.frames_to_send(0) == [unhex("ff03 c023 02 09 0012 0d") + b"Authenticated"]

def test_proxied_pap_with_a_wrong_password_ends_the_link():
    s = proxied_server()
    s.open(0, proxy=pap_proxy(password=b"wrecker"))
    out = s.frames_to_send(0)
    assert out[0] == unhex("ff03 c023 03 05 001a 15") + b"Authentication failed"
    assert [f[2:5] for f in out[1:]] == [b"\xc0\x21\x05"]
    assert s.pop_events() == [("auth", "bob", False)]
    s.receive(lcp_frame(6, out[1][5]), 0)
    assert s.pop_events()[0][1].startswith("proxy authentication failed for user bob")


def test_proxy_authen_type_none_runs_our_own_chap_over_the_proxied_lcp():
    s = proxied_server()
    p = chap_proxy(proxy_authen_type=4)
    for k in ("proxy_authen_name", "proxy_authen_challenge", "proxy_authen_id",
              "proxy_authen_response"):
        del p[k]
    s.open(0, proxy=p)
    (chal,) = s.frames_to_send(0)  # our Challenge (RFC 1994 section 4.1), no LCP
    assert chal[2:5] == unhex("c223 01") and chal[8] == 16
    ident, value = chal[5], chal[9:25]
    digest = hashlib.md5(bytes((ident,)) + b"builder" + value).digest()
    s.receive(unhex("ff03 c223 02") + bytes((ident,)) + unhex("0018 10") + digest + b"bob", 0)
    assert s.frames_to_send(0) == [unhex("ff03 c223 03") + bytes((ident,)) + unhex("0011")
                                   + b"Authenticated", OUR_IPCP_REQ]
    assert s.pop_events() == [("auth", "bob", True)]


def test_only_the_server_takes_a_proxy():
    c = client()
    e = raises(ppp.PPPError, c.open, 0, proxy=chap_proxy())
    assert "server" in e.msg and c.frames_to_send(0) == []


def test_ipcp_rejects_compression_and_unknown_options_and_appends_the_address():
    p = opened_pair()
    s = p.s
    s.receive(ipcp_frame(1, 0x11, unhex("0206 002d0f01 0306 0a000002 9906 01020304")), 0)
    # A Configure-Request in Opened renegotiates (tld, scr, scn: RFC 1661 4.1).
    out = s.frames_to_send(0)
    assert out[0][4] == ppp.CONF_REQ and s.ipcp.state == "Req-Sent"
    assert out[1:] == [ipcp_frame(4, 0x11, unhex("0206 002d0f01 9906 01020304"))]
    # A request without IP-Address gets a Nak that adds it (RFC 1661 section 5.3).
    s.receive(ipcp_frame(1, 0x12, b""), 0)
    assert s.frames_to_send(0) == [ipcp_frame(3, 0x12, unhex("0306 0a000002"))]
    p.run(p.now + 10000)  # the retransmitted request reaches the client; both open again
    assert p.s.ipcp.state == "Opened" and p.kinds("s").count("up") == 2


def test_ipcp_naks_a_wrong_address_with_the_assigned_one():
    p = opened_pair()
    p.s.receive(ipcp_frame(1, 0x20, unhex("0306 c0a80001")), 0)
    assert p.s.frames_to_send(0)[1:] == [ipcp_frame(3, 0x20, unhex("0306 0a000002"))]


# ---------------------------------------------------------------- PAP and CHAP byte vectors
def test_pap_authenticate_request_from_the_rfc_layout():
    # RFC 1334 section 2.2.1: Code 1, Id, Length, Peer-ID Length, Peer-ID,
    # Passwd-Length, Password.
    c = client()
    c.open(0)
    req = c.frames_to_send(0)[0]
    c.receive(lcp_frame(1, 1, unhex("0304 c023")), 0)
    assert c.frames_to_send(0) == [lcp_frame(2, 1, unhex("0304 c023"))]
    c.receive(lcp_frame(2, req[5], req[8:]), 0)
    assert c.lcp.state == "Opened"
    out = c.frames_to_send(0)
    assert out == [unhex("ff03 c023 01 01 0015 05") + b"alice" + b"\x0a" + b"wonderland"]
    c.receive(unhex("ff03 c023 02 01 0005 00"), 0)  # Authenticate-Ack, empty message
    assert not c.authenticatee.pending and c.state == "network"


def test_chap_response_checked_with_hashlib():
    c = client()
    c.open(0)
    req = c.frames_to_send(0)[0]
    c.receive(lcp_frame(1, 1, unhex("0305 c22305")), 0)
    c.receive(lcp_frame(2, req[5], req[8:]), 0)
    c.frames_to_send(0)
    value = bytes(range(16))
    # RFC 1994 section 4.1: Challenge id 0x2a, Value-Size 16, Value, Name "lns".
    c.receive(unhex("ff03 c223 01 2a 0018 10") + value + b"lns", 0)
    digest = hashlib.md5(b"\x2a" + b"wonderland" + value).digest()
    assert c.frames_to_send(0) == [unhex("ff03 c223 02 2a 001a 10") + digest + b"alice"]
    c.receive(unhex("ff03 c223 03 2a 0004"), 0)  # Success
    assert not c.authenticatee.pending


def test_chap_server_verifies_a_hand_computed_response():
    s = server()
    s.open(0)
    req = s.frames_to_send(0)[0]
    s.receive(lcp_frame(1, 1, unhex("0506 01020304")), 0)
    s.receive(lcp_frame(2, req[5], req[8:]), 0)
    chal = s.frames_to_send(0)[-1]
    assert chal[2:5] == b"\xc2\x23\x01" and chal[8] == 16 and chal[25:] == b"l2tpd"
    ident, value = chal[5], chal[9:25]
    digest = hashlib.md5(bytes((ident,)) + b"builder" + value).digest()
    resp = unhex("ff03 c223 02") + bytes((ident,)) + unhex("0018 10") + digest + b"bob"
    s.receive(resp, 0)
    assert s.frames_to_send(0)[0][2:6] == unhex("c223 03") + bytes((ident,))
    assert ("auth", "bob", True) in s.pop_events()
    # A repeated Response (our Success lost) gets the same answer (RFC 1994 4.1).
    s.receive(resp, 0)
    assert s.frames_to_send(0)[0][4] == ppp.CHAP_SUCCESS


def test_chap_rechallenge_keeps_the_link_and_a_wrong_answer_ends_it():
    p = Pair(server(chap_interval=10)).start()
    challenges = sum(1 for d, f in p.sent if f[2:5] == b"\xc2\x23\x01")
    p.run(25000)
    assert sum(1 for d, f in p.sent if f[2:5] == b"\xc2\x23\x01") == challenges + 2
    assert "down" not in p.kinds("s") and p.kinds("s").count("auth") == 1
    p.c.cfg.user_password = "changed"
    p.run(60000)
    assert p.event("s", "down")[1] == "CHAP authentication of 'alice' failed"


def test_chap_challenge_retransmitted_then_give_up():
    p = Pair(server(chap_max_challenge=3, chap_restart=2))
    p.drop = lambda d, f: f[2:4] == b"\xc2\x23"  # every CHAP packet lost
    p.start()
    p.run(60000)
    sent = [f for d, f in p.sent if f[2:5] == b"\xc2\x23\x01"]
    assert len(sent) == 3 and sent[0] == sent[1]  # a retransmission is the same Challenge
    assert p.event("s", "down")[1] == "CHAP: no Response to 3 Challenges"


def test_pap_client_retries_then_gives_up():
    p = Pair(server(auth_chap=False), client(pap_max_auth_requests=4, pap_restart_interval=2))
    p.drop = lambda d, f: d == "s>c" and f[2:4] == b"\xc0\x23"  # the server's answers are lost
    p.start()
    p.run(60000)
    reqs = [f for d, f in p.sent if d == "c>s" and f[2:5] == b"\xc0\x23\x01"]
    assert len(reqs) == 4 and len({r[5] for r in reqs}) == 4  # a new Identifier each time
    assert p.event("c", "down")[1] == "PAP: no answer to 4 Authenticate-Requests"


def test_pap_server_timeout():
    p = Pair(server(auth_chap=False, pap_timeout=5))
    p.drop = lambda d, f: f[2:4] == b"\xc0\x23"
    p.start()
    p.run(60000)
    assert p.event("s", "down")[1] == "PAP: no Authenticate-Request within 5 s"


# ---------------------------------------------------------------- keepalive, timers, termination
def test_echo_keeps_a_live_link_and_detects_a_dead_peer():
    p = Pair(server(lcp_echo_interval=10, lcp_echo_failure_count=3,
                    chap_interval=0)).start()
    p.run(100000)
    assert "down" not in p.kinds("s")
    assert p.s.stats["tx_echo_requests"] == 10 and p.s.stats["rx_echo_replies"] == 10
    p.drop = lambda d, f: d == "c>s"  # the peer stops answering
    p.run(200000)
    down = p.event("s", "down")
    assert down == ("down", "the peer did not answer 3 LCP Echo-Requests")
    # Three more Echo-Requests went unanswered, then the link was terminated
    # (3 Terminate-Requests, 3 s apart).
    assert p.s.stats["tx_echo_requests"] == 13
    terms = [f for d, f in p.sent if d == "s>c" and f[2:5] == b"\xc0\x21\x05"]
    assert len(terms) == 3 and terms[0][8:] == b"the peer did not answer 3 LCP Echo-Requests"


def test_echo_request_is_answered_with_our_magic_number():
    p = opened_pair()
    p.s.receive(lcp_frame(9, 0x33, unhex("01020304 cafe")), 0)
    magic = p.s.lcp.policy.magic.to_bytes(4, "big")
    assert p.s.frames_to_send(0) == [lcp_frame(10, 0x33, magic + b"\xca\xfe")]


def test_max_configure_exhaustion():
    s = server()
    s.open(0)
    times = []
    now = 0
    while s.next_deadline() is not None:
        out = s.frames_to_send(now)
        times += [now] * len([f for f in out if f[4] == ppp.CONF_REQ])
        now = s.next_deadline()
        s.on_timer(now)
    assert times == [i * 3000 for i in range(10)]
    assert s.pop_events() == [("down", "no answer to 10 Configure-Requests")]
    assert now == 30000 and s.state == "dead"


def test_ipcp_max_configure_exhaustion_closes_the_link():
    p = Pair(server(ipcp_max_config_requests=2))
    p.drop = lambda d, f: d == "c>s" and f[2:4] == b"\x80\x21"  # the client's IPCP is lost
    p.start()
    p.run(120000)
    assert p.event("s", "down")[1] == "IPCP: no answer to 2 Configure-Requests"


def test_terminate_from_the_client():
    p = Pair().start()
    p.c.close(p.now, "user request")
    p.transfer()
    assert p.event("c", "down") == ("down", "user request")
    term = [f for d, f in p.sent if d == "c>s" and f[2:5] == b"\xc0\x21\x05"][0]
    assert term[8:] == b"user request"
    assert p.event("s", "down") is None  # the server pauses one restart period (zrc)
    p.run(p.now + 3000)
    assert p.event("s", "down") == ("down", "the peer sent Terminate-Request (user request)")
    assert p.s.state == "dead" and p.c.state == "dead"


def test_terminate_from_the_server_and_a_lost_ack():
    p = Pair().start()
    p.drop = lambda d, f: d == "c>s"
    p.s.close(0, "administrative shutdown")
    p.run(60000)
    terms = [f for d, f in p.sent if d == "s>c" and f[2:5] == b"\xc0\x21\x05"]
    assert len(terms) == 3  # lcp_max_terminate_requests
    assert p.event("s", "down") == ("down", "administrative shutdown")
    assert p.s.next_deadline() is None


def test_down_is_reported_once():
    p = Pair().start()
    p.c.close(0, "bye")
    p.c.close(0, "again")
    p.run(60000)
    assert p.kinds("c").count("down") == 1 and p.kinds("s").count("down") == 1
    p.s.receive(lcp_frame(1, 1, b""), p.now)  # a dead engine ignores input
    assert p.s.frames_to_send(p.now) == []


def test_idle_timeout_and_max_connect_time():
    p = Pair(server(idle_timeout=30, chap_interval=0)).start()
    p.run(20000)
    p.c.send_ip(b"E keep me")
    p.run(45000)
    assert p.event("s", "down") is None
    p.run(60000)
    assert p.event("s", "down")[1] == "idle for 30 s"
    q = Pair(server(max_connect_time=100, chap_interval=0)).start()
    q.run(99000)
    assert q.event("s", "down") is None
    q.run(200000)
    assert q.event("s", "down")[1] == "maximum connect time of 100 s reached"


# ---------------------------------------------------------------- rejects of protocols and codes
def test_protocol_reject_for_ipv6cp_and_ccp_once_lcp_is_open():
    s = server()
    s.open(0)
    s.frames_to_send(0)
    s.receive(unhex("ff03 8057 01 01 0004"), 0)  # before LCP is open: silently dropped
    assert s.frames_to_send(0) == [] and s.stats["rx_discards"] == 1
    p = opened_pair()
    p.s.receive(unhex("ff03 8057 01 01 000e 010a 0011223344556677"), 0)
    p.s.receive(unhex("ff03 80fd 01 02 0004"), 0)
    out = p.s.frames_to_send(0)
    assert [f[4] for f in out] == [ppp.PROTO_REJ, ppp.PROTO_REJ]
    # Section 5.7: the rejected protocol, then the rejected information field.
    assert out[0][8:] == unhex("8057 01 01 000e 010a 0011223344556677")
    assert out[1][8:] == unhex("80fd 01 02 0004")
    assert p.s.stats["tx_protocol_rejects"] == 2


def test_peer_protocol_rejects_ipcp():
    p = opened_pair()
    p.s.receive(lcp_frame(8, 5, unhex("8021 0101 0004")), p.now)
    p.run(60000)
    assert p.event("s", "down")[1] == "IPCP: the peer rejected IPCP (Protocol-Reject)"


def test_unknown_lcp_code_gets_a_code_reject_and_identification_is_ignored():
    p = opened_pair()
    p.s.receive(lcp_frame(12, 1, b"\x00\x00\x00\x00MSRASV5.20"), 0)  # RFC 1570
    assert p.s.frames_to_send(0) == []
    p.s.receive(lcp_frame(14, 2, b"xyz"), 0)
    out = p.s.frames_to_send(0)
    assert len(out) == 1 and out[0][4] == ppp.CODE_REJ
    assert out[0][8:] == unhex("0e 02 0007") + b"xyz"  # the whole rejected packet
    assert p.s.lcp.state == "Opened"


def test_code_reject_of_echo_stops_the_keepalive():
    p = Pair(server(lcp_echo_interval=5, lcp_echo_failure_count=2, chap_interval=0)).start()
    p.s.receive(lcp_frame(7, 1, unhex("09 01 0008 00000000")), 0)
    assert p.s.echo_deadline is None and p.s.lcp.state == "Opened"
    p.run(60000)
    assert p.event("s", "down") is None


def test_code_reject_of_configure_request_is_fatal():
    p = opened_pair()
    p.s.receive(lcp_frame(7, 1, unhex("01 01 0004")), 0)
    p.run(60000)
    assert p.event("s", "down")[1] == "the peer rejected LCP code 1"


# ---------------------------------------------------------------- frame forms and totality
def test_frames_without_address_control_and_with_compressed_protocol():
    p = opened_pair()
    p.s.receive(b"\x00\x21E no ff03", 0)
    p.s.receive(b"\x21E pfc", 0)
    p.s.receive(b"\xff\x03\x21E both", 0)
    assert p.s.pop_events() == [("ip", b"E no ff03"), ("ip", b"E pfc"), ("ip", b"E both")]
    assert ppp.split_frame(b"\xff\x05\x00\x21") is None  # FF without 03
    assert ppp.split_frame(b"\xff\x03\x00\x20") is None  # even low octet
    assert ppp.split_frame(b"\xff\x03") is None and ppp.split_frame(b"") is None


def test_memoryview_frames_are_accepted():
    s, c = server(), client()
    s.open(0)
    c.open(0)
    for _ in range(10):
        for src, dst in ((s, c), (c, s)):
            for f in src.frames_to_send(0):
                dst.receive(memoryview(bytearray(f)), 0)
    assert s.ipcp.state == "Opened" and c.ipcp.state == "Opened"


def _session_frames():
    p = Pair(server(dns_ipaddr_pri="192.0.2.1", lcp_echo_interval=5)).start()
    p.c.send_ip(b"E\x00data")
    p.run(12000)
    q = Pair(server(auth_chap=False)).start()
    return [f for d, f in p.sent + q.sent]


def _feed(engines, data):
    for e in engines:
        e.receive(data, 1)
        e.frames_to_send(1)
        e.pop_events()


def test_every_truncation_of_every_frame_is_handled():
    frames = _session_frames()
    assert len(frames) > 20
    for f in frames:
        engines = [server(), client(), opened_pair().s, opened_pair().c]
        for e in engines[:2]:
            e.open(0)
        for cut in range(len(f)):
            _feed(engines, f[:cut])
            # Also a truncated packet behind an honest length (fixed-up header).
            if cut > 8:
                body = f[4:cut]
                fixed = f[:6] + bytes(((len(body)) >> 8, len(body) & 0xFF)) + f[8:cut]
                _feed(engines, fixed)
        assert sum(e.stats["rx_malformed"] for e in engines) > 0


def test_random_bytes_and_bit_flips_are_handled():
    rng = Rng(99)
    frames = _session_frames()
    engines = [opened_pair().s, opened_pair().c]
    for f in frames:
        for _ in range(20):
            r = rng(2)
            j = r[0] % len(f)
            flipped = bytearray(f)
            flipped[j] ^= 1 << (r[1] & 7)
            _feed(engines, bytes(flipped))
    for _ in range(300):
        junk = rng(rng(1)[0])
        _feed(engines, junk)
        _feed(engines, b"\xff\x03\xc0\x21" + junk)
        _feed(engines, b"\xff\x03\x80\x21" + junk)
        _feed(engines, b"\xff\x03\xc2\x23" + junk)
        _feed(engines, b"\xff\x03\xc0\x23" + junk)
    assert engines[0].stats["rx_malformed"] > 0


def test_malformed_options_and_auth_packets_are_counted():
    p = opened_pair()
    before = p.s.stats["rx_malformed"]
    p.s.receive(lcp_frame(1, 1, unhex("0101")), 0)        # option length 1
    p.s.receive(lcp_frame(1, 1, unhex("0108 0000")), 0)   # option past the end
    p.s.receive(unhex("ff03 c021 01 01 0010 0000"), 0)     # Length past the frame
    p.s.receive(unhex("ff03 c223 02 01 0008 0500"), 0)     # Value-Size past the end
    assert p.s.stats["rx_malformed"] == before + 4
    assert p.s.lcp.state == "Opened" and p.s.frames_to_send(0) == []


# ---------------------------------------------------------------- the automaton as a table
STATES = ("Initial", "Starting", "Closed", "Stopped", "Closing", "Stopping",
          "Req-Sent", "Ack-Rcvd", "Ack-Sent", "Opened")
EVENTS = ("Up", "Down", "Open", "Close", "TO+", "TO-", "RCR+", "RCR-", "RCA", "RCN",
          "RTR", "RTA", "RUC", "RXJ+", "RXJ-", "RXR")


def test_table_has_every_legal_cell_of_rfc1661():
    # 160 cells minus the "-" cells: Up (8 states), Down (Initial, Starting),
    # TO+/TO- (Initial..Stopped and Opened: 5 each), and the ten receive events
    # in Initial and Starting (20).
    rfc = [k for k in ppp.FSM if k[1] != "Up-silent"]
    assert len(rfc) == 160 - 8 - 2 - 10 - 20
    for state, event in rfc:
        assert state in STATES and event in EVENTS
    assert ppp.FSM[("Opened", "RTR")] == (("act_tld", "act_zrc", "act_sta"), "Stopping")
    assert ppp.FSM[("Ack-Sent", "RCA")] == (("act_irc", "act_tlu"), "Opened")


def _automaton(state):
    pol = ppp.LcpPolicy("server", ppp.PPPConfig(auth_none=True), Rng(5))
    a = ppp.Automaton("LCP", ppp.PROTO_LCP, pol, 10, 5, 2, 3, stats={"illegal_events": 0})
    a.state = state
    a.restart = 2
    a.verdict = []
    return a


def test_every_state_and_event():
    pkt = (ppp.CONF_REQ, 7, b"", b"\x01\x07\x00\x04")
    for state in STATES:
        for event in EVENTS:
            a = _automaton(state)
            out = a.event(event, 1000, pkt)
            row = ppp.FSM.get((state, event))
            if row is None:
                assert a.state == state and out == [] and a.illegal == 1
                assert a.stats["illegal_events"] == 1
                continue
            assert a.state == row[1], (state, event)
            names = [o for o in out if isinstance(o, str)]
            assert names == [x[4:] for x in row[0] if x[4:] in ("tlu", "tld", "tls", "tlf")]
            frames = [o for o in out if not isinstance(o, str)]
            sends = [x for x in row[0] if x in ("act_scr", "act_sca", "act_scn", "act_str",
                                                 "act_sta", "act_scj")]
            assert len(frames) == len(sends), (state, event)
            # Section 4.1: the Restart timer runs exactly in the states with TO events.
            if a.state in ("Closing", "Stopping", "Req-Sent", "Ack-Rcvd", "Ack-Sent"):
                if "act_scr" in row[0] or "act_str" in row[0] or "act_zrc" in row[0]:
                    assert a.deadline == 4000
            else:
                assert a.deadline is None


def test_restart_counter_decides_between_to_plus_and_to_minus():
    a = _automaton("Initial")
    a.event("Open", 0)
    a.event("Up", 0)
    assert a.state == "Req-Sent" and a.restart == 9
    now = 0
    for _ in range(9):
        now = a.deadline
        a.on_timer(now)
        assert a.state == "Req-Sent"
    assert a.restart == 0
    out = a.on_timer(a.deadline)
    assert out == ["tlf"] and a.state == "Stopped"


# ---------------------------------------------------------------- configuration
def test_config_defaults_are_openl2tps_and_unknown_names_are_kept_aside():
    c = ppp.PPPConfig(asyncmap=0, use_radius=False, mru=None, lcp_echo_interval=None)
    assert c.mru == 1500 and c.lcp_echo_interval == 0 and c.lcp_max_config_requests == 10
    assert c.chap_interval == 10 and c.pap_restart_interval == 3
    assert c.ignored == ["asyncmap", "use_radius"]


def test_config_errors_name_the_value():
    e = raises(ppp.PPPError, ppp.PPPConfig, lcp_echo_interval=-1)
    assert str(e) == "lcp_echo_interval -1 must be an integer >= 0"
    e = raises(ppp.PPPError, ppp.PPPConfig, remote_ipaddr="10.0.0")
    assert str(e) == "bad IPv4 address '10.0.0'"
    e = raises(ppp.PPPError, ppp.PPPEngine, "lac", ppp.PPPConfig(), Rng())
    assert str(e) == "role 'lac' is neither 'server' nor 'client'"
    assert ppp.PPPConfig(remote_ipaddr="0.0.0.0").remote_ipaddr == "0.0.0.0"


# ---------------------------------------------------------------- IP pools
def test_pool_blocks_and_allocation_order():
    pool = ppp.IpPool("p", "10.0.0.1", 3, netmask="255.255.255.0")
    pool.add_block("10.0.1.0", 2)
    assert pool.num_addrs == 5 and pool.num_avail == 5
    got = [pool.alloc("u%d" % i) for i in range(5)]
    assert got == ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.1.0", "10.0.1.1"]
    assert pool.alloc() is None and pool.num_avail == 0
    assert pool.stats == {"num_allocs": 5, "num_frees": 0, "num_alloc_fails": 1}


def test_pool_reuses_freed_addresses_last_and_in_order():
    pool = ppp.IpPool("p", "10.0.0.1", 4)
    a, b = pool.alloc(), pool.alloc()
    assert pool.free(b) and pool.free(a)
    assert not pool.free(a) and not pool.free("10.9.9.9") and not pool.free("junk")
    assert [pool.alloc() for _ in range(4)] == ["10.0.0.3", "10.0.0.4", b, a]
    assert pool.stats["num_frees"] == 2


def test_pool_overlap_and_bad_values_are_refused_with_the_value():
    pool = ppp.IpPool("p", "10.0.0.0", 16)
    e = raises(ppp.PoolError, pool.add_block, "10.0.0.8", 16)
    assert str(e) == "block 10.0.0.8+16 overlaps block 10.0.0.0+16 of pool p"
    e = raises(ppp.PoolError, pool.add_block, "10.0.0.300", 1)
    assert str(e) == "bad IPv4 address '10.0.0.300'"
    e = raises(ppp.PoolError, pool.add_block, "10.1.0.0", 0)
    assert str(e) == "num_addrs 0 must be an integer >= 1"
    e = raises(ppp.PoolError, pool.add_block, "255.255.255.255", 2)
    assert str(e) == "block 255.255.255.255+2 runs past 255.255.255.255"
    e = raises(ppp.PoolError, pool.reserve, "10.0.1.0")
    assert str(e) == "10.0.1.0 is not in pool p"
    e = raises(ppp.PoolError, pool.remove_block, "10.0.0.0", 8)
    assert str(e) == "pool p has no block 10.0.0.0+8"


def test_pool_reserve_and_unreserve():
    pool = ppp.IpPool("p", "10.0.0.1", 4)
    pool.reserve("10.0.0.1", 2)
    assert pool.num_avail == 2
    assert [pool.alloc(), pool.alloc(), pool.alloc()] == ["10.0.0.3", "10.0.0.4", None]
    pool.unreserve("10.0.0.2")
    assert pool.alloc() == "10.0.0.2" and pool.alloc() is None
    d = pool.to_dict()
    assert d["rsvd_block"] == [{"first_addr": "10.0.0.1", "num_addrs": 1}]
    assert d["addr_block"] == [{"first_addr": "10.0.0.1", "num_addrs": 4}]
    assert d["num_avail"] == 0 and d["pool_name"] == "p"
    # Reserving an allocated address keeps it from coming back once freed.
    pool.reserve("10.0.0.3")
    pool.free("10.0.0.3")
    assert pool.alloc() is None


def test_pool_remove_block_keeps_allocations_until_freed():
    pool = ppp.IpPool("p", "10.0.0.1", 2)
    pool.add_block("10.0.2.1", 1)
    a = pool.alloc("x")
    pool.remove_block("10.0.0.1", 2)
    assert pool.num_addrs == 1 and pool.allocated[ppp.ip_int(a)] == "x"
    assert pool.free(a)
    assert pool.alloc() == "10.0.2.1" and pool.alloc() is None
    pool.add_block("10.0.0.1", 2)  # back again: its addresses are free again
    assert sorted([pool.alloc(), pool.alloc()]) == ["10.0.0.1", "10.0.0.2"]


def test_pool_never_hands_out_an_address_twice_against_a_model():
    rng = Rng(7)
    pool = ppp.IpPool("p", "10.0.0.0", 12)
    pool.add_block("10.0.1.0", 4)
    block_addrs = {ppp.ip_int("10.0.0.0") + i for i in range(12)}
    block_addrs |= {ppp.ip_int("10.0.1.0") + i for i in range(4)}
    held, reserved = set(), set()
    for _ in range(3000):
        op = rng(1)[0] % 5
        a = sorted(block_addrs)[rng(1)[0] % len(block_addrs)]
        if op <= 1:
            got = pool.alloc()
            free = block_addrs - held - reserved
            if free:
                assert got is not None and ppp.ip_int(got) in free
                held.add(ppp.ip_int(got))
            else:
                assert got is None  # exhaustion is exact
        elif op == 2 and held:
            x = sorted(held)[rng(1)[0] % len(held)]
            assert pool.free(ppp.int_ip(x))
            held.discard(x)
        elif op == 3:
            pool.reserve(ppp.int_ip(a))
            reserved.add(a)
        elif op == 4:
            pool.unreserve(ppp.int_ip(a))
            reserved.discard(a)
        assert {a for a in pool.allocated} == held
        assert pool.num_avail == len(block_addrs - held - reserved)


# ---------------------------------------------------------------- secrets
SECRETS_TEXT = """\
# Secrets for authentication using CHAP
# client        server  secret                  IP addresses
alice           *       wonderland
"bob smith"     lns1    "two words"             10.0.0.5 10.0.0.6
carol           lns1    'single "quoted"'       -
dave            *       pass\\ word#not-a-comment  # a comment
*               lns1    anyone
eve             lns1    exact
eve             *       wildcard
   # indented comment
short line
"""


def test_parse_secrets_quotes_comments_and_addresses():
    e = ppp.parse_secrets(SECRETS_TEXT, "chap-secrets")
    assert e == [
        ("alice", "*", "wonderland", []),
        ("bob smith", "lns1", "two words", ["10.0.0.5", "10.0.0.6"]),
        ("carol", "lns1", 'single "quoted"', ["-"]),
        ("dave", "*", "pass word#not-a-comment", []),
        ("*", "lns1", "anyone", []),
        ("eve", "lns1", "exact", []),
        ("eve", "*", "wildcard", []),
    ]


def test_parse_secrets_logs_short_lines():
    seen = []
    ppp.parse_secrets("a b\n\nx y z\n", "f", seen.append)
    assert seen == ["f:1: fewer than 3 words, skipped"]


def test_lookup_secret_prefers_exact_names_over_wildcards():
    e = ppp.parse_secrets(SECRETS_TEXT)
    assert ppp.lookup_secret(e, "alice") == "wonderland"
    assert ppp.lookup_secret(e, "alice", "lns9") == "wonderland"
    assert ppp.lookup_secret(e, "bob smith", "lns1") == "two words"
    assert ppp.lookup_secret(e, "bob smith", "lns2") is None
    assert ppp.lookup_secret(e, "zed", "lns1") == "anyone"
    assert ppp.lookup_secret(e, "zed", "lns2") is None
    assert ppp.lookup_secret(e, "eve", "lns1") == "exact"
    assert ppp.lookup_secret(e, "eve", "other") == "wildcard"
    assert ppp.lookup_secret(e, "eve") == "exact"  # any server: the first best line
    assert ppp.lookup_secret([], "alice") is None


def test_secrets_drive_a_chap_login():
    entries = ppp.parse_secrets(SECRETS_TEXT)
    s = server(secret_for=lambda user: ppp.lookup_secret(entries, user, "lns1"),
               local_name="lns1")
    p = Pair(s, client(user_name="bob smith", user_password="two words")).start()
    assert ("auth", "bob smith", True) in p.ev["s"]
