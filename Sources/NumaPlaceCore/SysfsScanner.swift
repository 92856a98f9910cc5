/// Reads the NUMA topology and the managed PCI devices from a `SysfsRoot`.
///
/// Never throws and never traps on a file's contents: every missing, unreadable or malformed file
/// becomes a `ScanWarning`, and a device that vanishes mid-read is skipped with one warning.
public struct SysfsScanner: Sendable {
    public let root: SysfsRoot
    public var classifier: DeviceClassifier
    /// Locality overrides for broken firmware: the node to use instead of `numa_node`.
    public var nodeOverrides: [PCIAddress: NUMANodeID]

    static let nodeDir = "sys/devices/system/node"
    static let cpuDir = "sys/devices/system/cpu"
    static let pciDir = "sys/bus/pci/devices"

    public init(root: SysfsRoot, classifier: DeviceClassifier = DeviceClassifier(),
                nodeOverrides: [PCIAddress: NUMANodeID] = [:]) {
        self.root = root
        self.classifier = classifier
        self.nodeOverrides = nodeOverrides
    }

    public func scan() -> Inventory {
        var warnings: [ScanWarning] = []
        let topology = scanTopology(warnings: &warnings)
        var devices: [Device] = []
        let names: [String]
        do {
            names = try root.list(Self.pciDir)
        } catch {
            warnings.append(ScanWarning(error.isMissing ? .missing : .unreadable, path: Self.pciDir, error.description))
            names = []
        }
        var seen = Set<PCIAddress>()
        for name in names {
            guard let address = try? PCIAddress(parsing: name) else {
                warnings.append(ScanWarning(.malformed, path: "\(Self.pciDir)/\(name)", "not a PCI address"))
                continue
            }
            // The kernel names each function once, canonically; a second spelling of one address is not
            // a second device.
            guard seen.insert(address).inserted else {
                warnings.append(ScanWarning(.malformed, path: "\(Self.pciDir)/\(name)", "a second entry for \(address)"))
                continue
            }
            switch readDevice(address, entry: name, topology: topology) {
            case .managed(let device): devices.append(device)
            case .notManaged: break
            case .absent(let w), .unreadable(let w): warnings.append(w)
            }
        }
        return Inventory(topology: topology, devices: devices, warnings: warnings)
    }

    // MARK: Topology

    public func scanTopology(warnings: inout [ScanWarning]) -> Topology {
        let online = readCPUSet("\(Self.cpuDir)/online", warnings: &warnings)
        let possible = readCPUSet("\(Self.cpuDir)/possible", warnings: &warnings)

        var nodeIDs: [NUMANodeID] = []
        if let entries = try? root.list(Self.nodeDir) {
            // Only the kernel's own spelling, "node<decimal>": "node01" or "node+1" would name node 1
            // a second time, and the files are read from "node1".
            for name in entries where name.hasPrefix("node") {
                if let id = NUMANodeID(name.dropFirst(4)), name == "node\(id.rawValue)" { nodeIDs.append(id) }
            }
        }
        nodeIDs.sort()
        var nodes: [NUMANode] = []
        if nodeIDs.isEmpty {
            // A kernel built without NUMA has no node directory: the whole machine is node 0.
            warnings.append(ScanWarning(.missing, path: Self.nodeDir, "no NUMA nodes; treating the machine as node 0"))
            var mem: UInt64 = 0
            do {
                mem = try SysfsParsers.memTotal(try root.read("proc/meminfo"))
            } catch let e as SysfsRoot.ReadError {
                warnings.append(ScanWarning(e.isMissing ? .missing : .unreadable, path: "proc/meminfo", e.description))
            } catch {
                warnings.append(ScanWarning(.forParseError(error), path: "proc/meminfo", "\(error)"))
            }
            let id = NUMANodeID(rawValue: 0)!
            nodes = [NUMANode(id: id, cpus: online ?? presentCPUs(), memoryBytes: mem, distances: [id: 10])]
        } else {
            let rowOrders = distanceRowOrders(listed: nodeIDs)
            for id in nodeIDs {
                nodes.append(readNode(id, order: nodeIDs, rowOrders: rowOrders, warnings: &warnings))
            }
            warnSharedCPUs(nodes, warnings: &warnings)
        }
        let nodeCPUs = nodes.reduce(CPUSet()) { $0.union($1.cpus) }
        let onlineCPUs = online ?? nodeCPUs
        let possibleCPUs = possible ?? onlineCPUs
        return Topology(nodes: nodes, onlineCPUs: onlineCPUs, possibleCPUs: possibleCPUs,
                        cores: readCores(onlineCPUs, warnings: &warnings), packages: readPackages(onlineCPUs))
    }

