/// `gres.conf` lines for Slurm: one line per device, with `Cores=` naming the cores local to it.
///
/// Pure: an inventory in, text out; `numaplacectl export slurm-gres` feeds it the daemon's model or
/// an offline scan. Decisions (docs/cli.md has the long form):
/// - `Cores=` holds Slurm's logical core indices (`Topology.logicalCores`, hwloc's `Core L#`), never
///   CPU numbers: on an SMT machine CPUs 0 and 32 are one core, and on a machine that numbers CPUs
///   round-robin across sockets CPU 1 is not core 1.
/// - A device whose locality is unknown gets no `Cores=` (Slurm then pairs it with any core) and a
///   comment that says why, rather than a guess.
/// - `File=` is written only from `filePattern`: sysfs does not know NVIDIA's minor numbers
///   (`/dev/nvidiaN`) or which render node a card got, so a default would be a guess. Without a file
///   the line carries `Count=1`.
public struct SlurmGresExport: Hashable, Sendable {
    /// `Name=`: the GRES name (`gpu`, or a site's own such as `ve`).
    public var name: String
    /// `Type=`, when given (`a100`, `p100`).
    public var type: String?
    /// Which device kinds to export.
    public var kinds: [DeviceKind]
    /// Only devices of this PCI vendor, when given.
    public var vendor: UInt16?
    /// `File=` from a pattern: `{index}` is the device's position among the exported devices (0, 1, …,
    /// in PCI address order), `{address}` its canonical address. `/dev/nvidia{index}` matches NVIDIA's
    /// numbering where the driver probed the GPUs in PCI order, which `nvidia-smi -q` can confirm.
    public var filePattern: String?
    /// `NodeName=` in front of every line, for a gres.conf shared by several nodes.
    public var nodeName: String?

    public init(name: String = "gpu", type: String? = nil, kinds: [DeviceKind] = [.gpu], vendor: UInt16? = nil,
                filePattern: String? = nil, nodeName: String? = nil) {
        self.name = name
        self.type = type
        self.kinds = kinds
        self.vendor = vendor
        self.filePattern = filePattern
        self.nodeName = nodeName
    }

    /// Why the options cannot make a valid gres.conf.
    public enum OptionError: Error, Hashable, Sendable, CustomStringConvertible {
        case invalidValue(option: String, value: String)
        case unknownPlaceholder(String)
        /// A display adapter (a BMC's VGA) is no GPU a job can use.
        case displayNotExported

        public var description: String {
            switch self {
            case .invalidValue(let option, let value):
                return "\(option) \"\(value.prefix(64))\" cannot appear in gres.conf (use 1 to 64 characters without spaces, '#' or '=')"
            case .unknownPlaceholder(let p):
                return "unknown placeholder {\(p.prefix(32))} in the file pattern (known: {index}, {address})"
            case .displayNotExported:
                return "display adapters (BMC and hypervisor VGA) are not GPUs and are never exported to Slurm"
            }
        }
    }

    /// Checks every value that ends up in a line: gres.conf splits on spaces and stops at `#`.
    public func validate() throws(OptionError) {
        if kinds.contains(.display) { throw .displayNotExported }
        func check(_ option: String, _ value: String?) throws(OptionError) {
            guard let value else { return }
            guard (1...64).contains(value.utf8.count),
                  !value.contains(where: { $0.isWhitespace || $0 == "#" || $0 == "=" || $0 == "\0" }) else {
                throw .invalidValue(option: option, value: value)
            }
        }
        try check("name", name)
        try check("type", type)
        try check("node name", nodeName)
        if let pattern = filePattern {
            guard !pattern.isEmpty, pattern.utf8.count <= 4096,
                  !pattern.contains(where: { $0.isWhitespace || $0 == "#" || $0 == "\0" }) else {
                throw .invalidValue(option: "file pattern", value: pattern)
            }
            var rest = Substring(pattern)
            while let open = rest.firstIndex(of: "{") {
                guard let close = rest[open...].firstIndex(of: "}") else { throw .unknownPlaceholder(String(rest[open...])) }
                let key = rest[rest.index(after: open)..<close]
                guard key == "index" || key == "address" else { throw .unknownPlaceholder(String(key)) }
                rest = rest[rest.index(after: close)...]
            }
        }
    }

