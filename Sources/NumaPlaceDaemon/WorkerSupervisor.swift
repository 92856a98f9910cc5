import Dispatch
import Dispatch
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import Logging
import NumaPlaceCore
import NumaPlacePlatform
import NumaPlaceProtocol
import NumaPlaceSyscall

/// Limits on what one client can ask of the supervisor.
public struct WorkerLimits: Sendable {
    public var maxArgvBytes = 256 * 1024
    public var maxArguments = 4096
    public var maxEnvironmentBytes = 256 * 1024
    public var maxEnvironmentEntries = 4096
    public var maxWorkersPerUser = 1024
    /// Exited workers kept for GetWorker and Wait; past it, the oldest eighth is forgotten.
    public var exitedHistory = 1024
    /// Exited workers one uid keeps, by count and by the bytes of their argv: one user's quick spawns
    /// (or huge argvs) forget that user's oldest exits, never another user's.
    public var exitedHistoryPerUser = 256
    public var exitedHistoryBytesPerUser = 8 << 20
    /// Whole cores one uid other than root may hold exclusively; 0: half of the allowed set's whole
    /// cores (at least one). `MaxExclusiveCoresPerUser=`.
    public var maxExclusiveCoresPerUser = 0

    public init() {}
}

/// Defaults a request falls back to (from `[Placement]` in the configuration).
public struct SpawnDefaults: Sendable {
    public var memory: MemoryPolicyMode = .preferred
    public var admission: Admission = .strict
    public init() {}
}

