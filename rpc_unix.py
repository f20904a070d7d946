"""JSON-RPC 2.0 over a Unix stream socket, and the l2tpctl command grammar.

One module, four parts. The daemon uses the server, the grammar (to read its config file)
and the error codes; l2tpctl and firmware written in Python use the client, the grammar
and the error codes. Only the stdlib is imported at the top (json, os, socket, errno,
time) so that l2tpctl starts fast.

Wire format
-----------
One JSON object per line (UTF-8, "\\n" terminated) in each direction:

    -> {"jsonrpc": "2.0", "id": 1, "method": "tunnel.get", "params": {"tunnel_name": "t1"}}
    <- {"jsonrpc": "2.0", "id": 1, "result": {...}}
    <- {"jsonrpc": "2.0", "id": 1, "error": {"code": 520, "message": "...", "data": {...}}}
    <- {"jsonrpc": "2.0", "method": "event", "params": {...}}        (pushed notification)

`params` must be an object (named parameters); an array is refused with -32602. A request
without "id" is a notification: it is processed and never answered. A batch (a JSON array
of requests on one line) is answered with an array of the replies, in order. Blank lines
are ignored. Line length is bounded by `max_request`: a longer line is answered with
ERR_REQUEST_TOO_LARGE (id null) and the connection is closed, because its framing can no
longer be trusted.

JSON is strict (RFC 8259) both ways: a request holding NaN, Infinity, -Infinity or a number
too large for a double (1e999) is refused with ERR_PARSE, as is one that is not UTF-8; an
"id" that is a number beyond +-(2**53-1) is refused with ERR_INVALID_REQUEST (it would not
come back unchanged to JavaScript or Go). Nothing the server sends contains NaN or
Infinity: a result that would is answered with ERR_INTERNAL, error `data` that would is
left out, a notification that would is not sent (logged).

Limits (RpcServer arguments; the daemon uses the defaults)
---------------------------------------------------------
  max_clients   16 connections. When all are taken a new connection evicts one (below);
                ERR_TOO_MANY_CLIENTS only if every client is being served at that moment.
  max_request   65,536 bytes in one request line (a batch is one line).
  max_batch     512 requests in one batch; a longer batch is refused whole, nothing in it
                run: ERR_BATCH_TOO_LARGE (id null, data {"max_batch": 512}).
  max_output    1,048,576 bytes (1 MiB) of replies and notifications queued for one client
                and not yet read by it. Past it: requests wait unread in the socket (no
                more are handled until the client reads); the rest of a batch is not run,
                each of its requests answered ERR_OUTPUT_LIMIT; a notification drops the
                client (logged). One reply may pass the bound: the one whose request was
                handled while the client was under it (a batch's replies count together).
  idle_timeout  30,000 ms to send a complete request line after connecting or after the
                previous one (subscribers: to finish a partial line), else ERR_IDLE_TIMEOUT
                and closed.
So the memory one client can hold is about max_request + 64 KiB of input and max_output
plus one reply of output: with the defaults ~1.2 MiB plus the largest single reply
(rpc.describe ~45 kB), at most 16 clients at a time. `server.stats` counts what the
limits did (see Server).

Eviction: a new connection never waits for, nor is refused because of, clients that hold
a slot without using it. When all max_clients slots are taken, the server first reads what
every client has already sent (one that sent a request is served, so it is not idle), then
closes one, telling it why (ERR_EVICTED, id null), in this order: clients stuck on a
partial request line (slow loris) longest first; then idle clients, longest idle first;
then clients not reading their replies, stalled longest first; then idle events
subscribers, longest idle first. The connection whose request is being handled is never
chosen. RpcClient sends a request again on a new connection (twice at most) when the
daemon closed the old one before reading it (ERR_EVICTED or ERR_IDLE_TIMEOUT with id
null): the request was not run.

Error codes (module constants; `ERROR_NAMES[code]` gives the name without ERR_)
-----------------------------------------------------------------------------
  -32700 ERR_PARSE             line is not JSON (or not UTF-8)
  -32600 ERR_INVALID_REQUEST   not a request object: jsonrpc/method/id/params malformed
  -32601 ERR_METHOD_NOT_FOUND  unknown method (raised by the daemon's handler)
  -32602 ERR_INVALID_PARAMS    params not an object (positional arrays are refused)
  -32603 ERR_INTERNAL          the handler raised something other than RpcError (logged)
  -32001 ERR_REQUEST_TOO_LARGE line longer than max_request; the connection is closed
  -32002 ERR_TOO_MANY_CLIENTS  all max_clients slots busy serving requests: a new client is
                               sent this and closed
  -32003 ERR_IDLE_TIMEOUT      sent before closing a client that stayed idle too long
  -32004 ERR_EVICTED           sent before closing a client to free its slot for a new one
  -32005 ERR_BATCH_TOO_LARGE   batch longer than max_batch; none of it was run
  -32006 ERR_OUTPUT_LIMIT      a batched request not run: the batch's replies passed
                               max_output
  500-527                      OpenL2TP's l2tp_rpc.x codes, same names and numbers
                               (ERR_PARAM_NOT_MODIFIABLE ... ERR_TUNNEL_HIDE_AVPS_NEEDS_SECRET)
  540 ERR_PARAM_UNKNOWN        no parameter of that name for this method
  541 ERR_PARAM_BAD_VALUE      wrong type, unknown choice or out of range
  542 ERR_PARAM_MISSING        a required parameter is absent
  543 ERR_PARAM_CONFLICT       parameters contradict each other (tunnel_id vs tunnel_name)
  544 ERR_PROFILE_IN_USE       a profile still referenced by a tunnel, session or profile
  545 ERR_NOT_PERMITTED        e.g. deleting a `default` profile, or caller not allowed
  546 ERR_NOT_SUPPORTED        feature not available (e.g. in this data path)
  547 ERR_IPPOOL_NOT_FOUND     548 ERR_IPPOOL_ALREADY_EXISTS
  549 ERR_IPPOOL_EXHAUSTED     550 ERR_IPPOOL_IN_USE
  551 ERR_CONFIG_FILE          config.save/restore: I/O or syntax error (data: file, line)
  552 ERR_BAD_STATE            object is not in a state that allows this (e.g. closing)

`RpcError(code, message, data=None)` carries one; `RpcError.param(code, name, reason,
value)` builds the usual kind: message "NAME: REASON", data {"param": NAME, "value": ...}.
Messages name the parameter and the bad value: "hello_timeout: expected an integer, got
'abc'", "tunnel_name: no tunnel named 'x'".

Server (the daemon side)
------------------------
    server = RpcServer(path, handler, watch, mode=0o660, group=None, max_clients=16,
                       max_request=65536, max_output=1 << 20, idle_timeout=30000,
                       log=None, on_close=None, max_batch=512)

- `path`: the socket file. `mode`, `group`: its permissions (see below). `max_clients`,
  `max_request`, `max_output`, `max_batch`, `idle_timeout`: see Limits above.
  `log(text)`: called for notable events only (a handler's traceback, a refused,
  evicted, oversized, idle-closed or dropped client, a refused or cut batch); default
  silent. `on_close(conn)`: see RpcConnection below.
- `handler(method, params, conn) -> result` runs for every request; `params` is a dict
  (empty when absent), `conn` the RpcConnection. Raise RpcError to answer with an error;
  any other Exception is logged with its traceback and answered with ERR_INTERNAL. The
  result must be JSON-serialisable (else ERR_INTERNAL).
- `watch(fd, obj, events)` is how the server tells the loop what to poll: `events` is
  EVENT_READ (1), EVENT_WRITE (2) (the values of selectors.EVENT_*) or 0 for "forget this
  fd" (called just before it is closed). `obj` has `on_readable(now)` and
  `on_writable(now)`. The server calls it for its listening socket from the constructor and
  for each client later. The glue in the daemon is a few lines:

      def watch(fd, obj, events):
          if not events:
              sel.unregister(fd); del fds[fd]
          elif fd in fds:
              sel.modify(fd, events); fds[fd] = obj
          else:
              sel.register(fd, events); fds[fd] = obj
      ...
      for key, ev in sel.select(timeout):
          obj = fds.get(key.fd)          # may be gone: an earlier handler closed it
          if obj and ev & EVENT_READ: obj.on_readable(now)
          if obj and ev & EVENT_WRITE: obj.on_writable(now)
      ...
      deadline = server.next_deadline()  # ms or None; O(clients), bounded by max_clients
      server.on_timer(now)               # closes clients whose deadline passed

  Spurious calls are harmless: every socket is non-blocking.
- `now` is the loop's integer millisecond clock; the server reads no clock itself.
- Idle policy: a client that is not subscribed to events must complete a request line
  within `idle_timeout` ms of connecting or of its previous request, else it is sent
  ERR_IDLE_TIMEOUT and closed (this covers a client that sends nothing, or half a line, or
  one byte a second). A subscribed client (`conn.subscribed` truthy) is never closed for
  idleness, only if it leaves a partial line for `idle_timeout` ms. RpcClient reconnects
  by itself when it finds its connection was closed while idle.
- Output is buffered per connection. While a connection has unsent output the server stops
  reading its requests (back-pressure), and requests already read wait while the output is
  at `max_output`. `notify` refuses to let the buffer pass `max_output` bytes: a
  subscriber that does not read is dropped (logged).
- `server.stats` is a dict of counters: clients_accepted, clients_refused,
  clients_evicted, clients_idle_closed, clients_dropped (notification past max_output),
  requests_too_large, batches_refused, batch_requests_not_run, and peak_output (the most
  bytes ever queued for one client). `server.output_bytes()` is what is queued now for
  all clients; `conn.output_bytes`, `conn.input_bytes` the same for one.
- `server.notify(conn, method, params=None) -> bool` pushes one notification (False if the
  connection is or just got closed). `server.broadcast(method, params=None) -> int` pushes
  to every connection whose `conn.subscribed` is truthy and returns how many got it.
- `server.connections` is {fd: RpcConnection}; `server.fileno()`, `server.close()`
  (closes clients, removes the socket file if it is still ours). Also a context manager.
- Socket file: it appears at `path` only once it listens (bound as `path~`, renamed), so
  a client that sees the file can connect. A stale socket at `path` is removed (one that
  refuses connections); a live
  one raises OSError(EADDRINUSE); a non-socket file there raises OSError(EEXIST). A missing
  parent directory is created with mode 0755. The file gets `mode` (0660) and `group`
  (name or gid) whatever the umask, before anyone can connect to it.

`RpcConnection` (the `conn` the handler sees): `.fd`, `.closed`, `.subscribed` (the daemon
sets it in its events.subscribe handler: True, or e.g. a set of event names it filters
on), `.peercred` ((pid, uid, gid) of the peer via SO_PEERCRED, or None), `.close()`,
`.eviction_rank()` (the order above).
`on_close(conn)`, when given, is called whenever a connection closes (forget subscribers).

Client (l2tpctl, firmware)
--------------------------
    with RpcClient(path=None, timeout=5.0) as c:     # path None: default_socket_path()
        tid = c.call("tunnel.create", {"dest_ipaddr": "10.0.0.2"})["tunnel_id"]
        c.call("events.subscribe")
        for method, params in c.notifications(timeout=1.0): ...

`call` returns the result or raises RpcError; transport trouble (daemon not running,
connection lost, no reply within `timeout` seconds) raises RpcConnectionError, an
OSError whose message starts "cannot connect to l2tpd at PATH: ...". `notifications(t)`
returns the list of (method, params) pushed so far, waiting up to t seconds (None =
forever, 0 = poll) for the first one. `call(method, params, path, timeout)` at module
level does one call on a fresh connection. `default_socket_path()` is $L2TPD_SOCKET, else
/run/l2tpd/l2tpd.sock for root, else ./l2tpd.sock (daemon and l2tpctl both use it).

Command grammar (l2tpctl's command line, the shell, and the daemon's config file)
---------------------------------------------------------------------------------
    OBJECT [profile] VERB [name=value | flag] ...

- METHOD is "OBJECT.VERB", or "OBJECT_profile.VERB" with the `profile` word; the CLI verb
  `show` is method verb `get` ("system show" -> system.get, "tunnel profile modify" ->
  tunnel_profile.modify). Any other verb maps to itself.
- Values are strings exactly as typed: the daemon coerces types (`coerce_params` below).
  A bare word `local_only` means local_only=yes. A name given twice is an error.
- Quoting is shell-like: 'single quotes' are literal, "double quotes" honour \\" and \\\\,
  a backslash outside quotes escapes the next character; quotes may sit inside a word
  (secret="a b"). Outside quotes, `#` at the start of a word begins a comment to the end
  of the line, `;` ends a command, and a backslash before a newline continues the line.

`parse_command(words_or_line) -> (method, params)` takes argv words (already split by the
shell; only the first `=` of each word matters) or a string holding one command.
`parse_config(text, filename="<config>", verbs=None) -> [(lineno, method, params), ...]`
reads a whole file (lineno is the line where the command starts; `verbs`, e.g.
CONFIG_VERBS, limits the verbs allowed). Both raise ConfigError (a ValueError; `.reason`,
`.filename`, `.lineno`; str() is "FILE:LINE: REASON"). `format_command(method, params)`
is the reverse, for config.save: bools become yes/no, lists comma lists, None values are
left out, values are quoted when needed, and parse_command(format_command(m, p)) gives
back m and p as strings. `format_params(params)` is just the name=value part.
`command_words(method)` gives the CLI words: "tunnel_profile.get" -> tunnel profile show.

Schema (rpc.describe) and parameter coercion
--------------------------------------------
rpc.describe returns {method: {"help": str, "params": {name: spec}}} with spec
{"type": "int|bool|str|ipaddr|flags|enum", "help": str} and optionally "choices" (enum,
flags), "bits" ({choice: bit} for flags), "min"/"max" (int), "required" (bool), "default".
`coerce_params(method, params, spec) -> dict` checks a request against one method's
"params" spec and returns typed values: int accepts 30, "30" or "0x1e" ([+-], ASCII digits,
no "_"), always within bounds: the spec's "min"/"max", else INT_MIN_DEFAULT..
INT_MAX_DEFAULT (0..4294967295, 32 bits); a string with more than INT_DIGITS (20)
significant digits is out of range without being converted (a hex value of thousands of
digits is refused at once; CPython's 4,300-digit int-string limit is never reached);
flags masks are bounded the same way (0..max); bool accepts
true/false, 0/1, yes/no/on/off/true/false (any case); ipaddr a dotted IPv4 string; enum one
of choices (any case, returned as in choices); flags an int, or a comma list / JSON list
of choices (an int when "bits" is given, else the list of names). It raises RpcError
540/541/542 with the messages above ("hello_timeout: 4294967296 is above the maximum
4294967295", "mtu: '0xffff...' is above the maximum 65535"); never another exception.
"""
import errno
import json
import os
import socket
import time

