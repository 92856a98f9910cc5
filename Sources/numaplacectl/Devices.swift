import ArgumentParser
import NumaPlaceCore
import NumaPlaceProtocol

struct Devices: ManagerCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the managed devices (GPUs, accelerators, RDMA NICs) and where they sit.",
        discussion: """
        NODE is the device's node ("-" when its locality is unknown), MEMNODES the nodes a worker's memory \
        comes from (the nearest nodes with CPUs for a device on a CPU-less node), CPUS the CPUs a worker \
        for it gets, LOCALITY how that was found: node (numa_node), cpus (local_cpulist) or unknown.

        Examples:
          numaplacectl devices
          numaplacectl devices --kind gpu --node 1
        """)

    @OptionGroup var global: GlobalOptions

    @Option(name: .long, help: "Only devices of this kind: gpu, accelerator or nic.")
    var kind: DeviceKind?

    @Option(name: .long, help: "Only devices on this NUMA node (or whose workers are placed on it).")
    var node: Int?

    func run() throws {
        let reply = try session().call("ListDevices", Manager.ListDevicesParameters(kind: kind?.rawValue, node: node))
        if global.json { return Output.json(reply.parameters) }
        let devices = try reply.decode(Manager.ListDevicesReply.self).devices
        if devices.isEmpty { return Output.line("no devices") }
        Format.deviceTable(devices).print()
        let warned = devices.filter { !$0.warnings.isEmpty }.count
        if warned > 0 {
            Output.line("")
            Output.line("\(warned) of \(devices.count) devices have warnings: numaplacectl device ADDRESS shows them")
        }
    }
}

extension DeviceKind: ExpressibleByArgument {}

struct DeviceCommand: ManagerCommand {
    static let configuration = CommandConfiguration(
        commandName: "device",
        abstract: "Show one device: class, ids, driver, node, CPUs, PCIe path and warnings.",
        discussion: """
        The address may be spelled any way a tool prints it: 0000:3b:00.0, 00000000:3B:00.0, 3b:00.0, 3b:00.

        Example: numaplacectl device 3b:00.0
        """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: "PCI address (any spelling), device node (/dev/dri/renderD128) or driver name (mlx5_0, GPU-…).")
    var address: String

    func validate() throws {
        // Names and device nodes are the daemon's to resolve; only an empty selector is refused here.
        if address.isEmpty { throw ValidationError("give a PCI address, a device node or a device name") }
    }

    func run() throws {
        let reply = try session().call("GetDevice", Manager.GetDeviceParameters(address: address))
        if global.json { return Output.json(reply.parameters) }
        let d = try reply.decode(Manager.GetDeviceReply.self).device
        Output.line("\(d.address)  \(Format.vendor(d)) \(d.device) (\(d.kind))")
        var fields: [(String, String)] = [
            ("class", d.class),
            ("vendor", d.vendorName.map { "\(d.vendor) (\($0))" } ?? d.vendor),
            ("device", d.device),
            ("driver", d.driver ?? "none bound"),
            ("node", d.numaNode.map(String.init) ?? "unknown"),
            ("locality", Self.explain(d.locality)),
            ("cpus", d.cpus.isEmpty ? "unknown (a worker for it runs on every allowed CPU)" : d.cpus),
            ("memory nodes", Format.nodes(d.placementNodes)),
            ("pcie path", d.pciePath.isEmpty ? "-" : d.pciePath.joined(separator: " > ")),
            ("nearest NICs", d.nearestNICs.isEmpty ? "-" : d.nearestNICs.joined(separator: ", ")),
            ("memory node", d.memoryNode.map(String.init) ?? "-"),
            ("device nodes", d.deviceNodes.isEmpty ? "-" : d.deviceNodes.joined(separator: " ")),
            ("names", d.names.isEmpty ? "-" : d.names.joined(separator: " ")),
        ]
        if d.warnings.isEmpty { fields.append(("warnings", "none")) }
        for w in d.warnings { fields.append(("warning", w)) }
        Format.fields(fields).forEach { Output.line($0) }
    }

    static func explain(_ locality: Manager.Device.Locality) -> String {
        switch locality {
        case .node: return "node (from numa_node)"
        case .cpus: return "cpus (numa_node is -1; from local_cpulist)"
        case .onlyNode: return "only-node (numa_node is -1; the machine's one node with CPUs)"
        case .unknown: return "unknown (numa_node is -1 and local_cpulist names no narrower set)"
        }
    }
}