/// Starts, tracks and reaps workers; the one owner of the worker table.
///
/// Each worker is watched through its pidfd (readable when it exits); its exit status is collected
/// with waitid(P_PIDFD), so no zombie is left behind. The table is persisted in `WorkerStateLog`;
/// at start the supervisor re-adopts the workers a previous instance left running. Workers are
/// never killed because the daemon stops.
public actor WorkerSupervisor {
    struct Entry {
        var worker: Manager.Worker
        var pidfd: PidFD?
        var startTicks: UInt64?
        var cores: [CPUSet]
        var source: DispatchSourceRead?
        /// Pending Wait calls, by a token so that a cancelled one can be taken out.
        var waiters: [Int: CheckedContinuation<Manager.Worker, Never>] = [:]
    }

    private var entries: [String: Entry] = [:]
    private var order: [String] = []
    /// The running workers' ids and the number of exited entries kept. Spawns, exits and status
    /// lines read these instead of scanning the table, which also holds up to `exitedHistory` exited
    /// workers: with 1,024 of them, the scans cost about 2 ms of daemon CPU per spawn.
    private var running: Set<String> = []
    private var exitedCount = 0
    /// Exited entries kept per uid, and the bytes of their argvs (`WorkerLimits.exitedHistoryPerUser`).
    private var exitedPerUID: [UInt32: (count: Int, bytes: Int)] = [:]
    /// Spawns admitted but not yet tracked, per caller uid (for MaxWorkersPerUser).
    private var admitting: [UInt32: Int] = [:]
    /// Running workers per uid, and the running ones holding exclusive cores: with thousands of
    /// workers running, counting them per spawn made each spawn (and so 10,000 of them) quadratic.
    private var runningPerUID: [UInt32: Int] = [:]
    private var holdingCores: Set<String> = []
    private var nextID = 1
    private var nextWaiter = 0
    /// Exclusive cores promised to spawns in flight: the actor is re-entered while a clone is
    /// awaited, and two concurrent requests must not be given the same cores.
    private var inFlight: [String: [CPUSet]] = [:]
    /// Exclusive cores of the spawns in flight, per uid (for MaxExclusiveCoresPerUser).
    private var inFlightByUID: [UInt32: Int] = [:]
    private let store: TopologyStore
    private let hub: EventHub
    private let log: WorkerStateLog
    private let spawner: Spawner
    private let spawnThread = SpawnThread()
    private let logger: Logger
    public var limits: WorkerLimits
    public var defaults: SpawnDefaults
    /// Opens a journal stream for a worker's stdout/stderr (nil when journald is absent).
    private let journalStream: @Sendable (_ identifier: String, _ priority: Int32) -> Int32?
    private let procRoot: SysfsRoot
    /// False when the model is a captured machine (`--sysfs-root`): its CPUs are not this host's.
    private let spawnEnabled: Bool

    public init(store: TopologyStore, hub: EventHub, stateLog: WorkerStateLog, spawner: Spawner, logger: Logger,
                limits: WorkerLimits = WorkerLimits(), defaults: SpawnDefaults = SpawnDefaults(),
                procRoot: SysfsRoot = SysfsRoot("/"), spawnEnabled: Bool = true,
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
        self.journalStream = journalStream
    }

    public func configure(limits: WorkerLimits, defaults: SpawnDefaults) {
        self.limits = limits
        self.defaults = defaults
    }

    /// Whole cores held exclusively by `uid`'s running workers and its spawns in flight.
    func coresHeld(by uid: UInt32) -> Int {
        holdingCores.compactMap { entries[$0] }.filter { UInt32(truncatingIfNeeded: $0.worker.uid) == uid }
            .reduce(0) { $0 + $1.cores.count } + (inFlightByUID[uid] ?? 0)
    }

    /// CPUs held by running exclusive workers.
    var reserved: CPUSet {
        (holdingCores.compactMap { entries[$0]?.cores }.flatMap { $0 } + inFlight.values.flatMap { $0 })
            .reduce(CPUSet()) { $0.union($1) }
    }

    // MARK: Spawn

    public func spawn(_ p: Manager.SpawnParameters, peer: PeerCredentials) async throws(VarlinkError) -> Manager.Worker {
        guard spawnEnabled else {
            throw Manager.placementImpossible("spawning is off: the model is a captured machine (--sysfs-root), not this host")
        }
        try validate(p)
        let running = runningPerUID[peer.uid, default: 0]
        if running + admitting[peer.uid, default: 0] >= limits.maxWorkersPerUser {
            throw Manager.limitExceeded("MaxWorkersPerUser", maximum: limits.maxWorkersPerUser)
        }
        // Counted from here until the worker is tracked (or the spawn fails): the awaits below let
        // other requests in, and without this every one of them passed the check above.
        admitting[peer.uid, default: 0] += 1
        defer {
            admitting[peer.uid, default: 1] -= 1
            if admitting[peer.uid] == 0 { admitting.removeValue(forKey: peer.uid) }
        }
        // The connecting process: SO_PEERPIDFD's, or (before Linux 6.5) a pidfd opened now and checked
        // by its ids in PeerProcess.read.
        let callerProcess = peer.process ?? (try? PidFD.open(pid: peer.pid))
        let caller = callerProcess.flatMap { PeerProcess.read(pidfd: $0, uid: peer.uid, gid: peer.gid, procRoot: procRoot) }
        let credentials = try resolveCredentials(p.user, peer: peer, process: caller)

        let inventory = await store.inventory
        let target = try parseTarget(p, inventory: inventory)
        let memory = try p.memory.map { m throws(VarlinkError) -> MemoryPolicyMode in
            guard let v = MemoryPolicyMode(rawValue: m) else {
                throw Manager.invalidParameter("memory", "expected preferred, bind, interleave or none")
            }
            return v
        } ?? (target == .anywhere ? .none : defaults.memory)
        let admission = try p.admission.map { a throws(VarlinkError) -> Admission in
            guard let v = Admission(rawValue: a) else {
                throw Manager.invalidParameter("admission", "expected strict or best-effort")
            }
            return v
        } ?? defaults.admission
        let deviceTarget: Bool
        switch target {
        case .device, .devices: deviceTarget = true
        default: deviceTarget = false
        }
        for (flag, name) in [(p.deviceMemory, "deviceMemory"), (p.runtimeEnvironment, "runtimeEnvironment")]
        where flag == true && !deviceTarget {
            throw Manager.invalidParameter(name, "needs a device target")
        }
        let request = PlacementRequest(target: target, memory: memory, exclusiveCores: p.exclusiveCores ?? 0,
                                       admission: admission, deviceMemory: p.deviceMemory ?? false)
        let allowed = await store.allowed
        if request.exclusiveCores > 0, !peer.isRoot {
            // One user's exclusive cores may not leave root and the others none (review finding 6).
            let share = limits.maxExclusiveCoresPerUser > 0 ? limits.maxExclusiveCoresPerUser
                : max(1, inventory.topology.cores.filter { !$0.isEmpty && $0.isSubset(of: allowed.cpus) }.count / 2)
            let held = coresHeld(by: peer.uid)
            if held + request.exclusiveCores > share {
                throw Manager.limitExceeded("MaxExclusiveCoresPerUser", maximum: share)
            }
        }
        let decision: PlacementDecision
        do {
            decision = try PlacementPolicy.decide(request, inventory: inventory, allowed: allowed, reserved: reserved)
        } catch {
            throw Manager.error(for: error)
        }

        let id = "w\(nextID)"
        nextID += 1
        inFlight[id] = decision.exclusiveCores
        inFlightByUID[peer.uid, default: 0] += decision.exclusiveCores.count
        defer {
            inFlight.removeValue(forKey: id)
            inFlightByUID[peer.uid, default: 0] -= decision.exclusiveCores.count
            if inFlightByUID[peer.uid] == 0 { inFlightByUID.removeValue(forKey: peer.uid) }
        }
        let identifier = p.name ?? (p.argv.first.map { String($0.split(separator: "/").last ?? "worker") } ?? "worker")
        var opened: [Int32] = []
        defer { for fd in opened { close(fd) } }
        func stdio(_ choice: String?, name: String, input: Bool, priority: Int32) throws(VarlinkError) -> StdioChoice {
            switch choice ?? "null" {
            case "null": return .null
            case "inherit":
                // The daemon's own stdout and stderr (its log, its journal stream) are its own user's
                // only: a worker of another user could write into or truncate them.
                guard peer.uid == geteuid() else {
                    throw Manager.invalidParameter(name, "inherit is the daemon's own \(name), for uid \(geteuid()) only; pass a descriptor or a path")
                }
                return .inherit
            case "journal":
                guard !input else { throw Manager.invalidParameter(name, "stdin cannot read from the journal") }
                guard let fd = journalStream(identifier, priority) else {
                    throw Manager.invalidParameter(name, "journald is not available")
                }
                opened.append(fd)
                return .fd(fd)
            case let path where path.hasPrefix("/"):
                return .file(path)
            default:
                throw Manager.invalidParameter(name, "expected null, inherit, journal or an absolute path")
            }
        }
        if caller == nil, !peer.isRoot, peer.uid != geteuid() {
            // Fail closed: without the caller's own limits the worker would get the daemon's wider ones.
            throw Manager.permissionDenied("cannot read the calling process's groups and limits (it has exited, or runs with other ids than when it connected): keep the client that connected running until the reply")
        }
        var spawnRequest = SpawnRequest(
            argv: p.argv, inheritEnvironment: false, environment: environment(p.environment, credentials: credentials),
            workingDirectory: p.workingDirectory ?? "/",
            stdin: try stdio(p.stdin, name: "stdin", input: true, priority: 6),
            stdout: try stdio(p.stdout, name: "stdout", input: false, priority: 6),
            stderr: try stdio(p.stderr, name: "stderr", input: false, priority: 3),
            credentials: credentials, placement: decision, admission: admission,
            parentDeathSignal: p.parentDeathSignal.map(Int32.init))
        if p.runtimeEnvironment == true {
            for (key, value) in WorkerSupervisor.runtimeVariables(decision.devices, inventory: inventory)
            where spawnRequest.environment[key] == nil {
                spawnRequest.environment[key] = value
            }
        }
        // The caller's resource limits, never the daemon's wider ones (LimitNOFILE=, LimitMEMLOCK=).
        spawnRequest.resourceLimits = caller?.limits ?? []
        let unreadPeer = caller == nil

        let process: SpawnedProcess
        do {
            let spawner = self.spawner
            let request = spawnRequest
            process = try await spawnThread.run { () throws(SpawnError) in try spawner.spawn(request) }
        } catch {
            logger.warning("spawn failed: \(error)", metadata: [
                LogMetadataKey.messageID: "\(MessageID.spawnFailed)", LogMetadataKey.device: "\(decision.device?.description ?? "")",
            ])
            throw Manager.spawnFailed(step: error.step.rawValue, errno: error.errno.rawValue, message: error.description)
        }
        // The placement actually applied, read back from the worker; a worker that exited already
        // has no memory map left, so its policy reads as unknown rather than failing the spawn.
        let applied = try? PlacementReader(root: procRoot).read(pid: process.pid)
        let worker = Manager.Worker(
            id: id, pid: Int(process.pid), uid: Int(credentials?.uid ?? peer.uid),
            gid: Int(credentials?.gid ?? peer.gid), argv: p.argv, device: decision.device?.description,
            node: decision.node?.rawValue, state: "running", startedAt: EventHub.realtimeMicroseconds(),
            requested: Manager.Placement(decision),
            applied: applied.map { Manager.Placement(cpus: $0.cpus.cpulist, memoryPolicy: $0.memoryPolicy,
                                                      memoryNodes: $0.memoryNodes.elements) }
                ?? (try? SysfsParsers.statusField("Cpus_allowed_list", in: procRoot.read("proc/\(process.pid)/status")))
                    .flatMap { try? CPUSet(cpulist: $0) }
                    .map { Manager.Placement(cpus: $0.cpulist, memoryPolicy: "unknown", memoryNodes: []) },
            degraded: decision.degraded + process.degradationNotes
                + (unreadPeer ? ["the calling process could not be read: the worker has the daemon's resource limits"] : []),
            exclusiveCores: decision.exclusiveCores.map(\.cpulist), adopted: false, exit: nil)
        let ticks = WorkerSupervisor.startTicks(pid: process.pid, root: procRoot)
        track(Entry(worker: worker, pidfd: process.pidfd, startTicks: ticks, cores: decision.exclusiveCores, source: nil))
        log.append(WorkerStateLog.Record(op: "start", id: id, startTicks: ticks, worker: worker))
        logger.info("worker \(id) started: pid \(process.pid) on CPUs \(worker.applied?.cpus ?? decision.cpus.cpulist)",
                    metadata: [LogMetadataKey.messageID: "\(MessageID.workerSpawned)", LogMetadataKey.workerID: "\(id)",
                               LogMetadataKey.workerPID: "\(process.pid)", LogMetadataKey.device: "\(worker.device ?? "")",
                               LogMetadataKey.numaNode: "\(worker.node.map(String.init) ?? "")", LogMetadataKey.cpus: "\(decision.cpus.cpulist)"])
        if !worker.degraded.isEmpty {
            logger.notice("worker \(id) placement degraded: \(worker.degraded.joined(separator: "; "))",
                          metadata: [LogMetadataKey.messageID: "\(MessageID.placementDegraded)", LogMetadataKey.workerID: "\(id)"])
        }
        hub.publish(kind: "workerStarted", address: worker.device, worker: worker)
        return entries[id]?.worker ?? worker
    }

    private func validate(_ p: Manager.SpawnParameters) throws(VarlinkError) {
        guard let first = p.argv.first, !first.isEmpty else {
            throw Manager.invalidParameter("argv", "must name a program")
        }
        guard p.argv.count <= limits.maxArguments else { throw Manager.limitExceeded("MaxArguments", maximum: limits.maxArguments) }
        let argvBytes = p.argv.reduce(0) { $0 + $1.utf8.count + 1 }
        guard argvBytes <= limits.maxArgvBytes else { throw Manager.limitExceeded("MaxArgvBytes", maximum: limits.maxArgvBytes) }
        guard !p.argv.contains(where: { $0.utf8.contains(0) }) else {
            throw Manager.invalidParameter("argv", "arguments cannot contain NUL")
        }
        if let env = p.environment {
            guard env.count <= limits.maxEnvironmentEntries else {
                throw Manager.limitExceeded("MaxEnvironmentEntries", maximum: limits.maxEnvironmentEntries)
            }
            guard env.reduce(0, { $0 + $1.utf8.count + 1 }) <= limits.maxEnvironmentBytes else {
                throw Manager.limitExceeded("MaxEnvironmentBytes", maximum: limits.maxEnvironmentBytes)
            }
            for e in env {
                guard let eq = e.firstIndex(of: "="), eq != e.startIndex, !e.utf8.contains(0) else {
                    throw Manager.invalidParameter("environment", "entries must be NAME=value without NUL")
                }
            }
        }
        if let cwd = p.workingDirectory, !cwd.hasPrefix("/") || cwd.utf8.contains(0) {
            throw Manager.invalidParameter("workingDirectory", "must be an absolute path")
        }
        if let s = p.parentDeathSignal, !(1...64).contains(s) {
            throw Manager.invalidParameter("parentDeathSignal", "must be a signal number from 1 to 64")
        }
        if let n = p.exclusiveCores, n < 0 || n > PlacementPolicy.maxExclusiveCores {
            throw Manager.invalidParameter("exclusiveCores", "must be between 0 and \(PlacementPolicy.maxExclusiveCores)")
        }
        if let name = p.name, name.isEmpty || name.utf8.count > 64 || name.contains(where: { $0 == "\n" || $0 == "\0" }) {
            throw Manager.invalidParameter("name", "must be 1 to 64 bytes on one line")
        }
    }

    private func parseTarget(_ p: Manager.SpawnParameters, inventory: Inventory) throws(VarlinkError) -> PlacementTarget {
        let given = [p.device != nil, p.devices != nil, p.node != nil, p.cpus != nil].filter { $0 }.count
        guard given <= 1 else { throw Manager.invalidParameter("device", "give at most one of device, devices, node and cpus") }
        if let list = p.devices {
            guard (1...64).contains(list.count) else { throw Manager.invalidParameter("devices", "give 1 to 64 devices") }
            var addresses: [PCIAddress] = []
            for d in list {
                guard let found = inventory.device(named: d) else {
                    throw Manager.invalidParameter("devices", "\"\(d.prefix(64))\" is no PCI address, device node or name of a device here")
                }
                guard !addresses.contains(found.address) else {
                    throw Manager.invalidParameter("devices", "\(found.address) is named twice")
                }
                addresses.append(found.address)
            }
            return .devices(addresses)
        }
        if let d = p.device {
            do { return .device(try PCIAddress(parsing: d)) } catch {
                // A device node or a driver's name (/dev/dri/renderD128, mlx5_0, GPU-…).
                if let named = inventory.device(named: d) { return .device(named.address) }
                throw Manager.invalidParameter("device", "\(error.description), and no device has that name or device node")
            }
        }
        if let n = p.node {
            guard let id = NUMANodeID(rawValue: n) else { throw Manager.noSuchNode(n) }
            return .node(id)
        }
        if let c = p.cpus {
            do { return .cpus(try CPUSet(cpulist: c)) } catch {
                throw Manager.invalidParameter("cpus", error.description)
            }
        }
        return .anywhere
    }

    /// The identity a worker runs with: the caller's, or (root callers only) the named user's.
    /// A daemon that is not root cannot change identity, so it serves only its own user.
    private func resolveCredentials(_ user: String?, peer: PeerCredentials,
                                    process: PeerProcess?) throws(VarlinkError) -> Credentials? {
        let daemonIsRoot = geteuid() == 0
        if let user {
            guard peer.isRoot else { throw Manager.permissionDenied("only root may run a worker as another user") }
            guard daemonIsRoot else { throw Manager.permissionDenied("the daemon does not run as root") }
            guard let account = UserAccount.lookup(user) else { throw Manager.invalidParameter("user", "no such user \(user)") }
            return Credentials(uid: account.uid, gid: account.gid, groups: account.groups)
        }
        guard daemonIsRoot else {
            guard peer.uid == geteuid() else {
                throw Manager.permissionDenied("this daemon runs as uid \(geteuid()) and serves only that user")
            }
            return nil
        }
        if peer.isRoot { return nil }
        // The groups the caller's process has (a user removed from a group keeps none of its rights
        // here, and `newgrp`/`sg` are honoured); the group database only when the process is gone.
        let groups = process?.groups ?? UserAccount.lookup(uid: peer.uid)?.groups ?? [peer.gid]
        return Credentials(uid: peer.uid, gid: peer.gid, groups: groups)
    }

    /// The variables the devices' runtimes read, as an engine would set them by hand: CUDA_VISIBLE_DEVICES
    /// by GPU UUID (only when the driver names every GPU among them: a partial list would hide the
    /// others), and NCCL_IB_HCA with each GPU's and accelerator's nearest RDMA NIC. A variable the
    /// caller set itself wins.
    static func runtimeVariables(_ devices: [PCIAddress], inventory: Inventory) -> [String: String] {
        var out: [String: String] = [:]
        let found = devices.compactMap { inventory.device($0) }
        let gpus = found.filter { $0.kind == .gpu }
        let uuids = gpus.compactMap { $0.names.first { $0.hasPrefix("GPU-") } }
        if !gpus.isEmpty && uuids.count == gpus.count { out["CUDA_VISIBLE_DEVICES"] = uuids.joined(separator: ",") }
        var hcas: [String] = []
        for d in found where d.kind == .gpu || d.kind == .accelerator {
            guard let nic = inventory.nearestNICs(to: d.address).first.flatMap({ inventory.device($0) }),
                  let name = nic.rdmaNames.first, !hcas.contains(name) else { continue }
            hcas.append(name)
        }
        for nic in found where nic.kind == .nic {
            for name in nic.rdmaNames.prefix(1) where !hcas.contains(name) { hcas.append(name) }
        }
        if !hcas.isEmpty { out["NCCL_IB_HCA"] = hcas.joined(separator: ",") }
        return out
    }

    private func environment(_ given: [String]?, credentials: Credentials?) -> [String: String] {
        var env: [String: String] = [:]
        for e in given ?? [] {
            guard let eq = e.firstIndex(of: "=") else { continue }
            env[String(e[..<eq])] = String(e[e.index(after: eq)...])
        }
        if env["PATH"] == nil { env["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" }
        return env
    }

    // MARK: Tracking

    private func track(_ entry: Entry) {
        var entry = entry
        let id = entry.worker.id
        if let pidfd = entry.pidfd {
            let source = DispatchSource.makeReadSource(fileDescriptor: pidfd.rawValue, queue: .global())
            source.setEventHandler { [weak self] in
                source.suspend()
                guard let self else { return }
                Task { await self.reap(id) }
            }
            // libdispatch keys its epoll registration by descriptor number and drops it only when the
            // cancellation completes; closing the pidfd before that lets the next worker's pidfd (same
            // number) join the stale registration, and that worker's exit is never seen.
            source.setCancelHandler { withExtendedLifetime(pidfd) {} }
            source.resume()
            entry.source = source
        }
        entries[id] = entry
        order.append(id)
        if entry.worker.state == "running" {
            running.insert(id)
            runningPerUID[UInt32(truncatingIfNeeded: entry.worker.uid), default: 0] += 1
            if !entry.cores.isEmpty { holdingCores.insert(id) }
        } else {
            exitedCount += 1
            let uid = UInt32(truncatingIfNeeded: entry.worker.uid)
            exitedPerUID[uid, default: (0, 0)].count += 1
            exitedPerUID[uid, default: (0, 0)].bytes += Self.argvBytes(entry.worker)
        }
    }

    /// Collects the exit of a worker whose pidfd became readable.
    private func reap(_ id: String) {
        guard var entry = entries[id], entry.worker.state == "running" else { return }
        var exit = Manager.ExitStatus(how: "unknown")
        if let pidfd = entry.pidfd {
            switch Result(catching: { () throws(Errno) in try pidfd.tryReap() }) {
            case .success(.exited(let code)?): exit = Manager.ExitStatus(how: "exited", code: Int(code))
            case .success(.killed(let sig, _)?): exit = Manager.ExitStatus(how: "killed", signal: Int(sig))
            case .success(nil):
                // Readable but not reapable yet would be a kernel oddity; look again shortly.
                entry.source?.resume()
                return
            case .failure:
                // ECHILD: an adopted worker is not our child; its status went to its new parent.
                exit = Manager.ExitStatus(how: "unknown")
            }
        }
        // The handler suspended the source; libdispatch traps when a suspended source is released,
        // and a suspended source never completes its cancellation, so cancel it and then resume it
        // once. The pidfd stays open until the cancellation completes (the cancel handler in track).
        entry.source?.cancel()
        entry.source?.resume()
        entry.source = nil
        entry.pidfd = nil
        entry.worker.state = "exited"
        entry.worker.exit = exit
        running.remove(id)
        holdingCores.remove(id)
        let uid = UInt32(truncatingIfNeeded: entry.worker.uid)
        runningPerUID[uid, default: 1] -= 1
        if runningPerUID[uid] == 0 { runningPerUID.removeValue(forKey: uid) }
        exitedCount += 1
        exitedPerUID[uid, default: (0, 0)].count += 1
        exitedPerUID[uid, default: (0, 0)].bytes += Self.argvBytes(entry.worker)
        let waiters = entry.waiters
        entry.waiters = [:]
        entries[id] = entry
        for w in waiters.values { w.resume(returning: entry.worker) }
        log.append(WorkerStateLog.Record(op: "exit", id: id, startTicks: nil, worker: nil))
        log.compactIfNeeded(liveCount: running.count, live: liveRecords())
        logger.info("worker \(id) (pid \(entry.worker.pid)) \(exit.how)\(exit.code.map { " with code \($0)" } ?? "")\(exit.signal.map { " by signal \($0)" } ?? "")",
                    metadata: [LogMetadataKey.messageID: "\(MessageID.workerExited)", LogMetadataKey.workerID: "\(id)",
                               LogMetadataKey.workerPID: "\(entry.worker.pid)"])
        hub.publish(kind: "workerExited", address: entry.worker.device, worker: entry.worker)
        trimHistory(of: uid)
        trimHistory()
    }

    static func argvBytes(_ worker: Manager.Worker) -> Int { worker.argv.reduce(0) { $0 + $1.utf8.count + 1 } }

    /// Forgets `uid`'s oldest exited workers once it keeps more than its share, down to 7/8 of it.
    private func trimHistory(of uid: UInt32) {
        guard let kept = exitedPerUID[uid], kept.count > limits.exitedHistoryPerUser
                || kept.bytes > limits.exitedHistoryBytesPerUser else { return }
        var count = kept.count, bytes = kept.bytes
        var drop = Set<String>()
        for id in order where count > limits.exitedHistoryPerUser - limits.exitedHistoryPerUser / 8
            || bytes > limits.exitedHistoryBytesPerUser - limits.exitedHistoryBytesPerUser / 8 {
            guard !running.contains(id), let e = entries[id], UInt32(truncatingIfNeeded: e.worker.uid) == uid else { continue }
            drop.insert(id)
            count -= 1
            bytes -= Self.argvBytes(e.worker)
        }
        forget(drop)
    }

    /// Removes exited entries from the table and the per-uid counts.
    private func forget(_ drop: Set<String>) {
        guard !drop.isEmpty else { return }
        for id in drop {
            guard let e = entries.removeValue(forKey: id) else { continue }
            let uid = UInt32(truncatingIfNeeded: e.worker.uid)
            exitedPerUID[uid, default: (1, 0)].count -= 1
            exitedPerUID[uid, default: (0, 0)].bytes -= Self.argvBytes(e.worker)
            if exitedPerUID[uid]?.count ?? 0 <= 0 { exitedPerUID.removeValue(forKey: uid) }
        }
        order.removeAll { drop.contains($0) }
        exitedCount -= drop.count
    }

    private func liveRecords() -> [WorkerStateLog.Record] {
        order.filter { running.contains($0) }.compactMap { entries[$0] }.map {
            WorkerStateLog.Record(op: "start", id: $0.worker.id, startTicks: $0.startTicks, worker: $0.worker)
        }
    }

    private func trimHistory() {
        guard exitedCount > limits.exitedHistory else { return }
        // The oldest are forgotten an eighth of the history at a time, so that the walk over `order`
        // is paid once per many exits rather than on every one.
        var excess = exitedCount - (limits.exitedHistory - limits.exitedHistory / 8)
        var drop = Set<String>()
        for id in order where excess > 0 && !running.contains(id) {
            drop.insert(id)
            excess -= 1
        }
        forget(drop)
    }

    /// Re-adopts the workers a previous instance recorded as running: those whose pid still names
    /// the same process (same start time) are watched again; the rest are reported as exited.
    public func adopt() -> (adopted: Int, gone: Int) {
        let (records, maxID) = log.load()
        nextID = max(nextID, maxID + 1)
        var adopted = 0, gone = 0
        for r in records {
            guard var worker = r.worker, entries[r.id] == nil else { continue }
            worker.adopted = true
            let pid = pid_t(worker.pid)
            let ticks = WorkerSupervisor.startTicks(pid: pid, root: procRoot)
            if ticks != nil, ticks == r.startTicks, let pidfd = try? PidFD.open(pid: pid),
               // Read again through the pidfd's process: the pid cannot have been reused since.
               WorkerSupervisor.startTicks(pid: pid, root: procRoot) == ticks,
               WorkerSupervisor.processMayBe(worker, pid: pid, root: procRoot) {
                // Exclusive cores only where no worker adopted before holds them: a record cannot
                // take cores twice, nor all of them.
                var cores = worker.exclusiveCores.compactMap { try? CPUSet(cpulist: $0) }
                let held = reserved
                if cores.contains(where: { !$0.isDisjoint(with: held) }) {
                    logger.warning("worker \(r.id) (pid \(pid)): its exclusive cores are held by another worker; adopted as shared")
                    cores = []
                    worker.exclusiveCores = []
                }
                track(Entry(worker: worker, pidfd: pidfd, startTicks: ticks, cores: cores, source: nil))
                adopted += 1
                logger.info("worker \(r.id) (pid \(pid)) re-adopted",
                            metadata: [LogMetadataKey.messageID: "\(MessageID.workerAdopted)", LogMetadataKey.workerID: "\(r.id)",
                                       LogMetadataKey.workerPID: "\(pid)"])
            } else {
                worker.state = "exited"
                worker.exit = Manager.ExitStatus(how: "unknown")
                track(Entry(worker: worker, pidfd: nil, startTicks: r.startTicks, cores: [], source: nil))
                log.append(WorkerStateLog.Record(op: "exit", id: r.id, startTicks: nil, worker: nil))
                gone += 1
            }
        }
        // Start the next instance from a compact log.
        log.compactIfNeeded(liveCount: running.count, live: liveRecords(), threshold: 0)
        return (adopted, gone)
    }

    /// Whether the live process may be the worker a record describes, as far as whose it is: the
    /// record's uid is one of the process's (real, effective, saved, filesystem), or the record is
    /// root's (which gives no one but root a handle on it). A record naming a user for someone
    /// else's process would let that user signal it.
    static func processMayBe(_ worker: Manager.Worker, pid: pid_t, root: SysfsRoot) -> Bool {
        if worker.uid == 0 { return true }
        guard let status = try? root.read("proc/\(pid)/status", limit: 16384),
              let field = SysfsParsers.statusField("Uid", in: status) else { return false }
        let uids = field.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
        return uids.contains(worker.uid)
    }

    /// Field 22 of `/proc/<pid>/stat`, the start time in clock ticks since boot.
    static func startTicks(pid: pid_t, root: SysfsRoot) -> UInt64? {
        guard let text = try? root.read("proc/\(pid)/stat", limit: 4096),
              let close = text.lastIndex(of: ")") else { return nil }
        // The command name (field 2) may contain spaces and parentheses: count from the last ')'.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 19 else { return nil }
        return UInt64(fields[19])
    }

    // MARK: Queries

    public func list(for peer: PeerCredentials) -> [Manager.Worker] {
        order.compactMap { entries[$0] }.filter { peer.owns($0.worker) }.map(\.worker)
    }

    public func counts(for peer: PeerCredentials) -> (total: Int, running: Int) {
        if peer.isRoot { return (entries.count, running.count) }
        let mine = entries.values.filter { peer.owns($0.worker) }
        return (mine.count, mine.filter { $0.worker.state == "running" }.count)
    }

    public var runningCount: Int { running.count }

    /// Why the worker table could not be persisted, if it could not (a full or read-only state directory).
    public var stateLogError: String? { log.lastError }

    private func entry(_ id: String, for peer: PeerCredentials) throws(VarlinkError) -> Entry {
        // A worker someone else owns is reported as absent, not as forbidden: ids are not secrets
        // worth confirming to other users.
        guard let e = entries[id], peer.owns(e.worker) else { throw Manager.noSuchWorker(id) }
        return e
    }

    public func get(_ id: String, for peer: PeerCredentials) throws(VarlinkError) -> Manager.Worker {
        try entry(id, for: peer).worker
    }

    public func signal(_ id: String, signal: Int, for peer: PeerCredentials) throws(VarlinkError) {
        guard (1...64).contains(signal) else { throw Manager.invalidParameter("signal", "must be from 1 to 64") }
        let e = try entry(id, for: peer)
        guard e.worker.state == "running", let pidfd = e.pidfd else {
            throw Manager.invalidParameter("id", "worker \(id) has exited")
        }
        do { try pidfd.send(signal: Int32(signal)) } catch {
            throw Manager.invalidParameter("id", "cannot signal worker \(id): \(error)")
        }
    }

    public func wait(_ id: String, for peer: PeerCredentials) async throws(VarlinkError) -> Manager.Worker {
        let e = try entry(id, for: peer)
        if e.worker.state == "exited" { return e.worker }
        // The server cancels a connection's task when the peer hangs up; a Wait that kept waiting
        // would pile up (one per connect, Wait, hang-up) until the worker exits. Cancelled, it
        // returns the worker as it is now, to a peer that is gone.
        nextWaiter += 1
        let token = nextWaiter
        return await withTaskCancellationHandler {
            await withCheckedContinuation { c in
                entries[id]?.waiters[token] = c
            }
        } onCancel: {
            Task { await self.cancelWait(id, token: token) }
        }
    }

    /// Ends one pending Wait (its caller was cancelled). Runs after the waiter was registered:
    /// the actor is not free until `wait` has suspended.
    private func cancelWait(_ id: String, token: Int) {
        guard let c = entries[id]?.waiters.removeValue(forKey: token), let worker = entries[id]?.worker else { return }
        c.resume(returning: worker)
    }
}

/// A user account from the passwd and group databases (getpwnam_r, getpwuid_r, getgrouplist).
struct UserAccount {
    let name: String
    let uid: uid_t
    let gid: gid_t
    let groups: [gid_t]

    static func lookup(_ nameOrID: String) -> UserAccount? {
        if let uid = UInt32(nameOrID) { return lookup(uid: uid) }
        return fetch { pw, buf, result in getpwnam_r(nameOrID, pw, buf, 16384, result) }
    }

    static func lookup(uid: uid_t) -> UserAccount? {
        fetch { pw, buf, result in getpwuid_r(uid, pw, buf, 16384, result) }
    }

    private static func fetch(_ call: (UnsafeMutablePointer<passwd>, UnsafeMutablePointer<CChar>,
                                       UnsafeMutablePointer<UnsafeMutablePointer<passwd>?>) -> Int32) -> UserAccount? {
        var pw = passwd()
        var result: UnsafeMutablePointer<passwd>? = nil
        let buf = UnsafeMutablePointer<CChar>.allocate(capacity: 16384)
        defer { buf.deallocate() }
        guard call(&pw, buf, &result) == 0, result != nil, let namePtr = pw.pw_name else { return nil }
        let name = String(cString: namePtr)
        var count: Int32 = 64
        var groups = [gid_t](repeating: 0, count: Int(count))
        if getgrouplist(namePtr, pw.pw_gid, &groups, &count) < 0 {
            groups = [gid_t](repeating: 0, count: Int(count))
            if getgrouplist(namePtr, pw.pw_gid, &groups, &count) < 0 { count = 0 }
        }
        return UserAccount(name: name, uid: pw.pw_uid, gid: pw.pw_gid, groups: Array(groups.prefix(Int(max(count, 0)))))
    }
}
