"""Interop: our daemon against a live xl2tpd 1.3.18 (Debian package), both roles.

Our l2tpd runs on 127.0.0.2 (null data path), xl2tpd on 127.0.0.3, both on one UDP port
picked at run time (xl2tpd's `port` in [global]; its LAC is given `lns = addr:port`).
xl2tpd's own pppd cannot start here (no /dev/ppp): it clears every call with a CDN a
few ms after the ICCN, which these tests take as part of the script.

Every process is started in its own session and stopped by its PID; xl2tpd's config,
pid file, control FIFO and secrets file live in the test's temporary directory (its
packaged service is never touched). xl2tpd is driven through its control FIFO (-C):
`c <lac>` places a call (creating the tunnel first), `d <lac>` clears the tunnel.

An interop problem this file found: xl2tpd unhides an SCCRQ or SCCRP before it looks
its secret up, so our LNS hid AVPs in SCCRP and xl2tpd LACs could not connect. We now
hide nothing in SCCRQ/SCCRP unless `hide_setup_avps` is set; the hidden-AVP tests check
that the later messages are still hidden and read right.
"""
import errno
import json
import os
import re
import signal
import subprocess

import pytest

import rpc_unix
from daemon_util import L2tpd, free_udp_port, tunnel_state, wait_for

XL2TPD = "/usr/sbin/xl2tpd"
OURS = "127.0.0.2"
THEIRS = "127.0.0.3"
SECRET = "s3cret"


def _require_xl2tpd():
    if os.access(XL2TPD, os.X_OK):
        return
    why = f"{XL2TPD} is not installed (Debian package xl2tpd)"
    if os.environ.get("CI") == "true":
        pytest.fail(why + ": CI installs it, so these tests must run there")
    pytest.skip(why)


