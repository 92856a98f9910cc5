import Glibc
import NumaPlaceCore

/// Where the kernel actually placed a process, read from procfs after exec.
public struct AppliedPlacement: Hashable, Sendable, CustomStringConvertible {
    /// `Cpus_allowed_list` of `/proc/<pid>/status`: the affinity.
    public var cpus: CPUSet
    /// The policy word of `/proc/<pid>/numa_maps`: default, preferred, bind, interleave, local,
    /// weighted-interleave.
    public var memoryPolicy: String
    /// The policy's nodes (empty for default and local).
    public var memoryNodes: CPUSet
    /// `Mems_allowed_list`: the cpuset's memory nodes, which bound the policy but are not the policy.
    public var cpusetMems: CPUSet?

    public init(cpus: CPUSet, memoryPolicy: String, memoryNodes: CPUSet, cpusetMems: CPUSet?) {
        self.cpus = cpus
        self.memoryPolicy = memoryPolicy
        self.memoryNodes = memoryNodes
        self.cpusetMems = cpusetMems
    }

    /// The policy as the API's mode, nil for one it has no name for (local, weighted-interleave).
    public var memoryMode: MemoryPolicyMode? {
        switch memoryPolicy {
        case "default": return MemoryPolicyMode.none
        case "preferred": return .preferred
        case "bind": return .bind
        case "interleave": return .interleave
        default: return nil
        }
    }

    /// True when this is what `requested` asked for: the same CPUs and the same policy on the same nodes.
    public func matches(cpus requestedCPUs: CPUSet, memory requested: MemoryPlacement) -> Bool {
        guard cpus == requestedCPUs, memoryMode == requested.mode else { return false }
        return requested.mode == MemoryPolicyMode.none || memoryNodes == CPUSet(requested.nodes.map(\.rawValue))
    }

    public var description: String {
        let nodes = memoryNodes.isEmpty ? "" : ":\(memoryNodes)"
        return "CPUs \(cpus), memory \(memoryPolicy)\(nodes)"
    }
}

/// Why a placement could not be read back.
public enum PlacementReadError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The file could not be read (ENOENT: the process is gone; EACCES: not ours to read).
    case unreadable(SysfsRoot.ReadError)
    /// The file was read but did not hold what it should.
    case malformed(path: String, reason: String)

    public var description: String {
        switch self {
        case .unreadable(let e): return e.description
        case .malformed(let path, let reason): return "\(path): \(reason)"
        }
    }
}

/// Reads a process's applied placement through a `SysfsRoot`, so captured trees test it too.
///
/// The affinity is `Cpus_allowed_list` of `proc/<pid>/status`. The memory policy is the policy of
/// the first mapping in `proc/<pid>/numa_maps`: a mapping without a policy of its own shows the
/// task's, and right after execve no mapping has one. `Mems_allowed_list` is the cpuset's, not the
/// policy, and is reported apart.
public struct PlacementReader: Sendable {
    public let root: SysfsRoot

    public init(root: SysfsRoot = SysfsRoot("/")) {
        self.root = root
    }

    public func read(pid: pid_t) throws(PlacementReadError) -> AppliedPlacement {
        let statusPath = "proc/\(pid)/status"
        let status: String
        do { status = try root.read(statusPath, limit: 16 * 1024) } catch { throw .unreadable(error) }
        guard let cpuText = SysfsParsers.statusField("Cpus_allowed_list", in: status) else {
            throw .malformed(path: statusPath, reason: "no Cpus_allowed_list")
        }
        let cpus: CPUSet
        do { cpus = try CPUSet(cpulist: cpuText) } catch {
            throw .malformed(path: statusPath, reason: "Cpus_allowed_list: \(error)")
        }
        let mems = SysfsParsers.statusField("Mems_allowed_list", in: status).flatMap { try? CPUSet(cpulist: $0) }

        // The first line is all we need; numa_maps of a large process runs to megabytes.
        let mapsPath = "proc/\(pid)/numa_maps"
        let maps: String
        do { maps = try root.readFirstLine(mapsPath, limit: 4096) } catch { throw .unreadable(error) }
        guard let policy = SysfsParsers.numaMapsPolicy(maps) else {
            throw .malformed(path: mapsPath, reason: "no mapping (the process has exited)")
        }
        return AppliedPlacement(cpus: cpus, memoryPolicy: policy.mode, memoryNodes: policy.nodes, cpusetMems: mems)
    }
}
