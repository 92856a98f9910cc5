import ArgumentParser
import Foundation
import Glibc
import NumaPlaceProtocol

/// `numaplace-bench soak`: thousands of spawns and exits through a running daemon from concurrent
/// clients, checking what a long-lived daemon must not do: leak descriptors, memory or zombies, or
/// lose an exit (a Wait that never returns, a workerExited the Monitor never saw, a gap in the
/// event sequence).
///
/// Two phases: a warm-up (caches, the exited-worker history filling to its bound, allocator arenas),
/// then the measured run; the daemon's descriptors and RSS are read at rest after each. Prints one
/// `PASS` or `FAIL` line per check (the reliability suite counts them) and exits 1 on any failure.
struct SoakCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak",
        abstract: "Spawn and reap thousands of workers through a daemon; check for fd, memory, zombie and event leaks."
    )

    @Option(help: "The daemon's socket.")
    var socket: String

    @Option(help: "The daemon's pid (its /proc entries are read).")
    var daemonPid: Int32

    @Option(help: "Spawns in the measured phase.")
    var spawns: Int = 10_000

    @Option(help: "Spawns in the warm-up phase (at least the daemon's exited-worker history, 1024).")
    var warmup: Int = 1_500

    @Option(help: "Concurrent clients.")
    var clients: Int = 8

    @Option(help: "Spawn on this NUMA node (omit for the whole allowed set).")
    var node: Int?

    @Option(help: "The worker program.")
    var program: String = "/bin/true"

    @Option(help: "RSS growth allowed over the measured phase, in kB.")
    var maxRssGrowthKB: Int = 1024

    func validate() throws {
        guard spawns > 0, warmup >= 0, (1...256).contains(clients) else {
            throw ValidationError("--spawns must be positive, --warmup not negative, --clients 1...256")
        }
    }

    struct Tally {
        var started = 0
        var spawned: [String] = []
        var waited: Set<String> = []
        var errors: [String] = []
    }

    final class MonitorLog: @unchecked Sendable {
        let lock = NSLock()
        var exited: Set<String> = []
        var started: Set<String> = []
        var lastSequence = -1
        var gaps: [String] = []
        var failure: String?
    }

    func run() throws {
        let pid = pid_t(daemonPid)
        var failed = 0
        func check(_ ok: Bool, _ text: String) {
            print((ok ? "PASS " : "FAIL ") + "soak: " + text)
            fflush(stdout)
            if !ok { failed += 1 }
        }

        // The Monitor client: every event, in order, with no gap in the sequence.
        let log = MonitorLog()
        let monitor = try VarlinkClient(path: socket)
        let monitorThread = Thread {
            do {
                try monitor.stream("io.numaplaced.Manager.Monitor", Empty(), as: Manager.MonitorReply.self) { reply in
                    let e = reply.event
                    log.lock.withLock {
                        if e.kind == .ready {
                            log.lastSequence = e.sequence
                        } else {
                            if log.lastSequence >= 0, e.sequence != log.lastSequence + 1, log.gaps.count < 5 {
                                log.gaps.append("\(log.lastSequence) → \(e.sequence)")
                            }
                            log.lastSequence = e.sequence
                        }
                        if let id = e.worker?.id {
                            if e.kind == .workerExited { log.exited.insert(id) }
                            if e.kind == .workerStarted { log.started.insert(id) }
                        }
                    }
                    return true
                }
            } catch {
                log.lock.withLock { log.failure = "\(error)" }
            }
        }
        monitorThread.start()
        // The ready event comes first; spawns before it would not be seen.
        let readyDeadline = Bench.now() + 10
        while log.lock.withLock({ log.lastSequence < 0 && log.failure == nil }), Bench.now() < readyDeadline { usleep(1000) }

        let tally = Locked(Tally())
        let parameters = Manager.SpawnParameters(argv: [program], node: node)
        func phase(_ total: Int) -> Double {
            let start = Bench.now()
            let counter = Locked(0)
            runThreads(clients) { _ in
                guard let client = try? VarlinkClient(path: socket) else {
                    tally.withLock { $0.errors.append("cannot connect") }
                    return
                }
                while counter.withLock({ (n: inout Int) -> Bool in
                    guard n < total else { return false }
                    n += 1
                    return true
                }) {
                    do {
                        let w = try client.call("io.numaplaced.Manager.Spawn", parameters, as: Manager.WorkerReply.self).worker
                        tally.withLock { $0.spawned.append(w.id) }
                        let done = try client.call("io.numaplaced.Manager.Wait", Manager.WorkerIDParameters(id: w.id),
                                                   as: Manager.WorkerReply.self).worker
                        if done.state == .exited, done.exit?.how == .exited, done.exit?.code == 0 {
                            tally.withLock { _ = $0.waited.insert(w.id) }
                        } else {
                            tally.withLock { $0.errors.append("\(w.id): Wait returned state \(done.state), exit \(String(describing: done.exit))") }
                        }
                    } catch {
                        tally.withLock { if $0.errors.count < 20 { $0.errors.append("\(error)") } }
                    }
                }
            }
            return Bench.now() - start
        }

        /// Descriptors and RSS at rest: let in-flight exits settle first.
        func atRest() -> (fds: Int, rssKB: Int) {
            usleep(300_000)
            return (Bench.fdCount(pid) ?? -1, Bench.rssKB(pid) ?? -1)
        }

        let before = atRest()
        let warmupSeconds = phase(warmup)
        let baseline = atRest()
        let seconds = phase(spawns)
        // Every exit must reach the Monitor; give the stream a moment to drain.
        let all = tally.current
        let deadline = Bench.now() + 15
        while Bench.now() < deadline {
            let seen = log.lock.withLock { log.exited.isSuperset(of: all.spawned) }
            if seen { break }
            usleep(10_000)
        }
        let after = atRest()
        let kids = Bench.children(of: pid)
        let monitorState = log.lock.withLock { (log.exited, log.started, log.gaps, log.failure) }

        let total = warmup + spawns
        print("soak: \(total) spawns (\(warmup) warm-up + \(spawns) measured) from \(clients) clients of \(program): "
              + "\(String(format: "%.1f", Double(spawns) / seconds)) spawns/s measured, warm-up took \(String(format: "%.1f", warmupSeconds)) s")
        print("soak: daemon fds \(before.fds) at start, \(baseline.fds) after warm-up, \(after.fds) at end; "
              + "RSS \(before.rssKB) kB at start, \(baseline.rssKB) kB after warm-up, \(after.rssKB) kB at end")
        check(all.errors.isEmpty && all.spawned.count == total,
              "\(all.spawned.count)/\(total) spawns answered" + (all.errors.isEmpty ? "" : "; errors: \(all.errors.prefix(3))"))
        check(all.waited.count == all.spawned.count, "\(all.waited.count)/\(all.spawned.count) Waits returned an exit with code 0")
        let missingExits = Set(all.spawned).subtracting(monitorState.0)
        check(missingExits.isEmpty && monitorState.3 == nil,
              "Monitor saw workerExited for \(all.spawned.count - missingExits.count)/\(all.spawned.count) workers"
              + (monitorState.3.map { "; stream ended: \($0)" } ?? ""))
        let missingStarts = Set(all.spawned).subtracting(monitorState.1)
        check(missingStarts.isEmpty, "Monitor saw workerStarted for \(all.spawned.count - missingStarts.count)/\(all.spawned.count) workers")
        check(monitorState.2.isEmpty, "event sequence without gaps" + (monitorState.2.isEmpty ? "" : ": \(monitorState.2)"))
        check(after.fds >= 0 && after.fds <= baseline.fds, "no descriptor growth (\(baseline.fds) → \(after.fds))")
        let growth = after.rssKB - baseline.rssKB
        check(after.rssKB > 0 && growth <= maxRssGrowthKB,
              "RSS growth \(growth) kB over \(spawns) spawns after warm-up (limit \(maxRssGrowthKB) kB)")
        check(kids.zombies.isEmpty && kids.all.isEmpty,
              "no zombie or leftover children (\(kids.zombies.count) zombies, \(kids.all.count) children)")
        if failed > 0 { throw ExitCode(1) }
    }
}
