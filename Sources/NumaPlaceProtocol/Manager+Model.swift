import NumaPlaceCore

// The wire form of the Core model. The wire types are generated from the .varlink file; what maps the
// model onto them is written here, by hand, because only the model knows it.

extension Manager.Node {
    /// `order` is the node order of the reply; distances follow it.
    public init(_ node: NUMANode, order: [NUMANodeID], topology: Topology) {
        self.init(id: node.id.rawValue, cpus: node.cpus.cpulist, memoryBytes: node.memoryBytes,
                  distances: order.map { node.distances[$0] ?? topology.distance(node.id, $0) })
    }
}

extension Manager.Device {
    /// The wire form of `d`, with what only the whole inventory says (its nearest NICs).
    public init(_ d: NumaPlaceCore.Device, in inventory: Inventory) {
        self.init(d, topology: inventory.topology)
        nearestNICs = inventory.nearestNICs(to: d.address).map(\.description)
    }

    public init(_ d: NumaPlaceCore.Device, topology: Topology) {
        self.init(address: d.address.description, class: d.classHex, vendor: d.vendorHex, device: d.deviceHex,
                  vendorName: d.vendorName, kind: d.kind, driver: d.driver, numaNode: d.numaNode?.rawValue,
                  cpus: d.cpus.cpulist, locality: Locality(d.locality),
                  placementNodes: d.placementNodes(in: topology).map(\.rawValue),
                  pciePath: d.pciePath.map(\.description), nearestNICs: [], memoryNode: d.memoryNode?.rawValue,
                  deviceNodes: d.deviceNodes, names: d.names, warnings: d.warnings.map(\.description))
    }
}

extension Manager.Device.Locality {
    /// Which rule resolved `locality` (its `name`).
    public init(_ locality: NumaPlaceCore.Locality) {
        switch locality {
        case .node: self = .node
        case .cpus: self = .cpus
        case .onlyNode: self = .onlyNode
        case .unknown: self = .unknown
        }
    }
}

extension Manager.Placement {
    public init(_ decision: PlacementDecision) {
        self.init(cpus: decision.cpus.cpulist, memoryPolicy: decision.memory.mode.appliedName,
                  memoryNodes: decision.memory.nodes.map(\.rawValue))
    }
}

extension Manager.GetTopologyReply {
    public init(_ inventory: Inventory, allowed: AllowedSet?) {
        let t = inventory.topology
        let order = t.nodes.map(\.id)
        self.init(nodes: t.nodes.map { Manager.Node($0, order: order, topology: t) },
                  devices: inventory.devices.map { Manager.Device($0, in: inventory) },
                  onlineCPUs: t.onlineCPUs.cpulist, possibleCPUs: t.possibleCPUs.cpulist,
                  allowedCPUs: allowed?.cpus.cpulist ?? t.onlineCPUs.cpulist, cores: t.cores.map(\.cpulist),
                  packages: t.packages.map(\.cpulist), warnings: inventory.allWarnings.map(\.description))
    }
}
