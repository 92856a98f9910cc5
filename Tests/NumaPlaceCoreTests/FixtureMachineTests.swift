import Foundation
import Testing
@testable import NumaPlaceCore
import NumaPlaceTestSupport

/// Tier 2 of DESIGN.md: the scan of each captured machine agrees with the `*.facts.json` beside it,
/// by the rules of `check-dump.py` (ported in `checkDump`).
@Suite("Real-machine sysfs fixtures")
struct FixtureMachineTests {
    // Skips (with the message) where ../shared/fixtures/sysfs is absent, as on a bare checkout.
    @Test("scan agrees with facts.json", .enabled(if: FixtureLibrary.isPresent, Comment(rawValue: FixtureLibrary.absentMessage)),
          arguments: FixtureLibrary.names)
    func scanAgreesWithFacts(_ name: String) throws {
        let root = try FixtureLibrary.root(name)
        let facts = try FixtureLibrary.facts(name)
        let inventory = SysfsScanner(root: root).scan()
        let (mismatches, checked) = checkDump(DumpView(inventory), against: facts)
        #expect(mismatches.isEmpty, "\(name): \(mismatches.joined(separator: "; "))")
        #expect(checked == facts.nodes.count + facts.accelerators.count, "\(name): \(checked) facts checked")

        // The facts list the accelerators by class; nothing else the default classifier takes may be
        // missing from them either (NICs are not in the facts, so only gpu/accelerator kinds compare).
        let classified = Set(inventory.devices.filter { $0.kind != .nic }.map { $0.address.description })
        #expect(classified == Set(facts.accelerators.keys.map { $0.lowercased() }), "\(name)")

        let summary = inventory.devices.map { "\($0.address) \($0.kind.rawValue) \($0.locality.name)"
            + ($0.numaNode.map { " node \($0)" } ?? "") + ($0.cpus.isEmpty ? "" : " cpus \($0.cpus)") }
        print("""
            fixture \(name): \(inventory.topology.nodes.count) nodes \
            [\(inventory.topology.nodes.map { "\($0.id):\($0.cpus)" }.joined(separator: " "))], \
            \(inventory.devices.count) devices [\(summary.joined(separator: "; "))], \
            \(inventory.allWarnings.count) warnings [\(Set(inventory.allWarnings.map(\.code.rawValue)).sorted().joined(separator: ","))]
            """)
    }

    @Test("every device obeys the locality rule given its own files", .enabled(if: FixtureLibrary.isPresent, Comment(rawValue: FixtureLibrary.absentMessage)),
          arguments: FixtureLibrary.names)
    func everyFunctionFollowsItsFiles(_ name: String) throws {
        let root = try FixtureLibrary.root(name)
        // Every PCI function, not only accelerators: bridges and NICs carry numa_node too.
        let inventory = SysfsScanner(root: root, classifier: everyDeviceClassifier).scan()
        let listed = (try? root.list("sys/bus/pci/devices")) ?? []
        #expect(inventory.devices.count == listed.count, "\(name): every listed function is read")
        let violations = localityRuleViolations(root: root, inventory: inventory)
        #expect(violations.isEmpty, "\(name): \(violations.prefix(5).joined(separator: "; "))")
    }

    @Test("topology agrees with an independent reading of the node files", .enabled(if: FixtureLibrary.isPresent, Comment(rawValue: FixtureLibrary.absentMessage)),
          arguments: FixtureLibrary.names)
    func topologyMatchesFiles(_ name: String) throws {
        let root = try FixtureLibrary.root(name)
        let topology = SysfsScanner(root: root).scan().topology
        // Sorted, unique ids, and the sibling groups partition the online CPUs without overlap.
        #expect(topology.nodes.map(\.id) == topology.nodes.map(\.id).sorted())
        var seen = CPUSet()
        for core in topology.cores {
            #expect(!core.isEmpty)
            #expect(core.isDisjoint(with: seen), "\(name): core \(core) overlaps another")
            seen.formUnion(core)
        }
        #expect(seen == topology.onlineCPUs, "\(name): cores cover the online CPUs")
        // Nodes' CPUs are as the node files say (compared with facts.json above; firmware may give two
        // nodes the same CPUs); every
        // node that shares CPUs with an earlier one carries a conflict warning naming it, and no other
        // node does. Every node has a distance to every node, its own being the local 10.
        let inventory = SysfsScanner(root: root).scan()
        var union = CPUSet()
        for n in topology.nodes {
            let shares = !n.cpus.isDisjoint(with: union)
            let warned = inventory.warnings.contains {
                $0.code == .conflict && $0.path == "sys/devices/system/node/node\(n.id.rawValue)/cpulist"
            }
            #expect(shares == warned, "\(name): node \(n.id) shares CPUs: \(shares), warned: \(warned)")
            union.formUnion(n.cpus)
            #expect(n.distances[n.id] == 10, "\(name): node \(n.id) local distance")
            #expect(Set(n.distances.keys) == Set(topology.nodes.map(\.id)), "\(name): node \(n.id) distances")
        }
        #expect(union.isSubset(of: topology.onlineCPUs))
        #expect(topology.onlineCPUs.isSubset(of: topology.possibleCPUs))
    }

    /// hwloc's "2pa-pcidomain32bits" spelling: a 5-digit domain parses, prints as is, and round-trips.
    @Test("fixture addresses round-trip through PCIAddress", .enabled(if: FixtureLibrary.isPresent, Comment(rawValue: FixtureLibrary.absentMessage)),
          arguments: FixtureLibrary.names)
    func addressesRoundTrip(_ name: String) throws {
        let root = try FixtureLibrary.root(name)
        guard root.exists("sys/bus/pci/devices") else { return }   // captures without PCI (CPU-only machines)
        let entries = try root.list("sys/bus/pci/devices")
        #expect(!entries.isEmpty)
        for entry in entries {
            let address = try PCIAddress(parsing: entry)
            #expect(address.description == entry)
        }
    }
}