class Xl2tpd:
    """One xl2tpd process on THEIRS; config, pid, FIFO and secrets in its own dir."""

    def __init__(self, tmp, port, sections, secret=SECRET):
        self.dir = os.path.join(str(tmp), "xl2tpd")
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "xl2tpd.conf")
        self.secrets = os.path.join(self.dir, "l2tp-secrets")
        self.pidfile = os.path.join(self.dir, "xl2tpd.pid")
        self.fifo = os.path.join(self.dir, "l2tp-control")
        self.logfile = os.path.join(self.dir, "xl2tpd.log")
        with open(self.secrets, "w") as f:
            f.write(f"* * {secret}\n")
        os.chmod(self.secrets, 0o600)
        with open(self.conf, "w") as f:
            f.write("[global]\n"
                    f"listen-addr = {THEIRS}\n"
                    f"port = {port}\n"
                    f"auth file = {self.secrets}\n"
                    "debug avp = yes\n"
                    "debug state = yes\n"
                    "debug tunnel = yes\n\n" + sections)
        self.proc = None
        self.log = None

    def start(self):
        self.log = open(self.logfile, "ab")
        self.proc = subprocess.Popen(
            [XL2TPD, "-D", "-c", self.conf, "-p", self.pidfile, "-C", self.fifo,
             "-s", self.secrets],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=self.dir)
        try:
            wait_for(lambda: self.proc.poll() is not None or "Listening on IP address" in
                     self.read_log(), 10, "xl2tpd to listen")
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.read_log()}") from None
        if self.proc.poll() is not None:
            raise AssertionError(f"xl2tpd exited with {self.proc.returncode}:\n"
                                 + self.read_log())
        return self

    def read_log(self):
        try:
            with open(self.logfile, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def control(self, line):
        """Write one command into the control FIFO (what xl2tpd-control does)."""
        def open_fifo():
            try:
                return os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as e:
                if e.errno in (errno.ENXIO, errno.ENOENT):
                    return None   # not created or not opened for reading yet
                raise
        fd = wait_for(open_fifo, 5, "xl2tpd's control FIFO")
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()
        self.proc = None


def lac_section(name, port, hostname, challenge=False):
    """An xl2tpd LAC that dials our LNS when told (`c NAME`), never by itself."""
    return (f"[lac {name}]\n"
            f"lns = {OURS}:{port}\n"
            f"hostname = {hostname}\n"
            "autodial = no\n"
            "redial = no\n"
            "length bit = yes\n"
            f"challenge = {'yes' if challenge else 'no'}\n"
            "require authentication = no\n"
            "ppp debug = no\n\n")


def lns_section(hostname="xl-lns", challenge=False):
    return ("[lns default]\n"
            "ip range = 10.99.1.10-10.99.1.20\n"
            "local ip = 10.99.1.1\n"
            f"hostname = {hostname}\n"
            "length bit = yes\n"
            f"challenge = {'yes' if challenge else 'no'}\n"
            "require authentication = no\n"
            "ppp debug = no\n\n")


class Rig:
    """Our daemon on OURS and the xl2tpd processes of one test, on one port."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.port = free_udp_port((OURS, THEIRS))
        self.ours = None
        self.xl = None
        self.events = None
        self.seen = []

    # Each process is recorded before it starts, so close() stops it even when it
    # never answers.
    def start_ours(self):
        self.ours = L2tpd(self.tmp, OURS, self.port, "ours", args=["-d", "protocol,fsm"])
        return self.ours.start()

    def start_xl2tpd(self, sections, secret=SECRET):
        if self.ours is not None:
            self.port = self.ours.port   # daemon_util may have moved it off a taken port
        self.xl = Xl2tpd(self.tmp, self.port, sections, secret)
        return self.xl.start()

    def subscribe(self):
        self.events = rpc_unix.RpcClient(self.ours.sock)
        self.events.call("events.subscribe")

    def wait(self, cond, what, timeout=10.0):
        """wait_for, with both daemons' logs in the failure message."""
        try:
            return wait_for(cond, timeout, what)
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.logs()}") from None

    def wait_event(self, pred, what, timeout=10.0):
        """The events seen so far that satisfy `pred`, once there is one."""
        def check():
            self.seen.extend(p for _m, p in self.events.notifications(0.05))
            return [ev for ev in self.seen if pred(ev)]
        return self.wait(check, what, timeout)

    def wait_xl_log(self, regex, what, timeout=10.0):
        return self.wait(lambda: re.search(regex, self.xl.read_log()), what, timeout)

    def logs(self):
        ours = self.ours.read_log() if self.ours else ""
        theirs = self.xl.read_log()[-4000:] if self.xl else ""
        return f"--- l2tpd log:\n{ours}\n--- xl2tpd log:\n{theirs}"

    def close(self):
        try:
            if self.events is not None:
                self.events.close()
            if self.xl is not None:
                self.xl.stop()
        finally:
            if self.ours is not None:
                self.ours.stop(signal.SIGKILL)


@pytest.fixture
def rig(tmp_path):
    _require_xl2tpd()
    r = Rig(tmp_path)
    try:
        yield r
    finally:
        r.close()


def _state(d, tid):
    return d.call("tunnel.get", {"tunnel_id": tid})["state"]


def _show(d, tid):
    return json.loads(d.ctl("tunnel", "show", f"tunnel_id={tid}", json_out=True).stdout)


def _call_comes_and_goes(rig, match, what):
    """A call that comes up on our side and is then cleared by xl2tpd's CDN (its pppd
    fails 5-15 ms after the ICCN). Too short a window to poll session.list for the
    established state: the events say it was up, then down, in that order."""
    up = rig.wait_event(lambda ev: ev["event"] == "session_up" and match(ev),
                        f"{what}: session_up")[0]
    down = rig.wait_event(lambda ev: ev["event"] == "session_down"
                          and ev["tunnel_id"] == up["tunnel_id"]
                          and ev["session_id"] == up["session_id"], f"{what}: session_down")[0]
    assert rig.seen.index(up) < rig.seen.index(down)
    assert "CDN" in down["reason"], down
    return up, down


