"""DESIGN.md's layers: the sans-IO modules do no I/O, and imports follow the arrows."""
import re

MPY = True

# Modules that must never touch sockets, files, clocks or pyroute2 (STYLE.md item 1).
SANS_IO = ("avp.py", "ctrlchan.py", "fsm.py")
IO_MODULES = ("socket", "select", "selectors", "time", "os", "logging", "random",
              "pyroute2", "subprocess")

# Who may import which project module (DESIGN.md "Arrows").
PROJECT = ("l2tpd", "avp", "ctrlchan", "fsm", "ppp", "kernel", "rpc_unix", "l2tpctl")
ALLOWED = {
    "l2tpctl.py": ("rpc_unix",),
    "l2tpd.py": ("rpc_unix", "fsm", "ctrlchan", "avp", "ppp", "kernel"),
    "fsm.py": ("ctrlchan", "avp"),
    "ctrlchan.py": ("avp",),
    "avp.py": (),
    "ppp.py": ("avp",),
    "kernel.py": ("avp",),
    "rpc_unix.py": (),
}

_IMPORT = re.compile(r"^\s*(?:import|from)\s+([A-Za-z_][A-Za-z0-9_]*)")


def _imports(path):
    """Top-level names a module imports, anywhere in the file (lazy imports too)."""
    try:
        with open(path) as f:
            lines = f.read().split("\n")
    except OSError:
        return None  # a module that does not exist yet
    out = []
    for line in lines:
        m = _IMPORT.match(line)
        if m:
            out.append(m.group(1))
    return out


def test_protocol_modules_import_no_io():
    for path in SANS_IO:
        names = _imports(path)
        assert names is not None, path
        for mod in IO_MODULES:
            assert mod not in names, f"{path} imports {mod}"


def test_imports_follow_the_arrows():
    for path, allowed in ALLOWED.items():
        names = _imports(path)
        if names is None:
            continue
        for name in names:
            if name in PROJECT:
                assert name in allowed, f"{path} imports {name}; DESIGN.md allows {allowed}"


def test_nothing_imports_l2tpd():
    for path in ALLOWED:
        names = _imports(path) or []
        assert path == "l2tpd.py" or "l2tpd" not in names, path
