"""The daemon's control plane in-process: a real l2tpd.Daemon with no sockets, a
virtual clock, datagrams handed to `datagram_received` and taken from a patched
`_sendto`. For what the real-process suites (test_daemon, test_conformance) would
need minutes or thousands of datagrams on a socket to show: bounded resources
under hostile peers (issue 11) and the glue of issue 10 (peer restarts, proxy
AVPs handed to the data path).

Expected values come from RFC 2661 (result and error codes, section 4.4.2) and
from the limits documented in fsm.py and ctrlchan.py, not from running the code.
"""
import struct

import avp
import ctrlchan
import fsm
import l2tpd
import rpc_unix
from util import bounded

PEER = ("127.0.0.9", 1701)


class Box:
    """One daemon in a box: virtual clock, captured output, a peer at PEER."""

    def __init__(self, tmp_path, **system):
        self.now = 1000
        self.d = l2tpd.Daemon(listen_addr="127.0.0.1", port=1701,
                              sock_path=str(tmp_path / "l2tpd.sock"),
                              clock=lambda: self.now)
        self.sent = []
        self.d._sendto = lambda rec, data: self.sent.append((rec.peer, bytes(data))) or True
        self.ups = []
        real_up = self.d.dp.session_up

        def session_up(tid, sid, psid, info):
            self.ups.append(info)
            return real_up(tid, sid, psid, info)
        self.d.dp.session_up = session_up
        self.ns = 0   # the peer's next Ns
        self.nr = 0   # the peer's next expected Ns from us
        for k, v in system.items():
            self.d.system[k] = v

    def rpc(self, method, **params):
        return self.d.handle_rpc(method, params, None)

    def feed(self, data, addr=PEER):
        self.d.datagram_received(data, addr, "127.0.0.1", self.now)
        self.d.flush(self.now)

    def send(self, mtype, avps, tid=0, sid=0, addr=PEER, ns=None):
        """A control message from the peer, in sequence unless `ns` is given."""
        if ns is None:
            ns = self.ns
            self.ns = (self.ns + 1) & 0xFFFF
        body = avp.encode_message(mtype, avps)
        self.feed(avp.push_control(tid, sid, ns, self.nr, body), addr)

    def advance(self, ms):
        """Run the daemon's timers over `ms` of virtual time, in 100 ms steps."""
        end = self.now + ms
        while self.now < end:
            self.now = min(end, self.now + 100)
            self.d.run_timers(self.now)
            self.d.flush(self.now)

    def take(self):
        """What the daemon sent since the last call: [(tid, sid, name or "ZLB", avps)]."""
        out = []
        for _peer, data in self.sent:
            h = avp.pull_header(data)
            body = data[h.payload_offset:h.length]
            if body:
                m = avp.decode_message(body)
                out.append((h.tunnel_id, h.session_id, m.name, m.avps))
                self.nr = (h.ns + 1) & 0xFFFF
            else:
                out.append((h.tunnel_id, h.session_id, "ZLB", {}))
        self.sent = []
        return out

    def names(self):
        return [x[2] for x in self.take()]

    def establish(self, ptid=1):
        """SCCRQ / SCCRP / SCCCN as the LAC; returns our tunnel id."""
        self.ns = self.nr = 0
        self.send(avp.SCCRQ, [(avp.PROTOCOL_VERSION, (1, 0)), (avp.HOST_NAME, "lac"),
                              (avp.FRAMING_CAPABILITIES, 3), (avp.BEARER_CAPABILITIES, 3),
                              (avp.ASSIGNED_TUNNEL_ID, ptid)])
        reply = [x for x in self.take() if x[2] == "SCCRP"]
        assert len(reply) == 1
        tid = reply[0][3][avp.ASSIGNED_TUNNEL_ID]
        self.send(avp.SCCCN, [], tid)
        assert self.d.tunnels[tid].t.state == "established"
        self.take()
        return tid

    def icrq(self, tid, psid):
        self.send(avp.ICRQ, [(avp.ASSIGNED_SESSION_ID, psid), (avp.CALL_SERIAL_NUMBER, psid)],
                  tid)


