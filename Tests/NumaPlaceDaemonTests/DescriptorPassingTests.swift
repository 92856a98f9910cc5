import CNumaPlaceShim
import Foundation
import NumaPlaceProtocol
import NumaPlaceTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Descriptors passed with a call (SCM_RIGHTS), and workers tied to their connection, against a live
/// daemon: what reaches the worker, what the daemon refuses, and that it keeps nothing it was given.
@Suite(.serialized) struct DescriptorPassingTests {
    static let notBuilt = "needs the daemon binary: run `swift build` first"

    /// A pipe: (read end, write end), both close-on-exec.
    static func pipe() -> (r: Int32, w: Int32) {
        var fds: [Int32] = [-1, -1]
        #expect(np_pipe2(&fds, O_CLOEXEC) == 0)
        return (fds[0], fds[1])
    }

    /// Everything until EOF.
    static func readAll(_ fd: Int32) -> String {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            bytes += buffer[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func openDescriptors(_ pid: Int32) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
    }

    /// Waits up to 10 s for the daemon's descriptor count to come back to `baseline`.
    static func settles(_ daemon: LiveDaemon, to baseline: Int) -> Int {
        var now = openDescriptors(daemon.pid)
        for _ in 0..<200 where now > baseline {
            usleep(50_000)
            now = openDescriptors(daemon.pid)
        }
        return now
    }

    static func argv(_ words: String...) -> JSONValue { .array(words.map { .string($0) }) }

    /// The daemon's descriptors once everything it opens on first use (the state log) is open.
    static func warmBaseline(_ daemon: LiveDaemon) throws -> Int {
        do {
            let c = try daemon.client()
            let id = try c.call("Spawn", ["argv": argv("/bin/true")])["worker"]?["id"] ?? .null
            _ = try c.call("Wait", ["id": id])
        }
        var last = -1, now = openDescriptors(daemon.pid)
        while now != last {
            usleep(100_000)
            (last, now) = (now, openDescriptors(daemon.pid))
        }
        return now
    }

    @Test(.enabled(if: LiveHost.binaryBuilt, "\(notBuilt)"), .timeLimit(.minutes(2)))
    func stdioAndExtraDescriptorsReachTheWorker() throws {
        let daemon = try LiveDaemon()
        try daemon.start()
        let c = try daemon.client()
        let stdin = Self.pipe(), stdout = Self.pipe(), stderr = Self.pipe(), extra = Self.pipe()
        _ = "hello\n".withCString { write(stdin.w, $0, 6) }
        close(stdin.w)
        try c.sendCall("io.numaplaced.Manager.Spawn", JSONValue.object([
            "argv": Self.argv("/bin/sh", "-c", "read x; echo out:$x; echo err >&2; echo extra >&3; ls /proc/self/fd | wc -l"),
            "stdinDescriptor": .int(0), "stdoutDescriptor": .int(1), "stderrDescriptor": .int(2), "descriptors": .array([.int(3)]),
        ]), descriptors: [stdin.r, stdout.w, stderr.w, extra.w])
        for fd in [stdin.r, stdout.w, stderr.w, extra.w] { close(fd) }
        let worker = try c.receive(JSONValue.self).reply["worker"]
        let exit = try c.call("Wait", ["id": worker?["id"] ?? .null])["worker"]?["exit"]
        #expect(exit?["code"] == .int(0))
        // The daemon closed its copies: EOF comes once the worker has exited.
        let out = Self.readAll(stdout.r).split(separator: "\n")
        #expect(out.first == "out:hello")
        // 0, 1, 2, 3 and the one ls opens to list them: nothing else leaked into the worker.
        #expect(out.last.map { $0.trimmingCharacters(in: .whitespaces) } == "5")
        #expect(Self.readAll(stderr.r) == "err\n")
        #expect(Self.readAll(extra.r) == "extra\n")
    }

    @Test(.enabled(if: LiveHost.binaryBuilt, "\(notBuilt)"), .timeLimit(.minutes(2)))
    func refusedAndUnusedDescriptorsAreClosed() throws {
        let daemon = try LiveDaemon()
        try daemon.start()
        let baseline = try Self.warmBaseline(daemon)
        try checkRefusals(daemon)
        #expect(Self.settles(daemon, to: baseline) == baseline)
    }

    func checkRefusals(_ daemon: LiveDaemon) throws {
        let c = try daemon.client()

        // Unused: the call is answered, and the daemon's copy is gone (EOF on the pipe).
        let p = Self.pipe()
        try c.sendCall("io.numaplaced.Manager.GetStatus", Empty(), descriptors: [p.w])
        close(p.w)
        _ = try c.receive(JSONValue.self)
        #expect(Self.readAll(p.r) == "")
        close(p.r)

        // Too many: the call is refused and the connection stays usable.
        let q = Self.pipe()
        try c.sendCall("io.numaplaced.Manager.GetStatus", Empty(), descriptors: Array(repeating: q.w, count: 17))
        close(q.w)
        do {
            _ = try c.receive(JSONValue.self)
            Issue.record("17 descriptors were accepted")
        } catch VarlinkClient.ClientError.remote(let e) {
            #expect(e.name == "io.numaplaced.Manager.LimitExceeded")
        }
        #expect(Self.readAll(q.r) == "")
        close(q.r)
        _ = try c.call("GetStatus")

        // A Spawn naming an index that did not come, or both a path and a descriptor.
        let r = Self.pipe()
        for (params, parameter) in [
            (["argv": Self.argv("/bin/true"), "stdoutDescriptor": .int(1)], "stdoutDescriptor"),
            (["argv": Self.argv("/bin/true"), "stdout": .string("/dev/null"), "stdoutDescriptor": .int(0)], "stdoutDescriptor"),
            (["argv": Self.argv("/bin/true"), "descriptors": .array([.int(0), .int(4)])], "descriptors[1]"),
        ] as [([String: JSONValue], String)] {
            try c.sendCall("io.numaplaced.Manager.Spawn", JSONValue.object(params), descriptors: [r.w])
            do {
                _ = try c.receive(JSONValue.self)
                Issue.record("accepted: \(params)")
            } catch VarlinkClient.ClientError.remote(let e) {
                #expect(e.name == "io.numaplaced.Manager.InvalidParameter")
                #expect(e.parameters["parameter"] == .string(parameter))
            }
        }
        close(r.w)
        #expect(Self.readAll(r.r) == "")
        close(r.r)
    }

    @Test(.enabled(if: LiveHost.binaryBuilt, "\(notBuilt)"), .timeLimit(.minutes(3)))
    func aThousandCallsFromClientsThatHangUpLeakNothing() throws {
        let daemon = try LiveDaemon()
        try daemon.start()
        let baseline = try Self.warmBaseline(daemon)
        let devNull = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { close(devNull) }
        for i in 0..<1000 {
            let c = try daemon.client()
            switch i % 4 {
            case 0:
                try c.sendCall("io.numaplaced.Manager.Spawn", JSONValue.object([
                    "argv": Self.argv("/bin/true"), "stdoutDescriptor": .int(0), "stderrDescriptor": .int(1),
                ]), descriptors: [devNull, devNull])
            case 1:
                try c.sendCall("io.numaplaced.Manager.GetStatus", Empty(), descriptors: [devNull, devNull, devNull])
            case 2:
                try c.sendCall("io.numaplaced.Manager.GetStatus", Empty(), descriptors: Array(repeating: devNull, count: 20))
            default:
                // Half a message: its descriptors wait for a NUL that never comes.
                try c.send(raw: Array(#"{"method":"io.numaplaced.Manager.GetSta"#.utf8), descriptors: [devNull])
            }
            // The client hangs up without reading the reply (deinit closes the socket).
        }
        let after = Self.settles(daemon, to: baseline)
        #expect(after == baseline, "the daemon holds \(after - baseline) more descriptors than before")
        #expect(daemon.isRunning)
    }

    @Test(.enabled(if: LiveHost.binaryBuilt, "\(notBuilt)"), .timeLimit(.minutes(2)))
    func aTiedWorkerStopsWhenItsConnectionCloses() throws {
        let daemon = try LiveDaemon()
        try daemon.start()
        let watcher = try daemon.client()
        var ids: [JSONValue] = []
        do {
            let c = try daemon.client()
            // One that ends on SIGTERM, one that ignores it and needs the SIGKILL.
            for script in ["exec sleep 60", "trap '' TERM; sleep 30 & wait; sleep 30"] {
                let w = try c.call("Spawn", ["argv": Self.argv("/bin/sh", "-c", script), "tied": .bool(true)])["worker"]
                #expect(w?["tied"] == .bool(true))
                ids.append(w?["id"] ?? .null)
            }
            let untied = try c.call("Spawn", ["argv": Self.argv("/bin/sleep", "60")])["worker"]
            #expect(untied?["tied"] == .bool(false))
            ids.append(untied?["id"] ?? .null)
            let listed = try c.call("ListWorkers")["workers"]?.array ?? []
            #expect(listed.filter { $0["tied"] == .bool(true) }.count == 2)
        }
        let closed = LiveHost.monotonicMicroseconds()
        let term = try watcher.call("Wait", ["id": ids[0]])["worker"]?["exit"]
        #expect(term?["signal"] == .int(Int(SIGTERM)))
        let kill = try watcher.call("Wait", ["id": ids[1]])["worker"]?["exit"]
        #expect(kill?["signal"] == .int(Int(SIGKILL)))
        let took = LiveHost.monotonicMicroseconds() - closed
        #expect(took < 3_000_000, "the stubborn worker took \(took) µs to go")
        let untied = try watcher.call("GetWorker", ["id": ids[2]])["worker"]
        #expect(untied?["state"] == .string("running"))
        try watcher.call("Signal", ["id": ids[2], "signal": .int(Int(SIGKILL))])
    }
}
