import Foundation
import NumaPlaceCore
import NumaPlaceTestSupport
import Testing

/// The real-machine fixtures (found and extracted by `FixtureLibrary`), each scanned once with its
/// allowed set (DESIGN.md, testing tier 2).
enum Fixtures {
    static var present: Bool { FixtureLibrary.isPresent }
    static let names = FixtureLibrary.names

    struct Machine {
        var inventory: Inventory
        var allowed: AllowedSet
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var cache: [String: Machine] = [:]

    /// Fixture `name` scanned, the first time it is asked for.
    static func machine(_ name: String) throws -> Machine {
        lock.lock()
        defer { lock.unlock() }
        if let m = cache[name] { return m }
        let root = try FixtureLibrary.root(name)
        let inventory = SysfsScanner(root: root).scan()
        var warnings: [ScanWarning] = []
        let allowed = AllowedSet.read(root: root, topology: inventory.topology, warnings: &warnings)
        let m = Machine(inventory: inventory, allowed: allowed)
        cache[name] = m
        return m
    }
}

extension PlatformTests {
    /// Placement policy tables over captured machines: exclusive cores never overlap, keep SMT
    /// siblings together, stay on the target's node, and strict fails / best-effort degrades when
    /// the node is full or the allowed set excludes it.
    @Suite(.enabled(if: Fixtures.present, Comment(rawValue: FixtureLibrary.absentMessage)))
    struct PlacementFixtureTests {
        /// The whole cores of `cpus` (every sibling inside), as the policy must hand them out.
        static func wholeCores(_ topology: Topology, within cpus: CPUSet) -> [CPUSet] {
            topology.cores.filter { !$0.isEmpty && $0.isSubset(of: cpus) }
        }

        /// A grant keeps siblings together: each core of the machine is wholly in it or wholly out.
        static func keepsSiblingsTogether(_ cpus: CPUSet, _ topology: Topology) -> Bool {
            topology.cores.allSatisfy { $0.isSubset(of: cpus) || $0.isDisjoint(with: cpus) }
        }

        @Test("every machine scans to at least one node with CPUs and SMT sibling groups", arguments: Fixtures.names)
        func scans(_ name: String) throws {
            let m = try Fixtures.machine(name)
            #expect(m.inventory.topology.nodes.contains { $0.hasCPUs })
            #expect(!m.inventory.topology.cores.isEmpty)
            #expect(!m.allowed.cpus.isEmpty)
        }

        @Test("devices take one exclusive core at a time, round-robin, until their node is full", arguments: Fixtures.names)
        func exclusivePerDevice(_ name: String) throws {
            let m = try Fixtures.machine(name)
            let topology = m.inventory.topology
            let located = m.inventory.devices.filter { $0.numaNode != nil && !$0.cpus.isEmpty }
            if located.isEmpty { try Test.cancel("\(name): no device with a known node") }
            var reserved = CPUSet()
            var active = located
            var grants: [(device: Device, cpus: CPUSet)] = []
            while !active.isEmpty {
                for device in active {
                    let request = PlacementRequest(target: .device(device.address), exclusiveCores: 1)
                    do {
                        let d = try PlacementPolicy.decide(request, inventory: m.inventory, allowed: m.allowed, reserved: reserved)
                        #expect(d.exclusiveCores.count == 1)
                        #expect(d.cpus == d.exclusiveCores.reduce(CPUSet()) { $0.union($1) })
                        #expect(d.exclusiveCores.allSatisfy { topology.cores.contains($0) }, "\(d.cpus) is not a whole core")
                        #expect(d.cpus.isDisjoint(with: reserved), "\(d.cpus) overlaps \(reserved)")
                        #expect(d.cpus.isSubset(of: device.cpus), "\(d.cpus) leaves \(device.address)'s CPUs \(device.cpus)")
                        #expect(d.degraded.isEmpty)
                        #expect(d.device == device.address)
                        if let first = device.placementNodes(in: topology).first {
                            #expect(d.memory == MemoryPlacement(mode: .preferred, nodes: [first]))
                        }
                        reserved.formUnion(d.cpus)
                        grants.append((device, d.cpus))
                    } catch {
                        // Strict fails exactly when no whole core of the device's CPUs is free.
                        guard case .impossible = error else { Issue.record("\(device.address): \(error)"); continue }
                        let free = Self.wholeCores(topology, within: device.cpus.intersection(m.allowed.cpus))
                            .filter { $0.isDisjoint(with: reserved) }
                        #expect(free.isEmpty, "\(device.address) refused with free cores \(free)")
                        active.removeAll { $0.address == device.address }
                    }
                }
            }
            // Every whole core near a device was handed out exactly once.
            let near = located.reduce(CPUSet()) { $0.union($1.cpus) }.intersection(m.allowed.cpus)
            let expected = Self.wholeCores(topology, within: near)
            #expect(grants.count == expected.count)
            #expect(reserved == expected.reduce(CPUSet()) { $0.union($1) })
        }