EVENT_READ = 1  # = selectors.EVENT_READ
EVENT_WRITE = 2  # = selectors.EVENT_WRITE

SYSTEM_SOCKET = "/run/l2tpd/l2tpd.sock"
USER_SOCKET = "./l2tpd.sock"

# Verbs the config file may use (OpenL2TP accepts create and modify only, section 1.11).
CONFIG_VERBS = frozenset(("create", "modify"))

# --- Error codes -------------------------------------------------------------------------

ERR_PARSE = -32700
ERR_INVALID_REQUEST = -32600
ERR_METHOD_NOT_FOUND = -32601
ERR_INVALID_PARAMS = -32602
ERR_INTERNAL = -32603
# JSON-RPC leaves -32000..-32099 to the server: ours are about the transport.
ERR_REQUEST_TOO_LARGE = -32001
ERR_TOO_MANY_CLIENTS = -32002
ERR_IDLE_TIMEOUT = -32003
ERR_EVICTED = -32004
ERR_BATCH_TOO_LARGE = -32005
ERR_OUTPUT_LIMIT = -32006
# OpenL2TP's l2tp_rpc.x codes, same names and numbers.
ERR_PARAM_NOT_MODIFIABLE = 500
ERR_PEER_ADDRESS_MISSING = 501
ERR_PEER_NOT_FOUND = 502
ERR_PEER_PROFILE_NOT_FOUND = 503
ERR_PPP_PROFILE_NOT_FOUND = 504
ERR_PROFILE_ALREADY_EXISTS = 505
ERR_PROFILE_NAME_ILLEGAL = 506
ERR_PROFILE_NAME_MISSING = 507
ERR_SESSION_ALREADY_EXISTS = 508
ERR_SESSION_ID_ALLOC_FAILURE = 509
ERR_SESSION_LIMIT_EXCEEDED = 510
ERR_SESSION_NOT_FOUND = 511
ERR_SESSION_PROFILE_NOT_FOUND = 512
ERR_SESSION_SPEC_MISSING = 513
ERR_SESSION_TYPE_BAD = 514
ERR_SESSION_TYPE_ILLEGAL_FOR_TUNNEL = 515
ERR_TUNNEL_ADD_ADMIN_DISABLED = 516
ERR_TUNNEL_CREATE_ADMIN_DISABLED = 517
ERR_TUNNEL_ALREADY_EXISTS = 518
ERR_TUNNEL_ID_ALLOC_FAILURE = 519
ERR_TUNNEL_NOT_FOUND = 520
ERR_TUNNEL_PROFILE_NOT_FOUND = 521
ERR_TUNNEL_SPEC_MISSING = 522
ERR_TUNNEL_TOO_MANY_SESSIONS = 523
ERR_TUNNEL_TOO_MANY_SAME_IP = 524
ERR_TUNNEL_LIMIT_EXCEEDED = 525
ERR_SESSION_TYPE_NOT_SUPPORTED = 526
ERR_TUNNEL_HIDE_AVPS_NEEDS_SECRET = 527
# Ours, from 540 up (a gap after OpenL2TP's, in case one of its later codes is wanted).
ERR_PARAM_UNKNOWN = 540
ERR_PARAM_BAD_VALUE = 541
ERR_PARAM_MISSING = 542
ERR_PARAM_CONFLICT = 543
ERR_PROFILE_IN_USE = 544
ERR_NOT_PERMITTED = 545
ERR_NOT_SUPPORTED = 546
ERR_IPPOOL_NOT_FOUND = 547
ERR_IPPOOL_ALREADY_EXISTS = 548
ERR_IPPOOL_EXHAUSTED = 549
ERR_IPPOOL_IN_USE = 550
ERR_CONFIG_FILE = 551
ERR_BAD_STATE = 552

