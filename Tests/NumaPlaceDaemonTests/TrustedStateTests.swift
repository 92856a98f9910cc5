import Foundation
import Logging
import NumaPlaceCore
@testable import NumaPlaceDaemon
import NumaPlacePlatform
import NumaPlaceProtocol
import Testing
import NumaPlaceTestSupport

/// DESIGN.md, Security: nothing the daemon trusts is writable by others (review finding 3: a forged
/// `workers.log` in a user-writable state directory made the daemon adopt a root process as the
/// user's worker, and a link over the log made it append to a root-owned file).
@Suite(.serialized) struct TrustedStateTests {
    static let isRoot = geteuid() == 0

    /// A fresh directory under the temporary directory, 0755, removed by the caller.
    static func scratch() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("np-trust-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false,
                                                attributes: [.posixPermissions: 0o755])
        return dir
    }

    @Test func ownDirectoryIsTrustedAndLinksAreResolved() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/state", withIntermediateDirectories: false,
                                                attributes: [.posixPermissions: 0o700])
        symlink(dir + "/state", dir + "/link")
        #expect(try TrustedDirectory.check(dir + "/state").hasSuffix("/state"))
        #expect(try TrustedDirectory.check(dir + "/link").hasSuffix("/state"), "the checked path is the link's target")
    }

    @Test(arguments: [0o775, 0o757, 0o777])
    func writableByOthersIsRefused(_ mode: Int) throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/state", withIntermediateDirectories: false)
        chmod(dir + "/state", mode_t(mode))
        #expect(throws: TrustedDirectory.Refusal.self) { try TrustedDirectory.check(dir + "/state") }
        // An ancestor: refused unless sticky, as /tmp is.
        chmod(dir + "/state", 0o755)
        chmod(dir, mode_t(mode))
        #expect(throws: TrustedDirectory.Refusal.self) { try TrustedDirectory.check(dir + "/state") }
        chmod(dir, mode_t(mode | 0o1000))
        #expect(throws: Never.self) { try TrustedDirectory.check(dir + "/state") }
    }

    @Test(.enabled(if: isRoot, "needs root to give a directory to another uid"))
    func anotherUsersDirectoryIsRefused() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/state", withIntermediateDirectories: false)
        chown(dir + "/state", 65534, 65534)
        #expect(throws: TrustedDirectory.Refusal.self) { try TrustedDirectory.check(dir + "/state") }
        chown(dir + "/state", 0, 0)
        chown(dir, 65534, 65534)
        #expect(throws: TrustedDirectory.Refusal.self) { try TrustedDirectory.check(dir + "/state") }
    }

    /// The log is never followed through a link: not read, not appended to.
    @Test func stateLogIsNotFollowedThroughALink() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let victim = dir + "/victim"
        try "precious\n".write(toFile: victim, atomically: true, encoding: .utf8)
        symlink(victim, dir + "/workers.log")
        let log = WorkerStateLog(directory: dir)
        #expect(log.load().live.isEmpty)
        #expect(log.lastError != nil)
        #expect(!log.append(WorkerStateLog.Record(op: "exit", id: "w1", startTicks: nil, worker: nil)))
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "precious\n")
    }

    /// A log that others may write is not adopted from.
    @Test func groupWritableLogIsIgnored() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = WorkerStateLog(directory: dir)
        #expect(log.append(.init(op: "start", id: "w1", startTicks: 1, worker: Self.worker("w1", pid: 1, uid: 0))))
        #expect(WorkerStateLog(directory: dir).load().live.count == 1)
        chmod(dir + "/workers.log", 0o620)
        let again = WorkerStateLog(directory: dir)
        #expect(again.load().live.isEmpty)
        #expect(again.lastError?.contains("writable by it alone") == true)
    }

    /// The line count survives a restart, so the compaction at start-up runs (review finding 7: the
    /// counter began at 0 and the log only grew).
    @Test func compactionAfterARestartSeesTheWholeLog() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let first = WorkerStateLog(directory: dir)
        for i in 1...50 {
            first.append(.init(op: "start", id: "w\(i)", startTicks: 1, worker: Self.worker("w\(i)", pid: 1, uid: 0)))
            first.append(.init(op: "exit", id: "w\(i)", startTicks: nil, worker: nil))
        }
        let second = WorkerStateLog(directory: dir)
        #expect(second.load().maxID == 50)
        second.compactIfNeeded(liveCount: 0, live: [], threshold: 0)
        #expect(try String(contentsOfFile: dir + "/workers.log", encoding: .utf8).isEmpty)
    }

    static func worker(_ id: String, pid: Int, uid: Int, cores: [String] = []) -> Manager.Worker {
        Manager.Worker(id: id, pid: pid, uid: uid, gid: uid, argv: ["/bin/sleep", "300"], device: nil, node: nil,
                       state: .running, startedAt: 0,
                       requested: Manager.Placement(cpus: "", memoryPolicy: "default", memoryNodes: []),
                       applied: nil, degraded: [], exclusiveCores: cores, adopted: false, exit: nil)
    }

    /// A record adopted only when the live process is the record's user's (or the record is root's),
    /// and exclusive cores only where no adopted worker holds them already.
    @Test(.enabled(if: isRoot, "needs a process of root's"))
    func adoptionAsksTheProcessWhoseItIs() async throws {
        let machine = try SyntheticMachine()
        let (hub, store, _) = ManagerServiceTests.makeService(machine, spawnEnabled: false)
        var sleepers: [Process] = []
        defer { for s in sleepers { kill(s.processIdentifier, SIGKILL); s.waitUntilExit() } }
        for _ in 0..<3 {
            let s = Process()
            s.executableURL = URL(fileURLWithPath: "/bin/sleep")
            s.arguments = ["300"]
            try s.run()
            sleepers.append(s)
        }
        let pids = sleepers.map(\.processIdentifier)
        let ticks = try pids.map { try #require(ProcessFacts.startTicks(pid: $0, root: SysfsRoot("/"))) }
        let stateDir = machine.path("state-trust")
        try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true)
        let log = WorkerStateLog(directory: stateDir)
        // w1: a root process claimed for uid 1000 (the forgery); w2 and w3: root's, both claiming core 0-1.
        log.append(.init(op: "start", id: "w1", startTicks: ticks[0], worker: Self.worker("w1", pid: Int(pids[0]), uid: 1000)))
        log.append(.init(op: "start", id: "w2", startTicks: ticks[1], worker: Self.worker("w2", pid: Int(pids[1]), uid: 0, cores: ["0-1"])))
        log.append(.init(op: "start", id: "w3", startTicks: ticks[2], worker: Self.worker("w3", pid: Int(pids[2]), uid: 0, cores: ["0-1"])))
        let supervisor = WorkerSupervisor(store: store, hub: hub, stateLog: WorkerStateLog(directory: stateDir),
                                          spawner: Spawner(savedOriginal: ManagerServiceTests.allowed),
                                          logger: Logger(label: "test"), procRoot: SysfsRoot("/"), spawnEnabled: false)
        #expect(await supervisor.adopt() == (adopted: 2, gone: 1))
        let user = PeerCredentials(pid: 4343, uid: 1000, gid: 1000)
        // The user cannot signal the root process the forged record named.
        await #expect(throws: VarlinkError.self) { try await supervisor.signal("w1", signal: 9, for: user) }
        #expect(LiveHost.isRunning(Int(pids[0])))
        let w2 = try await supervisor.get("w2", for: ManagerServiceTests.root)
        let w3 = try await supervisor.get("w3", for: ManagerServiceTests.root)
        #expect(w2.exclusiveCores == ["0-1"] && w3.exclusiveCores.isEmpty)
    }

    /// The review's `--socket /tmp/np/io.numaplaced` with /tmp/np a user's: the daemon refuses to start,
    /// saying why, for the socket's directory and for a state directory alike.
    @Test(.enabled(if: isRoot && LiveHost.binaryBuilt, "needs root and the daemon binary"), .timeLimit(.minutes(2)))
    func daemonRefusesAUsersDirectory() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/np", withIntermediateDirectories: false)
        chown(dir + "/np", 65534, 65534)
        try FileManager.default.createDirectory(atPath: dir + "/mine", withIntermediateDirectories: false)
        for arguments in [["--socket", dir + "/np/io.numaplaced", "--state-dir", dir + "/mine"],
                          ["--socket", dir + "/mine/io.numaplaced", "--state-dir", dir + "/np"]] {
            let ran = try LiveHost.run([LiveHost.binary] + arguments + ["--event-source", "none", "--log-to", "stderr"],
                                       timeout: 60)
            #expect(ran.status != 0, "\(arguments): \(ran.stderr)")
            #expect(ran.stderr.contains("refusing") && ran.stderr.contains("owned by uid 65534"), "\(ran.stderr)")
            #expect(!FileManager.default.fileExists(atPath: dir + "/np/io.numaplaced"))
        }
    }
}
