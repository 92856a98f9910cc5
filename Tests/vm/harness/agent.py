"""Host side of the guest command agent (Tests/vm/guest/np-agent on the guest's /dev/ttyS1).

    agent = Agent('/path/ctl.sock', ready_timeout=300)
    rc, out = agent.run('cat /sys/devices/system/node/online')

Each command is sent as one line "SECONDS COMMAND"; the guest runs it under `timeout SECONDS` and answers
with its output, a newline and "__NP_RC=<status>__". Status 124 (or 143) means the guest-side timeout hit.
"""
import re
import shlex
import socket
import time

import unixsock

READY = re.compile(rb'__NP_AGENT_READY__\r?\n')
DONE = re.compile(rb'\n__NP_RC=(\d+)__\r?\n')


class AgentError(RuntimeError):
    pass


class Agent:
    def __init__(self, path, ready_timeout=300, alive=None):
        """Connects to the agent's socket and waits for its ready line. `alive()` (optional) is polled so a
        QEMU that died does not make us wait for the whole timeout."""
        self.alive = alive or (lambda: True)
        deadline = time.monotonic() + ready_timeout
        try:
            self.sock = unixsock.connect(path, deadline, self.alive)
        except OSError as e:
            raise AgentError('cannot connect to %s: %s' % (path, e)) from e
        self.buf = b''
        self._until(READY, deadline - time.monotonic())

    def _until(self, pattern, timeout):
        deadline = time.monotonic() + timeout
        while True:
            m = pattern.search(self.buf)
            if m:
                out, self.buf = self.buf[:m.start()], self.buf[m.end():]
                return out, m
            left = deadline - time.monotonic()
            if left <= 0:
                raise AgentError('guest agent: no answer within %.0fs (have %r)' % (timeout, self.buf[-300:]))
            if not self.alive():
                raise AgentError('QEMU exited while waiting for the guest agent')
            self.sock.settimeout(min(left, 1.0))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise AgentError('guest agent closed the connection')
            self.buf += chunk

    def run(self, command, timeout=60):
        """Runs `command` in the guest; returns (status, output). The guest kills it after `timeout` s."""
        if '\n' in command:
            raise ValueError('agent commands are one line')
        self.sock.sendall(('%d %s\n' % (int(timeout), command)).encode())
        out, m = self._until(DONE, timeout + 30)
        return int(m.group(1)), out.decode(errors='replace')

    def check(self, command, timeout=60):
        """Like run, but a non-zero status raises AgentError with the output."""
        rc, out = self.run(command, timeout)
        if rc != 0:
            raise AgentError('guest command failed (rc=%d): %s\n%s' % (rc, command, out.strip()[-2000:]))
        return out

    def read(self, path):
        return self.check('cat %s' % shlex.quote(path))

    def send_raw(self, line):
        """Writes a line without waiting for an answer (used for commands that end the guest)."""
        self.sock.sendall(line.encode() + b'\n')

    def close(self):
        try:
            self.sock.sendall(b'__EXIT__\n')
        except OSError:
            pass
        self.sock.close()
