import Testing
@testable import NumaPlaceCore
import NumaPlaceTestSupport

/// The scanner over files with hostile contents: nothing traps, each bad file becomes one typed warning
/// with the code that names what was wrong, and the locality falls back exactly as DESIGN.md says.
@Suite("Scanner on hostile files")
struct ScannerHostileFileTests {
    static let device = "0000:3b:00.0"
    static var deviceDir: String { "sys/bus/pci/devices/\(device)" }

    /// Two nodes, 0 (CPUs 0-3) and 1 (CPUs 4-7), and one GPU whose files a case writes.
    static func machine() throws -> SyntheticRoot {
        let m = try SyntheticRoot()
        try m.machine(nodes: [(0, Array(0...3), 1 << 20), (1, Array(4...7), 1 << 20)])
        return m
    }

    struct DeviceFiles: Sendable, CustomTestStringConvertible {
        var label: String
        var numaNode: [UInt8]?
        var localCPUList: [UInt8]? = nil
        var localCPUs: [UInt8]? = nil
        /// The one warning the device must carry (nil: none).
        var code: ScanWarning.Code?
        var warnedFile: String = "numa_node"
        var locality: String
        var cpus: String
        var node: Int?
        var testDescription: String { label }
    }

    static func b(_ s: String) -> [UInt8] { Array(s.utf8) }