# ---------------------------------------------------------------- 1. xl2tpd LAC, our LNS
def test_xl2tpd_lac_calls_our_lns(rig):
    ours = rig.start_ours()
    xl = rig.start_xl2tpd(lac_section("t", rig.port, "xl-lac"))
    rig.subscribe()
    xl.control("c t")

    up = rig.wait_event(lambda ev: ev["event"] == "tunnel_up", "tunnel_up")[0]
    tid = up["tunnel_id"]
    assert up["peer_addr"] == THEIRS and up["peer_port"] == rig.port
    call, _ = _call_comes_and_goes(rig, lambda ev: ev["tunnel_id"] == tid, "the call")
    assert call["session_type"] == "lnic" and call["peer_session_id"]
    assert rig.seen.index(up) < rig.seen.index(call)
    rig.wait_xl_log(rf"Call established with 127\.0\.0\.2, Local: {call['peer_session_id']}, "
                    rf"Remote: {call['session_id']}\b", "xl2tpd: call established")
    rig.wait_xl_log(rf"call_close: Call {call['peer_session_id']} to 127\.0\.0\.2 "
                    "disconnected", "xl2tpd: call cleared")
    rig.wait(lambda: ours.call("session.list") == [], "our session list empty")

    # The tunnel stays up; what the peer told us about itself is visible.
    rows = ours.call("tunnel.list")
    assert [(r["tunnel_id"], r["state"]) for r in rows] == [(tid, "established")], rows
    listing = ours.ctl("tunnel", "list").stdout
    assert re.search(rf"^{tid}\s.*\bestablished\b", listing, re.M), listing
    shown = _show(ours, tid)
    assert shown["dest_ipaddr"] == THEIRS and shown["created_by_admin"] is False
    assert shown["peer"]["host_name"] == "xl-lac"
    assert shown["peer"]["vendor_name"] == "xelerance.com"
    assert shown["num_sessions"] == 0
    human = ours.ctl("tunnel", "show", f"tunnel_id={tid}").stdout
    assert "xelerance.com" in human and "xl-lac" in human
    rig.wait_xl_log(rf"Connection established to 127\.0\.0\.2, {rig.port}\.  "
                    rf"Local: {shown['peer_tunnel_id']}, Remote: {tid}\b",
                    "xl2tpd: tunnel established")

    # `d t`: xl2tpd clears the tunnel with a StopCCN.
    xl.control("d t")
    down = rig.wait_event(lambda ev: ev["event"] == "tunnel_down", "tunnel_down")[0]
    assert down["tunnel_id"] == tid and "peer sent StopCCN" in down["reason"], down
    assert _state(ours, tid) != "established"
    rig.wait_xl_log(rf"Connection {tid} closed to 127\.0\.0\.2, port {rig.port}",
                    "xl2tpd: tunnel closed")
    assert "established" not in ours.ctl("tunnel", "list").stdout


