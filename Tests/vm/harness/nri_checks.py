"""Issue 16 with the real runtime, in the systemd guest (Debian trixie): containerd 1.7 with NRI enabled, runc,
numaplace-nri registered with containerd and asking the guest's numaplaced (serving the guest's own sysfs),
and a CRI client (Tests/vm/guest/np-cri, python3-grpcio) that runs a host-network pod sandbox and containers
from a locally built busybox image, as kubelet would.

Each container is started (`sleep`) and read from inside (ExecSync `cat /proc/self/status`, and the cpuset
files of its own cgroup, which containerd gives it as the root of a cgroup namespace) and from outside (its
init process's group under /sys/fs/cgroup): the containers for the node-1 device (by its DRM node in the
spec, or by the annotation) get node 1's CPUs and memory; the plain one the whole machine; exclusive cores
are held while their containers run and come back when they are stopped and removed.
"""
import json
import time

from guest import wait_guest
from report import CheckFailed, expect
from sysfs import parse_cpulist

NAMES = ['systemd-nri-start', 'systemd-nri-device-node', 'systemd-nri-exclusive-annotation', 'systemd-nri-plain',
         'systemd-nri-release']
PLUGIN_UNIT = 'numaplace-nri.service'
CONTAINERD_SOCK = '/run/containerd/containerd.sock'
NRI_SOCK = '/var/run/nri/nri.sock'
GPU = '0000:81:00.0'
# bochs-display (1234:1111, class 0x038000) is a `display` by the default rules, and the plugin places only
# GPUs and accelerators: for this check the node-1 display is classified as a GPU, as an administrator would
# classify a GPU the built-in rules miss. secondary-vga (class 0x030000, the hotplug checks') stays a display.
DROPIN = '/etc/numaplaced/numaplaced.conf.d/60-nri-check.conf'
IMAGE_TAR = '/usr/local/share/np-nri/busybox-oci.tar'
CLIENT = '/usr/local/lib/np-nri/np-cri'


class State:
    expected = None    # {'node1_cpus', 'node1_mems', 'all_cpus', 'all_mems'} as cpulist strings
    steps = None       # the client's JSON lines
    scenario_s = None


def journal(s, unit, lines=60):
    return s.agent.run('journalctl -u %s -o cat --no-pager | tail -%d' % (unit, lines), 60)[1]


def start(s, st):
    """containerd started by its unit with the test bed's config (NRI enabled), the busybox image imported,
    numaplace-nri started by its unit and registered with containerd."""
    sysfs = {k: s.sh('cat %s' % p).strip() for k, p in (
        ('node1_cpus', '/sys/devices/system/node/node1/cpulist'), ('all_cpus', '/sys/devices/system/cpu/online'),
        ('all_mems', '/sys/devices/system/node/has_memory'))}
    sysfs['node1_mems'] = '1'
    st.expected = sysfs
    # numaplaced running (socket-activated by this call when no check before started it), with the display
    # classified as a GPU: the plugin asks it for each container with 1 s to answer.
    s.ctl.call('status', 120)
    s.sh('printf "[Devices]\\nMatch=class=0x038000 vendor=0x1234 device=0x1111 kind=gpu\\n" > %s && '
         'systemctl reload numaplaced.service' % DROPIN, 120)
    deadline = time.monotonic() + 60
    while True:
        kinds = {d.get('address'): d.get('kind') for d in s.ctl.call('devices').get('devices', [])}
        if kinds.get(GPU) == 'gpu':
            break
        expect(time.monotonic() < deadline, '%s is %s after the reload, not a gpu' % (GPU, kinds.get(GPU)))
        time.sleep(0.5)
    t = time.monotonic()
    s.sh('systemctl start containerd.service', 180)
    wait_guest(s.agent, '[ -S %s ] && [ -S %s ]' % (CONTAINERD_SOCK, NRI_SOCK), 120, "containerd's CRI and NRI sockets")
    containerd_s = time.monotonic() - t
    t = time.monotonic()
    s.sh('ctr -n k8s.io images import %s >/dev/null' % IMAGE_TAR, 180)
    import_s = time.monotonic() - t
    t = time.monotonic()
    s.sh('systemctl start %s' % PLUGIN_UNIT, 60)
    try:
        wait_guest(s.agent, 'journalctl -u %s -o cat --no-pager | grep -q "configured by"' % PLUGIN_UNIT, 90,
                   'the plugin configured by containerd')
    except CheckFailed as e:
        raise CheckFailed('%s; plugin journal: %s; containerd: %s' % (
            e, journal(s, PLUGIN_UNIT, 15), s.agent.run('journalctl -u containerd -o cat --no-pager | grep -i nri | tail -5')[1]))
    plugin_s = time.monotonic() - t
    configured = s.sh('journalctl -u %s -o cat --no-pager | grep -m1 "configured by"' % PLUGIN_UNIT).strip()
    registered = s.sh('journalctl -u containerd.service -o cat --no-pager | grep -m1 "registered as" || true').strip()
    expect('registered as' in registered, "containerd's journal does not say the plugin registered")
    versions = s.sh('containerd --version | cut -d" " -f3; runc --version | head -1 | cut -d" " -f3').split()
    return ('containerd %s (runc %s) up in %.1fs, image imported in %.1fs, plugin registered in %.1fs: "%s"; '
            'containerd: %s' % (versions[0], versions[1] if len(versions) > 1 else '?', containerd_s, import_s,
                                plugin_s, configured[:100], registered[registered.find('plugin'):][:100]))


