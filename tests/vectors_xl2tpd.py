"""L2TP (RFC 2661) messages captured from xl2tpd, for the codec tests.

Captured on 2026-11-24 with tests/capture_xl2tpd.sh (re-run it as root to get
a fresh set), from xl2tpd 1.3.18 (Debian package) in both roles: LAC in one
network namespace (10.99.0.1), LNS in another (10.99.0.2), joined by a veth
pair, UDP port 1701 on both sides; tshark 4.0.17 captured on the LNS's veth.

Configs, in short (both: `length bit = yes`, debug logging on):
  LAC  [lac capture]   lns = 10.99.0.2, hostname = lac-capture, autodial = yes,
                       redial = no
  LNS  [lns default]   ip range = 10.99.1.10-10.99.1.20, local ip = 10.99.1.1,
                       hostname = lns-capture
  runs "plain", "hello":   challenge = no,  hidden bit = no
  runs "hidden", "crafted": challenge = yes, hidden bit = yes on both sides,
                       l2tp-secrets `* * s3cret`, so SECRET below.

Runs (vector names start with the run):
  plain    the real pppd cannot start (no /dev/ppp), so the call is cleared
           by CDN ~4-6 ms after ICCN; then `d capture` on the LAC's control
           FIFO (= xl2tpd-control disconnect-lac) sends StopCCN.
  hidden   the same with tunnel authentication and `hidden bit = yes`.
  crafted  (dict CRAFTED) a scripted LAC replays hidden_sccrq to an xl2tpd
           LNS and sends an ICRQ with two hidden AVPs, which xl2tpd accepted.
           Needed because xl2tpd never hides AVPs itself (see below).
  hello    pppd replaced by a stub (bind mount in a private mount namespace)
           that writes one LCP Configure-Request and waits, so the call stays
           up: two data messages, then HELLO from both sides at 60 s, then
           StopCCN via `d capture`.

Each value is a whole UDP payload as hex (L2TP header + AVPs).  LABELS holds
tshark's reading of each message, DIRECTION who sent it, SEQUENCES the capture
order; the comment above each vector gives frame number, time since the first
packet of its run, Ns/Nr, tunnel and session id as tshark decoded them.
Tunnel/session ids, Random Vectors and Challenges are random per run.
Plain literals only: this module must import under MicroPython.
"""

