"""The assertions of the tests in this folder: each failed check is printed
and counted; finish() prints the count and exits 1 if any failed."""
import sys

failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print("FAIL:", what)


def finish():
    print("failures:", failures)
    sys.exit(1 if failures else 0)
