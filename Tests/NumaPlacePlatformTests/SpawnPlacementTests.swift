import CNumaPlaceShim
import Foundation
import Glibc
import NumaPlaceCore
import NumaPlacePlatform
import NumaPlaceSyscall
import Testing
import NumaPlaceTestSupport

extension PlatformTests {
    /// The seed bug: a daemon thread pinned to one CPU with MPOL_BIND passed both to its workers.
    @Suite struct SpawnPlacementTests {
        static let pinnedCPU = 1

        static var hostHasTwoCPUs: Bool {
            guard let node = LiveHost.firstNode, let n = LiveHost.inventory.topology.node(node) else { return false }
            return n.cpus.intersection(LiveHost.allowed.cpus).count >= 2 && LiveHost.allowed.cpus.contains(pinnedCPU)
        }

        /// Pins the calling (dedicated) thread to CPU 1 with MPOL_BIND on the first node, as
        /// `numactl --physcpubind=1 --membind=0` or a pinned service thread would.
        static func pinLikeTheSeedBug(node: NUMANodeID) throws {
            try Affinity.pinCurrentThread(to: [pinnedCPU])
            try Affinity.setMemoryPolicyOfCurrentThread(.bind, nodes: [node])
            // The setup itself must hold, or the test proves nothing.
            guard try Affinity.cpus() == [pinnedCPU] else { throw ToolFailure(description: "pin did not take") }
            let policy = try Affinity.memoryPolicyOfCurrentThread()
            guard policy.name == "bind", policy.nodes == CPUSet([node.rawValue]) else {
                throw ToolFailure(description: "MPOL_BIND did not take: \(policy)")
            }
        }

        @Test("a pinned, MPOL_BIND parent spawns a worker with the node's CPUs and the requested policy",
              .enabled(if: hostHasTwoCPUs, "needs a node with two allowed CPUs, one of them CPU 1"),
              arguments: MemoryPolicyMode.allCases)
        func pinnedParentDoesNotLeak(memory: MemoryPolicyMode) throws {
            let node = try #require(LiveHost.firstNode)
            let placement = try LiveHost.decision(node: node, memory: memory)
            let expectedCPUs = try #require(LiveHost.inventory.topology.node(node)).cpus.intersection(LiveHost.allowed.cpus)
            #expect(placement.cpus == expectedCPUs)
            let spawner = Spawner(savedOriginal: LiveHost.allowed)
            let probe = try Scratch.probePath()

            let outcome: Result<(ProbeReport, AppliedPlacement, ProcessExitStatus, [String]), Error> = onDedicatedThread {
                Result {
                    try Self.pinLikeTheSeedBug(node: node)
                    let pipe = try CapturePipe()
                    // The probe sleeps after printing so that its /proc files can be read while it runs.
                    let process = try spawner.spawn(SpawnRequest(argv: [probe, "sleep", "60"], stdout: .fd(pipe.writeEnd),
                                                                 placement: placement))
                    pipe.closeWriteEnd()
                    let line = pipe.read(untilNewline: true)
                    let applied = Result { try PlacementReader().read(pid: process.pid) }
                    try process.pidfd.send(signal: SIGKILL)
                    let status = try process.pidfd.waitForExit()
                    // The spawning thread itself keeps its pinning: only the worker is reset.
                    guard try Affinity.cpus() == [Self.pinnedCPU] else { throw ToolFailure(description: "parent unpinned") }
                    let report = try JSONDecoder().decode(ProbeReport.self, from: Data(line.utf8))
                    return (report, try applied.get(), status, process.degradationNotes)
                }
            }
            let (report, applied, status, notes) = try outcome.get()

            #expect(status == .killed(signal: SIGKILL, coreDumped: false))
            #expect(notes.isEmpty)
            #expect(report.cpus == expectedCPUs.cpulist)
            let expectedPolicy = memory == .none ? "default" : memory.appliedName
            #expect(report.policy == expectedPolicy)
            #expect(report.policyNodes == (memory == .none ? "" : "\(node)"))
            #expect(report.env["NUMAPLACE_NODE"] == "\(node)")
            #expect(report.env["NUMAPLACE_CPUS"] == expectedCPUs.cpulist)
            #expect(report.env["NUMAPLACE_DEVICE"] == nil)
            // The read-back from /proc agrees with what the worker saw from inside.
            #expect(applied.cpus == expectedCPUs)
            #expect(applied.memoryPolicy == expectedPolicy)
            #expect(applied.memoryNodes == (memory == .none ? CPUSet() : CPUSet([node.rawValue])))
            #expect(applied.matches(cpus: placement.cpus, memory: placement.memory))
        }

