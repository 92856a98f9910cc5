#!/usr/bin/env python3
"""debug.py [--systemd] CMD...: boots a guest from the images Tests/vm/run built last, runs each CMD through the
agent and prints its status and output, then powers off. For reproducing a failing check by hand:
    python3 Tests/vm/harness/debug.py 'numaplaced --dump | head' 'np-sysfs'
QMP commands: a CMD of the form 'qmp:device_add driver=edu id=x bus=rp11' goes to QEMU instead."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import Machine  # noqa: E402

work = os.environ.get('NUMAPLACE_VM_WORK', os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'work'))
args = sys.argv[1:]
systemd = bool(args) and args[0] == '--systemd'
if systemd:
    args = args[1:]
kernel = os.path.join(work, 'kernel', 'vmlinux')
if systemd:
    vm = Machine('debug-systemd', kernel, os.path.join(work, 'initrd-sd.cpio.gz'), os.path.join(work, 'logs'),
                 disk=os.path.join(work, 'sd.img'), append='np.root=/dev/vda')
else:
    vm = Machine('debug', kernel, os.path.join(work, 'initrd-busybox.cpio.gz'), os.path.join(work, 'logs'))
t = time.monotonic()
try:
    print('# agent ready after %.1fs' % vm.start(ready_timeout=420), flush=True)
    for cmd in args:
        t = time.monotonic()
        if cmd.startswith('qmp:'):
            name, *kv = cmd[4:].split()
            print('$ %s\n%s' % (cmd, vm.qmp.command(name, **dict(x.split('=', 1) for x in kv))), flush=True)
            continue
        rc, out = vm.agent.run(cmd, 300)
        print('$ %s  [rc=%d, %.2fs]\n%s' % (cmd, rc, time.monotonic() - t, out.rstrip()), flush=True)
finally:
    vm.stop()
