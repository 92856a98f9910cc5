/// One NUMA node: its CPUs (possibly none), its memory (possibly none) and its SLIT row.
public struct NUMANode: Hashable, Sendable {
    public let id: NUMANodeID
    /// Online CPUs of the node; empty for a memory-only node (GPU HBM, CXL).
    public var cpus: CPUSet
    /// MemTotal; 0 for a CPU-only node.
    public var memoryBytes: UInt64
    /// Distance to every other node, keyed by node id (never by index: ids are sparse).
    public var distances: [NUMANodeID: Int]

    public init(id: NUMANodeID, cpus: CPUSet, memoryBytes: UInt64, distances: [NUMANodeID: Int]) {
        self.id = id
        self.cpus = cpus
        self.memoryBytes = memoryBytes
        self.distances = distances
    }

    public var hasCPUs: Bool { !cpus.isEmpty }
    public var hasMemory: Bool { memoryBytes > 0 }
}

/// The machine's NUMA layout: nodes sorted by id, CPU ranges, and SMT sibling groups.
public struct Topology: Hashable, Sendable {
    public private(set) var nodes: [NUMANode]
    public var onlineCPUs: CPUSet
    public var possibleCPUs: CPUSet
    /// Physical cores as SMT sibling groups (`thread_siblings_list`), sorted by first CPU.
    /// A CPU whose topology could not be read forms a group of its own.
    public var cores: [CPUSet]
    /// Online CPUs of each processor package (socket, `physical_package_id`), sorted by first CPU;
    /// empty when sysfs does not say for every online CPU. Package numbering may interleave with node
    /// numbering (even CPUs on one socket, odd on the other), so this is not derivable from `nodes`.
    public var packages: [CPUSet]

    public init(nodes: [NUMANode], onlineCPUs: CPUSet, possibleCPUs: CPUSet, cores: [CPUSet],
                packages: [CPUSet] = []) {
        self.nodes = nodes.sorted { $0.id < $1.id }
        self.onlineCPUs = onlineCPUs
        self.possibleCPUs = possibleCPUs
        self.cores = cores
        self.packages = packages.sorted { ($0.first ?? Int.max) < ($1.first ?? Int.max) }
    }

    public func node(_ id: NUMANodeID) -> NUMANode? { nodes.first { $0.id == id } }

    /// Every CPU that belongs to a node.
    public var nodeCPUs: CPUSet { nodes.reduce(CPUSet()) { $0.union($1.cpus) } }

    /// Distance from `a` to `b`; falls back to 10 for the node itself and 20 for others when the SLIT
    /// row is missing (the kernel's own defaults, LOCAL_DISTANCE and REMOTE_DISTANCE).
    public func distance(_ a: NUMANodeID, _ b: NUMANodeID) -> Int {
        if let d = node(a)?.distances[b] { return d }
        return a == b ? 10 : 20
    }

    /// The CPU-bearing nodes nearest to `id` (all of them at the minimal distance).
    /// For a node with CPUs that is the node itself.
    public func nearestNodes(to id: NUMANodeID, where predicate: (NUMANode) -> Bool) -> [NUMANodeID] {
        let candidates = nodes.filter(predicate)
        guard let best = candidates.map({ distance(id, $0.id) }).min() else { return [] }
        return candidates.filter { distance(id, $0.id) == best }.map(\.id)
    }

    public func nearestCPUNodes(to id: NUMANodeID) -> [NUMANodeID] {
        if let n = node(id), n.hasCPUs { return [id] }
        return nearestNodes(to: id) { $0.hasCPUs }
    }

    /// The nodes a worker's memory should come from when it runs on `cpuNodes`: those nodes when they
    /// have memory, otherwise the nearest memory-bearing nodes (a CPU-only node in SNC/NPS modes).
    public func memoryNodes(for cpuNodes: [NUMANodeID]) -> [NUMANodeID] {
        var out: [NUMANodeID] = []
        for id in cpuNodes {
            let picks = (node(id)?.hasMemory ?? false) ? [id] : nearestNodes(to: id) { $0.hasMemory }
            for p in picks where !out.contains(p) { out.append(p) }
        }
        return out.sorted()
    }

    /// The single node holding every CPU of `cpus`, if there is one.
    public func nodeHolding(_ cpus: CPUSet) -> NUMANodeID? {
        guard !cpus.isEmpty else { return nil }
        return nodes.first { cpus.isSubset(of: $0.cpus) }?.id
    }

    /// The nodes that own at least one CPU of `cpus`.
    public func nodesIntersecting(_ cpus: CPUSet) -> [NUMANodeID] {
        nodes.filter { !$0.cpus.isDisjoint(with: cpus) }.map(\.id)
    }

    /// The union of the CPUs of `ids`.
    public func cpus(of ids: [NUMANodeID]) -> CPUSet {
        ids.reduce(CPUSet()) { $0.union(node($1)?.cpus ?? CPUSet()) }
    }
}
