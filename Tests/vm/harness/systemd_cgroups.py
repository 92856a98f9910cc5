"""Issue 14 under systemd (the systemd guest, Debian trixie with systemd 257): the repository's unit
(Delegate=yes, DelegateSubgroup=daemon) gives the daemon the leaf `daemon` of its service group, and each
worker a group of its own beside it; a restart keeps the worker in its group and the new instance re-adopts
it by that group; an exited worker's group goes. And `systemd-analyze security` of the unit as loaded by
PID 1.

With systemd older than 254 (NUMAPLACE_VM_SUITE=bookworm) DelegateSubgroup= is ignored: the check then
asserts the documented fallback instead (no groups, and GetStatus says why).
"""
import json
import re
import time

from report import CheckFailed, expect
from sysfs import parse_cpulist

CGROOT = '/sys/fs/cgroup'
UNIT = 'numaplaced.service'


def systemd_version(s):
    out = s.sh('systemctl --version | head -1')
    m = re.match(r'systemd (\d+)', out.strip())
    expect(m, 'systemctl --version: %r' % out[:200])
    return int(m.group(1))


def own_group(s, pid):
    """The cgroup v2 path of a process, from /proc/<pid>/cgroup ("0::/path")."""
    text = s.sh('cat /proc/%s/cgroup' % pid)
    for line in text.splitlines():
        if line.startswith('0::'):
            return line[3:].strip()
    raise CheckFailed('/proc/%s/cgroup has no cgroup v2 line: %r' % (pid, text[:300]))


def service_group(s):
    cg = s.show(UNIT, 'ControlGroup').get('ControlGroup', '')
    expect(cg.startswith('/') and cg.endswith('/' + UNIT), 'ControlGroup of %s: %r' % (UNIT, cg))
    return cg


def cgls(s):
    return s.sh('systemd-cgls --no-pager -u %s' % UNIT)


def group_exists(s, path):
    rc, _ = s.agent.run('[ -d %s%s ]' % (CGROOT, path))
    return rc == 0


def daemon_in_leaf(s, cg):
    """The running instance is in <service group>/daemon and no process is in the service group itself."""
    main = s.show(UNIT, 'MainPID')['MainPID']
    expect(main not in ('', '0'), 'no MainPID')
    got = own_group(s, main)
    expect(got == cg + '/daemon', 'the daemon (MainPID %s) is in %s, expected %s/daemon' % (main, got, cg))
    inner = s.sh('cat %s%s/cgroup.procs' % (CGROOT, cg)).split()
    expect(not inner, 'processes in the service group itself (not a leaf): %s' % inner)
    return main


def worker_record(s, wid):
    w = s.ctl.call('worker %s' % wid).get('worker') or {}
    expect(w.get('id') == wid, 'GetWorker %s answered %s' % (wid, json.dumps(w)[:300]))
    return w


class State:
    """What the group check leaves for the restart check: the running worker."""
    worker = None
    service_cg = None


