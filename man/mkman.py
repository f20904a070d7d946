#!/usr/bin/env python3
"""Write the manual pages l2tpd(8), l2tpctl(1) and l2tpd.conf(5) from the code's own tables.

    python3 man/mkman.py            (re)write man/l2tpd.8, man/l2tpctl.1, man/l2tpd.conf.5
    python3 man/mkman.py --check    exit 1 naming the pages that differ from what it would write
    python3 man/mkman.py -o DIR     write them into DIR instead

`make man` runs it; tests/test_install.py regenerates the pages and compares them with the
committed files, so a changed option, command or parameter fails the suite until `make man`
is run and its result committed.

Where each part comes from:
- l2tpd(8) OPTIONS: l2tpd.build_parser() (argparse: every option, its metavar, choices, help).
- l2tpctl(1) COMMANDS and l2tpd.conf(5) COMMANDS: l2tpd.describe_schema() (every RPC method,
  shown as the l2tpctl words `object [profile] verb` of rpc_unix.command_words, and every
  parameter with its type, default, bounds, choices and help); l2tpd.conf(5) lists only the
  verbs a config file may use (l2tpd.CONFIG_VERBS).
- l2tpd.conf(5) SYNTAX: prose here, but every quoting example is parsed with rpc_unix's own
  parser while the page is built, so the page cannot claim a grammar the parser does not
  have. Its EXAMPLE is contrib/l2tpd.conf verbatim (which tests load into a daemon).
- The prose sections (DESCRIPTION, SIGNALS, FILES, EXIT STATUS, ...) are written below.

The output is plain man(7) roff, ASCII only, with no date (a page must not change unless
the code does). Every '-' is written as \\- so that option names and values copy and
search as the ASCII hyphen-minus.
"""
import argparse
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

import l2tpd  # noqa: E402
import rpc_unix  # noqa: E402

SAMPLE_CONFIG = os.path.join(ROOT, "contrib", "l2tpd.conf")
PAGES = ("l2tpd.8", "l2tpctl.1", "l2tpd.conf.5")

# Objects in the order a reader meets them; objects added later follow alphabetically.
OBJECT_ORDER = ("system", "tunnel", "session", "tunnel_profile", "session_profile",
                "ppp_profile", "peer_profile", "peer", "ippool", "user", "config", "events",
                "rpc")
VERB_ORDER = ("create", "modify", "unset", "delete", "show", "list")


# ------------------------------------------------------------------ roff helpers
def esc(text):
    """Plain text -> roff text for the body of a line: backslashes, hyphens, non-ASCII;
    a comma inside a word (a comma list) may break the line there."""
    text = str(text).replace("\\", "\\e").replace("-", "\\-")
    text = re.sub(r",(?=\S)", r",\\:", text)
    return "".join(c if ord(c) < 128 else f"\\[u{ord(c):04X}]" for c in text)


def line(text):
    """One roff text line: a leading '.' or "'" would be read as a request."""
    return "\\&" + text if text[:1] in (".", "'") else text


def B(text):
    return f"\\fB{esc(text)}\\fR"


def I(text):  # noqa: E743 - roff's name for italics
    return f"\\fI{esc(text)}\\fR"


def para(text):
    """A paragraph of plain text (its own lines, escaped)."""
    return [line(esc(t)) for t in text.strip().split("\n")]


def sentence(text):
    """A help text as a sentence: a plain lower-case first word capitalized (not a name
    such as dest_ipaddr, pppd-format or a choice such as "none;"), a full stop added."""
    text = text.strip()
    if re.match(r"[a-z]+(?=[\s:]|$)", text):
        text = text[0].upper() + text[1:]
    return text if not text or text[-1] in ".!?:" else text + "."


def th(name, section, title):
    """The title line; then left-adjusted text without hyphenation (names, paths and
    values must not be split or stretched)."""
    return [f'.TH {name.upper()} {section} "" "l2tpd {esc(l2tpd.VERSION)}" "{title}"',
            ".ad l", ".nh"]