    func readNode(_ id: NUMANodeID, order: [NUMANodeID], rowOrders: [[NUMANodeID]] = [],
                  warnings: inout [ScanWarning]) -> NUMANode {
        let dir = "\(Self.nodeDir)/node\(id.rawValue)"
        var cpus = CPUSet()
        if let list = readCPUSet("\(dir)/cpulist", warnings: &warnings, quietIfMissing: true) {
            cpus = list
        } else if let mask = readCPUSet("\(dir)/cpumap", mask: true, warnings: &warnings) {
            cpus = mask
        }
        var memory: UInt64 = 0
        do {
            memory = try SysfsParsers.memTotal(try root.read("\(dir)/meminfo"))
        } catch let e as SysfsRoot.ReadError {
            warnings.append(ScanWarning(e.isMissing ? .missing : .unreadable, path: "\(dir)/meminfo", e.description))
        } catch {
            warnings.append(ScanWarning(.forParseError(error), path: "\(dir)/meminfo", "\(error)"))
        }
        var distances: [NUMANodeID: Int] = [:]
        do {
            let row = try SysfsParsers.distances(try root.read("\(dir)/distance"))
            let rowOrder = Self.rowOrder(for: id, row: row, candidates: [order] + rowOrders)
            if let rowOrder {
                for (other, d) in zip(rowOrder, row) where order.contains(other) { distances[other] = d }
            } else {
                warnings.append(ScanWarning(.malformed, path: "\(dir)/distance",
                                            "\(row.count) distances for \(order.count) nodes"))
                for (other, d) in zip(order, row) { distances[other] = d }
            }
        } catch let e as SysfsRoot.ReadError {
            warnings.append(ScanWarning(e.isMissing ? .missing : .unreadable, path: "\(dir)/distance", e.description))
        } catch {
            warnings.append(ScanWarning(.forParseError(error), path: "\(dir)/distance", "\(error)"))
        }
        // What the row does not give, the kernel's own defaults give (LOCAL_DISTANCE 10, REMOTE_DISTANCE
        // 20: node_distance() without a SLIT): every node gets a distance to every node, so the table
        // the daemon replies with, the dump and the exports are one table, not three guesses.
        // One warning per file: a row that was missing, unreadable or malformed has been reported above.
        let missing = order.filter { distances[$0] == nil }
        let reported = warnings.last?.path == "\(dir)/distance"
        for other in missing { distances[other] = other == id ? 10 : 20 }
        if !missing.isEmpty && !reported {
            warnings.append(ScanWarning(.missing, path: "\(dir)/distance",
                                        "no distance to node \(missing.map(\.description).joined(separator: ",")); the kernel's defaults (10 local, 20 remote) assumed"))
        }
        return NUMANode(id: id, cpus: cpus, memoryBytes: memory, distances: distances)
    }

    /// The node orders a `distance` row may follow besides the node directories: the kernel writes one
    /// entry per online node, and some kernels one per possible node (a machine with node 0 offline
    /// then has a row longer than its directories). Read from `node/online` and `node/possible`.
    /// They are hints only: one that is missing or unreadable (hwloc's captures end them with a NUL)
    /// just offers no order, and a row no order fits is reported where it is read.
    func distanceRowOrders(listed: [NUMANodeID]) -> [[NUMANodeID]] {
        var orders: [[NUMANodeID]] = []
        for file in ["online", "possible"] {
            var ignored: [ScanWarning] = []
            guard let set = readCPUSet("\(Self.nodeDir)/\(file)", warnings: &ignored) else { continue }
            let ids = set.elements.compactMap(NUMANodeID.init(rawValue:))
            if ids != listed, !orders.contains(ids) { orders.append(ids) }
        }
        return orders
    }

