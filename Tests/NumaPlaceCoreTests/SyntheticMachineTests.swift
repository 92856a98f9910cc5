import Testing
@testable import NumaPlaceCore
import NumaPlaceTestSupport

/// Machines no captured tree shows, written by the tests themselves.
@Suite("Synthetic machines")
struct SyntheticMachineTests {
    // MARK: GB200-like: each GPU's numa_node is its own CPU-less HBM node

    static let gb200GPUs: [(address: String, hbm: Int, cpuNode: Int)] = [
        ("0008:01:00.0", 2, 0), ("0009:01:00.0", 3, 0), ("0018:01:00.0", 4, 1), ("0019:01:00.0", 5, 1),
    ]

    /// Two Grace CPU nodes (0: CPUs 0-71, 1: CPUs 72-143) and four HBM nodes (2, 3 near node 0; 4, 5 near
    /// node 1), distances as a GB200 compute tray's SLIT shows them; one GPU per HBM node behind its own
    /// root port, with an empty local_cpulist (cpumask_of_node of a CPU-less node is empty).
    static func gb200() throws -> SyntheticRoot {
        let m = try SyntheticRoot()
        let rows: [Int: [Int]] = [
            0: [10, 40, 80, 80, 120, 120], 1: [40, 10, 120, 120, 80, 80],
            2: [80, 120, 10, 120, 160, 160], 3: [80, 120, 120, 10, 160, 160],
            4: [120, 80, 160, 160, 10, 120], 5: [120, 80, 160, 160, 120, 10],
        ]
        try m.node(0, cpus: "0-71", memoryKB: 503_316_480, distances: rows[0])
        try m.node(1, cpus: "72-143", memoryKB: 503_316_480, distances: rows[1])
        for id in 2...5 { try m.node(id, cpus: "", memoryKB: 195_035_136, distances: rows[id]) }
        try m.cpus(online: "0-143", siblings: (0...143).map { [$0] })   // Grace: no SMT
        for gpu in gb200GPUs {
            let domain = gpu.address.prefix(4)
            try m.pciDevice(gpu.address, bridges: ["\(domain):00:00.0"], classCode: "0x030200", vendor: "0x10de",
                            device: "0x2941", numaNode: "\(gpu.hbm)", localCPUList: "", driver: "nvidia")
        }
        // A ConnectX-7 on each CPU node (InfiniBand and Ethernet from an RDMA vendor), and an Ethernet
        // function of a vendor not on the RDMA list, which is not managed.
        try m.pciDevice("0000:01:00.0", bridges: ["0000:00:00.0"], classCode: "0x020700", vendor: "0x15b3",
                        device: "0x1021", numaNode: "0", localCPUList: "0-71", driver: "mlx5_core")
        try m.pciDevice("0002:01:00.0", bridges: ["0002:00:00.0"], classCode: "0x020000", vendor: "0x15b3",
                        device: "0x1021", numaNode: "1", localCPUList: "72-143")
        try m.pciDevice("0003:01:00.0", classCode: "0x020000", vendor: "0x8086", device: "0x1533", numaNode: "1",
                        localCPUList: "72-143")
        return m
    }

    @Test func gb200GPUsResolveToNearestCPUNode() throws {
        let m = try Self.gb200()
        let inventory = m.scan()
        #expect(inventory.allWarnings.isEmpty, "\(inventory.allWarnings)")
        let topology = inventory.topology
        #expect(topology.nodes.map(\.id.rawValue) == [0, 1, 2, 3, 4, 5])
        #expect(topology.nodes.filter(\.hasCPUs).map(\.id.rawValue) == [0, 1])
        #expect(topology.nodes.allSatisfy { $0.hasMemory })
        for gpu in Self.gb200GPUs {
            let d = try #require(inventory.device(pci(gpu.address)), "\(gpu.address)")
            let cpuNode = node(gpu.cpuNode)
            #expect(d.kind == .gpu)
            #expect(d.vendorName == "NVIDIA")
            #expect(d.classHex == "0x030200" && d.deviceHex == "0x2941")
            #expect(d.driver == "nvidia")
            #expect(d.firmwareNode == node(gpu.hbm))
            #expect(d.locality == .node(node(gpu.hbm), cpuNodes: [cpuNode]))
            #expect(d.numaNode == node(gpu.hbm), "numaNode stays the HBM node")
            #expect(d.cpus == topology.node(cpuNode)?.cpus)
            #expect(d.cpuNodes(in: topology) == [cpuNode])
            #expect(d.placementNodes(in: topology) == [cpuNode])
            #expect(d.pciePath == [pci(String(gpu.address.prefix(4)) + ":00:00.0")])
        }
        // The NICs: both ConnectX functions are managed, the other Ethernet is not.
        #expect(inventory.devices.filter { $0.kind == .nic }.map(\.address.description) == ["0000:01:00.0", "0002:01:00.0"])
        #expect(inventory.device(pci("0000:01:00.0"))?.pciePath == [pci("0000:00:00.0")])
        #expect(inventory.device(pci("0000:01:00.0"))?.driver == "mlx5_core")
        #expect(inventory.device(pci("0003:01:00.0")) == nil)
        #expect(localityRuleViolations(root: m.root, inventory: inventory).isEmpty)
    }

