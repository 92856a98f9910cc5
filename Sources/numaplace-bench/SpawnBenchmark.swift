import ArgumentParser
import Glibc
import NumaPlaceCore
import NumaPlacePlatform
import NumaPlaceSyscall

/// Spawn-to-exit latency of `/bin/true`, three ways, interleaved round-robin so that drift in the
/// machine's load (other builds, frequency changes) hits all three alike:
/// 1. numaplaced's `Spawner` with a node placement (CPU affinity and a preferred memory policy);
/// 2. bare `posix_spawn` (glibc's, itself a vfork-style clone) with no placement;
/// 3. `posix_spawn` of `numactl --cpunodebind=N --membind=N /bin/true`, the usual way to place;
/// 4. for reference, `posix_spawn` with POSIX_SPAWN_SETSID: the Spawner's child starts a new session
///    (DESIGN.md step 1), and with CONFIG_SCHED_AUTOGROUP each new session costs the kernel a
///    scheduling group, made and freed per worker. This row separates that cost from the spawner's.
/// Each sample runs from the call that starts the process to the reaping of its exit. The ratios
/// are the targets of issue 3: Spawner ≤ 1.2× bare posix_spawn and ≤ 0.6× numactl (medians).
struct SpawnBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spawn",
        abstract: "Spawn-to-exit latency of /bin/true: Spawner vs posix_spawn vs numactl."
    )

    @Option(help: "Samples per method.")
    var iterations: Int = 1000

    @Option(help: "Unmeasured rounds before sampling (page cache, dynamic loader, branch predictors).")
    var warmup: Int = 50

    @Option(help: "The NUMA node to place on (default: the first node with CPUs).")
    var node: Int?

    @Option(help: "The program to run.")
    var program: String = "/bin/true"

    func validate() throws {
        guard (1...1_000_000).contains(iterations) else { throw ValidationError("--iterations must be 1...1000000") }
        guard warmup >= 0 else { throw ValidationError("--warmup must not be negative") }
    }

    func run() throws {
        let root = SysfsRoot("/")
        let inventory = SysfsScanner(root: root).scan()
        var warnings: [ScanWarning] = []
        let allowed = AllowedSet.read(root: root, topology: inventory.topology, warnings: &warnings)
        guard let nodeID = node.flatMap(NUMANodeID.init(rawValue:)) ?? inventory.topology.nodes.first(where: \.hasCPUs)?.id else {
            throw ValidationError("no NUMA node \(node.map(String.init) ?? "with CPUs")")
        }
        let placement = try PlacementPolicy.decide(PlacementRequest(target: .node(nodeID), memory: .preferred),
                                                   inventory: inventory, allowed: allowed, reserved: CPUSet())
        guard let numactl = Self.which("numactl") else { throw ValidationError("numactl is not in PATH") }

        let spawner = Spawner(savedOriginal: allowed)
        let request = SpawnRequest(argv: [program], stdin: .inherit, stdout: .inherit, stderr: .inherit,
                                   placement: placement)
        let methods: [(name: String, run: () throws -> Void)] = [
            ("Spawner (placed on node \(nodeID))", {
                let process = try spawner.spawn(request)
                _ = try process.pidfd.waitForExit()
            }),
            ("posix_spawn", { try Self.posixSpawn([program]) }),
            ("posix_spawn numactl --cpunodebind=\(nodeID) --membind=\(nodeID)", {
                try Self.posixSpawn([numactl, "--cpunodebind=\(nodeID)", "--membind=\(nodeID)", program])
            }),
            ("posix_spawn + POSIX_SPAWN_SETSID (reference)", { try Self.posixSpawn([program], newSession: true) }),
            // The two ways of clone3 for CLONE_INTO_CGROUP (docs/architecture.md), without a group here.
            ("Spawner, clone3 sharing memory (trampoline)", {
                var r = request
                r.cloneMethod = .clone3SharedMemory
                _ = try spawner.spawn(r).pidfd.waitForExit()
            }),
            ("Spawner, clone3 copying memory (fork semantics)", {
                var r = request
                r.cloneMethod = .clone3CopiedMemory
                _ = try spawner.spawn(r).pidfd.waitForExit()
            }),
        ]

        for _ in 0..<warmup {
            for m in methods { try m.run() }
        }
        var samples = Array(repeating: [Double](), count: methods.count)
        for i in 0..<methods.count { samples[i].reserveCapacity(iterations) }
        for _ in 0..<iterations {
            for (i, m) in methods.enumerated() {
                let start = Self.now()
                try m.run()
                samples[i].append(Self.now() - start)
            }
        }

        print("spawn-to-exit latency of \(program): \(iterations) samples per method, interleaved round-robin")
        let nodes = placement.memory.nodes.map(\.description).joined(separator: ",")
        print("placement: CPUs \(placement.cpus), memory \(placement.memory.mode.rawValue):\(nodes)")
        let stats = samples.map { Stats($0) }
        let width = methods.map(\.name.count).max() ?? 0
        print(pad("method", width) + "      median         p99        mean")
        for (m, s) in zip(methods, stats) {
            print(pad(m.name, width) + " " + us(s.median) + " " + us(s.p99) + " " + us(s.mean))
        }
        let vsBare = stats[0].median / stats[1].median
        let vsNumactl = stats[0].median / stats[2].median
        print("Spawner / posix_spawn: \(ratio(vsBare)) median, \(ratio(stats[0].p99 / stats[1].p99)) p99 (target ≤ 1.2× median): \(vsBare <= 1.2 ? "met" : "NOT met")")
        print("Spawner / numactl:     \(ratio(vsNumactl)) median, \(ratio(stats[0].p99 / stats[2].p99)) p99 (target ≤ 0.6× median): \(vsNumactl <= 0.6 ? "met" : "NOT met")")
        print("Spawner / posix_spawn + setsid: \(ratio(stats[0].median / stats[3].median)) median (like for like: both start a session)")
        print("clone3 sharing / clone: \(ratio(stats[4].median / stats[0].median)) median; clone3 copying / clone: \(ratio(stats[5].median / stats[0].median)) median")
    }

    // MARK: Helpers

    struct Stats {
        var median: Double, p99: Double, mean: Double
        init(_ xs: [Double]) {
            let s = xs.sorted()
            // Nearest-rank percentiles: the smallest sample with at least p of the samples at or below it.
            func rank(_ p: Double) -> Double { s[max(0, min(s.count - 1, Int((p * Double(s.count)).rounded(.up)) - 1))] }
            median = rank(0.5)
            p99 = rank(0.99)
            mean = s.reduce(0, +) / Double(s.count)
        }
    }

    /// Seconds on CLOCK_MONOTONIC.
    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    static func which(_ name: String) -> String? {
        let path = getenv("PATH").map { String(cString: $0) } ?? Spawner.defaultPath
        for dir in path.split(separator: ":") where access("\(dir)/\(name)", X_OK) == 0 {
            return "\(dir)/\(name)"
        }
        return nil
    }

    struct SpawnFailure: Error, CustomStringConvertible {
        var description: String
    }

    /// posix_spawn(3) and waitpid(2), as a caller without numaplaced would do it.
    static func posixSpawn(_ argv: [String], newSession: Bool = false) throws {
        var cArgs = argv.map { strdup($0) }
        cArgs.append(nil)
        defer { for p in cArgs { free(p) } }
        var pid: pid_t = 0
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        // POSIX_SPAWN_SETSID (0x80) is a GNU extension Swift's Glibc module does not carry.
        if newSession { posix_spawnattr_setflags(&attr, 0x80) }
        let rc = posix_spawn(&pid, argv[0], nil, &attr, &cArgs, environ)
        guard rc == 0 else { throw SpawnFailure(description: "posix_spawn \(argv[0]): \(Errno(rc))") }
        var status: Int32 = 0
        do {
            _ = try Syscall.retrying { waitpid(pid, &status, 0) }
        } catch {
            throw SpawnFailure(description: "waitpid: \(error)")
        }
        guard status == 0 else { throw SpawnFailure(description: "\(argv.joined(separator: " ")): wait status \(status)") }
    }
}

private func pad(_ s: String, _ width: Int) -> String { s + String(repeating: " ", count: max(0, width - s.count)) }

private func us(_ seconds: Double) -> String {
    let tenths = Int((seconds * 1e7).rounded()) // tenths of a microsecond
    let s = "\(tenths / 10).\(tenths % 10) µs"
    return String(repeating: " ", count: max(0, 11 - s.count)) + s
}

private func ratio(_ x: Double) -> String {
    let hundredths = Int((x * 100).rounded())
    let frac = hundredths % 100
    return "\(hundredths / 100).\(frac < 10 ? "0" : "")\(frac)×"
}
