import CNumaPlaceShim
import Glibc
import NumaPlaceCore
import NumaPlaceSyscall

/// A thread's memory policy as get_mempolicy(2) reports it.
public struct ThreadMemoryPolicy: Hashable, Sendable, CustomStringConvertible {
    /// The MPOL_* mode with its flags stripped.
    public var kernelMode: Int32
    public var nodes: CPUSet

    public var name: String {
        switch kernelMode {
        case Int32(NP_MPOL_DEFAULT): return "default"
        case Int32(NP_MPOL_PREFERRED): return "preferred"
        case Int32(NP_MPOL_BIND): return "bind"
        case Int32(NP_MPOL_INTERLEAVE): return "interleave"
        case Int32(NP_MPOL_LOCAL): return "local"
        default: return "mode \(kernelMode)"
        }
    }

    public var description: String { nodes.isEmpty ? name : "\(name):\(nodes)" }
}

/// The calling thread's CPU affinity and memory policy. Both are per thread (sched_setaffinity(2),
/// set_mempolicy(2)) and both are inherited through clone and execve, which is why the spawner resets
/// them in the child. Tests use these to reproduce a pinned daemon; a real daemon never pins itself.
public enum Affinity {
    /// Bytes of the first mask tried: 1024 CPUs; doubled while the kernel's mask is larger.
    static let initialMaskBytes = 128

    /// The affinity of the calling thread (`pid` 0) or of a process's main thread.
    /// Wraps `np_sched_getaffinity` (sched_getaffinity(2)).
    public static func cpus(of pid: pid_t = 0) throws(Errno) -> CPUSet {
        var bytes = initialMaskBytes
        while true {
            var mask = [UInt](repeating: 0, count: bytes / MemoryLayout<UInt>.size)
            do {
                let got = try Syscall.retrying { np_sched_getaffinity(pid, bytes, &mask) }
                let words = mask.prefix(Int(got) / MemoryLayout<UInt>.size).map { UInt64($0) }
                return CPUSet(words: words)
            } catch where error == .invalidArgument && bytes < CPUSet.limit / 8 {
                bytes *= 2 // EINVAL: our mask is smaller than the kernel's nr_cpu_ids
            }
        }
    }

    /// Pins the calling thread to `cpus`. Wraps `np_sched_setaffinity` (sched_setaffinity(2)).
    public static func pinCurrentThread(to cpus: CPUSet) throws(Errno) {
        let mask = Spawner.kernelMask(cpus)
        _ = try Syscall.retrying { np_sched_setaffinity(0, mask.count * MemoryLayout<UInt>.size, mask) }
    }

    /// The calling thread's memory policy. Wraps `np_get_mempolicy` (get_mempolicy(2), flags 0).
    public static func memoryPolicyOfCurrentThread() throws(Errno) -> ThreadMemoryPolicy {
        var mode: Int32 = 0
        var mask = [UInt](repeating: 0, count: NUMANodeID.limit / UInt.bitWidth)
        let maxnode = UInt(NUMANodeID.limit)
        _ = try Syscall.retrying { np_get_mempolicy(&mode, &mask, maxnode, nil, 0) }
        // MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES sit in the high bits of the mode.
        let plain = mode & 0xffff
        let nodes = plain == Int32(NP_MPOL_DEFAULT) ? CPUSet() : CPUSet(words: mask.map { UInt64($0) })
        return ThreadMemoryPolicy(kernelMode: plain, nodes: nodes)
    }

    /// Sets the calling thread's memory policy (`.none` resets it to MPOL_DEFAULT).
    /// Wraps `np_set_mempolicy` (set_mempolicy(2)).
    public static func setMemoryPolicyOfCurrentThread(_ mode: MemoryPolicyMode, nodes: [NUMANodeID]) throws(Errno) {
        if mode == .none {
            _ = try Syscall.retrying { np_set_mempolicy(Int32(NP_MPOL_DEFAULT), nil, 0) }
            return
        }
        let mask = Spawner.kernelMask(CPUSet(nodes.map(\.rawValue)))
        let maxnode = UInt(mask.count * UInt.bitWidth + 1)
        _ = try Syscall.retrying { np_set_mempolicy(Spawner.kernelMode(mode), mask, maxnode) }
    }
}
