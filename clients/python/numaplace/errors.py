"""Typed errors: one class per Varlink error of io.numaplaced.Manager, its parameters as attributes."""


class NumaplaceError(Exception):
    """Anything this client raises."""


class ConnectionLost(NumaplaceError):
    """The daemon could not be reached, or closed the connection."""


class ProtocolError(NumaplaceError):
    """A reply that is not Varlink."""


class VarlinkError(NumaplaceError):
    """An error reply: `name` (e.g. io.numaplaced.Manager.NoSuchDevice) and its `parameters`."""

    def __init__(self, name, parameters=None):
        self.name = name
        self.parameters = parameters or {}
        super().__init__(f"{name} {self.parameters}" if self.parameters else name)

    def __getattr__(self, key):
        try:
            return self.__dict__["parameters"][key]
        except KeyError:
            raise AttributeError(key) from None


class NoSuchDevice(VarlinkError): pass
class NoSuchNode(VarlinkError): pass
class NoSuchWorker(VarlinkError): pass
class PlacementImpossible(VarlinkError): pass
class SpawnFailed(VarlinkError): pass
class PermissionDenied(VarlinkError): pass
class InvalidParameter(VarlinkError): pass
class LimitExceeded(VarlinkError): pass


_BY_NAME = {cls.__name__: cls for cls in (
    NoSuchDevice, NoSuchNode, NoSuchWorker, PlacementImpossible, SpawnFailed, PermissionDenied,
    InvalidParameter, LimitExceeded)}


def error_for(name, parameters):
    """The typed error for a reply's error name (org.varlink.service ones stay VarlinkError)."""
    cls = VarlinkError
    if name.startswith("io.numaplaced.Manager."):
        cls = _BY_NAME.get(name.rsplit(".", 1)[1], VarlinkError)
    return cls(name, parameters)
