#if canImport(Glibc)
import Glibc
#endif
import NumaPlaceCore
import NumaPlacePlatform
import NumaPlaceProtocol

/// Defaults a request falls back to (from `[Placement]` in the configuration).
public struct SpawnDefaults: Sendable {
    public var memory: MemoryPolicyMode = .preferred
    public var admission: Admission = .strict
    public init() {}
    public init(_ c: Configuration) {
        memory = c.defaultMemoryPolicy
        admission = c.defaultAdmission
    }
}

/// How a worker's stdin, stdout or stderr is to be set up, as the wire asked for it. The journal
/// stream is opened by the supervisor, after every check has passed.
enum StdioPlan: Hashable, Sendable {
    case null
    case inherit
    case journal(priority: Int32)
    case file(String)
}

/// Turns a Spawn call's parameters into what the supervisor acts on: the placement request, the
/// identity, the stdio plan and the environment. Pure (no process, no actor, no file): every refusal
/// is a typed `VarlinkError` naming the parameter, and hostile tables test it directly.
enum SpawnRequestBuilder {
    /// The shape of the call, before anything is looked up.
    static func validate(_ p: Manager.SpawnParameters, limits: Configuration.Limits) throws(VarlinkError) {
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

    /// The placement the call asks for, with the configured defaults where it names none.
    static func placementRequest(_ p: Manager.SpawnParameters, inventory: Inventory,
                                 defaults: SpawnDefaults) throws(VarlinkError) -> PlacementRequest {
        let target = try target(p, inventory: inventory)
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
        return PlacementRequest(target: target, memory: memory, exclusiveCores: p.exclusiveCores ?? 0,
                                admission: admission, deviceMemory: p.deviceMemory ?? false)
    }

    static func target(_ p: Manager.SpawnParameters, inventory: Inventory) throws(VarlinkError) -> PlacementTarget {
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

    /// Where the builder looks users up; tests give tables of their own.
    struct Accounts {
        var byName: (String) -> UserAccount?
        var byUID: (uid_t) -> UserAccount?
        static let system = Accounts(byName: UserAccount.lookup, byUID: { UserAccount.lookup(uid: $0) })
    }

    /// The identity a worker runs with: the caller's, or (root callers only) the named user's.
    /// A daemon that is not root cannot change identity, so it serves only its own user. nil: the
    /// daemon's own identity.
    static func credentials(user: String?, peer: PeerCredentials, callerGroups: [gid_t]?, daemonUID: uid_t,
                            accounts: Accounts = .system) throws(VarlinkError) -> Credentials? {
        let daemonIsRoot = daemonUID == 0
        if let user {
            guard peer.isRoot else { throw Manager.permissionDenied("only root may run a worker as another user") }
            guard daemonIsRoot else { throw Manager.permissionDenied("the daemon does not run as root") }
            guard let account = accounts.byName(user) else { throw Manager.invalidParameter("user", "no such user \(user)") }
            return Credentials(uid: account.uid, gid: account.gid, groups: account.groups)
        }
        guard daemonIsRoot else {
            guard peer.uid == daemonUID else {
                throw Manager.permissionDenied("this daemon runs as uid \(daemonUID) and serves only that user")
            }
            return nil
        }
        if peer.isRoot { return nil }
        // The groups the caller's process has (a user removed from a group keeps none of its rights
        // here, and `newgrp`/`sg` are honoured); the group database only when the process is gone.
        let groups = callerGroups ?? accounts.byUID(peer.uid)?.groups ?? [peer.gid]
        return Credentials(uid: peer.uid, gid: peer.gid, groups: groups)
    }

    /// One of stdin, stdout and stderr. `inherit` is the daemon's own descriptor (its log, its journal
    /// stream): its own user's only, since a worker of another user could write into or truncate it.
    /// `journal` likewise: a stream the daemon opens carries the daemon's uid.
    static func stdio(_ choice: String?, name: String, input: Bool, priority: Int32, callerUID: UInt32,
                      daemonUID: UInt32) throws(VarlinkError) -> StdioPlan {
        switch choice ?? "null" {
        case "null": return .null
        case "inherit":
            guard callerUID == daemonUID else {
                throw Manager.invalidParameter(name, "inherit is the daemon's own \(name), for uid \(daemonUID) only; pass a descriptor or a path")
            }
            return .inherit
        case "journal":
            guard !input else { throw Manager.invalidParameter(name, "stdin cannot read from the journal") }
            // journald stamps a stream with the credentials of whoever connected it: opened here, another
            // user's worker would write records as the daemon's uid, under an identifier of its choice.
            guard callerUID == daemonUID || callerUID == 0 else {
                throw Manager.invalidParameter(name, "journal opened by the daemon is for uid \(daemonUID) only; pass a journal stream you opened as \(name)Descriptor (numaplacectl --\(name) journal does)")
            }
            return .journal(priority: priority)
        case let path where path.hasPrefix("/"):
            return .file(path)
        default:
            throw Manager.invalidParameter(name, "expected null, inherit, journal or an absolute path")
        }
    }

    /// The worker's name in logs and journal records: `name`, else argv[0]'s last component.
    static func identifier(_ p: Manager.SpawnParameters) -> String {
        p.name ?? (p.argv.first.map { String($0.split(separator: "/").last ?? "worker") } ?? "worker")
    }

    /// The environment from `NAME=value` entries (validated already), with a PATH when none is given.
    static func environment(_ given: [String]?) -> [String: String] {
        var env: [String: String] = [:]
        for e in given ?? [] {
            guard let eq = e.firstIndex(of: "=") else { continue }
            env[String(e[..<eq])] = String(e[e.index(after: eq)...])
        }
        if env["PATH"] == nil { env["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" }
        return env
    }

    /// Whole cores one uid other than root may hold exclusively: `MaxExclusiveCoresPerUser=`, or half
    /// of the whole cores workers may be given (at least one), so one user cannot leave root and the
    /// others none.
    static func exclusiveShare(limits: Configuration.Limits, inventory: Inventory, allowed: AllowedSet) -> Int {
        limits.maxExclusiveCoresPerUser > 0 ? limits.maxExclusiveCoresPerUser
            : max(1, inventory.topology.cores.filter { !$0.isEmpty && $0.isSubset(of: allowed.cpus) }.count / 2)
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
}
