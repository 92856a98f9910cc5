/// What a worker should be placed on.
public enum PlacementTarget: Hashable, Sendable {
    /// The device's node (any address spelling is parsed before it gets here).
    case device(PCIAddress)
    /// Several devices (two GPUs, a GPU and its NIC): the node(s) that hold them all.
    case devices([PCIAddress])
    case node(NUMANodeID)
    /// Explicit CPUs; memory follows the nodes that own them.
    case cpus(CPUSet)
    /// No target: the whole allowed set, default memory policy.
    case anywhere
}

public struct PlacementRequest: Hashable, Sendable {
    public var target: PlacementTarget
    public var memory: MemoryPolicyMode
    /// Whole physical cores reserved for this worker alone; 0 for the shared node.
    public var exclusiveCores: Int
    public var admission: Admission
    /// Aim the memory policy at the device's own memory node (`Device.memoryNode`) instead of the
    /// memory of its CPUs' nodes. Only with a device target.
    public var deviceMemory: Bool

    public init(target: PlacementTarget, memory: MemoryPolicyMode = .preferred, exclusiveCores: Int = 0,
                admission: Admission = .strict, deviceMemory: Bool = false) {
        self.target = target
        self.memory = memory
        self.exclusiveCores = exclusiveCores
        self.admission = admission
        self.deviceMemory = deviceMemory
    }
}

/// A memory policy with its nodes, as set_mempolicy(2) will receive it.
public struct MemoryPlacement: Hashable, Sendable {
    public var mode: MemoryPolicyMode
    /// Empty for `.none`; one node for `.preferred`.
    public var nodes: [NUMANodeID]

    public init(mode: MemoryPolicyMode, nodes: [NUMANodeID]) {
        self.mode = nodes.isEmpty ? .none : mode
        self.nodes = mode == .none ? [] : nodes
    }

    public static let none = MemoryPlacement(mode: .none, nodes: [])
}

/// The decided placement of one worker.
public struct PlacementDecision: Hashable, Sendable {
    public var cpus: CPUSet
    public var memory: MemoryPlacement
    /// Sibling groups reserved for this worker (empty unless exclusive cores were asked for).
    public var exclusiveCores: [CPUSet]
    /// The node named to the worker in `NUMAPLACE_NODE`.
    public var node: NUMANodeID?
    /// The (first) device, named to the worker in `NUMAPLACE_DEVICE`.
    public var device: PCIAddress?
    /// Every device of the target, in the order asked (`NUMAPLACE_DEVICES`).
    public var devices: [PCIAddress] = []
    /// What best-effort admission had to weaken, in words.
    public var degraded: [String]
}

/// Why a placement cannot be met. Each case maps to a Varlink error.
public enum PlacementError: Error, Hashable, Sendable, CustomStringConvertible {
    case noSuchDevice(PCIAddress)
    case noSuchNode(NUMANodeID)
    case impossible(String)
    case invalid(parameter: String, reason: String)

    public var description: String {
        switch self {
        case .noSuchDevice(let a): return "no managed device \(a)"
        case .noSuchNode(let n): return "no NUMA node \(n)"
        case .impossible(let why): return why
        case .invalid(let p, let why): return "\(p): \(why)"
        }
    }
}

/// Decides which CPUs and which memory policy a worker gets. Pure: no kernel, no clock.
///
/// Inputs: the scanned inventory, the allowed set (the saved original, narrowed by `WorkerCPUs=`), and
/// the CPUs other exclusive workers hold. Exclusive cores are whole SMT sibling groups on the
/// target's CPUs, lowest first, never overlapping a reservation. Shared workers avoid reserved CPUs.
public enum PlacementPolicy {
    /// Bound on `exclusiveCores` so a request cannot make us iterate forever.
    public static let maxExclusiveCores = 4096