# ------------------------------------------------------------------ issue 10
def test_a_restarted_peer_gets_a_new_tunnel_and_the_stale_one_goes(tmp_path):
    b = Box(tmp_path)
    events = []
    b.d.event = (lambda name, rec=None, srec=None, **kw: events.append((name, kw)))
    old = b.establish(ptid=1)
    b.icrq(old, 5)
    assert [x[2] for x in b.take()] == ["ICRP"]
    assert b.d.num_sessions == 1
    new = b.establish(ptid=1)            # same address, port and Assigned Tunnel ID
    assert new != old and list(b.d.tunnels) == [new]
    assert b.d.num_sessions == 0 and b.d.counters["peer_restarts"] == 1
    downs = [kw["reason"] for name, kw in events if name == "tunnel_down"]
    assert len(downs) == 1 and downs[0].startswith("peer restarted")


def test_an_sccrq_repeated_while_waiting_for_scccn_is_a_retransmission(tmp_path):
    b = Box(tmp_path)
    sccrq = [(avp.PROTOCOL_VERSION, (1, 0)), (avp.HOST_NAME, "lac"),
             (avp.FRAMING_CAPABILITIES, 3), (avp.ASSIGNED_TUNNEL_ID, 1)]
    b.send(avp.SCCRQ, sccrq, ns=0)
    b.send(avp.SCCRQ, sccrq, ns=0)       # the same Ns: the peer did not hear us
    assert len(b.d.tunnels) == 1 and b.d.counters["peer_restarts"] == 0
    assert b.names() == ["SCCRP", "ZLB"]


def _iccn_with_proxy(b, tid, sid):
    b.send(avp.ICCN, [(avp.TX_CONNECT_SPEED, 10 ** 6), (avp.FRAMING_TYPE, 1),
                      (avp.LAST_SENT_LCP_CONFREQ, bytes.fromhex("0506 11223344")),
                      (avp.LAST_RECEIVED_LCP_CONFREQ, bytes.fromhex("0506 55667788")),
                      (avp.PROXY_AUTHEN_TYPE, avp.PROXY_AUTH_PAP),
                      (avp.PROXY_AUTHEN_NAME, "alice"), (avp.PROXY_AUTHEN_ID, 9),
                      (avp.PROXY_AUTHEN_RESPONSE, b"secret")], tid, sid)


def test_proxy_avps_reach_the_data_path_only_with_allow_ppp_proxy(tmp_path):
    b = Box(tmp_path)
    for allow in (False, True):
        b.rpc("tunnel_profile.modify", profile_name="default", allow_ppp_proxy=allow)
        tid = b.establish(ptid=1 + allow)
        b.icrq(tid, 5)
        icrp = [x for x in b.take() if x[2] == "ICRP"][0]
        _iccn_with_proxy(b, tid, icrp[3][avp.ASSIGNED_SESSION_ID])
    assert len(b.ups) == 2
    assert b.ups[0]["ppp_proxy"] is None
    assert b.ups[1]["ppp_proxy"] == {
        "proxy_authen_type": 3, "proxy_authen_name": "alice", "proxy_authen_id": 9,
        "proxy_authen_response": b"secret",
        "last_sent_lcp_confreq": bytes.fromhex("050611223344"),
        "last_received_lcp_confreq": bytes.fromhex("050655667788")}


def test_call_errors_name_our_parameters(tmp_path):
    b = Box(tmp_path)
    tid = b.establish()
    for params, name, code in (
            ({"proxy_auth_type": "chap", "proxy_auth_name": "a", "proxy_auth_challenge": "01",
              "proxy_auth_response": "02"}, "proxy_auth_id", rpc_unix.ERR_PARAM_MISSING),
            ({"proxy_auth_type": "pap", "proxy_auth_name": "a", "proxy_auth_id": 1},
             "proxy_auth_response", rpc_unix.ERR_PARAM_MISSING),
            ({"proxy_auth_name": "a"}, "proxy_auth_name", rpc_unix.ERR_PARAM_BAD_VALUE),
            ({"session_type": "lnoc", "bearer_type": "analog"}, None, None),
            ({"session_type": "lnoc", "proxy_auth_type": "none"}, "proxy_auth_type",
             rpc_unix.ERR_PARAM_BAD_VALUE)):
        try:
            b.rpc("session.create", tunnel_id=tid, **params)
        except rpc_unix.RpcError as e:
            assert name is not None, e.message
            assert e.code == code and e.data["param"] == name, (params, e.to_dict())
        else:
            assert name is None, params


