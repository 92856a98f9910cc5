import ArgumentParser
import Foundation
import Glibc
import NumaPlaceCore
import NumaPlacePlatform
import NumaPlaceProtocol

/// The daemon a benchmark talks to and what it spawns there.
struct DaemonTarget: ParsableArguments {
    @Option(help: "The daemon's socket.") var socket: String
    @Option(help: "NUMA node (default: the first with CPUs).") var node: Int?
    @Option(help: "The program.") var program: String = "/bin/true"
}

/// The node a benchmark places on: the one asked for, or the daemon's first node with CPUs.
func benchmarkNode(_ client: VarlinkClient, _ asked: Int?) throws -> (id: Int, cpus: String) {
    let topology = try client.call("io.numaplaced.Manager.GetTopology", Empty(), as: Manager.GetTopologyReply.self)
    if let asked {
        guard let n = topology.nodes.first(where: { $0.id == asked }) else { throw ValidationError("no node \(asked)") }
        return (n.id, n.cpus)
    }
    guard let n = topology.nodes.first(where: { !$0.cpus.isEmpty }) else { throw ValidationError("no node with CPUs") }
    return (n.id, n.cpus)
}

/// `numaplace-bench daemon-spawn`: what a client of a running numaplaced waits for, against what it
/// would do without one, interleaved round-robin so that load drift hits all methods alike:
/// 1. `Spawn` of /bin/true on a node: the reply carries the placement read back from /proc; then
///    `Wait` until the daemon has reaped it. Both the reply alone and the whole round trip are kept.
/// 2. posix_spawn of `numactl --cpunodebind=N --membind=N /bin/true`, then waitpid;
/// 3. bare posix_spawn of /bin/true, then waitpid.
/// Like for like is spawn to reaped exit (1's round trip against 2 and 3); the reply alone is shown
/// against them too, as the latency a scheduler sees before it can go on.
struct DaemonSpawnBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "daemon-spawn",
        abstract: "Spawn round trip through numaplaced vs posix_spawn of numactl vs bare posix_spawn."
    )

    @OptionGroup var target: DaemonTarget
    @Option(help: "Samples per method.") var iterations: Int = 1000
    @Option(help: "Unmeasured rounds first.") var warmup: Int = 50

    func run() throws {
        let program = target.program
        let client = try VarlinkClient(path: target.socket)
        let (nodeID, nodeCPUs) = try benchmarkNode(client, target.node)
        guard let numactl = Bench.which("numactl") else { throw ValidationError("numactl is not in PATH") }
        let bare = Bench.CArgv([program])
        let placed = Bench.CArgv([numactl, "--cpunodebind=\(nodeID)", "--membind=\(nodeID)", program])
        let parameters = Manager.SpawnParameters(argv: [program], node: nodeID)

        var replies: [Double] = [], roundTrips: [Double] = [], numa: [Double] = [], plain: [Double] = []
        var verified = 0, policyRead = 0
        func daemonOnce(record: Bool) throws {
            let t0 = Bench.now()
            let w = try client.call("io.numaplaced.Manager.Spawn", parameters, as: Manager.WorkerReply.self).worker
            let t1 = Bench.now()
            _ = try client.call("io.numaplaced.Manager.Wait", Manager.WorkerIDParameters(id: w.id), as: Manager.WorkerReply.self)
            let t2 = Bench.now()
            guard record else { return }
            replies.append(t1 - t0)
            roundTrips.append(t2 - t0)
            // The reply's placement is what the daemon read back from /proc/<pid>; /bin/true may be
            // gone before numa_maps is read, so its memory policy can be "unknown" while the CPUs are known.
            if let a = w.applied, a.cpus == w.requested.cpus { verified += 1 }
            if let a = w.applied, a.memoryPolicy != "unknown" { policyRead += 1 }
        }
        for _ in 0..<warmup {
            try daemonOnce(record: false)
            try Bench.posixSpawnAndWait(placed)
            try Bench.posixSpawnAndWait(bare)
        }
        for _ in 0..<iterations {
            try daemonOnce(record: true)
            var t = Bench.now()
            try Bench.posixSpawnAndWait(placed)
            numa.append(Bench.now() - t)
            t = Bench.now()
            try Bench.posixSpawnAndWait(bare)
            plain.append(Bench.now() - t)
        }
        let b = "Spawn round trip of \(program) on node \(nodeID) (CPUs \(nodeCPUs)), one client, interleaved"
        let bareName = "posix_spawn \(program) + waitpid (bare)"
        let numaName = "posix_spawn numactl --cpunodebind=\(nodeID) --membind=\(nodeID) \(program) + waitpid"
        print(b)
        Bench.emit(b, bareName, seconds: Bench.Summary(plain))
        Bench.emit(b, numaName, seconds: Bench.Summary(numa), anchors: [.init(figure: bareName)])
        Bench.emit(b, "numaplaced Spawn + Wait (to reaped exit)", seconds: Bench.Summary(roundTrips),
                   anchors: [.init(figure: numaName, max: 0.6), .init(figure: bareName, max: 1.2)],
                   note: "like for like: each row ends when \(program) has exited and been reaped")
        Bench.emit(b, "numaplaced Spawn reply (placement read back)", seconds: Bench.Summary(replies),
                   anchors: [.init(figure: numaName, max: 0.6), .init(figure: bareName, max: 1.1)],
                   note: "\(verified)/\(iterations) replies carried read-back CPUs equal to the requested ones; "
                       + "\(policyRead)/\(iterations) also the memory policy (/bin/true often exits before numa_maps is read)")
    }
}