# ---------------------------------------------------------------- 2. our LAC, xl2tpd LNS
def test_our_lac_calls_xl2tpd_lns(rig):
    ours = rig.start_ours()
    xl = rig.start_xl2tpd(lns_section("xl-lns"))
    rig.subscribe()
    r = ours.ctl("tunnel", "create", f"dest_ipaddr={THEIRS}", f"peer_udp_port={rig.port}",
                 "tunnel_name=t1", "host_name=our-lac")
    assert r.stdout.startswith("Created tunnel ")
    rig.wait(lambda: tunnel_state(ours, "t1") == "established", "t1 established")
    t1 = ours.call("tunnel.get", {"tunnel_name": "t1"})
    assert t1["peer"]["host_name"] == "xl-lns"
    assert t1["peer"]["vendor_name"] == "xelerance.com"
    rig.wait_xl_log(rf"Connection established to 127\.0\.0\.2, {rig.port}\.  "
                    rf"Local: {t1['peer_tunnel_id']}, Remote: {t1['tunnel_id']}\b",
                    "xl2tpd: tunnel established")
    assert "hostname_avp: peer reports hostname 'our-lac'" in xl.read_log()

    for name in ("s1", "s2"):   # s2: still in step after the CDN of s1
        r = ours.ctl("session", "create", "tunnel_name=t1", f"session_name={name}")
        assert r.stdout.startswith("Created session ")
        call, _ = _call_comes_and_goes(rig, lambda ev, n=name: ev["session_name"] == n, name)
        assert call["session_type"] == "laic" and call["peer_session_id"]
        rig.wait_xl_log(rf"Call established with 127\.0\.0\.2, PID: \d+, Local: "
                        rf"{call['peer_session_id']}, Remote: {call['session_id']}\b",
                        f"xl2tpd: {name} established")
        rig.wait_xl_log(rf"call_close: Call {call['peer_session_id']} to 127\.0\.0\.2 "
                        "disconnected", f"xl2tpd: {name} cleared")
        rig.wait(lambda: ours.call("session.list") == [], "our session list empty")
        assert tunnel_state(ours, "t1") == "established"

    assert ours.ctl("tunnel", "delete", "tunnel_name=t1").stdout.startswith("Deleted tunnel")
    down = rig.wait_event(lambda ev: ev["event"] == "tunnel_down", "t1 tunnel_down")[0]
    assert down["tunnel_name"] == "t1" and "sent StopCCN" in down["reason"], down
    rig.wait_xl_log(r"peer closing for reason 1 \(General request to clear control "
                    r"connection\)", "xl2tpd: our StopCCN")
    rig.wait_xl_log(rf"Connection closed to 127\.0\.0\.2, port {rig.port} \(deleted by the "
                    rf"administrator\), Local: {t1['peer_tunnel_id']}, Remote: "
                    rf"{t1['tunnel_id']}\b", "xl2tpd: tunnel closed")
    assert all(row["state"] != "established" for row in ours.call("tunnel.list"))


# ---------------------------------------------------------------- 3. tunnel authentication
def test_tunnel_auth_xl2tpd_lac_to_our_lns(rig):
    ours = rig.start_ours()
    # Peers at 127.0.0.3 must pass the challenge with s3cret; for the one that calls
    # itself xl-bad (a peer profile matches the Host Name before the address) we hold
    # another secret.
    ours.ctl("tunnel", "profile", "create", "profile_name=secure", f"secret={SECRET}",
             "auth_mode=challenge")
    ours.ctl("tunnel", "profile", "create", "profile_name=other", "secret=n0tit",
             "auth_mode=challenge")
    ours.ctl("peer", "profile", "create", "profile_name=xl", f"peer_ipaddr={THEIRS}",
             "tunnel_profile_name=secure")
    ours.ctl("peer", "profile", "create", "profile_name=xl-bad", "tunnel_profile_name=other")
    xl = rig.start_xl2tpd(lac_section("good", rig.port, "xl-good", challenge=True)
                          + lac_section("bad", rig.port, "xl-bad", challenge=True))
    rig.subscribe()

    xl.control("c good")
    up = rig.wait_event(lambda ev: ev["event"] == "tunnel_up", "good: tunnel_up")[0]
    good = _show(ours, up["tunnel_id"])
    assert good["state"] == "established" and good["profile_name"] == "secure"
    assert good["peer_profile_name"] == "xl" and good["secret_set"] is True
    assert good["peer"]["host_name"] == "xl-good"
    assert good["peer"]["challenge_ok"] is True   # xl2tpd answered our challenge
    # ... and we answered its challenge: it checks our SCCRP before its SCCCN.
    rig.wait_xl_log(rf"Connection established to 127\.0\.0\.2, {rig.port}\.  Local: "
                    rf"{good['peer_tunnel_id']}, Remote: {up['tunnel_id']}\b",
                    "xl2tpd: good tunnel established")
    assert "chalresp_avp: Challenge reply found" in xl.read_log()

    xl.control("c bad")
    down = rig.wait_event(lambda ev: ev["event"] == "tunnel_down", "bad: tunnel_down")[0]
    bad = _show(ours, down["tunnel_id"])
    assert bad["peer"]["host_name"] == "xl-bad" and bad["profile_name"] == "other"
    assert bad["state"] != "established"
    # xl2tpd finds our Challenge Response wrong first (in our SCCRP) and says so.
    assert bad["down_reason"] == ("peer sent StopCCN, result 2 error 6: "
                                  "Invalid challenge authentication"), bad["down_reason"]
    assert (bad["result"]["result_code"], bad["result"]["error_code"]) == (2, 6)
    human = ours.ctl("tunnel", "show", f"tunnel_id={down['tunnel_id']}").stdout
    assert re.search(r"down_reason:\s+peer sent StopCCN", human), human
    rig.wait_xl_log(r"control_finish: Invalid authentication for host '[^']*'",
                    "xl2tpd: our response refused")
    assert not [ev for ev in rig.seen if ev["event"] == "tunnel_up"
                and ev["tunnel_id"] == down["tunnel_id"]]
    assert _state(ours, up["tunnel_id"]) == "established"