# ------------------------------------------------------------------ issue 11
def test_icrq_flood_gets_cdn_4_past_the_half_open_limit(tmp_path):
    b = Box(tmp_path)
    tid = b.establish()
    limit = 1024        # fsm.py's documented max_half_open
    out = []
    for psid in range(1, limit + 2):
        b.icrq(tid, psid)
        out += b.take()                  # the next ICRQ acks what came back
    assert [x[2] for x in out].count("ICRP") == limit
    cdn = [x for x in out if x[2] == "CDN"]
    # RFC 2661 4.4.2: CDN result 4, temporary lack of resources; error 4 likewise.
    assert len(cdn) == 1 and cdn[0][3][avp.RESULT_CODE][:2] == (4, 4)
    assert cdn[0][1] == limit + 1        # to the peer's session id
    assert b.d.tunnels[tid].t.state == "established"


def test_a_full_tunnel_answers_the_next_icrq_with_cdn_not_a_traceback():
    # 65,535 calls: every session id taken; the next ICRQ still gets CDN 4, not silence.
    rng_state = [7]

    def rng(n):
        out = bytearray()
        for _ in range(n):
            rng_state[0] = (rng_state[0] * 1103515245 + 12345) & 0x7FFFFFFF
            out.append(rng_state[0] >> 16 & 0xFF)
        return bytes(out)
    t = fsm.Tunnel(1, fsm.TunnelConfig(max_half_open=0, ack_delay=0), rng)
    ns = [0]

    def feed(mtype, avps, sid=0):
        body = avp.encode_message(mtype, avps)
        d = avp.push_control(1, sid, ns[0], t.channel._ns, body)
        ns[0] = (ns[0] + 1) & 0xFFFF
        return t.receive(d, 0)
    feed(avp.SCCRQ, [(avp.PROTOCOL_VERSION, (1, 0)), (avp.HOST_NAME, "x"),
                     (avp.FRAMING_CAPABILITIES, 3), (avp.ASSIGNED_TUNNEL_ID, 9)])
    feed(avp.SCCCN, [])
    assert t.state == "established"
    t.datagrams_to_send(0)
    for psid in range(1, 0x10000):
        feed(avp.ICRQ, [(avp.ASSIGNED_SESSION_ID, psid), (avp.CALL_SERIAL_NUMBER, psid)])
        t.datagrams_to_send(0)
    assert len(t.sessions) == 0xFFFF
    acts = feed(avp.ICRQ, [(avp.ASSIGNED_SESSION_ID, 1), (avp.CALL_SERIAL_NUMBER, 1)])
    assert [a[0] for a in acts] == ["error"]          # counted and logged, nothing raised
    bodies = []
    for d in t.datagrams_to_send(0):
        h = avp.pull_header(d)
        if h.length > h.payload_offset:
            bodies.append(avp.decode_message(d[h.payload_offset:h.length]))
    assert [m.type for m in bodies] == [avp.CDN]
    assert bodies[0].get(avp.RESULT_CODE)[:2] == (4, 4)   # RFC 2661 4.4.2
    assert bodies[0].get(avp.ASSIGNED_SESSION_ID) == 0    # we assigned none
    assert len(t.sessions) == 0xFFFF


def test_send_queue_is_bounded_against_a_peer_that_never_acks(tmp_path):
    b = Box(tmp_path)
    tid = b.establish()
    t = b.d.tunnels[tid].t
    peak = 0
    for psid in range(1, 5000):
        b.send(avp.ICRQ, [(avp.ASSIGNED_SESSION_ID, psid % 0xFFFF + 1),
                          (avp.CALL_SERIAL_NUMBER, psid)], tid)
        b.sent = []                      # the peer never acks (its Nr stays put)
        b.nr = 0
        if tid not in b.d.tunnels:
            break
        peak = max(peak, t.channel.unacked)
    # ctrlchan's documented MAX_UNACKED (4096): past it the tunnel is cleared.
    assert ctrlchan.MAX_UNACKED == 4096
    assert tid not in b.d.tunnels and peak <= 4096


def test_a_burst_of_local_calls_is_refused_not_deadlocked(tmp_path):
    # Two of our own daemons once stopped acking each other under a 1000-call burst.
    b = Box(tmp_path)
    tid = b.establish()
    refused = 0
    for _ in range(2100):              # the peer acks nothing meanwhile
        try:
            b.rpc("session.create", tunnel_id=tid, session_type="lnoc")
        except rpc_unix.RpcError as e:
            assert "busy" in e.message
            refused += 1
    assert refused > 0 and b.d.tunnels[tid].t.state == "established"


