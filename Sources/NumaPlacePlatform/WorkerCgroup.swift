import Glibc
import NumaPlaceSyscall
import NumaPlaceCore

/// Per-worker limits a Spawn may ask for; nil: none (the kernel's "max", the default weight).
public struct CgroupLimits: Hashable, Sendable {
    /// memory.max in bytes.
    public var memoryMax: UInt64?
    /// pids.max.
    public var pidsMax: UInt64?
    /// cpu.weight, 1...10000 (100 is the kernel's default).
    public var cpuWeight: UInt64?

    public init(memoryMax: UInt64? = nil, pidsMax: UInt64? = nil, cpuWeight: UInt64? = nil) {
        self.memoryMax = memoryMax
        self.pidsMax = pidsMax
        self.cpuWeight = cpuWeight
    }

    public var isEmpty: Bool { memoryMax == nil && pidsMax == nil && cpuWeight == nil }
}

/// What a worker's group has used, read from its interface files; nil where the file is absent
/// (a controller not enabled, memory.peak before Linux 5.19).
public struct CgroupUsage: Hashable, Sendable {
    public var cpuUsec: UInt64?
    public var memoryCurrent: UInt64?
    public var memoryPeak: UInt64?
    public var pids: UInt64?
    /// memory.events oom_kill: processes of the group the OOM killer killed.
    public var oomKills: UInt64?
}

/// One worker's cgroup v2 group: its placement (cpuset.cpus, cpuset.mems) and limits, its usage, the
/// descriptor clone3 starts the worker in, and its removal once empty.
public struct WorkerCgroup: Hashable, Sendable {
    public let files: CgroupFiles
    /// Relative to the cgroup mount.
    public let path: String

    public init(files: CgroupFiles, path: String) {
        self.files = files
        self.path = path
    }

    /// The path as /proc/<pid>/cgroup and systemd-cgls show it.
    public var hierarchyPath: String { "/" + path }
    public var name: String { path.split(separator: "/").last.map(String.init) ?? path }

    func file(_ name: String) -> String { CgroupFiles.join(path, name) }

    /// Writes the placement and the limits. A limit whose controller is not enabled is refused with
    /// `controllerMissing` rather than ignored.
    public func configure(cpus: CPUSet, memoryNodes: [Int], limits: CgroupLimits, controllers: Set<String>) throws(CgroupError) {
        if !cpus.isEmpty { try files.write(file("cpuset.cpus"), cpus.cpulist) }
        if !memoryNodes.isEmpty { try files.write(file("cpuset.mems"), CPUSet(memoryNodes).cpulist) }
        let wanted: [(String, String, UInt64?)] = [
            ("memory", "memory.max", limits.memoryMax), ("pids", "pids.max", limits.pidsMax), ("cpu", "cpu.weight", limits.cpuWeight),
        ]
        for (controller, name, value) in wanted {
            guard let value else { continue }
            guard controllers.contains(controller) else {
                throw CgroupError(.controllerMissing, path: hierarchyPath,
                                  detail: "\(name) needs the \(controller) controller, which the daemon's group does not have")
            }
            try files.write(file(name), "\(value)")
        }
    }

    /// Narrows or widens the group's CPUs (another worker took or gave back exclusive cores).
    public func setCPUs(_ cpus: CPUSet) throws(CgroupError) { try files.write(file("cpuset.cpus"), cpus.cpulist) }

    /// An `O_PATH|O_DIRECTORY|O_CLOEXEC` descriptor of the group, for clone3's `CLONE_INTO_CGROUP`.
    public func openDirectory() throws(CgroupError) -> Int32 {
        do {
            return try Syscall.retrying { open(files.absolute(path), 0o10000000 /* O_PATH, which Glibc does not import */ | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW) }
        } catch {
            throw CgroupError(.io, path: hierarchyPath, errno: error, detail: "cannot open the group")
        }
    }

    public func processes() throws(CgroupError) -> [pid_t] { try files.processes(path) }

    public func contains(_ pid: pid_t) -> Bool { ((try? processes()) ?? []).contains(pid) }

    /// The effective CPUs the kernel enforces (cpuset.cpus.effective).
    public func effectiveCPUs() -> CPUSet? {
        (try? files.read(file("cpuset.cpus.effective"))).flatMap { try? CPUSet(cpulist: $0.trimmingNewline) }
    }

    public func usage() -> CgroupUsage {
        func value(_ name: String) -> UInt64? {
            (try? files.read(file(name))).flatMap { try? CgroupFiles.parseValue($0, path: name) }
        }
        let cpu = (try? files.read(file("cpu.stat"))).map(CgroupFiles.parseKeyed)
        let events = (try? files.read(file("memory.events"))).map(CgroupFiles.parseKeyed)
        return CgroupUsage(cpuUsec: cpu?["usage_usec"], memoryCurrent: value("memory.current"),
                           memoryPeak: value("memory.peak"), pids: value("pids.current"), oomKills: events?["oom_kill"])
    }

    /// rmdir(2): the kernel refuses (EBUSY) while a process is in the group.
    public func remove() throws(CgroupError) { try files.removeDirectory(path) }
}
