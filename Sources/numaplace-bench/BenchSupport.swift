import Foundation
import Glibc
import NumaPlaceCore
import NumaPlacePlatform
import NumaPlaceSyscall
import NumaPlaceProtocol

/// What the daemon benchmarks and the soak share: a clock, percentiles, /proc readings of another
/// process, posix_spawn as a caller without numaplaced would use it, and a child daemon.
enum Bench {
    /// Seconds on CLOCK_MONOTONIC.
    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Nearest-rank percentiles of a sample (the smallest value with at least p of the samples at or below it).
    struct Summary: Codable {
        var count: Int
        var median: Double
        var p99: Double
        var mean: Double
        var min: Double
        var max: Double

        init(_ xs: [Double]) {
            let s = xs.sorted()
            count = s.count
            func rank(_ p: Double) -> Double {
                s.isEmpty ? .nan : s[Swift.max(0, Swift.min(s.count - 1, Int((p * Double(s.count)).rounded(.up)) - 1))]
            }
            median = rank(0.5)
            p99 = rank(0.99)
            mean = s.isEmpty ? .nan : s.reduce(0, +) / Double(s.count)
            min = s.first ?? .nan
            max = s.last ?? .nan
        }
    }

    /// A comparison of a figure with another of the same benchmark: ratio = this / anchor (medians,
    /// or values), met when within `max` / `min`.
    struct Anchor: Codable {
        var figure: String
        var max: Double?
        var min: Double?
        /// The benchmark holding `figure`, by the start of its title; nil: this one.
        var benchmark: String?

        init(figure: String, max: Double? = nil, min: Double? = nil, benchmark: String? = nil) {
            self.figure = figure
            self.max = max
            self.min = min
            self.benchmark = benchmark
        }
    }

    /// One measured figure, printed as a line the benchmark script collects (`RESULT {json}`).
    struct Figure: Codable {
        var benchmark: String
        var name: String
        var unit: String
        var median: Double?
        var p99: Double?
        var value: Double?
        var count: Int?
        var anchors: [Anchor] = []
        /// An absolute target on `targetOn` ("median", "p99" or "value"): at most `targetMax`.
        var targetMax: Double?
        var targetOn: String?
        var note: String?
    }

