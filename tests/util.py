"""Helpers shared by the tests that also run under MicroPython (no pytest here)."""
import time


def raises(exc, fn, *args, **kw):
    """Call fn and return the exception of type exc it raised (fail otherwise)."""
    try:
        fn(*args, **kw)
    except exc as e:
        return e
    raise AssertionError(f"{fn} did not raise {exc.__name__}")


class Rng:
    """A deterministic "random" source for the protocol objects: a small LCG."""

    def __init__(self, seed=1):
        self.state = seed

    def __call__(self, n):
        out = bytearray(n)
        for i in range(n):
            self.state = (self.state * 1103515245 + 12345) & 0x7FFFFFFF
            out[i] = (self.state >> 16) & 0xFF
        return bytes(out)


# The machine's clock, for wall-time bounds only (the code under test never sees
# it): MicroPython has no time.monotonic, and its ticks_ms wraps, so differences
# go through ticks_diff.
if hasattr(time, "ticks_ms"):
    def _wall_ms():
        return time.ticks_ms()

    def _since(start):
        return time.ticks_diff(time.ticks_ms(), start)
else:
    def _wall_ms():
        return int(time.monotonic() * 1000)

    def _since(start):
        return _wall_ms() - start


class Deadline:
    """A wall-clock bound on a loop that is otherwise bounded only in virtual
    time or in steps, so that a regression (a timer that never advances, a
    retransmission storm) fails the test instead of hanging CI:

        dl = Deadline(60, "lossy link run")
        while ...:
            if dl.expired():
                dl.fail(f"at {now} ms")     # AssertionError naming the loop and where

    The bound is generous on purpose: it is not a measurement. Benchmarks measure."""

    def __init__(self, seconds, what="loop"):
        self.ms = int(seconds * 1000)
        self.what = what
        self.start = _wall_ms()

    def elapsed_ms(self):
        return _since(self.start)

    def expired(self):
        return _since(self.start) >= self.ms

    def fail(self, detail=None):
        raise AssertionError(f"{self.what}: still running after {self.ms / 1000} s of wall "
                             f"time" + (f" ({detail})" if detail else ""))

    def check(self):
        """Fail once the bound has passed."""
        if _since(self.start) >= self.ms:
            self.fail()


def bounded(fn, seconds):
    """fn() in a thread (CPython): its result, or its exception re-raised; fails if
    it has not returned within `seconds`, so a call that would block forever fails
    the test instead of hanging it."""
    import threading  # here: util.py also runs under MicroPython
    box = {}

    def run():
        try:
            box["r"] = fn()
        except BaseException as e:   # noqa: BLE001 - re-raised below
            box["e"] = e
    th = threading.Thread(target=run, daemon=True)
    th.start()
    th.join(seconds)
    assert not th.is_alive(), f"{fn} still running after {seconds} s"
    if "e" in box:
        raise box["e"]
    return box["r"]
