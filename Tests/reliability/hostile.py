#!/usr/bin/env python3
"""Hostile clients: numaplaced's memory stays bounded and other clients are served.

  oversized      2 MB without a NUL, hostile nesting, a 1 MB cpulist, thousands of pipelined calls
  idle           thousands of idle connections against MaxConnections
  slow-monitor   a Monitor client that stops reading while events pour out
  limits         MaxWorkersPerUser against simultaneous Spawns from many connections

usage: hostile.py --daemon PATH --workdir DIR [--only NAME,...] [--long]
Time bounds here are liveness bounds (seconds, far above the measured figures, which are printed),
never performance assertions.
"""

import argparse
import array
import os
import resource
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from nptest import Client, Daemon, Monitor, Report, VarlinkError, first_node, kill_quietly  # noqa: E402

R = Report("hostile")
NODE = first_node()
MB = 1024


def write_config(base, text):
    conf = os.path.join(base, "conf")
    os.makedirs(conf, exist_ok=True)
    with open(os.path.join(conf, "numaplaced.conf"), "w") as f:
        f.write(text)
    return conf


def peer_pidfd_supported():
    """Whether this kernel answers SO_PEERPIDFD (77) on a Unix socket."""
    a, b = socket.socketpair()
    try:
        os.close(a.getsockopt(socket.SOL_SOCKET, 77))
        return True
    except OSError:
        return False
    finally:
        a.close()
        b.close()


def timed_status(d):
    """Seconds a fresh client waits for GetStatus."""
    start = time.monotonic()
    c = d.client(timeout=60)
    c.call("GetStatus")
    c.close()
    return time.monotonic() - start


# MARK: oversized

