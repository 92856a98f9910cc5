#!/usr/bin/env python3
"""A local user against the root daemon: every attack of the 2026-12-06 security review, repeated.

The daemon runs as the units run it: as root, its socket given to group `numaplace` (0660), with the
unit's wide limits (LimitNOFILE=, LimitMEMLOCK=infinity). A test user, member of that group, attacks
it through `setpriv` over the socket. Each check asserts that the attack fails and that the daemon
keeps serving the user and root.

usage: users.py --daemon PATH --workdir DIR
Needs root (it creates the user and the group, and removes them again if it created them), setpriv and
prlimit (util-linux). Time bounds are liveness bounds, never performance assertions.
"""

import argparse
import grp
import json
import os
import pwd
import resource
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from nptest import Daemon, Report, kill_quietly, status_kb  # noqa: E402

R = Report("users")
USER = "numaplace-hostile"
GROUP = "numaplace"

# Runs as the test user: sends each call of argv[2:] on one connection, prints each reply (or
# "closed"), one JSON line per call. With --monitors N, opens N Monitor streams it never reads first
# and holds them until stdin closes.
CLIENT = r'''
import json, socket, sys
path, calls = sys.argv[1], sys.argv[2:]
held = []
if calls and calls[0].startswith("--monitors="):
    for _ in range(int(calls.pop(0).split("=")[1])):
        m = socket.socket(socket.AF_UNIX); m.connect(path)
        m.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        m.sendall(b'{"method":"io.numaplaced.Manager.Monitor","parameters":{},"more":true}\0')
        held.append(m)
    print(json.dumps({"held": len(held)}), flush=True)
    sys.stdin.read()
    sys.exit(0)
if calls and calls[0].startswith("--big-spawns="):
    # Spawns of /bin/true with two 120 KiB arguments, made here (too large for an argv of ours).
    big = "x" * (120 << 10)
    calls = [json.dumps({"method": "io.numaplaced.Manager.Spawn",
                         "parameters": {"argv": ["/bin/true", big, big]}})] * int(calls[0].split("=")[1])
s = socket.socket(socket.AF_UNIX); s.settimeout(30); s.connect(path)
buf = b""
for call in calls:
    s.sendall(call.encode() + b"\0")
    while b"\0" not in buf:
        chunk = s.recv(1 << 16)
        if not chunk:
            print(json.dumps({"closed": True}), flush=True); sys.exit(0)
        buf += chunk
    msg, buf = buf.split(b"\0", 1)
    print(msg.decode(), flush=True)
'''


def call(method, **parameters):
    return json.dumps({"method": "io.numaplaced.Manager." + method, "parameters": parameters})


