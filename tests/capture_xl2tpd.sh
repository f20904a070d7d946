#!/usr/bin/env bash
# Capture real L2TP (RFC 2661) control messages between two xl2tpd daemons
# (one LAC, one LNS) and turn them into test vectors.
#
# Not run by CI.  Needs root, xl2tpd, tshark, iproute2, util-linux (unshare,
# setsid) and python3.  Usage:
#
#     sudo tests/capture_xl2tpd.sh [OUTDIR]
#
# OUTDIR (default: a new directory under /tmp) receives one pcap, the tshark
# listing and the daemon logs per run, and `vectors_xl2tpd.generated.py`, the
# raw material for tests/vectors_xl2tpd.py (that file adds hand-written notes).
#
# Runs (each in a fresh pair of network namespaces joined by a veth pair,
# LAC 10.99.0.1/24, LNS 10.99.0.2/24; nothing is routed out of them):
#   plain   no tunnel secret, no hidden AVPs.  The real pppd cannot start here
#           (no /dev/ppp), so xl2tpd clears the call with a CDN a few ms after
#           ICCN; then `d capture` into the LAC's control FIFO (what
#           `xl2tpd-control disconnect-lac` sends) makes it send StopCCN.
#   hidden  `challenge = yes` + `hidden bit = yes` on both sides, secret s3cret
#           in an l2tp-secrets file (`* * s3cret`).  Same sequence.
#   crafted xl2tpd 1.3.18 never sets the H bit (with `hidden bit = yes` it only
#           adds a Random Vector AVP to every message), so it cannot give us
#           hidden AVPs.  Here a small scripted LAC (python, below) replays
#           the SCCRQ of run "hidden" to an xl2tpd LNS, answers its challenge
#           in an SCCCN, then sends an ICRQ with Assigned Session ID and Call
#           Serial Number hidden per RFC 2661 4.3 (the serial number padded so
#           it spans two MD5 blocks).  It checks that the LNS answers with an
#           ICRP addressed to the hidden session id, and the LNS log shows the
#           hidden serial number.  (Hidden AVPs in an SCCRQ cannot be checked
#           this way: the xl2tpd LNS looks the secret up only after it has
#           parsed the SCCRQ, and decrypts them with an empty secret.)
#   hello   plain config, but /usr/sbin/pppd is replaced (bind mount inside a
#           private mount namespace of each xl2tpd process only) by a stub that
#           writes one async-HDLC LCP Configure-Request and then waits, so the
#           call stays up: gives data messages and, after 60 s, HELLOs.  Then
#           the LAC's control FIFO gets `d capture` (disconnect-lac).
#
# Select runs with RUNS="plain hidden" (default: all four; hello takes ~70 s;
# crafted needs hidden in the same OUTDIR).
#
# Every wait is bounded; namespaces, veth and every process this script
# started are removed on exit, also on failure or Ctrl-C.  Processes are
# ended by their PID only.  The packaged xl2tpd service is never touched.

set -euo pipefail

SECRET=s3cret
LAC_IP=10.99.0.1
LNS_IP=10.99.0.2
RUNS=${RUNS:-"plain hidden crafted hello"}
HELLO_WAIT=${HELLO_WAIT:-66}      # seconds the tunnel is kept up in run "hello"
XL2TPD=/usr/sbin/xl2tpd

if [ "$(id -u)" != 0 ]; then
    echo "capture_xl2tpd.sh: must run as root (network namespaces)" >&2
    exit 1
fi
for tool in "$XL2TPD" tshark ip unshare setsid python3 timeout; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done

OUT=${1:-$(mktemp -d /tmp/xl2tpd-capture.XXXXXX)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d /tmp/xl2tpd-work.XXXXXX)
TAG=$$
NS_LAC=l2cap-lac-$TAG
NS_LNS=l2cap-lns-$TAG
IF_LAC=l2a$TAG            # veth end in the LAC namespace (<= 15 chars)
IF_LNS=l2b$TAG            # veth end in the LNS namespace
PIDS=()                   # every background process started by this script

log() { printf '[capture %s] %s\n' "$(date +%T)" "$*" >&2; }

