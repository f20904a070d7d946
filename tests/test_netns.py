"""End to end through the userspace data path, as root: two network namespaces
joined by a veth pair, our l2tpd as LAC in one and as LNS in the other, PPP with
CHAP or PAP, the LAC's address from the LNS's pool, ping both ways through the TUN
devices. Addresses exist only inside the namespaces the test creates; every
namespace, process and device is removed at the end, even on failure."""
import os
import shutil
import signal
import subprocess
import sys

import pytest

import rpc_unix
from daemon_util import ROOT, wait_for
from util import bounded


def _need_root():
    missing = [t for t in ("ip", "ping") if shutil.which(t) is None]
    why = None
    if os.geteuid() != 0:
        why = "needs root (network namespaces, TUN devices)"
    elif missing:
        why = f"needs {', '.join(missing)} (Debian: iproute2, iputils-ping)"
    elif not os.path.exists("/dev/net/tun"):
        why = "needs /dev/net/tun"
    if why:
        assert os.environ.get("CI") != "true", f"CI must run this test: {why}"
        pytest.skip(why)


def sh(*args, check=True, timeout=20):
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(args)}: {r.returncode} {r.stderr.strip()}")
    return r


class Net:
    """Two namespaces, lac and lns, joined by veth; 10.201.0.1 and 10.201.0.2."""

    def __init__(self):
        tag = str(os.getpid() % 100000)
        self.lac, self.lns = f"l2lac{tag}", f"l2lns{tag}"
        self.procs = []

    def __enter__(self):
        sh("ip", "netns", "add", self.lac)
        sh("ip", "netns", "add", self.lns)
        sh("ip", "-n", self.lac, "link", "add", "veth0", "type", "veth", "peer", "name",
           "veth1", "netns", self.lns)
        for ns, addr, dev in ((self.lac, "10.201.0.1/24", "veth0"),
                              (self.lns, "10.201.0.2/24", "veth1")):
            sh("ip", "-n", ns, "addr", "add", addr, "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        return self

    def start(self, ns, addr, sock, logfile):
        cmd = ["ip", "netns", "exec", ns, sys.executable, os.path.join(ROOT, "l2tpd.py"),
               "-f", "-a", addr, "-s", sock, "--dataplane", "userspace",
               # the secrets file lives beside the sockets: the configuration directory
               "--config-dir", os.path.dirname(sock)]
        log = open(logfile, "ab")
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self.procs.append(p)
        wait_for(lambda: p.poll() is not None or _answers(sock), 10, f"l2tpd in {ns}")
        assert p.poll() is None, open(logfile).read()
        return p

    def __exit__(self, *exc):
        for p in self.procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    os.kill(p.pid, signal.SIGKILL)
                    p.wait(5)
        for ns in (self.lac, self.lns):
            sh("ip", "netns", "del", ns, check=False)


def _answers(sock):
    try:
        rpc_unix.call("system.get", path=sock, timeout=2)
        return True
    except OSError:
        return False


def call(sock, method, **params):
    return rpc_unix.call(method, params, path=sock, timeout=5)


def _session(sock):
    rows = call(sock, "session.list")
    return rows[0] if len(rows) == 1 else None


def _ppp_up(sock):
    s = _session(sock)
    if not s:
        return None
    full = call(sock, "session.get", tunnel_id=s["tunnel_id"], session_id=s["session_id"])
    return full if (full.get("ppp") or {}).get("peer_ip") and full["state"] == "established" \
        else None


def _link_exists(ns, name):
    return sh("ip", "-n", ns, "link", "show", name, check=False).returncode == 0


def test_lac_and_lns_carry_ping_over_chap_and_pap(tmp_path):
    _need_root()
    lac_sock, lns_sock = str(tmp_path / "lac.sock"), str(tmp_path / "lns.sock")
    secrets = tmp_path / "chap-secrets"
    secrets.write_text("# client server secret\nalice * \"open sesame\"\nbob * pw2\n")
    with Net() as net:
        net.start(net.lns, "10.201.0.2", lns_sock, str(tmp_path / "lns.log"))
        net.start(net.lac, "10.201.0.1", lac_sock, str(tmp_path / "lac.log"))
        assert call(lns_sock, "system.get")["dataplane"] == "userspace"
        call(lns_sock, "ippool.create", pool_name="p", first_addr="10.202.0.10",
             num_addrs=4)
        call(lns_sock, "ppp_profile.modify", profile_name="default",
             local_ipaddr="10.202.0.1", ip_pool_name="p", auth_peer=True,
             auth_pap=False, secrets_file=str(secrets), dns_ipaddr_pri="10.202.0.53")
        call(lac_sock, "tunnel.create", dest_ipaddr="10.201.0.2", tunnel_name="t")

        for auth, user, password in (("chap", "alice", "open sesame"), ("pap", "bob", "pw2")):
            if auth == "pap":
                call(lns_sock, "ppp_profile.modify", profile_name="default", auth_pap=True,
                     auth_chap=False)
            call(lac_sock, "session.create", tunnel_name="t", session_name="s",
                 user_name=user, user_password=password, interface_name="l2tp-c")
            lac = wait_for(lambda: _ppp_up(lac_sock), 20, f"{auth}: PPP up on the LAC")
            lns = wait_for(lambda: _ppp_up(lns_sock), 10, f"{auth}: PPP up on the LNS")
            # The LAC's first LCP frame followed its ICCN, so the LNS knew the call:
            # no data packet was dropped for an unknown session.
            assert call(lns_sock, "system.get")["stats"]["unexpected_data_frames"] == 0
            # The LAC's address came from the LNS's pool (never-used addresses first).
            addr = lac["ppp"]["local_ip"]
            assert addr == {"chap": "10.202.0.10", "pap": "10.202.0.11"}[auth]
            assert lac["ppp"]["peer_ip"] == "10.202.0.1"
            assert lns["ppp"]["peer_ip"] == addr
            assert lns["ppp"]["user"] == user
            # The LNS lists who logged in through it (issue 12).
            users = call(lns_sock, "user.list")
            assert [u["user_name"] for u in users] == [user] and lns["user_name"] == user
            assert _link_exists(net.lac, "l2tp-c")
            pool = call(lns_sock, "ippool.get", pool_name="p")
            assert pool["num_avail"] == 3
            assert [a["addr"] for a in pool["allocated"]] == [addr]

            before_lac = lac["stats"]
            before_lns = lns["stats"]
            sh("ip", "netns", "exec", net.lac, "ping", "-c", "3", "-i", "0.2", "-W", "2",
               "10.202.0.1")
            sh("ip", "netns", "exec", net.lns, "ping", "-c", "3", "-i", "0.2", "-W", "2",
               addr)
            lac_after = _ppp_up(lac_sock)["stats"]
            lns_after = _ppp_up(lns_sock)["stats"]
            sent = lac_after["data_tx_packets"] - before_lac["data_tx_packets"]
            got = lns_after["data_rx_packets"] - before_lns["data_rx_packets"]
            # 3 echo requests + 3 echo replies each way; nothing lost on a veth.
            assert sent >= 6 and got == sent, (sent, got)
            back = lns_after["data_tx_packets"] - before_lns["data_tx_packets"]
            assert lac_after["data_rx_packets"] - before_lac["data_rx_packets"] == back >= 6
            assert lac_after["data_rx_errors"] == lns_after["data_rx_errors"] == 0

            call(lac_sock, "session.delete", tunnel_name="t", session_name="s")
            wait_for(lambda: _session(lac_sock) is None and _session(lns_sock) is None,
                     10, "session cleared on both sides")
            wait_for(lambda: not _link_exists(net.lac, "l2tp-c"), 5, "TUN removed")
            assert call(lns_sock, "ippool.get", pool_name="p")["num_avail"] == 4

        # A wrong password: the LNS refuses, the session is cleared, the address stays.
        call(lac_sock, "session.create", tunnel_name="t", session_name="bad",
             user_name="bob", user_password="nope")
        wait_for(lambda: call(lns_sock, "system.get")["num_sessions"] == 0
                 and call(lac_sock, "system.get")["num_sessions"] == 0, 20,
                 "session with a bad password cleared")
        assert call(lns_sock, "ippool.get", pool_name="p")["num_avail"] == 4
        assert call(lac_sock, "tunnel.get", tunnel_name="t")["state"] == "established"
        # Counters count what they say: one login refused, one session not set up.
        stats = call(lns_sock, "system.get")["stats"]
        assert stats["auth_fails"] == 1 and stats["session_setup_failures"] == 1, stats
        assert "PPP authentication failed for user 'bob'" in open(tmp_path / "lns.log").read()


def _in_netns(ns, fn, timeout=30):
    """fn() run by a thread that joined network namespace `ns` (setns through ctypes:
    CPython 3.11 has no os.setns); the sockets it makes stay in that namespace and
    serve this process from any thread."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)

    def run():
        fd = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
        try:
            if libc.setns(fd, 0x40000000) != 0:   # CLONE_NEWNET
                raise OSError(ctypes.get_errno(), f"setns {ns}")
            return fn()
        finally:
            os.close(fd)
    return bounded(run, timeout)


def _ppp_frames(peer, seconds):
    """(protocol, code, identifier) of the PPP frames the daemon sent on the data
    channel within `seconds` (RFC 1661 section 5 layout after FF 03)."""
    out = []
    for p in peer.drain(seconds):
        if p.control or len(p.body) < 8:
            continue
        b = p.body[2:] if p.body[:2] == b"\xff\x03" else p.body
        out.append(((b[0] << 8) | b[1], b[2], b[3]))
    return out


def test_lns_takes_proxy_lcp_and_pap_from_the_lac(tmp_path):
    """RFC 2661 4.4.5 end to end: a LAC that already ran LCP and PAP with the user
    sends them in its ICCN. With allow_ppp_proxy the LNS checks alice's proxied
    password, answers her Authenticate-Request (PAP Ack, the LAC's Identifier 9)
    and goes straight to IPCP; without it, PPP starts over with LCP."""
    _need_root()
    import scripted_peer as sp
    sock = str(tmp_path / "lns.sock")
    (tmp_path / "chap-secrets").write_text("alice * secret\n")
    with Net() as net:
        net.start(net.lns, "10.201.0.2", sock, str(tmp_path / "lns.log"))
        call(sock, "ippool.create", pool_name="p", first_addr="10.202.0.10", num_addrs=4)
        call(sock, "ppp_profile.modify", profile_name="default", local_ipaddr="10.202.0.1",
             ip_pool_name="p", auth_peer=True, auth_pap=True, auth_chap=False,
             secrets_file=str(tmp_path / "chap-secrets"))
        for allow in (True, False):
            call(sock, "tunnel_profile.modify", profile_name="default", allow_ppp_proxy=allow)
            peer = _in_netns(net.lns, lambda: sp.ScriptedPeer("10.201.0.2",
                                                              ("10.201.0.2", 1701)))
            try:
                peer.establish()
                peer.icrq()
                dsid = peer.expect(sp.ICRP).get(sp.ASSIGNED_SESSION_ID)
                peer.iccn(dsid, extra=[
                    # Auth-Protocol PAP and Magic-Number, as the LAC asked them
                    (sp.LAST_SENT_LCP_CONFREQ, bytes.fromhex("0304c023050611223344")),
                    (sp.LAST_RECEIVED_LCP_CONFREQ, bytes.fromhex("050655667788")),
                    (sp.PROXY_AUTHEN_TYPE, 3), (sp.PROXY_AUTHEN_NAME, "alice"),
                    (sp.PROXY_AUTHEN_ID, 9), (sp.PROXY_AUTHEN_RESPONSE, b"secret")])
                frames = _ppp_frames(peer, 1.5)
                if allow:
                    # PAP Authenticate-Ack (c023, code 2) with the LAC's id, then an
                    # IPCP Configure-Request (8021, code 1); no LCP request at all.
                    assert frames[:2] == [(0xC023, 2, 9), (0x8021, 1, frames[1][2])], frames
                    assert not [f for f in frames if f[0] == 0xC021 and f[1] == 1], frames
                else:
                    assert frames and frames[0][:2] == (0xC021, 1), frames   # LCP afresh
            finally:
                peer.close()