def example(lines, indent=4, shell=False):
    """Lines shown as typed, in a no-fill block. shell=True: a command too long for an
    80-column page (7 columns of margin and `indent`) is continued with a backslash."""
    width = 80 - 7 - indent - 2
    out = [".PP", f".RS {indent}", ".nf"]
    for t in lines:
        while shell and len(t) > width and " " in t[:width]:
            cut = t.rindex(" ", 0, width)
            out.append(line(esc(t[:cut] + " \\")))
            t = "    " + t[cut + 1:]
        out.append(line(esc(t)) if t else "")
    return out + [".fi", ".RE"]


def rich(text):
    """Prose with markup: *bold* words (commands, options, values) and _italic_ ones
    (placeholders); the rest escaped. Markers must enclose a word or words."""
    out = []
    for part in re.split(r"(\*[^*\n]+\*|_[A-Za-z][^_\n]*_(?![A-Za-z]))", text):
        if len(part) > 2 and part[0] == part[-1] == "*":
            out.append(B(part[1:-1]))
        elif len(part) > 2 and part[0] == part[-1] == "_":
            out.append(I(part[1:-1]))
        else:
            out.append(esc(part))
    return "".join(out)


def prose(text):
    """Paragraphs separated by blank lines; lines starting with '- ' are list items."""
    out = []
    for block in text.strip().split("\n\n"):
        lines = block.strip().split("\n")
        if lines[0].startswith("- "):
            items, cur = [], None
            for t in lines:
                if t.startswith("- "):
                    cur = [t[2:]]
                    items.append(cur)
                else:
                    cur.append(t.strip())
            for it in items:
                out += [".IP \\(bu 3"] + [line(rich(t)) for t in it]
        else:
            out.append(".PP")
            out += [line(rich(t.strip())) for t in lines]
    return out


# ------------------------------------------------------------------ the schema
def command_name(method):
    return " ".join(rpc_unix.command_words(method))


def method_key(method):
    obj, _, verb = method.partition(".")
    words = rpc_unix.command_words(method)
    verb_word = words[-1]
    o = OBJECT_ORDER.index(obj) if obj in OBJECT_ORDER else len(OBJECT_ORDER)
    v = VERB_ORDER.index(verb_word) if verb_word in VERB_ORDER else len(VERB_ORDER)
    return (o, obj, v, verb_word)


def objects(schema):
    """[(object, [method, ...])] in reading order."""
    out = {}
    for m in sorted((m for m in schema if "." in m), key=method_key):
        out.setdefault(m.partition(".")[0], []).append(m)
    return list(out.items())


def value_text(v):
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (list, tuple)):
        return ",".join(value_text(x) for x in v)
    return str(v)


def param_lines(name, spec):
    """.TP entry of one parameter."""
    t = spec.get("type", "str")
    if t == "bool":
        head = f"{B(name)}[{B('=')}{B('yes')}|{B('no')}]"
    elif t == "enum" and spec.get("choices"):
        head = B(name + "=") + "{" + "|".join(B(c) for c in spec["choices"]) + "}"
    else:
        head = B(name + "=") + I(t)
    facts = []
    if spec.get("required"):
        facts.append("Required.")
    if t == "int":
        lo, hi = spec.get("min"), spec.get("max")
        if lo is not None and hi is not None:
            facts.append(f"Integer from {lo} to {hi}.")
        elif lo is not None:
            facts.append(f"Integer, at least {lo}.")
        elif hi is not None:
            facts.append(f"Integer, at most {hi}.")
    elif t == "flags" and spec.get("choices"):
        facts.append("Names: " + ", ".join(spec["choices"]) + ".")
    elif t == "ipaddr":
        facts.append("A dotted IPv4 address.")
    if "default" in spec and spec["default"] is not None:
        facts.append(f"Default: {value_text(spec['default'])}.")
    text = sentence(spec.get("help", ""))
    body = [line(esc(text))] if text else []
    if facts:
        body.append(line(esc(" ".join(facts))))
    return [".TP", head] + body


