"""PASS/FAIL/SKIP lines and the final count.

A check is a function that returns a short detail string (shown with its timing) or raises CheckFailed
(or anything else: an unexpected exception is a failure too, reported with its type).
"""
import sys
import time
import traceback


class CheckFailed(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise CheckFailed(message)


class Report:
    def __init__(self, log_path):
        self.passed = 0
        self.failed = 0
        self.skipped = 0
        self.log = open(log_path, 'a')

    def _line(self, text):
        print(text, flush=True)
        self.log.write(text + '\n')
        self.log.flush()

    def note(self, text):
        """Detail for the log file only (the terminal shows one line per check)."""
        self.log.write('  ' + text.replace('\n', '\n  ') + '\n')
        self.log.flush()

    def ok(self, name, seconds, detail=''):
        self.passed += 1
        self._line('PASS %s (%.2fs%s)' % (name, seconds, ', ' + detail if detail else ''))

    def fail(self, name, reason):
        self.failed += 1
        self._line('FAIL %s: %s' % (name, ' '.join(str(reason).split())[:600]))

    def skip(self, name, reason):
        self.skipped += 1
        self._line('SKIP %s: %s' % (name, reason))

    def run(self, name, fn, *args):
        """Runs one check; returns True when it passed."""
        t = time.monotonic()
        try:
            detail = fn(*args)
        except CheckFailed as e:
            self.fail(name, e)
            return False
        except Exception as e:   # a harness or guest error is a failure of the check, with the cause
            self.note(traceback.format_exc())
            self.fail(name, '%s: %s' % (type(e).__name__, e))
            return False
        self.ok(name, time.monotonic() - t, detail or '')
        return True

    def finish(self):
        self._line('%d passed, %d failed' % (self.passed, self.failed))
        return 0 if self.failed == 0 else 1