# Things seen on the wire that are not (or not quite) in
# shared/reference/xl2tpd-peer.md:
#
# Header
# * Every control message, ZLBs included, has flags 0xC802: T, L, S set, no
#   O (never an Offset Size field), no P, version 2.  Data messages have
#   0x4002: L only, no S (no Ns/Nr), no O.
# * Ns and Nr start at 0 on both sides (SCCRQ: Ns=0 Nr=0; SCCRP: Ns=0 Nr=1).
#   A ZLB carries the sender's next unsent Ns and does not consume it:
#   hello_zlb5 (Ns=5) is followed by hello_stopccn (Ns=5) from the same side.
# * Header Tunnel ID = the peer's Assigned Tunnel ID (0 in SCCRQ only).
#   Session ID is 0 in every tunnel message (SCCRQ..StopCCN, HELLO) and in
#   ICRQ; ICRP is addressed to the LAC's Assigned Session ID, ICCN to the
#   LNS's; a ZLB that acks a session message (ICCN, CDN) carries that
#   session's id (the peer's), other ZLBs carry 0.
#
# Acknowledgements
# * The xl2tpd LNS sends a ZLB for every control message it receives, even
#   one it has already acked by a reply: ICRQ -> ICRP (Nr=3) and then
#   plain_zlb2 (Nr=3) as well.  The xl2tpd LAC sends no ZLB for SCCRP and
#   ICRP; its SCCCN/ICCN carry the ack.  CDN and HELLO are ZLB-acked by both
#   sides, StopCCN by the LNS (the only side that received one here).
#
# Call clearing with the real pppd (runs plain, hidden)
# * Both pppd fail at nearly the same time, so in this capture both sides
#   sent a CDN (crossing, 0-1.5 ms apart); in earlier trial runs sometimes
#   only one side did.  Each side then gets a CDN for a call it already
#   deleted and answers with a ZLB carrying that session id (log:
#   "no such call ... Sending special ZLB"): plain_zlb4, plain_zlb5.  Quirk 1
#   of xl2tpd-peer.md follows: each side counts the other's ZLB as a message
#   (expected Ns one too high), so the LNS drops the StopCCN as out of order
#   ("got 5, expected 6"), only ZLB-acks it with Nr=6, never closes its end
#   of the tunnel, and the LAC (expecting Ns 4, getting 3) ignores those
#   ZLBs and retransmits the StopCCN after 1 s (plain_stopccn2).  In this
#   state the LNS answered the first StopCCN with two identical ZLBs
#   (plain_zlb6/zlb7; without the desync, run hello, just one), and the
#   LAC ZLB-acked the LNS's out-of-order ZLB with one of its own
#   (plain_zlb8, Ns=6).
# * The retransmitted StopCCN is byte-identical to the first, including the
#   Random Vector (hidden_stopccn1 == hidden_stopccn2).
#
# Messages and AVP order (M = mandatory; [RV] only with hidden bit = yes)
# * SCCRQ: Message Type, [RV], Protocol Version, Framing Caps 3, Bearer
#   Caps 0, Firmware Revision 0x0690 (not M), Host Name, Vendor Name (not M),
#   Assigned Tunnel ID, Receive Window Size 4, [Challenge, 16 bytes].
#   SCCRP: the same up to Receive Window Size, then [Challenge Response],
#   [Challenge].  SCCCN: Message Type, [RV], [Challenge Response].
# * Host Name and Vendor Name have no NUL terminator (AVP length 6 + len).
# * Challenge Response = MD5(one octet message type + secret + challenge):
#   type 2 in SCCRP over the SCCRQ's Challenge, type 3 in SCCCN over the
#   SCCRP's Challenge; checked on hidden_sccrp / hidden_scccn.
# * ICRQ: Message Type, [RV], Assigned Session ID, Call Serial Number (1),
#   Bearer Type 0.  ICRP: Message Type, [RV], Assigned Session ID.
#   ICCN: Message Type, [RV], Tx Connect Speed 0, Framing Type 1 (sync),
#   Rx Connect Speed 0 (not M).
# * CDN: Message Type, [RV], Result Code (result 1, error 0, no message,
#   AVP length 10), Assigned Session ID (the sender's own).
# * StopCCN: Message Type, [RV], Assigned Tunnel ID (the sender's own),
#   Result Code (result 1, error 0, message "Goodbye!", AVP length 18).
#   Sent for `d <lac>` on the control FIFO; with the call still up no CDN
#   precedes it (hello_stopccn).  SIGTERM makes xl2tpd exit without sending
#   a StopCCN (seen in a trial run), so the peer only learns from HELLO.
# * HELLO: Message Type only (20 bytes), session 0.  Both sides sent theirs
#   60.03 s after the tunnel came up, in the same millisecond; each was
#   ZLB-acked.
#
# Hidden AVPs
# * xl2tpd never sets the H bit on an AVP it sends.  `hidden bit = yes` only
#   adds a Random Vector AVP (type 36, M set, 16 octets, AVP length 22)
#   right after Message Type in every control message except ZLBs (SCCRQ,
#   SCCRP, SCCCN, ICRQ, ICRP, ICCN, CDN, StopCCN), a fresh one per message.
#   So there is no padding or RV placement to learn from its output.
# * Receiving, xl2tpd does decrypt hidden AVPs (crafted_hidden_icrq: two
#   hidden AVPs after one Random Vector, the second with 18 octets of
#   padding so its hidden data spans two MD5 blocks; HIDDEN below).
# * But an xl2tpd LNS cannot decrypt hidden AVPs in an SCCRQ: it looks the
#   secret up only after parsing the whole SCCRQ, so it decrypts with an
#   empty secret (its logged bogus length matches MD5(type + "" + RV)),
#   logs "Invalid Hidden AVP" and drops the tunnel.  Do not hide AVPs in an
#   SCCRQ sent to xl2tpd.
#
# Data messages (run hello)
# * xl2tpd strips the async HDLC framing of what pppd writes (flag bytes,
#   escapes, FCS) and sends the bare frame starting FF 03 C0 21; header
#   0x4002, Length, Tunnel ID, Session ID (the peer's ids), no Ns/Nr.
#   The stub's LCP Configure-Request appeared 10-20 ms after ICCN.
#
# Other
# * Both daemons send from and to UDP port 1701.
# * xl2tpd-control needs /var/run/xl2tpd to exist (for its reply file);
#   writing "d <lac name>" straight into the daemon's -C control FIFO works
#   without it.

SECRET = b"s3cret"


