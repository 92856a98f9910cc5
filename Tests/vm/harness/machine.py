"""The test bed's virtual machine: QEMU command line, start, stop.

Guest layout (stable BDFs, see docs/testbed.md):

  node 0: CPUs 0-1, 512 MiB        distances  0: 10 21 41
  node 1: CPUs 2-3, 512 MiB                   1: 21 10 31
  node 2: no CPUs,  256 MiB (HBM/CXL-like)    2: 41 31 10
  pcie.0  rp0 (ACPI hotplug)        edu            0000:01:00.0  numa_node -1, local_cpulist 0-3 (unknown)
  pxb1 numa_node=1 (bus 0x80)       rp10: bochs-display (class 0x038000) 0000:81:00.0
                                    rp11, rp12: empty pciehp slots 11, 12 -> 0000:82:00.0, 0000:83:00.0
  pxb0 numa_node=0 (bus 0x40)       rp20: empty pciehp slot 20 -> 0000:41:00.0
  pxb2 numa_node=2 (bus 0xa0)       rp30: edu 0000:a1:00.0 (device on the CPU-less node; nearest CPUs: node 1)

Node 2 is nearer to node 1 (31) than to node 0 (41) so that "nearest CPU-bearing node" has one answer.
QEMU mirrors a distance given in one direction. Devices cannot sit on a pxb-pcie directly, only behind a root
port; the *-reserve options leave MMIO room for hot-added devices with a 16 MiB BAR (secondary-vga).
"""
import os
import shutil
import subprocess
import tempfile
import time

from qmp import QMP
from agent import Agent

HOTPLUG_PORTS = {
    # QMP bus id -> (slot number in /sys/bus/pci/slots, address of a device plugged there, node)
    'rp11': ('11', '0000:82:00.0', 1),
    'rp12': ('12', '0000:83:00.0', 1),
    'rp20': ('20', '0000:41:00.0', 0),
}


def qemu_args(kernel, initrd, append, disk=None, smp=4):
    half = smp // 2
    args = [
        'qemu-system-x86_64', '-machine', 'q35', '-accel', 'tcg', '-cpu', 'max', '-smp', str(smp), '-m', '1280M',
        '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
        '-object', 'memory-backend-ram,id=m0,size=512M',
        '-object', 'memory-backend-ram,id=m1,size=512M',
        '-object', 'memory-backend-ram,id=m2,size=256M',
        '-numa', 'node,nodeid=0,cpus=0-%d,memdev=m0' % (half - 1),
        '-numa', 'node,nodeid=1,cpus=%d-%d,memdev=m1' % (half, smp - 1),
        '-numa', 'node,nodeid=2,memdev=m2',
        '-numa', 'dist,src=0,dst=1,val=21',
        '-numa', 'dist,src=0,dst=2,val=41',
        '-numa', 'dist,src=1,dst=2,val=31',
        '-device', 'pcie-root-port,id=rp0,bus=pcie.0,chassis=1,slot=1,addr=0x2',
        '-device', 'edu,id=edu0,bus=rp0',
        '-device', 'pxb-pcie,id=pxb1,bus_nr=128,numa_node=1,bus=pcie.0,addr=0x3',
        '-device', 'pcie-root-port,id=rp10,bus=pxb1,chassis=10,slot=10,addr=0x0',
        '-device', 'pcie-root-port,id=rp11,bus=pxb1,chassis=11,slot=11,addr=0x1,pref32-reserve=64M,mem-reserve=8M',
        '-device', 'pcie-root-port,id=rp12,bus=pxb1,chassis=12,slot=12,addr=0x2,pref32-reserve=64M,mem-reserve=8M',
        '-device', 'bochs-display,id=gpu1,bus=rp10',
        '-device', 'pxb-pcie,id=pxb0,bus_nr=64,numa_node=0,bus=pcie.0,addr=0x4',
        '-device', 'pcie-root-port,id=rp20,bus=pxb0,chassis=20,slot=20,addr=0x0,pref32-reserve=64M,mem-reserve=8M',
        '-device', 'pxb-pcie,id=pxb2,bus_nr=160,numa_node=2,bus=pcie.0,addr=0x6',
        '-device', 'pcie-root-port,id=rp30,bus=pxb2,chassis=30,slot=30,addr=0x0',
        '-device', 'edu,id=edu2,bus=rp30',
        '-kernel', kernel, '-initrd', initrd, '-append', append,
    ]
    if disk:
        # snapshot=on: the guest's writes go to a temporary overlay, the image stays as built
        args += ['-drive', 'file=%s,if=none,id=d0,format=raw,snapshot=on' % disk,
                 '-device', 'virtio-blk-pci,drive=d0,bus=pcie.0,addr=0x10']
    return args


class Machine:
    """One QEMU process with a QMP socket and the agent's serial port; console on a log file."""

    def __init__(self, name, kernel, initrd, logdir, disk=None, append=''):
        self.name = name
        self.sockdir = tempfile.mkdtemp(prefix='npvm-')   # short path: unix socket names are limited to 107 bytes
        self.qmp_path = os.path.join(self.sockdir, 'qmp')
        self.ctl_path = os.path.join(self.sockdir, 'ctl')
        self.console = os.path.join(logdir, name + '.console.log')
        cmdline = 'console=ttyS0 quiet panic=-1 ' + append
        self.args = qemu_args(kernel, initrd, cmdline.strip(), disk) + [
            '-serial', 'file:' + self.console,
            '-qmp', 'unix:%s,server=on,wait=off' % self.qmp_path,
            '-chardev', 'socket,id=ctl,path=%s,server=on,wait=off' % self.ctl_path,
            '-device', 'isa-serial,chardev=ctl,index=1',
        ]
        self.proc = None
        self.qmp = None
        self.agent = None
        self.started = None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, ready_timeout=300):
        """Starts QEMU and waits for the guest agent; returns seconds from start to agent ready."""
        self.started = time.monotonic()
        self.stderr = open(self.console + '.qemu-stderr', 'w')
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=self.stderr, stderr=self.stderr)
        self.qmp = QMP(self.qmp_path, timeout=60)
        self.agent = Agent(self.ctl_path, ready_timeout=ready_timeout, alive=self.alive)
        return time.monotonic() - self.started

    def console_tail(self, n=30):
        try:
            with open(self.console, errors='replace') as f:
                return ''.join(f.readlines()[-n:])
        except OSError:
            return ''

    def stop(self, timeout=30):
        if self.agent:
            self.agent.close()
        if self.alive():
            try:
                self.qmp.command('quit', timeout=10)
            except Exception:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.qmp:
            self.qmp.close()
        shutil.rmtree(self.sockdir, ignore_errors=True)
