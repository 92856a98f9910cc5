"""One boot of the systemd guest (check 5 of issue 6): the repository's units in a debootstrapped Debian with
systemd as PID 1, journald and udevd.

The image has the repository's systemd/*.service and *.socket in /usr/lib/systemd/system with only the socket
enabled, so the daemon starts on the first connection. Its configuration is the repository's etc/numaplaced
plus the test bed's drop-in (edu = accelerator).
"""
import json
import os
import re
import time

import nri_checks
import systemd_cgroups
from guest import Ctl, check_placement, count_lines, monitor_events, uevents, wait_guest
from machine import HOTPLUG_PORTS, Machine
from report import CheckFailed, expect
from sysfs import parse_cpulist

GPU = '0000:81:00.0'
PROBE = '/usr/local/bin/numaplace-probe'
MONITOR_LOG = '/tmp/sd-monitor.log'


def unit_setting(path, key, default):
    """The first `key=` value in a unit file (systemd syntax, no continuation lines needed here)."""
    try:
        with open(path) as f:
            for line in f:
                m = re.match(r'\s*%s\s*=\s*(\S.*?)\s*$' % re.escape(key), line)
                if m:
                    return m.group(1)
    except OSError:
        pass
    return default


class SystemdSession:
    def __init__(self, report, work, kernel, repo, with_daemon, nri=None):
        self.report = report
        self.nri = nri   # 'run', ('fail', reason), ('skip', reason) or None (not asked)
        self.repo = repo
        self.with_daemon = with_daemon
        self.vm = Machine('systemd', kernel, work + '/initrd-sd.cpio.gz', work + '/logs', disk=work + '/sd.img',
                          append='np.root=/dev/vda')
        self.unit_dir = os.path.join(repo, 'systemd')
        self.socket = unit_setting(os.path.join(self.unit_dir, 'numaplaced.socket'), 'ListenStream',
                                   '/run/numaplaced/io.numaplaced')
        self.agent = None
        self.ctl = None
        self.serial = 0

    def sh(self, cmd, timeout=60):
        return self.agent.check(cmd, timeout)

    def show(self, unit, *props):
        out = self.sh('systemctl show %s %s' % (unit, ' '.join('-p ' + p for p in props)))
        return dict(line.split('=', 1) for line in out.splitlines() if '=' in line)

    def read_probe(self, name, timeout=30):
        """The probe's JSON: the worker writes /tmp/NAME in the daemon's view of /tmp, which is the guest's
        /tmp or, with PrivateTmp=yes, /tmp/systemd-private-*-numaplaced.service-*/tmp."""
        paths = '/tmp/%s /tmp/systemd-private-*-numaplaced.service-*/tmp/%s' % (name, name)
        out = self.agent.check('i=0; until cat %s 2>/dev/null | grep -q "}"; do sleep 0.05; i=$((i+1)); '
                               '[ $i -gt %d ] && exit 1; done; cat %s 2>/dev/null; true' % (paths, timeout * 20, paths),
                               timeout + 10)
        lines = [l for l in out.splitlines() if l.startswith('{')]
        expect(len(lines) == 1, 'probe output %s: %r' % (name, out[:300]))
        return json.loads(lines[0])

    def spawn(self, tag, extra='', wait=True, probe_args=''):
        self.serial += 1
        name = 'sd-probe-%s-%d.json' % (tag, self.serial)
        reply = self.ctl.call('spawn --device %s --memory bind %s --stdout /tmp/%s %s -- %s %s'
                              % (GPU, extra, name, '--wait' if wait else '', PROBE, probe_args), 90)
        worker = reply.get('worker')
        expect(isinstance(worker, dict), 'spawn reply without a worker: %s' % json.dumps(reply)[:300])
        return worker, self.read_probe(name)

    # --- checks ---------------------------------------------------------------------------------------------

    def boot(self):
        secs = self.vm.start(ready_timeout=420)
        self.agent = self.vm.agent
        self.ctl = Ctl(self.agent, self.socket)
        rc, state = self.agent.run('systemctl is-system-running --wait', 300)
        if state.strip() != 'running':
            failed = self.agent.run('systemctl --failed --no-legend --plain')[1]
            raise CheckFailed('system is %s; failed units: %s' % (state.strip(), failed.strip()))
        up = self.sh('cut -d" " -f1 /proc/uptime').strip()
        return 'agent after %.1fs, system running at guest uptime %ss' % (secs, up)

    def testbed_udev(self):
        """udevd in the guest sees a hot-added device under the node-1 expander (the path the daemon uses)."""
        slot, addr, _ = HOTPLUG_PORTS['rp12']
        self.sh('setsid sh -c "udevadm monitor --udev --subsystem-match=pci > /tmp/udevmon.log 2>&1" '
                '</dev/null >/dev/null 2>&1 &')
        wait_guest(self.agent, 'grep -q "UDEV - the event" /tmp/udevmon.log', 30, 'udevadm monitor started')
        t = time.monotonic()
        self.vm.qmp.device_add('edu', 'sdtb1', 'rp12')
        wait_guest(self.agent, 'grep -q "add .*%s" /tmp/udevmon.log' % addr, 30, 'udev add event')
        add_s = time.monotonic() - t
        props = self.sh('udevadm info -q property -p /sys/bus/pci/devices/%s' % addr)
        expect('PCI_ID=1234:11E8' in props, 'udev properties of the hot-added edu: %s' % props)
        t = time.monotonic()
        self.vm.qmp.device_del('sdtb1')
        self.agent.run('echo 0 > /sys/bus/pci/slots/%s/power' % slot)
        self.vm.qmp.wait_event('DEVICE_DELETED', 30, device='sdtb1')
        wait_guest(self.agent, 'grep -q "remove .*%s" /tmp/udevmon.log' % addr, 30, 'udev remove event')
        self.agent.run('pkill -x udevadm')
        return 'udev add event %.2fs after device_add, remove %.2fs after device_del' % (add_s, time.monotonic() - t)

    def socket_activation(self):
        """Only numaplaced.socket is enabled: after boot the service is not running; the first client
        connection starts it; the socket stays owned by systemd."""
        expect(os.path.exists(os.path.join(self.unit_dir, 'numaplaced.socket')),
               'systemd/numaplaced.socket is not in the repository')
        s = self.show('numaplaced.socket', 'ActiveState', 'SubState', 'Listen')
        expect(s.get('ActiveState') == 'active', 'numaplaced.socket is %s' % s)
        svc = self.show('numaplaced.service', 'ActiveState')
        expect(svc.get('ActiveState') == 'inactive',
               'numaplaced.service is %s before any client connected' % svc.get('ActiveState'))
        t = time.monotonic()
        status = self.ctl.call('status', 120)
        first = time.monotonic() - t
        svc = self.show('numaplaced.service', 'ActiveState', 'SubState', 'TriggeredBy', 'MainPID')
        expect(svc.get('ActiveState') == 'active' and svc.get('SubState') == 'running',
               'after the first connection numaplaced.service is %s' % svc)
        expect('numaplaced.socket' in svc.get('TriggeredBy', ''), 'service not triggered by the socket: %s' % svc)
        self.main_pid = svc['MainPID']
        return 'first call answered in %.2fs (started the service), eventSource %s' % (first, status.get('eventSource'))

    def ready_status(self):
        """Type=notify: the unit reached active/running only through READY=1; STATUS= shows in systemctl."""
        svc = self.show('numaplaced.service', 'Type', 'ActiveState', 'SubState', 'StatusText', 'NRestarts',
                        'WatchdogUSec')
        expect(svc.get('Type') == 'notify', 'Type=%s, expected notify' % svc.get('Type'))
        expect(svc.get('ActiveState') == 'active' and svc.get('SubState') == 'running', 'service %s' % svc)
        expect(svc.get('StatusText'), 'no STATUS= text: %s' % svc)
        text = self.sh('systemctl status numaplaced.service --no-pager -l || true')
        expect('Status: "' in text, 'systemctl status shows no Status line:\n%s' % text[:800])
        return 'Status: "%s"' % svc['StatusText']

    def journal_fields(self):
        """journalctl -o json has structured records: MESSAGE_ID on events, DEVICE and NUMA_NODE on a device
        record, WORKER_PID on the record of a worker this check spawns."""
        worker, probe = self.spawn('journal', probe_args='sleep 2')
        check_placement(probe, worker, '2-3', 'bind', [1])
        pid = str(worker['pid'])
        time.sleep(1)   # journald stores asynchronously
        out = self.sh('journalctl -u numaplaced.service -o json --no-pager', 60)
        records = []
        for line in out.splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                pass
        expect(records, 'no journal records for numaplaced.service')
        with_id = [r for r in records if r.get('MESSAGE_ID')]
        device = [r for r in records if r.get('DEVICE') and r.get('NUMA_NODE') is not None]
        worker_recs = [r for r in records if r.get('WORKER_PID') == pid]
        expect(with_id, 'no record with MESSAGE_ID among %d' % len(records))
        expect(device, 'no record with DEVICE and NUMA_NODE among %d' % len(records))
        expect(worker_recs, 'no record with WORKER_PID=%s among %d' % (pid, len(records)))
        expect(any(r.get('DEVICE') == GPU and r.get('NUMA_NODE') == '1' for r in records),
               'no record says DEVICE=%s NUMA_NODE=1' % GPU)
        return '%d records, %d with MESSAGE_ID, worker record: %s' % (
            len(records), len(with_id), worker_recs[0].get('MESSAGE', '')[:80])

    def journal_caller(self):
        """A user's worker logs through a journal stream the user's numaplacectl opened and passed: its
        records carry the user's _UID, not the root daemon's (that the daemon opens none for it is a unit test)."""
        self.sh('id np-journal-user >/dev/null 2>&1 || useradd -M -G numaplace np-journal-user')
        uid = self.sh('id -u np-journal-user').strip()
        as_user = 'runuser -u np-journal-user -- ' + self.ctl.command('')
        rc, out = self.agent.run(as_user + 'spawn --stdout journal --name np-journal-check --wait -- '
                                 '/bin/echo hello-from-the-worker 2>&1', 60)
        expect(rc == 0, 'spawn --stdout journal as a user: rc=%d: %s' % (rc, out.strip()[:300]))
        time.sleep(1)   # journald stores asynchronously
        records = []
        for line in self.sh('journalctl SYSLOG_IDENTIFIER=np-journal-check -o json --no-pager', 60).splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                pass
        said = [r for r in records if r.get('MESSAGE') == 'hello-from-the-worker']
        expect(said, 'no journal record of the worker among %d' % len(records))
        expect(all(r.get('_UID') == uid for r in said), 'the worker\'s record has _UID %s, expected %s'
               % ([r.get('_UID') for r in said], uid))
        return 'record _UID=%s (the user), SYSLOG_IDENTIFIER=np-journal-check' % uid

    def udev_events(self):
        """Hotplug through udevd: the daemon (event source udev) reports a device added under the node-1
        expander and its removal; latency from the kernel uevent to the Monitor event."""
        status = self.ctl.call('status')
        expect(status.get('eventSource') == 'udev', 'eventSource is %r, expected udev' % status.get('eventSource'))
        self.sh('setsid sh -c "%s | vmtool stamp > %s 2>&1" </dev/null >/dev/null 2>&1 &'
                % (self.ctl.command('monitor'), MONITOR_LOG))
        wait_guest(self.agent, 'grep -q ready %s' % MONITOR_LOG, 30, 'Monitor ready event')
        bus = 'rp11'
        slot, addr, _ = HOTPLUG_PORTS[bus]
        t = time.monotonic()
        self.vm.qmp.device_add('secondary-vga', 'sdhp1', bus)
        wait_guest(self.agent, 'grep -F deviceAdded %s | grep -qF %s' % (MONITOR_LOG, addr), 30,
                   'deviceAdded %s' % addr)
        add_s = time.monotonic() - t
        d = self.ctl.call('devices --node 1').get('devices', [])
        got = next((x for x in d if x.get('address') == addr), None)
        expect(got is not None and got.get('numaNode') == 1 and got.get('kind') == 'display',
               'hot-added device in devices --node 1: %s' % got)
        t = time.monotonic()
        self.vm.qmp.device_del('sdhp1')
        self.agent.run('echo 0 > /sys/bus/pci/slots/%s/power' % slot)
        self.vm.qmp.wait_event('DEVICE_DELETED', 30, device='sdhp1')
        wait_guest(self.agent, 'grep -F deviceRemoved %s | grep -qF %s' % (MONITOR_LOG, addr), 30,
                   'deviceRemoved %s' % addr)
        del_s = time.monotonic() - t
        expect(count_lines(self.agent, MONITOR_LOG, 'deviceAdded', addr) == 1, 'more than one deviceAdded')
        kernel = [e[0] for e in uevents(self.agent) if e[1] == 'add' and e[4] == addr and e[3] == 'pci']
        events = [t for t, ev in monitor_events(self.agent, MONITOR_LOG)
                  if ev.get('kind') == 'deviceAdded' and ev.get('address') == addr]
        lat = (events[0] - kernel[0]) / 1000.0 if kernel and events else None

        # The events come from udevd, after its rules, not from the kernel directly: with udevd stopped a
        # hot-added device stays unseen; once udevd runs again and replays the add, the daemon reports it.
        self.sh('systemctl stop systemd-udevd-kernel.socket systemd-udevd-control.socket systemd-udevd.service')
        self.vm.qmp.device_add('secondary-vga', 'sdhp2', bus)
        wait_guest(self.agent, '[ -e /sys/bus/pci/devices/%s ]' % addr, 30, 'second add in sysfs')
        time.sleep(3)
        seen = count_lines(self.agent, MONITOR_LOG, 'deviceAdded', addr)
        self.sh('systemctl start systemd-udevd.service systemd-udevd-kernel.socket systemd-udevd-control.socket; '
                'udevadm trigger --action=add /sys/bus/pci/devices/%s; udevadm settle' % addr, 60)
        expect(seen == 1, 'the daemon reported the device while udevd was stopped: not the udev event source')
        wait_guest(self.agent, '[ $(grep -F deviceAdded %s | grep -cF %s) -ge 2 ]' % (MONITOR_LOG, addr), 30,
                   'deviceAdded after udevd replayed the add')
        self.vm.qmp.device_del('sdhp2')
        self.agent.run('echo 0 > /sys/bus/pci/slots/%s/power' % slot)
        self.vm.qmp.wait_event('DEVICE_DELETED', 30, device='sdhp2')
        wait_guest(self.agent, '[ $(grep -F deviceRemoved %s | grep -cF %s) -ge 2 ]' % (MONITOR_LOG, addr), 30,
                   'second deviceRemoved')
        return 'add to event %.2fs, remove to event %.2fs, kernel uevent to Monitor event %s ms; ' \
               'nothing while udevd was stopped, reported after its replay' % (
                   add_s, del_s, '%.0f' % lat if lat is not None else '?')

    def restart_adopt(self):
        """systemctl restart numaplaced leaves a running worker alive, and the new daemon re-adopts it."""
        worker, probe = self.spawn('adopt', wait=False, probe_args='sleep 600')
        pid, wid = worker['pid'], worker['id']
        check_placement(probe, worker, '2-3', 'bind', [1])
        before = self.show('numaplaced.service', 'MainPID')['MainPID']
        self.sh('systemctl restart numaplaced.service', 120)
        after = self.show('numaplaced.service', 'MainPID', 'ActiveState')
        expect(after.get('ActiveState') == 'active' and after.get('MainPID') not in ('0', before),
               'after restart: %s (MainPID before %s)' % (after, before))
        rc, _ = self.agent.run('kill -0 %d' % pid)
        expect(rc == 0, 'worker pid %d did not survive systemctl restart' % pid)
        workers = self.ctl.call('workers').get('workers', [])
        w = next((x for x in workers if x.get('pid') == pid), None)
        expect(w is not None, 'the restarted daemon does not list worker pid %d: %s'
               % (pid, [(x.get('id'), x.get('pid')) for x in workers]))
        expect(w.get('adopted') is True and w.get('state') == 'running',
               'worker after restart: adopted=%s state=%s' % (w.get('adopted'), w.get('state')))
        expect(w.get('id') == wid, 'worker id changed across the restart: %s -> %s' % (wid, w.get('id')))
        self.ctl.call('kill %s' % w['id'])
        done = self.ctl.call('wait %s' % w['id'], 60).get('worker', {})
        expect(done.get('state') == 'exited', 'adopted worker after kill: %s' % done.get('state'))
        rc, _ = self.agent.run('kill -0 %d' % pid)
        expect(rc != 0, 'adopted worker pid %d still alive after kill + wait' % pid)
        return 'worker %s (pid %d) re-adopted by MainPID %s, then killed through it' % (wid, pid, after['MainPID'])

    def reload_watchdog(self):
        """Under PID 1: `systemctl reload` (SIGHUP; RELOADING=1, then READY=1) keeps the same MainPID; a bad
        drop-in is refused and the running configuration keeps serving; a 2 s WatchdogSec is kept fed."""
        journal = 'journalctl -u numaplaced.service -o cat --no-pager'
        before = self.show('numaplaced.service', 'MainPID')['MainPID']
        reloaded = int(self.sh('%s | grep -c "configuration reloaded" || true' % journal).strip() or 0)
        self.sh('systemctl reload numaplaced.service', 60)
        wait_guest(self.agent, '[ $(%s | grep -c "configuration reloaded") -gt %d ]' % (journal, reloaded), 30,
                   'the reload logged')
        st = self.show('numaplaced.service', 'ActiveState', 'SubState', 'MainPID')
        expect(st.get('ActiveState') == 'active' and st.get('MainPID') == before,
               'after reload: %s (MainPID before %s)' % (st, before))

        bad = '/etc/numaplaced/numaplaced.conf.d/99-bad.conf'
        self.sh('mkdir -p /etc/numaplaced/numaplaced.conf.d && printf "[Limits]\\nMaxConnections=none\\n" > %s' % bad)
        try:
            self.sh('systemctl reload numaplaced.service', 60)
            wait_guest(self.agent, '%s | grep -q "configuration refused"' % journal, 30, 'the refusal logged')
            refusal = self.sh('%s | grep "configuration refused" | tail -1' % journal).strip()
            expect('99-bad.conf:2' in refusal, 'the refusal does not name the file and line: %s' % refusal)
            st = self.show('numaplaced.service', 'ActiveState', 'MainPID')
            expect(st.get('ActiveState') == 'active' and st.get('MainPID') == before,
                   'after a refused reload: %s' % st)
            status = self.ctl.call('status')
            expect(isinstance(status, dict) and status.get('version'), 'status after a refused reload: %s' % status)
        finally:
            self.agent.run('rm -f %s' % bad)

        dropin = '/run/systemd/system/numaplaced.service.d/np-watchdog.conf'
        self.sh('mkdir -p %s && printf "[Service]\\nWatchdogSec=2s\\n" > %s && systemctl daemon-reload'
                % (os.path.dirname(dropin), dropin))
        try:
            self.sh('systemctl restart numaplaced.service', 120)
            first = self.show('numaplaced.service', 'MainPID', 'NRestarts', 'WatchdogUSec')
            expect(first.get('WatchdogUSec') in ('2s', '2000000'), 'WatchdogSec drop-in not applied: %s' % first)
            time.sleep(8)   # four watchdog intervals
            later = self.show('numaplaced.service', 'MainPID', 'NRestarts', 'ActiveState', 'WatchdogTimestampMonotonic')
            expect(later.get('ActiveState') == 'active' and later.get('MainPID') == first.get('MainPID')
                   and later.get('NRestarts') == first.get('NRestarts'),
                   'the watchdog fired: before %s, 8 s later %s' % (first, later))
        finally:
            self.agent.run('rm -f %s && systemctl daemon-reload' % dropin)
        return 'reload kept MainPID %s; a bad drop-in was refused (%s); fed a 2 s watchdog for 8 s (MainPID %s)' % (
            before, refusal[:80], later.get('MainPID'))

    # --- the session ----------------------------------------------------------------------------------------

    def run(self, skipped_reason=None):
        r = self.report
        names = ['systemd-socket-activation', 'systemd-ready-status', 'systemd-journal-fields',
                 'systemd-journal-caller', 'systemd-udev-events', 'systemd-restart-adopt',
                 'systemd-cgroup-worker-group', 'systemd-cgroup-restart-adopt', 'systemd-analyze-security',
                 'systemd-reload-watchdog']
        if self.nri == 'run' or (self.nri and self.nri[0] == 'fail'):
            names += nri_checks.NAMES
        try:
            if not r.run('systemd-boot', self.boot):
                r.note('console:\n' + self.vm.console_tail(60))
                for n in names if self.with_daemon else []:
                    r.fail(n, 'not run: the systemd guest did not boot')
                return
            r.run('systemd-testbed-udev', self.testbed_udev)
            if not self.with_daemon:
                return
            if skipped_reason:
                for n in names:
                    r.fail(n, 'not run: ' + skipped_reason)
                return
            if not r.run('systemd-socket-activation', self.socket_activation):
                for n in names[1:]:
                    r.fail(n, 'not run: the daemon did not start by socket activation')
                return
            r.run('systemd-ready-status', self.ready_status)
            r.run('systemd-journal-fields', self.journal_fields)
            r.run('systemd-journal-caller', self.journal_caller)
            r.run('systemd-udev-events', self.udev_events)
            r.run('systemd-restart-adopt', self.restart_adopt)
            systemd_cgroups.run(self, r, GPU)
            r.run('systemd-reload-watchdog', self.reload_watchdog)
            if self.nri == 'run':
                nri_checks.run(self, r)
            elif self.nri and self.nri[0] == 'fail':
                for n in nri_checks.NAMES:
                    r.fail(n, 'not run: ' + self.nri[1])
            elif self.nri:
                r.skip('systemd-nri', self.nri[1])
        finally:
            if self.agent:
                try:
                    r.note('journal of numaplaced:\n' + self.agent.run(
                        'journalctl -u numaplaced.service -u numaplaced.socket --no-pager | tail -60')[1])
                except Exception as e:
                    r.note('no journal: %s' % e)
            self.vm.stop()