    /// Which order `row` (node `id`'s distances) follows: the first candidate of its length that puts
    /// the local distance (the smallest in the row, 10 on every kernel) at `id`'s own place; failing
    /// that, the first of its length. nil when no candidate has the row's length.
    static func rowOrder(for id: NUMANodeID, row: [Int], candidates: [[NUMANodeID]]) -> [NUMANodeID]? {
        let sameLength = candidates.filter { $0.count == row.count && $0.contains(id) }
        let local = row.min()
        return sameLength.first { order in order.firstIndex(of: id).map { row[$0] == local } ?? false }
            ?? sameLength.first
    }

    /// Firmware that gives several nodes the same CPUs (a broken SRAT, or nodes that really share
    /// CPUs): the CPU lists are kept as the kernel wrote them, and each overlap is a warning, once per
    /// pair, on the later node.
    func warnSharedCPUs(_ nodes: [NUMANode], warnings: inout [ScanWarning]) {
        for (i, node) in nodes.enumerated() {
            for earlier in nodes[..<i] {
                let shared = node.cpus.intersection(earlier.cpus)
                guard !shared.isEmpty else { continue }
                warnings.append(ScanWarning(.conflict, path: "\(Self.nodeDir)/node\(node.id.rawValue)/cpulist",
                                            "CPUs \(shared) are also node \(earlier.id)'s; both keep them"))
            }
        }
    }

    /// The CPUs that have a `cpuN` directory: the machine's CPUs when `online` cannot be read and no
    /// node lists them.
    func presentCPUs() -> CPUSet {
        guard let names = try? root.list(Self.cpuDir) else { return CPUSet() }
        return CPUSet(names.compactMap { name -> Int? in
            guard name.hasPrefix("cpu"), let n = Int(name.dropFirst(3)), name == "cpu\(n)", n < CPUSet.limit else {
                return nil
            }
            return n
        })
    }

    /// The longest CPU list or mask a scan reads: 65,536 CPUs listed one by one in the worst form
    /// the kernel writes ("0,2,4,…") take about 190 kB, a mask 18 kB. Longer is not sysfs; read with
    /// the default 1 MiB bound, a hostile per-CPU file costs a parse of a million bytes for every CPU.
    static let maxListBytes = 256 << 10

    /// A list file's text, or nil (and a warning) when it is longer than `maxListBytes`, rather than
    /// a truncated list that might still parse.
    func readList(_ path: String, warnings: inout [ScanWarning]) throws(SysfsRoot.ReadError) -> String? {
        let text = try root.read(path, limit: Self.maxListBytes + 1)
        guard text.utf8.count <= Self.maxListBytes else {
            warnings.append(ScanWarning(.outOfRange, path: path, "longer than \(Self.maxListBytes >> 10) KiB"))
            return nil
        }
        return text
    }

    /// SMT sibling groups from `thread_siblings_list` (or `core_cpus_list`, its newer name).
    /// A list that does not parse is a warning and leaves its CPU a core of its own (a missing one is
    /// silent: old kernels and some captures lack the files).
    func readCores(_ online: CPUSet, warnings: inout [ScanWarning]) -> [CPUSet] {
        var seen = CPUSet()
        var cores: [CPUSet] = []
        for cpu in online.elements where !seen.contains(cpu) {
            let dir = "\(Self.cpuDir)/cpu\(cpu)/topology"
            var group: CPUSet = [cpu]
            for file in ["thread_siblings_list", "core_cpus_list"] {
                guard let text = (try? readList("\(dir)/\(file)", warnings: &warnings)) ?? nil else { continue }
                do {
                    let set = try CPUSet(cpulist: text)
                    if set.contains(cpu) {
                        group = set.intersection(online)
                        break
                    }
                } catch {
                    warnings.append(ScanWarning(.forParseError(error), path: "\(dir)/\(file)", "\(error)"))
                }
            }
            group = group.subtracting(seen)
            seen.formUnion(group)
            cores.append(group)
        }
        return cores
    }

