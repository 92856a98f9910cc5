import Testing
@testable import NumaPlaceCore
import NumaPlaceTestSupport

/// Issue 15: what engines and container runtimes hold is a device node or a driver's name, not a PCI
/// address: each device lists them, and any of them selects it.
@Suite("Device nodes and names")
struct DeviceNamesTests {
    static func machine() throws -> SyntheticRoot {
        let m = try SyntheticRoot()
        try m.machine(nodes: [(0, Array(0...3), 1 << 20), (1, Array(4...7), 1 << 20)])
        let gpu = try m.pciDevice("0000:3b:00.0", numaNode: "1")
        for entry in ["card1", "renderD129", "card1-HDMI-A-1", "version"] { try m.mkdir("\(gpu)/drm/\(entry)") }
        try m.write("proc/driver/nvidia/gpus/0000:3b:00.0/information",
                    "Model: \t\t NVIDIA H100\nIRQ:   \t\t 42\nGPU UUID: \t GPU-5c1e7a3b-0000-1111-2222-333344445555\nDevice Minor: \t 3\n")
        let nic = try m.pciDevice("0000:5e:00.0", classCode: "0x020700", vendor: "0x15b3", numaNode: "0")
        try m.mkdir("\(nic)/infiniband/mlx5_0")
        try m.mkdir("\(nic)/infiniband_verbs/uverbs0")
        try m.mkdir("\(nic)/net/ib0")
        // Hostile entries are skipped: spaces, an overlong name.
        try m.mkdir("\(nic)/net/bad name")
        try m.mkdir("\(nic)/net/" + String(repeating: "n", count: 100))
        let acc = try m.pciDevice("0000:af:00.0", classCode: "0x120000", vendor: "0x1da3", numaNode: "1")
        try m.mkdir("\(acc)/accel/accel0")
        return m
    }

    @Test func listedFromSysfsAndTheDriver() throws {
        let inventory = try Self.machine().scan()
        let gpu = try #require(inventory.device(pci("0000:3b:00.0")))
        #expect(gpu.deviceNodes == ["/dev/dri/card1", "/dev/dri/renderD129", "/dev/nvidia3"])
        #expect(gpu.names == ["GPU-5c1e7a3b-0000-1111-2222-333344445555", "card1", "renderD129"])
        let nic = try #require(inventory.device(pci("0000:5e:00.0")))
        #expect(nic.deviceNodes == ["/dev/infiniband/uverbs0"])
        #expect(nic.names == ["ib0", "mlx5_0", "uverbs0"])
        #expect(inventory.device(pci("0000:af:00.0"))?.deviceNodes == ["/dev/accel/accel0"])
    }

    /// Both ways: every node and name selects its device, and the device lists it.
    @Test func resolvesBothWays() throws {
        let inventory = try Self.machine().scan()
        for d in inventory.devices {
            for text in d.deviceNodes + d.names {
                #expect(inventory.device(named: text)?.address == d.address, "\(text)")
            }
        }
        #expect(inventory.device(named: "renderD129")?.address == pci("0000:3b:00.0"))
        #expect(inventory.device(named: "3b:00")?.address == pci("0000:3b:00.0"))
        #expect(inventory.device(named: "mlx5_9") == nil)
        #expect(inventory.device(named: "") == nil)
    }

    /// Two devices with one name (a capture edited by hand): the name selects neither.
    @Test func anAmbiguousNameSelectsNothing() throws {
        let m = try Self.machine()
        let other = try m.pciDevice("0000:5f:00.0", classCode: "0x020700", vendor: "0x15b3", numaNode: "0")
        try m.mkdir("\(other)/net/ib0")
        let inventory = m.scan()
        #expect(inventory.device(named: "ib0") == nil)
        #expect(inventory.device(named: "mlx5_0")?.address == pci("0000:5e:00.0"))
    }

    /// The NEC Vector Engines of `hwloc-32intel64-2p8co2t+8ve` are `/dev/ve0` to `/dev/ve7`.
    @Test(.enabled(if: FixtureLibrary.isPresent, Comment(rawValue: FixtureLibrary.absentMessage)))
    func vectorEnginesHaveTheirNodes() throws {
        let inventory = SysfsScanner(root: try FixtureLibrary.root("hwloc-32intel64-2p8co2t+8ve")).scan()
        let nodes = inventory.devices.filter { $0.kind == .accelerator }.flatMap(\.deviceNodes).sorted()
        #expect(nodes == (0..<8).map { "/dev/ve\($0)" })
        for n in nodes { #expect(inventory.device(named: n)?.kind == .accelerator) }
    }
}

/// Issue 15: one worker for several devices (two GPUs, a GPU and its NIC).
@Suite("Workers for several devices")
struct MultiDevicePlacementTests {
    static let allowed = AllowedSet(cpus: cpuset("0-7"), mems: cpuset("0-1"), source: "test")

    /// GPUs 3b and 3c on node 1, the NIC 5e on node 0.
    static func inventory() throws -> Inventory {
        let m = try DeviceNamesTests.machine()
        try m.pciDevice("0000:3c:00.0", numaNode: "1")
        return m.scan()
    }

    @Test func devicesOnOneNodeLandThere() throws {
        let d = try PlacementPolicy.decide(
            PlacementRequest(target: .devices([pci("0000:3b:00.0"), pci("0000:3c:00.0")]), memory: .bind),
            inventory: try Self.inventory(), allowed: Self.allowed, reserved: CPUSet())
        #expect(d.cpus == cpuset("4-7") && d.node == node(1))
        #expect(d.memory == MemoryPlacement(mode: .bind, nodes: [node(1)]))
        #expect(d.devices == [pci("0000:3b:00.0"), pci("0000:3c:00.0")] && d.device == pci("0000:3b:00.0"))
        #expect(d.degraded.isEmpty)
    }

    @Test func devicesOnTwoNodesFollowAdmission() throws {
        let inventory = try Self.inventory()
        let target = PlacementTarget.devices([pci("0000:3b:00.0"), pci("0000:5e:00.0")])
        #expect(throws: PlacementError.self) {
            try PlacementPolicy.decide(PlacementRequest(target: target), inventory: inventory, allowed: Self.allowed,
                                       reserved: CPUSet())
        }
        let spread = try PlacementPolicy.decide(PlacementRequest(target: target, memory: .interleave, admission: .bestEffort),
                                                inventory: inventory, allowed: Self.allowed, reserved: CPUSet())
        #expect(spread.cpus == cpuset("0-7"))
        #expect(spread.memory == MemoryPlacement(mode: .interleave, nodes: [node(1), node(0)]))
        #expect(spread.node == nil)
        #expect(spread.degraded.contains { $0.contains("spans") && $0.contains("0000:5e:00.0 on node 0") }, "\(spread.degraded)")
    }

    @Test func anUnknownDeviceIsRefused() throws {
        #expect(throws: PlacementError.noSuchDevice(pci("0000:99:00.0"))) {
            try PlacementPolicy.decide(PlacementRequest(target: .devices([pci("0000:3b:00.0"), pci("0000:99:00.0")])),
                                       inventory: try Self.inventory(), allowed: Self.allowed, reserved: CPUSet())
        }
    }
}
