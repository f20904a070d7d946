"""ppp.py glue, CPython only: pppd's argv and exit statuses, secrets files on disk,
spawning with an inherited descriptor, the engine part staying import-light, and
Wireshark's PPP dissectors as an independent oracle for the frames the engine
builds (skipped without tshark, except with CI=true)."""
import os
import re
import shutil
import struct
import subprocess
import sys

import pytest

import ppp

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROFILE = {  # a resolved PPP profile as the daemon hands it (OpenL2TP names)
    "mru": 1460, "mtu": 1460, "auth_pap": True, "auth_chap": True, "auth_mschapv1": False,
    "auth_mschapv2": False, "auth_eap": False, "auth_none": False, "auth_peer": False,
    "chap_interval": 0, "lcp_echo_interval": 20, "lcp_echo_failure_count": 3,
    "lcp_max_config_requests": 10, "lcp_retransmit_interval": 3,
    "local_ipaddr": "10.0.0.1", "remote_ipaddr": "10.0.0.2", "dns_ipaddr_pri": "192.0.2.53",
    "dns_ipaddr_sec": None, "ip_pool_name": "p", "local_name": "lns1", "trace_flags": 0,
    "default_route": False, "multilink": False, "proxy_arp": False, "sync_mode": "any",
    "asyncmap": 0,
}


def test_pppd_args_for_an_lns_session():
    argv = ppp.pppd_args(7, 100, 200, 300, 400, PROFILE, True, interface_name="l2tp100-200",
                         send_seq=True, recv_seq=True, reorder_timeout=50, ipparam="t1")
    assert argv == [
        "/usr/sbin/pppd", "plugin", "pppol2tp.so", "pppol2tp", "7",
        "pppol2tp_tunnel_id", "100", "pppol2tp_session_id", "200", "pppol2tp_lns_mode",
        "pppol2tp_send_seq", "pppol2tp_recv_seq", "pppol2tp_reorderto", "50",
        "ifname", "l2tp100-200",
        "nodetach", "local", "noipdefault", "noaccomp", "nopcomp", "nobsdcomp", "nodeflate",
        "nopredictor1", "novj", "novjccomp",
        "mru", "1460", "mtu", "1460",
        "auth", "require-pap", "require-chap", "refuse-mschap", "refuse-mschap-v2",
        "refuse-eap",
        "lcp-echo-interval", "20", "lcp-echo-failure", "3", "lcp-max-configure", "10",
        "lcp-restart", "3",
        "10.0.0.1:10.0.0.2", "ms-dns", "192.0.2.53",
        "nodefaultroute", "noendpoint", "nomultilink", "name", "lns1", "ipparam", "t1",
    ]


def test_pppd_args_for_a_lac_client():
    prof = {"auth_pap": False, "auth_none": True, "trace_flags": 1024, "default_route": True,
            "sync_mode": "sync", "asyncmap": 0xA0000}
    argv = ppp.pppd_args(3, 1, 2, 3, 4, prof, False, user_name="alice",
                         user_password="wonderland", pppd="/sbin/pppd")
    assert argv[:9] == ["/sbin/pppd", "plugin", "pppol2tp.so", "pppol2tp", "3",
                        "pppol2tp_tunnel_id", "1", "pppol2tp_session_id", "2"]
    assert "pppol2tp_lns_mode" not in argv
    assert argv[argv.index("novjccomp") + 1:] == [
        "sync", "asyncmap", "a0000", "noauth", "refuse-pap", "defaultroute", "noendpoint",
        "nomultilink", "debug", "kdebug", "1", "ipparam", "l2tp",
        "user", "alice", "password", "wonderland"]


def test_pppd_exit_reasons():
    assert ppp.pppd_exit_reason(0) == "pppd exited normally"
    assert ppp.pppd_exit_reason(11) == "pppd: the peer failed or refused to authenticate"
    assert ppp.pppd_exit_reason(15) == "pppd: the peer does not answer LCP Echo-Requests"
    assert ppp.pppd_exit_reason(19) == "pppd: we failed to authenticate to the peer"
    assert ppp.pppd_exit_reason(-9) == "pppd was killed by signal 9"
    assert ppp.pppd_exit_reason(42) == "pppd exited with status 42"
    assert ppp.pppd_exit_reason(None) == "pppd is still running"
    assert sorted(ppp.PPPD_EXIT) == list(range(20))


def test_read_secrets_from_disk(tmp_path):
    path = tmp_path / "chap-secrets"
    path.write_text('# client server secret IP addresses\n'
                    '"alice"  *  "wonder land"  10.0.0.9\n'
                    'bob lns1 builder\n')
    entries = ppp.read_secrets(str(path))
    assert entries == [("alice", "*", "wonder land", ["10.0.0.9"]),
                       ("bob", "lns1", "builder", [])]
    assert ppp.lookup_secret(entries, "bob", "lns1") == "builder"
    logged = []
    assert ppp.read_secrets(str(tmp_path / "missing"), logged.append) == []
    assert logged and logged[0].startswith(f"cannot read secrets file {tmp_path}/missing")


def test_spawn_pppd_passes_the_descriptor(tmp_path):
    r, w = os.pipe()
    try:
        code = f"import os; os.write({w}, b'inherited')"
        proc = ppp.spawn_pppd([sys.executable, "-c", code], w)
        assert proc.wait(timeout=30) == 0
        assert os.read(r, 100) == b"inherited"
    finally:
        os.close(r)
        os.close(w)


def test_import_ppp_loads_no_io_modules():
    code = ("import sys; sys.path.insert(0, %r); import ppp; "
            "print(sorted(m for m in ('subprocess', 'socket', 'select', 'os', 'time', "
            "'logging', 'random') if m in sys.modules and m not in before))" % HERE)
    code = "import sys; before = set(sys.modules); " + code
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    assert out.strip() == "[]"


