#!/usr/bin/env python3
"""l2tpctl: the command line and interactive shell of l2tpd.

    l2tpctl [-s PATH] [--json] OBJECT [profile] VERB [name=value | flag] ...
    l2tpctl [-s PATH] [--json] -f FILE       run the commands of FILE (config grammar)
    l2tpctl [-s PATH] [--json]               a shell on a terminal; commands from stdin
    l2tpctl help [OBJECT [profile] [VERB]]   or: l2tpctl OBJECT [profile] [VERB] ?

The grammar, the mapping to JSON-RPC methods (`show` -> `get`, `tunnel profile modify` ->
tunnel_profile.modify) and quoting are rpc_unix's (parse_command, parse_config); values go
to the daemon as strings exactly as typed and the daemon checks them. The socket is -s
PATH, else $L2TPD_SOCKET, else /run/l2tpd/l2tpd.sock as root, else ./l2tpd.sock.

Output: by default human-readable. A create/delete/modify/unset prints one line such as
"Created tunnel 4964", "Created session 4964/54933", "Modified tunnel profile default"; a
dict result prints as aligned "name: value" lines (nested objects as indented blocks, lists
of objects as tables); a list result as a table, or one item a line; a None result prints
nothing. --json prints the RPC result with json.dumps(indent=2, sort_keys=True).
`events subscribe` keeps printing pushed events, one a line, until interrupted.

Exit status: 0 success; 1 the daemon answered with an error (stderr gets one line
"l2tpctl: error CODE: MESSAGE") or could not be reached ("l2tpctl: cannot connect to l2tpd
at PATH: ..."); 2 usage or syntax error.

The shell (no command, stdin a terminal): readline with TAB completion of objects,
`profile`, verbs, parameter names (as `name=`) and enum/bool values, all taken from the
daemon's rpc.describe, fetched once per session. `help` or `?` alone lists the commands;
`help tunnel create` or a line ending in `?` (`tunnel create ?`) shows that command's
parameters, then offers the line again (quote a value that really ends in `?`). `;`
separates commands on one line. Ctrl-C abandons the line or the call in progress. History
is kept in ~/.l2tpctl_history ($L2TPCTL_HISTFILE overrides). quit, exit or EOF (Ctrl-D)
leave.

Start-up cost: only rpc_unix and the stdlib it already loads (json, os, socket, sys);
readline is imported only by the shell. Never the protocol modules or pyroute2.
"""
import json
import os
import sys

import rpc_unix
from rpc_unix import ConfigError, RpcConnectionError, RpcError

USAGE = """\
usage: l2tpctl [-s PATH] [--json] OBJECT [profile] VERB [name=value ...]
       l2tpctl [-s PATH] [--json] -f FILE
       l2tpctl [-s PATH] [--json]                  (interactive shell)
       l2tpctl help [OBJECT [profile] [VERB]]
options: -s, --socket PATH   daemon socket (default $L2TPD_SOCKET, /run/l2tpd/l2tpd.sock
                             as root, else ./l2tpd.sock)
         -j, --json          print results as JSON
         -f, --file FILE     run the commands in FILE ('-' for stdin)
examples: l2tpctl tunnel create dest_ipaddr=192.0.2.1 tunnel_name=t1 secret=x hide_avps=yes
          l2tpctl session create tunnel_name=t1 session_name=s1
          l2tpctl tunnel profile modify profile_name=default hello_timeout=30
          l2tpctl tunnel list
          l2tpctl --json session show tunnel_name=t1 session_name=s1"""

PROMPT = "l2tpctl> "
SHELL_WORDS = ("help", "quit", "exit")
PAST = {"create": "Created", "delete": "Deleted", "modify": "Modified", "unset": "Modified"}
# Identity and state come first in human output; the rest is sorted.
FIRST_KEYS = ("profile_name", "name", "tunnel_id", "tunnel_name", "session_id",
              "session_name", "peer_tunnel_id", "peer_session_id", "state")


class UsageError(Exception):
    pass


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
    """A list of objects as columns (nested values are left to `show` and --json)."""
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
    if verb in PAST:
        noun = " ".join(rpc_unix.command_words(method)[:-1])
        ident = _identity(obj, result, params)
        return f"{PAST[verb]} {noun} {ident}".rstrip()
    if result is None or result is True:
        return ""
    if isinstance(result, dict):
        return "\n".join(format_dict(result))
    if _is_table(result):
        return "\n".join(format_table(result))
    if isinstance(result, list):
        return "\n".join(_text(x) for x in result)
    return _text(result)


def render_event(method, params, as_json):
    if as_json:
        return json.dumps({"method": method, "params": params}, sort_keys=True)
    try:
        return f"{method} {rpc_unix.format_params(params)}".rstrip()
    except (ValueError, AttributeError):
        return f"{method} {json.dumps(params, sort_keys=True)}"


