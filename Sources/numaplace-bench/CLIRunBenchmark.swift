import ArgumentParser
import NumaPlaceProtocol

/// `numaplace-bench cli-run`: whole processes, as an operator types them, interleaved round-robin so that
/// load drift hits all three alike: `numaplacectl run --node N -- /bin/true` (the CLI's start-up, its
/// Spawn with the passed descriptors, the Wait, its exit) against `numactl --cpunodebind=N --membind=N
/// /bin/true` and a bare posix_spawn of /bin/true. Each sample ends when the process has been reaped.
struct CLIRunBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cli-run",
        abstract: "numaplacectl run as a whole process vs numactl vs bare posix_spawn."
    )

    @OptionGroup var target: DaemonTarget
    @Option(help: "The numaplacectl binary.") var ctl: String
    @Option(help: "Samples per method.") var iterations: Int = 300
    @Option(help: "Unmeasured rounds first.") var warmup: Int = 20

    func run() throws {
        let program = target.program
        let client = try VarlinkClient(path: target.socket)
        let (nodeID, _) = try benchmarkNode(client, target.node)
        guard let numactl = Bench.which("numactl") else { throw ValidationError("numactl is not in PATH") }
        let bare = Bench.CArgv([program])
        let placed = Bench.CArgv([numactl, "--cpunodebind=\(nodeID)", "--membind=\(nodeID)", program])
        let viaDaemon = Bench.CArgv([ctl, "--socket", target.socket, "run", "--node", "\(nodeID)", "--", program])
        var samples: [[Double]] = [[], [], []]
        for round in 0..<(warmup + iterations) {
            for (i, argv) in [bare, placed, viaDaemon].enumerated() {
                let t = Bench.now()
                try Bench.posixSpawnAndWait(argv)
                if round >= warmup { samples[i].append(Bench.now() - t) }
            }
        }
        let b = "Whole process: numaplacectl run vs numactl, node \(nodeID), interleaved"
        let bareName = "posix_spawn \(program) + waitpid (bare)"
        let numaName = "numactl --cpunodebind=\(nodeID) --membind=\(nodeID) \(program)"
        print(b)
        Bench.emit(b, bareName, seconds: Bench.Summary(samples[0]), unit: "ms")
        Bench.emit(b, numaName, seconds: Bench.Summary(samples[1]), unit: "ms", anchors: [.init(figure: bareName)])
        Bench.emit(b, "numaplacectl run --node \(nodeID) -- \(program)", seconds: Bench.Summary(samples[2]), unit: "ms",
                   anchors: [.init(figure: numaName, max: 1.5), .init(figure: bareName)],
                   note: "the CLI's start-up, a Spawn with its stdio passed, Wait, and its exit")
    }
}