ERROR_NAMES = {v: k[4:] for k, v in list(globals().items()) if k.startswith("ERR_")}

_ABSENT = object()


class RpcError(Exception):
    """A JSON-RPC error: `code` (int), `message` (str, also str(e)), `data` (JSON or None)."""

    def __init__(self, code, message, data=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    @classmethod
    def param(cls, code, name, reason, value=_ABSENT):
        """The error about one parameter: message "NAME: REASON", data names it."""
        data = {"param": name}
        if value is not _ABSENT:
            data["value"] = value
        return cls(code, f"{name}: {reason}", data)

    def to_dict(self):
        d = {"code": self.code, "message": self.message}
        if self.data is not None:
            d["data"] = self.data
        return d

    @classmethod
    def from_dict(cls, d):
        """Build from a reply's "error" member, tolerating a malformed one."""
        if not isinstance(d, dict):
            return cls(ERR_INTERNAL, f"malformed error object: {d!r}")
        code = d.get("code")
        if not isinstance(code, int) or isinstance(code, bool):
            code = ERR_INTERNAL
        return cls(code, str(d.get("message", "")), d.get("data"))

    def __repr__(self):
        return f"RpcError({self.code}, {self.message!r})"


class RpcConnectionError(ConnectionError):
    """The daemon could not be reached, went away, or did not answer in time."""

    def __init__(self, message, err=None):
        super().__init__(message)
        self.errno = err


class ConfigError(ValueError):
    """A command or config file that does not follow the grammar."""

    def __init__(self, reason, filename=None, lineno=None):
        self.reason = reason
        self.filename = filename
        self.lineno = lineno
        where = f"{filename}:{lineno}" if lineno else filename
        super().__init__(f"{where}: {reason}" if filename else reason)


def default_socket_path(environ=None):
    """$L2TPD_SOCKET, else /run/l2tpd/l2tpd.sock when root, else ./l2tpd.sock."""
    env = os.environ if environ is None else environ
    return env.get("L2TPD_SOCKET") or (SYSTEM_SOCKET if os.geteuid() == 0 else USER_SOCKET)


# --- Command grammar ---------------------------------------------------------------------

VERB_TO_METHOD = {"show": "get"}
METHOD_TO_VERB = {"get": "show"}
_BLANK = " \t\r"
# Characters that never need quoting in a value; anything else is quoted by format_command.
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+.,:/@%=")


def _is_name(s):
    """Identifier of ASCII letters, digits and '_', not starting with a digit."""
    return bool(s) and not s[0].isdigit() and all(c == "_" or c.isalnum() and c.isascii()
                                                  for c in s)


def _tokenize(text, filename=None):
    """Split text into commands: [(lineno, [(word, eq), ...]), ...].

    `eq` is the index of the first `=` that was not quoted or escaped (-1 if none), so
    that "a\\=b" and "'a=b'" are bare words while secret="x=y" is secret -> x=y.
    """
    commands = []
    words = []
    first = 0
    line = 1
    i = 0
    n = len(text)

    def fail(reason, at):
        raise ConfigError(reason, filename, at)

    def end():
        nonlocal words
        if words:
            commands.append((first, words))
            words = []

    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
            end()
        elif c in _BLANK:
            i += 1
        elif c == ";":
            i += 1
            end()
        elif c == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif c == "\\" and text.startswith("\n", i + 1):
            line += 1  # continuation between words
            i += 2
        else:
            if not words:
                first = line
            buf = []
            size = 0
            eq = -1
            while i < n:
                c = text[i]
                if c in " \t\r\n;":
                    break
                if c == "\\":
                    if i + 1 >= n:
                        fail("backslash at end of input", line)
                    if text[i + 1] == "\n":
                        line += 1  # continuation inside a word joins the two halves
                    else:
                        buf.append(text[i + 1])
                        size += 1
                    i += 2
                elif c == "'":
                    j = text.find("'", i + 1)
                    if j < 0:
                        fail("unterminated ' quote", line)
                    seg = text[i + 1:j]
                    line += seg.count("\n")
                    buf.append(seg)
                    size += len(seg)
                    i = j + 1
                elif c == '"':
                    start = line
                    i += 1
                    while True:
                        if i >= n:
                            fail('unterminated " quote', start)
                        c = text[i]
                        if c == '"':
                            i += 1
                            break
                        if c == "\\" and i + 1 < n and text[i + 1] in '"\\\n':
                            if text[i + 1] == "\n":
                                line += 1
                            else:
                                buf.append(text[i + 1])
                                size += 1
                            i += 2
                            continue
                        if c == "\n":
                            line += 1
                        buf.append(c)
                        size += 1
                        i += 1
                else:
                    if c == "=" and eq < 0:
                        eq = size
                    buf.append(c)
                    size += 1
                    i += 1
            words.append(("".join(buf), eq))
    end()
    return commands


def _build(words, filename=None, lineno=None):
    """(method, params) from tokenized words."""

    def fail(reason):
        raise ConfigError(reason, filename, lineno)

    if not words:
        fail("empty command")
    obj, eq = words[0]
    if eq >= 0 or not _is_name(obj):
        fail(f"expected an object name (tunnel, session, ...), got {obj!r}")
    i = 1
    if i < len(words) and words[i] == ("profile", -1):
        obj += "_profile"
        i += 1
    name = obj.replace("_profile", " profile")
    if i >= len(words) or words[i][1] >= 0:
        fail(f"{name}: missing verb (create, delete, modify, show, list, ...)")
    verb = words[i][0]
    if not _is_name(verb):
        fail(f"{name}: bad verb {verb!r}")
    params = {}
    for word, eq in words[i + 1:]:
        key, value = (word[:eq], word[eq + 1:]) if eq >= 0 else (word, "yes")
        if not _is_name(key):
            fail(f"bad parameter {word!r}: expected name=value")
        if key in params:
            fail(f"{key}: given twice")
        params[key] = value
    return obj + "." + VERB_TO_METHOD.get(verb, verb), params


def parse_command(words_or_line):
    """One command, as argv words or as a string -> (method, params). Raises ConfigError."""
    if isinstance(words_or_line, str):
        commands = _tokenize(words_or_line)
        if len(commands) != 1:
            raise ConfigError("empty command" if not commands else
                              f"expected one command, got {len(commands)}")
        return _build(commands[0][1])
    return _build([(w, w.find("=")) for w in words_or_line])


def parse_config(text, filename="<config>", verbs=None):
    """Every command of a config file -> [(lineno, method, params), ...]."""
    out = []
    for lineno, words in _tokenize(text, filename):
        method, params = _build(words, filename, lineno)
        if verbs is not None:
            verb = method.partition(".")[2]
            if verb not in verbs:
                shown = " ".join(command_words(method))
                allowed = ", ".join(sorted(METHOD_TO_VERB.get(v, v) for v in verbs))
                raise ConfigError(f"{shown}: only {allowed} commands are allowed here",
                                  filename, lineno)
        out.append((lineno, method, params))
    return out


def command_words(method):
    """CLI words of a method: "tunnel_profile.get" -> ["tunnel", "profile", "show"]."""
    obj, _, verb = method.partition(".")
    words = [obj[:-8], "profile"] if obj.endswith("_profile") else [obj]
    words.append(METHOD_TO_VERB.get(verb, verb))
    return words


def _value_text(name, v):
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, float, str)):
        return str(v)
    if isinstance(v, (list, tuple)):
        return ",".join(_value_text(name, x) for x in v)
    raise ValueError(f"{name}: cannot write a {type(v).__name__} value as a command word")