VECTORS = {
    # SCCRQ lac>lns, frame 1, t=0.000000 s, Ns=0 Nr=0, tunnel 0, session 0
    "plain_sccrq": (
        "c802006c000000000000000080080000000000018008000000020100800a0000"
        "000300000003800a000000040000000000080000000606908011000000076c61"
        "632d6361707475726500130000000878656c6572616e63652e636f6d80080000"
        "00095e3380080000000a0004"
    ),
    # SCCRP lns>lac, frame 2, t=0.000194 s, Ns=0 Nr=1, tunnel 24115, session 0
    "plain_sccrp": (
        "c802006c5e3300000000000180080000000000028008000000020100800a0000"
        "000300000003800a000000040000000000080000000606908011000000076c6e"
        "732d6361707475726500130000000878656c6572616e63652e636f6d80080000"
        "0009cca880080000000a0004"
    ),
    # SCCCN lac>lns, frame 3, t=0.000259 s, Ns=1 Nr=1, tunnel 52392, session 0
    "plain_scccn": (
        "c8020014cca80000000100018008000000000003"
    ),
    # ICRQ lac>lns, frame 4, t=0.000286 s, Ns=2 Nr=1, tunnel 52392, session 0
    "plain_icrq": (
        "c8020030cca8000000020001800800000000000a80080000000e5b26800a0000"
        "000f00000001800a0000001200000000"
    ),
    # ZLB lns>lac, frame 5, t=0.000307 s, Ns=1 Nr=2, tunnel 24115, session 0
    "plain_zlb1": (
        "c802000c5e33000000010002"
    ),
    # ICRP lns>lac, frame 6, t=0.000334 s, Ns=1 Nr=3, tunnel 24115, session 23334
    "plain_icrp": (
        "c802001c5e335b2600010003800800000000000b80080000000e7f61"
    ),
    # ZLB lns>lac, frame 7, t=0.000338 s, Ns=2 Nr=3, tunnel 24115, session 0
    "plain_zlb2": (
        "c802000c5e33000000020003"
    ),
    # ICCN lac>lns, frame 8, t=0.000356 s, Ns=3 Nr=2, tunnel 52392, session 32609
    "plain_iccn": (
        "c8020032cca87f6100030002800800000000000c800a0000001800000000800a"
        "0000001300000001000a0000002600000000"
    ),
    # ZLB lns>lac, frame 9, t=0.000672 s, Ns=2 Nr=4, tunnel 24115, session 23334
    "plain_zlb3": (
        "c802000c5e335b2600020004"
    ),
    # CDN lac>lns, frame 10, t=0.004375 s, Ns=4 Nr=2, tunnel 52392, session 32609
    "plain_cdn1": (
        "c8020026cca87f6100040002800800000000000e800a00000001000100008008"
        "0000000e5b26"
    ),
    # CDN lns>lac, frame 11, t=0.005802 s, Ns=2 Nr=4, tunnel 24115, session 23334
    "plain_cdn2": (
        "c80200265e335b2600020004800800000000000e800a00000001000100008008"
        "0000000e7f61"
    ),
    # ZLB lns>lac, frame 12, t=0.005825 s, Ns=3 Nr=5, tunnel 24115, session 23334
    "plain_zlb4": (
        "c802000c5e335b2600030005"
    ),
    # ZLB lac>lns, frame 13, t=0.005848 s, Ns=5 Nr=3, tunnel 52392, session 32609
    "plain_zlb5": (
        "c802000ccca87f6100050003"
    ),
    # StopCCN lac>lns, frame 14, t=2.102957 s, Ns=5 Nr=4, tunnel 52392, session 0
    "plain_stopccn1": (
        "c802002ecca800000005000480080000000000048008000000095e3380120000"
        "000100010000476f6f6462796521"
    ),
    # ZLB lns>lac, frame 15, t=2.103127 s, Ns=3 Nr=6, tunnel 24115, session 0
    "plain_zlb6": (
        "c802000c5e33000000030006"
    ),
    # ZLB lns>lac, frame 16, t=2.103139 s, Ns=3 Nr=6, tunnel 24115, session 0
    "plain_zlb7": (
        "c802000c5e33000000030006"
    ),
    # ZLB lac>lns, frame 17, t=2.103153 s, Ns=6 Nr=4, tunnel 52392, session 0
    "plain_zlb8": (
        "c802000ccca8000000060004"
    ),
    # StopCCN lac>lns, frame 18, t=3.104037 s, Ns=5 Nr=4, tunnel 52392, session 0
    "plain_stopccn2": (
        "c802002ecca800000005000480080000000000048008000000095e3380120000"
        "000100010000476f6f6462796521"
    ),
    # ZLB lns>lac, frame 19, t=3.104130 s, Ns=3 Nr=6, tunnel 24115, session 0
    "plain_zlb9": (
        "c802000c5e33000000030006"
    ),
    # SCCRQ lac>lns, frame 1, t=0.000000 s, Ns=0 Nr=0, tunnel 0, session 0
    "hidden_sccrq": (
        "c8020098000000000000000080080000000000018016000000246ba069c941ec"
        "c54323bcd83863cb9e3d8008000000020100800a0000000300000003800a0000"
        "00040000000000080000000606908011000000076c61632d6361707475726500"
        "130000000878656c6572616e63652e636f6d800800000009cbad80080000000a"
        "000480160000000b773c63f753214fffe215080fb473daec"
    ),
    # SCCRP lns>lac, frame 2, t=0.000181 s, Ns=0 Nr=1, tunnel 52141, session 0
    "hidden_sccrp": (
        "c80200aecbad000000000001800800000000000280160000002471f59ea95976"
        "6cc11872a602778422bd8008000000020100800a0000000300000003800a0000"
        "00040000000000080000000606908011000000076c6e732d6361707475726500"
        "130000000878656c6572616e63652e636f6d800800000009380a80080000000a"
        "000480160000000d1d50091525b5965e142839c56366c47780160000000b1ed2"
        "1e9627123bc291c9276cf36e0a5a"
    ),
    # SCCCN lac>lns, frame 3, t=0.000239 s, Ns=1 Nr=1, tunnel 14346, session 0
    "hidden_scccn": (
        "c8020040380a00000001000180080000000000038016000000241e13b7d92323"
        "769b4e422a040f3c03f780160000000d75d04f375e1977cb7b5154cbce3854a3"
    ),
    # ICRQ lac>lns, frame 4, t=0.000264 s, Ns=2 Nr=1, tunnel 14346, session 0
    "hidden_icrq": (
        "c8020046380a000000020001800800000000000a801600000024de015acf2a03"
        "a931d5330e865ca1a50480080000000e0d64800a0000000f00000001800a0000"
        "001200000000"
    ),
    # ZLB lns>lac, frame 5, t=0.000281 s, Ns=1 Nr=2, tunnel 52141, session 0
    "hidden_zlb1": (
        "c802000ccbad000000010002"
    ),
    # ICRP lns>lac, frame 6, t=0.000316 s, Ns=1 Nr=3, tunnel 52141, session 3428
    "hidden_icrp": (
        "c8020032cbad0d6400010003800800000000000b8016000000246da717c9486e"
        "78c7cd6847ebe94db82b80080000000ee939"
    ),
    # ICCN lac>lns, frame 7, t=0.000337 s, Ns=3 Nr=2, tunnel 14346, session 59705
    "hidden_iccn": (
        "c8020048380ae93900030002800800000000000c80160000002439969a83407c"
        "7ea3c3b50c27a171e478800a0000001800000000800a0000001300000001000a"
        "0000002600000000"
    ),
    # ZLB lns>lac, frame 8, t=0.000538 s, Ns=2 Nr=3, tunnel 52141, session 0
    "hidden_zlb2": (
        "c802000ccbad000000020003"
    ),
    # ZLB lns>lac, frame 9, t=0.000730 s, Ns=2 Nr=4, tunnel 52141, session 3428
    "hidden_zlb3": (
        "c802000ccbad0d6400020004"
    ),
    # CDN lns>lac, frame 10, t=0.004699 s, Ns=2 Nr=4, tunnel 52141, session 3428
    "hidden_cdn1": (
        "c802003ccbad0d6400020004800800000000000e80160000002439572032a911"
        "4aebfcb0920dcb9a505f800a000000010001000080080000000ee939"
    ),
    # CDN lac>lns, frame 11, t=0.004700 s, Ns=4 Nr=2, tunnel 14346, session 59705
    "hidden_cdn2": (
        "c802003c380ae93900040002800800000000000e80160000002446bf47e6e473"
        "877cb907332e19fda87f800a000000010001000080080000000e0d64"
    ),
    # ZLB lns>lac, frame 12, t=0.004723 s, Ns=3 Nr=5, tunnel 52141, session 3428
    "hidden_zlb4": (
        "c802000ccbad0d6400030005"
    ),
    # ZLB lac>lns, frame 13, t=0.004724 s, Ns=5 Nr=3, tunnel 14346, session 59705
    "hidden_zlb5": (
        "c802000c380ae93900050003"
    ),
    # StopCCN lac>lns, frame 14, t=2.102144 s, Ns=5 Nr=4, tunnel 14346, session 0
    "hidden_stopccn1": (
        "c8020044380a00000005000480080000000000048016000000241ec8c217957d"
        "9696e8e2240b84d63ad8800800000009cbad80120000000100010000476f6f64"
        "62796521"
    ),
    # ZLB lns>lac, frame 15, t=2.102199 s, Ns=3 Nr=6, tunnel 52141, session 0
    "hidden_zlb6": (
        "c802000ccbad000000030006"
    ),
    # ZLB lac>lns, frame 16, t=2.102215 s, Ns=6 Nr=4, tunnel 14346, session 0
    "hidden_zlb7": (
        "c802000c380a000000060004"
    ),
    # ZLB lns>lac, frame 17, t=2.102224 s, Ns=3 Nr=6, tunnel 52141, session 0
    "hidden_zlb8": (
        "c802000ccbad000000030006"
    ),
    # StopCCN lac>lns, frame 18, t=3.103219 s, Ns=5 Nr=4, tunnel 14346, session 0
    "hidden_stopccn2": (
        "c8020044380a00000005000480080000000000048016000000241ec8c217957d"
        "9696e8e2240b84d63ad8800800000009cbad80120000000100010000476f6f64"
        "62796521"
    ),
    # ZLB lns>lac, frame 19, t=3.103289 s, Ns=3 Nr=6, tunnel 52141, session 0
    "hidden_zlb9": (
        "c802000ccbad000000030006"
    ),
    # SCCRQ lac>lns, frame 1, t=0.000000 s, Ns=0 Nr=0, tunnel 0, session 0
    "hello_sccrq": (
        "c802006c000000000000000080080000000000018008000000020100800a0000"
        "000300000003800a000000040000000000080000000606908011000000076c61"
        "632d6361707475726500130000000878656c6572616e63652e636f6d80080000"
        "0009fba880080000000a0004"
    ),
    # SCCRP lns>lac, frame 2, t=0.000136 s, Ns=0 Nr=1, tunnel 64424, session 0
    "hello_sccrp": (
        "c802006cfba800000000000180080000000000028008000000020100800a0000"
        "000300000003800a000000040000000000080000000606908011000000076c6e"
        "732d6361707475726500130000000878656c6572616e63652e636f6d80080000"
        "00095b5080080000000a0004"
    ),
    # SCCCN lac>lns, frame 3, t=0.000166 s, Ns=1 Nr=1, tunnel 23376, session 0
    "hello_scccn": (
        "c80200145b500000000100018008000000000003"
    ),
    # ICRQ lac>lns, frame 4, t=0.000185 s, Ns=2 Nr=1, tunnel 23376, session 0
    "hello_icrq": (
        "c80200305b50000000020001800800000000000a80080000000e0b9a800a0000"
        "000f00000001800a0000001200000000"
    ),
    # ZLB lns>lac, frame 5, t=0.000199 s, Ns=1 Nr=2, tunnel 64424, session 0
    "hello_zlb1": (
        "c802000cfba8000000010002"
    ),
    # ICRP lns>lac, frame 6, t=0.000229 s, Ns=1 Nr=3, tunnel 64424, session 2970
    "hello_icrp": (
        "c802001cfba80b9a00010003800800000000000b80080000000e38a4"
    ),
    # ICCN lac>lns, frame 7, t=0.000244 s, Ns=3 Nr=2, tunnel 23376, session 14500
    "hello_iccn": (
        "c80200325b5038a400030002800800000000000c800a0000001800000000800a"
        "0000001300000001000a0000002600000000"
    ),
    # ZLB lns>lac, frame 8, t=0.000415 s, Ns=2 Nr=3, tunnel 64424, session 0
    "hello_zlb2": (
        "c802000cfba8000000020003"
    ),
    # ZLB lns>lac, frame 9, t=0.000558 s, Ns=2 Nr=4, tunnel 64424, session 2970
    "hello_zlb3": (
        "c802000cfba80b9a00020004"
    ),
    # Data lns>lac, frame 10, t=0.009746 s, tunnel 64424, session 2970, PPP: Configuration Request
    "hello_data1": (
        "40020016fba80b9aff03c0210101000a050611223344"
    ),
    # Data lac>lns, frame 11, t=0.009811 s, tunnel 23376, session 14500, PPP: Configuration Request
    "hello_data2": (
        "400200165b5038a4ff03c0210101000a050611223344"
    ),
    # Hello lac>lns, frame 12, t=60.030076 s, Ns=4 Nr=2, tunnel 23376, session 0
    "hello_hello1": (
        "c80200145b500000000400028008000000000006"
    ),
    # Hello lns>lac, frame 13, t=60.030103 s, Ns=2 Nr=4, tunnel 64424, session 0
    "hello_hello2": (
        "c8020014fba80000000200048008000000000006"
    ),
    # ZLB lns>lac, frame 14, t=60.030191 s, Ns=3 Nr=5, tunnel 64424, session 0
    "hello_zlb4": (
        "c802000cfba8000000030005"
    ),
    # ZLB lac>lns, frame 15, t=60.030237 s, Ns=5 Nr=3, tunnel 23376, session 0
    "hello_zlb5": (
        "c802000c5b50000000050003"
    ),
    # StopCCN lac>lns, frame 16, t=66.101751 s, Ns=5 Nr=3, tunnel 23376, session 0
    "hello_stopccn": (
        "c802002e5b500000000500038008000000000004800800000009fba880120000"
        "000100010000476f6f6462796521"
    ),
    # ZLB lns>lac, frame 17, t=66.101871 s, Ns=3 Nr=6, tunnel 64424, session 0
    "hello_zlb6": (
        "c802000cfba8000000030006"
    ),
}

