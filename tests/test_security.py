"""Issue 11 against a real daemon: what the management socket's group may touch (files
only inside the configuration directory, values that cannot break the config file's
grammar, non-regular files refused without blocking), a config file that applies
whole or not at all, and a second daemon on the same address and port.

Expected values are the documented rules (README "Security"), not the code's output.
"""
import os
import signal
import subprocess
import sys

import pytest

import rpc_unix
from daemon_util import ROOT, L2tpd, free_udp_port, wait_for


@pytest.fixture
def daemon(tmp_path):
    confdir = tmp_path / "etc"
    confdir.mkdir()
    d = L2tpd(tmp_path, "127.0.0.1", free_udp_port(), "a",
              args=["--config-dir", str(confdir)]).start()
    d.confdir = confdir
    yield d
    d.stop(signal.SIGKILL)


def _error(d, method, params):
    with pytest.raises(rpc_unix.RpcError) as ei:
        d.call(method, params)
    return ei.value


def test_config_files_named_over_rpc_stay_in_the_config_directory(daemon, tmp_path):
    d = daemon
    outside = tmp_path / "outside.conf"
    (d.confdir / "link.conf").symlink_to(outside)
    for name in (str(outside), "../outside.conf", "link.conf", "/etc/passwd"):
        for method in ("config.save", "config.restore"):
            e = _error(d, method, {"file": name})
            assert e.code == rpc_unix.ERR_NOT_PERMITTED and e.data["param"] == "file", name
    assert not outside.exists()
    r = d.call("config.save", {"file": "saved.conf"})       # relative: inside the dir
    assert r["file"] == str((d.confdir / "saved.conf").resolve())
    assert os.stat(r["file"]).st_mode & 0o777 == 0o600
    d.call("config.restore", {"file": "saved.conf"})


def test_restore_never_quotes_the_file(daemon):
    d = daemon
    (d.confdir / "key.pem").write_text("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkq\n")
    e = _error(d, "config.restore", {"file": "key.pem"})
    assert e.code == rpc_unix.ERR_CONFIG_FILE and e.data["line"] == 1
    assert "BEGIN" not in e.message and "PRIVATE" not in e.message
    (d.confdir / "bin.conf").write_bytes(b"tunnel list\n\xff\xfe secret bytes\n")
    e = _error(d, "config.restore", {"file": "bin.conf"})
    assert e.data["line"] == 2 and "secret" not in e.message and "ff" not in e.message


def test_restore_never_quotes_a_value_either(daemon):
    d = daemon
    for line in ("tunnel profile create profile_name=x hello_timeout=TOPSECRET-42",
                 "tunnel create dest_ipaddr=TOPSECRET-42"):
        (d.confdir / "leak.conf").write_text(line + "\n")
        e = _error(d, "config.restore", {"file": "leak.conf"})
        assert e.data["line"] == 1 and "TOPSECRET" not in e.message, e.message
        assert ("hello_timeout" if "hello" in line else "dest_ipaddr") in e.message


def test_a_named_pipe_is_refused_without_blocking(daemon):
    d = daemon
    os.mkfifo(d.confdir / "pipe.conf")
    e = _error(d, "config.restore", {"file": "pipe.conf"})
    assert e.code == rpc_unix.ERR_CONFIG_FILE and "not a regular file" in e.message
    assert d.call("system.get")["num_tunnels"] == 0          # still serving


def test_values_that_would_break_the_config_grammar_are_refused(daemon):
    d = daemon
    for value in ("a\nsystem modify deny_remote_tunnel_creates=yes", "a\x00b", "a\rb"):
        e = _error(d, "tunnel_profile.modify", {"profile_name": "default",
                                                 "host_name": value})
        assert e.code == rpc_unix.ERR_PARAM_BAD_VALUE and e.data["param"] == "host_name"
    r = d.call("config.save", {"file": "ok.conf"})
    text = open(r["file"]).read()
    assert "deny_remote_tunnel_creates" not in text


