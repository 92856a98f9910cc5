extension SysfsScanner {
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
                return .success(try SysfsParsers.hexID(try root.readAttribute("\(dir)/\(file)", limit: 64), bits: bits))
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
        guard classifier.mayManage(classCode: classCode) else { return .notManaged }
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
            firmwareNode = try SysfsParsers.numaNode(try root.readAttribute("\(dir)/numa_node", limit: 64))
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