# Run "crafted": a scripted LAC (python in capture_xl2tpd.sh) against the
# xl2tpd LNS of run "hidden"'s config.  crafted_sccrq is hidden_sccrq
# replayed byte for byte; crafted_scccn, crafted_hidden_icrq and
# crafted_stopccn were built by the script; crafted_sccrp, crafted_icrp and
# the ZLBs are xl2tpd's answers.  xl2tpd accepted the hidden AVPs: its ICRP
# went to session 0x1234 and it logged serial number 11259375 (0xabcdef).
CRAFTED = {
    # SCCRQ lac>lns, frame 1, t=0.000000 s, Ns=0 Nr=0, tunnel 0, session 0
    "crafted_sccrq": (
        "c8020098000000000000000080080000000000018016000000246ba069c941ec"
        "c54323bcd83863cb9e3d8008000000020100800a0000000300000003800a0000"
        "00040000000000080000000606908011000000076c61632d6361707475726500"
        "130000000878656c6572616e63652e636f6d800800000009cbad80080000000a"
        "000480160000000b773c63f753214fffe215080fb473daec"
    ),
    # SCCRP lns>lac, frame 2, t=0.000191 s, Ns=0 Nr=1, tunnel 52141, session 0
    "crafted_sccrp": (
        "c80200aecbad00000000000180080000000000028016000000248cf93014ac2a"
        "85e8118c7a755cb2dd1c8008000000020100800a0000000300000003800a0000"
        "00040000000000080000000606908011000000076c6e732d6361707475726500"
        "130000000878656c6572616e63652e636f6d800800000009a60d80080000000a"
        "000480160000000d1d50091525b5965e142839c56366c47780160000000b12a1"
        "9855a4c4c0060fc880e5ee3b735c"
    ),
    # SCCCN lac>lns, frame 3, t=0.000254 s, Ns=1 Nr=1, tunnel 42509, session 0
    "crafted_scccn": (
        "c8020040a60d0000000100018008000000000003801600000024101112131415"
        "161718191a1b1c1d1e1f80160000000d1b168f2fe26d11abf9f1ae4b5fba5b50"
    ),
    # ICRQ lac>lns, frame 4, t=0.000285 s, Ns=2 Nr=1, tunnel 42509, session 0
    "crafted_hidden_icrq": (
        "c802005ca60d000000020001800800000000000a801600000024202122232425"
        "262728292a2b2c2d2e2fc00a0000000e434757eac01e0000000f1d2d855185f3"
        "8eb08bc01d565e2cb53e6c92f8faebb3494a800a0000001200000000"
    ),
    # ZLB lns>lac, frame 5, t=0.000306 s, Ns=1 Nr=2, tunnel 52141, session 0
    "crafted_zlb1": (
        "c802000ccbad000000010002"
    ),
    # ICRP lns>lac, frame 6, t=0.000348 s, Ns=1 Nr=3, tunnel 52141, session 4660
    "crafted_icrp": (
        "c8020032cbad123400010003800800000000000b8016000000248dba427f9462"
        "22c1dc59bf0af313320780080000000eae1f"
    ),
    # StopCCN lac>lns, frame 7, t=0.000368 s, Ns=3 Nr=2, tunnel 42509, session 0
    "crafted_stopccn": (
        "c8020026a60d0000000300028008000000000004800800000009cbad800a0000"
        "000100010000"
    ),
    # ZLB lns>lac, frame 8, t=0.000374 s, Ns=2 Nr=3, tunnel 52141, session 0
    "crafted_zlb2": (
        "c802000ccbad000000020003"
    ),
    # ZLB lns>lac, frame 9, t=0.000393 s, Ns=2 Nr=4, tunnel 52141, session 0
    "crafted_zlb3": (
        "c802000ccbad000000020004"
    ),
}

