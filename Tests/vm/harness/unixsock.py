"""Connecting to a Unix socket that QEMU creates once it is up (QMP, the guest agent's serial port)."""
import socket
import time


def connect(path, deadline, alive=lambda: True):
    """Connects to `path`, retrying every 50 ms until the monotonic `deadline` or until `alive()` turns
    false (a QEMU that died will never create the socket); raises the last OSError then."""
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            return sock
        except OSError:
            sock.close()
            if time.monotonic() > deadline or not alive():
                raise
            time.sleep(0.05)
