import Foundation
import NumaPlaceCore
import NumaPlaceProtocol
import NumaPlaceTestSupport
import Testing

/// What one numaplacectl run printed and how it exited.
struct CLIRun: CustomStringConvertible {
    let status: Int32
    let stdout: String
    let stderr: String

    var description: String { "exit \(status)\nstdout: \(stdout.prefix(2000))\nstderr: \(stderr.prefix(2000))" }

    /// The JSON on stdout as a wire type.
    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(stdout.utf8))
    }
}

/// Runs the built numaplaced and numaplacectl as subprocesses: one daemon per test on a socket in a
/// temporary directory, readiness taken from its READY=1 on a test NOTIFY_SOCKET (no sleeping).
final class CLIHarness {
    /// The directory holding both executables (see `LiveHost.buildDirectories`).
    static let binaries: URL? = LiveHost.buildDirectory(holding: ["numaplaced", "numaplacectl"]).map {
        URL(fileURLWithPath: $0)
    }

    static var available: Bool { binaries != nil }
    static let missing = Comment(rawValue: "numaplaced and numaplacectl are not built next to the test bundle or in .build/debug: run `swift build` before `swift test`")

    static var ctlPath: String { binaries?.appendingPathComponent("numaplacectl").path ?? "numaplacectl" }

    let dir: URL
    let socket: String
    private var daemon: Process?
    private let log: URL

    /// A scratch directory and, unless `daemon` is false, a numaplaced serving in it.
    init(daemon start: Bool = true, sysfsRoot: String? = nil) throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("numaplacectl-tests-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        socket = dir.appendingPathComponent("io.numaplaced").path
        log = dir.appendingPathComponent("numaplaced.log")
        if start { try startDaemon(sysfsRoot: sysfsRoot) }
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: dir)
    }

    private func startDaemon(sysfsRoot: String?) throws {
        let binaries = try #require(Self.binaries)
        let notifyPath = dir.appendingPathComponent("notify").path
        let notify = try NotifyListener(path: notifyPath)
        let p = Process()
        p.executableURL = binaries.appendingPathComponent("numaplaced")
        var args = ["--socket", socket, "--event-source", "none", "--log-to", "stderr",
                    "--state-dir", dir.appendingPathComponent("state").path,
                    "--config", dir.appendingPathComponent("no-config").path]
        if let sysfsRoot { args += ["--sysfs-root", sysfsRoot] }
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        env["NOTIFY_SOCKET"] = notifyPath
        p.environment = env
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let out = try FileHandle(forWritingTo: log)
        p.standardOutput = out
        p.standardError = out
        p.standardInput = FileHandle.nullDevice
        try p.run()
        daemon = p
        // READY=1 comes after the socket listens. A bound, not a timed assertion: a daemon that never
        // gets ready fails the test with its log instead of hanging it.
        let ready = notify.waitForReady(timeoutSeconds: 120) { p.isRunning }
        if !ready {
            let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            Issue.record("numaplaced did not report READY=1; its log:\n\(text.suffix(3000))")
            throw CancellationError()
        }
    }

    func stop() {
        guard let p = daemon, p.isRunning else { return }
        p.terminate()
        p.waitUntilExit()
    }

    var daemonLog: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

    /// Runs numaplacectl with `--socket` for this daemon.
    func ctl(_ args: [String], environment: [String: String]? = nil, cwd: URL? = nil) throws -> CLIRun {
        try Self.run(["--socket", socket] + args, environment: environment, cwd: cwd ?? dir, scratch: dir)
    }

    /// Runs numaplacectl exactly with `args`, output to files (no pipe to fill up).
    static func run(_ args: [String], environment: [String: String]? = nil, cwd: URL, scratch: URL) throws -> CLIRun {
        let id = UUID().uuidString.prefix(8)
        let outURL = scratch.appendingPathComponent("ctl-\(id).out"), errURL = scratch.appendingPathComponent("ctl-\(id).err")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: ctlPath)
        p.arguments = args
        p.currentDirectoryURL = cwd
        if let environment { p.environment = environment }
        p.standardOutput = try FileHandle(forWritingTo: outURL)
        p.standardError = try FileHandle(forWritingTo: errURL)
        p.standardInput = FileHandle.nullDevice
        let done = DispatchSemaphore(value: 0)
        p.terminationHandler = { _ in done.signal() }
        try p.run()
        // A bound so that a hung call fails the test instead of the whole run.
        if done.wait(timeout: .now() + 120) == .timedOut {
            p.interrupt()
            p.terminate()
            done.wait()
            Issue.record("numaplacectl \(args.joined(separator: " ")) did not finish")
        }
        return CLIRun(status: p.terminationStatus,
                      stdout: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
                      stderr: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "")
    }
}