def oversized(binary, workdir, long):
    d = Daemon(binary, os.path.join(workdir, "oversized")).start()
    try:
        d.answers()
        rss0 = d.rss_kb()
        # 2 MB without a terminator, in 64 kB writes: the connection ends once the bound is passed.
        c = d.client()
        sent = 0
        try:
            while sent < 2 << 20:
                c.send_raw(b"a" * 65536)
                sent += 65536
        except OSError:
            pass
        closed = c.is_closed_by_peer(wait=5)
        R.check(closed, "2 MB without a NUL: connection closed after %d kB sent (MaxMessageBytes 1 MB)" % (sent // 1024))
        c.close()

        # Nesting deeper than any message of the interface.
        c = d.client()
        c.send_raw(b"[" * 100000 + b"\0")
        R.check(c.is_closed_by_peer(wait=5), "100,000 nested brackets: connection closed")
        c.close()
        c = d.client()
        c.send_raw(b'{"method":"io.numaplaced.Manager.GetStatus","parameters":' + b'{"a":' * 5000 + b"1" + b"}" * 5001 + b"\0")
        R.check(c.is_closed_by_peer(wait=5), "5,000 nested objects inside parameters: connection closed")
        c.close()

        # Not JSON at all, and JSON that is not an object with a method.
        for junk in (b"\xff\xfe\x00", b"[1,2,3]\0", b'{"method":42}\0'):
            c = d.client()
            c.send_raw(junk)
            R.check(c.is_closed_by_peer(wait=5), "%r: connection closed" % junk[:12])
            c.close()

        # A 1 MB cpulist that is all full ranges (each once cost 65,536 single-bit inserts), sent while
        # another client asks for the status.
        cpus = ",".join(["0-65535"] * 120000)
        hog = d.client(timeout=120)
        result = {}

        def send_hog():
            start = time.monotonic()
            try:
                hog.call("Spawn", {"argv": ["/bin/true"], "cpus": cpus})
                result["reply"] = "placed"
            except VarlinkError as e:
                result["reply"] = e.short
            except Exception as e:
                result["reply"] = "transport: %s" % e
            result["seconds"] = time.monotonic() - start

        t = threading.Thread(target=send_hog)
        t.start()
        time.sleep(0.05)
        status = timed_status(d)
        t.join(120)
        R.check(result.get("reply") in ("PlacementImpossible", "InvalidParameter"),
                "Spawn with a 1 MB cpulist answered %s in %.2f s" % (result.get("reply"), result.get("seconds", -1)))
        R.check(status < 30, "GetStatus from another client meanwhile: %.3f s" % status)
        hog.close()

        # Pipelined calls are all answered, in order, whatever the queue bound (64 per connection):
        # past it the daemon stops reading and the client waits on its own socket buffer.
        c = d.client(timeout=60)
        c.send_raw(b"".join(b'{"method":"io.numaplaced.Manager.GetWorker","parameters":{"id":"p%d"}}\0' % i
                            for i in range(2000)))
        ids = []
        try:
            for _ in range(2000):
                ids.append(c.recv().get("parameters", {}).get("id"))
        except Exception as e:
            ids.append("transport: %s" % e)
        R.check(ids == ["p%d" % i for i in range(2000)],
                "2,000 pipelined calls on one connection: %d answered in order (of 2,000)"
                % next((i for i, x in enumerate(ids) if x != "p%d" % i), len(ids)))
        c.close()

        # Behind a Wait that blocks for seconds, 20,000 pipelined calls (1.4 MB): the daemon holds at
        # most a queue's worth of calls and MaxMessageBytes of their bytes, then reads no further;
        # other clients are served meanwhile, and every call is answered once the Wait returns.
        c = d.client(timeout=60)
        wid = c.call("Spawn", {"argv": ["/bin/sleep", "3"]})["worker"]["id"]
        rss_before = d.rss_kb()
        burst = b'{"method":"io.numaplaced.Manager.Wait","parameters":{"id":"%s"}}\0' % wid.encode()
        burst += b"".join(b'{"method":"io.numaplaced.Manager.GetWorker","parameters":{"id":"q%d"}}\0' % i
                          for i in range(20000))
        sender = threading.Thread(target=lambda: c.send_raw(burst))
        sender.start()
        time.sleep(1.5)
        rss_paused = d.rss_kb()
        held = sender.is_alive()
        status = timed_status(d)
        answered = 0
        try:
            first = c.recv()
            answered = 1 if first.get("parameters", {}).get("worker", {}).get("state") == "exited" else 0
            for i in range(20000):
                if c.recv().get("parameters", {}).get("id") != "q%d" % i:
                    break
                answered += 1
        except Exception:
            pass
        sender.join(60)
        R.check(answered == 20001 and held and rss_paused - rss_before < 16 * MB and status < 30,
                "20,000 calls pipelined behind a 3 s Wait: %d answered in order; the sender held back by its "
                "socket meanwhile: %s; RSS %d kB → %d kB; GetStatus from another client %.3f s"
                % (answered, held, rss_before, rss_paused, status))
        c.close()

        # The same held-back client hangs up: its tied worker is stopped all the same (the paused
        # connection is checked for a hang-up once a second).
        c = d.client(timeout=60)
        tied = c.call("Spawn", {"argv": ["/bin/sleep", "60"], "tied": True})["worker"]
        burst = b'{"method":"io.numaplaced.Manager.Wait","parameters":{"id":"%s"}}\0' % tied["id"].encode()
        burst += b"".join(b'{"method":"io.numaplaced.Manager.GetWorker","parameters":{"id":"t%d"}}\0' % i
                          for i in range(20000))
        c.sock.setblocking(False)
        sent = 0
        deadline = time.monotonic() + 10
        while sent < len(burst) and time.monotonic() < deadline:
            try:
                sent += c.sock.send(burst[sent:])
            except BlockingIOError:
                time.sleep(0.05)
        held = sent < len(burst)
        hung_up = time.monotonic()
        c.close()
        gone = None
        while time.monotonic() - hung_up < 20:
            try:
                os.kill(tied["pid"], 0)
            except ProcessLookupError:
                gone = time.monotonic() - hung_up
                break
            time.sleep(0.1)
        if gone is None:
            kill_quietly([tied["pid"]])
        R.check(held and gone is not None,
                "a client held back (%d of %d bytes taken) hangs up: its tied worker stopped after %s s"
                % (sent, len(burst), "%.1f" % gone if gone is not None else "never (20 s)"))

        # Calls answered from the daemon's reading thread (GetTopology) are held back like the others when
        # the client reads slowly: every reply arrives, none is dropped and the connection is not cut off.
        c = d.client(timeout=60)
        n = 3000
        sender = threading.Thread(target=lambda: c.send_raw(b'{"method":"io.numaplaced.Manager.GetTopology"}\0' * n))
        sender.start()
        got = 0
        try:
            for i in range(n):
                if c.recv().get("parameters", {}).get("nodes") is None:
                    break
                got += 1
                if i % 100 == 0:
                    time.sleep(0.05)   # a slow reader: the daemon's reply bounds fill meanwhile
        except Exception:
            pass
        sender.join(60)
        R.check(got == n, "%d pipelined GetTopology read slowly: %d answered (none dropped, not cut off)" % (n, got))
        c.close()

        # Behind a queue held full (a 3 s Wait and 63 more calls), a flood of empty messages, each with 16
        # descriptors: the daemon stops reading after a bounded backlog (each waiting message is charged
        # for its entry and its descriptors), holds a bounded number of the client's descriptors, and
        # closes the connection at the first empty message once the queue moves (not a Varlink call).
        c = d.client(timeout=60)
        wid = c.call("Spawn", {"argv": ["/bin/sleep", "3"]})["worker"]["id"]
        fds0, rss_before = d.fd_count(), d.rss_kb()
        head = b'{"method":"io.numaplaced.Manager.Wait","parameters":{"id":"%s"}}\0' % wid.encode()
        head += b"".join(b'{"method":"io.numaplaced.Manager.GetWorker","parameters":{"id":"e%d"}}\0' % i for i in range(63))
        c.send_raw(head)
        r, w = os.pipe()
        c.sock.setblocking(False)
        floods = 0
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline and floods < 100000:
            try:
                c.sock.sendmsg([b"\0"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [r] * 16))])
                floods += 1
            except BlockingIOError:
                time.sleep(0.01)
            except OSError:
                break
        held_fds, rss_held = d.fd_count(), d.rss_kb()
        os.close(r)
        os.close(w)
        closed = c.is_closed_by_peer(wait=15)
        c.close()
        time.sleep(0.5)
        R.check(held_fds - fds0 < 64 * 16 + 1024 and rss_held - rss_before < 64 * MB and closed and d.answers()
                and d.fd_count() <= fds0 + 4,
                "%d empty messages with 16 descriptors each behind a full queue: the daemon held %d more "
                "descriptors and %d kB more RSS at most, then closed the connection (%s); descriptors back to %d"
                % (floods, held_fds - fds0, rss_held - rss_before, closed, d.fd_count()))

        # Limits a client controls inside a valid message.
        c = d.client()
        try:
            c.call("Spawn", {"argv": ["/bin/true"], "environment": ["X=" + "y" * 1000] * 400})
            R.check(False, "400 kB of environment refused")
        except VarlinkError as e:
            R.check(e.short == "LimitExceeded", "400 kB of environment: %s %s" % (e.short, e.parameters))
        c.close()

        time.sleep(0.5)
        rss1 = d.rss_kb()
        R.check(d.answers() and rss1 - rss0 < 64 * MB,
                "daemon answers; RSS %d kB → %d kB after the oversized messages" % (rss0, rss1))
    finally:
        d.stop()