    static let deviceCases: [DeviceFiles] = [
        // numa_node, with local_cpulist 4-7 (node 1) as the fallback.
        .init(label: "numa_node 1", numaNode: b("1\n"), localCPUList: b("4-7"), code: nil, locality: "node", cpus: "4-7", node: 1),
        .init(label: "numa_node -1", numaNode: b("-1\n"), localCPUList: b("4-7"), code: nil, locality: "cpus", cpus: "4-7", node: 1),
        .init(label: "numa_node missing", numaNode: nil, localCPUList: b("4-7"), code: nil, locality: "cpus", cpus: "4-7", node: 1),
        .init(label: "numa_node empty", numaNode: b(""), localCPUList: b("4-7"), code: .malformed, locality: "cpus", cpus: "4-7", node: 1),
        .init(label: "numa_node whitespace", numaNode: b(" \n\t"), localCPUList: b("4-7"), code: .malformed, locality: "cpus", cpus: "4-7", node: 1),
        .init(label: "numa_node NUL", numaNode: [0x31, 0x00, 0x0a], localCPUList: b("4-7"), code: .malformed, locality: "cpus", cpus: "4-7", node: 1),
        .init(label: "numa_node garbage", numaNode: b("garbage\n"), localCPUList: b("4-7"), code: .malformed, locality: "cpus", cpus: "4-7", node: 1),
        .init(label: "numa_node invalid UTF-8", numaNode: [0xff, 0xfe, 0x31], localCPUList: b("4-7"), code: .malformed, locality: "cpus", cpus: "4-7", node: 1),
        .init(label: "numa_node range", numaNode: b("0-1\n"), localCPUList: b("4-7"), code: .malformed, locality: "cpus", cpus: "4-7", node: 1),
        .init(label: "numa_node huge", numaNode: b("99999999999999999999\n"), localCPUList: b("4-7"), code: .outOfRange, locality: "cpus", cpus: "4-7", node: 1),
        .init(label: "numa_node past MAX_NUMNODES", numaNode: b("5000\n"), localCPUList: b("4-7"), code: .outOfRange, locality: "cpus", cpus: "4-7", node: 1),
        .init(label: "numa_node -7", numaNode: b("-7\n"), localCPUList: b("4-7"), code: .outOfRange, locality: "cpus", cpus: "4-7", node: 1),
        .init(label: "numa_node names no node", numaNode: b("7\n"), localCPUList: b("4-7"), code: .outOfRange, locality: "cpus", cpus: "4-7", node: 1),
        // numa_node and local_cpulist disagree: numa_node wins, the conflict is on the device.
        .init(label: "conflict", numaNode: b("0\n"), localCPUList: b("4-7"), code: .conflict, warnedFile: "", locality: "node", cpus: "0-3", node: 0),
        .init(label: "conflict, partial overlap", numaNode: b("0\n"), localCPUList: b("2-5"), code: .conflict, warnedFile: "", locality: "node", cpus: "0-3", node: 0),
        .init(label: "numa_node with local all CPUs", numaNode: b("0\n"), localCPUList: b("0-7"), code: nil, locality: "node", cpus: "0-3", node: 0),
        .init(label: "numa_node with local empty", numaNode: b("1\n"), localCPUList: b(""), code: nil, locality: "node", cpus: "4-7", node: 1),
        // local_cpulist with numa_node -1.
        .init(label: "local empty", numaNode: b("-1"), localCPUList: b("\n"), code: nil, locality: "unknown", cpus: "", node: nil),
        .init(label: "local all CPUs", numaNode: b("-1"), localCPUList: b("0-7"), code: nil, locality: "unknown", cpus: "", node: nil),
        .init(label: "local beyond all CPUs", numaNode: b("-1"), localCPUList: b("0-4095"), code: nil, locality: "unknown", cpus: "", node: nil),
        .init(label: "local subset of a node", numaNode: b("-1"), localCPUList: b("4-5"), code: nil, locality: "cpus", cpus: "4-5", node: 1),
        .init(label: "local across nodes", numaNode: b("-1"), localCPUList: b("3-4"), code: nil, locality: "cpus", cpus: "3-4", node: nil),
        .init(label: "local offline CPUs only", numaNode: b("-1"), localCPUList: b("100-200"), code: nil, locality: "unknown", cpus: "", node: nil),
        .init(label: "local backwards", numaNode: b("-1"), localCPUList: b("7-4"), code: .malformed, warnedFile: "local_cpulist", locality: "unknown", cpus: "", node: nil),
        .init(label: "local huge", numaNode: b("-1"), localCPUList: b("0-99999999999"), code: .outOfRange, warnedFile: "local_cpulist", locality: "unknown", cpus: "", node: nil),
        .init(label: "local NUL", numaNode: b("-1"), localCPUList: [0x34, 0x00, 0x2d, 0x37], code: .malformed, warnedFile: "local_cpulist", locality: "unknown", cpus: "", node: nil),
        .init(label: "local garbage", numaNode: b("-1"), localCPUList: b("all"), code: .malformed, warnedFile: "local_cpulist", locality: "unknown", cpus: "", node: nil),
        .init(label: "local invalid UTF-8", numaNode: b("-1"), localCPUList: [0x34, 0xc3, 0x28], code: .malformed, warnedFile: "local_cpulist", locality: "unknown", cpus: "", node: nil),
        .init(label: "nothing at all", numaNode: nil, code: nil, locality: "unknown", cpus: "", node: nil),
        // local_cpus (the mask) when local_cpulist is absent.
        .init(label: "mask subset", numaNode: b("-1"), localCPUs: b("000000f0\n"), code: nil, locality: "cpus", cpus: "4-7", node: 1),
        .init(label: "mask all", numaNode: b("-1"), localCPUs: b("ffffffff,ffffffff\n"), code: nil, locality: "unknown", cpus: "", node: nil),
        .init(label: "mask empty file", numaNode: b("-1"), localCPUs: b(""), code: .malformed, warnedFile: "local_cpus", locality: "unknown", cpus: "", node: nil),
        .init(label: "mask garbage", numaNode: b("-1"), localCPUs: b("zz"), code: .malformed, warnedFile: "local_cpus", locality: "unknown", cpus: "", node: nil),
        .init(label: "mask too wide", numaNode: b("-1"), localCPUs: b(Array(repeating: "ffffffff", count: 2049).joined(separator: ",")),
              code: .outOfRange, warnedFile: "local_cpus", locality: "unknown", cpus: "", node: nil),
        .init(label: "mask numa_node wins", numaNode: b("0"), localCPUs: b("0000000f"), code: nil, locality: "node", cpus: "0-3", node: 0),
    ]

