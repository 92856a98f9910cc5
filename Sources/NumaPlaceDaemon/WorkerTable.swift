import NumaPlaceCore
import NumaPlacePlatform
import NumaPlaceProtocol

/// The workers the daemon knows, running and exited, with the counts every spawn checks.
///
/// A value with no processes in it: the supervisor owns one and does the I/O around it, and tests
/// drive it with made-up workers. Invariants (checked by `WorkerTableTests`): `running` and the
/// per-uid counts always agree with the entries; an exited entry is counted once in its uid's
/// history; cores promised to a spawn in flight or held by a running exclusive worker are never
/// promised again; history is forgotten oldest first, per uid and in all.
struct WorkerTable {
    struct Entry {
        var worker: Manager.Worker
        var pidfd: PidFD?
        var startTicks: UInt64?
        var cores: [CPUSet]
        var watch: ExitWatch?
        /// Pending Wait calls, by a token so that a cancelled one can be taken out.
        var waiters: [Int: CheckedContinuation<Manager.Worker, Never>] = [:]
        /// The worker's own cgroup v2 group, where it has one.
        var cgroup: WorkerCgroup? = nil
        /// The connection whose closing stops this worker (Spawn's `tied`); nil once stopped.
        var tiedTo: UInt64? = nil
    }

    private(set) var entries: [String: Entry] = [:]
    private(set) var order: [String] = []
    /// The running workers' ids and the number of exited entries kept. Spawns, exits and status
    /// lines read these instead of scanning the table, which also holds up to `exitedHistory` exited
    /// workers: a scan per spawn would make the cost of a spawn grow with the history.
    private(set) var running: Set<String> = []
    private(set) var exitedCount = 0
    /// Exited entries kept per uid, and the bytes of their argvs (`exitedHistoryPerUser`).
    private var exitedPerUID: [UInt32: (count: Int, bytes: Int)] = [:]
    /// Running workers per uid, and the running ones holding exclusive cores: with thousands of
    /// workers running, counting them per spawn made each spawn quadratic.
    private var runningPerUID: [UInt32: Int] = [:]
    private var holdingCores: Set<String> = []
    /// Spawns admitted but not yet tracked, per caller uid (for MaxWorkersPerUser).
    private var admitting: [UInt32: Int] = [:]
    /// Exclusive cores promised to spawns in flight: the supervisor is re-entered while a clone is
    /// awaited, and two concurrent requests must not be given the same cores.
    private var inFlight: [String: (uid: UInt32, cores: [CPUSet])] = [:]
    private var inFlightByUID: [UInt32: Int] = [:]
    var limits: Configuration.Limits

    init(limits: Configuration.Limits) { self.limits = limits }

    private static func uid(_ w: Manager.Worker) -> UInt32 { UInt32(truncatingIfNeeded: w.uid) }
    static func argvBytes(_ worker: Manager.Worker) -> Int { worker.argv.reduce(0) { $0 + $1.utf8.count + 1 } }

    // MARK: Admission

    /// Running workers of `uid` plus its spawns being admitted.
    func workers(of uid: UInt32) -> Int { runningPerUID[uid, default: 0] + admitting[uid, default: 0] }

    mutating func beginAdmitting(_ uid: UInt32) { admitting[uid, default: 0] += 1 }

    mutating func endAdmitting(_ uid: UInt32) {
        admitting[uid, default: 1] -= 1
        if admitting[uid] == 0 { admitting.removeValue(forKey: uid) }
    }

    /// Whole cores held exclusively by `uid`'s running workers and its spawns in flight.
    func coresHeld(by uid: UInt32) -> Int {
        holdingCores.compactMap { entries[$0] }.filter { Self.uid($0.worker) == uid }
            .reduce(0) { $0 + $1.cores.count } + (inFlightByUID[uid] ?? 0)
    }

    /// CPUs held by running exclusive workers and promised to spawns in flight.
    var reserved: CPUSet {
        (holdingCores.compactMap { entries[$0]?.cores }.flatMap { $0 } + inFlight.values.flatMap(\.cores))
            .reduce(CPUSet()) { $0.union($1) }
    }

    mutating func promise(_ cores: [CPUSet], to id: String, uid: UInt32) {
        inFlight[id] = (uid, cores)
        inFlightByUID[uid, default: 0] += cores.count
    }

    mutating func withdrawPromise(_ id: String) {
        guard let (uid, cores) = inFlight.removeValue(forKey: id) else { return }
        inFlightByUID[uid, default: 0] -= cores.count
        if inFlightByUID[uid] == 0 { inFlightByUID.removeValue(forKey: uid) }
    }

    // MARK: Entries

    subscript(id: String) -> Entry? { entries[id] }

    var isEmpty: Bool { entries.isEmpty }
    var count: Int { entries.count }