def scenario(s, st):
    if st.steps is None:
        t = time.monotonic()
        rc, out = s.agent.run('python3 %s %s 2>/tmp/np-cri.err' % (CLIENT, CONTAINERD_SOCK), 600)
        st.scenario_s = time.monotonic() - t
        st.steps = []
        for line in out.splitlines():
            try:
                st.steps.append(json.loads(line))
            except ValueError:
                pass
        err = s.agent.run('tail -5 /tmp/np-cri.err')[1].strip()
        s.report.note('CRI client (rc %d, %.1fs):\n%s\n%s' % (rc, st.scenario_s, out, err))
        if rc != 0 and not st.steps:
            raise CheckFailed('the CRI client exited %d: %s' % (rc, err[-400:]))
    errors = [x for x in st.steps if x.get('error')]
    return errors


def started(s, st, name):
    scenario(s, st)
    c = next((x for x in st.steps if x.get('step') == 'start' and x.get('name') == name), None)
    errors = [x for x in st.steps if x.get('error')]
    expect(c is not None, 'container %s: no result (%s)' % (name, json.dumps(errors)[:400]))
    expect(not c.get('error'), 'container %s: %s' % (name, c.get('error')))
    expect(c.get('state') == 'CONTAINER_RUNNING', 'container %s is %s' % (name, c.get('state')))
    expect(c.get('inside_cgroup') == '0::/', 'container %s has no cgroup namespace of its own (/proc/self/cgroup: %r)'
           % (name, c.get('inside_cgroup')))
    return c


def same(a, b):
    try:
        return a is not None and b is not None and parse_cpulist(a) == parse_cpulist(b)
    except Exception:
        return False


def placed(c, cpus, mems):
    """Every view of the container says CPUs `cpus` and memory nodes `mems`."""
    views = {'/proc/self/status Cpus_allowed_list': c.get('status_cpus'), 'cgroup cpuset.cpus.effective (inside)':
             c.get('cg_cpus'), 'cgroup cpuset.cpus.effective (host)': c.get('host_cg_cpus')}
    for what, got in views.items():
        expect(same(got, cpus), 'container %s: %s is %s, expected %s' % (c['name'], what, got, cpus))
    views = {'/proc/self/status Mems_allowed_list': c.get('status_mems'), 'cgroup cpuset.mems.effective (inside)':
             c.get('cg_mems'), 'cgroup cpuset.mems.effective (host)': c.get('host_cg_mems')}
    for what, got in views.items():
        expect(same(got, mems), 'container %s: %s is %s, expected %s' % (c['name'], what, got, mems))


def describe(c):
    return '%s: Cpus_allowed_list %s, Mems_allowed_list %s, cpuset.cpus/mems.effective %s/%s (group %s), placement "%s"' % (
        c['name'], c.get('status_cpus'), c.get('status_mems'), c.get('cg_cpus'), c.get('cg_mems'), c.get('group'),
        c.get('placement'))


def device_node(s, st):
    """The container with the node-1 device's DRM node (/dev/dri/card0) in its spec gets node 1's CPUs and memory."""
    c = started(s, st, 'dev')
    e = st.expected
    placed(c, e['node1_cpus'], e['node1_mems'])
    expect(c.get('placement') and '0000:81:00.0' in c['placement'], 'dev: placement annotation %r' % c.get('placement'))
    return 'pod and containers in %.1fs; started in %.1fs; %s' % (st.scenario_s, c.get('seconds', 0), describe(c))