        /// The control: the same pinned thread with plain posix_spawn hands its pinning to the child.
        /// Without this the regression test above could pass on a setup that reproduces nothing.
        @Test("control: posix_spawn from the pinned thread leaks the pinning",
              .enabled(if: hostHasTwoCPUs, "needs a node with two allowed CPUs, one of them CPU 1"))
        func posixSpawnLeaks() throws {
            let node = try #require(LiveHost.firstNode)
            let probe = try Scratch.probePath()
            let outcome: Result<ProbeReport, Error> = onDedicatedThread {
                Result {
                    try Self.pinLikeTheSeedBug(node: node)
                    let pipe = try CapturePipe()
                    var actions = posix_spawn_file_actions_t()
                    posix_spawn_file_actions_init(&actions)
                    defer { posix_spawn_file_actions_destroy(&actions) }
                    posix_spawn_file_actions_adddup2(&actions, pipe.writeEnd, 1)
                    var pid: pid_t = 0
                    var argv: [UnsafeMutablePointer<CChar>?] = [strdup(probe), nil]
                    defer { free(argv[0]) }
                    let rc = posix_spawn(&pid, probe, &actions, nil, &argv, environ)
                    guard rc == 0 else { throw Errno(rc) }
                    pipe.closeWriteEnd()
                    let text = pipe.read()
                    var status: Int32 = 0
                    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                    return try JSONDecoder().decode(ProbeReport.self, from: Data(text.utf8))
                }
            }
            let report = try outcome.get()
            #expect(report.cpus == "\(Self.pinnedCPU)")
            #expect(report.policy == "bind")
            #expect(report.policyNodes == "\(node)")
        }

        @Test("a device placement names the device, node and CPUs in the environment")
        func environmentForDevice() throws {
            let node = try #require(LiveHost.firstNode)
            var placement = try LiveHost.decision(node: node, memory: .preferred)
            // The host may have no accelerator; the spawner only passes the decision's device on.
            placement.device = try PCIAddress(parsing: "3b:00.0")
            placement.devices = [try PCIAddress(parsing: "3b:00.0"), try PCIAddress(parsing: "5e:00.0")]
            let (report, _, status) = try runProbe(Spawner(savedOriginal: LiveHost.allowed), placement: placement) {
                // Stale values inherited or passed by a caller must not survive.
                $0.environment = ["NUMAPLACE_NODE": "99", "NUMAPLACE_CPUS": "1234", "KEEP": "1"]
            }
            #expect(status == .exited(0))
            #expect(report.env["NUMAPLACE_DEVICE"] == "0000:3b:00.0")
            #expect(report.env["NUMAPLACE_DEVICES"] == "0000:3b:00.0,0000:5e:00.0")
            #expect(report.env["NUMAPLACE_NODE"] == "\(node)")
            #expect(report.env["NUMAPLACE_CPUS"] == placement.cpus.cpulist)
        }

        @Test("a worker without a target runs on the whole saved original with the default policy")
        func anywhere() throws {
            let outcome: Result<ProbeReport, Error> = onDedicatedThread {
                Result {
                    try Affinity.pinCurrentThread(to: [LiveHost.allowed.cpus.first ?? 0])
                    try Affinity.setMemoryPolicyOfCurrentThread(.interleave, nodes: [LiveHost.firstNode].compactMap { $0 })
                    // No CPU target at all: the restore of the saved original (step 2) alone must unpin.
                    var placement = try LiveHost.anywhere()
                    placement.cpus = CPUSet()
                    return try runProbe(Spawner(savedOriginal: LiveHost.allowed), placement: placement).0
                }
            }
            let report = try outcome.get()
            #expect(report.cpus == LiveHost.allowed.cpus.cpulist)
            #expect(report.policy == "default")
        }

