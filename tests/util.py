"""Helpers shared by the tests that also run under MicroPython (no pytest here)."""


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
