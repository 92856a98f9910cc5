import NumaPlaceCore
import NumaPlaceProtocol
import Testing
@testable import NumaPlaceDaemon

/// The worker table's invariants, with made-up workers and no process.
@Suite struct WorkerTableTests {
    static func worker(_ id: String, uid: Int, argv: [String] = ["/bin/true"], state: Manager.Worker.State = .running,
                       cores: [String] = []) -> Manager.Worker {
        Manager.Worker(id: id, pid: 1000, uid: uid, gid: uid, argv: argv, device: nil, node: nil, state: state,
                       startedAt: 0, requested: Manager.Placement(cpus: "0", memoryPolicy: "default", memoryNodes: []),
                       applied: nil, degraded: [], exclusiveCores: cores, adopted: false, exit: nil)
    }

    static func entry(_ w: Manager.Worker) throws -> WorkerTable.Entry {
        WorkerTable.Entry(worker: w, pidfd: nil, startTicks: nil,
                          cores: try w.exclusiveCores.map { try CPUSet(cpulist: $0) })
    }

    @Test func countsFollowTheEntries() throws {
        var t = WorkerTable(limits: Configuration.Limits())
        try t.insert(Self.entry(Self.worker("w1", uid: 1000)))
        try t.insert(Self.entry(Self.worker("w2", uid: 1000)))
        try t.insert(Self.entry(Self.worker("w3", uid: 1001)))
        #expect(t.workers(of: 1000) == 2 && t.workers(of: 1001) == 1 && t.workers(of: 0) == 0)
        t.beginAdmitting(1000)
        #expect(t.workers(of: 1000) == 3)
        t.endAdmitting(1000)
        let ended = t.markExited("w1", exit: Manager.ExitStatus(how: .exited, code: 0))
        #expect(ended?.worker.state == .exited && ended?.worker.exit?.code == 0)
        #expect(t.workers(of: 1000) == 1 && t.running == ["w2", "w3"] && t.exitedCount == 1)
        #expect(t.history(of: 1000).count == 1 && t.history(of: 1000).bytes == "/bin/true".utf8.count + 1)
        // An exit is recorded once: a second exit of the same worker changes nothing.
        #expect(t.markExited("w1", exit: Manager.ExitStatus(how: .unknown)) == nil)
        #expect(t.exitedCount == 1 && t[("w1")]?.worker.exit?.how == .exited)
        let user = PeerCredentials(pid: 1, uid: 1000, gid: 1000), root = PeerCredentials(pid: 1, uid: 0, gid: 0)
        #expect(t.counts(for: user) == (2, 1) && t.counts(for: root) == (3, 2))
        #expect(t.list(for: user).map(\.id) == ["w1", "w2"])
        #expect(t.liveRecords.map(\.id) == ["w2", "w3"])
    }

    @Test func exclusiveCoresArePromisedOnce() throws {
        var t = WorkerTable(limits: Configuration.Limits())
        try t.insert(Self.entry(Self.worker("w1", uid: 1000, cores: ["0-1"])))
        t.promise([try CPUSet(cpulist: "2-3"), try CPUSet(cpulist: "4-5")], to: "w2", uid: 1000)
        #expect(t.reserved == (try CPUSet(cpulist: "0-5")))
        #expect(t.coresHeld(by: 1000) == 3 && t.coresHeld(by: 1001) == 0)
        t.withdrawPromise("w2")
        t.withdrawPromise("w2")
        #expect(t.reserved == (try CPUSet(cpulist: "0-1")) && t.coresHeld(by: 1000) == 1)
        _ = t.markExited("w1", exit: Manager.ExitStatus(how: .killed, signal: 9))
        #expect(t.reserved.isEmpty && t.coresHeld(by: 1000) == 0)
    }

    @Test func oneUsersHistoryForgetsOnlyItsOwnOldest() throws {
        var limits = Configuration.Limits()
        limits.exitedHistoryPerUser = 8
        var t = WorkerTable(limits: limits)
        try t.insert(Self.entry(Self.worker("other", uid: 2000, state: .exited)))
        for i in 1...20 {
            try t.insert(Self.entry(Self.worker("w\(i)", uid: 1000)))
            _ = t.markExited("w\(i)", exit: Manager.ExitStatus(how: .exited, code: 0))
            #expect(t.history(of: 1000).count <= 8)
        }
        #expect(t["other"] != nil, "another user's history is kept")
        #expect(t["w20"] != nil && t["w1"] == nil, "the newest stays, the oldest goes")
        #expect(t.exitedCount == t.history(of: 1000).count + 1)
    }

    @Test func historyIsBoundedByArgvBytes() throws {
        var limits = Configuration.Limits()
        limits.exitedHistoryBytesPerUser = 64 << 10
        var t = WorkerTable(limits: limits)
        let big = [String(repeating: "a", count: 16 << 10)]
        for i in 1...20 {
            try t.insert(Self.entry(Self.worker("w\(i)", uid: 1000, argv: big)))
            _ = t.markExited("w\(i)", exit: Manager.ExitStatus(how: .exited, code: 0))
        }
        #expect(t.history(of: 1000).bytes <= 64 << 10)
        #expect(t.history(of: 1000).count >= 1)
    }

    @Test func totalHistoryIsBounded() throws {
        var limits = Configuration.Limits()
        limits.exitedHistory = 16
        var t = WorkerTable(limits: limits)
        try t.insert(Self.entry(Self.worker("keep", uid: 5)))
        for i in 1...100 {
            try t.insert(Self.entry(Self.worker("w\(i)", uid: UInt32(i % 7) == 0 ? 1 : Int(i % 7) + 1000)))
            _ = t.markExited("w\(i)", exit: Manager.ExitStatus(how: .exited, code: 0))
        }
        #expect(t.exitedCount <= 16 && t.exitedCount == t.count - 1)
        #expect(t["keep"]?.worker.state == .running, "a running worker is never forgotten")
    }
}