    func readCPUSet(_ path: String, mask: Bool = false, warnings: inout [ScanWarning],
                    quietIfMissing: Bool = false) -> CPUSet? {
        do {
            guard let text = try readList(path, warnings: &warnings) else { return nil }
            return mask ? try SysfsParsers.cpumask(text) : try SysfsParsers.cpulist(text)
        } catch let e as SysfsRoot.ReadError {
            if !(quietIfMissing && e.isMissing) {
                warnings.append(ScanWarning(e.isMissing ? .missing : .unreadable, path: path, e.description))
            }
        } catch {
            warnings.append(ScanWarning(.forParseError(error), path: path, "\(error)"))
        }
        return nil
    }

    // MARK: Devices

    public enum DeviceReadResult: Sendable {
        case managed(Device)
        /// A PCI function the classifier does not manage.
        case notManaged
        /// The device directory is gone (removed, or vanished mid-read).
        case absent(ScanWarning)
        /// Its identity files could not be read or parsed.
        case unreadable(ScanWarning)
    }

    /// Reads one PCI function. Used by the full scan and, per udev event, for one device only.
    public func readDevice(_ address: PCIAddress, topology: Topology) -> DeviceReadResult {
        readDevice(address, entry: address.description, topology: topology)
    }

    /// Reads one PCI function from its directory entry as listed (the scan reads what it listed, so a
    /// tree that spells an address in another case is read, not reported as vanished).
    func readDevice(_ address: PCIAddress, entry: String, topology: Topology) -> DeviceReadResult {
        let dir = "\(Self.pciDir)/\(entry)"
        func identity(_ file: String, bits: Int) -> Result<UInt32, ScanWarning> {
            do {
                return .success(try SysfsParsers.hexID(try root.read("\(dir)/\(file)", limit: 64), bits: bits))
            } catch let e as SysfsRoot.ReadError {
                return .failure(ScanWarning(e.isMissing ? .vanished : .unreadable, path: "\(dir)/\(file)", e.description))
            } catch {
                return .failure(ScanWarning(.forParseError(error), path: "\(dir)/\(file)", "\(error)"))
            }
        }
        // The class decides whether the function is ours at all; without it nothing can be said. A
        // capture (or a kernel) may leave out `vendor` and `device`: the function is still listed, with
        // PCI's "no such id" value 0xffff and a warning, rather than dropped with everything it says.
        let classCode: UInt32
        switch identity("class", bits: 24) {
        case .success(let c): classCode = c
        case .failure(let w):
            if w.code == .vanished && root.exists(dir) {
                return .unreadable(ScanWarning(.missing, path: w.path, "no class: the function cannot be classified"))
            }
            return w.code == .vanished ? .absent(w) : .unreadable(w)
        }
        var warnings: [ScanWarning] = []
        func optionalID(_ file: String) -> UInt16 {
            switch identity(file, bits: 16) {
            case .success(let v): return UInt16(v)
            case .failure(let w):
                let code: ScanWarning.Code = w.code == .vanished ? .missing : w.code
                warnings.append(ScanWarning(code, path: w.path, "\(w.detail); 0xffff (no id) used"))
                return Device.unknownID
            }
        }
        let vendor = optionalID("vendor")
        let deviceID = optionalID("device")
        guard let kind = classifier.kind(classCode: classCode, vendor: vendor, device: deviceID) else {
            return .notManaged
        }

        var firmwareNode: NUMANodeID? = nil
        do {
            firmwareNode = try SysfsParsers.numaNode(try root.read("\(dir)/numa_node", limit: 64))
        } catch let e as SysfsRoot.ReadError {
            if !e.isMissing { warnings.append(ScanWarning(.unreadable, path: "\(dir)/numa_node", e.description)) }
        } catch {
            warnings.append(ScanWarning(.forParseError(error), path: "\(dir)/numa_node", "\(error)"))
        }
        if let forced = nodeOverrides[address] {
            warnings.append(ScanWarning(.overridden, path: "\(dir)/numa_node",
                                        "configured node \(forced) replaces \(firmwareNode.map(String.init(describing:)) ?? "-1")"))
            firmwareNode = forced
        }

        var local: CPUSet? = nil
        if root.exists("\(dir)/local_cpulist") {
            local = readCPUSet("\(dir)/local_cpulist", warnings: &warnings)
        } else if root.exists("\(dir)/local_cpus") {
            local = readCPUSet("\(dir)/local_cpus", mask: true, warnings: &warnings)
        }

        let (locality, cpus) = LocalityResolver.resolve(firmwareNode: firmwareNode, localCPUs: local,
                                                        topology: topology, path: dir, warnings: &warnings)
        let driver = (try? root.readLink("\(dir)/driver")).map { String($0.split(separator: "/").last ?? "") }
        let memoryNode = deviceMemoryNode(address, vendor: vendor, firmwareNode: firmwareNode, topology: topology,
                                          warnings: &warnings)
        var device = Device(address: address, classCode: classCode, vendor: vendor,
                               deviceID: deviceID, kind: kind, driver: driver, firmwareNode: firmwareNode,
                               locality: locality, cpus: cpus, pciePath: pciePath(address, entry: entry),
                               warnings: warnings)
        device.memoryNode = memoryNode
        (device.deviceNodes, device.names, device.rdmaNames) = deviceFiles(address, vendor: vendor, dir: dir)
        return .managed(device)
    }

