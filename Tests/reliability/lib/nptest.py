"""Shared pieces of the reliability checks: a raw Varlink client (so hostile bytes can be sent), a
numaplaced started in its own scratch directory, /proc readings, and the PASS/FAIL/SKIP report the
suite counts. Standard library only."""

import errno
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time

MANAGER = "io.numaplaced.Manager."


class Report:
    """Prints one line per check; `Tests/reliability/run` counts the PASS and FAIL lines."""

    def __init__(self, area):
        self.area = area
        self.failed = 0
        self.passed = 0

    def check(self, ok, text):
        print(("PASS " if ok else "FAIL ") + self.area + ": " + text, flush=True)
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        return ok

    def skip(self, text):
        print("SKIP " + self.area + ": " + text, flush=True)

    def info(self, text):
        print("     " + self.area + ": " + text, flush=True)

    def exit(self):
        sys.exit(1 if self.failed else 0)


class Closed(Exception):
    pass


class Client:
    """A blocking Varlink client over a Unix socket, one NUL-terminated JSON object per message."""

    def __init__(self, path, timeout=30.0, rcvbuf=None):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, method, parameters=None, more=False, oneway=False):
        msg = {"method": method}
        if parameters is not None:
            msg["parameters"] = parameters
        if more:
            msg["more"] = True
        if oneway:
            msg["oneway"] = True
        self.send_raw(json.dumps(msg).encode() + b"\0")

    def recv(self):
        while b"\0" not in self.buf:
            data = self.sock.recv(1 << 16)
            if not data:
                raise Closed("connection closed by the daemon")
            self.buf += data
        msg, _, self.buf = self.buf.partition(b"\0")
        return json.loads(msg)

    def call(self, method, parameters=None):
        """Returns the reply's parameters; raises VarlinkError for an error reply."""
        self.send(MANAGER + method if "." not in method else method, parameters)
        reply = self.recv()
        if "error" in reply:
            raise VarlinkError(reply["error"], reply.get("parameters", {}))
        return reply.get("parameters", {})

    def is_closed_by_peer(self, wait=2.0):
        """True when the daemon closed this connection (EOF or reset) within `wait` seconds."""
        self.sock.settimeout(wait)
        try:
            while True:
                data = self.sock.recv(1 << 16)
                if not data:
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
        except OSError as e:
            return e.errno in (errno.ECONNRESET, errno.EPIPE)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class VarlinkError(Exception):
    def __init__(self, name, parameters):
        super().__init__("%s %s" % (name, parameters))
        self.name = name
        self.short = name.rsplit(".", 1)[-1]
        self.parameters = parameters


class Monitor:
    """Follows Monitor on its own connection and thread, keeping every event."""

    def __init__(self, path):
        self.client = Client(path, timeout=None)
        self.events = []
        self.lock = threading.Condition()
        self.ended = None
        self.client.send(MANAGER + "Monitor", {}, more=True)
        first = self.client.recv()
        assert first["parameters"]["event"]["kind"] == "ready", first
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            while True:
                reply = self.client.recv()
                with self.lock:
                    if "error" in reply:
                        self.ended = reply["error"]
                        self.lock.notify_all()
                        return
                    self.events.append(reply["parameters"]["event"])
                    self.lock.notify_all()
        except Exception as e:  # closed at the end of a check
            with self.lock:
                self.ended = str(e)
                self.lock.notify_all()

    def wait_for(self, predicate, timeout=10.0, start=0):
        """Waits for an event (from index `start` on) matching `predicate`; returns it or None."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                for e in self.events[start:]:
                    if predicate(e):
                        return e
                left = deadline - time.monotonic()
                if left <= 0 or self.ended is not None:
                    return None
                self.lock.wait(left)

    def count(self, kind):
        with self.lock:
            return sum(1 for e in self.events if e["kind"] == kind)

    def close(self):
        self.client.close()


class Daemon:
    """A numaplaced in a scratch directory of its own: socket, state and log there."""

    def __init__(self, binary, workdir, name="daemon", args=(), config=None, state_dir=None,
                 event_source="none", limits=None, preexec=None, env=None):
        self.binary = binary
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.socket = os.path.join(workdir, name + ".sock")
        self.state_dir = state_dir or os.path.join(workdir, name + "-state")
        self.log_path = os.path.join(workdir, name + ".log")
        self.config = config or os.path.join(workdir, "no-config")
        self.args = list(args)
        self.event_source = event_source
        self.limits = limits or {}
        self.preexec = preexec
        self.env = env
        self.proc = None

    def start(self, timeout=60.0):
        try:
            os.unlink(self.socket)
        except FileNotFoundError:
            pass
        limits = self.limits
        extra = self.preexec

        def prepare():
            for what, value in limits.items():
                resource.setrlimit(what, value)
            if extra:
                extra()

        log = open(self.log_path, "ab")
        argv = [self.binary, "--socket", self.socket, "--state-dir", self.state_dir, "--config", self.config,
                "--event-source", self.event_source, "--log-to", "stderr"] + self.args
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     preexec_fn=prepare, env=self.env)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("numaplaced exited with %s; log %s" % (self.proc.returncode, self.log_path))
            try:
                Client(self.socket, timeout=2).close()
                return self
            except OSError:
                time.sleep(0.01)
        raise RuntimeError("numaplaced did not answer within %d s" % timeout)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def client(self, timeout=30.0, **kw):
        return Client(self.socket, timeout=timeout, **kw)

    def answers(self):
        """True when a fresh connection gets a GetStatus reply."""
        try:
            c = self.client(timeout=10)
            c.call("GetStatus")
            c.close()
            return True
        except Exception:
            return False

    def rss_kb(self):
        return status_kb(self.pid, "VmRSS")

    def fd_count(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))

    def signal(self, sig):
        os.kill(self.pid, sig)

    def stop(self):
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


def status_kb(pid, field):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def process_state(pid):
    """The state letter of /proc/PID/stat (R, S, Z, …), or None when there is no such process."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            text = f.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()[0]


def children(pid):
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                text = f.read()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        if int(fields[1]) == pid:
            out.append((int(name), fields[0]))
    return out


def first_node():
    try:
        nodes = sorted(int(n[4:]) for n in os.listdir("/sys/devices/system/node")
                       if n.startswith("node") and n[4:].isdigit())
        return nodes[0] if nodes else 0
    except OSError:
        return 0


def kill_quietly(pids, sig=signal.SIGKILL):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
