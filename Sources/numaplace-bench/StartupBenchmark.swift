import ArgumentParser
import Foundation
import Glibc
import NumaPlaceCore
import NumaPlacePlatform
import NumaPlaceSyscall
import NumaPlaceProtocol

/// `numaplace-bench startup`: from exec of `numaplaced --sysfs-root DIR` to `READY=1` on
/// `$NOTIFY_SOCKET` (what systemd waits for with `Type=notify`), and the daemon's resident memory
/// once it is idle. The anchor is hwloc loading the same root (`lstopo-no-graphics --of xml`), the
/// cost of reading the machine in a fresh process.
struct StartupBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "startup",
        abstract: "Start-up to READY=1 and idle RSS of numaplaced on a sysfs root."
    )

    @Option(help: "The numaplaced binary (default: beside this one).") var daemon: String?
    @Option(help: "The sysfs root (a captured machine).") var root: String
    @Option(help: "A label for the root in the report.") var label: String = "root"
    @Option(help: "Start-ups to time.") var iterations: Int = 20
    @Option(help: "Scratch directory for sockets.") var workdir: String = "/tmp"
    @Option(help: "Median target, ms (0: none; issue 17).") var targetMs: Double = 10
    @Option(help: "Idle RSS target, MB (0: none).") var targetRssMB: Double = 12

    func run() throws {
        let binary = daemon ?? Bench.siblingDaemon()
        let notifyPath = workdir + "/numaplace-bench-notify-\(getpid())"
        let socketPath = workdir + "/numaplace-bench-startup-\(getpid()).sock"
        var ready: [Double] = [], rss: [Double] = [], rssAfterQuery: [Double] = [], rssAnon: [Double] = [], rssFile: [Double] = []

        for i in 0..<(iterations + 2) {
            unlink(notifyPath)
            unlink(socketPath)
            let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw Bench.Failure("socket: \(Errno.current)") }
            defer { close(fd) }
            var addr = sockaddr_un()
            addr.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &addr.sun_path) { raw in
                for (j, b) in notifyPath.utf8.enumerated() { raw[j] = b }
            }
            let bound = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard bound == 0 else { throw Bench.Failure("bind \(notifyPath): \(Errno.current)") }
            var env = ProcessInfo.processInfo.environment
            env["NOTIFY_SOCKET"] = notifyPath
            let process = Process()
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = ["--sysfs-root", root, "--socket", socketPath, "--config", workdir + "/no-such-config",
                                 "--log-level", "warning", "--log-to", "stderr"]
            process.environment = env
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            let t0 = Bench.now()
            try process.run()
            var gotReady = false
            var buf = [UInt8](repeating: 0, count: 4096)
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            while !gotReady, Bench.now() - t0 < 30, poll(&p, 1, 30_000) > 0 {
                let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n > 0, String(decoding: buf[0..<n], as: UTF8.self).split(separator: "\n").contains("READY=1") {
                    gotReady = true
                }
            }
            let t1 = Bench.now()
            guard gotReady else {
                process.terminate()
                throw Bench.Failure("no READY=1 from \(binary) within 30 s")
            }
            if i >= 2 { ready.append(t1 - t0) }   // the first two warm the page cache
            if i == iterations + 1 || i == 1 {
                // Idle: ready, nothing asked yet; then after the first full query.
                Thread.sleep(forTimeInterval: 1.0)
                if let kb = Bench.rssKB(process.processIdentifier) { rss.append(Double(kb)) }
                if let kb = Bench.statusKB(process.processIdentifier, "RssAnon") { rssAnon.append(Double(kb)) }
                if let kb = Bench.statusKB(process.processIdentifier, "RssFile") { rssFile.append(Double(kb)) }
                if let c = try? VarlinkClient(path: socketPath) {
                    _ = try? c.call("io.numaplaced.Manager.GetTopology", Empty(), as: Manager.GetTopologyReply.self)
                }
                Thread.sleep(forTimeInterval: 0.2)
                if let kb = Bench.rssKB(process.processIdentifier) { rssAfterQuery.append(Double(kb)) }
            }
            process.terminate()
            process.waitUntilExit()
        }
        unlink(notifyPath)
        unlink(socketPath)

        // The floor any Swift program pays: exec, the dynamic loader and the runtime, as
        // `numaplaced --version` (which exits before reading anything). (Its peak RSS is not shown:
        // wait4's ru_maxrss of a posix_spawned child includes the spawning process's own RSS, which
        // the vfork-style child shares until it execs; an earlier version reported that as a floor.)
        var floorTimes: [Double] = []
        let versionArgv = Bench.CArgv([binary, "--version"])
        for i in 0..<(iterations + 2) {
            let t = Bench.now()
            try Bench.posixSpawnAndWait(versionArgv, environment: nil, quiet: true)
            if i >= 2 { floorTimes.append(Bench.now() - t) }
        }

        let b = "Start-up and memory on \(label)"
        print(b)
        let floorName = "numaplaced --version (exec, loader, Swift runtime; exit)"
        Bench.emit(b, floorName, seconds: Bench.Summary(floorTimes), unit: "ms")
        var anchors: [Bench.Anchor] = [.init(figure: floorName)]
        if let lstopo = Bench.which("lstopo-no-graphics") {
            let envBlock = Bench.environment(adding: ["HWLOC_FSROOT=\(root)"])
            let argv = Bench.CArgv([lstopo, "--of", "xml", "-"])
            var xs: [Double] = []
            for i in 0..<(iterations + 2) {
                let t = Bench.now()
                try Bench.posixSpawnAndWait(argv, environment: envBlock, quiet: true)
                if i >= 2 { xs.append(Bench.now() - t) }
            }
            let name = "HWLOC_FSROOT lstopo-no-graphics --of xml - (process start to exit)"
            Bench.emit(b, name, seconds: Bench.Summary(xs), unit: "ms")
            anchors.insert(.init(figure: name), at: 0)
        }
        Bench.emit(b, "numaplaced exec → READY=1 (sd_notify)", seconds: Bench.Summary(ready), unit: "ms", anchors: anchors,
                   targetMax: targetMs > 0 ? targetMs : nil, targetOn: targetMs > 0 ? "median" : nil)
        let idle = (rss.max() ?? .nan) / 1024
        Bench.emit(b, "numaplaced idle RSS (1 s after READY=1)", value: idle, unit: "MB", count: rss.count,
                   targetMax: targetRssMB > 0 ? targetRssMB : nil, note: "VmRSS of /proc/PID/status; samples " + rss.map { fmt($0 / 1024) }.joined(separator: ", "))
        Bench.emit(b, "of which anonymous (RssAnon: heap, stacks, the daemon's own data)", value: (rssAnon.max() ?? .nan) / 1024,
                   unit: "MB", count: rssAnon.count)
        Bench.emit(b, "of which file-backed (RssFile: the binary's and libraries' pages in use)", value: (rssFile.max() ?? .nan) / 1024,
                   unit: "MB", count: rssFile.count, note: "clean pages of the executable and shared libraries, shared with other processes and reclaimable")
        Bench.emit(b, "numaplaced RSS after one GetTopology", value: (rssAfterQuery.max() ?? .nan) / 1024, unit: "MB",
                   count: rssAfterQuery.count)
    }
}

