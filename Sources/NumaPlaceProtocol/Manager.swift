import NumaPlaceCore

/// The wire types of `io.numaplaced.Manager` (see `io.numaplaced.Manager.varlink`, which is served
/// verbatim through `GetInterfaceDescription`). Field names match the interface file exactly.
public enum Manager {
    public static let interface = "io.numaplaced.Manager"

    public struct Node: Codable, Hashable, Sendable {
        public var id: Int
        public var cpus: String
        public var memoryBytes: UInt64
        public var distances: [Int]

        /// `order` is the node order of the reply; distances follow it.
        public init(_ node: NUMANode, order: [NUMANodeID], topology: Topology) {
            id = node.id.rawValue
            cpus = node.cpus.cpulist
            memoryBytes = node.memoryBytes
            distances = order.map { node.distances[$0] ?? topology.distance(node.id, $0) }
        }
    }

    public struct Device: Codable, Hashable, Sendable {
        public var address: String
        public var `class`: String
        public var vendor: String
        public var device: String
        public var vendorName: String?
        public var kind: String
        public var driver: String?
        public var numaNode: Int?
        public var cpus: String
        public var locality: String
        public var placementNodes: [Int]
        public var pciePath: [String]
        /// For a GPU or accelerator, the RDMA NICs nearest first (`Inventory.nearestNICs`).
        public var nearestNICs: [String]
        /// The device's own memory as a NUMA node (`Device.memoryNode`); null when it has none.
        public var memoryNode: Int?
        /// Device files (`/dev/dri/renderD128`) and driver names (`mlx5_0`, `GPU-…`); any of them
        /// selects the device wherever the API takes an address.
        public var deviceNodes: [String]
        public var names: [String]
        public var warnings: [String]

        /// The wire form of `d`, with what only the whole inventory says (its nearest NICs).
        public init(_ d: NumaPlaceCore.Device, in inventory: Inventory) {
            self.init(d, topology: inventory.topology)
            nearestNICs = inventory.nearestNICs(to: d.address).map(\.description)
        }

        public init(_ d: NumaPlaceCore.Device, topology: Topology) {
            address = d.address.description
            `class` = d.classHex
            vendor = d.vendorHex
            device = d.deviceHex
            vendorName = d.vendorName
            kind = d.kind.rawValue
            driver = d.driver
            numaNode = d.numaNode?.rawValue
            cpus = d.cpus.cpulist
            locality = d.locality.name
            placementNodes = d.placementNodes(in: topology).map(\.rawValue)
            pciePath = d.pciePath.map(\.description)
            nearestNICs = []
            memoryNode = d.memoryNode?.rawValue
            deviceNodes = d.deviceNodes
            names = d.names
            warnings = d.warnings.map(\.description)
        }

        private enum CodingKeys: String, CodingKey {
            case address, `class`, vendor, device, vendorName, kind, driver, numaNode, cpus, locality, placementNodes,
                 pciePath, nearestNICs, memoryNode, deviceNodes, names, warnings
        }

        /// `nearestNICs` may be absent (a daemon from before it existed); everything else is required.
        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            address = try c.decode(String.self, forKey: .address)
            `class` = try c.decode(String.self, forKey: .class)
            vendor = try c.decode(String.self, forKey: .vendor)
            device = try c.decode(String.self, forKey: .device)
            vendorName = try c.decodeIfPresent(String.self, forKey: .vendorName)
            kind = try c.decode(String.self, forKey: .kind)
            driver = try c.decodeIfPresent(String.self, forKey: .driver)
            numaNode = try c.decodeIfPresent(Int.self, forKey: .numaNode)
            cpus = try c.decode(String.self, forKey: .cpus)
            locality = try c.decode(String.self, forKey: .locality)
            placementNodes = try c.decode([Int].self, forKey: .placementNodes)
            pciePath = try c.decode([String].self, forKey: .pciePath)
            nearestNICs = try c.decodeIfPresent([String].self, forKey: .nearestNICs) ?? []
            memoryNode = try c.decodeIfPresent(Int.self, forKey: .memoryNode)
            deviceNodes = try c.decodeIfPresent([String].self, forKey: .deviceNodes) ?? []
            names = try c.decodeIfPresent([String].self, forKey: .names) ?? []
            warnings = try c.decode([String].self, forKey: .warnings)
        }

