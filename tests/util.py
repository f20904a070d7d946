"""Helpers shared by the tests that also run under MicroPython (no pytest here)."""


def raises(exc, fn, *args, **kw):
    """Call fn and return the exception of type exc it raised (fail otherwise)."""
    try:
        fn(*args, **kw)
    except exc as e:
        return e
    raise AssertionError(f"{fn} did not raise {exc.__name__}")