def test_giving_up_sends_one_stopccn(tmp_path):
    b = Box(tmp_path)
    tid = b.establish(ptid=7)
    b.icrq(tid, 5)
    b.take()                             # the ICRP is never acked
    b.advance(120000)                    # 1+2+4+8+8+8 s of retransmissions, then give up
    out = b.take()
    assert tid not in b.d.tunnels
    stops = [x for x in out if x[2] == "StopCCN"]
    # Two copies (the Ns the peer asked for, and the next): one is a duplicate to it.
    assert len(stops) == 2 and all(x[0] == 7 for x in stops)   # to the peer's tunnel id
    assert [x[2] for x in out[-2:]] == ["StopCCN"] * 2         # and nothing after them
    assert all(x[3][avp.ASSIGNED_TUNNEL_ID] == tid for x in stops)


def test_unknown_message_types_share_one_counter(tmp_path):
    b = Box(tmp_path)
    for mtype in range(20, 3020):
        body = struct.pack("!HHHH", 0x8008, 0, 0, mtype)
        b.feed(avp.push_control(0, 0, 0, 0, body))
    got = b.rpc("system.get")["messages"]
    assert list(got) == ["unknown"] and got["unknown"]["rx"] == 3000


def _sccrq(b, port, ptid=1):
    b.send(avp.SCCRQ, [(avp.PROTOCOL_VERSION, (1, 0)), (avp.HOST_NAME, "x"),
                       (avp.FRAMING_CAPABILITIES, 3), (avp.ASSIGNED_TUNNEL_ID, ptid)],
           addr=("127.0.0.9", port), ns=0)


def test_an_sccrq_flood_is_bounded_and_a_completing_peer_still_gets_in(tmp_path):
    b = Box(tmp_path)
    b.rpc("system.modify", max_half_open_tunnels=10, max_tunnels=5)
    for port in range(20000, 20050):      # 50 SCCRQs that never complete
        _sccrq(b, port)
    assert len(b.d.tunnels) == 10                       # the newest ten half-open
    assert b.d.counters["half_open_tunnel_evictions"] == 40
    evicted = [x for x in b.take() if x[2] == "StopCCN"]
    # Each evicted tunnel's StopCCN goes as two copies (Ns 0 and 1: did the peer hear
    # our SCCRP?), so a strict peer takes one in order either way.
    assert len(evicted) == 80 and all(x[3][avp.RESULT_CODE][:2] == (2, 4) for x in evicted)
    tid = b.establish(ptid=77)            # from PEER: completes its handshake
    assert b.d.tunnels[tid].t.state == "established"


def test_refused_sccrqs_keep_no_state(tmp_path):
    b = Box(tmp_path)
    b.rpc("system.modify", max_tunnels=1)
    b.establish()
    b.take()
    for port in range(30000, 30100):
        _sccrq(b, port)
    out = b.take()
    assert [x[2] for x in out] == ["StopCCN"] * 100
    assert all(x[3][avp.RESULT_CODE][:2] == (2, 4) for x in out)   # RFC 2661 4.4.2
    assert len(b.d.tunnels) == 1                         # only the established one


def test_a_forged_sccrq_alone_does_not_clear_an_established_tunnel(tmp_path):
    # Anyone can send an SCCRQ from the peer's address, port and tunnel id (Windows
    # uses 1): the old tunnel goes only once the new control connection is up.
    b = Box(tmp_path)
    old = b.establish(ptid=1)
    b.icrq(old, 5)
    b.take()
    b.ns = b.nr = 0
    b.send(avp.SCCRQ, [(avp.PROTOCOL_VERSION, (1, 0)), (avp.HOST_NAME, "forger"),
                       (avp.FRAMING_CAPABILITIES, 3), (avp.ASSIGNED_TUNNEL_ID, 1)])
    new = [x for x in b.take() if x[2] == "SCCRP"][0][3][avp.ASSIGNED_TUNNEL_ID]
    assert b.d.tunnels[old].t.state == "established" and b.d.num_sessions == 1
    assert b.d.counters["peer_restarts"] == 0
    b.send(avp.SCCCN, [], new)                     # the real peer completes it
    assert list(b.d.tunnels) == [new] and b.d.num_sessions == 0
    assert b.d.counters["peer_restarts"] == 1


