#!/usr/bin/env python3
"""Faults: what numaplaced must survive on a real host (root, Linux). One PASS/FAIL/SKIP line per check.

  kill-restart   SIGKILL the daemon with 50 workers running, restart it: all re-adopted, none killed
  disconnect     clients that vanish mid-message, mid-Spawn, mid-Wait and mid-Monitor
  full-disk      the state directory on a full tmpfs: spawns work, GetStatus says the table is not persisted
  device-remove  spawns for a device while it is really hot-removed (sysfs remove) and rescanned
  child-limits   the child path out of resources: E2BIG from execve, EMFILE in the daemon, EAGAIN (RLIMIT_NPROC)
  reload         SIGHUP with a bad and a good configuration while spawns are in flight

usage: faults.py --daemon PATH --workdir DIR [--only NAME,...]
"""

import argparse
import errno
import os
import pwd
import resource
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from nptest import (Daemon, Monitor, Report, VarlinkError, children, first_node, kill_quietly,  # noqa: E402
                    process_state)

R = Report("faults")
NODE = first_node()


def spawn(c, argv, **kw):
    p = {"argv": argv}
    p.update(kw)
    return c.call("Spawn", p)["worker"]


# MARK: kill-restart

def kill_restart(binary, workdir):
    d = Daemon(binary, os.path.join(workdir, "kill-restart")).start()
    c = d.client()
    workers = [spawn(c, ["/bin/sleep", "300"], node=NODE, name="adopt-%d" % i) for i in range(50)]
    pids = {w["id"]: w["pid"] for w in workers}
    c.close()
    d.signal(signal.SIGKILL)
    d.proc.wait()
    time.sleep(0.2)
    alive = [pid for pid in pids.values() if process_state(pid) not in (None, "Z")]
    R.check(len(alive) == 50, "%d/50 workers still running after SIGKILL of the daemon" % len(alive))
    try:
        d.start()
        c = d.client()
        listed = {w["id"]: w for w in c.call("ListWorkers")["workers"]}
        adopted = [i for i, pid in pids.items()
                   if i in listed and listed[i]["state"] == "running" and listed[i]["adopted"] and listed[i]["pid"] == pid]
        R.check(len(adopted) == 50, "%d/50 re-adopted by the restarted daemon (running, adopted, same pid)" % len(adopted))
        alive = [pid for pid in pids.values() if process_state(pid) not in (None, "Z")]
        R.check(len(alive) == 50, "%d/50 still running after the restart (none killed)" % len(alive))
        # The adopted workers are watched through fresh pidfds: their exits are seen.
        for i in adopted:
            c.call("Signal", {"id": i, "signal": 15})
        waited = 0
        for i in adopted:
            w = c.call("Wait", {"id": i})["worker"]
            waited += w["state"] == "exited"
        R.check(waited == len(adopted) and len(adopted) > 0,
                "%d/%d adopted workers' exits seen after Signal (Wait returned)" % (waited, len(adopted)))
        c.close()
        R.check(d.answers(), "restarted daemon answers")
    finally:
        kill_quietly(pids.values())
        d.stop()


# MARK: disconnect