LABELS = {
    "plain_sccrq": "SCCRQ",
    "plain_sccrp": "SCCRP",
    "plain_scccn": "SCCCN",
    "plain_icrq": "ICRQ",
    "plain_zlb1": "ZLB",
    "plain_icrp": "ICRP",
    "plain_zlb2": "ZLB",
    "plain_iccn": "ICCN",
    "plain_zlb3": "ZLB",
    "plain_cdn1": "CDN",
    "plain_cdn2": "CDN",
    "plain_zlb4": "ZLB",
    "plain_zlb5": "ZLB",
    "plain_stopccn1": "StopCCN",
    "plain_zlb6": "ZLB",
    "plain_zlb7": "ZLB",
    "plain_zlb8": "ZLB",
    "plain_stopccn2": "StopCCN",
    "plain_zlb9": "ZLB",
    "hidden_sccrq": "SCCRQ",
    "hidden_sccrp": "SCCRP",
    "hidden_scccn": "SCCCN",
    "hidden_icrq": "ICRQ",
    "hidden_zlb1": "ZLB",
    "hidden_icrp": "ICRP",
    "hidden_iccn": "ICCN",
    "hidden_zlb2": "ZLB",
    "hidden_zlb3": "ZLB",
    "hidden_cdn1": "CDN",
    "hidden_cdn2": "CDN",
    "hidden_zlb4": "ZLB",
    "hidden_zlb5": "ZLB",
    "hidden_stopccn1": "StopCCN",
    "hidden_zlb6": "ZLB",
    "hidden_zlb7": "ZLB",
    "hidden_zlb8": "ZLB",
    "hidden_stopccn2": "StopCCN",
    "hidden_zlb9": "ZLB",
    "crafted_sccrq": "SCCRQ",
    "crafted_sccrp": "SCCRP",
    "crafted_scccn": "SCCCN",
    "crafted_hidden_icrq": "ICRQ",
    "crafted_zlb1": "ZLB",
    "crafted_icrp": "ICRP",
    "crafted_stopccn": "StopCCN",
    "crafted_zlb2": "ZLB",
    "crafted_zlb3": "ZLB",
    "hello_sccrq": "SCCRQ",
    "hello_sccrp": "SCCRP",
    "hello_scccn": "SCCCN",
    "hello_icrq": "ICRQ",
    "hello_zlb1": "ZLB",
    "hello_icrp": "ICRP",
    "hello_iccn": "ICCN",
    "hello_zlb2": "ZLB",
    "hello_zlb3": "ZLB",
    "hello_data1": "Data",
    "hello_data2": "Data",
    "hello_hello1": "Hello",
    "hello_hello2": "Hello",
    "hello_zlb4": "ZLB",
    "hello_zlb5": "ZLB",
    "hello_stopccn": "StopCCN",
    "hello_zlb6": "ZLB",
}

