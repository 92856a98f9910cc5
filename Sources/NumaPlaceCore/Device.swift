/// Where a device sits, resolved once per scan and per event by the rule of DESIGN.md.
public enum Locality: Hashable, Sendable {
    /// `numa_node` named an existing node. `cpuNodes` are the nodes whose CPUs the device's
    /// workers get: the node itself, or the nearest CPU-bearing nodes when it has no CPUs.
    case node(NUMANodeID, cpuNodes: [NUMANodeID])
    /// `numa_node` was -1 or missing and `local_cpulist` named a proper subset of the CPUs;
    /// `node` is the one node holding all of them, if there is one.
    case cpus(CPUSet, node: NUMANodeID?)
    /// Rule 4: nothing usable in the device's files, but the machine has a single CPU-bearing node
    /// (a VM or a one-socket box without a proximity table): there is nowhere else for it to be.
    case onlyNode(NUMANodeID)
    /// Nothing usable: -1 and an empty, missing or all-CPU `local_cpulist`, on a machine with several
    /// CPU-bearing nodes.
    case unknown

    public var name: String {
        switch self {
        case .node: return "node"
        case .cpus: return "cpus"
        case .onlyNode: return "only-node"
        case .unknown: return "unknown"
        }
    }
}

/// A PCI function numaplaced manages, with its locality.
public struct Device: Hashable, Sendable {
    public var address: PCIAddress
    /// The 24-bit class code (`0x030200`).
    public var classCode: UInt32
    public var vendor: UInt16
    public var deviceID: UInt16
    public var kind: DeviceKind
    public var driver: String?
    /// `numa_node` as read; nil when the file was missing, unreadable or -1.
    public var firmwareNode: NUMANodeID?
    public var locality: Locality
    /// The CPUs a worker for this device gets (empty when the locality is unknown).
    public var cpus: CPUSet
    /// Bridges between the root complex and the device, root first.
    public var pciePath: [PCIAddress]
    /// Where the device's files disagreed or could not be read.
    public var warnings: [ScanWarning]
    /// The device's own memory as a NUMA node (coherent GPU memory on Grace-Hopper, Grace-Blackwell,
    /// POWER9 with NVLink): the node the NVIDIA driver names in `numa_status`, or a CPU-less node that
    /// `numa_node` names. nil when the device has none the platform exposes.
    public var memoryNode: NUMANodeID? = nil
    /// The device files an engine or a container runtime opens for it (`/dev/dri/card0`,
    /// `/dev/dri/renderD128`, `/dev/infiniband/uverbs0`, `/dev/accel/accel0`, `/dev/ve0`, `/dev/nvidia0`).
    public var deviceNodes: [String] = []
    /// The names drivers give it (`mlx5_0`, `ib0`, `ve0`, `card0`, an NVIDIA `GPU-…` UUID).
    public var names: [String] = []
    /// Of `names`, the RDMA device names (`infiniband/`: `mlx5_0`), as NCCL_IB_HCA takes them.
    public var rdmaNames: [String] = []

    /// Whether `text` is one of the device's names or device nodes (a `/dev/...` path, or its last
    /// component: `renderD128` names the device whose node is `/dev/dri/renderD128`).
    public func isNamed(_ text: String) -> Bool {
        names.contains(text) || deviceNodes.contains(text) || deviceNodes.contains { $0.hasSuffix("/" + text) }
    }

    public init(address: PCIAddress, classCode: UInt32, vendor: UInt16, deviceID: UInt16, kind: DeviceKind,
                driver: String?, firmwareNode: NUMANodeID?, locality: Locality, cpus: CPUSet,
                pciePath: [PCIAddress], warnings: [ScanWarning]) {
        self.address = address
        self.classCode = classCode
        self.vendor = vendor
        self.deviceID = deviceID
        self.kind = kind
        self.driver = driver
        self.firmwareNode = firmwareNode
        self.locality = locality
        self.cpus = cpus
        self.pciePath = pciePath
        self.warnings = warnings
    }

    /// The node a client should be told: the node of `numa_node`, or the one node holding the CPUs.
    public var numaNode: NUMANodeID? {
        switch locality {
        case .node(let id, _): return id
        case .cpus(_, let node): return node
        case .onlyNode(let id): return id
        case .unknown: return nil
        }
    }

    /// The nodes whose CPUs a worker uses.
    public func cpuNodes(in topology: Topology) -> [NUMANodeID] {
        switch locality {
        case .node(_, let cpuNodes): return cpuNodes
        case .cpus(let set, let node): return node.map { [$0] } ?? topology.nodesIntersecting(set)
        case .onlyNode(let id): return [id]
        case .unknown: return []
        }
    }

    /// The nodes a worker's memory policy targets.
    public func placementNodes(in topology: Topology) -> [NUMANodeID] {
        topology.memoryNodes(for: cpuNodes(in: topology))
    }

    /// The id PCI config space reads for a function that is not there; used for a `vendor` or
    /// `device` file that could not be read (no vendor is ever assigned it).
    public static let unknownID: UInt16 = 0xffff

    public var classHex: String { "0x" + hex(UInt64(classCode), width: 6) }
    public var vendorHex: String { "0x" + hex(UInt64(vendor), width: 4) }
    public var deviceHex: String { "0x" + hex(UInt64(deviceID), width: 4) }
    public var vendorName: String? { DeviceClassifier.vendorNames[vendor] }
}
