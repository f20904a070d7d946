#!/usr/bin/env python3
"""l2tpctl: the command line and interactive shell of l2tpd.

    l2tpctl [-s PATH] [--json] OBJECT [profile] VERB [name=value | flag] ...
    l2tpctl [-s PATH] [--json] -f FILE       run the commands of FILE (config grammar)
    l2tpctl [-s PATH] [--json]               a shell on a terminal; commands from stdin
    l2tpctl help [OBJECT [profile] [VERB]]   or: l2tpctl OBJECT [profile] [VERB] ? (or -h)
    l2tpctl --version                        prints "l2tpctl VERSION"

Options may come before or after the command words (`l2tpctl tunnel list --json -s
PATH`); `--` ends them. -h/--help alone prints the usage, every line within 80 columns;
after command words, that command's help, as `help WORDS` does (`l2tpctl tunnel create
-h`). The grammar, the mapping to JSON-RPC methods (`show` -> `get`, `tunnel profile
modify` -> tunnel_profile.modify) and quoting are rpc_unix's (parse_command,
parse_config); values go to the daemon as strings exactly as typed and the daemon checks
them. The socket is -s PATH, else $L2TPD_SOCKET, else /run/l2tpd/l2tpd.sock
as root, else ./l2tpd.sock.

The grammar without a daemon: l2tpctl-schema.json, beside this file (an installed copy
keeps it in the same directory), is the daemon's rpc.describe as machine-independent data
(l2tpd.describe_schema(); `make schema` writes it, and a test fails when it drifts). Help,
`?`, TAB completion and the check of command names use it when no daemon answers; when
one does, its rpc.describe (fetched once per run) is used instead, and the daemon alone
checks parameters and values.

Unknown commands are named in the user's words with the nearest known ones, "unknown
command 'tunnl list' (did you mean 'tunnel list'?)", exit status 2, with or without a
daemon. (A command the schema file does not know is still sent to a daemon that answers:
its word is final.) A -f script's command names are all checked before the first runs.

Output: by default human-readable. A create/delete/modify/unset prints one line such as
"Created tunnel 4964", "Created session 4964/54933", "Modified tunnel profile default";
`config save` prints the path the daemon wrote (it resolves a name in its configuration
directory), "Saved /etc/l2tpd/rel.conf (12 lines)", `config restore` "Restored PATH (N
commands)". A dict result prints as aligned "name: value" lines, ids, names, state and
peer first, then the rest sorted, nested objects as indented blocks under their name
(`peer`, `ppp`, `stats`); a list of objects as a table with a header line, its columns in
the same order; an empty list as a line that says so ("no tunnels", "no sessions", "no
tunnel profiles"); a None result prints nothing. Values print as the daemon gives them
(the peer's capabilities too). Help is wrapped to the width of the terminal ($COLUMNS,
else the terminal's, else 80 when not a terminal).

--json: a result is json.dumps(indent=2, sort_keys=True) on stdout, and every error, the
daemon's, a connection failure or a usage error, is one line on stderr, {"error":
{"code": N, "message": "..."}}, with "data" when the daemon gave some and "file" and
"line" for a -f script; the exit status is the same as without --json. l2tpctl's own
codes, which the daemon never uses: -1 (ERR_UNREACHABLE) the daemon could not be reached,
went away or did not answer; -2 (ERR_USAGE) a bad option, a command that does not parse,
an unreadable -f FILE; an unknown command is -32601 (JSON-RPC's method not found). `help`
prints the schema entries it would explain, --version {"version": VERSION}.

`events subscribe` prints nothing for the subscription itself, then one line per event
until interrupted: the ISO 8601 UTC time first (the daemon's, to the millisecond), the
event's name, then its name=value pairs ("2026-03-01T12:00:00.123Z tunnel_up
tunnel_id=4964 ..."); with --json one compact JSON object per line from the first event
on: {"time": ISO, "event": NAME, ...the daemon's other members}.

Exit status: 0 success; 1 the daemon answered with an error (stderr gets one line
"l2tpctl: error CODE: MESSAGE") or could not be reached ("l2tpctl: cannot connect to l2tpd
at PATH: ..."); 2 usage or syntax error, unknown command; 130 interrupted (Ctrl-C).

The shell (no command, stdin a terminal): readline with TAB completion of objects,
`profile`, verbs, parameter names (as `name=`), enum, bool and flags values, and of the
names that exist in the running daemon: tunnel_name=, tunnel_id=, session_name= and
session_id= (in the tunnel given on the line, if one is), profile_name= (profiles of the
command's kind: `session create profile_name=` offers session profiles), *_profile_name=
and pool_name=/ip_pool_name=. That takes one list call, waiting at most LOOKUP_TIMEOUT,
and offers nothing, silently, when no daemon answers; a second TAB lists the candidates.
The `?` key shows the help for what is typed so far at once and leaves the line as it was
(GNU readline: a key binding of its own, made through ctypes; where that cannot be made,
? is typed like any key; Ctrl-V ? types a `?` into a value); `help`, `help tunnel
create`, and a line ending in `?` followed by Enter show help too (the last one then
offers the line again). `;` separates commands on one line. Ctrl-C abandons the line or
the call in progress and Ctrl-D leaves, each ending the terminal's line first. History is
kept in ~/.l2tpctl_history ($L2TPCTL_HISTFILE overrides; created mode 0600) and never
holds a secret: the file gets each line with <hidden> for the value of every parameter
that is secret-ish, its name in any case being secret, user_password, proxy_auth_response
or containing "secret" or "password", and of every parameter whose name the schema does
not know for that command (a misspelt `secert=` is unknown; so is every parameter of an
unknown command, and of any command when there is no schema); the schema is the
daemon's rpc.describe if the session fetched it, else the schema file. The rest of the
line is kept, to be recalled and completed; a line that still says <hidden> for such a
parameter is refused, not sent. Within the session the history holds the lines as typed.
quit, exit or EOF (Ctrl-D) leave.

Start-up cost: only rpc_unix and the stdlib it already loads (json, os, socket, sys,
time). The schema file is read only for help, completion and errors, readline and ctypes
only by the shell, difflib only to find a "did you mean". Never l2tpd, the protocol
modules or pyroute2.
"""
import json
import os
import sys
import time