def test_tunnel_auth_our_lac_to_xl2tpd_lns(rig):
    ours = rig.start_ours()
    xl = rig.start_xl2tpd(lns_section("xl-lns", challenge=True))
    dest = [f"dest_ipaddr={THEIRS}", f"peer_udp_port={rig.port}"]
    ours.ctl("tunnel", "create", *dest, "tunnel_name=good", f"secret={SECRET}")
    rig.wait(lambda: tunnel_state(ours, "good") == "established", "good established")
    good = ours.call("tunnel.get", {"tunnel_name": "good"})
    assert good["peer"]["challenge_ok"] is True   # xl2tpd answered our challenge
    # ... and it checked our answer to its challenge (in our SCCCN) before this line.
    rig.wait_xl_log(rf"Connection established to 127\.0\.0\.2, {rig.port}\.  Local: "
                    rf"{good['peer_tunnel_id']}, Remote: {good['tunnel_id']}\b",
                    "xl2tpd: good tunnel established")
    assert "chalresp_avp: Challenge reply found" in xl.read_log()

    ours.ctl("tunnel", "create", *dest, "tunnel_name=bad", "secret=n0tit")
    rig.wait(lambda: tunnel_state(ours, "bad") not in ("wait-ctl-reply", "established"),
             "bad refused")
    bad = json.loads(ours.ctl("tunnel", "show", "tunnel_name=bad", json_out=True).stdout)
    # We find xl2tpd's Challenge Response (in its SCCRP) wrong and refuse it.
    assert bad["down_reason"] == ("sent StopCCN, result 4 error 0: not authorized: "
                                  "wrong Challenge Response in SCCRP"), bad["down_reason"]
    assert bad["result"]["result_code"] == 4
    human = ours.ctl("tunnel", "show", "tunnel_name=bad").stdout
    assert re.search(r"down_reason:\s+sent StopCCN", human), human
    assert ours.call("system.get")["stats"]["auth_fails"] >= 1
    rig.wait_xl_log(r"result_code_avp: peer closing for reason 4 \(Requester is not "
                    r"authorized to establish a control channel\)", "xl2tpd: our StopCCN")
    rig.wait_xl_log(rf"Connection closed to 127\.0\.0\.2, port {rig.port} \(not authorized: "
                    rf"wrong Challenge Response in SCCRP\), Local: \d+, Remote: "
                    rf"{bad['tunnel_id']}\b", "xl2tpd: bad tunnel closed")
    assert tunnel_state(ours, "good") == "established"


# ---------------------------------------------------------------- 4. hidden AVPs
def _xl_message_logs(log):
    """xl2tpd's AVP log split per message it received: [(message type, lines)]."""
    out = []
    for line in log.splitlines():
        m = re.search(r"message_type_avp: message type (\d+) ", line)
        if m:
            out.append((int(m.group(1)), []))
        elif out:
            out[-1][1].append(line)
    return out