        @Test("node targets: two cores per worker until full; then strict fails and best-effort degrades; release returns them",
              arguments: Fixtures.names)
        func exclusivePerNode(_ name: String) throws {
            let m = try Fixtures.machine(name)
            let topology = m.inventory.topology
            for node in topology.nodes where node.hasCPUs {
                let nodeCPUs = node.cpus.intersection(m.allowed.cpus)
                let cores = Self.wholeCores(topology, within: nodeCPUs)
                var reserved = CPUSet()
                var grants: [CPUSet] = []
                func decide(_ k: Int, _ admission: Admission) throws(PlacementError) -> PlacementDecision {
                    try PlacementPolicy.decide(PlacementRequest(target: .node(node.id), exclusiveCores: k, admission: admission),
                                               inventory: m.inventory, allowed: m.allowed, reserved: reserved)
                }
                for _ in 0..<(cores.count / 2) {
                    let d = try decide(2, .strict)
                    #expect(d.exclusiveCores.count == 2)
                    #expect(Self.keepsSiblingsTogether(d.cpus, topology))
                    #expect(d.cpus.isDisjoint(with: reserved))
                    #expect(d.cpus.isSubset(of: nodeCPUs), "node \(node.id): \(d.cpus) is off the node")
                    #expect(d.node == node.id)
                    reserved.formUnion(d.cpus)
                    grants.append(d.cpus)
                }
                if cores.count % 2 == 1 {
                    #expect(throws: PlacementError.self) { try decide(2, .strict) }
                    let partial = try decide(2, .bestEffort)
                    #expect(partial.exclusiveCores.count == 1)
                    #expect(partial.degraded.contains { $0.contains("1 of 2") }, "\(partial.degraded)")
                    #expect(partial.cpus.isDisjoint(with: reserved) && partial.cpus.isSubset(of: nodeCPUs))
                    reserved.formUnion(partial.cpus)
                    grants.append(partial.cpus)
                }
                // Full: strict refuses one more core and a shared worker; best-effort shares the node.
                #expect(throws: PlacementError.self) { try decide(1, .strict) }
                #expect(throws: PlacementError.self) { try decide(0, .strict) }
                let shared = try decide(1, .bestEffort)
                #expect(shared.exclusiveCores.isEmpty)
                #expect(shared.cpus == nodeCPUs)
                #expect(!shared.degraded.isEmpty)
                // Released when the worker exits: the first grant's cores come back, and only those.
                if let first = grants.first {
                    reserved = reserved.subtracting(first)
                    let again = try decide(1, .strict)
                    #expect(again.cpus.isSubset(of: first))
                }
            }
        }