import rpc_unix
from rpc_unix import ConfigError, RpcConnectionError, RpcError

VERSION = "0.1.0"  # = l2tpd.VERSION (a test checks)
SCHEMA_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "l2tpctl-schema.json")

# Codes of l2tpctl's own errors in --json output; the daemon never sends these.
ERR_UNREACHABLE = -1  # cannot connect, connection lost, no reply in time (exit status 1)
ERR_USAGE = -2  # bad option, command that does not parse, unreadable -f FILE (exit 2)

CALL_TIMEOUT = 5.0  # seconds to wait for the reply to a command
LOOKUP_TIMEOUT = 1.0  # ... for the list call behind a TAB
NBSP = "\0"  # a blank that help text is not broken at
HIDDEN = "<hidden>"  # what the history file says instead of a secret
SECRET_PARAMS = frozenset(("secret", "user_password", "proxy_auth_response"))

USAGE = """\
usage: l2tpctl [-s PATH] [--json] OBJECT [profile] VERB [name=value ...]
       l2tpctl [-s PATH] [--json] -f FILE
       l2tpctl [-s PATH] [--json]                  (interactive shell)
       l2tpctl help [OBJECT [profile] [VERB]]      (works without a daemon)
options (before or after the command):
  -s, --socket PATH   daemon socket (default $L2TPD_SOCKET, else
                      /run/l2tpd/l2tpd.sock as root, else ./l2tpd.sock)
  -j, --json          results as JSON; errors as one JSON object on stderr
  -f, --file FILE     run the commands in FILE ('-' for stdin)
  -h, --help          this usage; after a command, that command's help
  -V, --version       print the version
examples: l2tpctl tunnel create dest_ipaddr=192.0.2.1 tunnel_name=t1 secret=x
          l2tpctl session create tunnel_name=t1 session_name=s1
          l2tpctl tunnel profile modify profile_name=default hello_timeout=30
          l2tpctl tunnel list
          l2tpctl session show tunnel_name=t1 session_name=s1 --json"""
USAGE_HINT = "(l2tpctl -h shows the usage)"

PROMPT = "l2tpctl> "
SHELL_WORDS = ("help", "quit", "exit")
PAST = {"create": "Created", "delete": "Deleted", "modify": "Modified", "unset": "Modified"}
# IP pool block verbs: (past tense, preposition).
BLOCK_VERBS = {"add_block": ("Added", "to"), "remove_block": ("Removed", "from"),
               "reserve": ("Reserved", "in"), "unreserve": ("Unreserved", "in")}
# Human output: ids, names, state and the peer first, in this order; the rest sorted.
FIRST_KEYS = ("tunnel_id", "session_id", "tunnel_name", "session_name", "profile_name",
              "pool_name", "user_name", "name", "state", "session_type", "peer_addr",
              "dest_ipaddr", "peer_ipaddr", "peer_tunnel_id", "peer_session_id",
              "local_addr")
NOUNS = {"ippool": "IP pools"}  # for "no ...": the plural of an object where "s" is wrong


class UsageError(Exception):
    """Bad options or command syntax: exit status 2, code ERR_USAGE."""

    code = ERR_USAGE

    def __init__(self, message, hint=None):
        super().__init__(message)
        self.hint = hint  # a line added below the message, without --json


class UnknownCommand(UsageError):
    """A command no schema knows: exit status 2, code -32601."""

    code = rpc_unix.ERR_METHOD_NOT_FOUND


def load_schema(path=None):
    """l2tpctl-schema.json as a dict; {} when it is missing or unreadable."""
    try:
        with open(path or SCHEMA_FILE, encoding="utf-8") as f:
            d = json.load(f)
    except (OSError, ValueError):
        return {}
    return d if isinstance(d, dict) else {}


# --- Human output ------------------------------------------------------------------------

def _ordered(keys):
    keys = set(keys)
    return [k for k in FIRST_KEYS if k in keys] + sorted(k for k in keys if k not in FIRST_KEYS)


def _is_table(v):
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def _text(v):
    if isinstance(v, bool):
        return "yes" if v else "no"
    if v is None:
        return "-"
    if isinstance(v, list):
        return ", ".join(_text(x) for x in v) if v else "-"
    if isinstance(v, dict):
        return json.dumps(v, sort_keys=True, separators=(",", ":")) if v else "-"
    return str(v)


def _count(n, noun):
    return f"{n} {noun}" if str(n) == "1" else f"{n} {noun}{'es' if noun.endswith('s') else 's'}"


def format_dict(d, indent=0):
    """Aligned "name: value" lines; nested objects and tables follow as indented blocks."""
    pad = " " * indent
    flat = [k for k in _ordered(d) if not (isinstance(d[k], dict) and d[k]) and
            not _is_table(d[k])]
    nested = [k for k in _ordered(d) if k not in flat]
    width = max((len(k) for k in flat), default=0) + 1
    lines = [f"{pad}{(k + ':').ljust(width)} {_text(d[k])}".rstrip() for k in flat]
    for k in nested:
        lines.append(f"{pad}{k}:")
        v = d[k]
        lines += format_dict(v, indent + 2) if isinstance(v, dict) else format_table(v, indent + 2)
    return lines