/// A `NOTIFY_SOCKET` for the daemon: an AF_UNIX datagram socket the test reads `READY=1` from.
private final class NotifyListener {
    let fd: Int32

    init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { throw POSIXError(.ENAMETOOLONG) }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
    }

    deinit { close(fd) }

    /// Reads datagrams until one holds READY=1; gives up when `alive` turns false or the bound passes.
    func waitForReady(timeoutSeconds: Int, alive: () -> Bool) -> Bool {
        for _ in 0..<timeoutSeconds {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, 1000) > 0 {
                var buf = [UInt8](repeating: 0, count: 4096)
                let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n > 0, String(decoding: buf[0..<n], as: UTF8.self).split(separator: "\n").contains("READY=1") {
                    return true
                }
            } else if !alive() {
                return false
            }
        }
        return false
    }
}

/// The captured machine a daemon serves (found and extracted by `FixtureLibrary`).
private enum CLIFixture {
    static let name = "hwloc-32em64t-2n8c+1mic"
    static var available: Bool { CLIHarness.available && FixtureLibrary.has(name) }
    static let absent = Comment(rawValue: "needs the built binaries and \(FixtureLibrary.tarball(name))")
}

@Suite("numaplacectl against a live daemon")
struct CLITests {
    // MARK: A captured machine: devices, topology, exports

