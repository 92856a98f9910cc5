import Testing
@testable import NumaPlaceCore
import NumaPlaceTestSupport

/// Placement decisions on scanned synthetic machines: targets, memory modes, admission, exclusive cores.
@Suite("PlacementPolicy")
struct PlacementPolicyTests {
    static let gpu0 = pci("0000:3b:00.0")       // numa_node 0
    static let gpu1 = pci("0000:af:00.0")       // numa_node 1
    static let unknown = pci("0000:d8:00.0")    // numa_node -1, local_cpulist = every CPU
    static let cpusOnly = pci("0000:5e:00.0")   // numa_node -1, local_cpulist 2-3

    /// Two nodes: 0 (CPUs 0-7, cores {0,1} {2,3} {4,5} {6,7}) and 1 (CPUs 8-15), and four GPUs;
    /// scanned once (the inventory is a value; its temporary tree is gone after the scan).
    static let scanned = Result { try build() }

    static func inventory() throws -> Inventory { try scanned.get() }

    private static func build() throws -> Inventory {
        let m = try SyntheticRoot()
        try m.machine(nodes: [(0, Array(0...7), 1 << 20), (1, Array(8...15), 1 << 20)], remote: 21)
        try m.pciDevice(gpu0.description, numaNode: "0", localCPUList: "0-7")
        try m.pciDevice(gpu1.description, numaNode: "1", localCPUList: "8-15")
        try m.pciDevice(unknown.description, numaNode: "-1", localCPUList: "0-15")
        try m.pciDevice(cpusOnly.description, numaNode: "-1", localCPUList: "2-3")
        return m.scan()
    }