def worker_group(s, state):
    """The node-1 device's worker runs in w<id>-<program> under numaplaced.service, beside the daemon's leaf
    `daemon`; its cpuset.cpus.effective is node 1's CPUs; systemd-cgls shows it under the unit; a worker
    that exits has its group removed."""
    version = systemd_version(s)
    status = s.ctl.call('status')
    if version < 254:
        expect(status.get('workerCgroups') is None and 'DelegateSubgroup' in (status.get('workerCgroupsUnavailable') or ''),
               'systemd %d ignores DelegateSubgroup=, so workers must get no group and GetStatus must say why: %s'
               % (version, json.dumps(status)[:400]))
        reply = s.ctl.call('spawn --device %s -- /bin/true' % s.GPU_ADDR, 90).get('worker') or {}
        expect(reply.get('cgroup') is None, 'systemd %d: the worker got group %s' % (version, reply.get('cgroup')))
        return 'systemd %d: no worker groups, GetStatus says: %s' % (version, status['workerCgroupsUnavailable'][:120])

    cg = service_group(s)
    state.service_cg = cg
    expect(status.get('workerCgroups') == cg, 'GetStatus workerCgroups %r, expected %s (unavailable: %s)'
           % (status.get('workerCgroups'), cg, status.get('workerCgroupsUnavailable')))
    main = daemon_in_leaf(s, cg)

    reply = s.ctl.call('spawn --device %s --memory bind -- /bin/sleep 600' % s.GPU_ADDR, 90).get('worker') or {}
    state.worker = reply
    wid, pid, path = reply.get('id'), reply.get('pid'), reply.get('cgroup')
    expect(wid and pid, 'spawn reply: %s' % json.dumps(reply)[:300])
    name = '%s-sleep' % wid
    expect(path == '%s/%s' % (cg, name), 'worker %s has group %r, expected %s/%s' % (wid, path, cg, name))
    got = own_group(s, pid)
    expect(got == path, '/proc/%d/cgroup says %s, the reply %s' % (pid, got, path))
    eff = parse_cpulist(s.sh('cat %s%s/cpuset.cpus.effective' % (CGROOT, path)).strip())
    node1 = parse_cpulist(s.sh('cat /sys/devices/system/node/node1/cpulist').strip())
    expect(eff == node1 == {2, 3}, 'cpuset.cpus.effective of %s is %s, node 1 has CPUs %s' % (path, eff, node1))
    mems = s.sh('cat %s%s/cpuset.mems.effective' % (CGROOT, path)).strip()
    expect(parse_cpulist(mems) == {1}, 'cpuset.mems.effective %s, expected 1 (--memory bind)' % mems)
    tree = cgls(s)
    s.report.note('systemd-cgls -u %s:\n%s' % (UNIT, tree))
    expect(re.search(r'[├└]─%s\b' % re.escape(name), tree) and re.search(r'\b%d /bin/sleep 600' % pid, tree),
           'systemd-cgls -u %s does not show group %s with pid %d:\n%s' % (UNIT, name, pid, tree[:800]))
    expect(re.search(r'[├└]─daemon\b', tree) and re.search(r'\b%s \S*numaplaced' % main, tree),
           'systemd-cgls does not show the daemon (%s) in the leaf daemon:\n%s' % (main, tree[:800]))
    w = worker_record(s, wid)
    usage = w.get('usage') or {}
    expect(w.get('cgroup') == path and isinstance(usage.get('pids'), int) and usage['pids'] >= 1,
           'GetWorker %s: cgroup %s usage %s' % (wid, w.get('cgroup'), usage))

    # a worker that exits (here by itself, with --wait) leaves no group behind
    done = s.ctl.call('spawn --device %s --wait -- /bin/true' % s.GPU_ADDR, 90).get('worker') or {}
    gone = done.get('cgroup')
    expect(gone and gone.startswith(cg + '/w') and gone.endswith('-true'), 'short worker group %r' % gone)
    expect(done.get('state') == 'exited', 'short worker: %s' % json.dumps(done)[:300])
    for _ in range(40):
        if not group_exists(s, gone):
            break
        time.sleep(0.25)
    expect(not group_exists(s, gone), 'group %s of exited worker %s still exists' % (gone, done.get('id')))
    return 'systemd %d: daemon %s in %s/daemon, worker %s pid %d in %s, cpuset.cpus.effective %s, ' \
           'systemd-cgls shows it; exited worker %s: group removed' % (
               version, main, cg, wid, pid, path, ','.join(map(str, sorted(eff))), done.get('id'))


