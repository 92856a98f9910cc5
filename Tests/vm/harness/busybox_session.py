"""One boot of the busybox guest: the test bed's own checks, then checks 1-4 of issue 6 against numaplaced.

The daemon runs with --event-source kernel (no udevd in this guest) and is started pinned to node 0 with
MPOL_BIND node 0 (numactl --cpunodebind=0 --membind=0): everything it spawns for node-1 devices must undo
that (DESIGN.md, the spawn sequence).
"""
import json
import statistics
import time

from guest import (PROBE, Ctl, check_placement, count_lines, monitor_events, read_probe, sysfs, uevents,
                   wait_guest)
from machine import HOTPLUG_PORTS, Machine
from report import CheckFailed, expect
from sysfs import compare_devices, parse_cpulist

SOCKET = '/run/numaplaced/io.numaplaced'
GPU = '0000:81:00.0'        # bochs-display behind the node-1 expander
CPULESS = '0000:a1:00.0'    # edu behind the node-2 (CPU-less) expander
UNKNOWN = '0000:01:00.0'    # edu on pcie.0: numa_node -1, local_cpulist = every CPU
MONITOR_LOG = '/tmp/monitor.log'


class BusyboxSession:
    def __init__(self, report, work, kernel, with_daemon):
        self.report = report
        self.with_daemon = with_daemon
        self.vm = Machine('busybox', kernel, work + '/initrd-busybox.cpio.gz', work + '/logs')
        self.agent = None
        self.ctl = None
        self.hotplug_serial = 0

    # --- the test bed itself -------------------------------------------------------------------------------

    def boot(self):
        secs = self.vm.start(ready_timeout=300)
        self.agent = self.vm.agent
        self.ctl = Ctl(self.agent, SOCKET)
        up = self.agent.check('cut -d" " -f1 /proc/uptime').strip()
        return 'agent ready %.1fs after QEMU start, guest uptime %ss' % (secs, up)

    def testbed_topology(self):
        s = sysfs(self.agent)
        expect(s.node_ids() == [0, 1, 2], 'guest nodes %s, expected [0, 1, 2]' % s.node_ids())
        expect(s.nodes[0]['cpus'] == {0, 1} and s.nodes[1]['cpus'] == {2, 3} and s.nodes[2]['cpus'] == set(),
               'node CPUs %s' % {n: sorted(v['cpus']) for n, v in s.nodes.items()})
        expect([s.nodes[n]['distances'] for n in (0, 1, 2)] == [[10, 21, 41], [21, 10, 31], [41, 31, 10]],
               'distances %s' % [s.nodes[n]['distances'] for n in (0, 1, 2)])
        expect(s.nodes[2]['memory_bytes'] > 128 << 20, 'node 2 has %d bytes of memory' % s.nodes[2]['memory_bytes'])
        want = {GPU: (1, '2-3', '0x038000'), CPULESS: (2, '', '0x00ff00'), UNKNOWN: (-1, '0-3', '0x00ff00')}
        for addr, (nn, cl, cls) in want.items():
            d = s.pci.get(addr)
            expect(d is not None, '%s missing in guest sysfs' % addr)
            expect((d['numa_node'], d['local_cpulist'], d['class']) == (nn, cl, cls),
                   '%s: numa_node=%s local_cpulist=%r class=%s, expected %s %r %s'
                   % (addr, d['numa_node'], d['local_cpulist'], d['class'], nn, cl, cls))
        self.report.note('expected device table from sysfs: %s' % json.dumps(s.expected_devices(), indent=1))
        return '3 nodes (CPUs 0-1, 2-3, none), %d PCI functions' % len(s.pci)

    def testbed_numactl_probe(self):
        """The guest really places: the probe under numactl lands where numactl says, on each node."""
        seen = []
        for cpunode, memnode, cpus in ((1, 1, '2-3'), (0, 0, '0-1'), (1, 2, '2-3')):
            out = self.agent.check('numactl --cpunodebind=%d --membind=%d %s' % (cpunode, memnode, PROBE))
            p = json.loads(out)
            expect(parse_cpulist(p['cpus']) == parse_cpulist(cpus) and p['policy'] == 'bind'
                   and p['policyNodes'] == str(memnode) and p['pageNode'] == memnode,
                   'numactl --cpunodebind=%d --membind=%d: probe says %s' % (cpunode, memnode, out.strip()))
            seen.append('cpus %s page on node %d' % (p['cpus'], p['pageNode']))
        return '; '.join(seen)

    def testbed_hotplug(self):
        """QMP hotplug under the node-1 expander, seen by the guest kernel, with timings."""
        t = time.monotonic()
        self.vm.qmp.device_add('edu', 'tb-edu', 'rp12')
        wait_guest(self.agent, '[ -e /sys/bus/pci/devices/0000:83:00.0/numa_node ]', 30, 'hot-added edu in sysfs')
        add = time.monotonic() - t
        nn = self.agent.read('/sys/bus/pci/devices/0000:83:00.0/numa_node').strip()
        expect(nn == '1', 'hot-added device on node %s, expected 1' % nn)
        t = time.monotonic()
        self.unplug('tb-edu', 'rp12')
        remove = time.monotonic() - t
        wait_guest(self.agent, '[ ! -e /sys/bus/pci/devices/0000:83:00.0 ]', 30, 'removed edu gone from sysfs')
        ev = uevents(self.agent)
        adds = [e for e in ev if e[1] == 'add' and e[4] == '0000:83:00.0']
        removes = [e for e in ev if e[1] == 'remove' and e[4] == '0000:83:00.0']
        expect(len(adds) == 1 and len(removes) == 1, 'kernel uevents: %d add, %d remove' % (len(adds), len(removes)))
        return 'device_add visible in %.2fs, device_del + slot power-off done in %.2fs' % (add, remove)

    def unplug(self, dev_id, bus, timeout=30):
        """device_del, then the guest powers the slot off: pciehp then skips the 5 s attention-button wait."""
        self.vm.qmp.device_del(dev_id)
        self.agent.run('echo 0 > /sys/bus/pci/slots/%s/power' % HOTPLUG_PORTS[bus][0])
        self.vm.qmp.wait_event('DEVICE_DELETED', timeout, device=dev_id)

    # --- numaplaced ---------------------------------------------------------------------------------------

    def start_daemon(self):
        a = self.agent
        a.check('mkdir -p /run/numaplaced/state; '
                'setsid numactl --cpunodebind=0 --membind=0 numaplaced --socket %s --config /etc/numaplaced/vm.conf '
                '--state-dir /run/numaplaced/state --event-source kernel >/tmp/numaplaced.log 2>&1 </dev/null &'
                % SOCKET)
        # wait for the socket, or for the daemon to exit (the log says why)
        a.run('sleep 0.5')
        try:
            wait_guest(a, '[ -S %s ] || ! pidof numaplaced >/dev/null' % SOCKET, 60, 'daemon socket')
        except CheckFailed:
            raise CheckFailed('no socket after 60 s; daemon log: %s' % a.run('tail -c 1500 /tmp/numaplaced.log')[1])
        if a.run('[ -S %s ]' % SOCKET)[0] != 0:
            raise CheckFailed('numaplaced exited without a socket; log: %s' % a.run('tail -c 1500 /tmp/numaplaced.log')[1])
        status = self.ctl.call('status')
        pid = a.check('pidof numaplaced').split()
        expect(len(pid) == 1, 'pidof numaplaced: %s' % pid)
        self.daemon_pid = pid[0]
        own = a.check('grep -E "Cpus_allowed_list|Mems_allowed_list" /proc/%s/status' % self.daemon_pid)
        expect('Cpus_allowed_list:\t0-1' in own, 'the daemon is not pinned to node 0 as the test needs: %s' % own)
        # and its memory policy is MPOL_BIND node 0 (numa_maps shows the policy of each mapping)
        rc, _ = a.run('grep -q " bind:0 " /proc/%s/numa_maps' % self.daemon_pid)
        expect(rc == 0, 'the daemon\'s mappings show no bind:0 policy; the seed scenario needs it')
        # the Monitor stream, timestamped on arrival, for checks 3 and the latency numbers
        a.check('setsid sh -c "%s | vmtool stamp > %s 2>&1" </dev/null >/dev/null 2>&1 &'
                % (self.ctl.command('monitor'), MONITOR_LOG))
        wait_guest(a, 'grep -q "ready" %s' % MONITOR_LOG, 30, 'the Monitor stream\'s ready event')
        return 'pinned to CPUs 0-1 with MPOL_BIND node 0, eventSource %s' % status.get('eventSource')

    def topology(self):
        """Check 1: GetTopology equals sysfs (three nodes, one without CPUs), devices included."""
        s = sysfs(self.agent)
        topo = self.ctl.call('topology')
        nodes = topo.get('nodes', [])
        ids = [n.get('id') for n in nodes]
        expect(ids == s.node_ids(), 'daemon nodes %s, sysfs %s' % (ids, s.node_ids()))
        for n in nodes:
            want = s.nodes[n['id']]
            expect(parse_cpulist(n.get('cpus', '')) == want['cpus'],
                   'node %d cpus %r, sysfs %s' % (n['id'], n.get('cpus'), sorted(want['cpus'])))
            expect(n.get('memoryBytes') == want['memory_bytes'],
                   'node %d memoryBytes %s, sysfs MemTotal %d' % (n['id'], n.get('memoryBytes'), want['memory_bytes']))
            expect(n.get('distances') == want['distances'],
                   'node %d distances %s, sysfs %s' % (n['id'], n.get('distances'), want['distances']))
        expect(parse_cpulist(topo.get('onlineCPUs', '')) == parse_cpulist(s.online),
               'onlineCPUs %r, sysfs %r' % (topo.get('onlineCPUs'), s.online))
        expect(parse_cpulist(topo.get('possibleCPUs', '')) == parse_cpulist(s.possible),
               'possibleCPUs %r, sysfs %r' % (topo.get('possibleCPUs'), s.possible))
        # the saved original is the cgroup's set, not the numactl pinning the daemon was started with
        expect(parse_cpulist(topo.get('allowedCPUs', '')) == {0, 1, 2, 3},
               'allowedCPUs %r: should be the cgroup\'s 0-3, not the daemon\'s own pinning' % topo.get('allowedCPUs'))
        problems = compare_devices(s.expected_devices(), topo.get('devices', []))
        expect(not problems, '; '.join(problems))
        listed = self.ctl.call('devices').get('devices', [])
        problems = compare_devices(s.expected_devices(), listed)
        expect(not problems, 'ListDevices: ' + '; '.join(problems))
        # --node N: devices on node N and devices whose workers use node N (the node-2 device's CPUs are node 1's)
        by_node = sorted(d.get('address') for d in self.ctl.call('devices --node 1').get('devices', []))
        expect(by_node == [GPU, CPULESS], 'devices --node 1: %s, expected %s' % (by_node, [GPU, CPULESS]))
        # QEMU's VGA (bochs, vendor 0x1234) is a hypervisor's display adapter: listed, never a GPU
        by_kind = sorted(d.get('address') for d in self.ctl.call('devices --kind display').get('devices', []))
        expect(by_kind == [GPU], 'devices --kind display: %s, expected %s' % (by_kind, [GPU]))
        gpus = self.ctl.call('devices --kind gpu').get('devices', [])
        expect(gpus == [], 'devices --kind gpu: %s, expected none (QEMU has no GPU)' % [d.get('address') for d in gpus])
        return '%d nodes, %d devices equal to sysfs' % (len(nodes), len(listed))

    def spawn_probe(self, target, memory, tag, extra='', wait=True, probe_args=''):
        out = '/tmp/probe-%s.json' % tag
        reply = self.ctl.call('spawn %s --memory %s %s --stdout %s %s -- %s %s'
                              % (target, memory, extra, out, '--wait' if wait else '', PROBE, probe_args), 90)
        worker = reply.get('worker')
        expect(isinstance(worker, dict), 'spawn reply has no worker: %s' % json.dumps(reply)[:300])
        return worker, read_probe(self.agent, out)

    def seed(self, memory, policy):
        """Check 2: the daemon is pinned to node 0 with MPOL_BIND node 0; the worker for the node-1 device
        must run on CPUs 2-3 with its memory policy on node 1, and its page must land on node 1."""
        # the probe stays 2 s after printing so that the daemon's read-back of numa_maps finds it alive
        worker, probe = self.spawn_probe('--device %s' % GPU, memory, memory, probe_args='sleep 2')
        check_placement(probe, worker, '2-3', policy, [1])
        env = probe.get('env', {})
        expect(env.get('NUMAPLACE_DEVICE') == GPU and env.get('NUMAPLACE_NODE') == '1'
               and parse_cpulist(env.get('NUMAPLACE_CPUS', '')) == {2, 3}, 'worker environment %s' % env)
        expect(worker.get('state') == 'exited' and (worker.get('exit') or {}).get('how') == 'exited'
               and worker['exit'].get('code') == 0, 'after --wait: state %s exit %s' % (worker.get('state'), worker.get('exit')))
        return 'probe on CPU %d, policy %s node %s, page on node %d' % (
            probe['cpu'], probe['policy'], probe['policyNodes'], probe['pageNode'])

    def seed_exclusive(self):
        """Check 2, exclusive cores: two workers with one exclusive core each for the node-1 device get
        different single CPUs of node 1; a third cannot (strict admission), because both are taken."""
        w1, p1 = self.spawn_probe('--device %s' % GPU, 'bind', 'excl1', '--exclusive-cores 1', False, 'sleep 120')
        w2, p2 = self.spawn_probe('--device %s' % GPU, 'bind', 'excl2', '--exclusive-cores 1', False, 'sleep 120')
        try:
            c1, c2 = parse_cpulist(p1['cpus']), parse_cpulist(p2['cpus'])
            expect(len(c1) == 1 and len(c2) == 1 and c1 | c2 == {2, 3},
                   'exclusive workers run on CPUs %s and %s, expected 2 and 3 one each' % (p1['cpus'], p2['cpus']))
            for w, p in ((w1, p1), (w2, p2)):
                check_placement(p, w, p['cpus'], 'bind', [1])
                expect(parse_cpulist(','.join(w.get('exclusiveCores') or [])) == parse_cpulist(p['cpus']),
                       'worker %s exclusiveCores %s, probe CPUs %s' % (w.get('id'), w.get('exclusiveCores'), p['cpus']))
            rc, out, err = self.ctl.try_call('spawn --device %s --exclusive-cores 1 --admission strict -- %s'
                                             % (GPU, PROBE))
            expect(rc != 0, 'a third exclusive worker was admitted while both node-1 cores are taken: %s' % out[:300])
            expect('PlacementImpossible' in out + err,
                   'the third exclusive worker failed for another reason than placement: %s %s' % (out[:200], err[:200]))
        finally:
            for w in (w1, w2):
                self.ctl.try_call('kill %s' % w.get('id'))
        for w in (w1, w2):
            done = self.ctl.call('wait %s' % w['id'], 60).get('worker', {})
            ex = done.get('exit') or {}
            expect(done.get('state') == 'exited' and ex.get('how') == 'killed' and ex.get('signal') == 15,
                   'killed worker %s: state %s exit %s' % (w['id'], done.get('state'), ex))
        return 'CPUs %s and %s, third refused' % (p1['cpus'], p2['cpus'])

    def cpuless(self):
        """Check 4: the device on the CPU-less node 2 resolves to the nearest CPU-bearing node (1, distance 31
        against 41) and a worker for it lands there."""
        devs = self.ctl.call('devices --node 2').get('devices', [])
        d = next((x for x in devs if x.get('address') == CPULESS), None)
        expect(d is not None, 'devices --node 2 does not list %s: %s' % (CPULESS, [x.get('address') for x in devs]))
        expect(d.get('numaNode') == 2 and d.get('locality') == 'node' and d.get('placementNodes') == [1]
               and parse_cpulist(d.get('cpus', '')) == {2, 3},
               'device on node 2: numaNode %s locality %s placementNodes %s cpus %r; expected 2 node [1] 2-3'
               % (d.get('numaNode'), d.get('locality'), d.get('placementNodes'), d.get('cpus')))
        worker, probe = self.spawn_probe('--device %s' % CPULESS, 'bind', 'cpuless', probe_args='sleep 2')
        check_placement(probe, worker, '2-3', 'bind', [1])
        unknown = self.ctl.call('devices --kind accelerator').get('devices', [])
        u = next((x for x in unknown if x.get('address') == UNKNOWN), None)
        expect(u is not None and u.get('locality') == 'unknown' and u.get('numaNode') is None,
               'the pcie.0 edu (numa_node -1, local_cpulist all CPUs) should be unknown: %s' % u)
        return 'placementNodes [1], probe on CPUs %s, page on node %d' % (probe['cpus'], probe['pageNode'])

    def several_devices(self):
        """Issue 15: a worker for two devices. The display on node 1 and an edu hot-added on node 0: strict
        admission refuses them together, best-effort spans both nodes and says so; the display alone,
        addressed by its /dev/dri node (the guest loads bochs, its DRM driver), lands on node 1."""
        acc = HOTPLUG_PORTS['rp20'][1]
        x = self.plug('edu', 'rp20')
        try:
            wait_guest(self.agent, 'grep -F deviceAdded %s | grep -qF %s' % (MONITOR_LOG, acc), 30, 'deviceAdded %s' % acc)
            rc, out, err = self.ctl.try_call('spawn --devices %s,%s --admission strict -- %s' % (GPU, acc, PROBE))
            expect(rc != 0 and 'PlacementImpossible' in out + err,
                   'devices on nodes 1 and 0 under strict admission: rc %d %s %s' % (rc, out[:200], err[:200]))
            worker, probe = self.spawn_probe('--devices %s,%s --admission best-effort' % (GPU, acc), 'bind', 'two-devices')
            expect(parse_cpulist(probe['cpus']) == {0, 1, 2, 3}, 'two-node worker on CPUs %s, expected 0-3' % probe['cpus'])
            expect(any('spans' in d for d in worker.get('degraded', [])), 'the reply does not say the worker spans: %s'
                   % worker.get('degraded'))
        finally:
            self.vm.qmp.device_del(x)
            self.agent.run('echo 0 > /sys/bus/pci/slots/%s/power' % HOTPLUG_PORTS['rp20'][0])
            self.vm.qmp.wait_event('DEVICE_DELETED', 30, device=x)
        display = self.ctl.call('device %s' % GPU).get('device', {})
        nodes = [n for n in display.get('deviceNodes') or [] if n.startswith('/dev/dri/')]
        expect(nodes, 'the display has no /dev/dri node (the guest loads bochs): %s' % display)
        # the probe stays 2 s so that the daemon's read-back of numa_maps finds it alive
        w, p = self.spawn_probe('--device %s' % nodes[0], 'bind', 'by-name', probe_args='sleep 2')
        check_placement(p, w, '2-3', 'bind', [1])
        return 'spanned CPUs %s; %s selected the display and landed on CPUs %s' % (probe['cpus'], nodes[0], p['cpus'])

    # --- check 3: hotplug ------------------------------------------------------------------------------------

    def plug(self, driver, bus):
        self.hotplug_serial += 1
        dev_id = 'hp%d' % self.hotplug_serial
        self.vm.qmp.device_add(driver, dev_id, bus)
        return dev_id

    def hotplug_add(self):
        """A display-class device added under the node-1 expander: a deviceAdded Monitor event, then the
        device in ListDevices with node 1, CPUs 2-3, kind display (QEMU's VGA is no GPU)."""
        addr = HOTPLUG_PORTS['rp11'][1]
        t = time.monotonic()
        self.hp_gpu = self.plug('secondary-vga', 'rp11')
        wait_guest(self.agent, '[ -e /sys/bus/pci/devices/%s ]' % addr, 30, 'secondary-vga in guest sysfs')
        sysfs_s = time.monotonic() - t
        wait_guest(self.agent, 'grep -F deviceAdded %s | grep -qF %s' % (MONITOR_LOG, addr), 30,
                   'deviceAdded %s on the Monitor stream' % addr)
        event_s = time.monotonic() - t
        d = self.ctl.call('devices --node 1').get('devices', [])
        got = next((x for x in d if x.get('address') == addr), None)
        expect(got is not None, '%s not in devices --node 1: %s' % (addr, [x.get('address') for x in d]))
        expect(got.get('numaNode') == 1 and got.get('kind') == 'display' and got.get('class') == '0x038000'
               and parse_cpulist(got.get('cpus', '')) == {2, 3}, 'hot-added device reported as %s' % json.dumps(got))
        return 'in sysfs after %.2fs, Monitor event after %.2fs' % (sysfs_s, event_s)

    def hotplug_remove(self):
        addr = HOTPLUG_PORTS['rp11'][1]
        t = time.monotonic()
        self.unplug(self.hp_gpu, 'rp11')
        wait_guest(self.agent, 'grep -F deviceRemoved %s | grep -qF %s' % (MONITOR_LOG, addr), 30,
                   'deviceRemoved %s on the Monitor stream' % addr)
        event_s = time.monotonic() - t
        d = self.ctl.call('devices').get('devices', [])
        expect(addr not in [x.get('address') for x in d], '%s still listed after removal' % addr)
        return 'device_del to deviceRemoved %.2fs' % event_s

    def hotplug_cycles(self, cycles=20):
        """20 cycles: a gpu on node 1 and an accelerator on node 0 added together, then removed together.
        Each add and remove must produce exactly one Monitor event; afterwards the table equals sysfs.
        Latency: the guest's kernel uevent (vmtool uevents) to the Monitor event, both on the guest clock."""
        gpu, acc = HOTPLUG_PORTS['rp11'][1], HOTPLUG_PORTS['rp20'][1]
        base = {a: (count_lines(self.agent, MONITOR_LOG, 'deviceAdded', a),
                    count_lines(self.agent, MONITOR_LOG, 'deviceRemoved', a)) for a in (gpu, acc)}
        t0 = time.monotonic()
        for i in range(1, cycles + 1):
            g = self.plug('secondary-vga', 'rp11')
            x = self.plug('edu', 'rp20')
            for a in (gpu, acc):
                wait_guest(self.agent, '[ $(grep -F deviceAdded %s | grep -cF %s) -ge %d ]' % (MONITOR_LOG, a, base[a][0] + i),
                           30, 'cycle %d: deviceAdded %s' % (i, a))
            self.vm.qmp.device_del(g)
            self.vm.qmp.device_del(x)
            self.agent.run('echo 0 > /sys/bus/pci/slots/11/power; echo 0 > /sys/bus/pci/slots/20/power')
            self.vm.qmp.wait_event('DEVICE_DELETED', 30, device=g)
            self.vm.qmp.wait_event('DEVICE_DELETED', 30, device=x)
            for a in (gpu, acc):
                wait_guest(self.agent, '[ $(grep -F deviceRemoved %s | grep -cF %s) -ge %d ]' % (MONITOR_LOG, a, base[a][1] + i),
                           30, 'cycle %d: deviceRemoved %s' % (i, a))
        cycle_s = (time.monotonic() - t0) / cycles
        time.sleep(1)   # late duplicates would show up now
        for a in (gpu, acc):
            added = count_lines(self.agent, MONITOR_LOG, 'deviceAdded', a) - base[a][0]
            removed = count_lines(self.agent, MONITOR_LOG, 'deviceRemoved', a) - base[a][1]
            expect(added == cycles and removed == cycles,
                   '%s: %d deviceAdded and %d deviceRemoved events for %d cycles' % (a, added, removed, cycles))
        s = sysfs(self.agent)
        problems = compare_devices(s.expected_devices(), self.ctl.call('devices').get('devices', []))
        expect(not problems, 'after %d cycles: %s' % (cycles, '; '.join(problems)))
        lat = self.latencies([gpu, acc])
        self.report.note('hotplug latencies (ms): %s' % json.dumps(lat))
        return '%.2fs per cycle; uevent->Monitor event add: median %s ms (max %s), remove: median %s ms (max %s); ' \
               'daemon-side (event timestamp) add median %s ms' % (
                   cycle_s, lat['add_client_median'], lat['add_client_max'], lat['remove_client_median'],
                   lat['remove_client_max'], lat['add_daemon_median'])

    def latencies(self, addresses):
        ue = uevents(self.agent)
        mon = monitor_events(self.agent, MONITOR_LOG)
        out = {}
        for action, kind in (('add', 'deviceAdded'), ('remove', 'deviceRemoved')):
            client, daemon = [], []
            for a in addresses:
                kernel = [e[0] for e in ue if e[1] == action and e[3] == 'pci' and e[4] == a]
                events = [(t, ev) for t, ev in mon if ev.get('kind') == kind and ev.get('address') == a]
                expect(len(kernel) == len(events),
                       '%s: %d kernel %s uevents but %d %s events' % (a, len(kernel), action, len(events), kind))
                for k, (t, ev) in zip(kernel, events):
                    client.append((t - k) / 1000.0)
                    if isinstance(ev.get('timestamp'), int):
                        daemon.append((ev['timestamp'] - k) / 1000.0)
            expect(client, 'no %s events to measure' % kind)
            out[action + '_client_median'] = round(statistics.median(client), 1)
            out[action + '_client_max'] = round(max(client), 1)
            out[action + '_daemon_median'] = round(statistics.median(daemon), 1) if daemon else None
        # a daemon that polls instead of listening would show seconds here
        expect(out['add_client_median'] < 2000 and out['remove_client_median'] < 2000,
               'uevent to Monitor event takes too long: %s' % out)
        return out

    def daemon_alive(self):
        pid = self.agent.run('pidof numaplaced')[1].split()
        expect(pid == [self.daemon_pid], 'numaplaced pid %s at the start, now %s; log: %s'
               % (self.daemon_pid, pid, self.agent.run('tail -c 1000 /tmp/numaplaced.log')[1]))
        st = self.ctl.call('status')
        return 'still running, %s workers, %s devices' % (st.get('workers'), st.get('devices'))

    # --- the session ----------------------------------------------------------------------------------------

    def run(self, skipped_reason=None):
        r = self.report
        try:
            if not r.run('vm-boot', self.boot):
                r.note('console:\n' + self.vm.console_tail())
                return
            r.run('testbed-topology', self.testbed_topology)
            r.run('testbed-numactl-probe', self.testbed_numactl_probe)
            r.run('testbed-hotplug', self.testbed_hotplug)
            names = ['topology', 'seed-bind', 'seed-preferred', 'seed-interleave', 'seed-exclusive-cores',
                     'cpuless-node', 'several-devices', 'hotplug-add', 'hotplug-remove', 'hotplug-20-cycles', 'daemon-alive']
            if not self.with_daemon:
                return
            if skipped_reason:
                for n in ['daemon-start'] + names:
                    r.fail(n, 'not run: ' + skipped_reason)
                return
            if not r.run('daemon-start', self.start_daemon):
                for n in names:
                    r.fail(n, 'not run: the daemon did not start')
                return
            r.run('topology', self.topology)
            r.run('seed-bind', self.seed, 'bind', 'bind')
            r.run('seed-preferred', self.seed, 'preferred', 'preferred')
            r.run('seed-interleave', self.seed, 'interleave', 'interleave')
            r.run('seed-exclusive-cores', self.seed_exclusive)
            r.run('cpuless-node', self.cpuless)
            r.run('several-devices', self.several_devices)
            self.hp_gpu = None
            r.run('hotplug-add', self.hotplug_add)
            if self.hp_gpu:     # plugged, whether or not the daemon saw it: the removal is checked all the same
                r.run('hotplug-remove', self.hotplug_remove)
            else:
                r.fail('hotplug-remove', 'not run: device_add failed')
            r.run('hotplug-20-cycles', self.hotplug_cycles)
            import cgroup_checks
            cgroup_checks.run(self, r)
            r.run('daemon-alive', self.daemon_alive)
        finally:
            if self.agent and self.with_daemon:
                try:
                    r.note('numaplaced log (tail):\n' + self.agent.run('tail -c 20000 /tmp/numaplaced.log')[1])
                except Exception as e:
                    r.note('no daemon log: %s' % e)
            self.vm.stop()