    /// Where each sysfs class directory of a PCI function puts its device files: `drm/card0` is
    /// `/dev/dri/card0`, `infiniband_verbs/uverbs0` is `/dev/infiniband/uverbs0`, and so on. Classes
    /// whose entries are names only (an RDMA device, a network interface) have no directory here.
    static let deviceNodeDirectories: [(sysfs: String, dev: String?)] = [
        ("drm", "/dev/dri/"), ("infiniband_verbs", "/dev/infiniband/"), ("accel", "/dev/accel/"),
        ("ve", "/dev/"), ("infiniband", nil), ("net", nil),
    ]

    /// Entries read per class directory at most: a real function has one or two.
    static let maxClassEntries = 16

    /// The device nodes and names of a function, from its class directories and, for an NVIDIA GPU,
    /// the driver's `information` file (`Device Minor:` → `/dev/nvidiaN`, `GPU UUID:`); and which of the
    /// names are RDMA device names (`infiniband/`).
    func deviceFiles(_ address: PCIAddress, vendor: UInt16, dir: String) -> (nodes: [String], names: [String], rdma: [String]) {
        var nodes: [String] = [], names: [String] = [], rdma: [String] = []
        for (sysfs, dev) in Self.deviceNodeDirectories {
            guard let entries = try? root.list("\(dir)/\(sysfs)") else { continue }
            for entry in entries.prefix(Self.maxClassEntries)
            where !entry.isEmpty && entry.utf8.count <= 64 && entry.allSatisfy({ $0.isASCII && !$0.isWhitespace && $0 != "/" }) {
                // drm/ also holds connector directories (card0-HDMI-A-1); only cards and render nodes are files.
                if sysfs == "drm", entry.contains("-") || !(entry.hasPrefix("card") || entry.hasPrefix("renderD")) { continue }
                if let dev { nodes.append(dev + entry) }
                if sysfs == "infiniband" { rdma.append(entry) }
                names.append(entry)
            }
        }
        if vendor == Self.nvidiaVendor,
           let text = try? root.read("proc/driver/nvidia/gpus/\(address)/information", limit: 16384) {
            for line in text.split(separator: "\n") {
                let parts = line.split(separator: ":", maxSplits: 1).map(\.trimmingWhitespace)
                guard parts.count == 2 else { continue }
                if parts[0] == "Device Minor", let minor = Int(parts[1]), (0..<256).contains(minor) {
                    nodes.append("/dev/nvidia\(minor)")
                } else if parts[0] == "GPU UUID", parts[1].hasPrefix("GPU-"), parts[1].utf8.count <= 64 {
                    names.append(String(parts[1]))
                }
            }
        }
        return (nodes.sorted(), names.sorted(), rdma.sorted())
    }

    /// The NVIDIA driver's `/proc/driver/nvidia/gpus/` files are read for its devices only.
    static let nvidiaVendor: UInt16 = 0x10de

