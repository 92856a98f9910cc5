/// The CPUs and memory nodes the daemon's cgroup allows: DESIGN.md's "saved original".
///
/// Read once at start, before anything else, from `cpuset.cpus.effective` / `cpuset.mems.effective`
/// (cgroup v2) or `cpuset.effective_cpus` / `cpuset.effective_mems` (v1). This — not the daemon's own
/// affinity, which `numactl`, `taskset` or `CPUAffinity=` may have narrowed — is the widest set a
/// worker may be given.
public struct AllowedSet: Hashable, Sendable {
    public var cpus: CPUSet
    public var mems: CPUSet
    /// Where the sets came from (`cgroup2:/system.slice/numaplaced.service`, `online`).
    public var source: String

    public init(cpus: CPUSet, mems: CPUSet, source: String) {
        self.cpus = cpus
        self.mems = mems
        self.source = source
    }

    /// Reads the allowed sets of the process whose `proc/<pid>/cgroup` is given (`self` by default),
    /// falling back to the online CPUs and the nodes with memory when no cpuset controller is visible.
    public static func read(root: SysfsRoot, topology: Topology, pid: String = "self",
                            warnings: inout [ScanWarning]) -> AllowedSet {
        let online = topology.onlineCPUs
        let memNodes = CPUSet(topology.nodes.filter(\.hasMemory).map(\.id.rawValue))
        let fallback = AllowedSet(cpus: online, mems: memNodes.isEmpty ? CPUSet(topology.nodes.map(\.id.rawValue)) : memNodes,
                                  source: "online")
        guard let text = try? root.read("proc/\(pid)/cgroup", limit: 65536) else { return fallback }
        let lines = SysfsParsers.cgroupLines(text)

        var candidates: [(dir: String, cpus: [String], mems: [String], source: String)] = []
        if let v1 = lines.first(where: { $0.hierarchy != 0 && $0.controllers.contains("cpuset") }) {
            let dir = "sys/fs/cgroup/cpuset" + (v1.path == "/" ? "" : v1.path)
            candidates.append((dir, ["cpuset.effective_cpus", "cpuset.cpus"], ["cpuset.effective_mems", "cpuset.mems"],
                               "cgroup1:\(v1.path)"))
        }
        if let v2 = lines.first(where: { $0.hierarchy == 0 && $0.controllers.isEmpty }) {
            for base in ["sys/fs/cgroup", "sys/fs/cgroup/unified"] {
                candidates.append((base + (v2.path == "/" ? "" : v2.path), ["cpuset.cpus.effective"],
                                   ["cpuset.mems.effective"], "cgroup2:\(v2.path)"))
            }
        }
        for c in candidates {
            guard let cpuText = c.cpus.lazy.compactMap({ try? root.read("\(c.dir)/\($0)", limit: 65536) }).first else {
                continue
            }
            let cpus: CPUSet
            do { cpus = try CPUSet(cpulist: cpuText) } catch {
                warnings.append(ScanWarning(.malformed, path: "\(c.dir)/\(c.cpus[0])", "\(error)"))
                continue
            }
            var mems = fallback.mems
            if let memText = c.mems.lazy.compactMap({ try? root.read("\(c.dir)/\($0)", limit: 65536) }).first,
               let m = try? CPUSet(cpulist: memText), !m.isEmpty {
                mems = m
            }
            let effective = online.isEmpty ? cpus : cpus.intersection(online)
            if effective.isEmpty {
                warnings.append(ScanWarning(.conflict, path: "\(c.dir)", "cgroup allows no online CPU; using the online set"))
                continue
            }
            return AllowedSet(cpus: effective, mems: mems, source: c.source)
        }
        return fallback
    }
}