def error_text(e):
    if isinstance(e, RpcError):
        return f"error {e.code}: {e.message}"
    return str(e)


# --- Help and completion, both driven by rpc.describe ------------------------------------

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


def _method_help(method, entry):
    lines = [" ".join(rpc_unix.command_words(method)) + ": " + (entry.get("help") or "")]
    params = entry.get("params") or {}
    forms = {n: f"{n}={_type_text(s)}" for n, s in params.items()}
    width = max((len(f) for f in forms.values()), default=0)
    for name in sorted(params):
        spec = params[name]
        notes = [spec.get("help") or ""]
        if spec.get("required"):
            notes.append("(required)")
        if "default" in spec:
            notes.append(f"(default {_text(spec['default'])})")
        lines.append(f"  {forms[name].ljust(width)}  {' '.join(n for n in notes if n)}".rstrip())
    if not params:
        lines.append("  (no parameters)")
    return "\n".join(lines)


def help_text(schema, words):
    """Help for a partial command (words without name=value ones)."""
    words = [w for w in words if "=" not in w]
    tree = command_tree(schema)
    if not schema:
        return ("The daemon's command list is unavailable.\n"
                "Commands look like: OBJECT [profile] VERB [name=value ...]")
    if not words:
        rows = sorted((" ".join(rpc_unix.command_words(m)), (schema[m] or {}).get("help", ""))
                      for m in schema if "." in m)
        width = max(len(r[0]) for r in rows)
        return "\n".join(["Commands: OBJECT [profile] VERB [name=value ...]"]
                         + [f"  {c.ljust(width)}  {h}".rstrip() for c, h in rows]
                         + ["Also: help [COMMAND], COMMAND ?, quit, exit. "
                            "TAB completes objects, verbs and names."])
    head, verb, rest = _split(words, tree)
    if head not in tree:
        return (f"unknown command {' '.join(head)!r}; objects: "
                + ", ".join(sorted({k[0] for k in tree})))
    if verb is None:
        if rest:
            return (f"{' '.join(head)}: unknown verb {rest[0]!r}; verbs: "
                    + ", ".join(sorted(tree[head])))
        return "\n".join(_method_help(tree[head][v], schema[tree[head][v]]).split("\n")[0]
                         for v in sorted(tree[head]))
    method = tree[head][verb]
    return _method_help(method, schema[method])


def completions(schema, before, text):
    """Candidates for the word `text`, given the words typed `before` it."""
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
    params = (schema[tree[head][verb]] or {}).get("params") or {}
    if "=" in text:
        name, _, part = text.partition("=")
        spec = params.get(name) or {}
        values = ["yes", "no"] if spec.get("type") == "bool" else spec.get("choices") or []
        if spec.get("type") == "flags":
            return []
        return [f"{name}={v} " for v in values if v.startswith(part)]
    given = {w.partition("=")[0] for w in rest}
    return [n + "=" for n in sorted(params) if n.startswith(text) and n not in given]


# --- Talking to the daemon ---------------------------------------------------------------

class Ctl:
    """One l2tpctl run: the connection, the cached schema, output."""

    def __init__(self, path=None, as_json=False, out=None, err=None):
        self.path = path or rpc_unix.default_socket_path()
        self.as_json = as_json
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._client = None
        self._schema = None
        self.schema_error = None

    def client(self):
        if self._client is None:
            self._client = rpc_unix.RpcClient(self.path)
        return self._client

    def close(self):
        if self._client is not None:
            self._client.close()
            self._client = None

    def schema(self):
        """rpc.describe, fetched once; {} (and retried next time) if unavailable."""
        if self._schema is None:
            try:
                got = self.client().call("rpc.describe")
            except (RpcError, RpcConnectionError) as e:
                self.schema_error = e
                return {}
            self._schema = got if isinstance(got, dict) else {}
        return self._schema

    def say(self, text):
        if text:
            print(text, file=self.out, flush=True)

    def execute(self, method, params):
        """Run one command and print its result; RPC errors propagate."""
        result = self.client().call(method, params)
        if self.as_json:
            self.say(json.dumps(result, indent=2, sort_keys=True))
        else:
            self.say(render(method, params, result))
        if method == "events.subscribe":
            self.monitor()

    def monitor(self):
        """Print pushed events until interrupted; then drop the subscription."""
        try:
            while True:
                for method, params in self.client().notifications(None):
                    self.say(render_event(method, params, self.as_json))
        except KeyboardInterrupt:
            pass
        finally:
            self.close()

    def run_help(self, words, prefix="l2tpctl: "):
        schema = self.schema()
        if not schema and self.schema_error is not None:
            print(prefix + error_text(self.schema_error), file=self.err)
        self.say(help_text(schema, words))
        return 0 if schema else 1