def unset_words(params):
    """The bare-word parameters of an unset command (bool "unset NAME"), or []."""
    return [n for n, s in params.items()
            if s.get("type") == "bool" and s.get("help") == f"unset {n}"]


def command_section(schema, methods):
    """.SS per command with its parameters; a command whose parameters are exactly those
    of one already shown refers to it."""
    out, seen = [], []
    for m in methods:
        entry = schema[m] or {}
        params = entry.get("params") or {}
        out += [f'.SS "{esc(command_name(m))}"']
        if entry.get("help"):
            out.append(line(esc(sentence(entry["help"]))))
        same = next((s for s, p in seen if p == params), None)
        if not params:
            out.append("No parameters.")
        elif same is not None:
            out += [".PP", f"Parameters as for {B(command_name(same))}."]
        else:
            words = unset_words(params)
            rest = {n: s for n, s in params.items() if n not in words}
            for n, s in rest.items():
                out += param_lines(n, s)
            if words:
                out += [".PP", "Any of these words, each returning that parameter to the "
                        "value the profile inherits (a bare word means",
                        f"{B('name=yes')}):", line(", ".join(B(w) for w in words)) + "."]
            seen.append((m, params))
    return out


# ------------------------------------------------------------------ l2tpd(8)
L2TPD_DESCRIPTION = """
*l2tpd* is an L2TP (Layer Two Tunneling Protocol, RFC 2661) daemon. It is a LAC and an LNS
at once: tunnels and sessions are created locally, with *l2tpctl*(1) or a configuration file,
or by peers. It implements all four call types (LAC and LNS, incoming and outgoing calls),
tunnel authentication with the shared-secret challenge, hidden AVPs, profiles of tunnel,
session, PPP and peer parameters, and persistent tunnels that are re-created when they fail.

At start *l2tpd* applies the configuration file given with *-c* (see *l2tpd.conf*(5)): a file
of *l2tpctl* commands, applied whole or not at all. At run time it is managed through a
JSON-RPC interface on a Unix socket (*-s*), which *l2tpctl*(1) and firmware use. The socket
is mode 0660: its owner (root) and the members of its group (*-g*) may use it.

The data path (*--dataplane*) carries the sessions' traffic. *null* runs the control
protocol only. *userspace* gives each session a TUN device and runs l2tpd's own PPP (LCP,
PAP, CHAP-MD5, IPCP with DNS addresses, IP pools); it needs root (or CAP_NET_ADMIN) and the
Python package pyroute2-minimal, which *make install* puts beside the modules. *kernel*
(the kernel's L2TP and pppd) is not implemented yet. *auto* picks the best path that works
here and falls back to *null* with a warning in the log; *l2tpctl system show* says which
path runs and why.

Without *-f*, *l2tpd* detaches and logs to syslog (facility daemon); in the foreground it
logs to standard error, which is what systemd's journal collects. At the default level
(*info*) there is one line for every tunnel and session that comes up, goes down or fails,
naming the peer, the ids, the user and the reason. *-d* adds protocol traces.
"""

L2TPD_SIGNALS = """
- *SIGHUP* applies the *-c* file again, whole or not at all: profiles and pools are
  modified, tunnels and sessions the file made before are kept, new ones are created. An
  error is logged with FILE:LINE and the running configuration is kept. Without *-c* it is
  ignored.
- *SIGTERM*, *SIGINT* stop the daemon: every tunnel is cleared with a StopCCN to its peer,
  *l2tpd* waits up to 3 seconds for the peers to acknowledge them, then exits with status 0.
- *SIGUSR1* writes a status summary (tunnels, sessions, IP pools, counters) to the log.
"""

