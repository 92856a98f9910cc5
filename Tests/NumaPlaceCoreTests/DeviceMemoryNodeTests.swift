import Testing
@testable import NumaPlaceCore
import NumaPlaceTestSupport

/// Issue 15: a GPU's own memory as a CPU-less NUMA node (Grace-Hopper, Grace-Blackwell, POWER9 with
/// NVLink), named by the NVIDIA driver's `numa_status` or by `numa_node`; and a spawn that aims its
/// memory policy there.
@Suite("Device memory nodes")
struct DeviceMemoryNodeTests {
    /// Nodes 0 and 1 with CPUs; node 2 is memory only (a GPU's HBM), nearest to node 0.
    static func machine() throws -> SyntheticRoot {
        let m = try SyntheticRoot()
        try m.node(0, cpus: "0-3", memoryKB: 1 << 20, distances: [10, 20, 40])
        try m.node(1, cpus: "4-7", memoryKB: 1 << 20, distances: [20, 10, 80])
        try m.node(2, cpus: "", memoryKB: 1 << 22, distances: [40, 80, 10])
        try m.cpus(online: "0-7", siblings: (0...7).map { [$0] })
        for (address, node, status) in [("0000:01:00.0", "0", "Node: 2\nStatus: online\n"),
                                        ("0000:02:00.0", "2", nil),
                                        ("0000:03:00.0", "1", "Node: -1\n"),
                                        ("0000:04:00.0", "1", "Node: 9\n"),
                                        ("0000:05:00.0", "1", "garbage\n")] {
            try m.pciDevice(address, numaNode: node)
            if let status { try m.write("proc/driver/nvidia/gpus/\(address)/numa_status", status) }
        }
        return m
    }

    @Test func fromTheDriverOrACPULessNode() throws {
        let inventory = try Self.machine().scan()
        func d(_ a: String) throws -> Device { try #require(inventory.device(pci(a))) }
        // The driver names node 2; the device itself sits on node 0.
        #expect(try d("0000:01:00.0").memoryNode == node(2))
        #expect(try d("0000:01:00.0").numaNode == node(0))
        // numa_node names the CPU-less node: its memory node, and the nearest CPUs (node 0's).
        #expect(try d("0000:02:00.0").memoryNode == node(2))
        #expect(try d("0000:02:00.0").cpus == cpuset("0-3"))
        // -1: none, silently; a node that does not exist or no Node: line: none, with a warning.
        #expect(try d("0000:03:00.0").memoryNode == nil && d("0000:03:00.0").warnings.isEmpty)
        #expect(try d("0000:04:00.0").memoryNode == nil && d("0000:04:00.0").warnings.map(\.code) == [.outOfRange])
        #expect(try d("0000:05:00.0").memoryNode == nil && d("0000:05:00.0").warnings.map(\.code) == [.malformed])
    }

    @Test func aSpawnAimsItsMemoryAtTheDevice() throws {
        let inventory = try Self.machine().scan()
        let allowed = AllowedSet(cpus: cpuset("0-7"), mems: cpuset("0-2"), source: "test")
        let onHBM = try PlacementPolicy.decide(
            PlacementRequest(target: .device(pci("0000:01:00.0")), memory: .bind, deviceMemory: true),
            inventory: inventory, allowed: allowed, reserved: CPUSet())
        #expect(onHBM.memory == MemoryPlacement(mode: .bind, nodes: [node(2)]))
        #expect(onHBM.cpus == cpuset("0-3"))
        // Without deviceMemory, the memory of the CPUs' node.
        let plain = try PlacementPolicy.decide(PlacementRequest(target: .device(pci("0000:01:00.0")), memory: .bind),
                                               inventory: inventory, allowed: allowed, reserved: CPUSet())
        #expect(plain.memory == MemoryPlacement(mode: .bind, nodes: [node(0)]))
        // A device without one: strict refuses, best-effort says what it did instead.
        #expect(throws: PlacementError.self) {
            try PlacementPolicy.decide(PlacementRequest(target: .device(pci("0000:03:00.0")), deviceMemory: true),
                                       inventory: inventory, allowed: allowed, reserved: CPUSet())
        }
        let degraded = try PlacementPolicy.decide(
            PlacementRequest(target: .device(pci("0000:03:00.0")), admission: .bestEffort, deviceMemory: true),
            inventory: inventory, allowed: allowed, reserved: CPUSet())
        #expect(degraded.memory.nodes == [node(1)])
        #expect(degraded.degraded.contains { $0.contains("no memory node of its own") })
    }
}