    @Test(arguments: deviceCases)
    func deviceFiles(_ c: DeviceFiles) throws {
        let m = try Self.machine()
        let dir = try m.pciDevice(Self.device, numaNode: nil)
        if let bytes = c.numaNode { try m.write("\(dir)/numa_node", bytes: bytes) }
        if let bytes = c.localCPUList { try m.write("\(dir)/local_cpulist", bytes: bytes) }
        if let bytes = c.localCPUs { try m.write("\(dir)/local_cpus", bytes: bytes) }
        let inventory = m.scan()
        #expect(inventory.warnings.isEmpty, "machine-level: \(inventory.warnings)")
        let d = try #require(inventory.device(pci(Self.device)))
        if let code = c.code {
            #expect(d.warnings.map(\.code) == [code], "\(d.warnings)")
            let path = c.warnedFile.isEmpty ? Self.deviceDir : "\(Self.deviceDir)/\(c.warnedFile)"
            #expect(d.warnings.first?.path == path)
        } else {
            #expect(d.warnings.isEmpty, "\(d.warnings)")
        }
        #expect(d.locality.name == c.locality)
        #expect(d.cpus.cpulist == c.cpus)
        #expect(d.numaNode?.rawValue == c.node)
        if c.code == nil {
            // With well-formed files, the independent reading of the rule agrees.
            #expect(localityRuleViolations(root: m.root, inventory: inventory).isEmpty)
        }
    }

    struct IdentityFile: Sendable, CustomTestStringConvertible {
        var file: String
        var bytes: [UInt8]?
        var code: ScanWarning.Code
        var testDescription: String { "\(file) \(bytes.map { String(decoding: $0.prefix(20), as: UTF8.self) } ?? "missing")" }
    }

    /// class: the function cannot be classified, so it is left out with one warning (`missing` when the
    /// directory is there but the file is not; a directory that is gone is `vanished`, below).
    @Test(arguments: [
        IdentityFile(file: "class", bytes: nil, code: .missing),
        IdentityFile(file: "class", bytes: b(""), code: .malformed),
        IdentityFile(file: "class", bytes: b(" \n"), code: .malformed),
        IdentityFile(file: "class", bytes: b("0xzz\n"), code: .malformed),
        IdentityFile(file: "class", bytes: b("-1\n"), code: .malformed),
        IdentityFile(file: "class", bytes: [0x30, 0x78, 0x00, 0x33], code: .malformed),
        IdentityFile(file: "class", bytes: [0x30, 0x78, 0xff, 0xfe], code: .malformed),
        IdentityFile(file: "class", bytes: b("0x1000000\n"), code: .outOfRange),
        IdentityFile(file: "class", bytes: b("0x" + String(repeating: "f", count: 40)), code: .outOfRange),
    ])
    func classFile(_ c: IdentityFile) throws {
        let m = try Self.machine()
        let dir = try m.pciDevice(Self.device, numaNode: "0")
        if let bytes = c.bytes { try m.write("\(dir)/\(c.file)", bytes: bytes) } else { try m.remove("\(dir)/\(c.file)") }
        let inventory = m.scan()
        #expect(inventory.devices.isEmpty)
        #expect(inventory.warnings.map(\.code) == [c.code], "\(inventory.warnings)")
        #expect(inventory.warnings.first?.path == "\(Self.deviceDir)/\(c.file)")
    }

