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

        var candidates: [(base: String, path: String, cpus: [String], mems: [String], source: String)] = []
        if let v1 = lines.first(where: { $0.hierarchy != 0 && $0.controllers.contains("cpuset") }) {
            candidates.append(("sys/fs/cgroup/cpuset", v1.path, ["cpuset.effective_cpus", "cpuset.cpus"],
                               ["cpuset.effective_mems", "cpuset.mems"], "cgroup1:\(v1.path)"))
        }
        if let v2 = lines.first(where: { $0.hierarchy == 0 && $0.controllers.isEmpty }) {
            for base in ["sys/fs/cgroup", "sys/fs/cgroup/unified"] {
                candidates.append((base, v2.path, ["cpuset.cpus.effective"], ["cpuset.mems.effective"], "cgroup2:\(v2.path)"))
            }
        }
        for c in candidates {
            // A cgroup v2 group whose parent does not enable the cpuset controller has no cpuset files; it
            // runs on its nearest ancestor's effective set (the root group always has the files), so walk
            // up until they are there.
            var components = c.path.split(separator: "/").map(String.init)
            var found: (dir: String, file: String, text: String)? = nil
            while found == nil {
                let dir = ([c.base] + components).joined(separator: "/")
                for file in c.cpus {
                    if let text = try? root.read("\(dir)/\(file)", limit: 65536) { found = (dir, file, text); break }
                }
                if components.isEmpty { break }
                components.removeLast()
            }
            guard let found else { continue }
            let cpus: CPUSet
            do { cpus = try CPUSet(cpulist: found.text) } catch {
                warnings.append(ScanWarning(.forParseError(error), path: "\(found.dir)/\(found.file)", "\(error)"))
                continue
            }
            var mems = fallback.mems
            for file in c.mems {
                guard let memText = try? root.read("\(found.dir)/\(file)", limit: 65536) else { continue }
                do {
                    let m = try CPUSet(cpulist: memText)
                    if !m.isEmpty { mems = m }
                } catch {
                    warnings.append(ScanWarning(.forParseError(error), path: "\(found.dir)/\(file)", "\(error)"))
                }
                break
            }
            let effective = online.isEmpty ? cpus : cpus.intersection(online)
            if effective.isEmpty {
                warnings.append(ScanWarning(.conflict, path: found.dir, "cgroup allows no online CPU; using the online set"))
                continue
            }
            return AllowedSet(cpus: effective, mems: mems, source: c.source)
        }
        return fallback
    }
}