def run_script(ctl, text, filename):
    """Commands of a file (config grammar); stops at the first error."""
    try:
        commands = rpc_unix.parse_config(text, filename)
    except ConfigError as e:
        print(f"l2tpctl: {e}", file=ctl.err)
        return 2
    for lineno, method, params in commands:
        try:
            ctl.execute(method, params)
        except (RpcError, RpcConnectionError) as e:
            print(f"l2tpctl: {filename}:{lineno}: {error_text(e)}", file=ctl.err)
            return 1
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
        raise UsageError(str(e))
    try:
        ctl.execute(method, params)
    except (RpcError, RpcConnectionError) as e:
        print(f"l2tpctl: {error_text(e)}", file=ctl.err)
        return 1
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
        print(f"error: {e}", file=ctl.err)
        return ""
    for _, method, params in commands:
        try:
            ctl.execute(method, params)
        except (RpcError, RpcConnectionError) as e:
            print(error_text(e), file=ctl.err)
            break
    return ""


def shell(ctl):
    try:
        import readline
    except ImportError:
        readline = None
    histfile = os.environ.get("L2TPCTL_HISTFILE") or os.path.expanduser("~/.l2tpctl_history")
    if readline is not None:
        try:
            readline.read_history_file(histfile)
        except OSError:
            pass
        readline.set_history_length(1000)

        matches = []

        def complete(text, state):
            # readline asks for state 0, 1, 2, ... until None; compute the list once.
            if state == 0:
                before = readline.get_line_buffer()[:readline.get_begidx()]
                try:
                    matches[:] = completions(ctl.schema(), before, text)
                except Exception:
                    matches[:] = []  # an exception here would be swallowed by readline
            return matches[state] if state < len(matches) else None

        readline.set_completer(complete)
        readline.set_completer_delims(" \t\n")  # so "name=" and "name=value" are one word
        if "libedit" in (readline.__doc__ or ""):
            readline.parse_and_bind("bind ^I rl_complete")
        else:
            readline.parse_and_bind("tab: complete")
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
                ctl.say("")
                break
            except KeyboardInterrupt:
                ctl.say("")
                continue
            if line.strip() in ("quit", "exit"):
                break
            if line.strip():
                try:
                    offer = shell_line(ctl, line)
                except KeyboardInterrupt:
                    # Ctrl-C while waiting for the daemon: back to the prompt. A late reply
                    # is skipped by the client (its id no longer matches).
                    ctl.say("")
    finally:
        if readline is not None:
            try:
                readline.write_history_file(histfile)
            except OSError as e:
                print(f"l2tpctl: cannot write history {histfile}: {e.strerror}", file=ctl.err)
        ctl.close()
    return 0


def _offer_hook(readline, text):
    def hook():
        readline.insert_text(text)
        readline.redisplay()
    return hook


# --- main --------------------------------------------------------------------------------

def parse_options(args):
    """(socket path, as_json, script file, remaining words) from argv[1:]."""
    path = script = None
    as_json = False
    args = list(args)
    while args and args[0].startswith("-") and args[0] != "-":
        opt = args.pop(0)
        if opt == "--":
            break
        name, eq, value = opt.partition("=")
        if name in ("-s", "--socket", "-f", "--file"):
            if not eq:
                if not args:
                    raise UsageError(f"{name} needs an argument")
                value = args.pop(0)
            if name in ("-s", "--socket"):
                path = value
            else:
                script = value
        elif opt.startswith("-s") and len(opt) > 2:
            path = opt[2:]
        elif opt in ("-j", "--json"):
            as_json = True
        elif opt in ("-h", "--help"):
            raise UsageError("")
        else:
            raise UsageError(f"unknown option {opt}")
    return path, as_json, script, args


def main(argv=None):
    try:
        path, as_json, script, words = parse_options(sys.argv[1:] if argv is None else argv)
    except UsageError as e:
        if not str(e):
            print(USAGE)
            return 0
        print(f"l2tpctl: {e}\n{USAGE}", file=sys.stderr)
        return 2
    ctl = Ctl(path, as_json)
    try:
        if script is not None:
            if words:
                raise UsageError("-f FILE takes no command")
            if script == "-":
                return run_script(ctl, sys.stdin.read(), "<stdin>")
            try:
                with open(script) as f:
                    text = f.read()
            except OSError as e:
                print(f"l2tpctl: cannot read {script}: {e.strerror}", file=sys.stderr)
                return 2
            return run_script(ctl, text, script)
        if words:
            return run_words(ctl, words)
        if sys.stdin.isatty():
            return shell(ctl)
        return run_script(ctl, sys.stdin.read(), "<stdin>")
    except UsageError as e:
        print(f"l2tpctl: {e}\n(l2tpctl -h shows the usage)", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`l2tpctl tunnel list | head -1`): no traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    finally:
        ctl.close()


if __name__ == "__main__":
    sys.exit(main())