    /// The device's own memory node: the NVIDIA driver's `/proc/driver/nvidia/gpus/<address>/numa_status`
    /// (its `Node:` line, -1 for none) where the driver has one, else a CPU-less node `numa_node` names.
    func deviceMemoryNode(_ address: PCIAddress, vendor: UInt16, firmwareNode: NUMANodeID?, topology: Topology,
                          warnings: inout [ScanWarning]) -> NUMANodeID? {
        let path = "proc/driver/nvidia/gpus/\(address)/numa_status"
        if vendor == Self.nvidiaVendor, let text = try? root.read(path, limit: 4096) {
            let value = text.split(separator: "\n").map(\.trimmingWhitespace).first { $0.hasPrefix("Node:") }
                .map { String($0.dropFirst("Node:".count)) }
            let parsed: Result<NUMANodeID?, SysfsParsers.ParseError>
            if let value {
                do { parsed = .success(try SysfsParsers.numaNode(value)) } catch { parsed = .failure(error) }
            } else {
                parsed = .failure(.malformed("no Node: line"))
            }
            switch parsed {
            case .success(let id?) where topology.node(id) != nil: return id
            case .success(let id?):
                warnings.append(ScanWarning(.outOfRange, path: path, "node \(id) does not exist"))
            case .success(nil):
                break   // "Node: -1": the driver gives this GPU no memory node
            case .failure(let e):
                warnings.append(ScanWarning(.forParseError(e), path: path, "no Node: line with a node id (\(e))"))
            }
        }
        if let id = firmwareNode, let node = topology.node(id), !node.hasCPUs, node.hasMemory { return id }
        return nil
    }

    /// The bridges above a device, read from its `/sys/bus/pci/devices` link
    /// (`../../../devices/pci0000:00/0000:00:03.0/0000:05:00.0`).
    func pciePath(_ address: PCIAddress, entry: String) -> [PCIAddress] {
        guard let link = try? root.readLink("\(Self.pciDir)/\(entry)") else { return [] }
        return link.split(separator: "/").compactMap { try? PCIAddress(parsing: $0) }.filter { $0 != address }
    }
}

/// DESIGN.md's locality rule, as a pure function.
public enum LocalityResolver {
    /// 1. `numa_node` names an existing node → that node; a CPU-less node takes the CPUs of the nearest
    ///    CPU-bearing nodes. If `local_cpulist` disagrees with a CPU-bearing node, `numa_node` wins and
    ///    the conflict is reported.
    /// 2. Otherwise `local_cpulist`: empty, missing or covering every CPU → unknown; else exactly those
    ///    CPUs, on the one node holding all of them if there is one.
    /// 4. What 1–2 leave unknown on a machine with a single CPU-bearing node is on that node.
    public static func resolve(firmwareNode: NUMANodeID?, localCPUs: CPUSet?, topology: Topology,
                               path: String, warnings: inout [ScanWarning]) -> (Locality, CPUSet) {
        let all = topology.nodeCPUs.isEmpty ? topology.onlineCPUs : topology.nodeCPUs
        let local = localCPUs?.intersection(topology.onlineCPUs.isEmpty ? all : topology.onlineCPUs)
        if let id = firmwareNode {
            if let node = topology.node(id) {
                let cpuNodes = topology.nearestCPUNodes(to: id)
                let cpus = topology.cpus(of: cpuNodes)
                // An empty or all-CPU local_cpulist says nothing about locality (rule 2 treats it as
                // unknown), so only a proper subset can disagree; an all-CPU list is what the kernel
                // shows when the bus has no node and numa_node was written by hand or an override.
                if node.hasCPUs, let local, !local.isEmpty, !all.isSubset(of: local), local != node.cpus {
                    warnings.append(ScanWarning(.conflict, path: path,
                                                "numa_node \(id) (CPUs \(node.cpus)) disagrees with local_cpulist \(local); numa_node wins"))
                }
                return (.node(id, cpuNodes: cpuNodes), cpus)
            }
            warnings.append(ScanWarning(.outOfRange, path: path + "/numa_node", "node \(id) does not exist"))
        }
        guard let local, !local.isEmpty, !all.isSubset(of: local) else {
            // 4. One CPU-bearing node: the device can only be there.
            let cpuNodes = topology.nodes.filter(\.hasCPUs)
            if cpuNodes.count == 1, let only = cpuNodes.first { return (.onlyNode(only.id), only.cpus) }
            return (.unknown, CPUSet())
        }
        return (.cpus(local, node: topology.nodeHolding(local)), local)
    }
}