def disconnect(binary, workdir):
    d = Daemon(binary, os.path.join(workdir, "disconnect")).start()
    try:
        keeper = d.client()
        sleeper = spawn(keeper, ["/bin/sleep", "60"], node=NODE)
        # Counted once serving has settled: the signal descriptors and the state log open lazily.
        time.sleep(0.3)
        base_fds = d.fd_count()

        # Half a message, then gone.
        c = d.client()
        c.send_raw(b'{"method":"io.numaplaced.Manager.Spawn","parameters":{"argv":["/bin/sl')
        c.close()
        # A whole Spawn, gone before the reply.
        c = d.client()
        c.send("io.numaplaced.Manager.Spawn", {"argv": ["/bin/sleep", "61"], "node": NODE, "name": "orphan-reply"})
        c.close()
        # A Wait in progress, and a Monitor, both abandoned.
        c = d.client()
        c.send("io.numaplaced.Manager.Wait", {"id": sleeper["id"]})
        time.sleep(0.05)
        c.close()
        c = d.client()
        c.send("io.numaplaced.Manager.Monitor", {}, more=True)
        c.recv()
        c.close()
        time.sleep(0.5)

        R.check(d.answers(), "daemon answers after four clients vanished mid-request")
        listed = keeper.call("ListWorkers")["workers"]
        orphan = [w for w in listed if w["argv"] == ["/bin/sleep", "61"]]
        R.check(len(orphan) == 1 and orphan[0]["state"] == "running",
                "the worker whose Spawn reply nobody read is tracked (%d found, state %s)"
                % (len(orphan), orphan[0]["state"] if orphan else "-"))
        for w in [sleeper] + orphan:
            keeper.call("Signal", {"id": w["id"], "signal": 15})
        ends = [keeper.call("Wait", {"id": w["id"]})["worker"] for w in [sleeper] + orphan]
        R.check(all(e["state"] == "exited" and (e.get("exit") or {}).get("signal") == 15 for e in ends),
                "both workers (one with an abandoned Wait) end by SIGTERM and are reaped: %s"
                % [e.get("exit") for e in ends])
        keeper.close()
        time.sleep(0.3)
        fds = d.fd_count()
        # The keeper's connection and the sleeper's pidfd were counted in the base and are gone now.
        R.check(fds <= base_fds - 2, "daemon descriptors back to %d (now %d)" % (base_fds - 2, fds))
        zombies = [p for p, s in children(d.pid) if s == "Z"]
        R.check(not zombies, "no zombies (%d)" % len(zombies))
    finally:
        d.stop()


# MARK: full-disk