    /// The daemon serves the 2-node Xeon with a Xeon Phi (node 1, CPUs 8-15) and an ASPEED VGA (node 0).
    @Test(.enabled(if: CLIFixture.available, CLIFixture.absent))
    func queriesOnACapturedMachine() throws {
        let root = try FixtureLibrary.path(CLIFixture.name)
        let h = try CLIHarness(sysfsRoot: root)

        let status = try h.ctl(["--json", "status"])
        #expect(status.status == 0, "\(status)")
        let s = try status.decode(Manager.GetStatusReply.self)
        #expect(s.nodes == 2 && s.devices == 2 && s.eventSource == "none")
        let people = try h.ctl(["status"])
        #expect(people.status == 0 && people.stdout.contains("devices   2"), "\(people)")

        let topology = try h.ctl(["topology", "--json"])
        let t = try topology.decode(Manager.GetTopologyReply.self)
        #expect(t.nodes.map(\.id) == [0, 1] && t.nodes.map(\.cpus) == ["0-7", "8-15"])
        #expect(t.packages == ["0-7", "8-15"] && t.cores.count == 16)
        // Pretty and sorted: the top-level keys appear in order.
        let keys = ["allowedCPUs", "cores", "devices", "nodes", "onlineCPUs", "packages", "possibleCPUs", "warnings"]
        let offsets = keys.compactMap { topology.stdout.range(of: "\n  \"\($0)\": ")?.lowerBound }
        #expect(offsets.count == keys.count && offsets == offsets.sorted(), "\(topology.stdout.prefix(400))")

        let table = try h.ctl(["devices"])
        #expect(table.status == 0)
        let lines = table.stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true) }
        #expect(lines.first == ["ADDRESS", "KIND", "VENDOR", "DEVICE", "NODE", "MEMNODES", "CPUS", "LOCALITY", "DRIVER"])
        #expect(lines.contains(["0000:83:00.0", "accelerator", "Intel", "0x225c", "1", "1", "8-15", "node", "mic"]), "\(table)")
        // The BMC's VGA is listed, as a display adapter, not as a GPU.
        #expect(lines.contains(["0000:05:00.0", "display", "ASPEED", "0x2000", "0", "0", "0-7", "node", "-"]), "\(table)")
        // Aligned: every row starts its CPUS column where the header does.
        let header = table.stdout.split(separator: "\n")[0]
        let column = try #require(header.range(of: "CPUS")).lowerBound.utf16Offset(in: header)
        for row in table.stdout.split(separator: "\n").dropFirst() {
            #expect(row.count > column && row[row.index(row.startIndex, offsetBy: column - 1)] == " ")
        }

        let onNode1 = try h.ctl(["--json", "devices", "--node", "1"]).decode(Manager.ListDevicesReply.self)
        #expect(onNode1.devices.map(\.address) == ["0000:83:00.0"])
        let gpus = try h.ctl(["devices", "--kind", "gpu", "--json"]).decode(Manager.ListDevicesReply.self)
        #expect(gpus.devices.isEmpty)
        let displays = try h.ctl(["devices", "--kind", "display", "--json"]).decode(Manager.ListDevicesReply.self)
        #expect(displays.devices.map(\.address) == ["0000:05:00.0"])

        // Any spelling in, the canonical address out.
        let one = try h.ctl(["--json", "device", "00000000:83:00"]).decode(Manager.GetDeviceReply.self)
        #expect(one.device.address == "0000:83:00.0" && one.device.numaNode == 1 && one.device.cpus == "8-15")
        let detail = try h.ctl(["device", "83:00.0"])
        #expect(detail.status == 0 && detail.stdout.contains("pcie path") && detail.stdout.contains("0000:80:03.0"), "\(detail)")

        let unknown = try h.ctl(["device", "0000:99:00.0"])
        #expect(unknown.status == 1, "\(unknown)")
        #expect(unknown.stderr.contains("io.numaplaced.Manager.NoSuchDevice") && unknown.stderr.contains("0000:99:00.0"))
        let noNode = try h.ctl(["devices", "--node", "7"])
        #expect(noNode.status == 1 && noNode.stderr.contains("NUMA node 7 does not exist"), "\(noNode)")

        // A captured machine is not this host: the daemon refuses to spawn, in words.
        let refused = try h.ctl(["spawn", "--node", "0", "--", "/bin/true"])
        #expect(refused.status == 1 && refused.stderr.contains("PlacementImpossible"), "\(refused)")

        // The exports give the same text from the daemon as from an offline scan (header aside).
        for export in [["export", "slurm-gres", "--kind", "gpu", "--kind", "accelerator"], ["export", "nfd"]] {
            let live = try h.ctl(export)
            let offline = try h.ctl(export + ["--sysfs-root", root])
            #expect(live.status == 0 && offline.status == 0, "\(live)\n\(offline)")
            #expect(live.stdout.split(separator: "\n").dropFirst() == offline.stdout.split(separator: "\n").dropFirst())
        }
        let gres = try h.ctl(["export", "slurm-gres", "--kind", "accelerator", "--file-pattern", "/dev/mic{index}"])
        #expect(gres.stdout.split(separator: "\n").contains("Name=accelerator File=/dev/mic0 Cores=8-15"),
                "the GRES name defaults to the one kind listed: \(gres)")
        let named = try h.ctl(["export", "slurm-gres", "--kind", "accelerator", "--name", "mic", "--file-pattern", "/dev/mic{index}"])
        #expect(named.stdout.split(separator: "\n").contains("Name=mic File=/dev/mic0 Cores=8-15"), "\(named)")
        let nfd = try h.ctl(["export", "nfd"])
        #expect(nfd.stdout.split(separator: "\n").contains("numaplaced.io/accelerator-0000_83_00_0.numa-node=1"), "\(nfd)")

        // -o writes the file whole (through a hidden temporary file) and prints nothing.
        let target = h.dir.appendingPathComponent("features.d/numaplaced")
        try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
        let written = try h.ctl(["export", "nfd", "-o", target.path])
        #expect(written.status == 0 && written.stdout.isEmpty, "\(written)")
        #expect((try String(contentsOf: target, encoding: .utf8)) == nfd.stdout)
        #expect(try FileManager.default.contentsOfDirectory(atPath: target.deletingLastPathComponent().path) == ["numaplaced"])
    }

    // MARK: Exit codes without a daemon

    @Test(.enabled(if: CLIHarness.available, CLIHarness.missing))
    func unreachableDaemonExits69() throws {
        let h = try CLIHarness(daemon: false)
        let missing = h.dir.appendingPathComponent("nobody-listens").path
        let r = try h.ctl(["--socket", missing, "status"])
        #expect(r.status == 69, "\(r)")
        #expect(r.stderr.contains(missing))
        // $NUMAPLACE_SOCKET is the default socket when --socket is not given.
        var env = ProcessInfo.processInfo.environment
        env["NUMAPLACE_SOCKET"] = missing + "-env"
        let viaEnv = try CLIHarness.run(["devices"], environment: env, cwd: h.dir, scratch: h.dir)
        #expect(viaEnv.status == 69 && viaEnv.stderr.contains(missing + "-env"), "\(viaEnv)")
        // A socket that exists but is not a daemon's (a plain file) is as unreachable.
        _ = FileManager.default.createFile(atPath: missing, contents: Data())
        #expect(try h.ctl(["--socket", missing, "workers"]).status == 69)
    }

    @Test(.enabled(if: CLIHarness.available, CLIHarness.missing),
          arguments: [
              ["spawn", "--node", "0"],                                          // no command
              ["spawn", "--node", "0", "--device", "3b:00.0", "--", "/bin/true"], // two targets
              ["spawn", "--cpus", "3-1", "--", "/bin/true"],                      // bad cpulist
              ["spawn", "--memory", "everywhere", "--", "/bin/true"],
              ["spawn", "--env", "=x", "--", "/bin/true"],
              ["kill", "w1", "--signal", "BOGUS"],
              ["device", ""],
              ["devices", "--kind", "fpga"],
              ["frobnicate"],
              ["--json", "export", "nfd"],
              ["export", "nfd", "--prefix", "kubernetes.io"],
              ["export", "slurm-gres", "--file-pattern", "/dev/nvidia{minor}"],
              ["export", "slurm-gres", "--vendor", "nobody"],
          ])
    func usageErrorsExit2(args: [String]) throws {
        let h = try CLIHarness(daemon: false)
        let r = try h.ctl(args)
        #expect(r.status == 2, "\(args): \(r)")
        #expect(!r.stderr.isEmpty)
    }

    @Test(.enabled(if: CLIHarness.available, CLIHarness.missing))
    func helpCompletionsAndExamples() throws {
        let h = try CLIHarness(daemon: false)
        let help = try h.ctl(["--help"])
        #expect(help.status == 0 && help.stdout.contains("Exit codes:") && help.stdout.contains("Examples:"), "\(help)")
        for verb in ["status", "topology", "devices", "device", "spawn", "workers", "worker", "kill", "wait", "monitor",
                     "reload", "export"] {
            #expect(help.stdout.contains("  \(verb) "), "--help does not list \(verb)")
        }
        let spawnHelp = try h.ctl(["spawn", "--help"])
        #expect(spawnHelp.status == 0 && spawnHelp.stdout.contains("--exclusive-cores") && spawnHelp.stdout.contains("Examples:"))
        for shell in ["bash", "zsh", "fish"] {
            let script = try h.ctl(["--generate-completion-script", shell])
            #expect(script.status == 0 && script.stdout.contains("numaplacectl") && script.stdout.contains("slurm-gres"),
                    "\(shell): \(script.stderr)")
        }
    }

    // MARK: This host: spawning

    @Test(.enabled(if: CLIHarness.available, CLIHarness.missing))
    func spawnWaitExitsWithTheWorkersStatus() throws {
        let h = try CLIHarness()
        let seven = try h.ctl(["spawn", "--wait", "--", "/bin/sh", "-c", "exit 7"])
        #expect(seven.status == 7, "\(seven)\n\(h.daemonLog.suffix(1500))")
        #expect(seven.stdout.contains("exited with code 7"))

        let killed = try h.ctl(["--json", "spawn", "--wait", "--", "/bin/sh", "-c", "kill -TERM $$"])
        #expect(killed.status == 128 + 15, "\(killed)")
        let w = try killed.decode(Manager.WorkerReply.self).worker
        #expect(w.state == .exited && w.exit == Manager.ExitStatus(how: .killed, signal: 15))

        let zero = try h.ctl(["spawn", "--wait", "--json", "--", "/bin/true"])
        #expect(zero.status == 0, "\(zero)")
        #expect(try zero.decode(Manager.WorkerReply.self).worker.exit?.code == 0)

        let missing = try h.ctl(["spawn", "--", "/nonexistent/program"])
        #expect(missing.status == 1 && missing.stderr.contains("SpawnFailed"), "\(missing)")
    }

    /// `spawn --node 0` reports the placement read back from the worker: node 0's CPUs (as far as the
    /// daemon may give them) and, for a worker alive long enough to read numa_maps, the memory policy.
    @Test(.enabled(if: CLIHarness.available, CLIHarness.missing))
    func spawnOnNodeZeroShowsTheAppliedPlacement() throws {
        let h = try CLIHarness()
        let t = try h.ctl(["--json", "topology"]).decode(Manager.GetTopologyReply.self)
        let node0 = try #require(t.nodes.first { $0.id == 0 })
        let expected = try CPUSet(cpulist: node0.cpus).intersection(try CPUSet(cpulist: t.allowedCPUs))

        let r = try h.ctl(["spawn", "--node", "0", "--", "/bin/true"])
        #expect(r.status == 0, "\(r)")
        let applied = try #require(r.stdout.split(separator: "\n").first { $0.contains("applied") }, "\(r)")
        #expect(applied.contains("CPUs \(expected.cpulist),"), "\(applied)")
        #expect(r.stdout.contains("node       0"), "\(r)")

        let sleeper = try h.ctl(["--json", "spawn", "--node", "0", "--memory", "bind", "--", "/bin/sleep", "60"])
        let w = try sleeper.decode(Manager.WorkerReply.self).worker
        defer { _ = try? h.ctl(["kill", w.id, "--signal", "KILL"]) }
        #expect(w.node == 0 && w.state == .running)
        let a = try #require(w.applied, "no applied placement: \(sleeper)")
        #expect(try CPUSet(cpulist: a.cpus) == expected)
        #expect(a.memoryPolicy == "bind" && a.memoryNodes == [0])
    }

    /// The worker gets this process's environment and working directory unless told otherwise;
    /// relative output paths are ours, not the daemon's.
    @Test(.enabled(if: CLIHarness.available, CLIHarness.missing))
    func spawnPassesEnvironmentAndWorkingDirectory() throws {
        let h = try CLIHarness()
        let work = h.dir.appendingPathComponent("work dir")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        var env = ProcessInfo.processInfo.environment
        env["NUMAPLACE_TEST_VALUE"] = "from the client"
        let script = "printf '%s|%s|%s\\n' \"$NUMAPLACE_TEST_VALUE\" \"$PWD\" \"$EXTRA\""
        let r = try CLIHarness.run(["--socket", h.socket, "spawn", "--wait", "--stdout", "out.txt", "--env", "EXTRA=yes",
                                    "--", "/bin/sh", "-c", script], environment: env, cwd: work, scratch: h.dir)
        #expect(r.status == 0, "\(r)")
        let out = try String(contentsOf: work.appendingPathComponent("out.txt"), encoding: .utf8)
        #expect(out == "from the client|\(work.path)|yes\n")

        let clean = try CLIHarness.run(["--socket", h.socket, "spawn", "--wait", "--clear-env", "--cwd", "/",
                                        "--stdout", work.appendingPathComponent("clean.txt").path,
                                        "--", "/bin/sh", "-c", script], environment: env, cwd: work, scratch: h.dir)
        #expect(clean.status == 0, "\(clean)")
        #expect(try String(contentsOf: work.appendingPathComponent("clean.txt"), encoding: .utf8) == "|/|\n")
    }

    @Test(.enabled(if: CLIHarness.available, CLIHarness.missing))
    func workersWorkerKillAndWait() throws {
        let h = try CLIHarness()
        let started = try h.ctl(["--json", "spawn", "--name", "sleeper", "--", "/bin/sleep", "60"])
        let id = try started.decode(Manager.WorkerReply.self).worker.id

        let table = try h.ctl(["workers"])
        #expect(table.status == 0)
        let row = try #require(table.stdout.split(separator: "\n").first { $0.hasPrefix(id + " ") }, "\(table)")
        #expect(row.contains("running") && row.contains("/bin/sleep 60"))
        let listed = try h.ctl(["workers", "--json"]).decode(Manager.ListWorkersReply.self)
        #expect(listed.workers.contains { $0.id == id && $0.state == .running })
        let one = try h.ctl(["--json", "worker", id]).decode(Manager.WorkerReply.self)
        #expect(one.worker.argv == ["/bin/sleep", "60"])
        let detail = try h.ctl(["worker", id])
        #expect(detail.stdout.contains("requested") && detail.stdout.contains("applied"), "\(detail)")

        let kill = try h.ctl(["kill", id, "--signal", "SIGKILL"])
        #expect(kill.status == 0 && kill.stdout.contains("signal 9"), "\(kill)")
        let waited = try h.ctl(["wait", id])
        #expect(waited.status == 0 && waited.stdout.contains("killed by signal 9"), "\(waited)")
        let again = try h.ctl(["--json", "wait", id]).decode(Manager.WorkerReply.self)
        #expect(again.worker.exit == Manager.ExitStatus(how: .killed, signal: 9))

        let late = try h.ctl(["kill", id])
        #expect(late.status == 1 && late.stderr.contains("has exited"), "\(late)")
        let nobody = try h.ctl(["worker", "w999999"])
        #expect(nobody.status == 1 && nobody.stderr.contains("io.numaplaced.Manager.NoSuchWorker"), "\(nobody)")
    }

    /// `monitor --json` writes one JSON object per line as events happen: ready first, then the
    /// worker's start and exit.
    @Test(.enabled(if: CLIHarness.available, CLIHarness.missing))
    func monitorFollowsEvents() throws {
        let h = try CLIHarness()
        for json in [true, false] {
            let monitor = Process()
            monitor.executableURL = URL(fileURLWithPath: CLIHarness.ctlPath)
            monitor.arguments = ["--socket", h.socket, "monitor"] + (json ? ["--json"] : [])
            let pipe = Pipe()
            monitor.standardOutput = pipe
            monitor.standardError = FileHandle.nullDevice
            try monitor.run()
            let lines = LineReader(pipe.fileHandleForReading)
            let first = try #require(lines.next(), "monitor printed nothing")
            if json {
                let ready = try JSONDecoder().decode(Manager.MonitorReply.self, from: Data(first.utf8))
                #expect(ready.event.kind == .ready)
            } else {
                #expect(first.hasSuffix("  ready"), "\(first)")
            }
            let spawned = try h.ctl(["--json", "spawn", "--wait", "--", "/bin/true"])
            let id = try spawned.decode(Manager.WorkerReply.self).worker.id
            var kinds: [String] = []
            while !kinds.contains("workerExited"), let line = lines.next() {
                if json {
                    let e = try JSONDecoder().decode(Manager.MonitorReply.self, from: Data(line.utf8)).event
                    #expect(e.worker?.id == id, "\(line)")
                    kinds.append(e.kind.rawValue)
                } else {
                    #expect(line.contains(" \(id) pid "), "\(line)")
                    kinds += ["workerStarted", "workerExited"].filter { line.contains("  \($0)  ") }
                }
            }
            #expect(kinds == ["workerStarted", "workerExited"])
            // It follows until interrupted, even when started with signals blocked (as this test's
            // threads start it).
            monitor.terminate()
            monitor.waitUntilExit()
            #expect(monitor.terminationReason == .uncaughtSignal && monitor.terminationStatus == SIGTERM)
        }
    }

    @Test(.enabled(if: CLIHarness.available, CLIHarness.missing))
    func reload() throws {
        let h = try CLIHarness()
        let r = try h.ctl(["reload"])
        if geteuid() == 0 {
            #expect(r.status == 0 && r.stdout.contains("reloaded"), "\(r)\n\(h.daemonLog.suffix(1000))")
            #expect(try h.ctl(["--json", "reload"]).stdout == "{}\n")
        } else {
            #expect(r.status == 77 && r.stderr.contains("PermissionDenied"), "\(r)")
        }
    }

    static let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// As another user: a socket the user may not open is 77, and so is the daemon's PermissionDenied
    /// (only root may reload).
    @Test(.enabled(if: CLIHarness.available && geteuid() == 0 && setpriv != nil,
                   "needs the built binaries, root, and setpriv (util-linux) to run numaplacectl as nobody"))
    func permissionDeniedExits77() throws {
        let h = try CLIHarness()
        let setpriv = try #require(Self.setpriv)
        func asNobody(_ args: [String]) throws -> CLIRun {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: setpriv)
            p.arguments = ["--reuid=65534", "--regid=65534", "--clear-groups", CLIHarness.ctlPath, "--socket", h.socket] + args
            let err = Pipe()
            p.standardError = err
            p.standardOutput = FileHandle.nullDevice
            try p.run()
            let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            return CLIRun(status: p.terminationStatus, stdout: "", stderr: text)
        }
        try #require(try asNobody(["--help"]).status == 0, "nobody cannot run \(CLIHarness.ctlPath)")
        try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: h.dir.path)
        let closed = try asNobody(["status"])
        #expect(closed.status == 77 && closed.stderr.contains(h.socket), "\(closed)")
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: h.dir.path)
        try FileManager.default.setAttributes([.posixPermissions: 0o666], ofItemAtPath: h.socket)
        let denied = try asNobody(["reload"])
        #expect(denied.status == 77 && denied.stderr.contains("io.numaplaced.Manager.PermissionDenied"), "\(denied)")
    }
}

/// Lines from a pipe as they arrive (blocking reads).
private final class LineReader {
    let handle: FileHandle
    var buffer = Data()

    init(_ handle: FileHandle) { self.handle = handle }

    func next() -> String? {
        while true {
            if let nl = buffer.firstIndex(of: 0x0a) {
                let line = String(decoding: buffer[buffer.startIndex..<nl], as: UTF8.self)
                buffer.removeSubrange(buffer.startIndex...nl)
                return line
            }
            // A bound so that a missing event fails the test instead of hanging it.
            var p = pollfd(fd: handle.fileDescriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 120_000) > 0 else {
                Issue.record("no output from monitor")
                return nil
            }
            let chunk = handle.availableData
            if chunk.isEmpty { return nil }
            buffer.append(chunk)
        }
    }
}