    /// vendor/device: captures and some kernels leave them out. The function is still listed, with what
    /// is known (its class, its locality) and 0xffff, PCI's "no id", in place of the id, and the
    /// device carries one warning naming the file.
    @Test(arguments: [
        IdentityFile(file: "vendor", bytes: nil, code: .missing),
        IdentityFile(file: "vendor", bytes: b("0x10000\n"), code: .outOfRange),
        IdentityFile(file: "vendor", bytes: b("nvidia\n"), code: .malformed),
        IdentityFile(file: "device", bytes: nil, code: .missing),
        IdentityFile(file: "device", bytes: [0], code: .malformed),
    ])
    func vendorAndDeviceFiles(_ c: IdentityFile) throws {
        let m = try Self.machine()
        let dir = try m.pciDevice(Self.device, numaNode: "0")
        if let bytes = c.bytes { try m.write("\(dir)/\(c.file)", bytes: bytes) } else { try m.remove("\(dir)/\(c.file)") }
        let inventory = m.scan()
        #expect(inventory.warnings.isEmpty, "\(inventory.warnings)")
        let d = try #require(inventory.devices.first, "the function is listed")
        #expect(d.address == pci(Self.device) && d.numaNode == node(0) && !d.cpus.isEmpty)
        #expect((c.file == "vendor" ? d.vendor : d.deviceID) == Device.unknownID)
        #expect(d.warnings.map(\.code) == [c.code], "\(d.warnings)")
        #expect(d.warnings.first?.path == "\(Self.deviceDir)/\(c.file)")
    }

    struct TopologyFile: Sendable, CustomTestStringConvertible {
        var file: String
        var bytes: [UInt8]?
        /// The warnings, in order (code and file).
        var expected: [(ScanWarning.Code, String)]
        var node1CPUs: String = "4-7"
        var node1Memory: UInt64 = 1 << 30
        var testDescription: String { "\(file) \(bytes.map { String(decoding: $0.prefix(20), as: UTF8.self) } ?? "missing")" }
    }

    static let node1 = "sys/devices/system/node/node1"
    static let cpuDir = "sys/devices/system/cpu"

