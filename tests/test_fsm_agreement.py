"""After any loss pattern, both ends of every tunnel agree on what exists once the
timers have run (issue 11, fault 10): a side whose retransmissions are exhausted
clears the tunnel (RFC 2661 5.8) and tells the peer with one best-effort StopCCN
(5.7), and a side left alone finds out through its own Hellos (5.5).

Two in-memory hosts (tests/fsm_pair.py) over a seeded lossy link, virtual clock.
"""
from fsm_pair import Host, Net


def _up(host):
    """{(our tid, peer's tid)} of the host's established tunnels, and their calls."""
    tunnels = set()
    calls = set()
    for tid, t in host.tunnels.items():
        if t.state == "established":
            tunnels.add((tid, t.peer_tunnel_id))
            for sid, s in t.sessions.items():
                if s.state == "established":
                    calls.add((tid, sid, s.peer_session_id))
    return tunnels, calls


def _calls_match(lac, lns, a_c, b_c):
    # (lac tid, lac sid, lns sid) against (lns tid, lns sid, lac sid)
    peer_tid = {tid: t.peer_tunnel_id for tid, t in lac.tunnels.items()}
    mine = set((peer_tid[t], ps, s) for t, s, ps in a_c)
    return mine == set(b_c)


def test_both_sides_agree_after_thirty_percent_loss():
    # Hellos every 20 s; the default 5 retransmissions (1, 2, 4, 8, 8 s).
    lac = Host("lac", seed=11, hello_timeout=20000, ack_delay=0)
    lns = Host("lns", seed=12, hello_timeout=20000, ack_delay=0)
    net = Net(lac, lns, loss=30, seed=5)
    for _ in range(100):
        t = lac.open(net.now, "lns")
        lac.take(t.session_open(net.now, "laic")[1])
    net.settle(60000)                   # set-up under loss, some give up
    for link in net.links.values():
        link.loss = 0                   # the network heals; the timers run on
    net.settle(120000)
    assert _up(lac)[0] == set((p, q) for q, p in _up(lns)[0])
    assert _calls_match(lac, lns, _up(lac)[1], _up(lns)[1])
    assert len(_up(lac)[0]) > 50        # most of the hundred made it


def test_a_side_that_gives_up_tells_the_peer_at_once():
    lac = Host("lac", seed=21, hello_timeout=0, ack_delay=0)
    lns = Host("lns", seed=22, hello_timeout=0, ack_delay=0)
    net = Net(lac, lns, seed=7)
    t = lac.open(net.now, "lns")
    lac.take(t.session_open(net.now, "laic")[1])
    net.settle(5000)
    assert len(_up(lns)[0]) == 1
    # Everything the LNS sends from now on is lost but a StopCCN (type 4 at octet
    # 19 of the datagram: header 12, AVP header 6, high octet of the type 0).
    net.drop = lambda src, dst, d: src == "lns" and not (len(d) > 19 and d[19] == 4)
    lns_t = list(lns.tunnels.values())[0]
    lns.take(lns_t.session_close(net.now, list(lns_t.sessions)[0]))
    net.settle(60000)                   # the LNS gives up on its CDN after ~31 s
    # Without Hellos the LAC could only learn of it from the StopCCN the LNS sent
    # when it gave up (RFC 2661 5.7): both sides are clear.
    assert lns.tunnels == {} and _up(lac) == (set(), set())   # the LAC lingers (5.7)
    down = [a for a in lac.actions if a[0] == "tunnel-down"]
    assert len(down) == 1 and "peer sent StopCCN" in down[0][2]