    /// An HBM node at the same distance from both CPU nodes takes the CPUs of both.
    @Test func hbmNodeEquidistantTakesBothCPUNodes() throws {
        let m = try SyntheticRoot()
        try m.node(0, cpus: "0-3", memoryKB: 1 << 20, distances: [10, 40, 80])
        try m.node(1, cpus: "4-7", memoryKB: 1 << 20, distances: [40, 10, 80])
        try m.node(2, cpus: "", memoryKB: 1 << 20, distances: [80, 80, 10])
        try m.cpus(online: "0-7", siblings: (0...7).map { [$0] })
        try m.pciDevice("0000:3b:00.0", numaNode: "2")
        let inventory = m.scan()
        let d = try #require(inventory.device(pci("0000:3b:00.0")))
        #expect(d.locality == .node(node(2), cpuNodes: [node(0), node(1)]))
        #expect(d.cpus == cpuset("0-7"))
        #expect(d.placementNodes(in: inventory.topology) == [node(0), node(1)])
    }

    // MARK: Sparse node ids

    @Test(arguments: [[0, 1, 8, 9], [0, 1, 2, 33]])
    func sparseNodeIDs(ids: [Int]) throws {
        let m = try SyntheticRoot()
        // Node k (k-th id) has CPUs 4k…4k+3; distance 10 to itself, 11 to its pair (0↔1, 2↔3), 21 beyond.
        for (k, id) in ids.enumerated() {
            let row = ids.indices.map { j in j == k ? 10 : (j / 2 == k / 2 ? 11 : 21) }
            try m.node(id, cpus: "\(4 * k)-\(4 * k + 3)", memoryKB: UInt64(k + 1) << 20, distances: row)
        }
        try m.cpus(online: "0-15", siblings: stride(from: 0, to: 16, by: 2).map { [$0, $0 + 1] })
        let last = ids[3]
        let gap = (1..<last).first { !ids.contains($0) } ?? last + 1
        try m.pciDevice("0000:3b:00.0", numaNode: "\(last)", localCPUList: "12-15")
        try m.pciDevice("0000:5e:00.0", numaNode: "\(gap)", localCPUList: "8-9")   // a node id that does not exist
        try m.pciDevice("0000:af:00.0", numaNode: "-1", localCPUList: "4-7")
        let inventory = m.scan()
        #expect(inventory.warnings.isEmpty, "\(inventory.warnings)")
        let topology = inventory.topology
        #expect(topology.nodes.map(\.id.rawValue) == ids)
        for (k, id) in ids.enumerated() {
            let n = try #require(topology.node(node(id)))
            #expect(n.cpus == cpuset("\(4 * k)-\(4 * k + 3)"))
            #expect(n.memoryBytes == UInt64(k + 1) << 30)
            #expect(n.distances.count == 4)
            for (j, other) in ids.enumerated() {
                #expect(topology.distance(node(id), node(other)) == (j == k ? 10 : (j / 2 == k / 2 ? 11 : 21)))
            }
        }
        #expect(topology.nodeHolding(cpuset("12-13")) == node(last))
        #expect(topology.nodesIntersecting(cpuset("3-4")) == [node(ids[0]), node(ids[1])])

        let onLast = try #require(inventory.device(pci("0000:3b:00.0")))
        #expect(onLast.locality == .node(node(last), cpuNodes: [node(last)]))
        #expect(onLast.cpus == cpuset("12-15"))

        let onGap = try #require(inventory.device(pci("0000:5e:00.0")))
        #expect(onGap.warnings.map(\.code) == [.outOfRange])
        #expect(onGap.locality == .cpus(cpuset("8-9"), node: node(ids[2])))

        let noNode = try #require(inventory.device(pci("0000:af:00.0")))
        #expect(noNode.locality == .cpus(cpuset("4-7"), node: node(ids[1])))
        #expect(noNode.numaNode == node(ids[1]))
        #expect(localityRuleViolations(root: m.root, inventory: inventory).isEmpty)
    }

