#!/usr/bin/env python3
"""The test bed's driver, started by Tests/vm/run once the images are built. Python standard library only."""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from report import Report  # noqa: E402
from busybox_session import BusyboxSession  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--work', required=True)
    ap.add_argument('--repo', required=True)
    ap.add_argument('--busybox', action='store_true')
    ap.add_argument('--systemd', action='store_true')
    ap.add_argument('--systemd-skip')
    ap.add_argument('--daemon', action='store_true')
    ap.add_argument('--have-binaries', action='store_true')
    ap.add_argument('--setup-failure', action='append', default=[])
    ap.add_argument('--nri', action='store_true', help='the systemd image has containerd and numaplace-nri')
    ap.add_argument('--nri-failure', help='the NRI check was asked for (or its plugin failed to build): why not')
    ap.add_argument('--nri-skip', help='the NRI check does not run: why')
    a = ap.parse_args()

    logs = os.path.join(a.work, 'logs')
    os.makedirs(logs, exist_ok=True)
    log = os.path.join(logs, 'checks.log')
    with open(log, 'w') as f:
        f.write('test bed run %s\n' % time.strftime('%Y-%m-%d %H:%M:%S'))
    report = Report(log)
    kernel = os.path.join(a.work, 'kernel', 'vmlinux')
    t0 = time.monotonic()
    import selftest
    report.run('harness-selftest', selftest.run)
    for f in a.setup_failure:
        name, _, reason = f.partition(': ')
        report.fail(name, reason)
    no_binaries = None
    if a.daemon and not a.have_binaries:
        no_binaries = 'numaplaced/numaplacectl were not built'
    if a.busybox:
        BusyboxSession(report, a.work, kernel, a.daemon).run(no_binaries)
    if a.systemd:
        from systemd_session import SystemdSession
        nri = 'run' if a.nri else ('fail', a.nri_failure) if a.nri_failure else ('skip', a.nri_skip) if a.nri_skip else None
        SystemdSession(report, a.work, kernel, a.repo, a.daemon, nri).run(no_binaries)
    elif a.systemd_skip:
        report.skip('systemd', a.systemd_skip)
    report.note('total %.1fs' % (time.monotonic() - t0))
    print('[vm] checks took %.0fs; details in %s' % (time.monotonic() - t0, log), file=sys.stderr)
    return report.finish()


if __name__ == '__main__':
    sys.exit(main())
