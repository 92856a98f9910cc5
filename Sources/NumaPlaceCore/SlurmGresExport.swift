/// `gres.conf` lines for Slurm, in a form slurmd accepts, with `Cores=` naming the cores local to each device.
///
/// Pure: an inventory in, text out; `numaplacectl export slurm-gres` feeds it the daemon's model or
/// an offline scan. Decisions (docs/cluster.md has the long form):
/// - `Cores=` holds Slurm's logical core indices (`Topology.logicalCores`, hwloc's `Core L#`), never
///   CPU numbers: on an SMT machine CPUs 0 and 32 are one core, and on a machine that numbers CPUs
///   round-robin across sockets CPU 1 is not core 1.
/// - A device whose locality is unknown gets no `Cores=` (Slurm then pairs it with any core) and a
///   comment that says why, rather than a guess.
/// - slurmd refuses several records for one name unless each has `File=` (or a distinct `Type=`):
///   "gres.conf duplicate records for NAME", and it refuses a name where some records have `File=` and
///   others do not. So the export writes one line per device with `File=` when every device's file is
///   known (from `filePattern`, else from the device nodes the scan found, see `deviceFile(of:)`);
///   otherwise one `Count=` line, which is possible only when all devices share one core set, and
///   otherwise refuses with `ExportError.needsFiles` rather than write a file slurmd rejects.
public struct SlurmGresExport: Hashable, Sendable {
    /// `Name=`: the GRES name (`gpu`, or a site's own such as `ve`).
    public var name: String
    /// `Type=`, when given (`a100`, `p100`).
    public var type: String?
    /// Which device kinds to export.
    public var kinds: [DeviceKind]
    /// Only devices of this PCI vendor, when given.
    public var vendor: UInt16?
    /// `File=` from a pattern: `{index}` is the device's position among the exported devices of its
    /// kind (0, 1, …, in PCI address order), `{address}` its canonical address. `/dev/nvidia{index}`
    /// matches NVIDIA's numbering where the driver probed the GPUs in PCI order, which `nvidia-smi -q`
    /// can confirm. Without a pattern the files come from the scan.
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

    /// Why this inventory cannot be written as a gres.conf slurmd accepts with these options.
    public enum ExportError: Error, Hashable, Sendable, CustomStringConvertible {
        /// Devices on several core sets, and not every device file known: one `Count=` record cannot
        /// carry two `Cores=`, and slurmd refuses a second record for the name without `File=`.
        case needsFiles(name: String, withoutFile: [PCIAddress], coreSets: [String])