def format_table(rows, indent=0):
    """A list of objects as columns under a header (nested values are left to `show`)."""
    keys = set()
    for r in rows:
        keys.update(k for k, v in r.items() if not isinstance(v, dict) and not _is_table(v))
    cols = _ordered(keys)
    if not cols:
        return [" " * indent + _text(r) for r in rows]
    cells = [[_text(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    pad = " " * indent
    return [(pad + "  ".join(x.ljust(w) for x, w in zip(row, widths))).rstrip()
            for row in [cols] + cells]


def empty_text(method):
    """What an empty list result says: "no tunnels", "no tunnel profiles", "no IP pools"."""
    obj = method.partition(".")[0]
    if obj in NOUNS:
        return "no " + NOUNS[obj]
    if obj.endswith("_profile"):
        return f"no {obj[:-8]} profiles"
    return f"no {obj.replace('_', ' ')}s"


def _identity(obj, result, params):
    sources = [result if isinstance(result, dict) else {}, params]

    def pick(*keys):
        for k in keys:
            for d in sources:
                if d.get(k) not in (None, ""):
                    return str(d[k])
        return ""

    if obj == "session":
        t, s = pick("tunnel_id", "tunnel_name"), pick("session_id", "session_name")
        return f"{t}/{s}" if t and s else s or t
    return pick(obj + "_id", obj + "_name", "profile_name", "pool_name", "name")


def render(method, params, result):
    """Human-readable text of one command's result ("" prints nothing)."""
    obj, _, verb = method.partition(".")
    got = result if isinstance(result, dict) else {}
    if method == "config.save" and got.get("file"):
        lines = f" ({_count(got['lines'], 'line')})" if "lines" in got else ""
        return f"Saved {got['file']}{lines}"
    if method == "config.restore" and got.get("file"):
        n = f" ({_count(got['commands'], 'command')})" if "commands" in got else ""
        return f"Restored {got['file']}{n}"
    if verb in PAST:
        noun = " ".join(rpc_unix.command_words(method)[:-1])
        ident = _identity(obj, result, params)
        return f"{PAST[verb]} {noun} {ident}".rstrip()
    if obj == "ippool" and verb in BLOCK_VERBS:
        done, prep = BLOCK_VERBS[verb]
        n = params.get("num_addrs") or 1
        return (f"{done} {params.get('first_addr', '')} ({_count(n, 'address')}) {prep} "
                f"ippool {params.get('pool_name', '')}")
    if result is None or result is True:
        return ""
    if isinstance(result, dict):
        return "\n".join(format_dict(result))
    if isinstance(result, list) and not result and verb == "list":
        return empty_text(method)
    if _is_table(result):
        return "\n".join(format_table(result))
    if isinstance(result, list):
        head = ["profile_name"] if obj.endswith("_profile") and verb == "list" else []
        return "\n".join(head + [_text(x) for x in result])
    return _text(result)


def iso_time(t):
    """Seconds since the epoch as ISO 8601 UTC to the millisecond: 2026-03-01T12:00:00.123Z."""
    ms = int(round(t * 1000))
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def render_event(method, params, as_json, now=None):
    """One line for a pushed event: the ISO time, the event's name, name=value pairs; or
    (as_json) one compact JSON object {"time": ISO, "event": NAME, ...the rest}."""
    rest = dict(params) if isinstance(params, dict) else {"params": params}
    t = rest.pop("time", None)
    if isinstance(t, str) and t:
        stamp = t
    else:
        if not isinstance(t, (int, float)) or isinstance(t, bool):
            t = time.time() if now is None else now
        stamp = iso_time(t)
    name = rest.pop("event", None) if method == "event" else method
    name = str(name or method)
    if as_json:
        out = {"time": stamp, "event": name}
        out.update(rest)
        return json.dumps(out, separators=(",", ":"))
    words = []
    for k, v in rest.items():
        if v is None:
            continue
        try:
            words.append(rpc_unix.format_params({k: v}))
        except (ValueError, AttributeError, TypeError):
            words.append(f"{k}={json.dumps(v, sort_keys=True, separators=(',', ':'))}")
    return " ".join([stamp, name] + words)


def error_object(e):
    """(exit status, {"code": N, "message": "..."[, "data": ...]}) of an error."""
    if isinstance(e, RpcError):
        err = {"code": e.code, "message": e.message}
        if e.data is not None:
            err["data"] = e.data
        return 1, err
    if isinstance(e, RpcConnectionError):
        return 1, {"code": ERR_UNREACHABLE, "message": str(e)}
    if isinstance(e, ConfigError):
        return 2, {"code": ERR_USAGE, "message": e.reason}
    return 2, {"code": getattr(e, "code", ERR_USAGE), "message": str(e)}


def error_text(e):
    if isinstance(e, RpcError):
        return f"error {e.code}: {e.message}"
    return str(e)


# --- Help ----------------------------------------------------------------------------------

def term_width(stream=None):
    """Columns for help: $COLUMNS, else the terminal's, else 80."""
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) >= 40:
        return int(env)
    try:
        stream = stream or sys.stdout
        if stream.isatty():
            cols = os.get_terminal_size(stream.fileno()).columns
            return max(40, cols) if cols else 80  # a pty nobody sized says 0
    except (OSError, AttributeError, ValueError):
        pass
    return 80


def wrap(text, width):
    """Words of text in lines of at most width characters (a longer word stays whole;
    NBSP joins words that stay on one line)."""
    lines, cur = [], ""
    for word in text.split():
        if cur and len(cur) + 1 + len(word) > width:
            lines.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}" if cur else word
    lines = lines + [cur] if cur else lines or [""]
    return [line.replace(NBSP, " ") for line in lines]


def columns(rows, width, indent=2, gap=2):
    """(left, right) rows as two columns, the right one wrapped to width; a left cell
    wider than the column gets a line of its own, its text below it."""
    col = min(max((len(a) for a, _ in rows), default=0), max(16, width * 2 // 5))
    at = indent + col + gap
    out = []
    for a, b in rows:
        parts = wrap(b, max(20, width - at))
        if len(a) > col:
            out.append(" " * indent + a)
            out += [" " * at + p for p in parts if p]
        else:
            out.append((" " * indent + a.ljust(col + gap) + parts[0]).rstrip())
            out += [" " * at + p for p in parts[1:]]
    return out


def command_tree(schema):
    """{("tunnel",): {"create": "tunnel.create", ...}, ("tunnel", "profile"): {...}}."""
    tree = {}
    for method in schema:
        if "." not in method:
            continue
        words = rpc_unix.command_words(method)
        tree.setdefault(tuple(words[:-1]), {})[words[-1]] = method
    return tree


def _split(words, tree):
    """(object words, verb or None, the rest) of a partial command."""
    head = tuple(words[:2]) if words[1:2] == ["profile"] else tuple(words[:1])
    rest = words[len(head):]
    if rest and head in tree and rest[0] in tree[head]:
        return head, rest[0], rest[1:]
    return head, None, rest


def _resolve(schema, words):
    """(method, []) when words start with a whole command (`get` or `show`); else
    (None, the methods whose command starts with words)."""
    for m in schema:
        if "." in m:
            cw = rpc_unix.command_words(m)
            raw = cw[:-1] + [m.partition(".")[2]]
            if words[:len(cw)] in (cw, raw):
                return m, []
    return None, sorted((m for m in schema if "." in m and
                         rpc_unix.command_words(m)[:len(words)] == words),
                        key=lambda m: rpc_unix.command_words(m))


def _near(word, names, cutoff):
    """Up to three names nearest to word (difflib ratio >= cutoff, close to the best)."""
    import difflib  # only on this error path

    scored = sorted((-difflib.SequenceMatcher(None, word, n).ratio(), n) for n in names)
    if not scored or -scored[0][0] < cutoff:
        return []
    best = -scored[0][0]
    return [n for r, n in scored if -r >= best - 0.05][:3]


def unknown_command(schema, words):
    """UnknownCommand for command words no method has, in the user's words, with the
    nearest known command(s) or the verbs of a known object."""
    typed = " ".join(words)
    tree = command_tree(schema)
    head, verb, rest = _split(list(words), tree)
    if head in tree and verb is None and len(rest) == 1:  # a known object, a bad verb
        verbs = sorted(tree[head])
        more = ["profile"] if len(head) == 1 and (head[0], "profile") in tree else []
        near = [" ".join(head + (v,)) for v in _near(rest[0], verbs + more, 0.6)]
        hint = f" ({' '.join(head)} verbs: {', '.join(verbs)})"
    else:
        names = {" ".join(rpc_unix.command_words(m)) for m in schema if "." in m}
        names.update(" ".join(k) for k in tree)
        near = _near(typed, sorted(names), 0.75)
        hint = " ('help' lists the commands)"
    if near:
        hint = " (did you mean " + " or ".join(repr(n) for n in near) + "?)"
    return UnknownCommand(f"unknown command {typed!r}{hint}")


def parse_error(e, words):
    """The UsageError for a command that does not parse: one that starts with no known
    object is reported as an unknown command."""
    first = words[0] if words else ""
    if first and "=" not in first and first not in ("?", "help"):
        known = load_schema()
        if known and first not in {k[0] for k in command_tree(known)}:
            return unknown_command(known, words[:2] if words[1:2] == ["profile"] else words[:1])
    return UsageError(str(e), hint=USAGE_HINT)


def _type_text(spec):
    kind = spec.get("type", "str")
    choices = spec.get("choices") or ()
    if kind == "bool":
        return "yes|no"
    if kind == "enum" and choices:
        return "|".join(choices)
    if kind == "flags" and choices:
        return ",".join(choices)
    return {"int": "N", "ipaddr": "A.B.C.D", "str": "TEXT"}.get(kind, kind.upper())


def param_row(name, spec, longest=40):
    """(name=FORM, its explanation) for one parameter of the help."""
    kind = spec.get("type", "str")
    choices = spec.get("choices") or []
    form = f"{name}={_type_text(spec)}"
    notes = [spec.get("help") or ""]
    if len(form) > longest and choices:
        form = f"{name}=NAME,..." if kind == "flags" else f"{name}=NAME"
        notes.append(("(any of: " if kind == "flags" else "(one of: ") + ", ".join(choices) + ")")
    lo, hi = spec.get("min"), spec.get("max")
    if kind == "int" and (lo, hi) != (None, None) and (lo or 0, hi) != (0, 0xFFFFFFFF):
        notes.append(f"({lo if lo is not None else 0}-{hi if hi is not None else ''})")
    if spec.get("required"):
        notes.append("(required)")
    if spec.get("default") is not None:
        notes.append(f"(default{NBSP}{_text(spec['default'])})".replace(" ", NBSP))
    return form, " ".join(n for n in notes if n)


def _method_help(method, entry, width=80):
    title = " ".join(rpc_unix.command_words(method)) + ": " + (entry.get("help") or "")
    lines = [(" " * 2 if i else "") + t for i, t in enumerate(wrap(title, width - 2))]
    params = entry.get("params") or {}
    order = sorted(params, key=lambda n: (not params[n].get("required"), n))
    lines += columns([param_row(n, params[n]) for n in order], width)
    if not params:
        lines.append("  (no parameters)")
    return "\n".join(lines)


def help_text(schema, words, width=80):
    """Help for a partial command (its name=value words are left out). Raises
    UnknownCommand for words no command starts with."""
    words = [w for w in words if "=" not in w and w != "?"]
    if not schema:
        return ("The command list is unavailable (no daemon answers and l2tpctl-schema.json "
                "is missing).\nCommands look like: OBJECT [profile] VERB [name=value ...]")
    if not words:
        rows = sorted((" ".join(rpc_unix.command_words(m)), (schema[m] or {}).get("help", ""))
                      for m in schema if "." in m)
        return "\n".join(["Commands: OBJECT [profile] VERB [name=value ...]"]
                         + columns(rows, width)
                         + wrap("Also: help [COMMAND], COMMAND ?, quit, exit. TAB completes "
                                "objects, verbs, parameters and existing names.", width))
    method, near = _resolve(schema, words)
    if method is not None:
        return _method_help(method, schema[method] or {}, width)
    if not near:
        raise unknown_command(schema, words)
    return "\n".join(columns([(" ".join(rpc_unix.command_words(m)),
                               (schema[m] or {}).get("help", "")) for m in near], width))


def help_entries(schema, words):
    """The schema entries `help WORDS` explains, for --json."""
    words = [w for w in words if "=" not in w and w != "?"]
    if not words:
        return schema
    method, near = _resolve(schema, words)
    if method is None and not near:
        raise unknown_command(schema, words)
    return {m: schema[m] for m in ([method] if method else near)}


def context_help(schema, before, text, width=80):
    """What the `?` key shows: help for the words before the cursor and the one under it
    (that parameter alone when it is a name=)."""
    words = before.split()
    if words[:1] in (["help"], ["?"]):
        words = words[1:]
    if "=" in text:
        method, _ = _resolve(schema, [w for w in words if "=" not in w])
        spec = ((schema.get(method) or {}).get("params") or {}).get(text.partition("=")[0])
        if spec is not None:
            return "\n".join(columns([param_row(text.partition("=")[0], spec)], width))
    elif text:
        whole = words + [text]
        if _resolve(schema, [w for w in whole if "=" not in w])[0] or \
                _resolve(schema, whole)[1]:
            words = whole
    try:
        return help_text(schema, words, width)
    except UnknownCommand as e:
        return str(e)


# --- Completion ----------------------------------------------------------------------------

def name_source(schema, method, param):
    """(list method, key in its rows) that knows the existing values of a parameter, or
    None. `X create` does not offer the names of existing Xs for the name it creates."""
    obj, _, verb = method.partition(".")
    kind = obj[:-8] if obj.endswith("_profile") else obj
    own = {"tunnel": "tunnel_name", "session": "session_name", "ippool": "pool_name"}
    if verb == "create" and param == (own.get(obj) or "profile_name"):
        return None
    if param in ("tunnel_name", "tunnel_id", "session_name", "session_id"):
        src = (param.partition("_")[0] + ".list", param)
    elif param in ("pool_name", "ip_pool_name"):
        src = ("ippool.list", "pool_name")
    elif param == "profile_name":
        src = (f"{kind}_profile.list", "profile_name")
    elif param.endswith("_profile_name"):
        src = (param[:-5] + ".list", "profile_name")
    else:
        return None
    return src if src[0] in schema else None


def _values(result, key):
    out = set()
    for r in result if isinstance(result, list) else ():
        v = r.get(key) if isinstance(r, dict) else r
        if v not in (None, "") and isinstance(v, (str, int)) and not isinstance(v, bool):
            out.add(str(v))
    return sorted(out)


def completions(schema, before, text, lookup=None):
    """Candidates for the word `text`, given the words typed `before` it. lookup(method,
    params) answers the list calls for existing names (None: offer none)."""
    tree = command_tree(schema)
    words = before.split()
    if words[:1] == ["help"]:
        words = words[1:]
        if not words:
            return [w + " " for w in sorted({k[0] for k in tree}) if w.startswith(text)]
    if not words:
        firsts = sorted({k[0] for k in tree}) + list(SHELL_WORDS)
        return [w + " " for w in firsts if w.startswith(text)]
    head, verb, rest = _split(words, tree)
    if verb is None:
        if rest or head not in tree and len(head) == 1 and (head[0], "profile") not in tree:
            return []
        options = sorted(tree.get(head, {}))
        if len(head) == 1 and (head[0], "profile") in tree:
            options.append("profile")
        return [w + " " for w in options if w.startswith(text)]
    method = tree[head][verb]
    params = (schema[method] or {}).get("params") or {}
    if "=" not in text:
        given = {w.partition("=")[0] for w in rest}
        return [n + "=" for n in sorted(params) if n.startswith(text) and n not in given]
    name, _, part = text.partition("=")
    spec = params.get(name) or {}
    kind = spec.get("type")
    if kind == "flags":  # a comma list: complete its last item
        done, _, last = part.rpartition(",")
        have = set(done.split(","))
        return [f"{name}={done + ',' if done else ''}{c}" for c in spec.get("choices") or ()
                if c.startswith(last) and c not in have]
    if kind == "bool":
        values = ["yes", "no"]
    elif spec.get("choices"):
        values = list(spec["choices"])
    else:
        src = name_source(schema, method, name) if lookup else None
        if src is None:
            return []
        ask = {}
        if src[0] == "session.list":  # the sessions of the tunnel named on the line
            for w in rest:
                k, eq, v = w.partition("=")
                if eq and k in ("tunnel_name", "tunnel_id") and v:
                    ask[k] = v
        values = [rpc_unix.quote(v) for v in _values(lookup(src[0], ask), src[1])]
    return [f"{name}={v} " for v in values if v.startswith(part)]


# --- Secrets and the history ---------------------------------------------------------------

def is_secret(name):
    """A parameter name that says it holds a secret, in any case: SECRET_PARAMS, or one
    that contains "secret" or "password"."""
    name = name.lower()
    return name in SECRET_PARAMS or "secret" in name or "password" in name


def hides(schema, method, name):
    """Whether the history file hides the value of parameter `name` of `method`: a secret
    (is_secret), or a name that is not one of the command's parameters in the schema (a
    misspelt secret= is one; so is every parameter of a command the schema lacks)."""
    entry = schema.get(method) if method else None
    params = (entry.get("params") if isinstance(entry, dict) else None) or {}
    return is_secret(name) or name not in params


def _words(line):
    """The words of a shell line by the grammar's rules (quotes, backslashes; `;` and a
    newline end a command): [[(end, eq, text), ...] per command], with end the index in
    line after the word, eq that of its first `=` not quoted or escaped (-1 if none) and
    text the word (the part before that `=`) unquoted. An unterminated quote runs to the
    end."""
    commands, words = [], []
    i, n = 0, len(line)
    while i < n:
        if line[i] in ";\n":
            commands.append(words)
            words = []
            i += 1
            continue
        if line[i] in " \t\r":
            i += 1
            continue
        eq, text = -1, []
        while i < n and line[i] not in " \t\r\n;":
            c = line[i]
            if c == "\\":
                if eq < 0:
                    text.append(line[i + 1:i + 2])
                i += 2
            elif c in "'\"":
                j = i + 1
                while j < n and line[j] != c:
                    if c == '"' and line[j] == "\\" and line[j + 1:j + 2] in ('"', "\\"):
                        if eq < 0:
                            text.append(line[j + 1])
                        j += 2
                        continue
                    if eq < 0:
                        text.append(line[j])
                    j += 1
                i = j + 1
            else:
                if c == "=" and eq < 0:
                    eq = i
                elif eq < 0:
                    text.append(c)
                i += 1
        words.append((min(i, n), eq, "".join(text)))
    commands.append(words)
    return [w for w in commands if w]


def _method_of(words):
    """The method a command's words name, as rpc_unix builds it; None if they name none."""
    heads = []
    for _, eq, text in words[:3]:
        if eq >= 0:
            break
        heads.append(text)
    if heads[1:2] == ["profile"]:
        heads = [heads[0] + "_profile"] + heads[2:]
    if len(heads) < 2:
        return None
    return heads[0] + "." + rpc_unix.VERB_TO_METHOD.get(heads[1], heads[1])


def mask_secrets(line, schema):
    """The line with the value of every parameter the history hides (hides(): a secret,
    or a name the schema does not know for that command) replaced by HIDDEN. Words are
    found by the grammar's rules (quotes, backslashes, `;`), so a quoted secret with
    blanks is hidden whole; an unterminated quote hides to the end."""
    out, at = [], 0
    for words in _words(line):
        method = _method_of(words)
        for end, eq, text in words:
            if eq >= 0 and hides(schema, method, text):
                out.append(line[at:eq + 1] + HIDDEN)
                at = end
    return "".join(out) + line[at:]


def save_history(readline, path, err, schema):
    """Write the history file with secrets masked (mask_secrets); created mode 0600."""
    lines = [readline.get_history_item(i)
             for i in range(1, readline.get_current_history_length() + 1)]
    readline.clear_history()
    for line in lines:
        if line:
            readline.add_history(mask_secrets(line, schema))
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        readline.write_history_file(path)
    except OSError as e:
        print(f"l2tpctl: cannot write history {path}: {e.strerror}", file=err)


# --- Talking to the daemon ---------------------------------------------------------------

class Ctl:
    """One l2tpctl run: the connection, the command grammar, output."""

    def __init__(self, path=None, as_json=False, out=None, err=None):
        self.path = path or rpc_unix.default_socket_path()
        self.as_json = as_json
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._client = None
        self._schema = None
        self.schema_error = None

    def client(self, timeout=CALL_TIMEOUT):
        if self._client is None:
            self._client = rpc_unix.RpcClient(self.path, timeout)
        self._client.timeout = timeout
        return self._client

    def close(self):
        if self._client is not None:
            self._client.close()
            self._client = None

    def schema(self):
        """The grammar: the daemon's rpc.describe when it answers, else the schema file;
        kept for the run once found ({}, and tried again next time, if neither is)."""
        if self._schema is None:
            got = None
            try:
                got = self.client().call("rpc.describe")
            except (RpcError, RpcConnectionError) as e:
                self.schema_error = e
            if not (isinstance(got, dict) and got):
                got = load_schema()
            if not got:
                return {}
            self._schema = got
        return self._schema

    def grammar(self):
        """The grammar as far as it is known without asking the daemon: its rpc.describe
        if that was fetched, else the schema file ({} if neither)."""
        return self._schema or load_schema()

    def lookup(self, method, params):
        """A list call for completion: bounded by LOOKUP_TIMEOUT, None when it fails."""
        try:
            return self.client(LOOKUP_TIMEOUT).call(method, params)
        except (RpcError, RpcConnectionError, ValueError):
            return None

    def say(self, text):
        if text:
            print(text, file=self.out, flush=True)

    def newline(self):
        print(file=self.out, flush=True)

    def clean_line(self):
        """After Ctrl-C: end the terminal's line, so what follows starts on a new one."""
        try:
            if self.err.isatty():
                print(file=self.err, flush=True)
        except (AttributeError, ValueError, OSError):
            pass

    def report(self, e, prefix="l2tpctl: ", file=None, line=None, hint=False):
        """Print an error on stderr, one line of text or (--json) one JSON object;
        returns the exit status it calls for."""
        status, err = error_object(e)
        if isinstance(e, ConfigError) and e.filename:
            file, line = e.filename, e.lineno
        if self.as_json:
            if file is not None:
                err["file"] = file
            if line is not None:
                err["line"] = line
            print(json.dumps({"error": err}, sort_keys=True), file=self.err, flush=True)
            return status
        text = error_text(e)
        if file is not None and not isinstance(e, ConfigError):
            text = f"{file}:{line}: {text}" if line else f"{file}: {text}"
        print(prefix + text, file=self.err, flush=True)
        if hint and getattr(e, "hint", None):
            print(e.hint, file=self.err, flush=True)
        return status

    def execute(self, method, params):
        """Run one command and print its result; RPC errors propagate."""
        result = self.client().call(method, params)
        if method == "events.subscribe":
            self.monitor()
        elif self.as_json:
            self.say(json.dumps(result, indent=2, sort_keys=True))
        else:
            self.say(render(method, params, result))

    def run(self, method, params):
        """execute(), an unknown command reported in the user's words (UnknownCommand)."""
        try:
            self.execute(method, params)
        except RpcError as e:
            if e.code != rpc_unix.ERR_METHOD_NOT_FOUND:
                raise
            raise unknown_command(self.schema() or load_schema(),
                                  rpc_unix.command_words(method))
        except RpcConnectionError:
            known = self._schema or load_schema()
            if known and method not in known:
                raise unknown_command(known, rpc_unix.command_words(method))
            raise

    def monitor(self):
        """Print pushed events until interrupted; then drop the subscription."""
        try:
            while True:
                for method, params in self.client().notifications(None):
                    self.say(render_event(method, params, self.as_json))
        except KeyboardInterrupt:
            self.clean_line()
        finally:
            self.close()

    def run_help(self, words, prefix="l2tpctl: "):
        schema = self.schema()
        if not schema:
            why = f": {self.schema_error}" if self.schema_error else ""
            return self.report(RpcConnectionError(
                f"the command list is unavailable: no answer from l2tpd{why}, and no "
                f"{SCHEMA_FILE}"), prefix)
        try:
            if self.as_json:
                self.say(json.dumps(help_entries(schema, words), indent=2, sort_keys=True))
            else:
                self.say(help_text(schema, words, term_width(self.out)))
        except UnknownCommand as e:
            return self.report(e, prefix)
        return 0


def run_script(ctl, text, filename):
    """Commands of a file (config grammar): every command name is checked first, then
    they run in order until the first error."""
    try:
        commands = rpc_unix.parse_config(text, filename)
    except ConfigError as e:
        return ctl.report(e)
    schema = ctl.schema() if commands else {}
    for lineno, method, _ in commands:
        if schema and method not in schema:
            return ctl.report(unknown_command(schema, rpc_unix.command_words(method)),
                              file=filename, line=lineno)
    for lineno, method, params in commands:
        try:
            ctl.run(method, params)
        except (RpcError, RpcConnectionError, UsageError) as e:
            return ctl.report(e, file=filename, line=lineno)
    return 0


def run_words(ctl, words):
    """One command from the command line."""
    if words[0] in ("help", "?"):
        return ctl.run_help(words[1:])
    if words[-1] == "?":
        return ctl.run_help(words[:-1])
    try:
        method, params = rpc_unix.parse_command(words)
    except ConfigError as e:
        raise parse_error(e, words)
    try:
        ctl.run(method, params)
    except (RpcError, RpcConnectionError) as e:
        return ctl.report(e)
    return 0


# --- The shell ---------------------------------------------------------------------------

def shell_line(ctl, line):
    """Run one line typed in the shell; returns text to offer on the next prompt."""
    line = line.strip()
    words = line.split()
    if words[:1] in (["help"], ["?"]):
        ctl.run_help(words[1:], prefix="")
        return ""
    if line.endswith("?"):
        prefix = line[:-1].strip()
        ctl.run_help(prefix.split(), prefix="")
        return prefix + " " if prefix else ""
    try:
        commands = rpc_unix.parse_config(line, None)
    except ConfigError as e:
        ctl.report(parse_error(e, words), prefix="error: ")
        return ""
    for _, method, params in commands:
        hidden = sorted(k for k, v in params.items()
                        if v == HIDDEN and hides(ctl.grammar(), method, k))
        if hidden:
            ctl.report(UsageError(f"{', '.join(hidden)}: the history hides this value; "
                                  "type it again"), prefix="error: ")
            break
        try:
            ctl.run(method, params)
        except UsageError as e:
            ctl.report(e, prefix="error: ")
            break
        except (RpcError, RpcConnectionError) as e:
            ctl.report(e, prefix="")
            break
    return ""


def shell(ctl):
    try:
        import readline
    except ImportError:
        readline = None
    histfile = os.environ.get("L2TPCTL_HISTFILE") or os.path.expanduser("~/.l2tpctl_history")
    if readline is not None:
        _setup_readline(ctl, readline, histfile)
    ctl.say(f"l2tpctl: l2tpd at {ctl.path}; TAB completes, ? or help explains, quit leaves")
    offer = ""
    try:
        while True:
            if readline is not None:
                readline.set_pre_input_hook(_offer_hook(readline, offer) if offer else None)
            offer = ""
            try:
                line = input(PROMPT)
            except EOFError:
                ctl.newline()
                break
            except KeyboardInterrupt:
                ctl.newline()
                continue
            if line.strip() in ("quit", "exit"):
                break
            if line.strip():
                try:
                    offer = shell_line(ctl, line)
                except KeyboardInterrupt:
                    # Ctrl-C while waiting for the daemon: back to the prompt. A late reply
                    # is skipped by the client (its id no longer matches).
                    ctl.newline()
    finally:
        if readline is not None:
            save_history(readline, histfile, ctl.err, ctl.grammar())
        ctl.close()
    return 0


def _setup_readline(ctl, readline, histfile):
    try:
        readline.read_history_file(histfile)
    except OSError:
        pass
    readline.set_history_length(1000)
    matches = []
    pending = []
    asked = []  # [True] while the ? key runs; readline's own listing leaves it empty

    def show_help(substitution, found, longest):
        # Instead of listing "matches": the help, then the prompt and the line again.
        readline.set_completion_display_matches_hook(None)
        text = pending.pop() if pending else ""
        sys.stdout.write("\n" + text + "\n" + PROMPT + readline.get_line_buffer())
        sys.stdout.flush()

    def complete(text, state):
        # readline asks for state 0, 1, 2, ... until None; compute the list once.
        if state == 0:
            before = readline.get_line_buffer()[:readline.get_begidx()]
            try:
                if asked:  # the ? key (a second TAB lists, as completion type '?' too)
                    pending[:] = [context_help(ctl.schema(), before, text, term_width())]
                    readline.set_completion_display_matches_hook(show_help)
                    matches[:] = [text + "?", text + "??"]  # two: readline "lists" them
                else:
                    matches[:] = completions(ctl.schema(), before, text, ctl.lookup)
            except Exception:
                matches[:] = []  # an exception here would be swallowed by readline
        return matches[state] if state < len(matches) else None

    readline.set_completer(complete)
    readline.set_completer_delims(" \t\n")  # so "name=" and "name=value" are one word
    if "libedit" in (readline.__doc__ or ""):
        readline.parse_and_bind("bind ^I rl_complete")
    else:
        readline.parse_and_bind("tab: complete")
        _bind_help_key(readline, asked)


def _bind_help_key(readline, asked):
    """Bind the ? key (GNU readline, through ctypes) to a command of its own: it sets
    asked[0] and runs possible-completions, so the completer knows the ? key from a second
    TAB, which GNU readline also reports as completion type '?'. Without the library's
    symbols ? is left to insert itself (a line ending in ? and Enter still shows help)."""
    try:
        import ctypes

        lib = ctypes.CDLL(getattr(readline, "__file__", None))  # None: built in
        possible = lib.rl_possible_completions
        possible.argtypes = (ctypes.c_int, ctypes.c_int)
        bind = lib.rl_bind_key
    except (ImportError, OSError, AttributeError):
        return None

    def help_key(count, key):
        asked[:] = [True]
        try:
            return possible(count, key)
        finally:
            asked[:] = []

    command = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_int)(help_key)
    bind.argtypes = (ctypes.c_int, type(command))
    if bind(ord("?"), command) != 0:
        return None
    _bind_help_key.keep = command  # readline holds the pointer: keep the callback alive
    return command


def _offer_hook(readline, text):
    def hook():
        readline.insert_text(text)
        readline.redisplay()
    return hook


# --- main --------------------------------------------------------------------------------

class Options:
    def __init__(self):
        self.path = self.script = None
        self.as_json = self.version = self.help = False
        self.words = []


def parse_options(args):
    """Options (before, between or after the command words; `--` ends them) and the
    command words. Raises UsageError, with .as_json telling how to report it."""
    opts = Options()
    error = None
    args = list(args)
    while args:
        a = args.pop(0)
        if a == "--":
            opts.words += args
            break
        if not a.startswith("-") or a == "-":
            opts.words.append(a)
            continue
        name, eq, value = a.partition("=")
        if name in ("-s", "--socket", "-f", "--file"):
            if not eq:
                if not args:
                    error = error or f"{name} needs an argument"
                    continue
                value = args.pop(0)
            if name in ("-s", "--socket"):
                opts.path = value
            else:
                opts.script = value
        elif a.startswith("-s") and len(a) > 2:
            opts.path = a[2:]
        elif a in ("-j", "--json"):
            opts.as_json = True
        elif a in ("-V", "--version"):
            opts.version = True
        elif a in ("-h", "--help"):
            opts.help = True
        else:
            error = error or f"unknown option {a}"
    if error:
        e = UsageError(error)
        e.as_json = opts.as_json
        raise e
    return opts


def main(argv=None):
    try:
        opts = parse_options(sys.argv[1:] if argv is None else argv)
    except UsageError as e:
        if e.as_json:
            print(json.dumps({"error": error_object(e)[1]}, sort_keys=True), file=sys.stderr)
        else:
            print(f"l2tpctl: {e}\n{USAGE}", file=sys.stderr)
        return 2
    if opts.help and not opts.words:
        print(USAGE)
        return 0
    if opts.version and not opts.help:
        print(json.dumps({"version": VERSION}) if opts.as_json else f"l2tpctl {VERSION}")
        return 0
    ctl = Ctl(opts.path, opts.as_json)
    try:
        if opts.help:  # after command words: that command's help, as `help WORDS`
            words = opts.words[1:] if opts.words[0] in ("help", "?") else opts.words
            return ctl.run_help(words)
        if opts.script is not None:
            if opts.words:
                raise UsageError("-f FILE takes no command", hint=USAGE_HINT)
            if opts.script == "-":
                return run_script(ctl, sys.stdin.read(), "<stdin>")
            try:
                with open(opts.script) as f:
                    text = f.read()
            except OSError as e:
                raise UsageError(f"cannot read {opts.script}: {e.strerror}")
            return run_script(ctl, text, opts.script)
        if opts.words:
            return run_words(ctl, opts.words)
        if sys.stdin.isatty():
            return shell(ctl)
        return run_script(ctl, sys.stdin.read(), "<stdin>")
    except UsageError as e:
        return ctl.report(e, hint=True)
    except KeyboardInterrupt:
        ctl.clean_line()
        return 130
    except BrokenPipeError:
        # The reader went away (`l2tpctl tunnel list | head -1`): no traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    finally:
        ctl.close()


if __name__ == "__main__":
    sys.exit(main())