    mutating func insert(_ entry: Entry) {
        let id = entry.worker.id
        precondition(entries[id] == nil, "worker \(id) tracked twice")
        entries[id] = entry
        order.append(id)
        let uid = Self.uid(entry.worker)
        if entry.worker.state == .running {
            running.insert(id)
            runningPerUID[uid, default: 0] += 1
            if !entry.cores.isEmpty { holdingCores.insert(id) }
        } else {
            countExited(entry.worker)
        }
    }

    /// Changes what the table keeps for a worker without changing its state (watch, waiters).
    mutating func update(_ id: String, _ change: (inout Entry) -> Void) {
        guard var e = entries[id] else { return }
        let state = e.worker.state
        change(&e)
        precondition(e.worker.state == state, "update cannot change a worker's state; use markExited")
        entries[id] = e
    }

    /// Records the exit of a running worker; returns its entry as it was (with its waiters) so the
    /// caller can answer them, or nil when it is not running.
    mutating func markExited(_ id: String, exit: Manager.ExitStatus) -> Entry? {
        guard var entry = entries[id], entry.worker.state == .running else { return nil }
        let before = entry
        entry.watch = nil
        entry.pidfd = nil
        entry.waiters = [:]
        entry.worker.state = .exited
        entry.worker.exit = exit
        entries[id] = entry
        running.remove(id)
        holdingCores.remove(id)
        let uid = Self.uid(entry.worker)
        runningPerUID[uid, default: 1] -= 1
        if runningPerUID[uid] == 0 { runningPerUID.removeValue(forKey: uid) }
        countExited(entry.worker)
        trimHistory(of: uid)
        trimHistory()
        var result = before
        result.worker = entry.worker
        return result
    }

    private mutating func countExited(_ worker: Manager.Worker) {
        exitedCount += 1
        let uid = Self.uid(worker)
        exitedPerUID[uid, default: (0, 0)].count += 1
        exitedPerUID[uid, default: (0, 0)].bytes += Self.argvBytes(worker)
    }

    /// Takes out one pending Wait.
    mutating func removeWaiter(_ id: String, token: Int) -> CheckedContinuation<Manager.Worker, Never>? {
        entries[id]?.waiters.removeValue(forKey: token)
    }

    // MARK: History

    /// Forgets `uid`'s oldest exited workers once it keeps more than its share, down to 7/8 of it.
    private mutating func trimHistory(of uid: UInt32) {
        let maxCount = limits.exitedHistoryPerUser, maxBytes = limits.exitedHistoryBytesPerUser
        guard let kept = exitedPerUID[uid], kept.count > maxCount || kept.bytes > maxBytes else { return }
        var count = kept.count, bytes = kept.bytes
        var drop = Set<String>()
        for id in order where count > maxCount - maxCount / 8 || bytes > maxBytes - maxBytes / 8 {
            guard !running.contains(id), let e = entries[id], Self.uid(e.worker) == uid else { continue }
            drop.insert(id)
            count -= 1
            bytes -= Self.argvBytes(e.worker)
        }
        forget(drop)
    }

    /// The oldest are forgotten an eighth of the history at a time, so that the walk over `order`
    /// is paid once per many exits rather than on every one.
    private mutating func trimHistory() {
        guard exitedCount > limits.exitedHistory else { return }
        var excess = exitedCount - (limits.exitedHistory - limits.exitedHistory / 8)
        var drop = Set<String>()
        for id in order where excess > 0 && !running.contains(id) {
            drop.insert(id)
            excess -= 1
        }
        forget(drop)
    }

    private mutating func forget(_ drop: Set<String>) {
        guard !drop.isEmpty else { return }
        for id in drop {
            guard let e = entries.removeValue(forKey: id) else { continue }
            let uid = Self.uid(e.worker)
            exitedPerUID[uid, default: (1, 0)].count -= 1
            exitedPerUID[uid, default: (0, 0)].bytes -= Self.argvBytes(e.worker)
            if exitedPerUID[uid]?.count ?? 0 <= 0 { exitedPerUID.removeValue(forKey: uid) }
        }
        order.removeAll { drop.contains($0) }
        exitedCount -= drop.count
    }

    // MARK: Views

    /// Exited entries `uid` keeps, and the bytes of their argvs.
    func history(of uid: UInt32) -> (count: Int, bytes: Int) { exitedPerUID[uid] ?? (0, 0) }

    /// The running workers, oldest first, as the state log records them.
    var liveRecords: [WorkerStateLog.Record] {
        order.filter { running.contains($0) }.compactMap { entries[$0] }.map {
            WorkerStateLog.Record(op: "start", id: $0.worker.id, startTicks: $0.startTicks, worker: $0.worker)
        }
    }

    func list(for peer: PeerCredentials) -> [Manager.Worker] {
        order.compactMap { entries[$0] }.filter { peer.owns($0.worker) }.map(\.worker)
    }

    func counts(for peer: PeerCredentials) -> (total: Int, running: Int) {
        if peer.isRoot { return (entries.count, running.count) }
        let mine = entries.values.filter { peer.owns($0.worker) }
        return (mine.count, mine.filter { $0.worker.state == .running }.count)
    }
}
