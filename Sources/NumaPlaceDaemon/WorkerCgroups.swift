#if canImport(Glibc)
import Glibc
#endif
import NumaPlaceCore
import NumaPlacePlatform
import NumaPlaceProtocol

/// The daemon's cgroup policy (DESIGN.md, "Workers in cgroups of their own"): whether each worker is
/// born into a group of its own, and when not, the one sentence that says why, which GetStatus and
/// every Spawn reply carry (a v1 host is told, never left to guess).
///
/// The group's cpuset.cpus is the worker's CPUs, so the kernel holds it there whatever affinity it
/// sets itself; cpuset.mems is set only for `bind`: for `preferred` and `interleave` it would forbid
/// the fallback to other nodes that those policies promise.
public struct WorkerCgroups: Sendable {
    public let subtree: CgroupSubtree?
    /// Why workers get no group (nil when they do, or when the daemon was built without asking).
    public let unavailable: String?

    init(subtree: CgroupSubtree?, unavailable: String?) {
        self.subtree = subtree
        self.unavailable = unavailable
    }

    /// No groups and no note: what a supervisor built in memory by a test gets.
    public static let off = WorkerCgroups(subtree: nil, unavailable: nil)

    /// Detects the hierarchy and prepares the daemon's subtree (moving the daemon into its leaf).
    public static func start(root: SysfsRoot) -> WorkerCgroups {
        guard root.isLiveHost else { return .off }
        do {
            var subtree = try CgroupSubtree.detect(root: root, underSystemd: access("/run/systemd/system", F_OK) == 0)
            try subtree.prepare()
            return WorkerCgroups(subtree: subtree, unavailable: nil)
        } catch {
            return WorkerCgroups(subtree: nil, unavailable: note(error))
        }
    }

    static func note(_ error: CgroupError) -> String { note(reason: "\(error)") }

    static func note(reason: String) -> String {
        "workers get no cgroup of their own (\(reason)): their placement is an affinity and a memory policy set at birth, which they can change, and per-worker limits and usage are unavailable"
    }

    public var degradedNote: String? { unavailable.map { "no cgroup: " + $0 } }

    /// The limits a Spawn asks for, validated; refused where there are no groups to hold them.
    static func limits(_ p: Manager.SpawnParameters, available: Bool, unavailable: String?) throws(VarlinkError) -> CgroupLimits {
        let asked: [(String, Int?, ClosedRange<Int>)] = [
            ("memoryMax", p.memoryMax, (1 << 20)...Int.max), ("pidsMax", p.pidsMax, 1...(1 << 22)), ("cpuWeight", p.cpuWeight, 1...10_000),
        ]
        for (name, value, range) in asked {
            guard let value else { continue }
            guard available else {
                throw Manager.invalidParameter(name, "per-worker limits need a cgroup of the worker's own, and " + (unavailable ?? "workers get no cgroup here"))
            }
            guard range.contains(value) else {
                throw Manager.invalidParameter(name, "must be from \(range.lowerBound) to \(range.upperBound)")
            }
        }
        return CgroupLimits(memoryMax: p.memoryMax.map(UInt64.init), pidsMax: p.pidsMax.map(UInt64.init),
                            cpuWeight: p.cpuWeight.map(UInt64.init))
    }

    /// Makes the worker's group for a decided placement.
    func makeGroup(id: String, argv0: String, decision: PlacementDecision, limits: CgroupLimits) throws(CgroupError) -> WorkerCgroup? {
        guard let subtree else { return nil }
        let mems = decision.memory.mode == .bind ? decision.memory.nodes.map(\.rawValue) : []
        return try subtree.makeGroup(named: CgroupSubtree.groupName(id: id, argv0: argv0), cpus: decision.cpus,
                                     memoryNodes: mems, limits: limits)
    }

    /// The group a record names, if it is one of this subtree's.
    func group(path: String?) -> WorkerCgroup? {
        guard let subtree, let path, path.hasPrefix("/" + subtree.base + "/") || (subtree.base.isEmpty && path.hasPrefix("/")) else { return nil }
        let name = String(path.dropFirst(subtree.base.count + (subtree.base.isEmpty ? 1 : 2)))
        guard CgroupSubtree.isWorkerGroupName(name) else { return nil }
        return subtree.group(named: name)
    }

    static func usage(_ u: CgroupUsage) -> Manager.WorkerUsage {
        func int(_ v: UInt64?) -> Int? { v.map { Int(clamping: $0) } }
        return Manager.WorkerUsage(cpuUsec: int(u.cpuUsec), memoryCurrent: int(u.memoryCurrent),
                                   memoryPeak: int(u.memoryPeak), pids: int(u.pids))
    }
}
