import Testing
@testable import NumaPlaceCore
import NumaPlaceTestSupport

/// What real kernels and captures write that the first reader got wrong (issue 15, measured on unseen
/// machines): stray whitespace, partial device directories, distance rows over possible nodes, nodes
/// that share CPUs, missing distance files; and DESIGN.md's rule 4 on one-node machines.
@Suite("Real kernels' quirks")
struct KernelQuirkTests {
    /// An empty root with an empty PCI directory (so that only the files a test writes can warn).
    static func root() throws -> SyntheticRoot {
        let m = try SyntheticRoot()
        try m.mkdir("sys/bus/pci/devices")
        return m
    }

    /// Padding a kernel or a capture may put around a value: every form parses to the same set.
    @Test(arguments: ["0-3", " 0-3", "0-3 ", "\t0-3\n", "0-3\r\n", " 0-3 \r\n", "\u{0B}0-3\u{0C}\n", "0-1, 2-3\n"])
    func nodeCPUListWithStrayWhitespace(_ text: String) throws {
        let m = try Self.root()
        try m.machine(nodes: [(0, Array(0...3), 1 << 20), (1, Array(4...7), 1 << 20)])
        try m.write("sys/devices/system/node/node0/cpulist", text)
        let inventory = m.scan()
        #expect(inventory.topology.node(node(0))?.cpus == cpuset("0-3"), "\(inventory.warnings)")
        #expect(inventory.warnings.isEmpty, "\(inventory.warnings)")
    }

    @Test(arguments: ["10 20\r\n", " 10  20 \n", "10\t20"])
    func distanceRowWithStrayWhitespace(_ text: String) throws {
        let m = try Self.root()
        try m.machine(nodes: [(0, Array(0...3), 1 << 20), (1, Array(4...7), 1 << 20)])
        try m.write("sys/devices/system/node/node0/distance", text)
        let t = m.scan().topology
        #expect(t.distance(node(0), node(0)) == 10 && t.distance(node(0), node(1)) == 20)
    }

    /// Node 0 offline: the directories are node1 and node2, and a kernel that writes one entry per
    /// possible node gives rows of three. Read in the order of `node/possible`, each node's own
    /// distance is the local 10 (read in directory order, node 1 would be 21 from itself).
    @Test func distanceRowsOverPossibleNodes() throws {
        let m = try Self.root()
        try m.node(1, cpus: "0-3", memoryKB: 1 << 20, distances: [21, 10, 31])
        try m.node(2, cpus: "4-7", memoryKB: 1 << 20, distances: [21, 31, 10])
        try m.write("sys/devices/system/node/possible", "0-2\n")
        try m.write("sys/devices/system/node/online", "1-2\n")
        try m.cpus(online: "0-7", siblings: (0...7).map { [$0] })
        let inventory = m.scan()
        let t = inventory.topology
        #expect(t.nodes.map(\.id) == [node(1), node(2)])
        #expect(t.distance(node(1), node(1)) == 10 && t.distance(node(2), node(2)) == 10)
        #expect(t.distance(node(1), node(2)) == 31 && t.distance(node(2), node(1)) == 31)
        #expect(inventory.warnings.isEmpty, "\(inventory.warnings)")
    }

    /// Rows that fit no order (not the directories, not online, not possible) are reported, and the
    /// missing entries get the kernel's defaults, so every node has a distance to every node.
    @Test func distanceRowThatFitsNoOrder() throws {
        let m = try Self.root()
        try m.machine(nodes: [(0, Array(0...3), 1 << 20), (1, Array(4...7), 1 << 20), (2, [8], 1 << 20)])
        try m.write("sys/devices/system/node/node2/distance", "30 30\n")
        let inventory = m.scan()
        #expect(inventory.warnings.map(\.code) == [.malformed], "\(inventory.warnings)")
        let n2 = try #require(inventory.topology.node(node(2)))
        #expect(Set(n2.distances.keys) == [node(0), node(1), node(2)])
        #expect(n2.distances[node(2)] == 10)
    }

    /// No distance files at all (a capture without them): one warning per node, and the table the
    /// scan holds is the kernel's default one, the same the daemon replies with.
    @Test func noDistanceFiles() throws {
        let m = try Self.root()
        try m.node(0, cpus: "0-3", memoryKB: 1 << 20, distances: nil)
        try m.node(1, cpus: "4-7", memoryKB: 1 << 20, distances: nil)
        try m.cpus(online: "0-7", siblings: (0...7).map { [$0] })
        let inventory = m.scan()
        #expect(inventory.warnings.map(\.code) == [.missing, .missing], "\(inventory.warnings)")
        for n in inventory.topology.nodes {
            #expect(n.distances == [n.id: 10, (n.id == node(0) ? node(1) : node(0)): 20])
        }
    }

