"""Run the MicroPython-capable tests: `micropython tests/run.py [module ...]`.

A test module opts in with a line `MPY = True`; its test_* functions take no
arguments and use bare asserts. Prints one line per failure and ends with the
plain "N passed, N failed" line; exits 1 if anything failed.
"""
import os
import sys

sys.path.insert(0, "tests")
sys.path.insert(0, ".")


def modules():
    names = sys.argv[1:]
    if names:
        return names
    out = []
    for f in sorted(os.listdir("tests")):
        if f.startswith("test_") and f.endswith(".py"):
            with open("tests/" + f) as fh:
                if "\nMPY = True" in fh.read():
                    out.append(f[:-3])
    return out


passed = failed = 0
for name in modules():
    mod = __import__(name)
    for attr in sorted(dir(mod)):
        fn = getattr(mod, attr)
        if attr.startswith("test_") and callable(fn):
            try:
                fn()
                passed += 1
            except Exception as e:
                failed += 1
                print("FAIL", name + "." + attr, type(e).__name__, e)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed or not passed else 0)