def quote(s):
    """A value as one word of the grammar (single quotes unless it contains one)."""
    if s and all(c in _SAFE for c in s):
        return s
    if "'" not in s:
        return "'" + s + "'"
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_params(params):
    """"name=value ..." in the given order; None values are left out."""
    return " ".join(f"{k}={quote(_value_text(k, v))}" for k, v in (params or {}).items()
                    if v is not None)


def format_command(method, params=None):
    """The command that parse_command reads back as (method, params as strings)."""
    if "." not in method:
        raise ValueError(f"method {method!r} is not OBJECT.VERB")
    text = " ".join(command_words(method))
    rest = format_params(params)
    return text + " " + rest if rest else text


# --- Schema-driven parameter coercion (for the daemon) -----------------------------------

_TRUE = ("yes", "on", "true", "1")
_FALSE = ("no", "off", "false", "0")


# Integers: every "int" (and "flags") parameter is bounded. The spec's "min"/"max" where
# given, else this range (the widest field the protocol and OpenL2TP use: 32 bits).
INT_MIN_DEFAULT = 0
INT_MAX_DEFAULT = 0xFFFFFFFF
STR_MAX = 1024   # characters in a "str" parameter unless its spec says max_len
# Significant digits read from a numeric string (2**64 has 20 decimal, 16 hex digits):
# a longer one is out of every range without being converted, so a hex value of
# thousands of digits costs nothing and CPython's int-string limit (ValueError past 4,300
# decimal digits) cannot be reached.
INT_DIGITS = 20
_HUGE = 1 << 256  # what an over-long numeric string stands for: beyond every bound
_SHOW_MAX = 10 ** 60  # ints shown in messages; str() of a bigger one may raise (4,300 digits)


def _show(value):
    if isinstance(value, int) and not isinstance(value, bool) and not (
            -_SHOW_MAX < value < _SHOW_MAX):
        return "an integer too large to show"
    s = repr(value)
    return s if len(s) <= 60 else s[:57] + "..."


def _num(v, value):
    """The number v (from `value`) in a message."""
    return str(v) if -_HUGE < v < _HUGE else _show(value)


def _int(value):
    """An int from an int, or from a string: [+-]digits or [+-]0x hex digits (ASCII, any
    case, surrounding blanks ignored). None if it is neither; +-_HUGE if the string has more
    than INT_DIGITS significant digits."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        return None
    s = value.strip().lower()
    sign = 1
    if s[:1] in ("-", "+"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    base, digits = 10, "0123456789"
    if s.startswith("0x"):
        base, digits, s = 16, "0123456789abcdef", s[2:]
    if not s or any(c not in digits for c in s):
        return None  # also refuses "1_000" and non-ASCII digits, which int() would take
    s = s.lstrip("0") or "0"
    if len(s) > INT_DIGITS:
        return sign * _HUGE
    return sign * int(s, base)


def _bounds(spec):
    lo, hi = spec.get("min"), spec.get("max")
    return (INT_MIN_DEFAULT if lo is None else lo), (INT_MAX_DEFAULT if hi is None else hi)


def _is_ipv4(s):
    parts = s.split(".")
    return len(parts) == 4 and all(p.isdigit() and p.isascii() and len(p) <= 3
                                   and int(p) <= 255 for p in parts)


def coerce_value(name, value, spec):
    """One parameter's value, checked and converted as `spec` says (see module doc)."""
    kind = spec.get("type", "str")

    def bad(expected):
        return RpcError.param(ERR_PARAM_BAD_VALUE, name,
                              f"expected {expected}, got {_show(value)}", value)

    if kind == "int":
        v = _int(value)
        if v is None:
            raise bad("an integer")
        lo, hi = _bounds(spec)
        if v < lo:
            raise RpcError.param(ERR_PARAM_BAD_VALUE, name,
                                 f"{_num(v, value)} is below the minimum {lo}", value)
        if v > hi:
            raise RpcError.param(ERR_PARAM_BAD_VALUE, name,
                                 f"{_num(v, value)} is above the maximum {hi}", value)
        return v
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            s = value.lower()
        elif isinstance(value, int):
            s = "1" if value == 1 else "0" if value == 0 else None
        else:
            s = None
        if s in _TRUE:
            return True
        if s in _FALSE:
            return False
        raise bad("yes or no")
    if kind == "str":
        if not isinstance(value, str):
            raise bad("a string")
        limit = spec.get("max_len", STR_MAX)
        if len(value) > limit:
            raise RpcError.param(ERR_PARAM_BAD_VALUE, name,
                                 f"longer than {limit} characters")
        return value
    if kind == "ipaddr":
        if not isinstance(value, str) or not _is_ipv4(value.strip()):
            raise bad("an IPv4 address")
        return ".".join(str(int(p)) for p in value.strip().split("."))
    choices = spec.get("choices") or ()
    if kind == "enum":
        if isinstance(value, str):
            for c in choices:
                if c.lower() == value.strip().lower():
                    return c
        raise bad("one of " + ", ".join(choices))
    if kind == "flags":
        bits = spec.get("bits")
        v = _int(value)
        if v is not None:
            if v < 0:
                raise bad("a non-negative bit mask")
            hi = _bounds(spec)[1]
            if v > hi:
                raise RpcError.param(ERR_PARAM_BAD_VALUE, name,
                                     f"{_num(v, value)} is above the maximum {hi}", value)
            return v
        if isinstance(value, str):
            names = [w.strip() for w in value.split(",") if w.strip()]
        elif isinstance(value, list) and all(isinstance(w, str) for w in value):
            names = value
        else:
            raise bad("a bit mask or a comma list of " + ", ".join(choices))
        lowered = {c.lower(): c for c in choices}
        picked = []
        for w in names:
            if w.lower() not in lowered:
                raise RpcError.param(ERR_PARAM_BAD_VALUE, name,
                                     f"unknown flag {w!r}, expected some of "
                                     + ", ".join(choices), value)
            picked.append(lowered[w.lower()])
        if bits:
            mask = 0
            for w in picked:
                mask |= bits[w]
            return mask
        return picked
    raise ValueError(f"{name}: unknown type {kind!r} in the schema")