    // MARK: 2048 CPUs

    /// Two nodes of 1024 CPUs with Intel-style numbering (the SMT sibling of CPU i is i + 1024), more
    /// than glibc's 1024-bit cpu_set_t holds.
    @Test func machineWith2048CPUs() throws {
        let m = try SyntheticRoot()
        let node0 = "0-511,1024-1535", node1 = "512-1023,1536-2047"
        try m.node(0, cpus: node0, memoryKB: 1 << 30, distances: [10, 21])
        try m.node(1, cpus: node1, memoryKB: 1 << 30, distances: [21, 10])
        try m.cpus(online: "0-2047", possible: "0-4095", siblings: (0..<1024).map { [$0, $0 + 1024] })
        let node1Mask = cpuset(node1).hexMask
        #expect(node1Mask.split(separator: ",").count == 64)
        try m.pciDevice("0000:3b:00.0", numaNode: "1", localCPUList: node1)
        try m.pciDevice("0000:5e:00.0", numaNode: "-1", localCPUs: node1Mask)
        try m.pciDevice("0000:af:00.0", numaNode: "-1", localCPUList: "0-2047")
        try m.pciDevice("0000:d8:00.0", numaNode: "-1", localCPUs: cpuset("2040-2047").hexMask)
        let inventory = m.scan()
        #expect(inventory.allWarnings.isEmpty, "\(inventory.allWarnings)")
        let topology = inventory.topology
        #expect(topology.onlineCPUs.count == 2048)
        #expect(topology.possibleCPUs.count == 4096)
        #expect(topology.node(node(1))?.cpus == cpuset(node1))
        #expect(topology.cores.count == 1024)
        #expect(topology.cores.first == [0, 1024])
        #expect(topology.cores.last == [1023, 2047])
        #expect(inventory.device(pci("0000:3b:00.0"))?.cpus.count == 1024)
        #expect(inventory.device(pci("0000:5e:00.0"))?.locality == .cpus(cpuset(node1), node: node(1)))
        #expect(inventory.device(pci("0000:af:00.0"))?.locality == .unknown)
        #expect(inventory.device(pci("0000:d8:00.0"))?.locality == .cpus(cpuset("2040-2047"), node: node(1)))
        #expect(localityRuleViolations(root: m.root, inventory: inventory).isEmpty)
    }

    // MARK: Memory-less node with CPUs

    /// Node 1 has CPUs but no memory (SNC/NPS layouts, or memory offlined): its device's workers run on
    /// its CPUs and take memory from the nearest node with memory (node 2 at 11, not node 0 at 21).
    @Test func memorylessNodeWithCPUs() throws {
        let m = try SyntheticRoot()
        try m.node(0, cpus: "0-3", memoryKB: 1 << 20, distances: [10, 21, 21])
        try m.node(1, cpus: "4-7", memoryKB: 0, distances: [21, 10, 11])
        try m.node(2, cpus: "8-11", memoryKB: 1 << 20, distances: [21, 11, 10])
        try m.cpus(online: "0-11", siblings: (0...11).map { [$0] })
        try m.pciDevice("0000:3b:00.0", numaNode: "1", localCPUList: "4-7")
        let inventory = m.scan()
        #expect(inventory.allWarnings.isEmpty, "\(inventory.allWarnings)")
        let topology = inventory.topology
        #expect(topology.node(node(1))?.hasMemory == false)
        #expect(topology.node(node(1))?.hasCPUs == true)
        let d = try #require(inventory.device(pci("0000:3b:00.0")))
        #expect(d.locality == .node(node(1), cpuNodes: [node(1)]))
        #expect(d.cpus == cpuset("4-7"))
        #expect(d.placementNodes(in: topology) == [node(2)])
        #expect(topology.memoryNodes(for: [node(0), node(1)]) == [node(0), node(2)])
    }

    // MARK: A kernel without NUMA