    @Test(arguments: [
        TopologyFile(file: "\(node1)/cpulist", bytes: b("\n"), expected: [], node1CPUs: ""),   // CPU-less node
        TopologyFile(file: "\(node1)/cpulist", bytes: b("garbage"), expected: [(.malformed, "\(node1)/cpulist"), (.missing, "\(node1)/cpumap")], node1CPUs: ""),
        TopologyFile(file: "\(node1)/cpulist", bytes: b("7-4"), expected: [(.malformed, "\(node1)/cpulist"), (.missing, "\(node1)/cpumap")], node1CPUs: ""),
        TopologyFile(file: "\(node1)/cpulist", bytes: b("4-99999999"), expected: [(.outOfRange, "\(node1)/cpulist"), (.missing, "\(node1)/cpumap")], node1CPUs: ""),
        TopologyFile(file: "\(node1)/cpulist", bytes: [0x34, 0, 0x37], expected: [(.malformed, "\(node1)/cpulist"), (.missing, "\(node1)/cpumap")], node1CPUs: ""),
        TopologyFile(file: "\(node1)/cpulist", bytes: nil, expected: [(.missing, "\(node1)/cpumap")], node1CPUs: ""),
        TopologyFile(file: "\(node1)/meminfo", bytes: nil, expected: [(.missing, "\(node1)/meminfo")], node1Memory: 0),
        TopologyFile(file: "\(node1)/meminfo", bytes: b(""), expected: [(.malformed, "\(node1)/meminfo")], node1Memory: 0),
        TopologyFile(file: "\(node1)/meminfo", bytes: b("Node 1 MemFree: 5 kB\n"), expected: [(.malformed, "\(node1)/meminfo")], node1Memory: 0),
        TopologyFile(file: "\(node1)/meminfo", bytes: b("Node 1 MemTotal: 99999999999999999999 kB\n"), expected: [(.outOfRange, "\(node1)/meminfo")], node1Memory: 0),
        TopologyFile(file: "\(node1)/meminfo", bytes: [0xff, 0xfe, 0x00], expected: [(.malformed, "\(node1)/meminfo")], node1Memory: 0),
        TopologyFile(file: "\(node1)/meminfo", bytes: b("Node 1 MemTotal: 0 kB\n"), expected: [], node1Memory: 0),   // memory-less node
        TopologyFile(file: "\(node1)/distance", bytes: nil, expected: [(.missing, "\(node1)/distance")]),
        TopologyFile(file: "\(node1)/distance", bytes: b(""), expected: [(.malformed, "\(node1)/distance")]),
        TopologyFile(file: "\(node1)/distance", bytes: b("20\n"), expected: [(.malformed, "\(node1)/distance")]),
        TopologyFile(file: "\(node1)/distance", bytes: b("20 10 20\n"), expected: [(.malformed, "\(node1)/distance")]),
        TopologyFile(file: "\(node1)/distance", bytes: b("20 x\n"), expected: [(.malformed, "\(node1)/distance")]),
        TopologyFile(file: "\(node1)/distance", bytes: b("20 99999\n"), expected: [(.outOfRange, "\(node1)/distance")]),
        TopologyFile(file: "\(node1)/distance", bytes: b("-1 10\n"), expected: [(.outOfRange, "\(node1)/distance")]),
        TopologyFile(file: "\(cpuDir)/online", bytes: nil, expected: [(.missing, "\(cpuDir)/online")]),
        TopologyFile(file: "\(cpuDir)/online", bytes: b("garbage"), expected: [(.malformed, "\(cpuDir)/online")]),
        TopologyFile(file: "\(cpuDir)/online", bytes: b("0-99999999"), expected: [(.outOfRange, "\(cpuDir)/online")]),
        TopologyFile(file: "\(cpuDir)/possible", bytes: b("7-0"), expected: [(.malformed, "\(cpuDir)/possible")]),
        TopologyFile(file: "\(cpuDir)/cpu4/topology/thread_siblings_list", bytes: b("garbage"),
                     expected: [(.malformed, "\(cpuDir)/cpu4/topology/thread_siblings_list")]),
        TopologyFile(file: "\(cpuDir)/cpu4/topology/thread_siblings_list", bytes: b("4-99999999"),
                     expected: [(.outOfRange, "\(cpuDir)/cpu4/topology/thread_siblings_list")]),
    ])
    func topologyFiles(_ c: TopologyFile) throws {
        let m = try Self.machine()
        try m.pciDevice(Self.device, numaNode: "1")
        if let bytes = c.bytes { try m.write(c.file, bytes: bytes) } else { try m.remove(c.file) }
        let inventory = m.scan()
        #expect(inventory.warnings.map(\.code) == c.expected.map(\.0), "\(inventory.warnings)")
        #expect(inventory.warnings.map(\.path) == c.expected.map(\.1))
        let topology = inventory.topology
        #expect(topology.nodes.map(\.id) == [node(0), node(1)])
        #expect(topology.node(node(1))?.cpus.cpulist == c.node1CPUs)
        #expect(topology.node(node(1))?.memoryBytes == c.node1Memory)
        #expect(topology.onlineCPUs == cpuset("0-7"), "online falls back to the nodes' CPUs when unreadable")
        // The GPU on node 1 still resolves: to node 1's CPUs, or to node 0's when node 1 lost its CPUs.
        let gpu = try #require(inventory.device(pci(Self.device)))
        #expect(gpu.numaNode == node(1))
        #expect(gpu.cpus == (c.node1CPUs.isEmpty ? cpuset("0-3") : cpuset("4-7")))
    }

    /// A sibling list that does not parse leaves its CPU as a core of its own; the cores still partition
    /// the online CPUs.
    @Test func badSiblingListKeepsCoresDisjoint() throws {
        let m = try Self.machine()
        try m.write("\(Self.cpuDir)/cpu5/topology/thread_siblings_list", "garbage\n")
        let cores = m.scan().topology.cores
        #expect(cores == [cpuset("0-1"), cpuset("2-3"), cpuset("4-5"), cpuset("6-7")])
        try m.write("\(Self.cpuDir)/cpu4/topology/thread_siblings_list", "garbage\n")
        #expect(m.scan().topology.cores == [cpuset("0-1"), cpuset("2-3"), [4], [5], cpuset("6-7")])
    }