def test_the_engine_part_imports_only_hashlib_and_micropython():
    with open(os.path.join(HERE, "ppp.py")) as f:
        text = f.read()
    engine, glue = text.split("# " + "-" * 64 + " pppd glue")
    imports = re.compile(r"^\s*(?:import (\w+)(?: as \w+)?$|from (\w+) import)", re.M)
    names = ["".join(m) for m in imports.findall(engine)]
    assert set(names) == {"hashlib", "uhashlib", "micropython"}
    assert not re.search(r"[^.\w]open\(", engine.replace("def open(", ""))
    assert ["".join(m) for m in imports.findall(glue)] == ["subprocess"]


# ---------------------------------------------------------------- Wireshark as an oracle
def _oracle_frames():
    """Frames of several sessions: CHAP with DNS, echo and a terminate; PAP; a
    refused login; the rejects (options, protocols, codes) an odd peer draws."""
    sys.path.insert(0, os.path.join(HERE, "tests"))
    import test_ppp as t
    out = []
    p = t.Pair(t.server(dns_ipaddr_pri="192.0.2.53", wins_ipaddr_pri="192.0.2.54",
                        lcp_echo_interval=5, mru=1400)).start()
    p.c.send_ip(bytes.fromhex("4500001c0000000040010000c0000201c00002020800f7ff00000000"))
    p.s.receive(bytes.fromhex("ff03 8057 01 01 000e 010a 0011223344556677"), p.now)
    p.s.receive(t.lcp_frame(14, 2, b"xyz"), p.now)
    p.s.receive(t.lcp_frame(1, 0x42, bytes.fromhex(
        "0104 05dc 0206 00000000 0506 11223344 0702 0802 1104 05f4 1309 01020304050607")), p.now)
    p.s.receive(t.lcp_frame(1, 0x43, bytes.fromhex("0104 0040")), p.now)  # draws a Nak
    p.run(6000)
    p.c.close(p.now, "bye")
    p.run(30000)
    out += [f for d, f in p.sent]
    for pair in (t.Pair(t.server(auth_chap=False)), t.Pair(c=t.client(user_password="x"))):
        pair.start()
        pair.run(30000)
        out += [f for d, f in pair.sent]
    return out


def _pcap(frames):
    data = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 9)  # DLT_PPP
    for i, f in enumerate(frames):
        data += struct.pack("<IIII", i, 0, len(f), len(f)) + f
    return data


_FIELDS = ("ppp.protocol", "ppp.code", "ppp.identifier", "ppp.length", "lcp.opt.type",
           "ipcp.opt.type", "chap.code", "chap.identifier", "chap.name", "pap.code",
           "pap.peer_id", "pap.password", "_ws.malformed", "_ws.expert.severity")


def test_wireshark_decodes_every_frame_as_we_built_it(tmp_path):
    if shutil.which("tshark") is None:
        if os.environ.get("CI") == "true":
            raise AssertionError("CI must have tshark")
        pytest.skip("tshark is not installed")
    frames = _oracle_frames()
    path = tmp_path / "ppp.pcap"
    path.write_bytes(_pcap(frames))
    cmd = ["tshark", "-r", str(path), "-T", "fields", "-E", "separator=|",
           "-E", "occurrence=a", "-E", "aggregator=,"] + [a for f in _FIELDS for a in ("-e", f)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    rows = [line.split("|") for line in out.strip().split("\n")]
    assert len(rows) == len(frames)
    seen = set()
    for f, row in zip(frames, rows):
        got = dict(zip(_FIELDS, row))
        # One value per field, except option types: the first one (a Protocol-
        # Reject's quoted packet is dissected too and adds its own).
        first = {k: v.split(",")[0] for k, v in got.items()}
        proto = (f[2] << 8) | f[3]
        seen.add((proto, f[4]))
        assert got["_ws.malformed"] == "", f.hex()
        for sev in got["_ws.expert.severity"].split(","):
            assert not sev or int(sev) < 0x00600000, (f.hex(), sev)  # below "warning"
        if proto == 0x0021:
            continue
        length = (f[6] << 8) | f[7]
        if proto in (0xC021, 0x8021):
            assert (first["ppp.code"], first["ppp.identifier"], first["ppp.length"]) == (
                str(f[4]), str(f[5]), str(length)), f.hex()
            if f[4] <= 4:  # Configure-*: the option types, read by hand
                types, i = [], 8
                while i < len(f):
                    types.append(str(f[i]))
                    i += f[i + 1]
                key = "lcp.opt.type" if proto == 0xC021 else "ipcp.opt.type"
                assert got[key].split(",") == (types or [""]), f.hex()
        elif proto == 0xC223:
            assert (first["chap.code"], first["chap.identifier"]) == (str(f[4]), str(f[5]))
            if f[4] <= 2:
                assert got["chap.name"] == f[9 + f[8]:].decode()
        elif proto == 0xC023:
            assert first["pap.code"] == str(f[4])
            if f[4] == 1:
                n = f[8]
                assert got["pap.peer_id"] == f[9:9 + n].decode()
                assert got["pap.password"] == f[10 + n:10 + n + f[9 + n]].decode()
    # The exchanges covered: LCP 1-10, PAP 1-3, CHAP 1-4, IPCP 1-4.
    assert {(0xC021, c) for c in range(1, 11)} <= seen
    assert {(0xC223, c) for c in (1, 2, 3, 4)} <= seen and {(0xC023, 1), (0xC023, 2)} <= seen
    assert {(0x8021, c) for c in (1, 2, 3, 4)} <= seen
