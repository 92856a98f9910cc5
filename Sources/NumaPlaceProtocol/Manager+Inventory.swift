import NumaPlaceCore

/// A wire value that does not map back onto the model (a reply from a broken or hostile peer).
public struct WireModelError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Where in the reply: `devices[3].address`.
    public let field: String
    public let reason: String

    public init(_ field: String, _ reason: String) {
        self.field = field
        self.reason = reason
    }

    public var description: String { "\(field): \(reason)" }
}

extension Manager.GetTopologyReply {
    /// Rebuilds the Core model from a GetTopology reply, so that code written over `Inventory` (the
    /// cluster exports) runs the same on the daemon's live model and on an offline scan.
    ///
    /// What the wire does not carry is rebuilt by the same rules the scanner used: a device on a node
    /// gets the CPUs of `Topology.nearestCPUNodes`. Not carried at all: `numa_node` as read when the
    /// locality came from `local_cpulist` (it is reported as nil) and the allowed set.
    public func inventory() throws(WireModelError) -> Inventory {
        func cpus(_ text: String, _ field: String) throws(WireModelError) -> CPUSet {
            do { return try CPUSet(cpulist: text) } catch { throw WireModelError(field, error.description) }
        }
        func node(_ value: Int, _ field: String) throws(WireModelError) -> NUMANodeID {
            guard let id = NUMANodeID(rawValue: value) else { throw WireModelError(field, "\(value) is not a node id") }
            return id
        }
        var order: [NUMANodeID] = []
        for (i, n) in nodes.enumerated() {
            let id = try node(n.id, "nodes[\(i)].id")
            guard !order.contains(id) else { throw WireModelError("nodes[\(i)].id", "node \(id) listed twice") }
            order.append(id)
        }
        var model: [NUMANode] = []
        for (i, n) in nodes.enumerated() {
            guard n.distances.count == order.count else {
                throw WireModelError("nodes[\(i)].distances", "\(n.distances.count) distances for \(order.count) nodes")
            }
            model.append(NUMANode(id: order[i], cpus: try cpus(n.cpus, "nodes[\(i)].cpus"), memoryBytes: n.memoryBytes,
                                  distances: Dictionary(uniqueKeysWithValues: zip(order, n.distances))))
        }
        var coreSets: [CPUSet] = []
        for (i, c) in cores.enumerated() { coreSets.append(try cpus(c, "cores[\(i)]")) }
        var packageSets: [CPUSet] = []
        for (i, p) in packages.enumerated() { packageSets.append(try cpus(p, "packages[\(i)]")) }
        let topology = Topology(nodes: model, onlineCPUs: try cpus(onlineCPUs, "onlineCPUs"),
                                possibleCPUs: try cpus(possibleCPUs, "possibleCPUs"), cores: coreSets,
                                packages: packageSets)

        var devices: [Device] = []
        var deviceWarnings: [String] = []
        for (i, d) in self.devices.enumerated() {
            devices.append(try d.model(in: topology, field: "devices[\(i)]"))
            deviceWarnings += d.warnings
        }
        // `warnings` is every warning, the machine's first; the devices' own are on the devices.
        var machine = warnings
        for w in deviceWarnings {
            if let i = machine.lastIndex(of: w) { machine.remove(at: i) }
        }
        return Inventory(topology: topology, devices: devices, warnings: machine.map(ScanWarning.init(wireText:)))
    }
}

extension Manager.Device {
    /// The Core device this wire device describes, resolved against `topology`.
    public func model(in topology: Topology, field: String = "device") throws(WireModelError) -> NumaPlaceCore.Device {
        let parsedAddress: PCIAddress
        do { parsedAddress = try PCIAddress(parsing: address) } catch {
            throw WireModelError("\(field).address", error.description)
        }
        func id(_ text: String, bits: Int, _ name: String) throws(WireModelError) -> UInt32 {
            do { return try SysfsParsers.hexID(text, bits: bits) } catch {
                throw WireModelError("\(field).\(name)", error.description)
            }
        }
        let classCode = try id(`class`, bits: 24, "class")
        let vendorID = try id(vendor, bits: 16, "vendor")
        let deviceID = try id(device, bits: 16, "device")
        let set: CPUSet
        do { set = try CPUSet(cpulist: cpus) } catch { throw WireModelError("\(field).cpus", error.description) }
        var nodeID: NUMANodeID? = nil
        if let n = numaNode {
            guard let parsed = NUMANodeID(rawValue: n) else { throw WireModelError("\(field).numaNode", "\(n) is not a node id") }
            nodeID = parsed
        }
        let resolved: NumaPlaceCore.Locality
        var firmwareNode: NUMANodeID? = nil
        switch locality {
        case .node:
            guard let nodeID, topology.node(nodeID) != nil else {
                throw WireModelError("\(field).numaNode", "locality node names no node of the topology")
            }
            resolved = .node(nodeID, cpuNodes: topology.nearestCPUNodes(to: nodeID))
            firmwareNode = nodeID
        case .cpus:
            resolved = .cpus(set, node: nodeID)
        case .onlyNode:
            guard let nodeID, topology.node(nodeID) != nil else {
                throw WireModelError("\(field).numaNode", "locality only-node names no node of the topology")
            }
            resolved = .onlyNode(nodeID)
        case .unknown:
            resolved = .unknown
        }
        var path: [PCIAddress] = []
        for (i, p) in pciePath.enumerated() {
            do { path.append(try PCIAddress(parsing: p)) } catch {
                throw WireModelError("\(field).pciePath[\(i)]", error.description)
            }
        }
        var model = NumaPlaceCore.Device(address: parsedAddress, classCode: classCode, vendor: UInt16(vendorID),
                                         deviceID: UInt16(deviceID), kind: kind, driver: driver,
                                         firmwareNode: firmwareNode, locality: resolved, cpus: set, pciePath: path,
                                         warnings: warnings.map(ScanWarning.init(wireText:)))
        // What selects a device by name (`Inventory.device(named:)`: the NRI plugin's /dev paths, Slurm's
        // File=) and its own memory travel too; without them a live reply names nothing a scan names.
        model.deviceNodes = deviceNodes
        model.names = names
        if let m = memoryNode {
            guard let parsed = NUMANodeID(rawValue: m) else { throw WireModelError("\(field).memoryNode", "\(m) is not a node id") }
            model.memoryNode = parsed
        }
        return model
    }
}

extension ScanWarning {
    /// Reads back `description` (`code: path: detail`); text in another shape keeps its words as the
    /// detail of an `unreadable` warning without a path.
    init(wireText text: String) {
        // Paths hold colons (`0000:3b:00.0`) but never ": ", so split on that.
        if let first = text.firstRange(of: ": "), let code = Code(rawValue: String(text[..<first.lowerBound])),
           let second = text[first.upperBound...].firstRange(of: ": ") {
            self.init(code, path: String(text[first.upperBound..<second.lowerBound]), String(text[second.upperBound...]))
        } else {
            self.init(.unreadable, path: "", text)
        }
    }
}