/// `numaplace-bench worker-memory`: what tracking N running workers costs the daemon: its RSS and
/// descriptors before and with N workers of a program that only waits (each held by a pidfd and a
/// dispatch source), then how fast it reaps them all and what it keeps (the exited history is bounded).
struct WorkerMemoryBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker-memory",
        abstract: "Daemon memory with N tracked running workers (default 10,000)."
    )

    @Option(help: "The numaplaced binary (default: beside this one).") var daemon: String?
    @Option(help: "Workers to keep running.") var workers: Int = 10_000
    @Argument(parsing: .captureForPassthrough, help: "After --: a program that waits forever, with its arguments.")
    var command: [String] = []
    @Option(help: "Scratch directory.") var workdir: String = "/tmp"
    @Option(help: "Concurrent clients spawning.") var clients: Int = 4

    func run() throws {
        // Each tracked worker holds a pidfd in the daemon; raise the limit it inherits from us.
        var lim = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim)
        let want = rlim_t(workers + 4096)
        if lim.rlim_cur < want {
            lim.rlim_cur = want
            if lim.rlim_max < want { lim.rlim_max = want }
            guard setrlimit(Int32(RLIMIT_NOFILE.rawValue), &lim) == 0 else {
                throw Bench.Failure("cannot raise RLIMIT_NOFILE to \(want): \(Errno.current)")
            }
        }
        let dir = workdir + "/numaplace-bench-workers-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir + "/conf", withIntermediateDirectories: true)
        try Data("[Limits]\nMaxWorkersPerUser=\(workers + 100)\n".utf8).write(to: URL(fileURLWithPath: dir + "/conf/numaplaced.conf"))
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let d = try Bench.Daemon(binary: daemon ?? Bench.siblingDaemon(), socket: dir + "/np.sock",
                                 arguments: ["--config", dir + "/conf", "--state-dir", dir + "/state", "--event-source", "none",
                                             "--log-level", "warning"],
                                 log: dir + "/daemon.log")
        defer { d.stop() }
        let client = try VarlinkClient(path: d.socket)
        // Warm: a few spawns, so lazily made state (the state log, signal sources) is there before the baseline.
        for _ in 0..<20 {
            let w = try client.call("io.numaplaced.Manager.Spawn", Manager.SpawnParameters(argv: ["/bin/true"]), as: Manager.WorkerReply.self).worker
            _ = try client.call("io.numaplaced.Manager.Wait", Manager.WorkerIDParameters(id: w.id), as: Manager.WorkerReply.self)
        }
        Thread.sleep(forTimeInterval: 0.5)
        let rss0 = Bench.rssKB(d.pid) ?? 0, fds0 = Bench.fdCount(d.pid) ?? 0

        let pids = Locked([pid_t]()), errors = Locked([String]())
        // Workers outlive the daemon by design: whatever ends this benchmark, they must not stay
        // behind (idle-worker pauses forever). Declared after `d.stop()`'s defer, so it runs first.
        defer { for pid in pids.current { kill(pid, SIGKILL) } }
        let counter = Locked(0)
        let given = command.first == "--" ? Array(command.dropFirst()) : command
        let total = workers, socket = d.socket, argv = given.isEmpty ? ["/bin/sleep", "3600"] : given
        let t0 = Bench.now()
        runThreads(clients) { _ in
            guard let c = try? VarlinkClient(path: socket) else { return }
            while counter.withLock({ (n: inout Int) -> Bool in
                guard n < total else { return false }
                n += 1
                return true
            }) {
                do {
                    let w = try c.call("io.numaplaced.Manager.Spawn", Manager.SpawnParameters(argv: argv), as: Manager.WorkerReply.self).worker
                    pids.withLock { $0.append(pid_t(w.pid)) }
                } catch {
                    errors.withLock { if $0.count < 5 { $0.append("\(error)") } }
                }
            }
        }
        let spawnSeconds = Bench.now() - t0
        Thread.sleep(forTimeInterval: 1.0)
        let rss1 = Bench.rssKB(d.pid) ?? 0, fds1 = Bench.fdCount(d.pid) ?? 0
        let running = pids.current.count
        var list: [Double] = []
        for _ in 0..<5 {
            let t = Bench.now()
            _ = try client.call("io.numaplaced.Manager.GetStatus", Empty(), as: Manager.GetStatusReply.self)
            list.append(Bench.now() - t)
        }
        let status = Bench.Summary(list)

        let t1 = Bench.now()
        for pid in pids.current { kill(pid, SIGKILL) }
        var left = running
        while Bench.now() - t1 < 120 {
            left = (try? client.call("io.numaplaced.Manager.GetStatus", Empty(), as: Manager.GetStatusReply.self).runningWorkers) ?? -1
            if left == 0 { break }
            usleep(50_000)
        }
        let reapSeconds = Bench.now() - t1
        Thread.sleep(forTimeInterval: 1.0)
        let rss2 = Bench.rssKB(d.pid) ?? 0, fds2 = Bench.fdCount(d.pid) ?? 0

        let shown = ([(argv[0] as NSString).lastPathComponent] + argv.dropFirst()).joined(separator: " ")
        let b = "Memory cost of \(running) tracked running workers (\(shown))"
        print(b)
        Bench.emit(b, "daemon RSS before", value: Double(rss0) / 1024, unit: "MB", note: "\(fds0) descriptors")
        Bench.emit(b, "daemon RSS with \(running) running workers", value: Double(rss1) / 1024, unit: "MB",
                   note: "\(fds1) descriptors; spawned in \(fmt(spawnSeconds)) s by \(clients) clients"
                       + (errors.current.isEmpty ? "" : "; errors: \(errors.current)"))
        Bench.emit(b, "cost per tracked running worker", value: Double(rss1 - rss0) / Double(max(running, 1)), unit: "kB",
                   note: "GetStatus with \(running) workers: median \(fmt(status.median * 1e3, 2)) ms")
        Bench.emit(b, "daemon RSS after all exited", value: Double(rss2) / 1024, unit: "MB",
                   note: "\(fds2) descriptors; \(left) still running; reaped in \(fmt(reapSeconds)) s; the exited history keeps 1,024")
    }
}