/// The part of a Spawn reply a throughput client needs.
struct SpawnedID: Decodable {
    struct Worker: Decodable { let id: String }
    let worker: Worker
}

/// `numaplace-bench daemon-throughput`: spawns per second from N concurrent clients of the daemon
/// (Spawn + Wait each) against N threads doing posix_spawn + waitpid, in alternating rounds.
struct DaemonThroughputBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "daemon-throughput",
        abstract: "Concurrent spawn throughput through numaplaced vs a bare posix_spawn loop."
    )

    @OptionGroup var target: DaemonTarget
    @Option(help: "Concurrent clients (threads).") var clients: Int = 8
    @Option(help: "Seconds per round.") var seconds: Double = 3
    @Option(help: "Rounds of each method (alternating).") var rounds: Int = 3

    func run() throws {
        let program = target.program
        let probe = try VarlinkClient(path: target.socket)
        let (nodeID, _) = try benchmarkNode(probe, target.node)
        let parameters = Manager.SpawnParameters(argv: [program], node: nodeID)
        let bare = Bench.CArgv([program])
        let socket = target.socket, seconds = self.seconds

        func round(daemon: Bool) -> (rate: Double, errors: Int) {
            let done = Locked(0), errors = Locked(0)
            let start = Bench.now()
            let end = start + seconds
            runThreads(clients) { _ in
                let client = daemon ? try? VarlinkClient(path: socket) : nil
                if daemon && client == nil { errors.withLock { $0 += 1 }; return }
                while Bench.now() < end {
                    do {
                        if let client {
                            // A client decodes what it uses: the id to wait on, then only that the
                            // wait returned (the latency benchmark checks the placement).
                            let w = try client.call("io.numaplaced.Manager.Spawn", parameters, as: SpawnedID.self).worker
                            _ = try client.call("io.numaplaced.Manager.Wait", Manager.WorkerIDParameters(id: w.id),
                                                as: Empty.self)
                        } else {
                            try Bench.posixSpawnAndWait(bare)
                        }
                        done.withLock { $0 += 1 }
                    } catch {
                        errors.withLock { $0 += 1 }
                    }
                }
            }
            return (Double(done.current) / (Bench.now() - start), errors.current)
        }
        _ = round(daemon: true)   // warm-up
        var daemonRates: [Double] = [], bareRates: [Double] = []
        var errors = 0
        for _ in 0..<rounds {
            let d = round(daemon: true)
            daemonRates.append(d.rate)
            errors += d.errors
            let p = round(daemon: false)
            bareRates.append(p.rate)
            errors += p.errors
        }
        let b = "Concurrent spawns of \(program): \(clients) clients, \(rounds) alternating rounds of \(fmt(seconds)) s"
        print(b)
        let bareName = "posix_spawn + waitpid, \(clients) threads"
        Bench.emit(b, bareName, value: Bench.Summary(bareRates).median, unit: "spawns/s", count: rounds,
                   note: "rounds: " + bareRates.map { fmt($0, 0) }.joined(separator: ", "))
        Bench.emit(b, "numaplaced Spawn + Wait, \(clients) clients", value: Bench.Summary(daemonRates).median,
                   unit: "spawns/s", count: rounds, anchors: [.init(figure: bareName, min: 0.8)],
                   note: "rounds: " + daemonRates.map { fmt($0, 0) }.joined(separator: ", ") + "; \(errors) errors")
    }
}