def test_hidden_avps_our_lac_to_xl2tpd_lns(rig):
    ours = rig.start_ours()
    xl = rig.start_xl2tpd(lns_section("xl-lns", challenge=True))
    rig.subscribe()
    ours.ctl("tunnel", "create", f"dest_ipaddr={THEIRS}", f"peer_udp_port={rig.port}",
             "tunnel_name=h", f"secret={SECRET}", "hide_avps=yes")
    rig.wait(lambda: tunnel_state(ours, "h") == "established", "h established")
    h = ours.call("tunnel.get", {"tunnel_name": "h"})
    assert h["hide_avps"] is True and h["peer"]["challenge_ok"] is True
    rig.wait_xl_log(rf"Connection established to 127\.0\.0\.2, {rig.port}\.  Local: "
                    rf"{h['peer_tunnel_id']}, Remote: {h['tunnel_id']}\b",
                    "xl2tpd: tunnel established")
    ours.ctl("session", "create", "tunnel_name=h", "session_name=hs")
    call, _ = _call_comes_and_goes(rig, lambda ev: ev["session_name"] == "hs", "hs")
    rig.wait_xl_log(rf"call_close: Call {call['peer_session_id']} to 127\.0\.0\.2 "
                    "disconnected", "xl2tpd: hs cleared")

    # What xl2tpd read: nothing hidden in our SCCRQ; a Random Vector (we hide) in our
    # SCCCN, whose hidden Challenge Response it checked, and in ICRQ and ICCN, whose
    # hidden values it decrypted right.
    msgs = _xl_message_logs(xl.read_log())
    by_type = {}
    for mtype, lines in msgs:
        by_type.setdefault(mtype, "\n".join(lines))
    assert "rand_vector_avp" not in by_type[1]
    assert "rand_vector_avp: Random Vector of" in by_type[3]
    assert "chalresp_avp: Challenge reply found" in by_type[3]
    icrq, iccn = by_type[10], by_type[12]
    assert "rand_vector_avp: Random Vector of" in icrq
    assert f"assigned_call_avp: using peer's call {call['session_id']}\n" in icrq + "\n"
    assert re.search(r"call_serno_avp: serial number is [1-9]\d*$", icrq, re.M), icrq
    assert "rand_vector_avp: Random Vector of" in iccn
    assert "tx_speed_avp: transmit baud rate is 1000000" in iccn
    assert re.search(rf"Call established with 127\.0\.0\.2, PID: \d+, Local: "
                     rf"{call['peer_session_id']}, Remote: {call['session_id']}\b",
                     xl.read_log())
    assert tunnel_state(ours, "h") == "established"


def test_hidden_avps_xl2tpd_lac_to_our_lns(rig):
    ours = rig.start_ours()
    # The default tunnel profile holds the secret (no auth_mode, no peer profile).
    ours.ctl("tunnel", "profile", "modify", "profile_name=default", f"secret={SECRET}",
             "hide_avps=yes")
    xl = rig.start_xl2tpd(lac_section("h", rig.port, "xl-lac", challenge=True))
    rig.subscribe()
    xl.control("c h")
    first = rig.wait_event(lambda ev: ev["event"] in ("tunnel_up", "tunnel_down"),
                           "the tunnel up or refused")[0]
    # xl2tpd unhides an SCCRP before it knows its secret: we hide nothing there.
    assert first["event"] == "tunnel_up", f"{first}\n{rig.logs()}"
    tid = first["tunnel_id"]
    assert _show(ours, tid)["peer"]["challenge_ok"] is True
    call, _ = _call_comes_and_goes(rig, lambda ev: ev["tunnel_id"] == tid, "the call")
    # Our ICRP hid the Assigned Session ID: xl2tpd read it right.
    rig.wait_xl_log(rf"Call established with 127\.0\.0\.2, Local: {call['peer_session_id']}, "
                    rf"Remote: {call['session_id']}\b", "xl2tpd: call established")
    assert _state(ours, tid) == "established"