L2TPD_FILES = """
- */etc/l2tpd/l2tpd.conf*: the configuration file, when given with *-c* (the systemd unit
  does); see *l2tpd.conf*(5).
- */etc/l2tpd/*: the configuration directory, unless *--config-dir* or *-c* says otherwise:
  *config save* and *config restore* over RPC name files here, and a PPP profile's
  *secrets_file* must lie here or in */etc/ppp*.
- */etc/ppp/chap-secrets*: the default secrets file of PPP profiles (pppd's format:
  _client server secret_ per line).
- */run/l2tpd/l2tpd.sock*: the RPC socket when running as root; *./l2tpd.sock* otherwise.
- */usr/lib/l2tpd/*: the Python modules (under the PREFIX given to *make install*), with
  the private *site/* directory that holds pyroute2-minimal.
- */usr/lib/systemd/system/l2tpd.service*: the systemd unit (installed under the PREFIX
  by *make install SYSTEMD=1*).
"""

L2TPD_ENVIRONMENT = """
- *L2TPD_LIBDIR*: read by the installed *l2tpd* and *l2tpctl* wrappers: the directory of
  the Python modules, instead of the one given at installation (to run a copy staged with
  *make install DESTDIR=...*).
- *PYTHONPATH*: the *l2tpd* wrapper puts the private *site/* directory first.
"""

L2TPD_EXIT = """
*0* after a stop by SIGTERM or SIGINT. *1* when the daemon cannot start: an option with a
bad value, a configuration file that cannot be read or applied, sockets that cannot be
opened, a data path that is not available, a plugin that fails to load; one line on
standard error says which. *2* for a usage error (an unknown option).
"""

L2TPD_EXAMPLES = [
    "# two daemons on one machine, control protocol only",
    "l2tpd -f -a 127.0.0.1 -s /tmp/a.sock --dataplane null &",
    "l2tpd -f -a 127.0.0.2 -s /tmp/b.sock --dataplane null &",
    "l2tpctl -s /tmp/a.sock tunnel create dest_ipaddr=127.0.0.2",
    "",
    "# as a service",
    "cp /etc/l2tpd/l2tpd.conf.sample /etc/l2tpd/l2tpd.conf",
    "systemctl enable --now l2tpd",
    "systemctl reload l2tpd        # SIGHUP: apply l2tpd.conf again",
    "journalctl -u l2tpd",
]


def option_head(action):
    names = ", ".join(B(s) for s in action.option_strings)
    if action.nargs == 0:
        return names
    if action.choices and not action.metavar:
        return names + " {" + "|".join(B(c) for c in action.choices) + "}"
    metavar = action.metavar or action.dest.upper()
    return f"{names} {I(metavar)}"


def synopsis_word(action):
    first = min(action.option_strings, key=len)
    if action.nargs == 0:
        return f"[{B(first)}]"
    if action.choices and not action.metavar:
        return f"[{B(first)} " + "|".join(B(c) for c in action.choices) + "]"
    return f"[{B(first)} {I(action.metavar or action.dest.upper())}]"