def _said(method):
    """A method as the user typed it: tunnel_profile.modify -> "tunnel profile modify"."""
    try:
        return " ".join(command_words(method))
    except Exception:
        return method


def coerce_params(method, params, spec):
    """Check `params` against one method's "params" spec; return the typed values."""
    out = {}
    for name, value in params.items():
        ps = spec.get(name)
        if ps is None:
            import difflib  # only on this error path

            near = difflib.get_close_matches(name, list(spec), 1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            raise RpcError.param(ERR_PARAM_UNKNOWN, name,
                                 f"unknown parameter for {_said(method)}{hint}", value)
        out[name] = coerce_value(name, value, ps)
    for name in sorted(spec):
        if spec[name].get("required") and name not in out:
            raise RpcError.param(ERR_PARAM_MISSING, name, f"required by {_said(method)}")
    return out


# --- Strict JSON -------------------------------------------------------------------------
# RFC 8259 has no NaN or Infinity, and a number too big for a double (1e999) reaches strict
# parsers (jq, Go, JavaScript) as an error or as a different value. Requests holding them
# are refused (ERR_PARSE) and nothing the server writes contains them. CPython's json does
# this through hooks; MicroPython's takes no keyword arguments, so there a walk over the
# value does it (MicroPython already refuses the NaN and Infinity literals).

def _no_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text):
    f = float(text)
    if f - f != 0:  # inf - inf and nan - nan are nan
        raise ValueError(f"number {text[:24]} is out of range")
    return f


def _check_finite(obj):
    """Raise ValueError if `obj` holds a NaN or infinite float (iterative: any depth)."""
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, float):
            if o - o != 0:
                raise ValueError("NaN and Infinity are not valid JSON")
        elif isinstance(o, dict):
            stack.extend(o)
            stack.extend(o.values())
        elif isinstance(o, (list, tuple)):
            stack.extend(o)


try:
    json.loads("0", parse_constant=_no_constant, parse_float=_finite_float)
    _LOADS_KW = {"parse_constant": _no_constant, "parse_float": _finite_float}
except TypeError:  # MicroPython
    _LOADS_KW = None
try:
    json.dumps(0, separators=(",", ":"), allow_nan=False)
    _DUMPS_KW = {"separators": (",", ":"), "allow_nan": False}
except TypeError:  # MicroPython
    _DUMPS_KW = None


def _loads(data):
    """Strict JSON from UTF-8 bytes (or str). ValueError or UnicodeError if it is not."""
    text = data if isinstance(data, str) else bytes(data).decode("utf-8")
    if _LOADS_KW is not None:
        return json.loads(text, **_LOADS_KW)
    obj = json.loads(text)
    _check_finite(obj)
    return obj


def _dumps(obj):
    """Compact strict JSON text; ValueError for NaN/Infinity, TypeError for non-JSON types."""
    if _DUMPS_KW is not None:
        return json.dumps(obj, **_DUMPS_KW)
    _check_finite(obj)
    return json.dumps(obj, separators=(",", ":"))


# --- Server ------------------------------------------------------------------------------

# An id must come back exactly as sent: numbers beyond what a double holds exactly are
# refused (JavaScript and Go would read back another id, or fail on the reply).
ID_MAX = (1 << 53) - 1


def _valid_id(rid):
    if rid is None or isinstance(rid, str):
        return True
    if isinstance(rid, bool) or not isinstance(rid, (int, float)):
        return False
    return -ID_MAX <= rid <= ID_MAX


def _error_line(rid, err):
    """A whole error reply as text (the `data` is dropped if it is not strict JSON)."""
    try:
        return _dumps({"jsonrpc": "2.0", "id": rid, "error": err.to_dict()})
    except Exception:
        pass
    try:
        return _dumps({"jsonrpc": "2.0", "id": rid,
                       "error": {"code": err.code, "message": str(err.message)}})
    except Exception:
        return _dumps({"jsonrpc": "2.0", "id": None,
                       "error": {"code": ERR_INTERNAL, "message": "internal error"}})


def _cut(text, n=200):
    return text if len(text) <= n else text[:n - 3] + "..."


def _exc_text(e):
    """str(e), shortened; never raises (an exception's __str__ may)."""
    try:
        return _cut(str(e))
    except Exception:
        return type(e).__name__


def _resolve_gid(group):
    if group is None or isinstance(group, int):
        return group
    import grp  # only when a group is configured

    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ValueError(f"group: no group named {group!r}")


