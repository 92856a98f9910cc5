"""The connection, the Client and the Worker."""

# Annotations stay unevaluated strings (PEP 563), so `typing` is imported only by type checkers:
# with `dataclasses` (which imports `inspect`) it was 10 of the 28 ms `import numaplace` took.
from __future__ import annotations

import json
import os
import socket
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

from .errors import ConnectionLost, ProtocolError, error_for

INTERFACE = "io.numaplaced.Manager"
DEFAULT_SOCKET = "/run/numaplaced/io.numaplaced"
MAX_DESCRIPTORS = 16


def default_socket() -> str:
    return os.environ.get("NUMAPLACE_SOCKET") or DEFAULT_SOCKET


class _Connection:
    """One Varlink connection: NUL-framed JSON, descriptors sent with a call's first byte (SCM_RIGHTS)."""

    def __init__(self, path: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.connect(path)
        except OSError as e:
            self.sock.close()
            raise ConnectionLost(f"cannot connect to {path}: {e.strerror}") from e
        self.buffer = b""

    def send(self, method: str, parameters: Dict[str, Any], more: bool = False, fds: Sequence[int] = ()):
        message = {"method": f"{INTERFACE}.{method}", "parameters": parameters}
        if more:
            message["more"] = True
        data = json.dumps(message).encode() + b"\0"
        try:
            if fds:
                sent = socket.send_fds(self.sock, [data], list(fds))
                data = data[sent:]
            if data:
                self.sock.sendall(data)
        except OSError as e:
            raise ConnectionLost(f"cannot send {method}: {e}") from e

    def receive(self) -> Dict[str, Any]:
        """The next reply's parameters; an error reply raises its typed error."""
        while b"\0" not in self.buffer:
            try:
                chunk = self.sock.recv(65536)
            except OSError as e:
                raise ConnectionLost(str(e)) from e
            if not chunk:
                raise ConnectionLost("the daemon closed the connection")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        try:
            reply = json.loads(message)
        except ValueError as e:
            raise ProtocolError(f"not JSON: {e}") from e
        if not isinstance(reply, dict):
            raise ProtocolError("a reply that is not an object")
        if "error" in reply:
            raise error_for(reply["error"], reply.get("parameters"))
        self.continues = bool(reply.get("continues"))
        return reply.get("parameters") or {}

    def call(self, method: str, parameters: Optional[Dict[str, Any]] = None, fds: Sequence[int] = ()):
        self.send(method, parameters or {}, fds=fds)
        return self.receive()

    def close(self):
        self.sock.close()


class ExitStatus:
    """How a worker ended: `how` is exited, killed or unknown; `code` or `signal` say with what.
    Immutable, compared and hashed by its three fields."""
    __slots__ = ("how", "code", "signal")

    how: str
    code: Optional[int]
    signal: Optional[int]

    def __init__(self, how: str, code: Optional[int] = None, signal: Optional[int] = None):
        object.__setattr__(self, "how", how)
        object.__setattr__(self, "code", code)
        object.__setattr__(self, "signal", signal)

    def __setattr__(self, name, value):
        raise AttributeError("ExitStatus is immutable")

    def __eq__(self, other):
        if not isinstance(other, ExitStatus):
            return NotImplemented
        return (self.how, self.code, self.signal) == (other.how, other.code, other.signal)

    def __hash__(self):
        return hash((self.how, self.code, self.signal))

    def __repr__(self):
        return "ExitStatus(how=%r, code=%r, signal=%r)" % (self.how, self.code, self.signal)

    @property
    def returncode(self) -> int:
        """As subprocess has it: the exit code, or minus the signal."""
        if self.how == "killed" and self.signal:
            return -self.signal
        return self.code if self.code is not None else -1


_Stdio = "Union[None, int, str, Any]"


def _descriptor(value: _Stdio) -> Optional[int]:
    """An int descriptor, or the fileno() of a file object; None for a path or a choice word."""
    if value is None or isinstance(value, str):
        return None
    if isinstance(value, int):
        return value
    fileno = getattr(value, "fileno", None)
    if fileno is None:
        raise TypeError(f"expected a descriptor, a file object, a path or None, not {value!r}")
    if hasattr(value, "flush"):
        value.flush()  # what Python buffered must come before what the worker writes
    return fileno()


class Worker:
    """A worker the daemon started. `info` is its record as last read (id, pid, applied placement, …)."""

    def __init__(self, client: "Client", info: Dict[str, Any]):
        self._client = client
        self.info = info

    id = property(lambda self: self.info["id"])
    pid = property(lambda self: self.info["pid"])
    tied = property(lambda self: bool(self.info.get("tied")))

    def refresh(self) -> Dict[str, Any]:
        self.info = self._client._call("GetWorker", {"id": self.id})["worker"]
        return self.info

    def wait(self) -> ExitStatus:
        """Blocks until the worker has exited (on a connection of its own, so others stay free)."""
        self.info = self._client._call("Wait", {"id": self.id})["worker"]
        e = self.info.get("exit") or {"how": "unknown"}
        return ExitStatus(e.get("how", "unknown"), e.get("code"), e.get("signal"))

    def signal(self, signal: int) -> None:
        self._client._call("Signal", {"id": self.id, "signal": int(signal)})

    def monitor(self) -> Iterator[Dict[str, Any]]:
        """This worker's events (workerStarted, workerExited), ending after its exit."""
        for event in self._client.monitor():
            if (event.get("worker") or {}).get("id") != self.id:
                continue
            yield event
            if event["kind"] == "workerExited":
                return

    def __repr__(self):
        return f"<Worker {self.id} pid {self.pid} {self.info.get('state')}>"


class Client:
    """A client of numaplaced. Workers spawned with tied=True (the default) live as long as this
    client's connection: closing the client, or the process dying, stops them (SIGTERM, then SIGKILL)."""

    def __init__(self, path: Optional[str] = None):
        self.path = path or default_socket()
        self._spawner = _Connection(self.path)
        self._lock = threading.Lock()

    def close(self):
        self._spawner.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, method: str, parameters: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        connection = _Connection(self.path)
        try:
            return connection.call(method, parameters)
        finally:
            connection.close()

    def topology(self) -> Dict[str, Any]:
        return self._call("GetTopology")

    def devices(self, kind: Optional[str] = None, node: Optional[int] = None) -> List[Dict[str, Any]]:
        p = {k: v for k, v in (("kind", kind), ("node", node)) if v is not None}
        return self._call("ListDevices", p)["devices"]

    def workers(self) -> List[Worker]:
        return [Worker(self, w) for w in self._call("ListWorkers")["workers"]]

    def spawn(self, argv: Sequence[str], *, device: Optional[str] = None, node: Optional[int] = None,
              cpus: Optional[str] = None, stdin: _Stdio = None, stdout: _Stdio = None, stderr: _Stdio = None,
              pass_fds: Sequence[Any] = (), tied: bool = True, environment: Optional[Dict[str, str]] = None,
              cwd: Optional[str] = None, **parameters: Any) -> Worker:
        """Starts argv placed on `device`'s node, on `node`, or on `cpus`.

        stdin, stdout, stderr: a descriptor or file object (passed over the socket: the worker gets
        this very file, a terminal or a pipe alike), a path or "null"/"journal" (the daemon's choice),
        or None (null). pass_fds: further descriptors, at 3, 4, … in the worker. Other keyword
        arguments are Spawn parameters as they are (memory="bind", exclusiveCores=2, name=…)."""
        fds: List[int] = []
        p: Dict[str, Any] = {"argv": list(argv), "tied": tied}
        for key, value in (("device", device), ("node", node), ("cpus", cpus), ("workingDirectory", cwd)):
            if value is not None:
                p[key] = value
        if environment is not None:
            p["environment"] = [f"{k}={v}" for k, v in environment.items()]
        for name, value in (("stdin", stdin), ("stdout", stdout), ("stderr", stderr)):
            fd = _descriptor(value)
            if fd is not None:
                p[name + "Descriptor"] = len(fds)
                fds.append(fd)
            elif value is not None:
                p[name] = value
        if pass_fds:
            p["descriptors"] = []
            for value in pass_fds:
                p["descriptors"].append(len(fds))
                fds.append(_descriptor(value))
        if len(fds) > MAX_DESCRIPTORS:
            raise ValueError(f"at most {MAX_DESCRIPTORS} descriptors per spawn")
        p.update(parameters)
        with self._lock:
            reply = self._spawner.call("Spawn", p, fds=fds)
        return Worker(self, reply["worker"])

    def monitor(self) -> Iterator[Dict[str, Any]]:
        """Events as they happen, after the `ready` one; closing the generator ends the stream."""
        connection = _Connection(self.path)
        try:
            connection.send("Monitor", {}, more=True)
            connection.receive()  # ready
            while True:
                yield connection.receive()["event"]
                if not connection.continues:
                    return
        finally:
            connection.close()