    /// A list longer than any sysfs list can be (the kernel's longest form for 65,536 CPUs is about
    /// 190 kB) is refused with a warning, not parsed (each such file cost a parse of up to 1 MiB), and
    /// not truncated into a list that still parses.
    @Test func oversizedListsAreRefusedNotParsed() throws {
        let m = try Self.machine()
        let huge = "4-5," + String(repeating: "4,", count: (SysfsScanner.maxListBytes / 2) + 10) + "5\n"
        try m.write("\(Self.cpuDir)/cpu4/topology/thread_siblings_list", huge)
        try m.write("\(Self.cpuDir)/cpu4/topology/core_cpus_list", huge)
        _ = try m.pciDevice(Self.device, numaNode: "-1", localCPUList: huge)
        let inventory = m.scan()
        #expect(inventory.topology.cores == [cpuset("0-1"), cpuset("2-3"), [4], [5], cpuset("6-7")])
        let oversized = inventory.allWarnings.filter { $0.code == .outOfRange && $0.detail.contains("longer than") }
        #expect(oversized.count == 3, "\(inventory.allWarnings)")
        #expect(inventory.devices.first?.locality.name == "unknown")
    }

    // MARK: Directory entries

    @Test func entriesThatAreNotAddresses() throws {
        let m = try Self.machine()
        try m.pciDevice(Self.device, numaNode: "1")
        try m.mkdir("sys/bus/pci/devices/garbage")
        try m.symlink("sys/bus/pci/devices/0000:3b:00.8", to: "nowhere")
        let inventory = m.scan()
        #expect(inventory.devices.map(\.address) == [pci(Self.device)])
        #expect(inventory.warnings.map(\.code) == [.malformed, .malformed])
        #expect(Set(inventory.warnings.map(\.path)) == ["sys/bus/pci/devices/garbage", "sys/bus/pci/devices/0000:3b:00.8"])
    }

    /// A tree that spells an address in upper case is read from that entry, and a second spelling of
    /// the same address is not a second device.
    @Test func nonCanonicalAndDuplicateEntries() throws {
        let m = try Self.machine()
        let dir = try m.pciDevice("0000:5e:00.0", numaNode: "0")
        try m.remove("sys/bus/pci/devices/0000:5e:00.0")
        try m.symlink("sys/bus/pci/devices/0000:5E:00.0", to: "../../../" + dir.dropFirst(4))
        var inventory = m.scan()
        #expect(inventory.devices.map(\.address) == [pci("0000:5e:00.0")])
        #expect(inventory.allWarnings.isEmpty, "\(inventory.allWarnings)")
        #expect(inventory.devices.first?.numaNode == node(0))

        try m.symlink("sys/bus/pci/devices/0000:5e:00.0", to: "../../../" + dir.dropFirst(4))
        inventory = m.scan()
        #expect(inventory.devices.count == 1)
        #expect(inventory.warnings.map(\.code) == [.malformed])
    }

    @Test func nodeDirectoriesInOtherSpellingsAreIgnored() throws {
        let m = try Self.machine()
        try m.pciDevice(Self.device, numaNode: "1")
        for bogus in ["node01", "node+1", "node-1", "nodeX", "node99999999999999999999", "node1024"] {
            try copyNodeDirectory(m, from: "node1", to: bogus)
        }
        let inventory = m.scan()
        #expect(inventory.topology.nodes.map(\.id) == [node(0), node(1)])
        #expect(inventory.warnings.isEmpty, "\(inventory.warnings)")
    }

    // MARK: A device that vanishes

    /// Listed, its directory still there, but no class file: it cannot be classified, so it is
    /// skipped with one `missing` warning and the rest of the scan goes on.
    @Test func listedButClassMissing() throws {
        let m = try Self.machine()
        let dir = try m.pciDevice(Self.device, numaNode: "0")
        try m.pciDevice("0000:5e:00.0", numaNode: "1")
        try m.remove("\(dir)/class")
        let inventory = m.scan()
        #expect(inventory.devices.map(\.address) == [pci("0000:5e:00.0")])
        #expect(inventory.warnings.map(\.code) == [.missing])
        #expect(inventory.warnings.first?.path == "\(Self.deviceDir)/class")
    }