        /// `numaNode` is written as an explicit null when unknown, so readers see the state, not a gap.
        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(address, forKey: .address)
            try c.encode(`class`, forKey: .class)
            try c.encode(vendor, forKey: .vendor)
            try c.encode(device, forKey: .device)
            try c.encodeIfPresent(vendorName, forKey: .vendorName)
            try c.encode(kind, forKey: .kind)
            try c.encodeIfPresent(driver, forKey: .driver)
            try c.encode(numaNode, forKey: .numaNode)
            try c.encode(cpus, forKey: .cpus)
            try c.encode(locality, forKey: .locality)
            try c.encode(placementNodes, forKey: .placementNodes)
            try c.encode(pciePath, forKey: .pciePath)
            try c.encode(nearestNICs, forKey: .nearestNICs)
            try c.encode(memoryNode, forKey: .memoryNode)
            try c.encode(deviceNodes, forKey: .deviceNodes)
            try c.encode(names, forKey: .names)
            try c.encode(warnings, forKey: .warnings)
        }
    }

    public struct Placement: Codable, Hashable, Sendable {
        public var cpus: String
        public var memoryPolicy: String
        public var memoryNodes: [Int]

        public init(cpus: String, memoryPolicy: String, memoryNodes: [Int]) {
            self.cpus = cpus
            self.memoryPolicy = memoryPolicy
            self.memoryNodes = memoryNodes
        }

        public init(_ decision: PlacementDecision) {
            cpus = decision.cpus.cpulist
            memoryPolicy = decision.memory.mode.appliedName
            memoryNodes = decision.memory.nodes.map(\.rawValue)
        }
    }

    public struct ExitStatus: Codable, Hashable, Sendable {
        public var how: String
        public var code: Int?
        public var signal: Int?

        public init(how: String, code: Int? = nil, signal: Int? = nil) {
            self.how = how
            self.code = code
            self.signal = signal
        }
    }

    public struct Worker: Codable, Hashable, Sendable {
        public var id: String
        public var pid: Int
        public var uid: Int
        public var gid: Int
        public var argv: [String]
        public var device: String?
        public var node: Int?
        public var state: String
        public var startedAt: Int
        public var requested: Placement
        public var applied: Placement?
        public var degraded: [String]
        public var exclusiveCores: [String]
        public var adopted: Bool
        public var exit: ExitStatus?
        public var tied: Bool?

        public init(id: String, pid: Int, uid: Int, gid: Int, argv: [String], device: String?, node: Int?,
                    state: String, startedAt: Int, requested: Placement, applied: Placement?, degraded: [String],
                    exclusiveCores: [String], adopted: Bool, exit: ExitStatus?, tied: Bool? = nil) {
            self.tied = tied
            self.id = id
            self.pid = pid
            self.uid = uid
            self.gid = gid
            self.argv = argv
            self.device = device
            self.node = node
            self.state = state
            self.startedAt = startedAt
            self.requested = requested
            self.applied = applied
            self.degraded = degraded
            self.exclusiveCores = exclusiveCores
            self.adopted = adopted
            self.exit = exit
        }
    }

    public struct Event: Codable, Hashable, Sendable {
        public var sequence: Int
        public var kind: String
        public var timestamp: Int
        public var address: String?
        public var device: Device?
        public var worker: Worker?

        public init(sequence: Int, kind: String, timestamp: Int, address: String? = nil, device: Device? = nil,
                    worker: Worker? = nil) {
            self.sequence = sequence
            self.kind = kind
            self.timestamp = timestamp
            self.address = address
            self.device = device
            self.worker = worker
        }
    }

    // MARK: Method parameters and replies

    public struct GetTopologyReply: Codable, Hashable, Sendable {
        public var nodes: [Node]
        public var devices: [Device]
        public var onlineCPUs: String
        public var possibleCPUs: String
        public var allowedCPUs: String
        public var cores: [String]
        public var packages: [String]
        public var warnings: [String]

        public init(_ inventory: Inventory, allowed: AllowedSet?) {
            let t = inventory.topology
            let order = t.nodes.map(\.id)
            nodes = t.nodes.map { Node($0, order: order, topology: t) }
            devices = inventory.devices.map { Device($0, in: inventory) }
            onlineCPUs = t.onlineCPUs.cpulist
            possibleCPUs = t.possibleCPUs.cpulist
            allowedCPUs = allowed?.cpus.cpulist ?? t.onlineCPUs.cpulist
            cores = t.cores.map(\.cpulist)
            packages = t.packages.map(\.cpulist)
            warnings = inventory.allWarnings.map(\.description)
        }
    }

    public struct ListDevicesParameters: Codable, Hashable, Sendable {
        public var kind: String?
        public var node: Int?
        public var address: String?
        public init(kind: String? = nil, node: Int? = nil, address: String? = nil) {
            self.kind = kind
            self.node = node
            self.address = address
        }
    }

    public struct ListDevicesReply: Codable, Hashable, Sendable {
        public var devices: [Device]
        public init(devices: [Device]) { self.devices = devices }
    }

    public struct GetDeviceParameters: Codable, Hashable, Sendable {
        public var address: String
        public init(address: String) { self.address = address }
    }

    public struct GetDeviceReply: Codable, Hashable, Sendable {
        public var device: Device
        public init(device: Device) { self.device = device }
    }

    public struct SpawnParameters: Codable, Hashable, Sendable {
        public var device: String?
        public var node: Int?
        public var cpus: String?
        public var argv: [String]
        public var environment: [String]?
        public var workingDirectory: String?
        public var memory: String?
        public var exclusiveCores: Int?
        public var admission: String?
        public var stdin: String?
        public var stdout: String?
        public var stderr: String?
        public var user: String?
        public var name: String?
        public var parentDeathSignal: Int?
        /// Aim the memory policy at the device's own memory node (`Device.memoryNode`).
        public var deviceMemory: Bool?
        /// Several devices (addresses, device nodes or names): placed on the node that holds them all.
        public var devices: [String]?
        /// Also set the variables the devices' runtimes read (CUDA_VISIBLE_DEVICES, NCCL_IB_HCA).
        public var runtimeEnvironment: Bool?
        /// Indices among the descriptors sent with the call (SCM_RIGHTS) for the worker's 0, 1, 2.
        public var stdinDescriptor: Int?
        public var stdoutDescriptor: Int?
        public var stderrDescriptor: Int?
        /// Indices of further passed descriptors, placed at 3, 4, … in the worker.
        public var descriptors: [Int]?
        /// SIGTERM, then SIGKILL, to the worker when the connection that spawned it closes.
        public var tied: Bool?

        public init(argv: [String], device: String? = nil, node: Int? = nil, cpus: String? = nil,
                    environment: [String]? = nil, workingDirectory: String? = nil, memory: String? = nil,
                    exclusiveCores: Int? = nil, admission: String? = nil, stdin: String? = nil,
                    stdout: String? = nil, stderr: String? = nil, user: String? = nil, name: String? = nil,
                    parentDeathSignal: Int? = nil, deviceMemory: Bool? = nil, devices: [String]? = nil,
                    runtimeEnvironment: Bool? = nil, stdinDescriptor: Int? = nil, stdoutDescriptor: Int? = nil,
                    stderrDescriptor: Int? = nil, descriptors: [Int]? = nil, tied: Bool? = nil) {
            self.stdinDescriptor = stdinDescriptor
            self.stdoutDescriptor = stdoutDescriptor
            self.stderrDescriptor = stderrDescriptor
            self.descriptors = descriptors
            self.tied = tied
            self.argv = argv
            self.devices = devices
            self.runtimeEnvironment = runtimeEnvironment
            self.deviceMemory = deviceMemory
            self.device = device
            self.node = node
            self.cpus = cpus
            self.environment = environment
            self.workingDirectory = workingDirectory
            self.memory = memory
            self.exclusiveCores = exclusiveCores
            self.admission = admission
            self.stdin = stdin
            self.stdout = stdout
            self.stderr = stderr
            self.user = user
            self.name = name
            self.parentDeathSignal = parentDeathSignal
        }
    }

    public struct WorkerReply: Codable, Hashable, Sendable {
        public var worker: Worker
        public init(worker: Worker) { self.worker = worker }
    }

    public struct ListWorkersReply: Codable, Hashable, Sendable {
        public var workers: [Worker]
        public init(workers: [Worker]) { self.workers = workers }
    }

    public struct WorkerIDParameters: Codable, Hashable, Sendable {
        public var id: String
        public init(id: String) { self.id = id }
    }

    public struct SignalParameters: Codable, Hashable, Sendable {
        public var id: String
        public var signal: Int
        public init(id: String, signal: Int) {
            self.id = id
            self.signal = signal
        }
    }

    public struct MonitorReply: Codable, Hashable, Sendable {
        public var event: Event
        public init(event: Event) { self.event = event }
    }

    public struct GetStatusReply: Codable, Hashable, Sendable {
        public var version: String
        public var startedAt: Int
        public var uptimeUsec: Int
        public var nodes: Int
        public var devices: Int
        public var workers: Int
        public var runningWorkers: Int
        public var allowedCPUs: String
        public var allowedMems: String
        public var eventSource: String
        public var configurationFiles: [String]
        public var warnings: [String]

        public init(version: String, startedAt: Int, uptimeUsec: Int, nodes: Int, devices: Int, workers: Int,
                    runningWorkers: Int, allowedCPUs: String, allowedMems: String, eventSource: String,
                    configurationFiles: [String], warnings: [String]) {
            self.version = version
            self.startedAt = startedAt
            self.uptimeUsec = uptimeUsec
            self.nodes = nodes
            self.devices = devices
            self.workers = workers
            self.runningWorkers = runningWorkers
            self.allowedCPUs = allowedCPUs
            self.allowedMems = allowedMems
            self.eventSource = eventSource
            self.configurationFiles = configurationFiles
            self.warnings = warnings
        }
    }

    // MARK: Errors

    public static func noSuchDevice(_ address: String) -> VarlinkError {
        VarlinkError("\(interface).NoSuchDevice", ["address": .string(address)])
    }
    public static func noSuchNode(_ node: Int) -> VarlinkError {
        VarlinkError("\(interface).NoSuchNode", ["node": .int(node)])
    }
    public static func noSuchWorker(_ id: String) -> VarlinkError {
        VarlinkError("\(interface).NoSuchWorker", ["id": .string(id)])
    }
    public static func placementImpossible(_ reason: String) -> VarlinkError {
        VarlinkError("\(interface).PlacementImpossible", ["reason": .string(reason)])
    }
    public static func spawnFailed(step: String, errno: Int32, message: String) -> VarlinkError {
        VarlinkError("\(interface).SpawnFailed", ["step": .string(step), "errno": .int(Int(errno)), "message": .string(message)])
    }
    public static func permissionDenied(_ reason: String) -> VarlinkError {
        VarlinkError("\(interface).PermissionDenied", ["reason": .string(reason)])
    }
    public static func invalidParameter(_ parameter: String, _ reason: String) -> VarlinkError {
        VarlinkError("\(interface).InvalidParameter", ["parameter": .string(parameter), "reason": .string(reason)])
    }
    public static func limitExceeded(_ limit: String, maximum: Int) -> VarlinkError {
        VarlinkError("\(interface).LimitExceeded", ["limit": .string(limit), "maximum": .int(maximum)])
    }

    /// Maps a placement failure to its Varlink error.
    public static func error(for e: PlacementError) -> VarlinkError {
        switch e {
        case .noSuchDevice(let a): return noSuchDevice(a.description)
        case .noSuchNode(let n): return noSuchNode(n.rawValue)
        case .impossible(let why): return placementImpossible(why)
        case .invalid(let p, let why): return invalidParameter(p, why)
        }
    }
}