def test_secrets_file_only_from_the_config_or_ppp_directory(daemon, tmp_path):
    d = daemon
    for path in ("/etc/shadow", str(tmp_path / "x"), str(d.confdir / ".." / "x")):
        e = _error(d, "ppp_profile.modify", {"profile_name": "default", "secrets_file": path})
        assert e.code == rpc_unix.ERR_NOT_PERMITTED and e.data["param"] == "secrets_file"
    d.call("ppp_profile.modify", {"profile_name": "default",
                                  "secrets_file": str(d.confdir / "chap-secrets")})
    d.call("ppp_profile.modify", {"profile_name": "default",
                                  "secrets_file": "/etc/ppp/chap-secrets"})


def test_a_file_with_a_session_for_no_tunnel_changes_nothing(daemon):
    d = daemon
    conf = d.confdir / "bad.conf"
    conf.write_text("tunnel profile modify profile_name=default hello_timeout=33\n"
                    "session create tunnel_name=nowhere session_name=s\n")
    e = _error(d, "config.restore", {"file": "bad.conf"})
    assert e.data["line"] == 2 and "tunnel_name" in e.message
    prof = d.call("tunnel_profile.get", {"profile_name": "default"})
    assert prof["hello_timeout"] == 60                       # OpenL2TP's default, kept


def test_a_file_failing_part_way_through_is_undone(daemon):
    d = daemon
    port = d.port
    (d.confdir / "half.conf").write_text(
        "tunnel profile modify profile_name=default hello_timeout=33\n"
        "system modify max_tunnels=1\n"
        f"tunnel create dest_ipaddr=127.0.0.2 peer_udp_port={port} tunnel_name=x1\n"
        f"tunnel create dest_ipaddr=127.0.0.2 peer_udp_port={port} tunnel_name=x2\n")
    e = _error(d, "config.restore", {"file": "half.conf"})
    assert e.data["line"] == 4
    assert d.call("tunnel_profile.get", {"profile_name": "default"})["hello_timeout"] == 60
    assert d.call("system.get")["max_tunnels"] == 0
    wait_for(lambda: not [t for t in d.call("tunnel.list") if t.get("tunnel_name") == "x1"
                          and t["state"] != "closing"], 10, "x1 undone")


def test_bad_config_at_start_exits_nonzero(tmp_path):
    conf = tmp_path / "start.conf"
    conf.write_text("session create tunnel_name=nowhere\n")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "l2tpd.py"), "-f", "-a",
                        "127.0.0.1", "-u", str(free_udp_port()), "-s",
                        str(tmp_path / "s.sock"), "--dataplane", "null", "-c", str(conf)],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 1 and f"{conf}:1:" in r.stderr


def test_a_second_daemon_on_the_same_address_and_port_refuses_to_start(daemon, tmp_path):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "l2tpd.py"), "-f", "-a",
                        "127.0.0.1", "-u", str(daemon.port), "-s", str(tmp_path / "b.sock"),
                        "--dataplane", "null"],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 1 and "address in use" in r.stderr
    assert daemon.call("system.get")["udp_port"] == daemon.port   # the first one lives on


def test_a_save_replaces_the_file_never_rewrites_it_in_place(daemon):
    d = daemon
    d.call("config.save", {"file": "keep.conf"})
    before = (d.confdir / "keep.conf").read_bytes()
    # A second name for the old file: a save that truncated and rewrote keep.conf in
    # place (so a crash or a full disk could leave it half written) would change it.
    os.link(d.confdir / "keep.conf", d.confdir / "old.conf")
    d.call("tunnel_profile.modify", {"profile_name": "default", "hello_timeout": 33})
    d.call("config.save", {"file": "keep.conf"})
    assert (d.confdir / "old.conf").read_bytes() == before
    assert b"hello_timeout=33" in (d.confdir / "keep.conf").read_bytes()
    assert sorted(x.name for x in d.confdir.iterdir()) == ["keep.conf", "old.conf"]
    e = _error(d, "config.save", {"file": "."})             # the directory itself
    assert e.data["param"] == "file"
