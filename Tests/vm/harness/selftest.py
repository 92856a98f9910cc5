"""The harness's own assertions, fed known-bad input on the host: each must fail, so that a PASS from the
test bed means something. Run by testbed.py before any boot (check `harness-selftest`)."""
import copy

from guest import check_placement
from report import CheckFailed
from sysfs import Sysfs, compare_devices

# np-sysfs output of the test bed's guest (trimmed to the interesting functions)
SAMPLE = """cpus online=0-3 possible=0-3
node 0 cpulist=0-1 memtotal_kb=469116 distance=10 21 41
node 1 cpulist=2-3 memtotal_kb=515244 distance=21 10 31
node 2 cpulist= memtotal_kb=257692 distance=41 31 10
pci 0000:00:00.0 class=0x060000 vendor=0x8086 device=0x29c0 numa_node=-1 local_cpulist=0-3
pci 0000:01:00.0 class=0x00ff00 vendor=0x1234 device=0x11e8 numa_node=-1 local_cpulist=0-3
pci 0000:80:00.0 class=0x060400 vendor=0x1b36 device=0x000c numa_node=1 local_cpulist=2-3
pci 0000:81:00.0 class=0x038000 vendor=0x1234 device=0x1111 numa_node=1 local_cpulist=2-3
pci 0000:a1:00.0 class=0x00ff00 vendor=0x1234 device=0x11e8 numa_node=2 local_cpulist=
pci 0000:05:00.0 class=0x120000 vendor=0x1da3 device=0x1020 numa_node=-1 local_cpulist=2-3
"""

GOOD_PROBE = {'pid': 9, 'cpus': '2-3', 'policy': 'bind', 'policyNodes': '1', 'pageNode': 1, 'cpu': 2,
              'env': {}, 'fds': [0, 1, 2]}
GOOD_WORKER = {'applied': {'cpus': '2-3', 'memoryPolicy': 'bind', 'memoryNodes': [1]}}


def must_fail(what, fn):
    try:
        fn()
    except CheckFailed:
        return
    raise AssertionError('the harness accepted %s' % what)


def run():
    s = Sysfs(SAMPLE)
    exp = s.expected_devices()
    assert sorted(exp) == ['0000:01:00.0', '0000:05:00.0', '0000:81:00.0', '0000:a1:00.0'], sorted(exp)
    assert exp['0000:a1:00.0']['placementNodes'] == [1] and exp['0000:a1:00.0']['cpus'] == '2-3'
    assert exp['0000:01:00.0']['locality'] == 'unknown'
    assert exp['0000:05:00.0']['locality'] == 'cpus' and exp['0000:05:00.0']['cpus'] == '2-3'
    reported = [dict(v) for v in exp.values()]
    assert compare_devices(exp, reported) == []
    bad = copy.deepcopy(reported)
    bad[0]['numaNode'] = 0
    assert compare_devices(exp, bad), 'a wrong numaNode passed'
    assert compare_devices(exp, reported[1:]), 'a missing device passed'
    assert compare_devices(exp, reported + [dict(reported[0], address='0000:82:00.0')]), 'an extra device passed'
    assert compare_devices(exp, reported + [reported[0]]), 'a duplicate passed'
    bad = copy.deepcopy(reported)
    next(d for d in bad if d['address'] == '0000:a1:00.0')['cpus'] = '0-3'
    assert compare_devices(exp, bad), 'the CPU-less node device on every CPU passed'

    check_placement(GOOD_PROBE, GOOD_WORKER, '2-3', 'bind', [1])
    for what, probe, worker in (
            ('a worker that kept the daemon\'s node-0 pinning', dict(GOOD_PROBE, cpus='0-1', cpu=0), GOOD_WORKER),
            ('a worker on every CPU', dict(GOOD_PROBE, cpus='0-3'), GOOD_WORKER),
            ('a worker with the inherited node-0 policy', dict(GOOD_PROBE, policyNodes='0'), GOOD_WORKER),
            ('a page on node 0', dict(GOOD_PROBE, pageNode=0), GOOD_WORKER),
            ('the default policy', dict(GOOD_PROBE, policy='default', policyNodes=''), GOOD_WORKER),
            ('a leaked descriptor', dict(GOOD_PROBE, fds=[0, 1, 2, 5]), GOOD_WORKER),
            ('no applied placement', GOOD_PROBE, {'applied': None}),
            ('an applied placement that differs', GOOD_PROBE,
             {'applied': {'cpus': '2-3', 'memoryPolicy': 'preferred', 'memoryNodes': [1]}})):
        must_fail(what, lambda: check_placement(probe, worker, '2-3', 'bind', [1]))
    return 'every known-bad input is refused'