    /// The directory is removed between the listing and the read (hot removal mid-scan).
    @Test(arguments: [false, true])
    func removedBetweenListAndRead(alsoRemoveLink: Bool) throws {
        let m = try Self.machine()
        let dir = try m.pciDevice(Self.device, numaNode: "0")
        let scanner = SysfsScanner(root: m.root)
        var warnings: [ScanWarning] = []
        let topology = scanner.scanTopology(warnings: &warnings)
        let listed = try m.root.list("sys/bus/pci/devices")
        #expect(listed == [Self.device])
        try m.remove(dir)
        if alsoRemoveLink { try m.remove(Self.deviceDir) }
        switch scanner.readDevice(pci(listed[0]), topology: topology) {
        case .absent(let w):
            #expect(w.code == .vanished)
            #expect(w.path.hasPrefix(Self.deviceDir))
        case let other:
            Issue.record("expected .absent, got \(other)")
        }
    }

    /// A file that is a directory, or unreadable, is `unreadable`, not a crash.
    @Test func numaNodeThatIsADirectory() throws {
        let m = try Self.machine()
        let dir = try m.pciDevice(Self.device, numaNode: nil, localCPUList: "0-3")
        try m.mkdir("\(dir)/numa_node")
        let d = try #require(m.scan().device(pci(Self.device)))
        #expect(d.warnings.map(\.code) == [.unreadable])
        #expect(d.locality == .cpus(cpuset("0-3"), node: node(0)))
    }
}

/// Copies a node directory under another name (for the bogus-name test).
private func copyNodeDirectory(_ m: SyntheticRoot, from: String, to: String) throws {
    let base = "sys/devices/system/node"
    for file in ["cpulist", "meminfo", "distance"] {
        let text = try m.root.read("\(base)/\(from)/\(file)")
        try m.write("\(base)/\(to)/\(file)", text)
    }
}

/// `readAttribute` stops at the first short read; it must give what `read` gives for every size
/// around its one-page buffer and every bound.
@Suite("SysfsRoot.readAttribute")
struct ReadAttributeTests {
    @Test(arguments: [0, 1, 63, 64, 65, 4095, 4096, 4097, 8192, 10_000])
    func agreesWithRead(size: Int) throws {
        let tree = try SyntheticRoot()
        let text = String((0..<size).map { i in Character(Unicode.Scalar(UInt8(0x30 + i % 40))) })
        try tree.write("sys/attr", text)
        let root = SysfsRoot(tree.path)
        for limit in [64, 4096, 4097, 1 << 20] {
            #expect(try root.readAttribute("sys/attr", limit: limit) == root.read("sys/attr", limit: limit),
                    "size \(size) limit \(limit)")
        }
    }

    @Test func aCharacterAcrossThePageIsKeptWhole() throws {
        let tree = try SyntheticRoot()
        let text = String(repeating: "a", count: 4095) + "é" + String(repeating: "b", count: 10)
        try tree.write("sys/attr", text)
        #expect(try SysfsRoot(tree.path).readAttribute("sys/attr", limit: 1 << 20) == text)
    }

    @Test func missingAndDirectoryAreTypedErrors() throws {
        let tree = try SyntheticRoot()
        try tree.write("sys/dir/file", "1\n")
        let root = SysfsRoot(tree.path)
        #expect(throws: SysfsRoot.ReadError.self) { try root.readAttribute("sys/none") }
        #expect(throws: SysfsRoot.ReadError.self) { try root.readAttribute("sys/dir") }
        #expect((try? root.readAttribute("sys/none")) == nil)
        do {
            _ = try root.readAttribute("sys/none")
        } catch {
            #expect(error.isMissing)
        }
    }
}