def test_a_flood_from_one_host_evicts_its_own_tunnels_not_a_slow_peers(tmp_path):
    b = Box(tmp_path)
    b.rpc("system.modify", max_half_open_tunnels=10)
    slow = ("127.0.0.8", 1701)
    b.send(avp.SCCRQ, [(avp.PROTOCOL_VERSION, (1, 0)), (avp.HOST_NAME, "slow"),
                       (avp.FRAMING_CAPABILITIES, 3), (avp.ASSIGNED_TUNNEL_ID, 5)],
           addr=slow, ns=0)
    tid = [avp.decode_message(d[12:]).get(avp.ASSIGNED_TUNNEL_ID)
           for peer, d in b.sent if peer == slow][0]
    b.sent = []
    for port in range(20000, 20100):      # 100 SCCRQs from one other host
        _sccrq(b, port)
    assert b.d.counters["half_open_tunnel_evictions"] == 91
    body = avp.encode_message(avp.SCCCN, [])
    b.feed(avp.push_control(tid, 0, 1, 1, body), slow)    # the slow peer's SCCCN
    assert b.d.tunnels[tid].t.state == "established"


def test_a_flood_of_half_open_tunnels_does_not_block_tunnel_create(tmp_path):
    b = Box(tmp_path)
    b.rpc("system.modify", max_tunnels=2)
    for port in range(20000, 20050):
        _sccrq(b, port)
    assert len(b.d.half_open) == 50 - b.d.counters["half_open_tunnel_evictions"] > 2
    r = b.rpc("tunnel.create", dest_ipaddr="127.0.0.7", tunnel_name="mine")
    assert r is not None and "mine" in b.d.tunnel_names


def test_a_secrets_file_that_is_a_pipe_is_refused_and_never_blocks(tmp_path):
    import os
    b = Box(tmp_path)
    b.d.config_dir = str(tmp_path)
    fifo = tmp_path / "chap-secrets"
    os.mkfifo(fifo)
    try:
        b.rpc("ppp_profile.modify", profile_name="default", secrets_file=str(fifo))
    except rpc_unix.RpcError as e:
        assert e.code == rpc_unix.ERR_PARAM_BAD_VALUE and e.data["param"] == "secrets_file"
    else:
        raise AssertionError("a FIFO was accepted as secrets_file")
    # Made a FIFO after it was set: a login looks it up without blocking the loop.
    assert bounded(lambda: b.d.secret_for(str(fifo), "alice"), 10) is None


def test_sccrqs_that_are_not_taken_leave_no_tunnel(tmp_path):
    b = Box(tmp_path)
    good = avp.encode_message(avp.SCCRQ, [(avp.PROTOCOL_VERSION, (1, 0)),
                                          (avp.HOST_NAME, "x"), (avp.FRAMING_CAPABILITIES, 3),
                                          (avp.ASSIGNED_TUNNEL_ID, 1)])
    for port in range(40000, 40100):
        b.feed(avp.push_control(0, 0, 5, 0, good), ("127.0.0.9", port))   # Ns 5: not first
        b.feed(avp.push_control(0, 0, 0, 0, good[:-3]), ("127.0.0.9", port))  # cut short
    assert b.d.tunnels == {} and b.d.by_peer == {} and b.d.half_open == {}
    assert b.sent == []                               # no answer, not even a ZLB
    assert b.d.counters["bad_rcvd_frames"] >= 100


def test_bad_addresses_and_overlapping_pools_are_refused_naming_the_parameter(tmp_path):
    b = Box(tmp_path)
    for dest in ("0.0.0.0", "255.255.255.255", "224.0.0.1", "240.0.0.1"):
        try:
            b.rpc("tunnel.create", dest_ipaddr=dest)
        except rpc_unix.RpcError as e:
            assert e.data["param"] == "dest_ipaddr", e.to_dict()
        else:
            raise AssertionError(f"tunnel to {dest} accepted")
    b.rpc("ippool.create", pool_name="a", first_addr="10.0.0.10", num_addrs=10)
    for call in (("ippool.create", {"pool_name": "b", "first_addr": "10.0.0.19",
                                    "num_addrs": 5}),
                 ("ippool.create", {"pool_name": "c", "first_addr": "255.255.255.250",
                                    "num_addrs": 100})):
        try:
            b.rpc(call[0], **call[1])
        except rpc_unix.RpcError as e:
            assert e.data["param"] == "first_addr", e.to_dict()
        else:
            raise AssertionError(f"{call} accepted")
    b.rpc("ippool.create", pool_name="d", first_addr="10.0.0.20", num_addrs=5)  # adjacent
    try:
        b.rpc("ippool.add_block", pool_name="d", first_addr="10.0.0.15", num_addrs=2)
    except rpc_unix.RpcError as e:
        assert e.code == rpc_unix.ERR_PARAM_CONFLICT and e.data["param"] == "first_addr"
    else:
        raise AssertionError("an overlapping block was added")