    @Test func kernelWithoutNodeDirectory() throws {
        let m = try SyntheticRoot()
        try m.cpus(online: "0-3", siblings: [[0, 1], [2, 3]])
        try m.write("proc/meminfo", "MemTotal:        8000 kB\nMemFree:  100 kB\n")
        try m.pciDevice("0000:3b:00.0", numaNode: "-1", localCPUList: "0-1")
        try m.pciDevice("0000:5e:00.0", numaNode: "-1", localCPUList: "0-3")
        let inventory = m.scan()
        #expect(inventory.warnings.map(\.code) == [.missing])
        #expect(inventory.warnings.first?.path == "sys/devices/system/node")
        let topology = inventory.topology
        #expect(topology.nodes.count == 1)
        #expect(topology.nodes.first?.id == node(0))
        #expect(topology.nodes.first?.cpus == cpuset("0-3"))
        #expect(topology.nodes.first?.memoryBytes == 8000 * 1024)
        #expect(topology.cores == [cpuset("0-1"), cpuset("2-3")])
        #expect(inventory.device(pci("0000:3b:00.0"))?.locality == .cpus(cpuset("0-1"), node: node(0)))
        // Rule 4: all CPUs on a one-node machine is that node.
        #expect(inventory.device(pci("0000:5e:00.0"))?.locality == .onlyNode(node(0)))
    }

    /// Neither node directory nor cpu/online: node 0 gets the CPUs that have a cpuN directory.
    @Test func kernelWithoutNodeDirectoryOrOnlineFile() throws {
        let m = try SyntheticRoot()
        try m.cpus(online: "0-5", siblings: (0...5).map { [$0] })
        try m.remove("sys/devices/system/cpu/online")
        try m.remove("sys/devices/system/cpu/possible")
        try m.mkdir("sys/devices/system/cpu/cpufreq")      // not a CPU
        try m.mkdir("sys/devices/system/cpu/cpu007")       // not the kernel's spelling
        try m.pciDevice("0000:3b:00.0", numaNode: "0")
        let inventory = m.scan()
        #expect(inventory.warnings.map(\.code) == [.missing, .missing, .missing, .missing])
        #expect(inventory.topology.nodes.map(\.cpus) == [cpuset("0-5")])
        #expect(inventory.topology.onlineCPUs == cpuset("0-5"))
        #expect(inventory.topology.nodes.first?.memoryBytes == 0)
        #expect(inventory.device(pci("0000:3b:00.0"))?.cpus == cpuset("0-5"))
    }

    // MARK: Overrides and re-reads

    @Test func configuredOverrideReplacesNumaNode() throws {
        let m = try SyntheticRoot()
        try m.machine(nodes: [(0, Array(0...3), 1 << 20), (1, Array(4...7), 1 << 20)])
        try m.pciDevice("0000:3b:00.0", numaNode: "-1", localCPUList: "0-7")
        let d = try #require(m.scan(overrides: [pci("0000:3b:00.0"): node(1)]).device(pci("0000:3b:00.0")))
        #expect(d.locality == .node(node(1), cpuNodes: [node(1)]))
        #expect(d.warnings.map(\.code) == [.overridden])
    }

    /// The per-event path: one device re-read after its numa_node changed, merged into the inventory.
    @Test func readDeviceAndUpdate() throws {
        let m = try SyntheticRoot()
        try m.machine(nodes: [(0, Array(0...3), 1 << 20), (1, Array(4...7), 1 << 20)])
        let dir = try m.pciDevice("0000:3b:00.0", numaNode: "0")
        try m.pciDevice("0000:af:00.0", numaNode: "1")
        var inventory = m.scan()
        try m.write("\(dir)/numa_node", "1\n")
        let scanner = SysfsScanner(root: m.root)
        guard case .managed(let updated) = scanner.readDevice(pci("0000:3b:00.0"), topology: inventory.topology) else {
            Issue.record("device not read")
            return
        }
        inventory.update(updated.address, with: updated)
        #expect(inventory.devices.map(\.address.description) == ["0000:3b:00.0", "0000:af:00.0"])
        #expect(inventory.device(pci("0000:3b:00.0"))?.numaNode == node(1))
        inventory.update(pci("0000:3b:00.0"), with: nil)
        #expect(inventory.devices.map(\.address.description) == ["0000:af:00.0"])
        inventory.update(updated.address, with: updated)
        #expect(inventory.devices.map(\.address.description) == ["0000:3b:00.0", "0000:af:00.0"])
        // A function the classifier does not manage.
        try m.pciDevice("0000:00:1f.0", classCode: "0x060100", vendor: "0x8086", device: "0xa1c8")
        guard case .notManaged = scanner.readDevice(pci("0000:00:1f.0"), topology: inventory.topology) else {
            Issue.record("an ISA bridge was managed")
            return
        }
    }
}
