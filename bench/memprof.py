#!/usr/bin/env python3
"""memprof: run l2tpd under tracemalloc and report where its memory goes.

    python bench/memprof.py OUT -- l2tpd.py -f -a 127.0.0.2 ...

Each SIGUSR1 takes a tracemalloc snapshot. The first is the baseline; every later one
writes OUT.N.txt: the allocations that grew since the baseline, grouped by source line
and by call stack (6 frames), largest first, with their sizes and counts. bench/run.py
--memprof sends the signals at the same moments as its RSS samples, so the report can be
divided by the number of tunnels or sessions added in between.

tracemalloc sees Python objects only (not the allocator's slack or fragmentation), so
its total is smaller than the RSS difference; the proportions are what matters.
"""
import os
import runpy
import signal
import sys
import tracemalloc

FRAMES = 6


def main():
    if "--" not in sys.argv or sys.argv.index("--") != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = sys.argv[1]
    script = sys.argv[3]
    state = {"base": None, "n": 0}

    def dump(signum, frame):
        snap = tracemalloc.take_snapshot().filter_traces(
            (tracemalloc.Filter(False, tracemalloc.__file__),
             tracemalloc.Filter(False, "<frozen importlib._bootstrap>")))
        if state["base"] is None:
            state["base"] = snap
            return
        state["n"] += 1
        lines = []
        base = state["base"]
        total = sum(s.size_diff for s in snap.compare_to(base, "filename"))
        lines.append(f"growth since the baseline: {total} bytes (Python objects)")
        for key, title in (("lineno", "by line"), ("traceback", "by call stack")):
            stats = snap.compare_to(base, key)
            lines.append(f"\n== {title} (top 25) ==")
            for s in stats[:25]:
                if s.size_diff <= 0:
                    continue
                lines.append(f"{s.size_diff:>12} B {s.count_diff:>9} blocks  "
                             f"{100.0 * s.size_diff / max(total, 1):5.1f}%")
                frames = s.traceback.format(limit=FRAMES if key == "traceback" else 1,
                                            most_recent_first=True)
                # "File ..., line N" then the source line: keep both, on one line.
                for i in range(0, len(frames) - 1, 2):
                    where = frames[i].strip().replace('File "', "").replace('", line ', ":")
                    lines.append(f"      {os.path.basename(where):<20} {frames[i + 1].strip()}")
        with open(f"{out}.{state['n']}.txt", "w") as f:
            f.write("\n".join(lines) + "\n")

    signal.signal(signal.SIGUSR1, dump)
    tracemalloc.start(FRAMES)
    sys.argv = sys.argv[3:]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
