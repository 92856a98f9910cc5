import Dispatch
#if canImport(Glibc)
import Glibc
#endif
import Logging
import NumaPlaceCore
import NumaPlacePlatform
import NumaPlaceProtocol
import NumaPlaceSyscall

/// Starts, tracks and reaps workers; the one owner of the worker table.
///
/// The supervisor orders the steps and owns the state; the decisions live elsewhere: what a call
/// asks for in `SpawnRequestBuilder`, the counts and history in `WorkerTable`, the process work in
/// Platform (`Spawner`, `ExitWatch`, `PeerProcess`). Each worker is watched through its pidfd; its
/// exit status is collected with waitid(P_PIDFD), so no zombie is left behind. The table is persisted
/// in `WorkerStateLog`; at start the supervisor re-adopts the workers a previous instance left
/// running (`WorkerSupervisor+Adoption.swift`). Workers are never killed because the daemon stops.
public actor WorkerSupervisor {
    var table: WorkerTable
    private var nextID = 1
    private var nextWaiter = 0
    /// Running tied workers by the connection that spawned them, so that a closing connection (every
    /// one, most with nothing tied) looks up its own workers instead of scanning all running ones.
    var tiedByConnection: [UInt64: [String]] = [:]
    let store: TopologyStore
    let hub: EventHub
    let log: WorkerStateLog
    private let spawner: Spawner
    private let spawnThread = SpawnThread()
    let logger: Logger
    public private(set) var limits: Configuration.Limits
    public private(set) var defaults: SpawnDefaults
    /// Opens a journal stream for a worker's stdout/stderr (nil when journald is absent).
    private let journalStream: @Sendable (_ identifier: String, _ priority: Int32) -> Int32?
    let procRoot: SysfsRoot
    /// False when the model is a captured machine (`--sysfs-root`): its CPUs are not this host's.
    private let spawnEnabled: Bool
    /// Whether each worker gets a cgroup of its own, and why not (`WorkerSupervisor+Cgroups.swift`).
    public let cgroups: WorkerCgroups

    public init(store: TopologyStore, hub: EventHub, stateLog: WorkerStateLog, spawner: Spawner, logger: Logger,
                limits: Configuration.Limits = Configuration.Limits(), defaults: SpawnDefaults = SpawnDefaults(),
                procRoot: SysfsRoot = SysfsRoot("/"), spawnEnabled: Bool = true, cgroups: WorkerCgroups = .off,
                journalStream: @escaping @Sendable (String, Int32) -> Int32? = { _, _ in nil }) {
        self.store = store
        self.hub = hub
        self.log = stateLog
        self.spawner = spawner
        self.logger = logger
        self.limits = limits
        self.defaults = defaults
        self.procRoot = procRoot
        self.spawnEnabled = spawnEnabled
        self.cgroups = cgroups
        self.journalStream = journalStream
        table = WorkerTable(limits: limits)
    }

    public func configure(limits: Configuration.Limits, defaults: SpawnDefaults) {
        self.limits = limits
        self.defaults = defaults
        table.limits = limits
    }

    /// Takes worker ids after those a previous instance used.
    func reserveIDs(after maxID: Int) { nextID = max(nextID, maxID + 1) }

    // MARK: Spawn

    /// Starts a worker. `descriptors` are the call's passed ones, which Spawn's `…Descriptor`
    /// parameters name; the caller closes them once this returns (the worker has its own copies).
    public func spawn(_ p: Manager.SpawnParameters, peer: PeerCredentials,
                      descriptors: PassedDescriptors = .none) async throws(VarlinkError) -> Manager.Worker {
        guard spawnEnabled else {
            throw Manager.placementImpossible("spawning is off: the model is a captured machine (--sysfs-root), not this host")
        }
        try SpawnRequestBuilder.validate(p, limits: limits)
        let groupLimits = try WorkerCgroups.limits(p, available: cgroups.subtree != nil, unavailable: cgroups.unavailable)
        let passed = try SpawnRequestBuilder.passedDescriptors(p, in: descriptors)
        if table.workers(of: peer.uid) >= limits.maxWorkersPerUser {
            throw Manager.limitExceeded("MaxWorkersPerUser", maximum: limits.maxWorkersPerUser)
        }
        // Counted from here until the worker is tracked (or the spawn fails): the awaits below let
        // other requests in, and without this every one of them passed the check above.
        table.beginAdmitting(peer.uid)
        defer { table.endAdmitting(peer.uid) }
        // The connecting process: SO_PEERPIDFD's, or (before Linux 6.5) a pidfd opened now and checked
        // by its ids in PeerProcess.read.
        let callerProcess = peer.process ?? (try? PidFD.open(pid: peer.pid))
        let caller = callerProcess.flatMap { PeerProcess.read(pidfd: $0, uid: peer.uid, gid: peer.gid, procRoot: procRoot) }
        let credentials = try SpawnRequestBuilder.credentials(user: p.user, peer: peer, callerGroups: caller?.groups,
                                                              daemonUID: geteuid())
        let inventory = await store.inventory
        let request = try SpawnRequestBuilder.placementRequest(p, inventory: inventory, defaults: defaults)
        let allowed = await store.allowed
        if request.exclusiveCores > 0, !peer.isRoot {
            let share = SpawnRequestBuilder.exclusiveShare(limits: limits, inventory: inventory, allowed: allowed)
            if table.coresHeld(by: peer.uid) + request.exclusiveCores > share {
                throw Manager.limitExceeded("MaxExclusiveCoresPerUser", maximum: share)
            }
        }
        let decision: PlacementDecision
        do {
            decision = try PlacementPolicy.decide(request, inventory: inventory, allowed: allowed, reserved: table.reserved)
        } catch {
            throw Manager.error(for: error)
        }

        let id = "w\(nextID)"
        nextID += 1
        table.promise(decision.exclusiveCores, to: id, uid: peer.uid)
        defer { table.withdrawPromise(id) }
        let identifier = SpawnRequestBuilder.identifier(p)
        var opened: [Int32] = []
        defer { for fd in opened { close(fd) } }
        func stdio(_ choice: String?, name: String, input: Bool, priority: Int32) throws(VarlinkError) -> StdioChoice {
            if let fd = passed.stdio[["stdin", "stdout", "stderr"].firstIndex(of: name) ?? 0] { return .fd(fd) }
            switch try SpawnRequestBuilder.stdio(choice, name: name, input: input, priority: priority,
                                                 callerUID: peer.uid, daemonUID: geteuid()) {
            case .null: return .null
            case .inherit: return .inherit
            case .file(let path): return .file(path)
            case .journal(let priority):
                guard let fd = journalStream(identifier, priority) else {
                    throw Manager.invalidParameter(name, "journald is not available")
                }
                opened.append(fd)
                return .fd(fd)
            }
        }
        if caller == nil, !peer.isRoot, peer.uid != geteuid() {
            // Fail closed: without the caller's own limits the worker would get the daemon's wider ones.
            throw Manager.permissionDenied("cannot read the calling process's groups and limits (it has exited, or runs with other ids than when it connected): keep the client that connected running until the reply")
        }
        var spawnRequest = SpawnRequest(
            argv: p.argv, inheritEnvironment: false, environment: SpawnRequestBuilder.environment(p.environment),
            workingDirectory: p.workingDirectory ?? "/",
            stdin: try stdio(p.stdin, name: "stdin", input: true, priority: 6),
            stdout: try stdio(p.stdout, name: "stdout", input: false, priority: 6),
            stderr: try stdio(p.stderr, name: "stderr", input: false, priority: 3),
            credentials: credentials, placement: decision, admission: request.admission,
            parentDeathSignal: p.parentDeathSignal.map(Int32.init))
        if p.runtimeEnvironment == true {
            for (key, value) in SpawnRequestBuilder.runtimeVariables(decision.devices, inventory: inventory)
            where spawnRequest.environment[key] == nil {
                spawnRequest.environment[key] = value
            }
        }
        // The caller's resource limits, never the daemon's wider ones (LimitNOFILE=, LimitMEMLOCK=).
        spawnRequest.resourceLimits = caller?.limits ?? []
        let (group, groupNotes) = try makeGroup(id: id, argv0: p.argv[0], decision: decision, limits: groupLimits,
                                                admission: request.admission)
        let groupFD = try group.map { g throws(VarlinkError) in try openGroup(g) }
        defer { if let groupFD { close(groupFD) } }
        spawnRequest.cgroupDirectory = groupFD
        spawnRequest.extraDescriptors = passed.extra

        let process: SpawnedProcess
        do {
            let spawner = self.spawner
            let request = spawnRequest
            process = try await spawnThread.run { () throws(SpawnError) in try spawner.spawn(request) }
        } catch {
            logger.warning("spawn failed: \(error)", metadata: [
                LogMetadataKey.messageID: "\(MessageID.spawnFailed)", LogMetadataKey.device: "\(decision.device?.description ?? "")",
            ])
            try? group?.remove()
            throw Manager.spawnFailed(step: error.step.rawValue, errno: error.errno.rawValue, message: error.description)
        }
        let worker = Manager.Worker(
            id: id, pid: Int(process.pid), uid: Int(credentials?.uid ?? peer.uid),
            gid: Int(credentials?.gid ?? peer.gid), argv: p.argv, device: decision.device?.description,
            node: decision.node?.rawValue, state: .running, startedAt: EventHub.realtimeMicroseconds(),
            requested: Manager.Placement(decision), applied: appliedPlacement(pid: process.pid),
            degraded: decision.degraded + process.degradationNotes
                + (caller == nil ? ["the calling process could not be read: the worker has the daemon's resource limits"] : [])
                + groupNotes,
            exclusiveCores: decision.exclusiveCores.map(\.cpulist), adopted: false, exit: nil, cgroup: group?.hierarchyPath,
            tied: p.tied == true)
        let ticks = ProcessFacts.startTicks(pid: process.pid, root: procRoot)
        track(WorkerTable.Entry(worker: worker, pidfd: process.pidfd, startTicks: ticks, cores: decision.exclusiveCores,
                                cgroup: group, tiedTo: p.tied == true ? peer.connection : nil))
        if p.tied == true { tiedByConnection[peer.connection, default: []].append(id) }
        if !decision.exclusiveCores.isEmpty { rebalanceCPUs() }
        log.append(WorkerStateLog.Record(op: "start", id: id, startTicks: ticks, worker: worker))
        logger.info("worker \(id) started: pid \(process.pid) on CPUs \(worker.applied?.cpus ?? decision.cpus.cpulist)",
                    metadata: [LogMetadataKey.messageID: "\(MessageID.workerSpawned)", LogMetadataKey.workerID: "\(id)",
                               LogMetadataKey.workerPID: "\(process.pid)", LogMetadataKey.device: "\(worker.device ?? "")",
                               LogMetadataKey.numaNode: "\(worker.node.map(String.init) ?? "")", LogMetadataKey.cpus: "\(decision.cpus.cpulist)"])
        if !worker.degraded.isEmpty {
            logger.notice("worker \(id) placement degraded: \(worker.degraded.joined(separator: "; "))",
                          metadata: [LogMetadataKey.messageID: "\(MessageID.placementDegraded)", LogMetadataKey.workerID: "\(id)"])
        }
        hub.publish(kind: .workerStarted, address: worker.device, worker: worker)
        return table[id]?.worker ?? worker
    }

    /// The placement actually applied, read back from the worker; a worker that exited already has no
    /// memory map left, so its policy reads as unknown rather than failing the spawn.
    private func appliedPlacement(pid: pid_t) -> Manager.Placement? {
        if let applied = try? PlacementReader(root: procRoot).read(pid: pid) {
            return Manager.Placement(cpus: applied.cpus.cpulist, memoryPolicy: applied.memoryPolicy,
                                     memoryNodes: applied.memoryNodes.elements)
        }
        return (try? SysfsParsers.statusField("Cpus_allowed_list", in: procRoot.read("proc/\(pid)/status")))
            .flatMap { try? CPUSet(cpulist: $0) }
            .map { Manager.Placement(cpus: $0.cpulist, memoryPolicy: "unknown", memoryNodes: []) }
    }

    // MARK: Tracking

    /// Adds a worker to the table and, while it runs, watches for its exit.
    func track(_ entry: WorkerTable.Entry) {
        var entry = entry
        let id = entry.worker.id
        if let pidfd = entry.pidfd, entry.worker.state == .running {
            entry.watch = ExitWatch(pidfd) { [weak self] in
                guard let self else { return }
                Task { await self.reap(id) }
            }
        }
        table.insert(entry)
    }

    /// Collects the exit of a worker whose pidfd became readable.
    private func reap(_ id: String) {
        guard let entry = table[id], entry.worker.state == .running else { return }
        var exit = Manager.ExitStatus(how: .unknown)
        if let pidfd = entry.pidfd {
            switch Result(catching: { () throws(Errno) in try pidfd.tryReap() }) {
            case .success(.exited(let code)?): exit = Manager.ExitStatus(how: .exited, code: Int(code))
            case .success(.killed(let sig, _)?): exit = Manager.ExitStatus(how: .killed, signal: Int(sig))
            case .success(nil):
                // Readable but not reapable yet would be a kernel oddity; look again shortly.
                entry.watch?.rearm()
                return
            case .failure:
                // ECHILD: an adopted worker is not our child; its status went to its new parent.
                exit = Manager.ExitStatus(how: .unknown)
            }
        }
        entry.watch?.cancelAfterExit()
        if let group = entry.cgroup { exit = recordFinalUsage(id, group: group, exit: exit) }
        guard let ended = table.markExited(id, exit: exit) else { return }
        if let connection = entry.tiedTo {
            // A long-lived client's exited workers do not pile up until it disconnects.
            tiedByConnection[connection]?.removeAll { $0 == id }
            if tiedByConnection[connection]?.isEmpty == true { tiedByConnection.removeValue(forKey: connection) }
        }
        if let group = entry.cgroup { removeGroup(group, of: id, releasedCores: !entry.cores.isEmpty) }
        for w in ended.waiters.values { w.resume(returning: ended.worker) }
        log.append(WorkerStateLog.Record(op: "exit", id: id, startTicks: nil, worker: nil))
        log.compactIfNeeded(liveCount: table.running.count, live: table.liveRecords)
        logger.info("worker \(id) (pid \(ended.worker.pid)) \(exit.how)\(exit.code.map { " with code \($0)" } ?? "")\(exit.signal.map { " by signal \($0)" } ?? "")",
                    metadata: [LogMetadataKey.messageID: "\(MessageID.workerExited)", LogMetadataKey.workerID: "\(id)",
                               LogMetadataKey.workerPID: "\(ended.worker.pid)"])
        hub.publish(kind: .workerExited, address: ended.worker.device, worker: ended.worker)
    }

    // MARK: Queries

    public func list(for peer: PeerCredentials) -> [Manager.Worker] { table.list(for: peer).map(withUsage) }

    public func counts(for peer: PeerCredentials) -> (total: Int, running: Int) { table.counts(for: peer) }

    public var runningCount: Int { table.running.count }

    /// Why the worker table could not be persisted, if it could not (a full or read-only state directory).
    public var stateLogError: String? { log.lastError }

    private func entry(_ id: String, for peer: PeerCredentials) throws(VarlinkError) -> WorkerTable.Entry {
        // A worker someone else owns is reported as absent, not as forbidden: ids are not secrets
        // worth confirming to other users.
        guard let e = table[id], peer.owns(e.worker) else { throw Manager.noSuchWorker(id) }
        return e
    }

    public func get(_ id: String, for peer: PeerCredentials) throws(VarlinkError) -> Manager.Worker {
        withUsage(try entry(id, for: peer).worker)
    }

    public func signal(_ id: String, signal: Int, for peer: PeerCredentials) throws(VarlinkError) {
        guard (1...64).contains(signal) else { throw Manager.invalidParameter("signal", "must be from 1 to 64") }
        let e = try entry(id, for: peer)
        guard e.worker.state == .running, let pidfd = e.pidfd else {
            throw Manager.invalidParameter("id", "worker \(id) has exited")
        }
        do { try pidfd.send(signal: Int32(signal)) } catch {
            throw Manager.invalidParameter("id", "cannot signal worker \(id): \(error)")
        }
    }

    public func wait(_ id: String, for peer: PeerCredentials) async throws(VarlinkError) -> Manager.Worker {
        let e = try entry(id, for: peer)
        if e.worker.state == .exited { return e.worker }
        // The server cancels a connection's task when the peer hangs up; a Wait that kept waiting
        // would pile up (one per connect, Wait, hang-up) until the worker exits. Cancelled, it
        // returns the worker as it is now, to a peer that is gone.
        nextWaiter += 1
        let token = nextWaiter
        return await withTaskCancellationHandler {
            await withCheckedContinuation { c in
                table.update(id) { $0.waiters[token] = c }
            }
        } onCancel: {
            Task { await self.cancelWait(id, token: token) }
        }
    }

    /// Ends one pending Wait (its caller was cancelled). Runs after the waiter was registered:
    /// the actor is not free until `wait` has suspended.
    private func cancelWait(_ id: String, token: Int) {
        guard let c = table.removeWaiter(id, token: token), let worker = table[id]?.worker else { return }
        c.resume(returning: worker)
    }
}