        @Test("the worker runs as the requested user, groups included", .enabled(if: LiveHost.isRoot, "needs root"))
        func credentialsApplied() throws {
            let pipe = try CapturePipe()
            let process = try Spawner(savedOriginal: LiveHost.allowed).spawn(SpawnRequest(
                argv: [try Scratch.probePath(), "sleep", "60"], stdout: .fd(pipe.writeEnd),
                credentials: Credentials(uid: 65534, gid: 65534, groups: [65534, 100]),
                placement: try LiveHost.anywhere()))
            pipe.closeWriteEnd()
            _ = pipe.read(untilNewline: true)
            let creds = credentials(of: process.pid)
            try process.pidfd.send(signal: SIGTERM)
            #expect(try process.pidfd.waitForExit() == .killed(signal: SIGTERM, coreDumped: false))
            #expect(creds?.uid.split(whereSeparator: \.isWhitespace) == ["65534", "65534", "65534", "65534"])
            #expect(creds?.gid.split(whereSeparator: \.isWhitespace) == ["65534", "65534", "65534", "65534"])
            #expect(creds?.groups.split(whereSeparator: \.isWhitespace).sorted() == ["100", "65534"])
        }

        @Test("stdio: a file opened for the worker, /dev/null, and a working directory")
        func stdioAndWorkingDirectory() throws {
            let out = Scratch.dir + "/stdio-out.txt"
            unlink(out)
            let process = try Spawner(savedOriginal: LiveHost.allowed).spawn(SpawnRequest(
                argv: [try Scratch.probePath()], workingDirectory: Scratch.dir,
                stdin: .null, stdout: .file("stdio-out.txt"), stderr: .null,
                placement: try LiveHost.anywhere()))
            #expect(try process.pidfd.waitForExit() == .exited(0))
            // The relative path names a file in the worker's working directory.
            let text = try String(contentsOfFile: out, encoding: .utf8)
            let report = try JSONDecoder().decode(ProbeReport.self, from: Data(text.utf8))
            #expect(report.fds == [0, 1, 2])
            #expect(report.pid == process.pid)
        }

        @Test("a pidfd signals and reaps: tryReap is nil while running, then reports the signal")
        func processControl() throws {
            let pipe = try CapturePipe()
            let process = try Spawner(savedOriginal: LiveHost.allowed).spawn(SpawnRequest(
                argv: [try Scratch.probePath(), "sleep", "60"], stdout: .fd(pipe.writeEnd), placement: try LiveHost.anywhere()))
            pipe.closeWriteEnd()
            _ = pipe.read(untilNewline: true)
            #expect(try process.pidfd.tryReap() == nil)
            try process.pidfd.send(signal: SIGTERM)
            try process.pidfd.waitUntilExited()
            #expect(try process.pidfd.tryReap() == .killed(signal: SIGTERM, coreDumped: false))
            // Reaped: a second reap and a signal are answered, not crashed on.
            #expect(throws: Errno.noChildProcess) { try process.pidfd.tryReap() }
            #expect(throws: Errno.noSuchProcess) { try process.pidfd.send(signal: SIGTERM) }
        }

        @Test("exit codes come back through the pidfd")
        func exitCode() throws {
            let (_, _, status) = try runProbe(Spawner(savedOriginal: LiveHost.allowed), placement: try LiveHost.anywhere()) {
                $0.argv += ["exit", "42"]
            }
            #expect(status == .exited(42))
        }

        @Test("ignored and handled signals in the parent reach the worker as default dispositions")
        func signalDispositionsReset() throws {
            // SIGPIPE ignored, as SwiftNIO does in a daemon: the worker must not inherit SIG_IGN.
            let old = signal(SIGPIPE, SIG_IGN)
            defer { signal(SIGPIPE, old) }
            let pipe = try CapturePipe()
            let process = try Spawner(savedOriginal: LiveHost.allowed).spawn(SpawnRequest(
                argv: [try Scratch.probePath(), "sleep", "60"], stdout: .fd(pipe.writeEnd), placement: try LiveHost.anywhere()))
            pipe.closeWriteEnd()
            _ = pipe.read(untilNewline: true)
            let status = try LiveHost.root.read("proc/\(process.pid)/status")
            let stat = try LiveHost.root.read("proc/\(process.pid)/stat")
            try process.pidfd.send(signal: SIGKILL)
            _ = try process.pidfd.waitForExit()
            #expect(SysfsParsers.statusField("SigIgn", in: status) == "0000000000000000")
            #expect(SysfsParsers.statusField("SigBlk", in: status) == "0000000000000000")
            // setsid: the worker leads a session of its own ("pid (comm) S ppid pgrp session ...").
            let fields = stat[stat.index(after: try #require(stat.lastIndex(of: ")")))...].split(separator: " ")
            #expect(fields.count > 3 && fields[2] == "\(process.pid)" && fields[3] == "\(process.pid)")
        }
    }
}