def restart_adopt(s, state):
    """`systemctl restart numaplaced` keeps the worker in its group; the new instance (in the leaf daemon)
    re-adopts it by that group (ListWorkers/GetWorker: adopted, same id and group, usage read from it);
    killed through the new instance, its group is removed and systemd-cgls no longer shows it."""
    w0 = state.worker
    expect(w0, 'not run: the group check left no worker')
    wid, pid, path, cg = w0['id'], w0['pid'], w0['cgroup'], state.service_cg
    before = s.show(UNIT, 'MainPID')['MainPID']
    s.sh('systemctl restart %s' % UNIT, 120)
    after = s.show(UNIT, 'MainPID', 'ActiveState', 'Result')
    expect(after.get('ActiveState') == 'active' and after.get('MainPID') not in ('0', before),
           'after restart: %s (MainPID before %s)' % (after, before))
    main = daemon_in_leaf(s, cg)
    expect(own_group(s, pid) == path, 'after the restart worker pid %d is in %s, not %s' % (pid, own_group(s, pid), path))
    listed = next((x for x in s.ctl.call('workers').get('workers', []) if x.get('pid') == pid), None)
    expect(listed is not None, 'ListWorkers of the new instance has no pid %d' % pid)
    w = worker_record(s, wid)
    for got, how in ((listed, 'ListWorkers'), (w, 'GetWorker')):
        expect(got.get('adopted') is True and got.get('state') == 'running' and got.get('id') == wid
               and got.get('cgroup') == path,
               '%s after restart: id %s adopted %s state %s cgroup %s (expected %s, True, running, %s)'
               % (how, got.get('id'), got.get('adopted'), got.get('state'), got.get('cgroup'), wid, path))
    usage = w.get('usage') or {}
    expect(isinstance(usage.get('pids'), int) and usage['pids'] >= 1 and isinstance(usage.get('memoryCurrent'), int),
           'GetWorker %s after restart has no usage from its group: %s' % (wid, usage))
    journal = s.sh('journalctl -u %s -o cat --no-pager | grep -F "worker %s (pid %d) re-adopted" | tail -1 || true'
                   % (UNIT, wid, pid)).strip()
    expect(journal, 'no "re-adopted" record for worker %s in the journal' % wid)

    s.ctl.call('kill %s' % wid)
    done = s.ctl.call('wait %s' % wid, 60).get('worker', {})
    expect(done.get('state') == 'exited', 'adopted worker after kill: %s' % done.get('state'))
    for _ in range(40):
        if not group_exists(s, path):
            break
        time.sleep(0.25)
    expect(not group_exists(s, path), 'group %s of the killed adopted worker still exists' % path)
    name = path.rsplit('/', 1)[1]
    tree = cgls(s)
    expect(name not in tree, 'systemd-cgls still shows %s after the worker exited:\n%s' % (name, tree[:600]))
    state.worker = None
    return 'restart: MainPID %s -> %s (in %s/daemon); worker %s pid %d stayed in %s, adopted with usage ' \
           '(pids %d, memory %d B); after kill the group is gone' % (
               before, main, cg, wid, pid, path, usage['pids'], usage['memoryCurrent'])


def analyze_security(s, state):
    """`systemd-analyze security numaplaced.service` against the unit PID 1 has loaded."""
    out = s.sh('systemd-analyze security --no-pager %s 2>&1' % UNIT, 120)
    s.report.note('systemd-analyze security %s:\n%s' % (UNIT, out))
    line = next((l.strip().lstrip('\u2192').strip() for l in out.splitlines()
                 if 'Overall exposure level for %s' % UNIT in l), None)
    expect(line, 'no "Overall exposure level" line: %r' % out[-400:])
    m = re.search(r':\s*(\d+(?:\.\d+)?)\s+(\w+)', line)
    expect(m, 'cannot read the score in %r' % line)
    score = float(m.group(1))
    # 9.6 is the unit with the lifecycle settings only (docs/systemd.md): the hardening must count.
    expect(score < 9.6, 'exposure %.1f is no better than the unhardened unit' % score)
    offline = s.sh('systemd-analyze security --offline=yes --no-pager /usr/lib/systemd/system/%s 2>&1 '
                   '| grep "Overall exposure" || true' % UNIT, 120).strip()
    return '%s (systemd %d%s)' % (line, systemd_version(s), '; --offline=yes: ' + offline.split(':', 1)[-1].strip()
                                  if offline else '')


def run(s, r, gpu):
    s.GPU_ADDR = gpu
    state = State()
    ok = r.run('systemd-cgroup-worker-group', worker_group, s, state)
    if state.worker:
        r.run('systemd-cgroup-restart-adopt', restart_adopt, s, state)
    elif ok:
        r.skip('systemd-cgroup-restart-adopt', 'systemd < 254: workers get no groups')
    else:
        r.fail('systemd-cgroup-restart-adopt', 'not run: the group check failed before its worker ran')
    if state.worker:
        s.ctl.try_call('kill %s' % state.worker['id'])
    r.run('systemd-analyze-security', analyze_security, s, state)
