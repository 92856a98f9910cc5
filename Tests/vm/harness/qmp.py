"""QMP client (QEMU Machine Protocol), Python standard library only.

The protocol is one JSON object per line on a unix socket: a greeting, then `qmp_capabilities`, then
commands, each answered by `return` or `error`; asynchronous `event` objects can arrive at any time and are
kept in `events` until `wait_event` consumes them.
"""
import json
import socket
import time

import unixsock


class QMPError(RuntimeError):
    pass


class QMP:
    def __init__(self, path, timeout=60):
        self.sock = unixsock.connect(path, time.monotonic() + timeout)
        self.buf = b''
        self.events = []
        self.greeting = self._read(timeout)
        self.command('qmp_capabilities')

    def _read(self, timeout):
        deadline = time.monotonic() + timeout
        while b'\n' not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError('no QMP message within %.0fs' % timeout)
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise EOFError('QMP socket closed')
            self.buf += chunk
        line, self.buf = self.buf.split(b'\n', 1)
        return json.loads(line)

    def command(self, name, timeout=60, **arguments):
        """Runs one QMP command and returns its `return` value; a QMP `error` raises QMPError."""
        message = {'execute': name}
        if arguments:
            message['arguments'] = arguments
        self.sock.sendall(json.dumps(message).encode() + b'\n')
        while True:
            reply = self._read(timeout)
            if 'event' in reply:
                self.events.append(reply)
                continue
            if 'error' in reply:
                raise QMPError('%s: %s' % (name, reply['error'].get('desc', reply['error'])))
            return reply.get('return')

    def device_add(self, driver, id, bus):
        return self.command('device_add', driver=driver, id=id, bus=bus)

    def device_del(self, id):
        return self.command('device_del', id=id)

    def wait_event(self, name, timeout=30, **data):
        """Returns the first event called `name` whose data matches `data`, waiting up to `timeout` s."""
        def matches(e):
            return e.get('event') == name and all(e.get('data', {}).get(k) == v for k, v in data.items())
        for i, e in enumerate(self.events):
            if matches(e):
                return self.events.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError('no QMP event %s %s within %.0fs' % (name, data, timeout))
            e = self._read(left)
            if matches(e):
                return e
            self.events.append(e)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
