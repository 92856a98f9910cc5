extension Topology {
    /// The physical cores in hwloc's logical order: `Core L#0`, `L#1`, … of `lstopo -l`.
    ///
    /// Slurm's `gres.conf` `Cores=` takes these indices, not CPU numbers and not the kernel's `core_id`
    /// ("core 0 is the first core on the first socket", matching `Core L#` of `lstopo -l`). hwloc numbers
    /// cores by walking its tree depth first, children ordered by their first CPU: packages, then the
    /// group it makes for a NUMA node smaller than its package (sub-NUMA clustering), then the cores.
    /// This walks the same nesting over `packages` and the nodes' CPU sets, so a machine that numbers
    /// CPUs round-robin across sockets (even CPUs on one, odd on the other) gets the indices Slurm
    /// expects. Caches and dies are not modelled: where L3 domains interleave CPU numbers inside one
    /// NUMA node, compare with `lstopo -l` (docs/cli.md).
    public var logicalCores: [CPUSet] {
        let online = onlineCPUs.isEmpty ? nodeCPUs : onlineCPUs
        // The tree's levels: packages first, then every node set that nests with what is already
        // accepted (hwloc's tree is laminar; a node that straddles packages does not become a level).
        var levels: [CPUSet] = []
        for set in packages + nodes.map({ $0.cpus.intersection(online) }) where !set.isEmpty {
            guard !levels.contains(set) else { continue }
            if levels.allSatisfy({ set.isSubset(of: $0) || $0.isSubset(of: set) || set.isDisjoint(with: $0) }) {
                levels.append(set)
            }
        }
        let keyed = cores.filter { !$0.isEmpty }.map { core -> (key: [Int], core: CPUSet) in
            // The first CPU of each enclosing level, outermost first, then the core's own.
            let enclosing = levels.filter { core.isSubset(of: $0) }.sorted { $0.count > $1.count }
            return (enclosing.map { $0.first ?? Int.max } + [core.first ?? Int.max], core)
        }
        return keyed.sorted { $0.key.lexicographicallyPrecedes($1.key) }.map(\.core)
    }

    /// The logical indices (see `logicalCores`) of the cores that hold any CPU of `cpus`, ascending.
    public func logicalCoreIndices(of cpus: CPUSet) -> CPUSet {
        CPUSet(logicalCores.enumerated().filter { !$0.element.isDisjoint(with: cpus) }.map(\.offset))
    }
}
