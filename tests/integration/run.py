#!/usr/bin/env python3
"""Run the integration tests (tests/integration/test_*.py) and print one result line:
"integration: N passed, N failed, N skipped". Each skip prints its reason."""
import importlib.util
import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


class Result(unittest.TestResult):
    def __init__(self):
        super().__init__()
        self.passed = 0
        self.started = 0.0

    def startTest(self, test):
        super().startTest(test)
        self.started = time.monotonic()

    def _took(self):
        return f"{time.monotonic() - self.started:.1f}s"

    def addSuccess(self, test):
        self.passed += 1
        print(f"PASS {test.id()} ({self._took()})", flush=True)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        print(f"FAIL {test.id()} ({self._took()})\n{self._exc_info_to_string(err, test)}", flush=True)

    def addError(self, test, err):
        super().addError(test, err)
        print(f"FAIL {test.id()} (error, {self._took()})\n{self._exc_info_to_string(err, test)}", flush=True)

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:  # a failed subtest: its test reports no PASS
            print(f"FAIL {subtest.id()} ({self._took()})\n{self._exc_info_to_string(err, test)}", flush=True)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        print(f"SKIP {test.id()}: {reason}", flush=True)


def main():
    selected = sys.argv[1:]
    suite = unittest.TestSuite()
    loader = unittest.TestLoader()
    for name in sorted(os.listdir(HERE)):
        if not (name.startswith("test_") and name.endswith(".py")):
            continue
        module_name = name[:-3]
        spec = importlib.util.spec_from_file_location(module_name, os.path.join(HERE, name))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        tests = loader.loadTestsFromModule(module)
        if selected:
            def keep(t):
                return any(s in t.id() for s in selected)
            flat = []
            def walk(s):
                for t in s:
                    if isinstance(t, unittest.TestSuite):
                        walk(t)
                    elif keep(t):
                        flat.append(t)
            walk(tests)
            tests = unittest.TestSuite(flat)
        suite.addTests(tests)
    result = Result()
    suite.run(result)
    failed = len(result.failures) + len(result.errors)
    print(f"integration: {result.passed} passed, {failed} failed, {len(result.skipped)} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