# MARK: idle

def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(n, hard) if hard != resource.RLIM_INFINITY else n
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def idle(binary, workdir, long):
    base = os.path.join(workdir, "idle")
    limit = 256
    count = 10000 if long else 3000
    have = raise_nofile(count + 256)
    if have < count + 64:
        R.skip("RLIMIT_NOFILE of this process is %d; %d idle connections need more" % (have, count))
        return
    conf = write_config(base, "[Limits]\nMaxConnections=%d\n" % limit)
    d = Daemon(binary, base, config=conf,
               limits={resource.RLIMIT_NOFILE: (count + 1024, count + 1024)}).start()
    conns = []
    try:
        d.answers()
        time.sleep(0.3)
        fds0, rss0 = d.fd_count(), d.rss_kb()
        refused = 0
        for _ in range(count):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(None)   # blocking: a full listen backlog makes connect wait, not fail
            try:
                s.connect(d.socket)
                conns.append(s)
            except OSError:
                refused += 1
                s.close()
        time.sleep(1.0)
        # Which are still open? The daemon closes the ones beyond its limit at once.
        open_ = 0
        for s in conns:
            s.setblocking(False)
            try:
                data = s.recv(1)
                open_ += data != b""
            except BlockingIOError:
                open_ += 1
            except OSError:
                pass
        fds1, rss1 = d.fd_count(), d.rss_kb()
        R.info("%d connections made (%d refused at connect); %d still open after 1 s; daemon fds %d → %d, RSS %d → %d kB"
               % (len(conns), refused, open_, fds0, fds1, rss0, rss1))
        # Each connection holds its socket and, where the kernel has SO_PEERPIDFD (6.5), the caller's
        # pidfd (read at Spawn for the caller's groups and limits): two descriptors.
        per = 2 if peer_pidfd_supported() else 1
        R.check(fds1 - fds0 <= per * limit + 4, "daemon holds %d connection descriptors with %d clients connected "
                "(MaxConnections %d, %d descriptors each)" % (fds1 - fds0, count, limit, per))
        # Every connect succeeds (it blocks on a full backlog), and the newest `limit` stay open: the
        # longest-idle one gives way to each newcomer, so neither more nor (much) fewer are kept.
        R.check(refused == 0 and limit - 4 <= open_ <= limit + 4,
                "%d of %d connections kept open, %d refused at connect (MaxConnections %d)" % (open_, count, refused, limit))
        R.check(rss1 - rss0 < 64 * MB, "RSS +%d kB with the limit's worth of idle connections (%.1f kB each)"
                % (rss1 - rss0, (rss1 - rss0) / max(1, min(open_, limit))))
        # A new client while the idle ones hold every slot.
        served = d.answers()
        R.check(served, "a new client is served while %d idle connections are held" % open_)
        for s in conns:
            s.close()
        conns = []
        time.sleep(1.0)
        fds2 = d.fd_count()
        R.check(fds2 <= fds0 and d.answers(), "idle clients gone: daemon fds back to %d (now %d) and it answers" % (fds0, fds2))
    finally:
        for s in conns:
            s.close()
        d.stop()

    # Busy connections (a Monitor stream) are never the ones closed to make room.
    conf = write_config(base, "[Limits]\nMaxConnections=8\n")
    d = Daemon(binary, base, name="busy", config=conf).start()
    monitors = []
    try:
        monitors = [Monitor(d.socket) for _ in range(7)]
        idle_one = d.client()
        time.sleep(0.2)
        served = d.answers()   # takes the idle connection's slot
        R.check(served and idle_one.is_closed_by_peer(wait=2),
                "at MaxConnections=8 with 7 Monitor streams, a new client is served by closing the idle one")
        # That client has closed, but the daemon frees its slot when it reads the close (and marks its
        # call done just after the reply): on a loaded host an eighth stream connecting at once can find
        # all eight slots busy (CI saw the reset). Give the close time to land.
        time.sleep(0.5)
        eighth = Monitor(d.socket)
        c = d.client(timeout=5)
        try:
            c.call("GetStatus")
            full = "served"
        except Exception:
            full = "refused"
        c.close()
        time.sleep(0.2)
        open_streams = sum(m.ended is None for m in monitors + [eighth])
        R.check(full == "refused" and open_streams == 8,
                "with 8 Monitor streams a ninth client is %s and %d/8 streams stay open" % (full, open_streams))
    finally:
        for m in monitors:
            m.close()
        d.stop()


