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
            let mem = readMemTotal("proc/meminfo", warnings: &warnings)
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
        let memory = readMemTotal("\(dir)/meminfo", warnings: &warnings)
        var distances: [NUMANodeID: Int] = [:]
        do {
            let row = try SysfsParsers.distances(try root.readAttribute("\(dir)/distance", limit: 1 << 20))
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
    /// `MemTotal` of a meminfo file in bytes; 0 with a warning when it cannot be read or parsed.
    func readMemTotal(_ path: String, warnings: inout [ScanWarning]) -> UInt64 {
        do {
            return try SysfsParsers.memTotal(try root.readAttribute(path, limit: 1 << 20))
        } catch let e as SysfsRoot.ReadError {
            warnings.append(ScanWarning(e.isMissing ? .missing : .unreadable, path: path, e.description))
        } catch {
            warnings.append(ScanWarning(.forParseError(error), path: path, "\(error)"))
        }
        return 0
    }

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
        let text = try root.readAttribute(path, limit: Self.maxListBytes + 1)
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
}