# Ask one process (by PID) to stop, wait at most $2 seconds, then SIGKILL it.
stop_pid() {
    local pid=$1 grace=${2:-5} sig=${3:-TERM} i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -"$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid still alive after ${grace}s, SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

teardown_net() {
    ip netns del "$NS_LAC" 2>/dev/null || true
    ip netns del "$NS_LNS" 2>/dev/null || true
}

cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do
        stop_pid "$pid" 3
    done
    teardown_net
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Poll until the file $1 contains the regex $2, at most $3 seconds.
wait_for_text() {
    local file=$1 regex=$2 limit=$3 i
    for ((i = 0; i < limit * 10; i++)); do
        if [ -f "$file" ] && grep -qE "$regex" "$file"; then
            return 0
        fi
        sleep 0.1
    done
    log "timeout (${limit}s) waiting for /$regex/ in $file"
    return 1
}

setup_net() {
    teardown_net
    ip netns add "$NS_LAC"
    ip netns add "$NS_LNS"
    ip link add "$IF_LAC" netns "$NS_LAC" type veth peer name "$IF_LNS" netns "$NS_LNS"
    ip -n "$NS_LAC" link set lo up
    ip -n "$NS_LNS" link set lo up
    ip -n "$NS_LAC" addr add "$LAC_IP/24" dev "$IF_LAC"
    ip -n "$NS_LNS" addr add "$LNS_IP/24" dev "$IF_LNS"
    ip -n "$NS_LAC" link set "$IF_LAC" up
    ip -n "$NS_LNS" link set "$IF_LNS" up
    # Wait (bounded) until both veth ends report carrier.
    local i
    for ((i = 0; i < 50; i++)); do
        if ip -n "$NS_LAC" link show dev "$IF_LAC" | grep -q LOWER_UP &&
           ip -n "$NS_LNS" link show dev "$IF_LNS" | grep -q LOWER_UP; then
            return 0
        fi
        sleep 0.1
    done
    log "veth link between namespaces does not come up"
    return 1
}

# Stub for /usr/sbin/pppd (run "hello"): one LCP Configure-Request in
# async-HDLC framing (RFC 1662, FCS-16, every control character escaped) on
# stdout, then it reads stdin until EOF, a signal or 300 s.
write_fake_pppd() {
    cat >"$WORK/fake-pppd" <<'EOF'
#!/usr/bin/python3
import os, select, sys, time

def fcs16(data):
    fcs = 0xFFFF
    for b in data:
        fcs ^= b
        for _ in range(8):
            fcs = (fcs >> 1) ^ 0x8408 if fcs & 1 else fcs >> 1
    return fcs ^ 0xFFFF

def hdlc(frame):
    fcs = fcs16(frame)
    frame = frame + bytes([fcs & 0xFF, fcs >> 8])
    out = bytearray([0x7E])
    for b in frame:
        if b < 0x20 or b in (0x7D, 0x7E):
            out += bytes([0x7D, b ^ 0x20])
        else:
            out.append(b)
    out.append(0x7E)
    return bytes(out)

# LCP Configure-Request id 1: Magic-Number 0x11223344 (RFC 1661).
lcp = bytes([0xFF, 0x03, 0xC0, 0x21, 0x01, 0x01, 0x00, 0x0A,
             0x05, 0x06, 0x11, 0x22, 0x33, 0x44])
os.write(1, hdlc(lcp))
sys.stderr.write("fake-pppd %d: args %r\n" % (os.getpid(), sys.argv[1:]))
deadline = time.time() + 300
while time.time() < deadline:
    r, _, _ = select.select([0], [], [], 1.0)
    if r:
        try:
            if not os.read(0, 4096):
                break
        except OSError:
            break
EOF
    chmod 0755 "$WORK/fake-pppd"
}

# write_configs RUN: xl2tpd.conf for both roles, the secrets file.
write_configs() {
    local run=$1 auth=no
    case $run in hidden|crafted) auth=yes ;; esac
    printf '* * %s\n' "$SECRET" >"$WORK/l2tp-secrets"
    chmod 0600 "$WORK/l2tp-secrets"
    cat >"$WORK/lns.conf" <<EOF
[global]
listen-addr = $LNS_IP
port = 1701
auth file = $WORK/l2tp-secrets
debug avp = yes
debug state = yes
debug tunnel = yes

[lns default]
ip range = 10.99.1.10-10.99.1.20
local ip = 10.99.1.1
hostname = lns-capture
length bit = yes
challenge = $auth
hidden bit = $auth
require authentication = no
ppp debug = no
EOF
    cat >"$WORK/lac.conf" <<EOF
[global]
listen-addr = $LAC_IP
port = 1701
auth file = $WORK/l2tp-secrets
debug avp = yes
debug state = yes
debug tunnel = yes

[lac capture]
lns = $LNS_IP
hostname = lac-capture
autodial = yes
redial = no
length bit = yes
challenge = $auth
hidden bit = $auth
require authentication = no
ppp debug = no
EOF
}