# MARK: slow-monitor

def slow_monitor(binary, workdir, long):
    base = os.path.join(workdir, "slow-monitor")
    backlog = 1024 if long else 64
    conf = write_config(base, "[Limits]\nMaxMonitorBacklog=%d\n" % backlog)
    d = Daemon(binary, base, config=conf).start()
    try:
        d.answers()
        rss0 = d.rss_kb()
        # The slow reader: a small receive buffer, one read of the ready event, then nothing.
        slow = Client(d.socket, timeout=30, rcvbuf=4096)
        slow.send("io.numaplaced.Manager.Monitor", {}, more=True)
        slow.recv()
        fast = Monitor(d.socket)
        spawns = 3000 if long else 600
        errors = []
        latencies = []
        done = [0]

        def spawner(n):
            c = d.client()
            for _ in range(n):
                try:
                    w = c.call("Spawn", {"argv": ["/bin/true"], "node": NODE})
                    c.call("Wait", {"id": w["worker"]["id"]})
                    done[0] += 1
                except Exception as e:
                    errors.append(str(e))
                    return
            c.close()

        threads = [threading.Thread(target=spawner, args=(spawns // 4,)) for _ in range(4)]
        for t in threads:
            t.start()
        peak = rss0
        while any(t.is_alive() for t in threads):
            latencies.append(timed_status(d))
            peak = max(peak, d.rss_kb() or 0)
            time.sleep(0.05)
        for t in threads:
            t.join()
        total = done[0]
        R.check(not errors and total == spawns // 4 * 4,
                "%d spawns by other clients while the Monitor reader stalls, %d errors %s" % (total, len(errors), errors[:2]))
        latencies.sort()
        R.check(latencies and latencies[-1] < 30, "GetStatus meanwhile: %d calls, median %.1f ms, max %.1f ms"
                % (len(latencies), latencies[len(latencies) // 2] * 1000 if latencies else -1,
                   latencies[-1] * 1000 if latencies else -1))
        R.check(peak - rss0 < 64 * MB, "daemon RSS %d kB → peak %d kB while %d events queue up for the stalled reader"
                % (rss0, peak, total * 2))
        deadline = time.monotonic() + 5
        while fast.count("workerExited") < total and time.monotonic() < deadline:
            time.sleep(0.05)
        R.check(fast.count("workerExited") >= total, "a reading Monitor client saw all %d exits (%d)"
                % (total, fast.count("workerExited")))
        # The stalled reader, reading again: some events, then the backlog notice (or the end).
        got, ending = 0, None
        slow.sock.settimeout(10)
        try:
            while True:
                m = slow.recv()
                if "error" in m:
                    ending = m["error"]
                    break
                got += 1
        except socket.timeout:
            ending = None  # neither the backlog notice nor a close within 10 s: not cut off
        except Exception as e:
            ending = ending or "closed (%s)" % type(e).__name__
        R.check(got < total * 2 and ending is not None,
                "the stalled reader was cut off: %d of %d events queued for it, then %s (MaxMonitorBacklog %d)"
                % (got, total * 2, ending, backlog))
        slow.close()
        fast.close()
        R.check(d.answers(), "daemon answers")
    finally:
        d.stop()


# MARK: limits

def limits(binary, workdir, long):
    """MaxWorkersPerUser holds for spawns that race each other from many connections."""
    base = os.path.join(workdir, "limits")
    limit = 4
    conf = write_config(base, "[Limits]\nMaxWorkersPerUser=%d\n" % limit)
    d = Daemon(binary, base, config=conf).start()
    pids = []
    try:
        outcomes = []
        lock = threading.Lock()
        barrier = threading.Barrier(16)

        def one():
            c = d.client()
            barrier.wait()
            try:
                w = c.call("Spawn", {"argv": ["/bin/sleep", "30"], "node": NODE})["worker"]
                out = ("ok", w["pid"])
            except VarlinkError as e:
                out = (e.short, None)
            with lock:
                outcomes.append(out)
            c.close()

        threads = [threading.Thread(target=one) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        pids = [p for o, p in outcomes if o == "ok"]
        c = d.client()
        running = c.call("GetStatus")["runningWorkers"]
        c.close()
        # Every call answered, exactly the limit's worth started (each sleeps 30 s), the rest refused.
        R.check(len(outcomes) == 16 and len(pids) == limit and running == limit
                and all(o in ("ok", "LimitExceeded") for o, _ in outcomes),
                "16 simultaneous Spawns against MaxWorkersPerUser=%d: %d started, %d running, others %s"
                % (limit, len(pids), running, sorted(set(o for o, _ in outcomes if o != "ok"))))
    finally:
        kill_quietly(pids)
        d.stop()


CHECKS = {"oversized": oversized, "idle": idle, "slow-monitor": slow_monitor, "limits": limits}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--daemon", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--only", default=",".join(CHECKS))
    ap.add_argument("--long", action="store_true")
    a = ap.parse_args()
    for name in a.only.split(","):
        try:
            CHECKS[name](os.path.abspath(a.daemon), os.path.join(a.workdir, "hostile"), a.long)
        except Exception as e:
            R.check(False, "%s: unexpected %s: %s" % (name, type(e).__name__, e))
    R.exit()


if __name__ == "__main__":
    main()