DIRECTION = {
    "plain_sccrq": "lac>lns",
    "plain_sccrp": "lns>lac",
    "plain_scccn": "lac>lns",
    "plain_icrq": "lac>lns",
    "plain_zlb1": "lns>lac",
    "plain_icrp": "lns>lac",
    "plain_zlb2": "lns>lac",
    "plain_iccn": "lac>lns",
    "plain_zlb3": "lns>lac",
    "plain_cdn1": "lac>lns",
    "plain_cdn2": "lns>lac",
    "plain_zlb4": "lns>lac",
    "plain_zlb5": "lac>lns",
    "plain_stopccn1": "lac>lns",
    "plain_zlb6": "lns>lac",
    "plain_zlb7": "lns>lac",
    "plain_zlb8": "lac>lns",
    "plain_stopccn2": "lac>lns",
    "plain_zlb9": "lns>lac",
    "hidden_sccrq": "lac>lns",
    "hidden_sccrp": "lns>lac",
    "hidden_scccn": "lac>lns",
    "hidden_icrq": "lac>lns",
    "hidden_zlb1": "lns>lac",
    "hidden_icrp": "lns>lac",
    "hidden_iccn": "lac>lns",
    "hidden_zlb2": "lns>lac",
    "hidden_zlb3": "lns>lac",
    "hidden_cdn1": "lns>lac",
    "hidden_cdn2": "lac>lns",
    "hidden_zlb4": "lns>lac",
    "hidden_zlb5": "lac>lns",
    "hidden_stopccn1": "lac>lns",
    "hidden_zlb6": "lns>lac",
    "hidden_zlb7": "lac>lns",
    "hidden_zlb8": "lns>lac",
    "hidden_stopccn2": "lac>lns",
    "hidden_zlb9": "lns>lac",
    "crafted_sccrq": "lac>lns",
    "crafted_sccrp": "lns>lac",
    "crafted_scccn": "lac>lns",
    "crafted_hidden_icrq": "lac>lns",
    "crafted_zlb1": "lns>lac",
    "crafted_icrp": "lns>lac",
    "crafted_stopccn": "lac>lns",
    "crafted_zlb2": "lns>lac",
    "crafted_zlb3": "lns>lac",
    "hello_sccrq": "lac>lns",
    "hello_sccrp": "lns>lac",
    "hello_scccn": "lac>lns",
    "hello_icrq": "lac>lns",
    "hello_zlb1": "lns>lac",
    "hello_icrp": "lns>lac",
    "hello_iccn": "lac>lns",
    "hello_zlb2": "lns>lac",
    "hello_zlb3": "lns>lac",
    "hello_data1": "lns>lac",
    "hello_data2": "lac>lns",
    "hello_hello1": "lac>lns",
    "hello_hello2": "lns>lac",
    "hello_zlb4": "lns>lac",
    "hello_zlb5": "lac>lns",
    "hello_stopccn": "lac>lns",
    "hello_zlb6": "lns>lac",
}