class User:
    def __init__(self, workdir):
        self.created_user = self.created_group = False
        try:
            grp.getgrnam(GROUP)
        except KeyError:
            subprocess.run(["groupadd", "--system", GROUP], check=True)
            self.created_group = True
        try:
            pwd.getpwnam(USER)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                            "--groups", GROUP, USER], check=True)
            self.created_user = True
        pw = pwd.getpwnam(USER)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        self.group = grp.getgrnam(GROUP).gr_gid
        self.script = os.path.join(workdir, "client.py")
        with open(self.script, "w") as f:
            f.write(CLIENT)
        os.chmod(self.script, 0o644)

    def argv(self, socket_path, args, prefix=()):
        return list(prefix) + ["setpriv", "--reuid=%d" % self.uid, "--regid=%d" % self.gid,
                               "--groups=%d" % self.group, sys.executable, self.script, socket_path] + list(args)

    def calls(self, socket_path, calls, prefix=()):
        out = subprocess.run(self.argv(socket_path, calls, prefix), capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError("client as %s: %s" % (USER, out.stderr.strip()[-300:]))
        return [json.loads(line) for line in out.stdout.splitlines()]

    def remove(self):
        if self.created_user:
            subprocess.run(["userdel", USER])
        if self.created_group:
            subprocess.run(["groupdel", GROUP])


def error(reply):
    return (reply.get("error") or "").rsplit(".", 1)[-1]


def pid_of(reply):
    return ((reply.get("parameters") or {}).get("worker") or {}).get("pid")


def served(d):
    """Root's spawn and status, right after an attack."""
    try:
        c = d.client(timeout=30)
        w = c.call("Spawn", {"argv": ["/bin/true"]})["worker"]
        c.call("Wait", {"id": w["id"]})
        c.close()
        return True
    except Exception:
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--daemon", required=True)
    ap.add_argument("--workdir", required=True)
    a = ap.parse_args()
    if os.geteuid() != 0:
        R.skip("needs root to create a user and a group")
        R.exit()
    base = os.path.join(a.workdir, "users")
    os.makedirs(base, exist_ok=True)
    # The user must reach the socket: every directory above it traversable, none writable by it.
    path = base
    while path != "/":
        os.chmod(path, os.stat(path).st_mode | 0o011)
        path = os.path.dirname(path)
    user = User(base)
    # As wide as this host lets root make them (the unit asks for infinity and 20000; raising a hard
    # limit needs CAP_SYS_RESOURCE, which some sandboxes withhold even from root).
    memlock = resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]
    nofile = min(20000, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    d = Daemon(os.path.abspath(a.daemon), os.path.join(base, "d"),
               limits={resource.RLIMIT_MEMLOCK: (memlock, memlock), resource.RLIMIT_NOFILE: (nofile, nofile)})
    os.makedirs(d.workdir, exist_ok=True)
    os.chmod(d.workdir, 0o755)
    pids = []
    helpers = []
    try:
        d.start()
        # The daemon answers as soon as it is bound and gives the socket to the group just after
        # (until then the umask's 0755 lets no one else connect): wait for that.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and os.stat(d.socket).st_mode & 0o777 != 0o660:
            time.sleep(0.01)
        st = os.stat(d.socket)
        R.check(st.st_gid == user.group and st.st_mode & 0o777 == 0o660,
                "the socket is root:%s 0660, as the units give it (mode %o)" % (GROUP, st.st_mode & 0o777))
        sock = d.socket
        # 1. A FIFO nobody opens, as stdin and as stdout.
        fifo = os.path.join(base, "fifo")
        os.mkfifo(fifo, 0o666)
        started = time.monotonic()
        r = user.calls(sock, [call("Spawn", argv=["/bin/true"], stdin=fifo), call("Spawn", argv=["/bin/true"], stdout=fifo),
                              call("Spawn", argv=["/bin/true"])])
        R.check(error(r[0]) == "SpawnFailed" and error(r[1]) == "SpawnFailed" and pid_of(r[2]),
                "a FIFO as stdin or stdout is refused at once (%.2f s), the next spawn served: %s"
                % (time.monotonic() - started, [error(x) or "ok" for x in r]))
        R.check(served(d), "root is served after the FIFO")
        # 5. The daemon's address map through /proc/self.
        r = user.calls(sock, [call("Spawn", argv=["/bin/cat"], stdin="/proc/self/maps")])
        R.check(error(r[0]) == "SpawnFailed", "/proc/self/maps as stdin is refused (%s)" % error(r[0]))
        # 4. The daemon's own stdout.
        r = user.calls(sock, [call("Spawn", argv=["/bin/echo", "FORGED-BY-USER"], stdout="inherit")])
        time.sleep(0.3)
        R.check(error(r[0]) == "InvalidParameter" and "FORGED-BY-USER" not in d.log_text(),
                "inherit is refused and nothing reaches the daemon's log (%s)" % error(r[0]))
        # 8. PATH searched with the user's hands.
        hidden = os.path.join(base, "hidden")
        os.makedirs(hidden, mode=0o700, exist_ok=True)
        subprocess.run(["cp", "/bin/true", os.path.join(hidden, "secret-tool")], check=True)
        r = user.calls(sock, [call("Spawn", argv=["secret-tool"], environment=["PATH=" + hidden]),
                              call("Spawn", argv=["no-such-tool"], environment=["PATH=" + hidden])])
        errnos = [(x.get("parameters") or {}).get("errno") for x in r]
        R.check(errnos[0] == errnos[1] == 2, "a program the user cannot see is not found, like a missing one (errno %s)" % errnos)
        # 8. The caller's limits and groups, not the daemon's.
        r = user.calls(sock, [call("Spawn", argv=["/bin/sleep", "300"])],
                       prefix=["prlimit", "--nofile=100:200", "--memlock=65536:65536", "--"])
        pid = pid_of(r[0])
        limits = open("/proc/%d/limits" % pid).read() if pid else ""
        pids += [pid] if pid else []
        nofile_row = [ln.split()[3:5] for ln in limits.splitlines() if ln.startswith("Max open files")]
        memlock_row = [ln.split()[3:5] for ln in limits.splitlines() if ln.startswith("Max locked memory")]
        R.check(nofile_row == [["100", "200"]] and memlock_row == [["65536", "65536"]],
                "the worker has the caller's limits, not the daemon's (%s %s)" % (nofile_row, memlock_row))
        # 8, fail closed: the process that connected has exited and been reaped (its parent holds the connection), so
        # its limits cannot be read; the worker would get the daemon's wider ones. Refused.
        orphan = subprocess.run(
            ["setpriv", "--reuid=%d" % user.uid, "--regid=%d" % user.gid, "--groups=%d" % user.group, sys.executable, "-c",
             # a child connects and exits, and is reaped; the parent then uses the connection
             "import os,socket,sys\ns=socket.socket(socket.AF_UNIX)\npid=os.fork()\n"
             "if pid == 0:\n    s.connect(sys.argv[1]); os._exit(0)\nos.waitpid(pid, 0)\n"
             "s.sendall(b'{\"method\":\"io.numaplaced.Manager.Spawn\",\"parameters\":{\"argv\":[\"/bin/true\"]}}\\0')\n"
             "s.settimeout(10);print(s.recv(65536).split(b'\\0')[0].decode())", sock],
            capture_output=True, text=True, timeout=60)
        reply = json.loads(orphan.stdout.strip() or "{}")
        R.check(error(reply) == "PermissionDenied",
                "a Spawn on a connection whose process has exited is refused, not run with the daemon's limits (%s)"
                % (error(reply) or orphan.stdout.strip()[:200] or orphan.stderr.strip()[-200:]))
        # 6. Exclusive cores.
        cores = len(d.client().call("GetTopology")["cores"])
        if cores >= 2:
            share = max(1, cores // 2)
            r = user.calls(sock, [call("Spawn", argv=["/bin/sleep", "300"], exclusiveCores=1)] * (share + 1))
            pids += [pid_of(x) for x in r if pid_of(x)]
            c = d.client()
            root = c.call("Spawn", {"argv": ["/bin/sleep", "300"], "exclusiveCores": 1})["worker"]
            pids.append(root["pid"])
            R.check(error(r[share]) == "LimitExceeded" and all(pid_of(x) for x in r[:share]),
                    "the user gets its %d exclusive core(s), not more (%s); root still gets one" % (share, error(r[share])))
        else:
            R.skip("one core: no exclusive share to take")
        kill_quietly(pids)
        # 2. Clients that do not read: 8 Monitor streams, and pipelined ListWorkers never read.
        holder = subprocess.Popen(user.argv(sock, ["--monitors=8"]), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        helpers.append(holder)
        holder.stdout.readline()
        rss_before = status_kb(d.pid, "VmRSS")
        peak = 0
        for _ in range(5):
            user.calls(sock, ["--big-spawns=60"])
            peak = max(peak, status_kb(d.pid, "VmRSS"))
        # 60 pipelined ListWorkers (each up to the user's 8 MiB of history) on a connection never read.
        raw = subprocess.Popen(["setpriv", "--reuid=%d" % user.uid, "--regid=%d" % user.gid, "--groups=%d" % user.group,
                                sys.executable, "-c",
                                "import socket,sys,time\ns=socket.socket(socket.AF_UNIX);s.connect(sys.argv[1])\n"
                                "s.setsockopt(socket.SOL_SOCKET,socket.SO_RCVBUF,4096)\n"
                                "for _ in range(60): s.sendall(b'{\"method\":\"io.numaplaced.Manager.ListWorkers\"}\\0')\n"
                                "time.sleep(5)", sock])
        helpers.append(raw)
        time.sleep(3)
        peak = max(peak, status_kb(d.pid, "VmRSS"))
        R.check(peak < 100 * 1024, "RSS %d kB → peak %d kB with 8 Monitors and 60 ListWorkers unread while 300 "
                "workers with 240 KiB argvs ran (limit 100 MB)" % (rss_before, peak))
        R.check(served(d), "root is served while they do not read")
        holder.stdin.close()
        holder.wait(30)
        raw.wait(30)
        # 3. A state or socket directory the user owns.
        owned = os.path.join(base, "owned")
        os.makedirs(owned, exist_ok=True)
        os.chown(owned, user.uid, user.gid)
        for args in (["--socket", os.path.join(owned, "s"), "--state-dir", os.path.join(base, "st")],
                     ["--socket", os.path.join(base, "s2"), "--state-dir", owned]):
            out = subprocess.run([os.path.abspath(a.daemon)] + args + ["--event-source", "none", "--log-to", "stderr"],
                                 capture_output=True, text=True, timeout=60)
            R.check(out.returncode != 0 and "refusing" in out.stderr,
                    "a daemon told to use %s refuses to start: %s" % (owned, out.stderr.strip().splitlines()[-1:]))
        # 8. parentDeathSignal reaches the user's worker.
        r = user.calls(sock, [call("Spawn", argv=["/bin/sleep", "300"], parentDeathSignal=9)])
        pid = pid_of(r[0])
        d.proc.kill()
        d.proc.wait()
        gone = False
        for _ in range(100 if pid else 0):
            if not os.path.exists("/proc/%d" % pid) or open("/proc/%d/stat" % pid).read().split(") ")[1][0] == "Z":
                gone = True
                break
            time.sleep(0.05)
        R.check(pid and gone, "killing the daemon kills the user's worker that asked for parentDeathSignal")
    except Exception as e:
        R.check(False, "unexpected %s: %s" % (type(e).__name__, e))
    finally:
        kill_quietly(pids)
        for h in helpers:
            h.kill()
            h.wait()
        d.stop()
        user.remove()
    R.exit()


if __name__ == "__main__":
    main()