def l2tpd_page():
    ap = l2tpd.build_parser()
    fmt = ap._get_formatter()
    actions = [a for a in ap._actions if a.option_strings and a.help != argparse.SUPPRESS]
    out = th("l2tpd", 8, "System Manager's Manual")
    out += [".SH NAME", f"l2tpd \\- {esc(ap.description)}"]
    out += [".SH SYNOPSIS", B("l2tpd")]
    out += [synopsis_word(a) for a in actions if a.dest not in ("help", "version")]
    out += [".br", B("l2tpd") + " " + B("--version")]
    out += [".SH DESCRIPTION"] + prose(L2TPD_DESCRIPTION)
    out += [".SH OPTIONS"]
    for a in actions:
        out += [".TP", option_head(a), line(esc(sentence(fmt._expand_help(a))))]
        if a.choices and a.metavar:
            out.append(line(esc("One of: " + ", ".join(map(str, a.choices)) + ".")))
    out += [".SH SIGNALS"] + prose(L2TPD_SIGNALS)
    out += [".SH FILES"] + prose(L2TPD_FILES)
    out += [".SH ENVIRONMENT"] + prose(L2TPD_ENVIRONMENT)
    out += [".SH EXIT STATUS"] + prose(L2TPD_EXIT)
    out += [".SH EXAMPLES"] + example(L2TPD_EXAMPLES, shell=True)
    out += [".SH SEE ALSO", f"{B('l2tpctl')}(1), {B('l2tpd.conf')}(5), {B('pppd')}(8), "
            f"{B('systemd.service')}(5), RFC 2661"]
    return out


# ------------------------------------------------------------------ l2tpctl(1)
L2TPCTL_DESCRIPTION = """
*l2tpctl* controls a running *l2tpd*(8) through its Unix socket. Each command names an
object, *profile* for the profile objects, a verb and parameters:

_object_ [*profile*] _verb_ [_name_*=*_value_ ...]

such as *tunnel create dest_ipaddr=192.0.2.1 tunnel_name=t1* or
*ppp profile modify profile_name=default auth_pap=yes*.
A bare _name_ means _name_*=yes*. Values go to the daemon as typed and the daemon checks
them; quoting is as in *l2tpd.conf*(5). Object and parameter names are OpenL2TP's. The
commands and their parameters are listed under COMMANDS.

Options may come before or after the command words; *--* ends them. Help, *?*, TAB
completion and the check of command names work without a daemon, from the command grammar
installed beside *l2tpctl* (*l2tpctl-schema.json*); a daemon that answers is asked instead,
and the daemon alone checks parameters and values.

With a command on the command line *l2tpctl* runs it and exits. With *-f* it runs the
commands of a file (the configuration file grammar, any verb). With neither, on a terminal, it
opens a shell: TAB completes objects, verbs, parameter names and values (and the names of
existing tunnels, sessions, profiles and pools), *?* at the end of a line or *help*
[_command_] shows help at once, and history is kept between sessions (without the values of
*secret=* and *user_password=*). *quit*, *exit* or Ctrl-D leave. From a pipe, commands are
read from standard input, one a line.

Output is made for people: one line for a create, delete or modify, aligned
_name_: _value_ lines for *show*, tables for *list*. *--json* prints the daemon's result as
JSON instead, and errors as a JSON object on standard error.
"""

# Longer texts for l2tpctl's options (by long name); the options themselves, their names
# and metavars, come from l2tpctl.USAGE, whose own short text is used for any other.
L2TPCTL_OPTION_TEXT = {
    "--socket": "The daemon's socket. Default: $L2TPD_SOCKET, else /run/l2tpd/l2tpd.sock "
                "when run as root, else ./l2tpd.sock.",
    "--json": "Print results as JSON (indented, keys sorted), and every error as one JSON "
              "object on standard error: {\"error\": {\"code\": N, \"message\": ...}}.",
    "--file": "Run the commands in FILE ('-' for standard input), one a line; their command "
              "names are checked before the first runs, and the first error stops the run.",
    "--help": "Show the usage and exit; after command words, that command's help.",
    "--version": "Show the version and exit.",
}


