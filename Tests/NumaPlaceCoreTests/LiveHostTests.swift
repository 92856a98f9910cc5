import Foundation
import Testing
@testable import NumaPlaceCore

/// The scanner on the machine the tests run on (root `/`). It asserts only what holds on any Linux
/// host: the topology agrees with an independent reading of the same files, every PCI function is read,
/// and each one's locality obeys DESIGN.md's rule given its own files.
@Suite("Live host")
struct LiveHostTests {
    static let hasSysfs = FileManager.default.fileExists(atPath: "/sys/devices/system/cpu/online")

    static func text(_ path: String) -> String? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test("scan of / agrees with /sys read independently", .enabled(if: hasSysfs, "no sysfs at /sys (not a Linux host)"))
    func liveScan() throws {
        let root = SysfsRoot("/")
        #expect(root.isLiveHost)
        // Every PCI function, whatever its class, so that each one's locality is checked.
        let inventory = SysfsScanner(root: root, classifier: everyDeviceClassifier).scan()
        let topology = inventory.topology

        #expect(Set(topology.onlineCPUs.elements) == independentCPUs(Self.text("/sys/devices/system/cpu/online")))
        let nodeNames = ((try? FileManager.default.contentsOfDirectory(atPath: "/sys/devices/system/node")) ?? [])
            .filter { $0.hasPrefix("node") && $0.dropFirst(4).allSatisfy(\.isNumber) && $0.count > 4 }
        if nodeNames.isEmpty {
            #expect(topology.nodes.map(\.id) == [node(0)], "no node directory: the machine is node 0")
        } else {
            #expect(Set(topology.nodes.map { "node\($0.id)" }) == Set(nodeNames))
            for n in topology.nodes {
                #expect(Set(n.cpus.elements) == independentCPUs(Self.text("/sys/devices/system/node/node\(n.id)/cpulist")),
                        "node \(n.id)")
            }
        }
        #expect(topology.nodeCPUs.isSubset(of: topology.possibleCPUs))

        let listed = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/bus/pci/devices")) ?? []
        let skipped = inventory.warnings.filter { $0.path.hasPrefix("sys/bus/pci/devices/") }.count
        #expect(inventory.devices.count + skipped == listed.count, "every PCI function is read or has its warning")
        let violations = localityRuleViolations(root: root, inventory: inventory)
        #expect(violations.isEmpty, "\(violations.joined(separator: "; "))")

        var warnings: [ScanWarning] = []
        let allowed = AllowedSet.read(root: root, topology: topology, warnings: &warnings)
        #expect(!allowed.cpus.isEmpty)
        #expect(allowed.cpus.isSubset(of: topology.onlineCPUs))

        print("""
            live host: \(topology.nodes.count) node(s) \
            [\(topology.nodes.map { "\($0.id): CPUs \($0.cpus), \($0.memoryBytes >> 20) MiB" }.joined(separator: "; "))], \
            online \(topology.onlineCPUs), allowed \(allowed.cpus) (\(allowed.source)), \
            \(inventory.devices.count) PCI functions \
            [\(inventory.devices.map { "\($0.address) \($0.classHex) numa_node \($0.firmwareNode.map(String.init(describing:)) ?? "-1") → \($0.locality.name)" }.joined(separator: "; "))], \
            \(inventory.allWarnings.count) warnings
            """)
    }

    /// With the default classifier the daemon's own view is a subset of every function's.
    @Test(.enabled(if: hasSysfs, "no sysfs at /sys (not a Linux host)"))
    func defaultClassifierIsASubset() {
        let root = SysfsRoot("/")
        let all = SysfsScanner(root: root, classifier: everyDeviceClassifier).scan()
        let managed = SysfsScanner(root: root).scan()
        let functions = (try? root.list("sys/bus/pci/devices")) ?? []
        #expect(all.devices.count == functions.count, "every PCI function is listed when every class is managed")
        #expect(Set(managed.devices.map(\.address)).isSubset(of: Set(all.devices.map(\.address))))
        for d in managed.devices {
            #expect(all.device(d.address)?.locality == d.locality, "\(d.address)")
        }
    }
}