    /// Firmware that gives two nodes the same CPUs: both keep them, the later node carries a conflict
    /// warning, and a device on either node gets that node's CPUs.
    @Test func nodesSharingCPUs() throws {
        let m = try Self.root()
        try m.machine(nodes: [(0, Array(0...3), 1 << 20), (1, Array(0...3), 1 << 20)])
        try m.pciDevice("0000:3b:00.0", numaNode: "1")
        let inventory = m.scan()
        #expect(inventory.topology.node(node(1))?.cpus == cpuset("0-3"))
        #expect(inventory.warnings.map(\.code) == [.conflict])
        #expect(inventory.warnings.first?.path == "sys/devices/system/node/node1/cpulist")
        #expect(inventory.device(pci("0000:3b:00.0"))?.locality == .node(node(1), cpuNodes: [node(1)]))
    }

    /// Rule 4: one CPU-bearing node (a VM), `numa_node` -1 and `local_cpulist` all CPUs: the device is
    /// on that node, with its CPUs. The same files on a two-node machine stay unknown.
    @Test func oneCPUNodeHoldsEveryDevice() throws {
        let one = try SyntheticRoot()
        try one.machine(nodes: [(0, Array(0...3), 1 << 20)])
        try one.pciDevice("0000:06:00.0", numaNode: "-1", localCPUList: "0-3")
        let d = try #require(one.scan().device(pci("0000:06:00.0")))
        #expect(d.locality == .onlyNode(node(0)) && d.numaNode == node(0) && d.cpus == cpuset("0-3"))
        #expect(d.locality.name == "only-node")

        // A memory-only node beside it does not make a second place to be.
        let withHBM = try SyntheticRoot()
        try withHBM.machine(nodes: [(0, Array(0...3), 1 << 20)])
        try withHBM.node(1, cpus: "", memoryKB: 1 << 20, distances: [20, 10])
        try withHBM.write("sys/devices/system/node/node0/distance", "10 20\n")
        try withHBM.pciDevice("0000:06:00.0", numaNode: "-1")
        #expect(withHBM.scan().device(pci("0000:06:00.0"))?.locality == .onlyNode(node(0)))

        let two = try SyntheticRoot()
        try two.machine(nodes: [(0, Array(0...3), 1 << 20), (1, Array(4...7), 1 << 20)])
        try two.pciDevice("0000:06:00.0", numaNode: "-1", localCPUList: "0-7")
        #expect(two.scan().device(pci("0000:06:00.0"))?.locality == .unknown)
    }

    /// Display controllers: of GPU makers (and every 3D controller) → gpu; of anyone else (a BMC's or a
    /// hypervisor's VGA) → display.
    @Test(arguments: [
        (0x030000, 0x1a03, DeviceKind.display),   // ASPEED AST2x00 VGA
        (0x030000, 0x102b, .display),             // Matrox G200 of a BMC
        (0x030000, 0x1af4, .display),             // virtio GPU of a hypervisor
        (0x030000, 0x1234, .display),             // QEMU/bochs stdvga
        (0x030000, 0x15ad, .display),             // VMware SVGA
        (0x030000, 0x10de, .gpu),                 // NVIDIA in VGA mode
        (0x030000, 0x1002, .gpu),                 // AMD
        (0x038000, 0x1002, .gpu),                 // AMD Instinct (display, other)
        (0x030200, 0x10de, .gpu),                 // NVIDIA 3D controller
        (0x030200, 0x1a03, .gpu),                 // any 3D controller
    ])
    func displayIsNotAGPU(_ classCode: Int, _ vendor: Int, _ kind: DeviceKind) {
        #expect(DeviceClassifier().kind(classCode: UInt32(classCode), vendor: UInt16(vendor), device: 0x1234) == kind)
    }

    /// The display adapters of the captured machines, by address.
    @Test(.enabled(if: FixtureLibrary.isPresent, Comment(rawValue: FixtureLibrary.absentMessage)),
          arguments: [("hwloc-32em64t-2n8c+1mic", "0000:05:00.0", DeviceKind.display),
                      ("ghw-xeon-L5640", "0000:07:03.0", .display),
                      ("ghw-accel-nvidia", "0000:04:00.0", .display),
                      ("ghw-accel-nvidia", "0000:06:00.0", .gpu)])
    func fixtureDisplayAdapters(_ name: String, _ address: String, _ kind: DeviceKind) throws {
        let inventory = SysfsScanner(root: try FixtureLibrary.root(name)).scan()
        #expect(inventory.device(pci(address))?.kind == kind, "\(inventory.devices.map { "\($0.address) \($0.kind)" })")
    }
}