    @Test func machineScansCleanly() throws {
        let inventory = try Self.inventory()
        #expect(inventory.allWarnings.isEmpty, "\(inventory.allWarnings)")
        #expect(inventory.topology.cores == [cpuset("0-1"), cpuset("2-3"), cpuset("4-5"), cpuset("6-7"),
                                             cpuset("8-9"), cpuset("10-11"), cpuset("12-13"), cpuset("14-15")])
        #expect(inventory.device(Self.unknown)?.locality == .unknown)
    }

    static let everything = AllowedSet(cpus: cpuset("0-15"), mems: [0, 1], source: "online")

    static func decide(_ target: PlacementTarget, memory: MemoryPolicyMode = .preferred, exclusive: Int = 0,
                       admission: Admission = .strict, allowed: AllowedSet = everything,
                       reserved: CPUSet = CPUSet()) throws -> PlacementDecision {
        try PlacementPolicy.decide(PlacementRequest(target: target, memory: memory, exclusiveCores: exclusive,
                                                    admission: admission),
                                   inventory: inventory(), allowed: allowed, reserved: reserved)
    }

    // MARK: Targets and memory modes

    struct Case: Sendable, CustomTestStringConvertible {
        var label: String
        var target: PlacementTarget
        var memory: MemoryPolicyMode
        var cpus: String
        var mode: MemoryPolicyMode
        var nodes: [Int]
        var node: Int?
        var testDescription: String { label }
    }

    @Test(arguments: [
        Case(label: "device preferred", target: .device(gpu0), memory: .preferred, cpus: "0-7", mode: .preferred, nodes: [0], node: 0),
        Case(label: "device bind", target: .device(gpu1), memory: .bind, cpus: "8-15", mode: .bind, nodes: [1], node: 1),
        Case(label: "device interleave", target: .device(gpu1), memory: .interleave, cpus: "8-15", mode: .interleave, nodes: [1], node: 1),
        Case(label: "device none", target: .device(gpu0), memory: .none, cpus: "0-7", mode: .none, nodes: [], node: 0),
        Case(label: "device by local_cpulist", target: .device(cpusOnly), memory: .preferred, cpus: "2-3", mode: .preferred, nodes: [0], node: 0),
        Case(label: "node", target: .node(node(1)), memory: .preferred, cpus: "8-15", mode: .preferred, nodes: [1], node: 1),
        Case(label: "node bind", target: .node(node(0)), memory: .bind, cpus: "0-7", mode: .bind, nodes: [0], node: 0),
        Case(label: "cpus in one node", target: .cpus(cpuset("2-3")), memory: .preferred, cpus: "2-3", mode: .preferred, nodes: [0], node: 0),
        Case(label: "cpus across nodes preferred", target: .cpus(cpuset("6-9")), memory: .preferred, cpus: "6-9", mode: .preferred, nodes: [0], node: nil),
        Case(label: "cpus across nodes bind", target: .cpus(cpuset("6-9")), memory: .bind, cpus: "6-9", mode: .bind, nodes: [0, 1], node: nil),
        Case(label: "anywhere preferred", target: .anywhere, memory: .preferred, cpus: "0-15", mode: .none, nodes: [], node: nil),
        Case(label: "anywhere interleave", target: .anywhere, memory: .interleave, cpus: "0-15", mode: .interleave, nodes: [0, 1], node: nil),
    ])
    func targets(_ c: Case) throws {
        let d = try Self.decide(c.target, memory: c.memory)
        #expect(d.cpus == cpuset(c.cpus))
        #expect(d.memory.mode == c.mode)
        #expect(d.memory.nodes == c.nodes.map(node))
        #expect(d.node?.rawValue == c.node)
        #expect(d.degraded.isEmpty, "\(d.degraded)")
        #expect(d.exclusiveCores.isEmpty)
        if case .device(let a) = c.target { #expect(d.device == a) } else { #expect(d.device == nil) }
    }

    @Test func invalidRequests() {
        #expect(throws: PlacementError.noSuchDevice(pci("0000:01:00.0"))) { try Self.decide(.device(pci("0000:01:00.0"))) }
        #expect(throws: PlacementError.noSuchNode(node(2))) { try Self.decide(.node(node(2))) }
        #expect(throws: PlacementError.self) { try Self.decide(.cpus(CPUSet())) }
        #expect(throws: PlacementError.self) { try Self.decide(.device(Self.gpu0), exclusive: -1) }
        #expect(throws: PlacementError.self) { try Self.decide(.device(Self.gpu0), exclusive: PlacementPolicy.maxExclusiveCores + 1) }
    }

    // MARK: Unknown locality

    @Test func unknownLocalityStrictFails() {
        #expect(throws: PlacementError.self) { try Self.decide(.device(Self.unknown)) }
    }

    @Test func unknownLocalityBestEffortTakesAllowedSet() throws {
        let allowed = AllowedSet(cpus: cpuset("1-9"), mems: [0, 1], source: "cgroup2:/a")
        let d = try Self.decide(.device(Self.unknown), admission: .bestEffort, allowed: allowed)
        #expect(d.cpus == cpuset("1-9"))
        #expect(d.memory == .none)
        #expect(d.node == nil)
        #expect(d.device == Self.unknown)
        #expect(d.degraded.count == 1)
    }

    // MARK: Admission when the allowed set excludes the node

    static let onlyNode1 = AllowedSet(cpus: cpuset("8-15"), mems: [1], source: "cgroup2:/a")

    @Test(arguments: [PlacementTarget.device(gpu0), .node(node(0)), .cpus(cpuset("0-3"))])
    func strictFailsOutsideAllowedSet(target: PlacementTarget) {
        #expect(throws: PlacementError.self) { try Self.decide(target, allowed: Self.onlyNode1) }
    }

    @Test func bestEffortOutsideAllowedSetDegrades() throws {
        let d = try Self.decide(.device(Self.gpu0), admission: .bestEffort, allowed: Self.onlyNode1)
        #expect(d.cpus == cpuset("8-15"))
        #expect(d.memory == .none, "node 0's memory is not allowed either")
        #expect(d.degraded.count == 2, "\(d.degraded)")
        #expect(d.node == node(0))
    }

    @Test func memoryOutsideAllowedNodes() throws {
        let cpusOK = AllowedSet(cpus: cpuset("0-15"), mems: [1], source: "cgroup2:/a")
        #expect(throws: PlacementError.self) { try Self.decide(.device(Self.gpu0), memory: .bind, allowed: cpusOK) }
        let d = try Self.decide(.device(Self.gpu0), memory: .bind, admission: .bestEffort, allowed: cpusOK)
        #expect(d.cpus == cpuset("0-7"))
        #expect(d.memory == .none)
        #expect(d.degraded.count == 1)
    }

    @Test func cpusPartlyOutsideAllowedSet() throws {
        let allowed = AllowedSet(cpus: cpuset("0-5"), mems: [0, 1], source: "cgroup2:/a")
        #expect(throws: PlacementError.self) { try Self.decide(.cpus(cpuset("4-7")), allowed: allowed) }
        let d = try Self.decide(.cpus(cpuset("4-7")), admission: .bestEffort, allowed: allowed)
        #expect(d.cpus == cpuset("4-5"))
        #expect(d.degraded.count == 1)
        // A device or node target is narrowed to the allowed part without complaint.
        #expect(try Self.decide(.device(Self.gpu0), allowed: allowed).cpus == cpuset("0-5"))
    }

    @Test func offlineCPUs() throws {
        #expect(throws: PlacementError.self) { try Self.decide(.cpus(cpuset("14-17"))) }
        let d = try Self.decide(.cpus(cpuset("14-17")), admission: .bestEffort)
        #expect(d.cpus == cpuset("14-15"))
        #expect(!d.degraded.isEmpty)
    }

    // MARK: Exclusive cores

    @Test func exclusiveCoresAreWholeSiblingGroupsLowestFirst() throws {
        let d = try Self.decide(.device(Self.gpu0), exclusive: 2)
        #expect(d.exclusiveCores == [cpuset("0-1"), cpuset("2-3")])
        #expect(d.cpus == cpuset("0-3"))
        #expect(d.degraded.isEmpty)
    }

    @Test func exclusiveCoresAvoidReserved() throws {
        let d = try Self.decide(.device(Self.gpu0), exclusive: 2, reserved: [1])
        #expect(d.exclusiveCores == [cpuset("2-3"), cpuset("4-5")], "core {0,1} is half reserved: not free")
        #expect(d.cpus.isDisjoint(with: [1]))
    }

    @Test func exclusiveCoresStrictFailsWhenTooFewFree() {
        #expect(throws: PlacementError.self) { try Self.decide(.device(Self.gpu0), exclusive: 4, reserved: [1]) }
        #expect(throws: PlacementError.self) { try Self.decide(.device(Self.gpu0), exclusive: 5) }
    }

    @Test func exclusiveCoresBestEffortGrantsWhatIsFree() throws {
        let d = try Self.decide(.device(Self.gpu0), exclusive: 4, admission: .bestEffort, reserved: [1])
        #expect(d.exclusiveCores == [cpuset("2-3"), cpuset("4-5"), cpuset("6-7")])
        #expect(d.cpus == cpuset("2-7"))
        #expect(d.degraded.count == 1)
        let none = try Self.decide(.device(Self.gpu0), exclusive: 1, admission: .bestEffort, reserved: cpuset("0-7"))
        #expect(none.exclusiveCores.isEmpty)
        #expect(none.cpus == cpuset("0-7"), "nothing free: shares the node")
        #expect(none.degraded.count == 1)
    }

    /// Successive exclusive workers on one node never overlap, and each holds whole cores, until the
    /// node runs out and strict admission refuses.
    @Test func successiveExclusiveWorkersNeverOverlap() throws {
        let inventory = try Self.inventory()
        var reserved = CPUSet()
        for _ in 0..<4 {
            let d = try PlacementPolicy.decide(PlacementRequest(target: .device(Self.gpu0), exclusiveCores: 1),
                                               inventory: inventory, allowed: Self.everything, reserved: reserved)
            #expect(d.exclusiveCores.count == 1)
            let core = try #require(d.exclusiveCores.first)
            #expect(inventory.topology.cores.contains(core), "a whole sibling group")
            #expect(core.isDisjoint(with: reserved))
            #expect(d.cpus == core)
            reserved.formUnion(core)
        }
        #expect(reserved == cpuset("0-7"))
        #expect(throws: PlacementError.self) {
            try PlacementPolicy.decide(PlacementRequest(target: .device(Self.gpu0), exclusiveCores: 1),
                                       inventory: inventory, allowed: Self.everything, reserved: reserved)
        }
    }

    @Test func exclusiveCoresInsideNarrowAllowedSet() throws {
        let allowed = AllowedSet(cpus: cpuset("0-2"), mems: [0, 1], source: "cgroup2:/a")
        let d = try Self.decide(.device(Self.gpu0), exclusive: 1, allowed: allowed)
        #expect(d.exclusiveCores == [cpuset("0-1")], "{2,3} is not wholly allowed")
        #expect(throws: PlacementError.self) { try Self.decide(.device(Self.gpu0), exclusive: 2, allowed: allowed) }
    }

    @Test func sharedWorkersAvoidReservedCPUs() throws {
        #expect(try Self.decide(.device(Self.gpu0), reserved: cpuset("0-3")).cpus == cpuset("4-7"))
        #expect(throws: PlacementError.self) { try Self.decide(.device(Self.gpu0), reserved: cpuset("0-7")) }
        let d = try Self.decide(.device(Self.gpu0), admission: .bestEffort, reserved: cpuset("0-7"))
        #expect(d.cpus == cpuset("0-7"))
        #expect(d.degraded.count == 1)
    }

    // MARK: CPU-less and memory-less nodes

    @Test func gb200HBMNodeTargets() throws {
        let m = try SyntheticMachineTests.gb200()
        let inventory = m.scan()
        let allowed = AllowedSet(cpus: inventory.topology.onlineCPUs, mems: CPUSet(0...5), source: "online")
        let byDevice = try PlacementPolicy.decide(PlacementRequest(target: .device(pci("0018:01:00.0"))),
                                                  inventory: inventory, allowed: allowed, reserved: CPUSet())
        #expect(byDevice.cpus == cpuset("72-143"))
        #expect(byDevice.memory == MemoryPlacement(mode: .preferred, nodes: [node(1)]))
        #expect(byDevice.node == node(4))
        let byNode = try PlacementPolicy.decide(PlacementRequest(target: .node(node(2)), memory: .bind),
                                                inventory: inventory, allowed: allowed, reserved: CPUSet())
        #expect(byNode.cpus == cpuset("0-71"), "a CPU-less node runs on its nearest CPU node")
        #expect(byNode.memory == MemoryPlacement(mode: .bind, nodes: [node(2)]), "and binds to its own memory")
    }

    @Test func memorylessNodeTakesNearestMemory() throws {
        let m = try SyntheticRoot()
        try m.node(0, cpus: "0-3", memoryKB: 1 << 20, distances: [10, 21, 21])
        try m.node(1, cpus: "4-7", memoryKB: 0, distances: [21, 10, 11])
        try m.node(2, cpus: "8-11", memoryKB: 1 << 20, distances: [21, 11, 10])
        try m.cpus(online: "0-11", siblings: (0...11).map { [$0] })
        try m.pciDevice("0000:3b:00.0", numaNode: "1")
        let inventory = m.scan()
        let allowed = AllowedSet(cpus: cpuset("0-11"), mems: [0, 2], source: "online")
        for target in [PlacementTarget.node(node(1)), .device(pci("0000:3b:00.0")), .cpus(cpuset("4-5"))] {
            let d = try PlacementPolicy.decide(PlacementRequest(target: target, memory: .bind), inventory: inventory,
                                               allowed: allowed, reserved: CPUSet())
            #expect(d.memory == MemoryPlacement(mode: .bind, nodes: [node(2)]), "\(target)")
            #expect(d.cpus.isSubset(of: cpuset("4-7")))
        }
    }

    @Test func memoryPlacementNormalizes() {
        #expect(MemoryPlacement(mode: .bind, nodes: []) == .none)
        #expect(MemoryPlacement(mode: .none, nodes: [node(0)]).nodes.isEmpty)
        #expect(MemoryPolicyMode.none.appliedName == "default")
    }
}
