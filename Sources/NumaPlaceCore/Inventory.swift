/// One scan of a machine: its topology, the devices numaplaced manages, and what went wrong reading it.
public struct Inventory: Hashable, Sendable {
    public var topology: Topology
    /// Managed devices, sorted by address.
    public var devices: [Device]
    /// Machine-level warnings (node and CPU files); device-level ones stay on their device.
    public var warnings: [ScanWarning]

    public init(topology: Topology, devices: [Device], warnings: [ScanWarning]) {
        self.topology = topology
        self.devices = devices.sorted { $0.address < $1.address }
        self.warnings = warnings
    }

    public func device(_ address: PCIAddress) -> Device? {
        devices.first { $0.address == address }
    }

    /// The device `text` names: a PCI address in any spelling, or one of a device's names or device
    /// nodes (`mlx5_0`, `/dev/dri/renderD128`, `renderD128`, `GPU-…`). nil when none does, or when a
    /// name is ambiguous.
    public func device(named text: String) -> Device? {
        if let address = try? PCIAddress(parsing: text) { return device(address) }
        let matches = devices.filter { $0.isNamed(text) }
        return matches.count == 1 ? matches[0] : nil
    }

    /// Every warning: the machine's, then each device's.
    public var allWarnings: [ScanWarning] { warnings + devices.flatMap(\.warnings) }

    /// Replaces, inserts or (with nil) removes one device, keeping the address order.
    public mutating func update(_ address: PCIAddress, with device: Device?) {
        devices.removeAll { $0.address == address }
        if let device {
            let i = devices.firstIndex { $0.address > address } ?? devices.endIndex
            devices.insert(device, at: i)
        }
    }
}