# Capture order per run (dicts are not ordered on every interpreter).
SEQUENCES = {
    "plain": (
        "plain_sccrq",
        "plain_sccrp",
        "plain_scccn",
        "plain_icrq",
        "plain_zlb1",
        "plain_icrp",
        "plain_zlb2",
        "plain_iccn",
        "plain_zlb3",
        "plain_cdn1",
        "plain_cdn2",
        "plain_zlb4",
        "plain_zlb5",
        "plain_stopccn1",
        "plain_zlb6",
        "plain_zlb7",
        "plain_zlb8",
        "plain_stopccn2",
        "plain_zlb9",
    ),
    "hidden": (
        "hidden_sccrq",
        "hidden_sccrp",
        "hidden_scccn",
        "hidden_icrq",
        "hidden_zlb1",
        "hidden_icrp",
        "hidden_iccn",
        "hidden_zlb2",
        "hidden_zlb3",
        "hidden_cdn1",
        "hidden_cdn2",
        "hidden_zlb4",
        "hidden_zlb5",
        "hidden_stopccn1",
        "hidden_zlb6",
        "hidden_zlb7",
        "hidden_zlb8",
        "hidden_stopccn2",
        "hidden_zlb9",
    ),
    "crafted": (
        "crafted_sccrq",
        "crafted_sccrp",
        "crafted_scccn",
        "crafted_hidden_icrq",
        "crafted_zlb1",
        "crafted_icrp",
        "crafted_stopccn",
        "crafted_zlb2",
        "crafted_zlb3",
    ),
    "hello": (
        "hello_sccrq",
        "hello_sccrp",
        "hello_scccn",
        "hello_icrq",
        "hello_zlb1",
        "hello_icrp",
        "hello_iccn",
        "hello_zlb2",
        "hello_zlb3",
        "hello_data1",
        "hello_data2",
        "hello_hello1",
        "hello_hello2",
        "hello_zlb4",
        "hello_zlb5",
        "hello_stopccn",
        "hello_zlb6",
    ),
}

# Hidden AVPs of the crafted vectors, decrypted: (attribute, value, padding),
# all hex.  Random Vector: the one in the same message (2021...2e2f).
HIDDEN = {
    "crafted_hidden_icrq": (
        (14, "1234", ""),
        (15, "00abcdef", "404142434445464748494a4b4c4d4e4f5051"),
    ),
}