/// `org.varlink.service`, which every Varlink service implements.
public enum VarlinkService {
    public static let interface = "org.varlink.service"

    public struct GetInfoReply: Codable, Hashable, Sendable {
        public var vendor: String
        public var product: String
        public var version: String
        public var url: String
        public var interfaces: [String]
        public init(vendor: String, product: String, version: String, url: String, interfaces: [String]) {
            self.vendor = vendor
            self.product = product
            self.version = version
            self.url = url
            self.interfaces = interfaces
        }
    }

    public struct GetInterfaceDescriptionParameters: Codable, Hashable, Sendable {
        public var interface: String
        public init(interface: String) { self.interface = interface }
    }

    public struct GetInterfaceDescriptionReply: Codable, Hashable, Sendable {
        public var description: String
        public init(description: String) { self.description = description }
    }

    /// The standard description of org.varlink.service, as the Varlink specification defines it.
    public static let description = """
    # The Varlink Service Interface is provided by every varlink service. It
    # describes the service and the interfaces it implements.
    interface org.varlink.service

    # Get a list of all the interfaces a service provides and information
    # about the implementation.
    method GetInfo() -> (
      vendor: string,
      product: string,
      version: string,
      url: string,
      interfaces: []string
    )

    # Get the description of an interface that is implemented by this service.
    method GetInterfaceDescription(interface: string) -> (description: string)

    # The requested interface was not found.
    error InterfaceNotFound (interface: string)

    # The requested method was not found
    error MethodNotFound (method: string)

    # The interface defines the requested method, but the service does not
    # implement it.
    error MethodNotImplemented (method: string)

    # One of the passed parameters is invalid.
    error InvalidParameter (parameter: string)

    # Client is denied access
    error PermissionDenied ()

    # Method is expected to be called with 'more' set to true, but wasn't
    error ExpectedMore ()

    """
}