    static func emit(_ f: Figure) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        if let data = try? encoder.encode(f), let text = String(data: data, encoding: .utf8) {
            print("RESULT " + text)
            fflush(stdout)
        }
    }

    /// A latency figure from samples in seconds, reported in `unit` (µs or ms).
    static func emit(_ benchmark: String, _ name: String, seconds s: Summary, unit: String = "µs",
                     anchors: [Anchor] = [], targetMax: Double? = nil, targetOn: String? = nil, note: String? = nil) {
        let scale = unit == "ms" ? 1e3 : 1e6
        emit(Figure(benchmark: benchmark, name: name, unit: unit, median: s.median * scale, p99: s.p99 * scale,
                    value: nil, count: s.count, anchors: anchors, targetMax: targetMax, targetOn: targetOn, note: note))
        print("  \(name): median \(fmt(s.median * scale)) \(unit), p99 \(fmt(s.p99 * scale)) \(unit) (\(s.count) samples)")
    }

    static func emit(_ benchmark: String, _ name: String, value: Double, unit: String, count: Int? = nil,
                     anchors: [Anchor] = [], targetMax: Double? = nil, note: String? = nil) {
        emit(Figure(benchmark: benchmark, name: name, unit: unit, median: nil, p99: nil, value: value, count: count,
                    anchors: anchors, targetMax: targetMax, targetOn: targetMax == nil ? nil : "value", note: note))
        print("  \(name): \(fmt(value)) \(unit)")
    }

    // MARK: /proc of another process

    /// A `kB` field of `/proc/PID/status` (VmRSS, VmHWM).
    static func statusKB(_ pid: pid_t, _ field: String) -> Int? {
        guard let text = try? SysfsRoot("/").read("proc/\(pid)/status"),
              let value = SysfsParsers.statusField(field, in: text) else { return nil }
        return Int(value.split(separator: " ").first ?? "")
    }

    static func rssKB(_ pid: pid_t) -> Int? { statusKB(pid, "VmRSS") }

    /// Open descriptors of a process (entries of `/proc/PID/fd`).
    static func fdCount(_ pid: pid_t) -> Int? {
        (try? SysfsRoot("/").list("proc/\(pid)/fd"))?.count
    }

    /// The children of `pid` in state Z (exited, not reaped), and all its children.
    static func children(of pid: pid_t) -> (zombies: [pid_t], all: [pid_t]) {
        var zombies: [pid_t] = [], all: [pid_t] = []
        guard let names = try? SysfsRoot("/").list("proc") else { return ([], []) }
        for name in names {
            guard let child = pid_t(name), let stat = try? SysfsRoot("/").read("proc/\(name)/stat", limit: 4096),
                  let close = stat.lastIndex(of: ")") else { continue }
            // Fields after the command name: state, ppid, …
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 2, pid_t(fields[1]) == pid else { continue }
            all.append(child)
            if fields[0] == "Z" { zombies.append(child) }
        }
        return (zombies, all)
    }

    // MARK: Spawning without numaplaced

    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    static func which(_ name: String) -> String? {
        if name.contains("/") { return access(name, X_OK) == 0 ? name : nil }
        let path = getenv("PATH").map { String(cString: $0) } ?? Spawner.defaultPath
        for dir in path.split(separator: ":") where access("\(dir)/\(name)", X_OK) == 0 {
            return "\(dir)/\(name)"
        }
        return nil
    }

    /// A prepared argv for posix_spawn: the C strings are made once, outside the timed region.
    final class CArgv: @unchecked Sendable {
        let pointers: [UnsafeMutablePointer<CChar>?]
        let path: String
        init(_ argv: [String]) {
            path = argv[0]
            pointers = argv.map { strdup($0) } + [nil]
        }
        /// An environment block (no executable path).
        init(_ entries: [String], terminatedOnly: Bool) {
            path = ""
            pointers = entries.map { strdup($0) } + [nil]
        }
        deinit { for p in pointers { free(p) } }
    }

    /// posix_spawn(3) then waitpid(2), as a caller without numaplaced does it; throws unless the
    /// program exits 0.
    static func posixSpawnAndWait(_ argv: CArgv) throws {
        var pid: pid_t = 0
        var args = argv.pointers
        let rc = posix_spawn(&pid, argv.path, nil, nil, &args, environ)
        guard rc == 0 else { throw Failure("posix_spawn \(argv.path): \(Errno(rc))") }
        var status: Int32 = 0
        do { _ = try Syscall.retrying { waitpid(pid, &status, 0) } } catch { throw Failure("waitpid: \(error)") }
        guard status == 0 else { throw Failure("\(argv.path): wait status \(status)") }
    }

    /// posix_spawn(3) with `environment` (nil: ours) and stdout on /dev/null, then waitpid(2).
    static func posixSpawnAndWait(_ argv: CArgv, environment: CArgv?, quiet: Bool) throws {
        var pid: pid_t = 0
        var args = argv.pointers
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if quiet { posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0) }
        let rc: Int32
        if let environment {
            var env = environment.pointers
            rc = posix_spawn(&pid, argv.path, &actions, nil, &args, &env)
        } else {
            rc = posix_spawn(&pid, argv.path, &actions, nil, &args, environ)
        }
        guard rc == 0 else { throw Failure("posix_spawn \(argv.path): \(Errno(rc))") }
        var status: Int32 = 0
        do { _ = try Syscall.retrying { waitpid(pid, &status, 0) } } catch { throw Failure("waitpid: \(error)") }
        guard status == 0 else { throw Failure("\(argv.path): wait status \(status)") }
    }

    /// Our environment plus `extra` (KEY=value), as C strings for posix_spawn.
    static func environment(adding extra: [String]) -> CArgv {
        var entries: [String] = []
        var p = environ
        while let e = p.pointee {
            entries.append(String(cString: e))
            p += 1
        }
        let keys = Set(extra.map { String($0.prefix(while: { $0 != "=" })) })
        entries.removeAll { keys.contains(String($0.prefix(while: { $0 != "=" }))) }
        return CArgv(entries + extra, terminatedOnly: true)
    }

    // MARK: A daemon of our own

    /// A `numaplaced` started by a benchmark, killed (SIGTERM) when released.
    final class Daemon {
        let process: Process
        let socket: String
        var pid: pid_t { process.processIdentifier }

        /// Starts `binary` with `arguments` plus `--socket`, and waits until the socket answers.
        init(binary: String, socket: String, arguments: [String], log: String? = nil,
             environment: [String: String]? = nil) throws {
            self.socket = socket
            unlink(socket)
            process = Process()
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = ["--socket", socket, "--log-to", "stderr"] + arguments
            if let environment { process.environment = environment }
            if let log {
                _ = FileManager.default.createFile(atPath: log, contents: nil)
                process.standardError = FileHandle(forWritingAtPath: log)
            }
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            let deadline = Bench.now() + 60
            while Bench.now() < deadline {
                if (try? VarlinkClient(path: socket)) != nil { return }
                guard process.isRunning else { throw Failure("\(binary) exited with \(process.terminationStatus)") }
                usleep(2000)
            }
            throw Failure("\(binary) did not answer on \(socket) within 60 s")
        }

        func stop() {
            if process.isRunning {
                process.terminate()
                process.waitUntilExit()
            }
        }

        deinit { stop() }
    }

    /// The numaplaced binary beside this one (both are products of one build).
    static func siblingDaemon() -> String {
        let me = CommandLine.arguments[0]
        let dir = me.contains("/") ? String(me[..<me.lastIndex(of: "/")!]) : "."
        return dir + "/numaplaced"
    }
}

/// A number with one decimal.
func fmt(_ x: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", x) }

/// A little lock-protected box for counters and results shared by client threads.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
    var current: Value { withLock { $0 } }
}

/// Runs `body(i)` on `count` threads at once and waits for all of them.
func runThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let group = DispatchGroup()
    var threads: [Thread] = []
    for i in 0..<count {
        group.enter()
        let t = Thread {
            body(i)
            group.leave()
        }
        t.stackSize = 1 << 20
        threads.append(t)
    }
    for t in threads { t.start() }
    group.wait()
}
