"""Issue 14 in the busybox guest (cgroup2 mounted by its init, the daemon in the root group): each worker
is born into a group of its own under /numaplaced whose cpuset the kernel enforces."""
import json

from guest import wait_guest
from report import CheckFailed, expect
from sysfs import parse_cpulist


def _status_cpus(agent, pid):
    line = agent.check('grep Cpus_allowed_list /proc/%s/status' % pid)
    return parse_cpulist(line.split(':', 1)[1].strip())


def _sleeper(s, extra=''):
    reply = s.ctl.call('spawn --device %s %s -- /bin/sleep 120' % (s.GPU, extra), 90)
    w = reply.get('worker') or {}
    expect(w.get('cgroup'), 'the worker has no cgroup: %s' % json.dumps(w)[:400])
    return w


def worker_group(s):
    """The node-1 device's worker runs in its own group; cpuset.cpus.effective is node 1's CPUs;
    `taskset -pc 0-3` from outside leaves it there."""
    a = s.agent
    w = _sleeper(s)
    try:
        path = w['cgroup']
        expect(path.startswith('/numaplaced/w'), 'group %s is not under /numaplaced' % path)
        expect(path in a.check('cat /proc/%d/cgroup' % w['pid']), 'pid %d is not in %s' % (w['pid'], path))
        eff = parse_cpulist(a.check('cat /sys/fs/cgroup%s/cpuset.cpus.effective' % path).strip())
        expect(eff == {2, 3}, 'cpuset.cpus.effective %s, expected 2-3' % eff)
        a.run('taskset -pc 0-3 %d' % w['pid'])
        cpus = _status_cpus(a, w['pid'])
        expect(cpus <= {2, 3}, 'after taskset -pc 0-3 the worker may run on %s' % cpus)
        got = s.ctl.call('worker %s' % w['id']).get('worker', {})
        expect(isinstance(got.get('usage'), dict), 'GetWorker has no usage: %s' % json.dumps(got)[:300])
        return 'group %s, effective CPUs 2-3, taskset 0-3 left it on %s' % (path, sorted(cpus))
    finally:
        s.ctl.try_call('kill %s' % w['id'])


def exclusive(s):
    """Two exclusive-core workers never share a CPU, even when one asks for the other's."""
    a = s.agent
    w1 = _sleeper(s, '--memory bind --exclusive-cores 1')
    w2 = _sleeper(s, '--memory bind --exclusive-cores 1')
    try:
        c1, c2 = _status_cpus(a, w1['pid']), _status_cpus(a, w2['pid'])
        a.run('taskset -pc %s %d' % (','.join(map(str, sorted(c1))), w2['pid']))
        after = _status_cpus(a, w2['pid'])
        expect(not (after & c1), 'worker 2 reached worker 1\'s exclusive CPU: %s vs %s' % (after, c1))
        return 'CPUs %s and %s; after taskset worker 2 is on %s' % (sorted(c1), sorted(c2), sorted(after))
    finally:
        for w in (w1, w2):
            s.ctl.try_call('kill %s' % w['id'])


def oom(s):
    """A worker over its memory.max is OOM-killed in its group; Wait says so; the group is removed."""
    # `spawn --wait` exits as the worker did: 128 + SIGKILL here.
    rc, out, err = s.ctl.try_call('spawn --device %s --memory-max 16777216 --wait -- '
                                  'dd if=/dev/zero of=/dev/null bs=64M count=1' % s.GPU, 120)
    expect(rc == 137, 'numaplacectl exited %d, expected 137 (killed by SIGKILL): %s %s' % (rc, out[:300], err[:300]))
    try:
        w = json.loads(out).get('worker') or {}
    except ValueError:
        raise CheckFailed('numaplacectl printed no JSON: %r' % out[:300])
    ex = w.get('exit') or {}
    expect(ex.get('how') == 'killed' and ex.get('signal') == 9 and ex.get('oomKilled') is True,
           'exit %s, expected killed by 9 with oomKilled' % ex)
    rc, _ = s.agent.run('[ -d /sys/fs/cgroup%s ]' % w.get('cgroup'))
    expect(rc != 0, 'group %s still exists after the exit' % w.get('cgroup'))
    return 'killed by SIGKILL, oomKilled, group removed'


def spawn_cost(s):
    """The cost of a worker's group: the same Spawn + Wait of /bin/true on node 1, interleaved, against this
    daemon (a group per worker) and a second one started with --no-worker-cgroups, beside a bare posix_spawn.
    Numbers only (TCG's timings are not a machine's; the ratio between the two daemons is the figure);
    what is asserted is that each daemon did what it says."""
    import busybox_session
    a = s.agent
    other = '/run/numaplaced/nogroups.sock'
    a.check('mkdir -p /run/numaplaced/nogroups; '
            'setsid numactl --cpunodebind=0 --membind=0 numaplaced --no-worker-cgroups --socket %s '
            '--config /etc/numaplaced/vm.conf --state-dir /run/numaplaced/nogroups --event-source none '
            '--log-level warning >/tmp/nogroups.log 2>&1 </dev/null &' % other)
    try:
        wait_guest(a, '[ -S %s ]' % other, 60, 'the second daemon\'s socket')
        status = json.loads(a.check('vmtool varlink %s \'{"method":"io.numaplaced.Manager.GetStatus"}\'' % other))
        why = status.get('parameters', {}).get('workerCgroupsUnavailable') or ''
        expect('--no-worker-cgroups' in why, 'the second daemon does not say its workers get no group: %r' % why)
        out = a.check('vmtool spawnbench 60 1 %s %s' % (busybox_session.SOCKET, other), 600)
        rows = {line.split()[0]: [int(x) for x in line.split()[1:]] for line in out.strip().splitlines()}
        bare = rows['bare'][1]
        with_group, without = rows[busybox_session.SOCKET], rows[other]
        return ('median of 60, µs under TCG: Spawn reply %d with a group, %d without (%.2f×); Spawn + Wait %d and %d '
                '(%.2f×); bare posix_spawn + waitpid %d (reply with a group %.2f× bare, without %.2f×)'
                % (with_group[0], without[0], with_group[0] / without[0], with_group[1], without[1],
                   with_group[1] / without[1], bare, with_group[0] / bare, without[0] / bare))
    finally:
        a.run('for p in $(pidof numaplaced); do grep -q nogroups /proc/$p/cmdline && kill $p; done')


def run(s, r):
    import busybox_session
    s.GPU = busybox_session.GPU
    r.run('cgroup-worker-group', worker_group, s)
    r.run('cgroup-exclusive-cores', exclusive, s)
    r.run('cgroup-oom-kill', oom, s)
    r.run('cgroup-spawn-cost', spawn_cost, s)