    /// The devices this export lists, in PCI address order.
    public func devices(in inventory: Inventory) -> [Device] {
        inventory.devices.filter { kinds.contains($0.kind) && $0.kind != .display && (vendor == nil || $0.vendor == vendor) }
            .sorted { $0.address < $1.address }
    }

    /// The `Cores=` value for a device: nil when its locality is unknown.
    public static func cores(of device: Device, in topology: Topology) -> CPUSet? {
        guard !device.cpus.isEmpty else { return nil }
        let cores = topology.logicalCoreIndices(of: device.cpus)
        return cores.isEmpty ? nil : cores
    }

    /// One entry per exported device: the configuration line and a comment that says what it is.
    public struct Entry: Hashable, Sendable {
        public var device: PCIAddress
        public var comment: String
        public var line: String
    }

    public func entries(for inventory: Inventory) -> [Entry] {
        let topology = inventory.topology
        return devices(in: inventory).enumerated().map { index, d in
            var fields: [String] = []
            if let nodeName { fields.append("NodeName=\(nodeName)") }
            fields.append("Name=\(name)")
            if let type { fields.append("Type=\(type)") }
            if let filePattern {
                fields.append("File=" + filePattern.replacingPlaceholder("{index}", with: String(index))
                    .replacingPlaceholder("{address}", with: d.address.description))
            } else {
                fields.append("Count=1")
            }
            let who = "\(d.address) \(d.vendorName ?? d.vendorHex) \(d.deviceHex) (\(d.kind.rawValue))"
            let comment: String
            if let cores = Self.cores(of: d, in: topology) {
                fields.append("Cores=\(cores.cpulist)")
                let node = d.numaNode.map { "node \($0)" } ?? "no single node"
                comment = "\(who): \(node), CPUs \(d.cpus.cpulist)"
            } else {
                comment = "\(who): locality unknown (no usable numa_node, local_cpulist empty or all CPUs); no Cores=, so Slurm may pair it with any core"
            }
            return Entry(device: d.address, comment: comment, line: fields.joined(separator: " "))
        }
    }

    /// The whole file: a header saying where it came from and how to read `Cores=`, then each entry.
    public func render(_ inventory: Inventory, source: String) -> String {
        var out = [
            "# gres.conf fragment written by numaplacectl export slurm-gres from \(source.filter { $0 != "\n" }).",
            "# Cores= are Slurm's logical core indices (hwloc \"Core L#\", see lstopo -l), not CPU numbers.",
        ]
        if filePattern == nil {
            out.append("# No File= (numaplacectl --file-pattern adds it): sysfs does not name the device files.")
        }
        let entries = entries(for: inventory)
        if entries.isEmpty {
            out.append("# No \(kinds.map(\.rawValue).joined(separator: " or ")) devices\(vendor.map { " of vendor 0x" + hex(UInt64($0), width: 4) } ?? "") found.")
        }
        for e in entries {
            out.append("# " + e.comment)
            out.append(e.line)
        }
        return out.joined(separator: "\n") + "\n"
    }
}

extension String {
    /// Replaces every occurrence of `placeholder` (Foundation-free).
    func replacingPlaceholder(_ placeholder: String, with value: String) -> String {
        guard !placeholder.isEmpty else { return self }
        var out = ""
        var rest = Substring(self)
        while let r = rest.firstRange(of: placeholder) {
            out += rest[..<r.lowerBound]
            out += value
            rest = rest[r.upperBound...]
        }
        return out + rest
    }
}