def l2tpctl_options():
    """[(names, metavar or None, text)] from l2tpctl.USAGE's "options" block (lines such as
    "-s, --socket PATH   daemon socket ..." with indented continuations), then -h."""
    import l2tpctl
    text = l2tpctl.USAGE
    start = re.search(r"(?m)^options\b[^:\n]*:", text)
    if start is None:
        raise SystemExit("mkman: l2tpctl.USAGE has no options block; update l2tpctl_options")
    block = text[start.end():].split("\nexamples:")[0]
    opts = []
    for ln in block.split("\n"):
        m = re.match(r"\s*((?:-\w, )?--[a-z][a-z-]*)(?: ([A-Z]+))?\s{2,}(\S.*)$", ln)
        if m:
            opts.append([tuple(m.group(1).split(", ")), m.group(2), m.group(3).strip()])
        elif ln.strip() and opts:
            opts[-1][2] += " " + ln.strip()
    if not opts:
        raise SystemExit("mkman: no options found in l2tpctl.USAGE; update l2tpctl_options")
    if not any("--help" in names for names, _, _ in opts):
        opts.append([("-h", "--help"), None, ""])
    return [(names, metavar, L2TPCTL_OPTION_TEXT.get(names[-1]) or sentence(short))
            for names, metavar, short in opts]


def l2tpctl_examples():
    import l2tpctl
    block = l2tpctl.USAGE.split("\nexamples:", 1)
    return [ln.strip() for ln in block[1].split("\n") if ln.strip()] if len(block) == 2 else []

L2TPCTL_ENVIRONMENT = """
- *L2TPD_SOCKET*: the socket when *-s* is not given.
- *L2TPCTL_HISTFILE*: the shell's history file instead of *~/.l2tpctl_history*.
"""

L2TPCTL_FILES = """
- */run/l2tpd/l2tpd.sock*: the daemon's socket when run as root.
- *~/.l2tpctl_history*: the shell's history.
- */usr/lib/l2tpd/l2tpctl-schema.json*: the command grammar, for help and completion
  without a daemon (under the PREFIX given to *make install*).
"""

L2TPCTL_EXIT = """
*0* success. *1* the daemon answered with an error, or could not be reached; one line on
standard error says which. *2* a usage or syntax error, or an unknown command. *130*
interrupted (Ctrl-C).
"""

# After l2tpctl.USAGE's own examples.
L2TPCTL_EXAMPLES = [
    "l2tpctl ippool create pool_name=p first_addr=10.0.0.10 num_addrs=99",
    "l2tpctl config save file=l2tpd.conf",
    "l2tpctl events subscribe",
    "l2tpctl help tunnel create",
]


def l2tpctl_page(schema):
    out = th("l2tpctl", 1, "User Commands")
    out += [".SH NAME", "l2tpctl \\- control l2tpd, the L2TP daemon"]
    opts = f"[{B('-s')} {I('PATH')}] [{B('--json')}]"
    out += [".SH SYNOPSIS",
            f"{B('l2tpctl')} {opts} {I('object')} [{B('profile')}] {I('verb')} "
            f"[{I('name')}{B('=')}{I('value')} ...]", ".br",
            f"{B('l2tpctl')} {opts} {B('-f')} {I('FILE')}", ".br",
            f"{B('l2tpctl')} {opts}", ".br",
            f"{B('l2tpctl help')} [{I('object')} [{B('profile')}] [{I('verb')}]]", ".br",
            f"{B('l2tpctl')} {B('--version')}"]
    out += [".SH DESCRIPTION"] + prose(L2TPCTL_DESCRIPTION)
    out += [".SH OPTIONS"]
    for names, metavar, text in l2tpctl_options():
        head = ", ".join(B(n) for n in names) + (f" {I(metavar)}" if metavar else "")
        out += [".TP", head, line(esc(text))]
    out += [".SH COMMANDS", "Every command the daemon knows, with its parameters. "
            f"{B('show')} is also {B('get')}."]
    for _obj, methods in objects(schema):
        out += command_section(schema, methods)
    out += [".SH ENVIRONMENT"] + prose(L2TPCTL_ENVIRONMENT)
    out += [".SH FILES"] + prose(L2TPCTL_FILES)
    out += [".SH EXIT STATUS"] + prose(L2TPCTL_EXIT)
    out += [".SH EXAMPLES"] + example(l2tpctl_examples() + L2TPCTL_EXAMPLES, shell=True)
    out += [".SH SEE ALSO", f"{B('l2tpd')}(8), {B('l2tpd.conf')}(5)"]
    return out


