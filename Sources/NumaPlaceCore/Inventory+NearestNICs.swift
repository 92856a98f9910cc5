/// How close an RDMA NIC is to a device in the PCIe tree, nearest first: the order NCCL's topology
/// detection ranks paths in (PIX/PXB below one switch, PHB through one host bridge, then the node, then
/// the SMP interconnect by NUMA distance).
public enum PCIeProximity: Int, Comparable, Sendable, CaseIterable {
    /// Below the same PCIe switch: the paths share a bridge below the root port.
    case sameSwitch = 0
    /// Below the same root port, through no shared switch.
    case sameRootPort = 1
    /// Below the same host bridge (root complex), through different root ports.
    case sameHostBridge = 2
    /// On the same NUMA node, through different host bridges.
    case sameNode = 3
    /// Across nodes.
    case otherNode = 4

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }

    public var name: String {
        switch self {
        case .sameSwitch: return "switch"
        case .sameRootPort: return "root-port"
        case .sameHostBridge: return "host-bridge"
        case .sameNode: return "node"
        case .otherNode: return "system"
        }
    }
}

extension Inventory {
    /// How close `b` is to `a` in the PCIe tree (`Device.pciePath`, root port first).
    public func proximity(_ a: Device, _ b: Device) -> PCIeProximity {
        let shared = zip(a.pciePath, b.pciePath).prefix { $0 == $1 }.count
        if shared >= 2 { return .sameSwitch }
        if shared == 1 { return .sameRootPort }
        // Root ports of one host bridge sit on its root bus: same domain, same bus number.
        if let ra = a.pciePath.first ?? Optional(a.address), let rb = b.pciePath.first ?? Optional(b.address),
           ra.domain == rb.domain, ra.bus == rb.bus {
            return .sameHostBridge
        }
        if let na = a.numaNode, na == b.numaNode { return .sameNode }
        return .otherNode
    }

    /// The RDMA NICs ranked for a GPU or accelerator, nearest first: by PCIe proximity, then by NUMA
    /// distance between their nodes (unknown nodes last), then by address. Empty for a NIC or a
    /// display adapter, and where the machine has no NIC.
    public func nearestNICs(to address: PCIAddress) -> [PCIAddress] {
        guard let device = device(address), device.kind == .gpu || device.kind == .accelerator else { return [] }
        func distance(_ nic: Device) -> Int {
            guard let a = device.numaNode, let b = nic.numaNode else { return Int.max }
            return topology.distance(a, b)
        }
        return devices.filter { $0.kind == .nic }
            .map { (nic: $0, proximity: proximity(device, $0), distance: distance($0)) }
            .sorted { ($0.proximity.rawValue, $0.distance, $0.nic.address) < ($1.proximity.rawValue, $1.distance, $1.nic.address) }
            .map(\.nic.address)
    }
}
