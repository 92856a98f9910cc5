"""The Python client against a live numaplaced: python3 test_live.py SOCKET (run by the Swift test
PythonClientTests in Tests/NumaPlaceDaemonTests, which starts the daemon)."""

import os
import signal
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import numaplace  # noqa: E402

SOCKET = sys.argv.pop(1) if len(sys.argv) > 1 else numaplace.client.default_socket()


def read_all(fd):
    chunks = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks).decode()
        chunks.append(chunk)


class LiveClientTests(unittest.TestCase):
    def setUp(self):
        self.client = numaplace.Client(SOCKET)

    def tearDown(self):
        self.client.close()

    def test_stdout_pipe_and_extra_descriptor(self):
        out_r, out_w = os.pipe()
        extra_r, extra_w = os.pipe()
        worker = self.client.spawn(["/bin/sh", "-c", "echo hello; echo extra >&3; exit 4"],
                                   stdout=out_w, pass_fds=[extra_w])
        os.close(out_w)
        os.close(extra_w)
        self.assertTrue(worker.tied)
        status = worker.wait()
        self.assertEqual((status.how, status.code, status.returncode), ("exited", 4, 4))
        self.assertEqual(read_all(out_r), "hello\n")
        self.assertEqual(read_all(extra_r), "extra\n")

    def test_file_object_stdout(self):
        with open(os.devnull, "w") as sink:
            self.assertEqual(self.client.spawn(["/bin/true"], stdout=sink).wait().returncode, 0)

    def test_signal_and_wait(self):
        worker = self.client.spawn(["/bin/sleep", "30"])
        worker.signal(signal.SIGTERM)
        status = worker.wait()
        self.assertEqual((status.how, status.signal, status.returncode), ("killed", signal.SIGTERM, -signal.SIGTERM))

    def test_typed_errors(self):
        with self.assertRaises(numaplace.SpawnFailed) as caught:
            self.client.spawn(["/nonexistent/program"])
        self.assertEqual(caught.exception.step, "exec")
        with self.assertRaises(numaplace.NoSuchWorker):
            numaplace.Worker(self.client, {"id": "w999999", "pid": 0}).wait()
        with self.assertRaises(numaplace.InvalidParameter):
            self.client.spawn(["/bin/true"], memory="sideways")
        with self.assertRaises(ValueError):
            self.client.spawn(["/bin/true"], pass_fds=[0] * 17)

    def test_monitor_iterates_until_exit(self):
        worker = self.client.spawn(["/bin/sh", "-c", "sleep 0.5"])
        kinds = [event["kind"] for event in worker.monitor()]
        self.assertEqual(kinds[-1], "workerExited")

    def test_tied_worker_stops_with_its_client(self):
        other = numaplace.Client(SOCKET)
        worker = other.spawn(["/bin/sleep", "30"])
        untied = other.spawn(["/bin/sleep", "30"], tied=False)
        other.close()
        self.assertEqual(numaplace.Worker(self.client, worker.info).wait().signal, signal.SIGTERM)
        survivor = numaplace.Worker(self.client, untied.info)
        self.assertEqual(survivor.refresh()["state"], "running")
        survivor.signal(signal.SIGKILL)
        survivor.wait()

    def test_one_worker_per_device_or_node(self):
        nodes = [n["id"] for n in self.client.topology()["nodes"]]
        workers = [self.client.spawn(["/bin/sh", "-c", "echo $NUMAPLACE_NODE"], node=n, stdout=os.devnull)
                   for n in nodes]
        self.assertEqual([w.info["node"] for w in workers], nodes)
        self.assertTrue(all(w.wait().returncode == 0 for w in workers))


if __name__ == "__main__":
    unittest.main(verbosity=2)