def full_disk(binary, workdir):
    base = os.path.join(workdir, "full-disk")
    mnt = os.path.join(base, "state")
    os.makedirs(mnt, exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs", mnt],
                      stderr=subprocess.DEVNULL).returncode != 0:
        R.skip("cannot mount a tmpfs (needs root and CAP_SYS_ADMIN)")
        return
    d = Daemon(binary, base, state_dir=mnt)
    try:
        # The log gets its first page while there is room; then the file system is filled, so that
        # records fit in that page's rest until one is cut off part way, and then none is written.
        d.start()
        c = d.client()
        first = spawn(c, ["/bin/sleep", "120"], node=NODE)
        fd = os.open(os.path.join(mnt, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"x" * 512)
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
        finally:
            os.close(fd)
        ok = 0
        for _ in range(20):
            w = spawn(c, ["/bin/true"], node=NODE)
            ok += c.call("Wait", {"id": w["id"]})["worker"]["state"] == "exited"
        R.check(ok == 20, "%d/20 spawns and Waits with the state directory full" % ok)
        warnings = c.call("GetStatus")["warnings"]
        said = [w for w in warnings if "not persisted" in w]
        R.check(bool(said), "GetStatus says the worker table is not persisted: %s" % (said[:1] or warnings))

        # Space again: the table must be readable, with every record written after the failure.
        os.unlink(os.path.join(mnt, "filler"))
        sleepers = [first] + [spawn(c, ["/bin/sleep", "120"], node=NODE) for _ in range(5)]
        c.close()
        d.signal(signal.SIGKILL)
        d.proc.wait()
        d.start()
        c = d.client()
        listed = {w["id"]: w for w in c.call("ListWorkers")["workers"]}
        adopted = [w for w in sleepers if listed.get(w["id"], {}).get("adopted")]
        R.check(len(adopted) == 6, "%d/6 workers re-adopted after SIGKILL (1 started before the disk filled, 5 after space came back)"
                % len(adopted))
        for w in sleepers:
            try:
                c.call("Signal", {"id": w["id"], "signal": 9})
            except VarlinkError:
                pass
        c.close()
        kill_quietly([w["pid"] for w in sleepers])
        R.check(d.answers(), "daemon answers")
    finally:
        d.stop()
        subprocess.run(["umount", "-l", mnt], stderr=subprocess.DEVNULL)


# MARK: device-remove

def find_removable_device():
    """A PCI function that can be hot-removed without hurting the host: NUMAPLACE_RELIABILITY_HOTPLUG_DEVICE,
    or a virtio entropy device (1af4:1044, the host's hwrng source only)."""
    named = os.environ.get("NUMAPLACE_RELIABILITY_HOTPLUG_DEVICE")
    base = "/sys/bus/pci/devices"
    if named:
        return named if os.path.exists(os.path.join(base, named, "remove")) else None
    try:
        for addr in sorted(os.listdir(base)):
            try:
                with open(os.path.join(base, addr, "vendor")) as f:
                    vendor = f.read().strip()
                with open(os.path.join(base, addr, "device")) as f:
                    device = f.read().strip()
            except OSError:
                continue
            if vendor == "0x1af4" and device in ("0x1044", "0x1005"):
                return addr
    except OSError:
        pass
    return None


def read_id(addr, name):
    with open("/sys/bus/pci/devices/%s/%s" % (addr, name)) as f:
        return f.read().strip()


def device_remove(binary, workdir):
    if os.geteuid() != 0:
        R.skip("device removal needs root")
        return
    addr = find_removable_device()
    if addr is None:
        R.skip("no PCI function that is safe to hot-remove here (virtio-rng); "
               "set NUMAPLACE_RELIABILITY_HOTPLUG_DEVICE=ADDR to name one")
        return
    base = os.path.join(workdir, "device-remove")
    conf = os.path.join(base, "conf")
    os.makedirs(conf, exist_ok=True)
    with open(os.path.join(conf, "numaplaced.conf"), "w") as f:
        f.write("[Devices]\nMatch=vendor=%s device=%s kind=accelerator\nLocality=%s %d\n"
                % (read_id(addr, "vendor"), read_id(addr, "device"), addr, NODE))
    d = Daemon(binary, base, config=conf, event_source="kernel").start()
    devpath = "/sys/bus/pci/devices/" + addr
    try:
        c = d.client()
        listed = [x["address"] for x in c.call("ListDevices")["devices"]]
        if not R.check(addr in listed, "%s is managed by the configuration (%s)" % (addr, listed)):
            return
        mon = Monitor(d.socket)
        outcomes = []   # (time the call was sent, outcome)
        lock = threading.Lock()
        stop = threading.Event()

        def spawner():
            cl = d.client(timeout=30)
            while not stop.is_set():
                sent = time.monotonic()
                try:
                    w = spawn(cl, ["/bin/true"], device=addr)
                    cl.call("Wait", {"id": w["id"]})
                    out = "ok"
                except VarlinkError as e:
                    out = e.short
                except Exception as e:  # a hang or a dropped connection is a failure
                    out = "transport: %s" % e
                with lock:
                    outcomes.append((sent, out))
            cl.close()

        threads = [threading.Thread(target=spawner) for _ in range(3)]
        for t in threads:
            t.start()
        time.sleep(0.4)
        removed_at = time.monotonic()
        try:
            with open(devpath + "/remove", "w") as f:
                f.write("1")
        except PermissionError as e:
            # Some sandboxes refuse hot removal even to root; the QEMU test bed removes devices for real.
            R.skip("writing %s/remove is not permitted here (%s); the QEMU test bed covers removal" % (devpath, e))
            return
        gone = mon.wait_for(lambda e: e["kind"] == "deviceRemoved" and e.get("address") == addr, timeout=10)
        gone_seen = time.monotonic()
        R.check(gone is not None, "deviceRemoved published %.1f ms after the sysfs remove"
                % ((gone_seen - removed_at) * 1000))
        time.sleep(0.4)
        rescanned_at = time.monotonic()
        with open("/sys/bus/pci/rescan", "w") as f:
            f.write("1")
        back = mon.wait_for(lambda e: e["kind"] == "deviceAdded" and e.get("address") == addr, timeout=10)
        back_seen = time.monotonic()
        R.check(back is not None, "deviceAdded published %.1f ms after the rescan" % ((back_seen - rescanned_at) * 1000))
        time.sleep(0.4)
        stop.set()
        for t in threads:
            t.join(60)
        with lock:
            got = list(outcomes)
        kinds = sorted(set(o for _, o in got))
        R.check(all(o in ("ok", "NoSuchDevice") for _, o in got),
                "%d spawns during the removal: each placed or refused with NoSuchDevice (%s)" % (len(got), kinds))
        between = [o for s, o in got if gone_seen < s < rescanned_at]
        R.check(between and all(o == "NoSuchDevice" for o in between),
                "%d spawns sent while the device was gone: all NoSuchDevice" % len(between))
        after = [o for s, o in got if s > back_seen]
        R.check(after and all(o == "ok" for o in after), "%d spawns after it came back: all placed" % len(after))
        before = [o for s, o in got if s < removed_at]
        R.check(before and all(o == "ok" for o in before), "%d spawns before the removal: all placed" % len(before))
        R.check(d.answers(), "daemon answers")
        mon.close()
        c.close()
    finally:
        # Whatever ended the check, the spawner threads end with it: left running against a stopped
        # daemon they would retry forever and keep the interpreter from exiting.
        if "stop" in locals():
            stop.set()
            for t in locals().get("threads", []):
                t.join(60)
        if not os.path.exists(devpath):
            with open("/sys/bus/pci/rescan", "w") as f:
                f.write("1")
        d.stop()


# MARK: child-limits

def child_limits(binary, workdir):
    base = os.path.join(workdir, "child-limits")
    # E2BIG: one argument longer than the kernel's MAX_ARG_STRLEN (32 pages), within MaxArgvBytes.
    d = Daemon(binary, base, name="e2big").start()
    try:
        c = d.client()
        try:
            spawn(c, ["/bin/true", "x" * 200_000], node=NODE)
            R.check(False, "a 200 kB argument was refused by execve")
        except VarlinkError as e:
            R.check(e.short == "SpawnFailed" and e.parameters.get("errno") == errno.E2BIG,
                    "a 200 kB argument: %s step=%s errno=%s" % (e.short, e.parameters.get("step"), e.parameters.get("errno")))
        w = spawn(c, ["/bin/true"], node=NODE)
        R.check(c.call("Wait", {"id": w["id"]})["worker"]["state"] == "exited", "the next spawn works")
        c.close()
    finally:
        d.stop()

    # EMFILE: the daemon's own descriptor limit runs out while workers (each a pidfd) pile up.
    d = Daemon(binary, base, name="emfile", limits={resource.RLIMIT_NOFILE: (48, 48)}).start()
    pids = []
    try:
        c = d.client()
        failure = None
        workers = []
        for _ in range(64):
            try:
                w = spawn(c, ["/bin/sleep", "60"], node=NODE)
                workers.append(w)
                pids.append(w["pid"])
            except VarlinkError as e:
                failure = e
                break
        R.check(failure is not None and failure.short == "SpawnFailed" and failure.parameters.get("errno") == errno.EMFILE,
                "out of descriptors after %d workers: %s step=%s errno=%s"
                % (len(workers), failure and failure.short, failure and failure.parameters.get("step"),
                   failure and failure.parameters.get("errno")))
        for w in workers:
            c.call("Signal", {"id": w["id"], "signal": 9})
        for w in workers:
            c.call("Wait", {"id": w["id"]})
        time.sleep(0.2)
        w = spawn(c, ["/bin/true"], node=NODE)
        R.check(c.call("Wait", {"id": w["id"]})["worker"]["state"] == "exited" and d.answers(),
                "descriptors freed: spawns work again and new clients are served")
        c.close()
    finally:
        kill_quietly(pids)
        d.stop()

    # EAGAIN: RLIMIT_NPROC of the daemon (root is exempt itself) binds workers run as another user;
    # once that user holds more processes than the limit, execve fails (PF_NPROC_EXCEEDED, execve(2)).
    if os.geteuid() != 0:
        R.skip("RLIMIT_NPROC for another user's workers needs a root daemon")
        return
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        R.skip("no user nobody")
        return
    d = Daemon(binary, base, name="nproc", limits={resource.RLIMIT_NPROC: (1, 1)}).start()
    pids = []
    try:
        c = d.client()
        failure = None
        for _ in range(8):
            try:
                w = spawn(c, ["/bin/sleep", "60"], node=NODE, user="nobody")
                pids.append(w["pid"])
            except VarlinkError as e:
                failure = e
                break
        R.check(failure is not None and failure.short == "SpawnFailed" and failure.parameters.get("errno") == errno.EAGAIN,
                "user nobody over RLIMIT_NPROC after %d workers: %s step=%s errno=%s"
                % (len(pids), failure and failure.short, failure and failure.parameters.get("step"),
                   failure and failure.parameters.get("errno")))
        w = spawn(c, ["/bin/true"], node=NODE)
        R.check(c.call("Wait", {"id": w["id"]})["worker"]["state"] == "exited" and d.answers(),
                "root's spawns still work and the daemon answers")
        c.close()
    finally:
        kill_quietly(pids)
        d.stop()


# MARK: reload

def reload(binary, workdir):
    base = os.path.join(workdir, "reload")
    conf = os.path.join(base, "conf")
    os.makedirs(conf, exist_ok=True)
    path = os.path.join(conf, "numaplaced.conf")

    def write(text):
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.rename(path + ".tmp", path)

    write("[Placement]\nDefaultMemoryPolicy=preferred\n")
    d = Daemon(binary, base, config=conf).start()
    try:
        mon = Monitor(d.socket)
        errors = []
        count = [0]
        stop = threading.Event()

        def spawner():
            cl = d.client()
            while not stop.is_set():
                try:
                    w = spawn(cl, ["/bin/true"], node=NODE)
                    cl.call("Wait", {"id": w["id"]})
                    count[0] += 1
                except Exception as e:
                    errors.append(str(e))
            cl.close()

        threads = [threading.Thread(target=spawner) for _ in range(4)]
        for t in threads:
            t.start()
        rounds = 5
        reloaded = 0
        for i in range(rounds):
            write("[Placement]\nDefaultMemoryPolicy=sideways\n")
            d.signal(signal.SIGHUP)
            # The bad file must have been read (and refused) before the good one replaces it; two
            # SIGHUPs close together may also be handled as one.
            deadline = time.monotonic() + 10
            while d.log_text().count("configuration refused") <= i and time.monotonic() < deadline:
                time.sleep(0.02)
            write("[Placement]\nDefaultMemoryPolicy=%s\n" % ("bind" if i % 2 == 0 else "preferred"))
            start = len(mon.events)
            d.signal(signal.SIGHUP)
            e = mon.wait_for(lambda e: e["kind"] == "configurationReloaded", timeout=10, start=start)
            reloaded += e is not None
            time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join(60)
        R.check(not errors and count[0] > 0, "%d spawns across %d bad and %d good SIGHUP reloads, %d errors %s"
                % (count[0], rounds, rounds, len(errors), errors[:2]))
        total = mon.count("configurationReloaded")
        R.check(reloaded == rounds and total == rounds,
                "configurationReloaded once per good file, never for a bad one (%d events for %d good)" % (total, rounds))
        c = d.client()
        w = spawn(c, ["/bin/true"], node=NODE)
        R.check(w["requested"]["memoryPolicy"] == "bind", "the last good file is in force (memory policy %s)"
                % w["requested"]["memoryPolicy"])
        refused = d.log_text().count("configuration refused")
        R.check(refused == rounds, "the bad file was refused and logged each time (%d)" % refused)
        R.check(d.answers(), "daemon answers")
        c.close()
        mon.close()
    finally:
        d.stop()


CHECKS = {
    "kill-restart": kill_restart,
    "disconnect": disconnect,
    "full-disk": full_disk,
    "device-remove": device_remove,
    "child-limits": child_limits,
    "reload": reload,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--daemon", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--only", default=",".join(CHECKS))
    a = ap.parse_args()
    for name in a.only.split(","):
        try:
            CHECKS[name](os.path.abspath(a.daemon), os.path.join(a.workdir, "faults"))
        except Exception as e:
            R.check(False, "%s: unexpected %s: %s" % (name, type(e).__name__, e))
    R.exit()


if __name__ == "__main__":
    main()