        public var description: String {
            switch self {
            case .needsFiles(let name, let withoutFile, let coreSets):
                let devices = withoutFile.prefix(8).map(\.description).joined(separator: ", ")
                    + (withoutFile.count > 8 ? ", …" : "")
                return "the \(name) devices sit on \(coreSets.count) core sets (\(coreSets.joined(separator: "; "))) and the device file of \(devices) is unknown; "
                    + "slurmd accepts several records for one name only when each has File=, so give --file-pattern (e.g. '/dev/nvidia{index}'), "
                    + "or export fewer devices per name with --vendor or --kind"
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
            guard !pattern.isEmpty, pattern.utf8.count <= 4096, !pattern.contains(where: Self.breaksALine) else {
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

    /// Characters that would end a gres.conf value or start a comment.
    static func breaksALine(_ c: Character) -> Bool { c.isWhitespace || c == "#" || c == "\0" }

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

    /// The device file Slurm's device constraint should cover, from the nodes the scan found: for an
    /// NVIDIA GPU `/dev/nvidiaN` (what Slurm's NVML autodetection writes); for a DRM GPU the render node
    /// (what its ROCm SMI and oneAPI autodetection write: compute opens `renderD*`, not the card node),
    /// the card node where a driver has no render node; for an accelerator `/dev/accel/accelN`, a
    /// Vector Engine's `/dev/veN`, else its only node; for an RDMA NIC `/dev/infiniband/uverbsN`.
    /// nil when none of these is known.
    public static func deviceFile(of device: Device) -> String? {
        let nodes = device.deviceNodes.filter { $0.hasPrefix("/dev/") && $0.utf8.count <= 256 && !$0.contains(where: breaksALine) }
        func numbered(_ prefix: String) -> String? {
            nodes.first { $0.hasPrefix(prefix) && $0.count > prefix.count && $0.dropFirst(prefix.count).allSatisfy(\.isASCIIDigit) }
        }
        switch device.kind {
        case .gpu:
            return numbered("/dev/nvidia") ?? numbered("/dev/dri/renderD") ?? numbered("/dev/dri/card")
        case .accelerator:
            return numbered("/dev/accel/accel") ?? numbered("/dev/ve") ?? numbered("/dev/dri/renderD")
                ?? (nodes.count == 1 ? nodes[0] : nil)
        case .nic:
            return numbered("/dev/infiniband/uverbs")
        case .display:
            return nil
        }
    }

    /// One configuration line with the devices it stands for and a comment per device.
    public struct Entry: Hashable, Sendable {
        public var devices: [PCIAddress]
        public var comments: [String]
        public var line: String
    }

    public func entries(for inventory: Inventory) throws(ExportError) -> [Entry] {
        let topology = inventory.topology
        let devices = devices(in: inventory)
        var indexInKind: [DeviceKind: Int] = [:]
        let files: [String?] = devices.map { d in
            let index = indexInKind[d.kind, default: 0]
            indexInKind[d.kind] = index + 1
            guard let filePattern else { return Self.deviceFile(of: d) }
            return filePattern.replacingPlaceholder("{index}", with: String(index))
                .replacingPlaceholder("{address}", with: d.address.description)
        }
        let cores = devices.map { Self.cores(of: $0, in: topology) }
        func fields(_ rest: [String]) -> String {
            ((nodeName.map { ["NodeName=\($0)"] } ?? []) + ["Name=\(name)"] + (type.map { ["Type=\($0)"] } ?? []) + rest)
                .joined(separator: " ")
        }
        func comment(_ i: Int) -> String {
            let d = devices[i]
            let who = "\(d.address) \(d.vendorName ?? d.vendorHex) \(d.deviceHex) (\(d.kind.rawValue))"
            guard cores[i] != nil else {
                return "\(who): locality unknown (no usable numa_node, local_cpulist empty or all CPUs); no Cores=, so Slurm may pair it with any core"
            }
            return "\(who): \(d.numaNode.map { "node \($0)" } ?? "no single node"), CPUs \(d.cpus.cpulist)"
        }
        if files.allSatisfy({ $0 != nil }) {
            return devices.indices.map { i in
                Entry(devices: [devices[i].address], comments: [comment(i)],
                      line: fields(["File=\(files[i] ?? "")"] + (cores[i].map { ["Cores=\($0.cpulist)"] } ?? [])))
            }
        }
        guard let first = cores.first else { return [] }
        guard cores.allSatisfy({ $0 == first }) else {
            var sets: [String] = []
            for c in cores {
                let text = c.map { "Cores=\($0.cpulist)" } ?? "no Cores="
                if !sets.contains(text) { sets.append(text) }
            }
            throw .needsFiles(name: name, withoutFile: devices.indices.filter { files[$0] == nil }.map { devices[$0].address },
                              coreSets: sets)
        }
        return [Entry(devices: devices.map(\.address), comments: devices.indices.map(comment),
                      line: fields(["Count=\(devices.count)"] + (first.map { ["Cores=\($0.cpulist)"] } ?? [])))]
    }

    /// The whole file: a header saying where it came from and how to read `Cores=` and `File=`, then
    /// each entry after its comments.
    public func render(_ inventory: Inventory, source: String) throws(ExportError) -> String {
        var out = [
            "# gres.conf fragment written by numaplacectl export slurm-gres from \(source.filter { $0 != "\n" }).",
            "# Cores= are Slurm's logical core indices (hwloc \"Core L#\", see lstopo -l), not CPU numbers.",
        ]
        let entries = try entries(for: inventory)
        if entries.isEmpty {
            out.append("# No \(kinds.map(\.rawValue).joined(separator: " or ")) devices\(vendor.map { " of vendor 0x" + hex(UInt64($0), width: 4) } ?? "") found.")
        } else if entries.first?.line.contains(" File=") == true {
            out.append(filePattern == nil
                ? "# File= is each device's own device file, as the kernel named it (cgroup device limits use it)."
                : "# File= from --file-pattern.")
        } else {
            out.append(entries[0].devices.count == 1
                ? "# No File=: the device file is unknown (--file-pattern gives it)."
                : "# No File=: not every device file is known (--file-pattern gives them); the devices share one core set, so one Count= line.")
        }
        for e in entries {
            out += e.comments.map { "# " + $0 }
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