    public static func decide(_ request: PlacementRequest, inventory: Inventory, allowed: AllowedSet,
                              reserved: CPUSet) throws(PlacementError) -> PlacementDecision {
        let topology = inventory.topology
        var degraded: [String] = []
        let strict = request.admission == .strict
        guard request.exclusiveCores >= 0, request.exclusiveCores <= maxExclusiveCores else {
            throw .invalid(parameter: "exclusiveCores", reason: "must be between 0 and \(maxExclusiveCores)")
        }

        // 1. The target's CPUs and memory nodes, before the allowed set is applied.
        var targetCPUs: CPUSet
        var memNodes: [NUMANodeID]
        var node: NUMANodeID? = nil
        var device: PCIAddress? = nil
        var label: String
        switch request.target {
        case .device(let address):
            guard let d = inventory.device(address) else { throw .noSuchDevice(address) }
            device = address
            label = "device \(address)"
            if case .unknown = d.locality {
                if strict {
                    throw .impossible("the locality of device \(address) is unknown (numa_node -1 and no usable local_cpulist); set a locality override or use best-effort admission")
                }
                degraded.append("locality of \(address) unknown: placed on the whole allowed set, default memory policy")
                targetCPUs = allowed.cpus
                memNodes = []
            } else {
                targetCPUs = d.cpus
                memNodes = d.placementNodes(in: topology)
                node = d.numaNode
            }
            if request.deviceMemory {
                if let own = d.memoryNode {
                    memNodes = [own]
                } else if strict {
                    throw .impossible("device \(address) has no memory node of its own (no CPU-less node and no driver numa_status names one)")
                } else {
                    degraded.append("device \(address) has no memory node of its own: memory from its CPUs' nodes")
                }
            }
        case .devices(let addresses):
            guard !addresses.isEmpty, addresses.count <= 64 else {
                throw .invalid(parameter: "devices", reason: "give 1 to 64 devices")
            }
            let found = try addresses.map { a throws(PlacementError) -> Device in
                guard let d = inventory.device(a) else { throw .noSuchDevice(a) }
                return d
            }
            label = "devices \(addresses.map(\.description).joined(separator: ", "))"
            targetCPUs = CPUSet()
            memNodes = []
            var places: [[NUMANodeID]] = []
            for d in found {
                if case .unknown = d.locality {
                    if strict {
                        throw .impossible("the locality of device \(d.address) is unknown; set a locality override or use best-effort admission")
                    }
                    degraded.append("locality of \(d.address) unknown: it does not narrow the placement")
                    continue
                }
                targetCPUs.formUnion(d.cpus)
                let own = request.deviceMemory ? d.memoryNode.map { [$0] } : nil
                for m in own ?? d.placementNodes(in: topology) where !memNodes.contains(m) { memNodes.append(m) }
                let p = d.cpuNodes(in: topology)
                if !places.contains(p) { places.append(p) }
            }
            if places.count > 1 {
                let on = zip(found, found.map { $0.numaNode.map(String.init(describing:)) ?? "?" })
                    .map { "\($0.0.address) on node \($0.1)" }.joined(separator: ", ")
                if strict {
                    throw .impossible("\(on): no one node holds them all; best-effort admission spreads the worker over their nodes")
                }
                degraded.append("\(on): the worker spans their nodes")
            }
            if targetCPUs.isEmpty { targetCPUs = allowed.cpus }
            if places.count == 1, let only = found.compactMap(\.numaNode).first,
               found.allSatisfy({ $0.numaNode == only || $0.locality == .unknown }) {
                node = only
            }
            device = addresses[0]
        case .node(let id):
            guard let target = topology.node(id) else { throw .noSuchNode(id) }
            node = id
            label = "node \(id)"
            let cpuNodes = topology.nearestCPUNodes(to: id)
            targetCPUs = topology.cpus(of: cpuNodes)
            memNodes = target.hasMemory ? [id] : topology.memoryNodes(for: cpuNodes)
        case .cpus(let set):
            guard !set.isEmpty else { throw .invalid(parameter: "cpus", reason: "empty CPU set") }
            label = "CPUs \(set)"
            let offline = set.subtracting(topology.onlineCPUs)
            if !offline.isEmpty && !topology.onlineCPUs.isEmpty {
                if strict { throw .impossible("CPUs \(offline) are not online") }
                degraded.append("CPUs \(offline) are not online")
            }
            targetCPUs = set
            memNodes = topology.memoryNodes(for: topology.nodesIntersecting(set))
            node = topology.nodeHolding(set)
        case .anywhere:
            label = "the allowed set"
            targetCPUs = allowed.cpus
            memNodes = request.memory == .preferred ? [] : allowed.mems.elements.compactMap(NUMANodeID.init(rawValue:))
        }

        // 2. Intersect with the allowed set (cgroup cpuset, WorkerCPUs=).
        var usable = targetCPUs.intersection(allowed.cpus)
        if usable.isEmpty {
            let why = "\(label) (CPUs \(targetCPUs)) has no CPU in the allowed set \(allowed.cpus)"
            if strict { throw .impossible(why) }
            degraded.append(why + ": placed on the allowed set")
            usable = allowed.cpus
        } else if usable != targetCPUs, case .cpus = request.target {
            let why = "CPUs \(targetCPUs.subtracting(allowed.cpus)) are outside the allowed set \(allowed.cpus)"
            if strict { throw .impossible(why) }
            degraded.append(why)
        }

        // 3. Exclusive cores, or the shared part of the target.
        var cpus: CPUSet
        var exclusive: [CPUSet] = []
        if request.exclusiveCores > 0 {
            let free = topology.cores.filter { $0.isSubset(of: usable) && $0.isDisjoint(with: reserved) && !$0.isEmpty }
            if free.count >= request.exclusiveCores {
                exclusive = Array(free.prefix(request.exclusiveCores))
            } else if strict {
                throw .impossible("\(label) has \(free.count) free whole cores, \(request.exclusiveCores) requested")
            } else if free.isEmpty {
                degraded.append("no free whole core on \(label): sharing its CPUs")
            } else {
                exclusive = free
                degraded.append("\(free.count) of \(request.exclusiveCores) exclusive cores granted on \(label)")
            }
            cpus = exclusive.isEmpty ? usable.subtracting(reserved) : exclusive.reduce(CPUSet()) { $0.union($1) }
            if cpus.isEmpty { cpus = usable }
        } else {
            cpus = usable.subtracting(reserved)
            if cpus.isEmpty {
                let why = "every CPU of \(label) is held by exclusive workers"
                if strict { throw .impossible(why) }
                degraded.append(why + ": sharing them")
                cpus = usable
            }
        }

        // 4. Memory: the placement nodes the cgroup allows.
        var memory = MemoryPlacement.none
        if request.memory != .none {
            let permitted = memNodes.filter { allowed.mems.isEmpty || allowed.mems.contains($0.rawValue) }
            if !permitted.isEmpty {
                memory = MemoryPlacement(mode: request.memory,
                                         nodes: request.memory == .preferred ? [permitted[0]] : permitted)
            } else if !memNodes.isEmpty || request.target != .anywhere {
                let why = memNodes.isEmpty
                    ? "\(label) has no memory node for a \(request.memory.rawValue) policy"
                    : "memory nodes \(memNodes.map(\.description).joined(separator: ",")) are outside the allowed nodes \(allowed.mems)"
                if strict && request.target != .anywhere && !memNodes.isEmpty { throw .impossible(why) }
                if !degraded.contains(where: { $0.hasPrefix("locality of") }) { degraded.append(why + ": default policy") }
            }
        }
        var devices: [PCIAddress] = []
        switch request.target {
        case .device(let a): devices = [a]
        case .devices(let list): devices = list
        default: break
        }
        return PlacementDecision(cpus: cpus, memory: memory, exclusiveCores: exclusive, node: node, device: device,
                                 devices: devices, degraded: degraded)
    }
}