# ------------------------------------------------------------------ l2tpd.conf(5)
CONF_DESCRIPTION = """
*l2tpd*(8) reads this file at start when it is given with *-c* (the systemd unit gives
*/etc/l2tpd/l2tpd.conf*) and again on SIGHUP (*systemctl reload l2tpd*). It holds *l2tpctl*(1)
commands without the word *l2tpctl*: the same objects, verbs and parameters, limited to the
verbs that set up configuration (see COMMANDS). *l2tpctl config save* writes such a file and
*l2tpctl config restore* applies one.

A file is applied whole or not at all. Every line is checked first: profiles, IP pools and
their blocks are set up in file order, and tunnel, session and system lines are checked
against what exists and what earlier lines create. Then the tunnel, session and system lines
run, in file order. If any line fails, the error names _FILE_:_LINE_, everything the file did
is undone and the previous configuration stays; at start the daemon exits with status 1.

Applied again (SIGHUP), the file changes what it describes and leaves the rest alone: a
*create* of a profile that exists modifies it, a pool or block that exists stays with its
addresses handed out, and a tunnel or session a line created before is not created again
while it exists. Tunnels and sessions made with *l2tpctl* are not touched.

The file may name secrets (*secret=*, *user_password=*): keep it mode 0600.
"""

# (text as written, its meaning) for the SYNTAX section; each is parsed by rpc_unix while
# the page is built: (method, params) of rpc_unix.parse_config, or an int: so many commands.
SYNTAX_EXAMPLES = [
    ("tunnel profile modify profile_name=default hello_timeout=30",
     ("tunnel_profile.modify", {"profile_name": "default", "hello_timeout": "30"})),
    ("tunnel create tunnel_name=t1 dest_ipaddr=192.0.2.1 persist",
     ("tunnel.create", {"tunnel_name": "t1", "dest_ipaddr": "192.0.2.1", "persist": "yes"})),
    ("tunnel profile create profile_name=a secret=\"two words\"",
     ("tunnel_profile.create", {"profile_name": "a", "secret": "two words"})),
    ("tunnel profile create profile_name=a secret='say \"hi\" #1'",
     ("tunnel_profile.create", {"profile_name": "a", "secret": 'say "hi" #1'})),
    ("tunnel profile create profile_name=a secret=two\\ words",
     ("tunnel_profile.create", {"profile_name": "a", "secret": "two words"})),
    ("ippool create pool_name=p first_addr=10.0.0.10   # a comment",
     ("ippool.create", {"pool_name": "p", "first_addr": "10.0.0.10"})),
    ("ippool create pool_name=p; ppp profile create profile_name=q", 2),
    ("ppp profile modify profile_name=default \\\n    auth_pap=yes auth_chap=no",
     ("ppp_profile.modify", {"profile_name": "default", "auth_pap": "yes", "auth_chap": "no"})),
]

CONF_SYNTAX = """
- One command a line: _object_ [*profile*] _verb_ [_name_*=*_value_ ...]. A bare _name_
  means _name_*=yes*. A parameter may be given once per command. Values are checked by the
  daemon as if they were typed to *l2tpctl*.
- *#* at the start of a word begins a comment that runs to the end of the line; blank
  lines are ignored.
- *;* outside quotes ends a command, so several may share a line.
- A backslash at the end of a line continues the command on the next line.
- Quoting is like the shell's: *'single quotes'* keep everything literally,
  *"double quotes"* keep everything but *\\"* and *\\\\*, and a backslash outside quotes
  keeps the next character. Quotes may sit inside a word, as in *secret="two words"*. An
  *=* that is quoted or escaped does not separate the name from the value.
"""