def _remove_stale(path):
    """Unlink a dead socket at path; refuse to touch a live one or a non-socket."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if st.st_mode & 0o170000 != 0o140000:  # S_IFSOCK
        raise OSError(errno.EEXIST, f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.setblocking(False)  # a full backlog must not block us: EAGAIN means alive
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)  # nobody listens: left over from a daemon that died
        return
    except FileNotFoundError:
        return
    except BlockingIOError:
        pass
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, f"l2tpd is already running at {path}")


RECV_SIZE = 65536  # bytes read from a client at a time


class RpcConnection:
    """One client of an RpcServer; the loop calls on_readable/on_writable."""

    def __init__(self, server, sock, now):
        self.server = server
        self.sock = sock
        self.fd = sock.fileno()
        self.closed = False
        self.subscribed = False
        self.events = EVENT_READ
        self._in = bytearray()
        self._out = bytearray()
        self._since = now  # accepted, or the end of the previous request line
        self._partial_since = None  # when the pending partial line began
        self._stalled_since = now  # when pending output last moved (eviction order)
        self._eof = False  # the client shut down its side: answer what came, then close
        self._closing = False  # flush what is queued, then close
        self._cred = _ABSENT

    def __repr__(self):
        return f"<RpcConnection fd={self.fd}{' closed' if self.closed else ''}>"

    @property
    def peercred(self):
        """(pid, uid, gid) of the client process, or None where SO_PEERCRED is missing."""
        if self._cred is _ABSENT:
            self._cred = None
            opt = getattr(socket, "SO_PEERCRED", None)
            if opt is not None and not self.closed:
                import struct

                try:
                    self._cred = struct.unpack("3i", self.sock.getsockopt(
                        socket.SOL_SOCKET, opt, struct.calcsize("3i")))
                except OSError:
                    pass
        return self._cred

    @property
    def output_bytes(self):
        """Bytes of replies and notifications queued for this client and not yet sent."""
        return len(self._out)

    @property
    def input_bytes(self):
        """Bytes received from this client and not yet handled."""
        return len(self._in)

    def deadline(self):
        """When on_timer will close this connection (ms), or None."""
        if self.closed:
            return None
        idle = self.server.idle_timeout
        if self.subscribed and not self._closing:
            return None if self._partial_since is None else self._partial_since + idle
        return self._since + idle

    def eviction_rank(self):
        """(class, since, what): the lowest rank is evicted first when slots run out.

        0: stuck on a partial request line (slow loris), oldest first;
        1: idle between requests, longest idle first;
        2: not reading its replies (output pending), stalled longest first;
        3: an idle events subscriber, longest idle first.
        """
        if self._partial_since is not None and not self._closing:
            return (0, self._partial_since, "stuck on a partial request")
        if self._out or self._closing:
            return (2, self._stalled_since, "not reading its replies")
        if self.subscribed:
            return (3, self._since, "an idle subscriber")
        return (1, self._since, "idle")

    def close(self):
        self.server._drop(self, None)

    def on_readable(self, now):
        self.server._now = now
        # While output is pending the loop does not watch for input (back-pressure); a
        # spurious call then reads nothing either.
        if self.closed or self._closing or self._eof or self._out:
            return
        try:
            data = self.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self.server._drop(self, f"receive failed: {e}")
            return
        if data:
            self._in += data
        else:
            self._eof = True
        self._pump(now)

    def on_writable(self, now):
        self.server._now = now
        if self.closed:
            return
        self._flush()
        if not (self.closed or self._out or self._closing) and self._line_waiting():
            self._pump(now)  # requests held back while the output was over its bound

    # Internals.

    def _line_waiting(self):
        return self._eof or self._in.find(b"\n") >= 0

    def _pump(self, now):
        """Handle waiting requests and send; repeat while the client keeps up."""
        while True:
            more = self._handle_lines(now)
            if self.closed:
                return
            self._flush()
            if self.closed or self._out or not more:
                return

    def _handle_lines(self, now):
        """Handle the complete lines in _in while the output is under its bound.

        Returns True when it stopped at the bound with requests left (they are handled
        once the client has read enough).
        """
        srv = self.server
        limit = srv.max_request
        start = 0
        more = False
        while not self._closing:
            nl = self._in.find(b"\n", start)
            if nl < 0:
                if not self._eof or start >= len(self._in):
                    break
                nl = len(self._in)  # a last line without "\n" before EOF (`printf | nc -U`)
            if nl - start > limit:
                break
            if len(self._out) >= srv.max_output:
                more = True
                break
            line = bytes(self._in[start:nl])
            start = nl + 1
            self._since = now
            self._partial_since = None
            reply = srv._handle_line(line, self)
            if self.closed:
                return False
            if reply:
                self._queue(reply.encode() + b"\n")
        del self._in[:start]
        if more:
            return True
        nl = self._in.find(b"\n")
        if nl > limit or (nl < 0 and len(self._in) > limit):
            # No newline within max_request bytes: the framing is lost. Answer once and
            # close rather than skip to the next newline, which may never come.
            self._in = bytearray()
            srv.stats["requests_too_large"] += 1
            self._fail(now, RpcError(ERR_REQUEST_TOO_LARGE,
                                     f"request line longer than {limit} bytes"))
            return False
        if not self._in:
            self._partial_since = None
            if self._eof:
                self._closing = True  # answered what came: close once it is sent
                self._since = now
        elif self._partial_since is None:
            self._partial_since = now
        return False

    def _queue(self, data):
        if not self._out:
            self._stalled_since = self.server._now
        self._out += data
        stats = self.server.stats
        if len(self._out) > stats["peak_output"]:
            stats["peak_output"] = len(self._out)

    def _fail(self, now, err):
        """Queue one error (id null), then close once it is sent or idle_timeout passed."""
        self.server._log_some("fail", f"rpc client fd {self.fd}: {err.message}; closing")
        self._queue(_error_line(None, err).encode() + b"\n")
        self._closing = True
        self._since = now

    def _flush(self):
        while self._out:
            try:
                n = self.sock.send(self._out)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                self.server._drop(self, f"send failed: {e}")
                return
            if n:
                self._stalled_since = self.server._now
            del self._out[:n]
        if self._closing and not self._out:
            self.server._drop(self, None)
            return
        # While output is pending, stop reading requests: a client that sends and never
        # reads stalls itself instead of growing our buffer.
        want = EVENT_WRITE if self._out else EVENT_READ
        if want != self.events:
            self.events = want
            self.server._watch(self.fd, self, want)


class RpcServer:
    """The daemon's JSON-RPC endpoint on a Unix stream socket (see the module doc)."""

    def __init__(self, path, handler, watch, mode=0o660, group=None, max_clients=16,
                 max_request=65536, max_output=1 << 20, idle_timeout=30000, log=None,
                 on_close=None, max_batch=512):
        self.path = path
        self.handler = handler
        self.max_clients = max_clients
        self.max_request = max_request
        self.max_output = max_output
        self.max_batch = max_batch
        self.idle_timeout = idle_timeout
        self.connections = {}
        self.stats = {"clients_accepted": 0, "clients_refused": 0, "clients_evicted": 0,
                      "clients_idle_closed": 0, "clients_dropped": 0,
                      "requests_too_large": 0, "batches_refused": 0,
                      "batch_requests_not_run": 0, "peak_output": 0}
        self._now = 0  # the loop's clock as last seen (eviction order, log rate)
        self._quiet = {}  # kind -> (when last logged, how many not logged since)
        self._serving = None  # the connection whose request the handler is running
        self._watch = watch
        self._log = log or (lambda msg: None)
        self._on_close = on_close
        gid = _resolve_gid(group)
        _remove_stale(path)
        parent = os.path.dirname(path)
        if parent and not os.path.isdir(parent):
            os.mkdir(parent)
            os.chmod(parent, 0o755)  # reachable; the socket's own mode is the gate
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # Bound under a temporary name and renamed into place once it listens: a client
        # that sees `path` can connect (between bind and listen it would be refused).
        # Bind with umask 0777 so the file starts as mode 000: nobody but root can connect
        # until chown and chmod below are done, whatever the caller's umask.
        tmp = path + "~"
        _remove_stale(tmp)
        old = os.umask(0o777)
        try:
            sock.bind(tmp)
        except OSError:
            sock.close()
            raise
        finally:
            os.umask(old)
        try:
            if gid is not None:
                os.chown(tmp, -1, gid)
            os.chmod(tmp, mode)
            st = os.stat(tmp)
            self._ident = (st.st_dev, st.st_ino)
            # Room for a burst of connections beyond the slots (a flood is accepted and
            # evicted 16 at a time per loop pass; RpcClient retries a full queue).
            sock.listen(max(16, min(4 * max_clients, 128)))
            sock.setblocking(False)
            os.rename(tmp, path)
        except BaseException:
            sock.close()
            os.unlink(tmp)
            raise
        self.sock = sock
        watch(sock.fileno(), self, EVENT_READ)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def fileno(self):
        return self.sock.fileno() if self.sock else -1

    def output_bytes(self):
        """Bytes queued for all clients and not yet sent."""
        return sum(len(c._out) for c in self.connections.values())

    def on_readable(self, now):
        """Accept waiting clients (a few per call, to stay fair to the rest of the loop)."""
        self._now = now
        for _ in range(16):
            if self.sock is None:
                return
            try:
                sock, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self._log(f"rpc accept failed: {e}")
                return
            sock.setblocking(False)
            if len(self.connections) >= self.max_clients and not self._make_room(now):
                # Every client is in the middle of a request. Tell this one why before
                # closing; the send fits the empty socket buffer.
                self.stats["clients_refused"] += 1
                err = RpcError(ERR_TOO_MANY_CLIENTS,
                               f"too many clients (max {self.max_clients})")
                # Logged first: whoever reads the refusal finds it in the log already.
                self._log_some("refused", f"rpc client refused: {err.message}")
                try:
                    sock.send(_error_line(None, err).encode() + b"\n")
                except OSError:
                    pass
                sock.close()
                continue
            self.stats["clients_accepted"] += 1
            conn = RpcConnection(self, sock, now)
            self.connections[conn.fd] = conn
            self._watch(conn.fd, conn, EVENT_READ)

    def on_writable(self, now):
        pass  # the listening socket is only ever watched for EVENT_READ

    def next_deadline(self):
        """Earliest idle deadline of any client (ms), or None."""
        best = None
        for conn in self.connections.values():
            d = conn.deadline()
            if d is not None and (best is None or d < best):
                best = d
        return best

    def on_timer(self, now):
        """Close clients whose idle deadline has passed."""
        self._now = now
        for conn in list(self.connections.values()):
            d = conn.deadline()
            if d is None or d > now:
                continue
            if conn._closing:
                self._drop(conn, "did not read its last reply in time")
                continue
            self.stats["clients_idle_closed"] += 1
            self._last_word(conn, RpcError(ERR_IDLE_TIMEOUT, f"no complete request within "
                                                             f"{self.idle_timeout} ms; closing"))

    def notify(self, conn, method, params=None):
        """Push a notification to one client. False if it is (or just got) closed."""
        data = self._note(method, params)
        return data is not None and self._push(conn, data)

    def broadcast(self, method, params=None):
        """Push a notification to every subscribed client; returns how many got it."""
        data = self._note(method, params)
        if data is None:
            return 0
        return sum(1 for c in list(self.connections.values())
                   if c.subscribed and self._push(c, data))

    def close(self):
        """Close every client and the listening socket; remove the socket file if ours."""
        for conn in list(self.connections.values()):
            self._drop(conn, None)
        if self.sock is None:
            return
        self._watch(self.sock.fileno(), self, 0)
        self.sock.close()
        self.sock = None
        try:
            st = os.stat(self.path)
            if (st.st_dev, st.st_ino) == self._ident:  # not a successor daemon's socket
                os.unlink(self.path)
        except OSError:
            pass

    # Internals.

    def _log_some(self, kind, text):
        """Log `text` unless a line of the same kind went out less than a second ago; those
        are counted and the count is added to the next line (a flood is not a log flood)."""
        last, held = self._quiet.get(kind, (None, 0))
        if last is not None and 0 <= self._now - last < 1000:
            self._quiet[kind] = (last, held + 1)
            return
        self._quiet[kind] = (self._now, 0)
        self._log(text + (f" (and {held} more like it not logged)" if held else ""))

    def _make_room(self, now):
        """Free a client slot for a new connection; False if every client is being served.

        First every client gets its waiting input read: one that has sent a request is
        served now, and is then no longer the longest idle. Then the client with the
        lowest eviction_rank() is told why (ERR_EVICTED) and closed.
        """
        for conn in list(self.connections.values()):
            if conn is not self._serving:
                conn.on_readable(now)  # reads nothing if output is pending or it is closing
            if len(self.connections) < self.max_clients:
                return True
        victim = None
        for conn in self.connections.values():
            if conn is self._serving:
                continue
            if victim is None or (conn.eviction_rank(), conn.fd) < (
                    victim.eviction_rank(), victim.fd):
                victim = conn
        if victim is None:
            return False
        _, since, what = victim.eviction_rank()
        self.stats["clients_evicted"] += 1
        self._log_some("evicted", f"rpc client fd {victim.fd}: evicted for a new client "
                                  f"({what} for {now - since} ms; all {self.max_clients} "
                                  "slots taken)")
        self._last_word(victim, RpcError(
            ERR_EVICTED, f"closing: a new client needs this slot (all {self.max_clients} "
                         f"are taken) and this connection was {what} the longest"))
        return True

    def _last_word(self, conn, err):
        """Send `err` (id null) best effort, with whatever is still queued, and close."""
        conn._out += _error_line(None, err).encode() + b"\n"
        try:
            conn.sock.send(conn._out)
        except OSError:
            pass
        self._drop(conn, None)

    def _note(self, method, params):
        msg = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        try:
            return _dumps(msg).encode() + b"\n"
        except Exception as e:  # NaN, Infinity, or not JSON at all: a bug of the caller
            self._log(f"rpc notification {method!r} not sent: not strict JSON "
                      f"({type(e).__name__}: {_exc_text(e)})")
            return None

    def _push(self, conn, data):
        if conn.closed or conn._closing:
            return False
        if len(conn._out) + len(data) > self.max_output:
            self.stats["clients_dropped"] += 1
            self._drop(conn, f"dropped: {len(conn._out)} bytes of output unread "
                             f"(bound {self.max_output})")
            return False
        conn._queue(data)
        if conn.events != EVENT_WRITE:  # else the socket is known to be full: wait
            conn._flush()
        return not conn.closed

    def _drop(self, conn, reason):
        if conn.closed:
            return
        if reason:
            self._log(f"rpc client fd {conn.fd}: {reason}")
        conn.closed = True
        self.connections.pop(conn.fd, None)
        self._watch(conn.fd, conn, 0)
        conn.sock.close()
        if self._on_close:
            try:
                self._on_close(conn)
            except Exception as e:
                self._log(f"rpc on_close failed: {type(e).__name__}: {e}")

    def _handle_line(self, line, conn):
        """One request line -> the reply text, or None (blank line, notifications)."""
        line = line.strip()
        if not line:
            return None
        try:
            msg = _loads(line)
        except Exception as e:  # ValueError, UnicodeError, RecursionError (deep [[[)
            reason = "invalid UTF-8" if isinstance(e, UnicodeError) else _exc_text(e)
            return _error_line(None, RpcError(ERR_PARSE, f"parse error: {reason}"))
        if not isinstance(msg, list):
            return self._handle_one(msg, conn)
        if not msg:
            return _error_line(None, RpcError(ERR_INVALID_REQUEST, "empty batch"))
        if len(msg) > self.max_batch:
            self.stats["batches_refused"] += 1
            self._log_some("batch", f"rpc client fd {conn.fd}: batch of {len(msg)} "
                                    f"requests refused (max_batch {self.max_batch})")
            return _error_line(None, RpcError(
                ERR_BATCH_TOO_LARGE, f"batch of {len(msg)} requests; at most "
                                     f"{self.max_batch} allowed (none was run)",
                {"max_batch": self.max_batch}))
        # The replies of one batch count against max_output with what is already queued:
        # once they pass it, the rest of the batch is not run, each answered with an error.
        replies = []
        size = 0  # of the replies so far (ASCII: json escapes the rest)
        skipped = 0
        for m in msg:
            if conn.closed:
                break
            if len(conn._out) + size < self.max_output:  # _out: notifications too
                r = self._handle_one(m, conn)
            else:
                skipped += 1
                r = self._not_run(m)
            if r is not None:
                replies.append(r)
                size += len(r) + 1
        if skipped:
            self.stats["batch_requests_not_run"] += skipped
            self._log_some("batch", f"rpc client fd {conn.fd}: {skipped} of {len(msg)} "
                                    "batched requests not run: replies passed max_output "
                                    f"({self.max_output} bytes)")
        return "[" + ",".join(replies) + "]" if replies else None

    def _not_run(self, msg):
        """The reply for a batched request left out by the output bound (None: no id)."""
        if isinstance(msg, dict) and "id" not in msg:
            return None  # a notification: never answered, here not run either
        rid = msg.get("id") if isinstance(msg, dict) else None
        return _error_line(rid if _valid_id(rid) else None, RpcError(
            ERR_OUTPUT_LIMIT, f"not run: the replies before it in this batch passed "
                              f"{self.max_output} bytes"))

    def _handle_one(self, msg, conn):
        if not isinstance(msg, dict):
            return _error_line(None, RpcError(ERR_INVALID_REQUEST,
                                              "request must be a JSON object"))
        rid = msg.get("id")
        if rid is not None and (isinstance(rid, bool) or
                                not isinstance(rid, (str, int, float))):
            return _error_line(None, RpcError(ERR_INVALID_REQUEST,
                                              "id: expected a string, a number or null"))
        if not _valid_id(rid):
            return _error_line(None, RpcError(
                ERR_INVALID_REQUEST, f"id: a number must be within +-{ID_MAX} (2**53-1) to "
                                     "come back unchanged; use a string"))
        if msg.get("jsonrpc") != "2.0":
            return _error_line(rid, RpcError(ERR_INVALID_REQUEST, 'jsonrpc: expected "2.0"'))
        method = msg.get("method")
        if not isinstance(method, str) or not method:
            return _error_line(rid, RpcError(ERR_INVALID_REQUEST,
                                             "method: expected a non-empty string"))
        params = msg.get("params")
        if params is None:
            params = {}
        elif isinstance(params, list):
            return _error_line(rid, RpcError(ERR_INVALID_PARAMS,
                                             "params: positional (array) parameters are not "
                                             "supported; pass an object"))
        elif not isinstance(params, dict):
            return _error_line(rid, RpcError(ERR_INVALID_REQUEST, "params: expected an object"))
        self._serving = conn
        try:
            result = self.handler(method, params, conn)
        except RpcError as e:
            err = e
        except Exception as e:
            try:
                import traceback

                tb = traceback.format_exc()
            except ImportError:  # MicroPython without micropython-lib's traceback
                tb = repr(e)
            self._log(f"rpc {_cut(method, 80)} raised:\n{tb}")
            err = RpcError(ERR_INTERNAL, f"internal error in {_cut(method, 80)}: "
                                         f"{type(e).__name__}: {_exc_text(e)}")
        else:
            if "id" not in msg:
                return None
            try:
                return _dumps({"jsonrpc": "2.0", "id": rid, "result": result})
            except Exception as e:  # TypeError, ValueError (NaN, Infinity, huge int), ...
                self._log(f"rpc {_cut(method, 80)}: result is not strict JSON: "
                          f"{type(e).__name__}: {_exc_text(e)}")
                err = RpcError(ERR_INTERNAL, f"internal error in {_cut(method, 80)}: result "
                                             "is not JSON")
        finally:
            self._serving = None
        return _error_line(rid, err) if "id" in msg else None