def exclusive(s, st):
    """By annotation (numaplaced.io/device = the node-1 device's address, numaplaced.io/exclusive-cores = 1),
    twice while the first runs: one whole core of node 1 each, not the same one, memory on node 1."""
    a, b = started(s, st, 'excl'), started(s, st, 'excl2')
    e = st.expected
    node1 = parse_cpulist(e['node1_cpus'])
    for c in (a, b):
        cpus = parse_cpulist(c.get('status_cpus') or '')
        expect(len(cpus) == 1 and set(cpus) <= set(node1), '%s got CPUs %s, expected one of node 1\'s %s'
               % (c['name'], c.get('status_cpus'), e['node1_cpus']))
        placed(c, c['status_cpus'], e['node1_mems'])
        expect('exclusive=1' in (c.get('placement') or '') and 'degraded' not in c['placement'],
               '%s: placement annotation %r' % (c['name'], c.get('placement')))
    expect(a['status_cpus'] != b['status_cpus'], 'both exclusive containers got CPU %s' % a['status_cpus'])
    return '%s; %s' % (describe(a), describe(b))


def plain(s, st):
    """A container without a device or annotation is left alone: every online CPU and memory node."""
    c = started(s, st, 'plain')
    e = st.expected
    placed(c, e['all_cpus'], e['all_mems'])
    expect(c.get('placement') is None and c.get('spec_cpus') is None,
           'plain: the plugin adjusted it: placement %r, spec cpus %r' % (c.get('placement'), c.get('spec_cpus')))
    return describe(c)


def release(s, st):
    """Stopped and removed, the two exclusive containers' cores come back: a new container asking for two
    exclusive cores gets both of node 1's, not degraded; the plugin logs the releases; the groups are gone."""
    scenario(s, st)
    removed = [x for x in st.steps if x.get('step') == 'remove']
    expect(len(removed) == 2, 'removals: %s' % json.dumps([x for x in st.steps if x.get('step') in ('remove', 'error')])[:400])
    for x in removed:
        expect(not x.get('group_left'), '%s: its cgroup is still there after removal' % x['name'])
    c = started(s, st, 'again')
    e = st.expected
    placed(c, e['node1_cpus'], e['node1_mems'])
    expect('exclusive=2' in (c.get('placement') or '') and 'degraded' not in c['placement'],
           'again: placement annotation %r (the cores were not released?)' % c.get('placement'))
    # the plugin's journal: "container ID stopped: released exclusive CPUs N" for each of the two
    log = s.sh('journalctl -u %s -o cat --no-pager | grep "released exclusive" || true' % PLUGIN_UNIT)
    releases = []
    for x in removed:
        held = next(y for y in st.steps if y.get('step') == 'start' and y.get('id') == x['id'])
        line = next((l for l in log.splitlines() if x['id'] in l), '')
        expect(line.endswith('released exclusive CPUs %s' % held.get('status_cpus')),
               'the plugin logged no release of %s\'s CPUs %s: %r' % (x['name'], held.get('status_cpus'), line))
        releases.append('CPU %s of %s' % (held.get('status_cpus'), x['name']))
    errors = [x for x in st.steps if x.get('error')]
    expect(not errors, 'client errors: %s' % json.dumps(errors)[:400])
    return 'stopped and removed in %s s, the plugin released %s, their groups are gone; then %s' % (
        '/'.join(str(x.get('seconds')) for x in removed), ' and '.join(releases), describe(c))


def run(s, r):
    st = State()
    try:
        if not r.run('systemd-nri-start', start, s, st):
            for n in NAMES[1:]:
                r.fail(n, 'not run: containerd or the plugin did not come up')
            return
        r.run('systemd-nri-device-node', device_node, s, st)
        r.run('systemd-nri-exclusive-annotation', exclusive, s, st)
        r.run('systemd-nri-plain', plain, s, st)
        r.run('systemd-nri-release', release, s, st)
    finally:
        try:
            r.note('journal of %s:\n%s' % (PLUGIN_UNIT, journal(s, PLUGIN_UNIT, 60)))
            r.note('containerd and the plugin (guest monotonic clock):\n' + s.agent.run(
                'journalctl -u containerd.service -u %s -o short-monotonic --no-pager | tail -150' % PLUGIN_UNIT)[1])
            s.agent.run('systemctl stop %s containerd.service' % PLUGIN_UNIT, 120)
            s.agent.run('rm -f %s && systemctl reload numaplaced.service' % DROPIN, 120)
        except Exception as e:
            r.note('no NRI journals: %s' % e)