def test_a_restart_whose_first_new_tunnel_failed_still_clears_the_stale_one(tmp_path):
    # Review: T1 up; an SCCRQ with its key whose tunnel T2 never completes; then the
    # real restart T3. T1 must go when T3 is up, and meanwhile send nothing to the
    # peer's tunnel id (no Hello, no StopCCN): that id names the peer's new tunnel.
    b = Box(tmp_path)
    b.rpc("tunnel_profile.modify", profile_name="default", hello_timeout=2)
    t1 = b.establish(ptid=1)
    b.ns = b.nr = 0
    b.send(avp.SCCRQ, [(avp.PROTOCOL_VERSION, (1, 0)), (avp.HOST_NAME, "lac"),
                       (avp.FRAMING_CAPABILITIES, 3), (avp.ASSIGNED_TUNNEL_ID, 1)])
    t2 = [x for x in b.take() if x[2] == "SCCRP"][0][3][avp.ASSIGNED_TUNNEL_ID]
    b.sent = []
    b.advance(10000)                    # T2 waits in vain; T1 stays quiet
    assert [x for x in b.take() if x[0] == 1 and x[2] in ("HELLO", "StopCCN")] == []
    b.d.apply(b.d.tunnels[t2], b.d.tunnels[t2].t.drop(b.now, 2, 4, "test"), b.now)
    assert b.d.tunnels[t1].t.state == "established"
    t3 = b.establish(ptid=1)            # the real restart
    assert list(b.d.tunnels) == [t3] and b.d.counters["peer_restarts"] == 1


def test_list_names_only(tmp_path):
    b = Box(tmp_path)
    tid = b.establish()
    b.icrq(tid, 5)
    assert b.rpc("tunnel.list", names=True) == [{"tunnel_id": tid, "tunnel_name": None}]
    rows = b.rpc("session.list", names=True)
    assert len(rows) == 1 and set(rows[0]) == {"tunnel_id", "session_id", "session_name"}


def test_configuration_is_bounded(tmp_path):
    b = Box(tmp_path)
    for i in range(4095):               # with "default": 4096 tunnel profiles
        b.rpc("tunnel_profile.create", profile_name=f"p{i}")
    for call, params, name in (
            ("tunnel_profile.create", {"profile_name": "one-too-many"}, "profile_name"),
            ("tunnel_profile.modify", {"profile_name": "default", "host_name": "h" * 1025},
             "host_name")):
        try:
            b.rpc(call, **params)
        except rpc_unix.RpcError as e:
            assert e.data["param"] == name, e.to_dict()
        else:
            raise AssertionError(f"{call} accepted")
    b.rpc("ippool.create", pool_name="big", first_addr="10.0.0.0", num_addrs=1 << 20)
    try:
        b.rpc("ippool.reserve", pool_name="big", first_addr="10.0.0.0", num_addrs=65537)
    except rpc_unix.RpcError as e:
        assert e.data["param"] == "num_addrs"
    else:
        raise AssertionError("65537 reserved addresses accepted")
    b.rpc("ippool.reserve", pool_name="big", first_addr="10.0.0.0", num_addrs=65536)


def test_a_chap_proxy_response_is_sixteen_octets(tmp_path):
    # RFC 1994 4.1: the MD5 Response Value is 16 octets.
    b = Box(tmp_path)
    tid = b.establish()
    try:
        b.rpc("session.create", tunnel_id=tid, session_type="laic", proxy_auth_type="chap",
              proxy_auth_name="a", proxy_auth_id=1, proxy_auth_challenge="01",
              proxy_auth_response="")
    except rpc_unix.RpcError as e:
        assert e.data["param"] == "proxy_auth_response"
    else:
        raise AssertionError("an empty CHAP response accepted")


def test_config_save_never_writes_through_a_planted_symlink(tmp_path):
    # Review: whoever can write in the configuration directory planted a symlink
    # under the temporary name and had root overwrite the file it points at.
    import os
    b = Box(tmp_path)
    b.d.config_dir = str(tmp_path)
    b.d.rng = lambda n: bytes(range(1, n + 1))          # a temporary name we can guess
    victim = tmp_path / "victim"
    victim.write_text("root only\n")
    os.symlink(victim, tmp_path / f"x.conf.tmp.{os.getpid()}.01020304")
    try:
        b.rpc("config.save", file="x.conf")
    except rpc_unix.RpcError as e:
        assert e.data["param"] == "file"
    assert victim.read_text() == "root only\n"
    assert not (tmp_path / "x.conf").is_symlink()