        @Test("an allowed set without the node: strict fails, best-effort stays inside the allowed set",
              arguments: Fixtures.names)
        func allowedSetExcludesNode(_ name: String) throws {
            let m = try Fixtures.machine(name)
            let topology = m.inventory.topology
            let cpuNodes = topology.nodes.filter(\.hasCPUs)
            if cpuNodes.count < 2 { try Test.cancel("\(name): one CPU node, no other node to allow") }
            for node in cpuNodes {
                let elsewhere = AllowedSet(cpus: m.allowed.cpus.subtracting(node.cpus), mems: m.allowed.mems, source: "test")
                // Firmware that gives every node the same CPUs leaves nothing outside this node to allow.
                if elsewhere.cpus.isEmpty { continue }
                for k in [0, 1] {
                    #expect(throws: PlacementError.self) {
                        try PlacementPolicy.decide(PlacementRequest(target: .node(node.id), exclusiveCores: k),
                                                   inventory: m.inventory, allowed: elsewhere, reserved: CPUSet())
                    }
                    let d = try PlacementPolicy.decide(
                        PlacementRequest(target: .node(node.id), exclusiveCores: k, admission: .bestEffort),
                        inventory: m.inventory, allowed: elsewhere, reserved: CPUSet())
                    #expect(!d.cpus.isEmpty && d.cpus.isSubset(of: elsewhere.cpus), "\(d.cpus) outside \(elsewhere.cpus)")
                    #expect(Self.keepsSiblingsTogether(d.cpus, topology) || k == 0)
                    #expect(d.degraded.contains { $0.contains("no CPU in the allowed set") }, "\(d.degraded)")
                }
                // Memory: the node's memory excluded by the cpuset's mems.
                guard node.hasMemory else { continue }
                let noMems = AllowedSet(cpus: m.allowed.cpus, mems: m.allowed.mems.subtracting([node.id.rawValue]),
                                        source: "test")
                if noMems.mems.isEmpty { continue }
                #expect(throws: PlacementError.self) {
                    try PlacementPolicy.decide(PlacementRequest(target: .node(node.id), memory: .bind),
                                               inventory: m.inventory, allowed: noMems, reserved: CPUSet())
                }
                let d = try PlacementPolicy.decide(PlacementRequest(target: .node(node.id), memory: .bind, admission: .bestEffort),
                                                   inventory: m.inventory, allowed: noMems, reserved: CPUSet())
                #expect(d.memory == .none)
                #expect(d.cpus == node.cpus.intersection(noMems.cpus))
                #expect(!d.degraded.isEmpty)
            }
        }

        @Test("memory modes on every node target", arguments: Fixtures.names)
        func memoryModes(_ name: String) throws {
            let m = try Fixtures.machine(name)
            for node in m.inventory.topology.nodes where node.hasCPUs && node.hasMemory {
                for mode in MemoryPolicyMode.allCases {
                    let d = try PlacementPolicy.decide(PlacementRequest(target: .node(node.id), memory: mode),
                                                       inventory: m.inventory, allowed: m.allowed, reserved: CPUSet())
                    #expect(d.memory == (mode == .none ? .none : MemoryPlacement(mode: mode, nodes: [node.id])))
                    #expect(d.cpus == node.cpus.intersection(m.allowed.cpus))
                }
            }
        }

        @Test("a device of unknown locality: strict refuses, best-effort takes the allowed set", arguments: Fixtures.names)
        func unknownLocality(_ name: String) throws {
            let m = try Fixtures.machine(name)
            let unknown = m.inventory.devices.filter { $0.locality == .unknown }
            if unknown.isEmpty { try Test.cancel("\(name): every device has a locality") }
            for device in unknown {
                #expect(throws: PlacementError.self) {
                    try PlacementPolicy.decide(PlacementRequest(target: .device(device.address)),
                                               inventory: m.inventory, allowed: m.allowed, reserved: CPUSet())
                }
                let d = try PlacementPolicy.decide(PlacementRequest(target: .device(device.address), admission: .bestEffort),
                                                   inventory: m.inventory, allowed: m.allowed, reserved: CPUSet())
                #expect(d.cpus == m.allowed.cpus)
                #expect(d.memory == .none)
                #expect(d.degraded.count == 1)
            }
        }
    }
}
