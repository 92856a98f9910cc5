"""Client of numaplaced (io.numaplaced.Manager over Varlink), standard library only.

    import sys, numaplace
    with numaplace.Client() as client:
        worker = client.spawn(device="3b:00.0", argv=["python3", "serve.py"], stdout=sys.stdout)
        print(worker.wait().code)
"""

from .client import Client, Worker, ExitStatus
from .errors import (
    NumaplaceError, ConnectionLost, ProtocolError, VarlinkError, NoSuchDevice, NoSuchNode, NoSuchWorker,
    PlacementImpossible, SpawnFailed, PermissionDenied, InvalidParameter, LimitExceeded,
)

__all__ = [
    "Client", "Worker", "ExitStatus", "NumaplaceError", "ConnectionLost", "ProtocolError", "VarlinkError",
    "NoSuchDevice", "NoSuchNode", "NoSuchWorker", "PlacementImpossible", "SpawnFailed", "PermissionDenied",
    "InvalidParameter", "LimitExceeded",
]
