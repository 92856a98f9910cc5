"""Guest-side helpers shared by the busybox and systemd sessions: numaplacectl calls, the probe, hotplug."""
import json
import shlex
import time

from report import CheckFailed, expect
from sysfs import Sysfs, parse_cpulist

PROBE = '/usr/local/bin/numaplace-probe'


class Ctl:
    """numaplacectl in the guest, through the agent. Each call returns the parsed JSON reply."""

    def __init__(self, agent, socket, binary='numaplacectl'):
        self.agent = agent
        self.socket = socket
        self.binary = binary

    def command(self, args):
        return '%s --socket %s --json %s' % (self.binary, shlex.quote(self.socket), args)

    def call(self, args, timeout=60):
        rc, out = self.agent.run(self.command(args) + ' 2>/tmp/ctl.err', timeout)
        if rc != 0:
            _, err = self.agent.run('cat /tmp/ctl.err')
            raise CheckFailed('numaplacectl %s: rc=%d: %s %s' % (args, rc, out.strip()[:300], err.strip()[:300]))
        try:
            return json.loads(out)
        except ValueError:
            raise CheckFailed('numaplacectl %s printed no JSON: %r' % (args, out[:300]))

    def try_call(self, args, timeout=60):
        """(rc, stdout, stderr) without raising: for calls that are expected to fail."""
        rc, out = self.agent.run(self.command(args) + ' 2>/tmp/ctl.err', timeout)
        _, err = self.agent.run('cat /tmp/ctl.err')
        return rc, out, err


def sysfs(agent):
    return Sysfs(agent.check('np-sysfs'))


def read_probe(agent, path, timeout=30):
    """Waits until the probe has written its JSON line to `path` and returns it parsed."""
    out = agent.check('i=0; while ! grep -q "}" %s 2>/dev/null; do sleep 0.05; i=$((i+1)); '
                      '[ $i -gt %d ] && exit 1; done; cat %s' % (path, timeout * 20, path), timeout + 10)
    lines = [l for l in out.splitlines() if l.startswith('{')]
    expect(len(lines) == 1, 'probe output %s: expected one JSON line, got %r' % (path, out[:300]))
    return json.loads(lines[0])


def check_placement(probe, worker, cpus, policy, nodes, fds=True):
    """The probe's own view (probe) and the daemon's reply (worker) both say: CPUs `cpus`, memory policy
    `policy` on `nodes`, and the page the probe touched is on one of `nodes`."""
    want_cpus = parse_cpulist(cpus)
    expect(parse_cpulist(probe['cpus']) == want_cpus,
           'probe runs on CPUs %s, expected %s' % (probe['cpus'], cpus))
    expect(probe['policy'] == policy, 'probe memory policy %s, expected %s' % (probe['policy'], policy))
    expect(parse_cpulist(probe['policyNodes']) == set(nodes),
           'probe policy nodes %r, expected %s' % (probe['policyNodes'], nodes))
    expect(probe['pageNode'] in nodes, 'probe page landed on node %s, expected %s' % (probe['pageNode'], nodes))
    expect(probe['cpu'] in want_cpus, 'probe ran on CPU %s, outside %s' % (probe['cpu'], cpus))
    if fds:
        expect(probe['fds'] == [0, 1, 2], 'worker inherited descriptors %s (expected only 0 1 2)' % probe['fds'])
    applied = worker.get('applied')
    expect(applied, 'the daemon did not report the applied placement: %s' % json.dumps(worker)[:300])
    expect(parse_cpulist(applied.get('cpus', '')) == want_cpus,
           'daemon says applied CPUs %s, expected %s' % (applied.get('cpus'), cpus))
    expect(applied.get('memoryPolicy') == policy,
           'daemon says applied memory policy %s, expected %s' % (applied.get('memoryPolicy'), policy))
    expect(sorted(applied.get('memoryNodes') or []) == sorted(nodes),
           'daemon says applied memory nodes %s, expected %s' % (applied.get('memoryNodes'), nodes))


def wait_guest(agent, condition, timeout, what):
    """Polls a shell condition in the guest (inside one agent call, every 20 ms); returns seconds waited."""
    t = time.monotonic()
    rc, out = agent.run('i=0; until %s; do sleep 0.02; i=$((i+1)); [ $i -gt %d ] && exit 1; done; exit 0'
                        % (condition, timeout * 50), timeout + 10)
    if rc != 0:
        raise CheckFailed('%s: not within %ds' % (what, timeout))
    return time.monotonic() - t


def count_lines(agent, path, *patterns):
    """Number of lines in `path` that contain every pattern (fixed strings)."""
    cmd = 'cat %s 2>/dev/null' % path
    for p in patterns:
        cmd += ' | grep -F %s' % shlex.quote(p)
    _, out = agent.run(cmd + ' | wc -l')
    return int(out.strip() or 0)


def monitor_events(agent, path):
    """The Monitor stream recorded by `numaplacectl monitor | vmtool stamp`: [(client_us, event)]."""
    out = agent.check('cat %s' % path)
    events = []
    for line in out.splitlines():
        stamp, _, rest = line.partition(' ')
        try:
            obj = json.loads(rest)
        except ValueError:
            continue
        # numaplacectl prints the Event; a raw Varlink reply (vmtool varlink) nests it in parameters.event
        obj = obj.get('parameters', obj) if isinstance(obj, dict) else {}
        events.append((int(stamp), obj.get('event', obj)))
    return events


def uevents(agent, path='/tmp/uevents.log'):
    """Kernel uevents logged by `vmtool uevents`: [(us, action, devpath, subsystem, pci_slot)]."""
    out = agent.check('cat %s' % path)
    events = []
    for line in out.splitlines():
        w = line.split()
        if len(w) == 5 and w[0].isdigit():
            events.append((int(w[0]), w[1], w[2], w[3], w[4]))
    return events