# --- Client ------------------------------------------------------------------------------

_clock = getattr(time, "monotonic", time.time)  # MicroPython has no time.monotonic


class RpcClient:
    """Blocking JSON-RPC client for l2tpd (see the module doc)."""

    MAX_QUEUED = 10000  # notifications kept while the caller is not looking
    RETRIES = 2  # new connections for a request the daemon closed on before reading it

    def __init__(self, path=None, timeout=5.0):
        self.path = path or default_socket_path()
        self.timeout = timeout
        self._sock = None
        self._buf = bytearray()
        self._notes = []
        self._next_id = 1
        self._connect()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._buf = bytearray()

    def call(self, method, params=None):
        """Call one method; return its result or raise RpcError / RpcConnectionError."""
        req = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            req["params"] = params
        for attempt in range(self.RETRIES + 1):
            done, value = self._call_once(req)
            if done:
                return value
            if attempt == self.RETRIES:
                raise value
            # The daemon closed this connection before reading the request (a new client
            # needed the slot, or it sat idle): it was not run, so send it again.
            self.close()
            self._connect()

    def _call_once(self, req):
        """(True, result) or raises RpcError; (False, error) if the daemon closed the
        connection before it read the request (ERR_EVICTED or ERR_IDLE_TIMEOUT, id null).
        Sending raises ValueError for NaN or Infinity in the params: they are not JSON."""
        self._revive()
        rid = self._next_id
        self._next_id += 1
        req["id"] = rid
        deadline = None if self.timeout is None else _clock() + self.timeout
        lost = None
        try:
            self._sock.settimeout(self.timeout)
            self._sock.sendall(_dumps(req).encode() + b"\n")
        except OSError as e:
            lost = e  # still read: the daemon may have said why before closing
        while True:
            try:
                msg = self._read(deadline)
            except RpcConnectionError:
                if lost is not None:
                    raise RpcConnectionError(f"lost connection to l2tpd at {self.path}: "
                                             f"{lost}", lost.errno)
                raise
            if msg is None:
                raise RpcConnectionError(f"no reply from l2tpd at {self.path} "
                                         f"within {self.timeout} s", errno.ETIMEDOUT)
            if self._queue(msg):
                continue
            rid_got = msg.get("id")
            if rid_got == rid or (rid_got is None and "error" in msg):
                if "error" in msg:
                    err = RpcError.from_dict(msg["error"])
                    if rid_got is None and err.code in (ERR_EVICTED, ERR_IDLE_TIMEOUT):
                        return False, err
                    raise err
                return True, msg.get("result")
            # else a late reply to an earlier call that timed out: skip it

    def notifications(self, timeout=None):
        """Pushed (method, params) pairs; waits up to `timeout` s for the first one."""
        deadline = None if timeout is None else _clock() + timeout
        while not self._notes:
            msg = self._read(deadline)
            if msg is None:
                return []
            self._queue(msg)
        while True:  # and whatever else is already complete in the buffer
            msg = self._pop()
            if msg is None:
                break
            self._queue(msg)
        notes, self._notes = self._notes, []
        return notes

    # Internals.

    def _connect(self):
        deadline = None if self.timeout is None else _clock() + self.timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(self.path)
                break
            except OSError as e:
                sock.close()
                if e.errno == errno.EAGAIN and (deadline is None or _clock() < deadline):
                    # The daemon's listen queue is full (a flood of connections): with a
                    # timeout set the kernel does not wait for room, so try again shortly.
                    time.sleep(0.01)
                    continue
                why = e.strerror or str(e) or type(e).__name__
                if e.errno in (errno.ENOENT, errno.ECONNREFUSED):
                    why += " (is l2tpd running?)"
                raise RpcConnectionError(f"cannot connect to l2tpd at {self.path}: {why}",
                                         e.errno)
        self._sock = sock
        self._buf = bytearray()

    def _revive(self):
        """Reconnect if the daemon closed this connection while we were idle."""
        if self._sock is None:
            self._connect()
            return
        eof = False
        self._sock.settimeout(0)
        try:
            while True:
                data = self._sock.recv(65536)
                if not data:
                    eof = True
                    break
                self._buf += data
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            eof = True
        while True:
            msg = self._pop()
            if msg is None:
                break
            self._queue(msg)  # replies seen here are stale (e.g. the idle-timeout notice)
        if eof:
            self.close()
            self._connect()

    def _queue(self, msg):
        """Keep msg if it is a notification; True if it was one."""
        if "method" not in msg or "id" in msg:
            return False
        if len(self._notes) >= self.MAX_QUEUED:
            del self._notes[0]
        params = msg.get("params")
        self._notes.append((msg["method"], {} if params is None else params))
        return True

    def _pop(self):
        """Next complete message from the buffer (no I/O), or None."""
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                return None
            line = bytes(self._buf[:nl]).strip()
            del self._buf[:nl + 1]
            if not line:
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                raise RpcConnectionError(f"garbled reply from l2tpd: {line[:80]!r}")
            if isinstance(msg, dict):
                return msg

    def _read(self, deadline):
        """Next message, or None when `deadline` (clock seconds; None: never) passes."""
        while True:
            msg = self._pop()
            if msg is not None:
                return msg
            if self._sock is None:
                raise RpcConnectionError(f"not connected to l2tpd at {self.path}")
            wait = None if deadline is None else max(0.0, deadline - _clock())
            self._sock.settimeout(wait)
            try:
                data = self._sock.recv(65536)
            except (socket.timeout, BlockingIOError):
                return None
            except OSError as e:
                self.close()
                raise RpcConnectionError(f"lost connection to l2tpd at {self.path}: {e}",
                                         e.errno)
            if not data:
                self.close()
                raise RpcConnectionError(f"l2tpd at {self.path} closed the connection")
            self._buf += data


def call(method, params=None, path=None, timeout=5.0):
    """One call on a fresh connection."""
    with RpcClient(path, timeout) as c:
        return c.call(method, params)