CONF_FILES = """
- */etc/l2tpd/l2tpd.conf*: this file (the one the systemd unit names).
- */etc/l2tpd/l2tpd.conf.sample*: the commented example below, installed by *make install*.
- */etc/ppp/chap-secrets*: the default *secrets_file* of PPP profiles.
"""


def check_syntax_examples():
    for text, want in SYNTAX_EXAMPLES:
        got = rpc_unix.parse_config(text, "<example>")
        if isinstance(want, int):
            ok = len(got) == want
        else:
            ok = len(got) == 1 and (got[0][1], got[0][2]) == want
        if not ok:
            raise SystemExit(f"mkman: the SYNTAX example {text!r} no longer parses as the page "
                             f"says ({got!r}); update SYNTAX_EXAMPLES and CONF_SYNTAX")


def conf_page(schema):
    check_syntax_examples()
    verbs = l2tpd.CONFIG_VERBS
    allowed = {m: e for m, e in schema.items() if m.partition(".")[2] in verbs}
    out = th("l2tpd.conf", 5, "File Formats Manual")
    out += [".SH NAME", "l2tpd.conf \\- configuration file of l2tpd, the L2TP daemon"]
    out += [".SH SYNOPSIS", B("/etc/l2tpd/l2tpd.conf")]
    out += [".SH DESCRIPTION"] + prose(CONF_DESCRIPTION)
    out += [".SH SYNTAX"] + prose(CONF_SYNTAX)
    out += [".PP", "For example, each of these is one command (the last two lines are one):"]
    ex = []
    for text, _ in SYNTAX_EXAMPLES:
        if not isinstance(_, int):
            ex += text.split("\n")
    out += example(ex)
    out += [".PP", "and this line holds two:"]
    out += example([t for t, w in SYNTAX_EXAMPLES if isinstance(w, int)])
    shown = ", ".join(B(rpc_unix.METHOD_TO_VERB.get(v, v)) for v in sorted(verbs))
    out += [".SH COMMANDS", f"A configuration file may use the verbs {shown};",
            "any other command is refused with the line that has it.",
            "The commands, with their parameters:"]
    for _obj, methods in objects(allowed):
        out += command_section(allowed, methods)
    out += [".SH EXAMPLE", "The sample installed as " + B("/etc/l2tpd/l2tpd.conf.sample") + ":"]
    with open(SAMPLE_CONFIG, encoding="utf-8") as f:
        out += example(f.read().rstrip("\n").split("\n"), indent=2)
    out += [".SH FILES"] + prose(CONF_FILES)
    out += [".SH SEE ALSO", f"{B('l2tpd')}(8), {B('l2tpctl')}(1), {B('pppd')}(8)"]
    return out


# ------------------------------------------------------------------ main
def build():
    """{file name: page text} of every page."""
    schema = l2tpd.describe_schema()
    header = ['.\\" Generated by man/mkman.py from the code\'s own tables: do not edit;',
              '.\\" run "make man" instead.']
    pages = {"l2tpd.8": l2tpd_page(), "l2tpctl.1": l2tpctl_page(schema),
             "l2tpd.conf.5": conf_page(schema)}
    return {name: "\n".join(header + lines) + "\n" for name, lines in pages.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(prog="mkman.py", description=__doc__.split("\n")[0])
    ap.add_argument("-o", metavar="DIR", default=HERE, help="where to write (man/)")
    ap.add_argument("--check", action="store_true",
                    help="write nothing; exit 1 if a page in DIR differs")
    args = ap.parse_args(argv)
    stale = []
    for name, text in build().items():
        path = os.path.join(args.o, name)
        try:
            with open(path, encoding="utf-8") as f:
                old = f.read()
        except OSError:
            old = None
        if old == text:
            continue
        stale.append(name)
        if not args.check:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            print(f"wrote {path}")
    if args.check and stale:
        print(f"mkman: out of date: {', '.join(stale)}: run `make man`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