# start_xl2tpd ROLE NS FAKE_PPPD(yes|no): sets STARTED_PID to the daemon's
# PID.  ip netns exec, unshare (without --fork) and sh all exec, so $! is
# xl2tpd itself.  Not to be called in a $(...) subshell.
start_xl2tpd() {
    local role=$1 ns=$2 fake=$3
    local args=(-D -c "$WORK/$role.conf" -s "$WORK/l2tp-secrets"
                -p "$WORK/$role.pid" -C "$WORK/$role.control")
    if [ "$fake" = yes ]; then
        setsid ip netns exec "$ns" unshare -m --propagation private \
            sh -c 'mount --bind "$0" /usr/sbin/pppd && exec "$@"' \
            "$WORK/fake-pppd" "$XL2TPD" "${args[@]}" \
            >"$OUT/$RUN-$role.log" 2>&1 </dev/null &
    else
        setsid ip netns exec "$ns" "$XL2TPD" "${args[@]}" \
            >"$OUT/$RUN-$role.log" 2>&1 </dev/null &
    fi
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
}

forget_pid() {
    local p keep=()
    for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

capture_run() {
    RUN=$1
    local fake=no pcap="$OUT/$RUN.pcap" tshark_pid lns_pid lac_pid
    [ "$RUN" = hello ] && fake=yes
    log "run $RUN"
    write_configs "$RUN"
    rm -f "$WORK"/*.pid "$WORK"/*.control "$pcap"
    setup_net

    # Capture in the LNS namespace; classic pcap format, whole packets.
    ip netns exec "$NS_LNS" tshark -q -i "$IF_LNS" -F pcap -s 0 -w "$pcap" \
        -f "udp port 1701" >"$OUT/$RUN-tshark.log" 2>&1 </dev/null &
    tshark_pid=$!
    PIDS+=("$tshark_pid")
    wait_for_text "$OUT/$RUN-tshark.log" "Capturing on" 15

    start_xl2tpd lns "$NS_LNS" "$fake"
    lns_pid=$STARTED_PID
    wait_for_text "$OUT/$RUN-lns.log" "Listening on IP address" 10
    start_xl2tpd lac "$NS_LAC" "$fake"
    lac_pid=$STARTED_PID

    # Tunnel + call setup takes < 1 ms on veth; the CDN after pppd's failure
    # follows within 15 ms.  Wait for the LAC to report the call.
    wait_for_text "$OUT/$RUN-lac.log" "Call established" 10 || true
    if [ "$RUN" = hello ]; then
        log "keeping the tunnel up ${HELLO_WAIT}s for HELLO"
        sleep "$HELLO_WAIT"
    else
        sleep 2
    fi

    # Tear the tunnel down from the LAC (StopCCN).  SIGTERM does not do it:
    # xl2tpd then exits without sending a StopCCN (seen in a trial run).
    # The command goes straight into the daemon's control FIFO ("d <lac>"),
    # which is what `xl2tpd-control disconnect-lac` sends; xl2tpd-control
    # itself would need /var/run/xl2tpd for its reply file.
    timeout 5 sh -c 'printf "d capture\n" >"$1"' sh "$WORK/lac.control" ||
        log "could not write to the LAC control FIFO"
    sleep 2
    stop_pid "$lac_pid" 10
    forget_pid "$lac_pid"
    stop_pid "$lns_pid" 10
    forget_pid "$lns_pid"
    sleep 0.5
    stop_pid "$tshark_pid" 10
    forget_pid "$tshark_pid"
    teardown_net

    # Listing with tshark's own dissection (tshark 4.0 does not decrypt
    # hidden L2TPv2 AVPs, even when given the secret).
    tshark -r "$pcap" -T fields -E separator='|' \
        -e frame.number -e frame.time_relative -e ip.src -e ip.dst \
        -e l2tp.type -e l2tp.tunnel -e l2tp.session -e l2tp.Ns -e l2tp.Nr \
        -e l2tp.avp.message_type -e _ws.col.Info -e udp.payload \
        >"$OUT/$RUN.fields"
    tshark -r "$pcap" -V >"$OUT/$RUN.txt"
    log "run $RUN: $(wc -l <"$OUT/$RUN.fields") packets"
}

# Helper for run "crafted": a minimal scripted LAC.  `lac HIDDEN_FIELDS
# LNS_IP LOCAL_IP SECRET OUT_PREFIX` replays the SCCRQ captured in run
# "hidden", answers the LNS's challenge in an SCCCN, then sends an ICRQ whose
# Assigned Session ID and Call Serial Number are hidden (the latter with
# padding, so the hidden value spans two MD5 blocks).  It writes what it sent
# to OUT_PREFIX.hex (NAME|HEX) and the verdicts to OUT_PREFIX.check.
write_crafter() {
    cat >"$WORK/crafter.py" <<'EOF'
import hashlib, socket, struct, sys, time

SESSION_ID = 0x1234      # hidden Assigned Session ID in the ICRQ
SERIAL = 0x00ABCDEF      # hidden Call Serial Number in the ICRQ
RV_SCCCN = bytes(range(0x10, 0x20))
RV_ICRQ = bytes(range(0x20, 0x30))
SERIAL_PAD = bytes(range(0x40, 0x52))    # 18 bytes: 2 + 4 + 18 = 24 > 16

def avp(attr, value, mandatory=True, hidden=False):
    flags = (0x8000 if mandatory else 0) | (0x4000 if hidden else 0)
    return struct.pack("!HHH", flags | (6 + len(value)), 0, attr) + value

def hide(attr, value, secret, rv, pad=b""):
    # RFC 2661 4.3: 2-byte original length, value, padding; XOR with
    # MD5(type + secret + RV), then MD5(secret + previous cipher block).
    plain = struct.pack("!H", len(value)) + value + pad
    out, key = b"", hashlib.md5(struct.pack("!H", attr) + secret + rv).digest()
    for i in range(0, len(plain), 16):
        block = bytes(a ^ b for a, b in zip(plain[i:i + 16], key))
        out += block
        key = hashlib.md5(secret + block).digest()
    return out

def control(tid, sid, ns, nr, body):
    return struct.pack("!HHHHHH", 0xC802, 12 + len(body), tid, sid, ns, nr) + body

def parse(msg):
    flags, length, tid, sid, ns, nr = struct.unpack("!HHHHHH", msg[:12])
    avps, off = {}, 12
    while off + 6 <= len(msg):
        w, _, attr = struct.unpack("!HHH", msg[off:off + 6])
        avps.setdefault(attr, msg[off + 6:off + (w & 0x3FF)])
        off += w & 0x3FF
    mtype = struct.unpack("!H", avps[0])[0] if 0 in avps else None
    return {"tid": tid, "sid": sid, "ns": ns, "nr": nr, "type": mtype, "avps": avps}

def lac(fields, lns, local, secret, prefix):
    secret = secret.encode()
    for line in open(fields):
        f = line.rstrip("\n").split("|")
        if f[9] == "1":
            sccrq = bytes.fromhex(f[11])
            break
    else:
        sys.exit("no SCCRQ in " + fields)
    our_tid = struct.unpack("!H", parse(sccrq)["avps"][9])[0]
    our_chal = parse(sccrq)["avps"][11]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((local, 1701))
    s.settimeout(0.5)
    sent, checks, got = [], [], []

    def wait_for(pred, limit=3.0):
        end = time.time() + limit
        while time.time() < end:
            try:
                data = s.recv(2048)
            except socket.timeout:
                continue
            m = parse(data)
            got.append((m, data))
            if pred(m):
                return m
        return None

    s.sendto(sccrq, (lns, 1701))
    sccrp = wait_for(lambda m: m["type"] == 2)
    if sccrp is None:
        checks.append("FAIL no SCCRP")
    else:
        want = hashlib.md5(b"\x02" + secret + our_chal).digest()
        checks.append("%s SCCRP Challenge Response = MD5(2 + secret + our challenge)"
                      % ("OK" if sccrp["avps"].get(13) == want else "FAIL"))
        peer_tid = struct.unpack("!H", sccrp["avps"][9])[0]
        resp = hashlib.md5(b"\x03" + secret + sccrp["avps"][11]).digest()
        scccn = control(peer_tid, 0, 1, 1, avp(0, b"\x00\x03") + avp(36, RV_SCCCN)
                        + avp(13, resp))
        sent.append(("crafted_scccn", scccn))
        s.sendto(scccn, (lns, 1701))
        icrq = control(peer_tid, 0, 2, 1,
                       avp(0, b"\x00\x0a") + avp(36, RV_ICRQ)
                       + avp(14, hide(14, struct.pack("!H", SESSION_ID), secret, RV_ICRQ),
                             hidden=True)
                       + avp(15, hide(15, struct.pack("!I", SERIAL), secret, RV_ICRQ,
                                      SERIAL_PAD), hidden=True)
                       + avp(18, struct.pack("!I", 0)))
        sent.append(("crafted_hidden_icrq", icrq))
        s.sendto(icrq, (lns, 1701))
        icrp = wait_for(lambda m: m["type"] in (4, 11))
        if icrp is None or icrp["type"] != 11:
            checks.append("FAIL no ICRP (got %r)" % (icrp and icrp["type"]))
        else:
            checks.append("%s ICRP sent to the hidden session id 0x%04x (got 0x%04x)"
                          % ("OK" if icrp["sid"] == SESSION_ID else "FAIL",
                             SESSION_ID, icrp["sid"]))
            # Ack it and leave with a StopCCN so the LNS does not linger.
            lns_sid = struct.unpack("!H", icrp["avps"][14])[0]
            stop = control(peer_tid, 0, 3, icrp["ns"] + 1,
                           avp(0, b"\x00\x04") + avp(9, struct.pack("!H", our_tid))
                           + avp(1, b"\x00\x01\x00\x00"))
            sent.append(("crafted_stopccn", stop))
            s.sendto(stop, (lns, 1701))
            wait_for(lambda m: False, 0.5)
            checks.append("INFO LNS session id %d" % lns_sid)
    s.close()
    with open(prefix + ".hex", "w") as fp:
        for name, msg in sent:
            fp.write("%s|%s\n" % (name, msg.hex()))
    with open(prefix + ".check", "w") as fp:
        fp.write("\n".join(checks) + "\n")
        for m, data in got:
            fp.write("RECV type=%s Ns=%d Nr=%d tid=%d sid=%d %s\n"
                     % (m["type"], m["ns"], m["nr"], m["tid"], m["sid"], data.hex()))
    sys.exit(0 if all(not c.startswith("FAIL") for c in checks) else 1)

if __name__ == "__main__":
    lac(*sys.argv[1:])
EOF
}

crafted_run() {
    RUN=crafted
    local pcap="$OUT/crafted.pcap" tshark_pid lns_pid rc=0
    log "run crafted"
    [ -f "$OUT/hidden.fields" ] || { log "run crafted needs run hidden first"; return 1; }
    write_configs crafted
    rm -f "$WORK"/*.pid "$WORK"/*.control "$pcap"
    setup_net
    ip netns exec "$NS_LNS" tshark -q -i "$IF_LNS" -F pcap -s 0 -w "$pcap" \
        -f "udp port 1701" >"$OUT/crafted-tshark.log" 2>&1 </dev/null &
    tshark_pid=$!
    PIDS+=("$tshark_pid")
    wait_for_text "$OUT/crafted-tshark.log" "Capturing on" 15
    start_xl2tpd lns "$NS_LNS" no
    lns_pid=$STARTED_PID
    wait_for_text "$OUT/crafted-lns.log" "Listening on IP address" 10
    timeout 20 ip netns exec "$NS_LAC" python3 "$WORK/crafter.py" \
        "$OUT/hidden.fields" "$LNS_IP" "$LAC_IP" "$SECRET" "$OUT/crafted" || rc=$?
    sleep 0.5
    stop_pid "$lns_pid" 10
    forget_pid "$lns_pid"
    stop_pid "$tshark_pid" 10
    forget_pid "$tshark_pid"
    teardown_net
    tshark -r "$pcap" -T fields -E separator='|' \
        -e frame.number -e frame.time_relative -e ip.src -e ip.dst \
        -e l2tp.type -e l2tp.tunnel -e l2tp.session -e l2tp.Ns -e l2tp.Nr \
        -e l2tp.avp.message_type -e _ws.col.Info -e udp.payload \
        >"$OUT/crafted.fields"
    grep -E "serial number is|using peer's call|hidden|Hidden" "$OUT/crafted-lns.log" \
        >>"$OUT/crafted.check" || true
    sed 's/^/[crafted] /' "$OUT/crafted.check" | cut -c1-120 >&2
    [ "$rc" = 0 ] || log "run crafted: checks FAILED (see $OUT/crafted.check)"
}

write_fake_pppd
write_crafter
for r in $RUNS; do
    if [ "$r" = crafted ]; then crafted_run; else capture_run "$r"; fi
done

# Name the packets and write the raw vector module.
XL2TPD_VERSION=$( ("$XL2TPD" -v 2>&1 || true) | sed -n 's/.*xl2tpd-//p' | head -1)
python3 - "$OUT" "$SECRET" "$LAC_IP" "$XL2TPD_VERSION" $RUNS <<'EOF'
import os, sys
out, secret, lac_ip, version, runs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]

def packets(run):
    # fields: frame|time|src|dst|type|tunnel|session|Ns|Nr|msgtype|info|payload
    for line in open("%s/%s.fields" % (out, run)):
        f = line.rstrip("\n").split("|")
        if len(f) < 12 or not f[11]:
            continue
        info = " ".join(f[10].split())
        if f[4] == "1":
            label = info.split(" - ", 1)[1].split(" (", 1)[0] if " - " in info else "?"
        else:
            label = "Data"
        yield f, label, info

entries = []          # (name, payload, label, direction, comment)
for run in runs:
    own = {}
    if run == "crafted":
        if not os.path.exists("%s/crafted.hex" % out):
            continue
        own = dict(l.strip().split("|") for l in open("%s/crafted.hex" % out))
    found = []
    for f, label, info in packets(run):
        names = [n for n, p in own.items() if p == f[11]]
        if names:               # sent by the scripted LAC of run "crafted"
            base = names[0]
        else:
            base = "%s_%s" % (run, label.lower().replace(" ", "_"))
        if label == "Data":
            comment = "frame %s, t=%.6f s, tunnel %s, session %s, PPP: %s" % (
                f[0], float(f[1]), f[5], f[6], info)
        else:
            comment = "frame %s, t=%.6f s, Ns=%s Nr=%s, tunnel %s, session %s" % (
                f[0], float(f[1]), f[7], f[8], f[5], f[6])
        found.append([base, f[11], label,
                      "lac>lns" if f[2] == lac_ip else "lns>lac", comment])
    total = {}
    for e in found:
        total[e[0]] = total.get(e[0], 0) + 1
    seen = {}
    for e in found:
        seen[e[0]] = seen.get(e[0], 0) + 1
        if total[e[0]] > 1:
            e[0] = "%s%d" % (e[0], seen[e[0]])
        entries.append(tuple(e))

def hexlines(fp, payload):
    for i in range(0, len(payload), 64):
        fp.write('        "%s"\n' % payload[i:i + 64])

with open("%s/vectors_xl2tpd.generated.py" % out, "w") as fp:
    fp.write('"""L2TP payloads captured from xl2tpd %s by capture_xl2tpd.sh."""\n\n' % version)
    fp.write("SECRET = %r\n" % secret.encode())
    for dname, crafted in (("VECTORS", False), ("CRAFTED", True)):
        fp.write("\n%s = {\n" % dname)
        for name, payload, label, direction, comment in entries:
            if name.startswith("crafted_") == crafted:
                fp.write("    # %s %s, %s\n" % (label, direction, comment))
                fp.write('    "%s": (\n' % name)
                hexlines(fp, payload)
                fp.write("    ),\n")
        fp.write("}\n")
    for dname, col in (("LABELS", 2), ("DIRECTION", 3)):
        fp.write("\n%s = {\n" % dname)
        for e in entries:
            fp.write('    "%s": "%s",\n' % (e[0], e[col]))
        fp.write("}\n")
print("%d vectors -> %s/vectors_xl2tpd.generated.py" % (len(entries), out))
EOF
log "done: $OUT"
