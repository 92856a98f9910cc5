import Foundation
import NumaPlaceCore
import NumaPlaceProtocol
import NumaPlaceTestSupport
import Testing

/// The real-machine fixtures (found and extracted by `FixtureLibrary`), each scanned once.
enum ExportFixtures {
    static let names = FixtureLibrary.names
    static var available: Bool { FixtureLibrary.isPresent }
    static let absent = Comment(rawValue: FixtureLibrary.absentMessage)

    private static let lock = NSLock()
    nonisolated(unsafe) private static var inventories: [String: Inventory] = [:]

    static func inventory(_ name: String) throws -> Inventory {
        try lock.withLock {
            if let done = inventories[name] { return done }
            let scanned = SysfsScanner(root: try FixtureLibrary.root(name)).scan()
            inventories[name] = scanned
            return scanned
        }
    }

    /// `NAME.facts.json`: what the files say, recorded independently of this code.
    static func facts(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: "\(FixtureLibrary.directory)/\(name).facts.json"))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }
}

/// Reads `Cores=` (and any other field) back out of a gres.conf line.
func field(_ name: String, of line: String) -> String? {
    line.split(separator: " ").first { $0.hasPrefix(name + "=") }.map { String($0.dropFirst(name.count + 1)) }
}

func cpus(_ text: String) throws -> CPUSet { try CPUSet(cpulist: text) }

/// The cluster exports (`swift test --filter ExportsTests`).
@Suite struct ExportsTests {}

extension ExportsTests {
@Suite("Slurm gres.conf export")
struct SlurmGres {
    /// hwloc's own lstopo output for this machine (tests/hwloc/linux/memorysidecaches.console in the hwloc
    /// repository): sub-NUMA clustering, CPUs numbered round-robin over four nodes on two packages, and a
    /// Group per node. Core L#0-9 are node 0's cores (PUs 0,40 4,44 … 36,76), L#10-19 node 2's (2,42 …),
    /// L#20-29 node 1's, L#30-39 node 3's.
    @Test(.enabled(if: ExportFixtures.available, ExportFixtures.absent))
    func logicalCoresFollowHwlocOnSubNUMAClusters() throws {
        let topology = try ExportFixtures.inventory("hwloc-memorysidecaches").topology
        var expected: [CPUSet] = []
        for firstPU in [0, 2, 1, 3] {
            for k in 0..<10 { expected.append([firstPU + 4 * k, firstPU + 4 * k + 40]) }
        }
        #expect(topology.logicalCores == expected)
    }

    /// hwloc's lstopo for the 8-VE chassis: Core L#i holds PUs i and i+16 (package 0 has CPUs 0-7,16-23).
    @Test(.enabled(if: ExportFixtures.available, ExportFixtures.absent))
    func logicalCoresFollowHwlocOnTwoSockets() throws {
        let topology = try ExportFixtures.inventory("hwloc-32intel64-2p8co2t+8ve").topology
        #expect(topology.logicalCores == (0..<16).map { [$0, $0 + 16] as CPUSet })
    }

    /// The Xeon L5640 numbers CPUs odd/even by socket and its CPU 0 sits on physical package 1: Slurm's
    /// core 0 is CPUs 0,12, core 6 is CPUs 1,13. A device on node 1 must get Cores=6-11, not the
    /// CPU-derived 1,3,5,7,9,11.
    @Test(.enabled(if: ExportFixtures.available, ExportFixtures.absent))
    func roundRobinNumberingMapsToSocketMajorCores() throws {
        var inventory = try ExportFixtures.inventory("ghw-xeon-L5640")
        let t = inventory.topology
        #expect(t.packages == [try cpus("0,2,4,6,8,10,12,14,16,18,20,22"), try cpus("1,3,5,7,9,11,13,15,17,19,21,23")])
        let node1 = try #require(NUMANodeID(rawValue: 1))
        let onNode1 = Device(address: try PCIAddress(parsing: "0000:84:00.0"), classCode: 0x030200, vendor: 0x10de,
                             deviceID: 0x20b0, kind: .gpu, driver: "nvidia", firmwareNode: node1,
                             locality: .node(node1, cpuNodes: [node1]), cpus: t.cpus(of: [node1]), pciePath: [],
                             warnings: [])
        inventory.update(onNode1.address, with: onNode1)
        let lines = try SlurmGresExport().entries(for: inventory).map(\.line)
        // The Matrox VGA on this machine is a display adapter: never a GPU line.
        #expect(lines == ["Name=gpu Count=1 Cores=6-11"])
    }

    /// Hand-checked against the fixtures' sysfs: the MIC sits on node 1 (CPUs 8-15 on package 1, no SMT),
    /// the ASPEED VGA on node 0 (a display adapter, never exported); the eight NEC VEs on node 0
    /// (CPUs 0-7,16-23 = cores 0-7); the P100 of a one-node VM on that node (rule 4).
    @Test(.enabled(if: ExportFixtures.available, ExportFixtures.absent))
    func coresOfKnownDevices() throws {
        let mic = SlurmGresExport(kinds: [.gpu, .accelerator], filePattern: "/dev/mic{index}")
        let lines = try mic.entries(for: try ExportFixtures.inventory("hwloc-32em64t-2n8c+1mic")).map(\.line)
        #expect(lines == ["Name=gpu File=/dev/mic0 Cores=8-15"])

        let ve = SlurmGresExport(name: "ve", kinds: [.accelerator], vendor: 0x1bcf, filePattern: "/dev/ve{index}")
        let veLines = try ve.entries(for: try ExportFixtures.inventory("hwloc-32intel64-2p8co2t+8ve")).map(\.line)
        #expect(veLines == (0..<8).map { "Name=ve File=/dev/ve\($0) Cores=0-7" })

        let p100 = SlurmGresExport(vendor: 0x10de, filePattern: "/dev/nvidia{index}")
        let p100Entries = try p100.entries(for: try ExportFixtures.inventory("ghw-accel-nvidia"))
        #expect(p100Entries.map(\.line) == ["Name=gpu File=/dev/nvidia0 Cores=0-7"])
        #expect(p100Entries.first?.comments.first?.contains("node 0") == true, "\(p100Entries)")
    }

    /// On every fixture: with a file per device, one line per device of the kinds asked for, and Cores=
    /// names exactly the cores that hold the device's CPUs (read back through the logical order), or is
    /// absent when they are unknown.
    @Test(.enabled(if: ExportFixtures.available, ExportFixtures.absent), arguments: ExportFixtures.names)
    func coresCoverExactlyTheDeviceCPUs(name: String) throws {
        let inventory = try ExportFixtures.inventory(name)
        let export = SlurmGresExport(kinds: DeviceKind.schedulable, filePattern: "/dev/by-pci/{address}")
        let entries = try export.entries(for: inventory)
        let exported = inventory.devices.filter { $0.kind != .display }
        #expect(entries.map(\.devices) == exported.map { [$0.address] })
        let order = inventory.topology.logicalCores
        #expect(Set(order.flatMap(\.elements)).count == order.reduce(0) { $0 + $1.count }, "a CPU in two cores")
        for (entry, device) in zip(entries, exported) {
            guard let cores = field("Cores", of: entry.line) else {
                #expect(device.cpus.isEmpty, "\(device.address) has CPUs \(device.cpus) but no Cores=")
                continue
            }
            let indices = try cpus(cores)
            #expect(indices.elements.allSatisfy { $0 < order.count })
            let covered = indices.elements.reduce(CPUSet()) { $0.union(order[$1]) }
            #expect(covered == device.cpus, "\(device.address): Cores=\(cores) cover CPUs \(covered), device has \(device.cpus)")
        }
        let text = try export.render(inventory, source: name)
        #expect(text.split(separator: "\n").filter { !$0.hasPrefix("#") }.count == exported.count)
    }

    @Test func optionsThatWouldBreakTheFileAreRefused() {
        #expect(throws: SlurmGresExport.OptionError.self) { try SlurmGresExport(name: "gpu 2").validate() }
        #expect(throws: SlurmGresExport.OptionError.self) { try SlurmGresExport(type: "a100#x").validate() }
        #expect(throws: SlurmGresExport.OptionError.self) { try SlurmGresExport(nodeName: "").validate() }
        #expect(throws: SlurmGresExport.OptionError.unknownPlaceholder("minor")) {
            try SlurmGresExport(filePattern: "/dev/nvidia{minor}").validate()
        }
        #expect(throws: SlurmGresExport.OptionError.self) { try SlurmGresExport(filePattern: "/dev/x{index").validate() }
        #expect(throws: Never.self) { try SlurmGresExport(type: "a100", filePattern: "/dev/{address}/{index}").validate() }
        #expect(throws: SlurmGresExport.OptionError.displayNotExported) { try SlurmGresExport(kinds: [.gpu, .display]).validate() }
    }

    @Test(.enabled(if: ExportFixtures.available, ExportFixtures.absent))
    func patternNodeNameAndTypeAppearInTheLine() throws {
        let export = SlurmGresExport(type: "p100", kinds: [.gpu], vendor: 0x10de,
                                     filePattern: "/dev/by-pci/{address}-{index}", nodeName: "gpu01")
        let lines = try export.entries(for: try ExportFixtures.inventory("ghw-accel-nvidia")).map(\.line)
        #expect(lines == ["NodeName=gpu01 Name=gpu Type=p100 File=/dev/by-pci/0000:06:00.0-0 Cores=0-7"])
    }
}

@Suite("Node Feature Discovery export")
struct NFD {
    /// Kubernetes' own rules (k8s.io/apimachinery/pkg/util/validation), written here as regular
    /// expressions, independently of the exporter's character checks.
    static let name = try? NSRegularExpression(pattern: "^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
    static let subdomain = try? NSRegularExpression(pattern: "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

    static func matches(_ re: NSRegularExpression?, _ s: Substring) -> Bool {
        guard let re else { return false }
        let text = String(s)
        return re.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
    }

    static func validKey(_ key: Substring) -> Bool {
        let parts = key.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].utf8.count <= 253, matches(subdomain, parts[0]) else { return false }
        return parts[1].utf8.count <= 63 && matches(name, parts[1])
    }

    static func validValue(_ value: Substring) -> Bool {
        value.isEmpty || (value.utf8.count <= 63 && matches(name, value))
    }

    /// The feature file as NFD's local source reads it: `name=value` lines, `#` comments.
    static func parse(_ text: String) -> [(key: Substring, value: Substring)] {
        text.split(separator: "\n").filter { !$0.hasPrefix("#") }.map { line in
            let parts = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (parts[0], parts.count == 2 ? parts[1] : "true")
        }
    }

    @Test(.enabled(if: ExportFixtures.available, ExportFixtures.absent), arguments: ExportFixtures.names)
    func everyLabelIsAValidKubernetesLabel(name: String) throws {
        let text = NFDFeatureExport().render(try ExportFixtures.inventory(name), source: name)
        let labels = Self.parse(text)
        #expect(!labels.isEmpty)
        for (key, value) in labels {
            #expect(Self.validKey(key), "invalid label key \(key)")
            #expect(Self.validValue(value), "invalid label value \(value) for \(key)")
            #expect(key.hasPrefix("numaplaced.io/"))
        }
        #expect(Set(labels.map(\.key)).count == labels.count, "a label written twice")
        // "# +" starts an NFD directive (expiry-time, no-label); our comments must not.
        #expect(!text.split(separator: "\n").contains { $0.hasPrefix("# +") })
    }

    /// The labels say what the fixture's facts.json (recorded from the same files by another tool) says:
    /// the number of nodes, and for each device with a valid numa_node, that node.
    @Test(.enabled(if: ExportFixtures.available, ExportFixtures.absent), arguments: ExportFixtures.names)
    func labelsMatchTheScanAndTheFacts(name: String) throws {
        let inventory = try ExportFixtures.inventory(name)
        let labels = Dictionary(NFDFeatureExport().labels(for: inventory).map { ($0.key, $0.value) },
                                uniquingKeysWith: { a, _ in a })
        let facts = try ExportFixtures.facts(name)
        let nodes = try #require(facts["nodes"] as? [String: Any])
        #expect(labels["numaplaced.io/numa-nodes"] == String(nodes.count))
        let accelerators = facts["accelerators"] as? [String: [String: Any]] ?? [:]
        for (address, fact) in accelerators {
            let device = try #require(inventory.device(try PCIAddress(parsing: address)), "\(address) not in the scan")
            let base = "numaplaced.io/\(device.kind.rawValue)-\(address.replacingOccurrences(of: ":", with: "_").replacingOccurrences(of: ".", with: "_"))"
            if device.kind == .display {
                #expect(!labels.keys.contains { $0.hasPrefix(base) }, "display adapter \(address) labelled")
                continue
            }
            if let node = fact["numa_node"] as? Int, node >= 0, nodes[String(node)] != nil {
                #expect(labels[base + ".numa-node"] == String(node))
                #expect(labels[base + ".locality"] == "node")
            }
            #expect(labels[base + ".vendor"] == (fact["id"] as? String).map { String($0.dropFirst(2).prefix(4)) })
        }
        for kind in DeviceKind.schedulable {
            #expect(labels["numaplaced.io/\(kind.rawValue)s"] == String(inventory.devices.filter { $0.kind == kind }.count))
        }
        #expect(!labels.keys.contains { $0.contains("display") }, "display adapters are never labelled")
        for d in inventory.devices where d.kind != .display {
            let base = "numaplaced.io/\(d.kind.rawValue)-\(NFDFeatureExport.labelForm(d.address))"
            #expect(labels[base + ".numa-node"] == (d.numaNode.map { String($0.rawValue) } ?? "unknown"))
            #expect(labels[base + ".cpus"].map { $0.replacingOccurrences(of: "_", with: ",") } == (d.cpus.isEmpty ? nil : d.cpus.cpulist))
        }
    }

    @Test func aValueBeyond63CharactersIsLeftOutWithAComment() throws {
        let node0 = try #require(NUMANodeID(rawValue: 0))
        let every = CPUSet(stride(from: 0, to: 128, by: 1))
        let scattered = CPUSet(stride(from: 0, to: 128, by: 3))
        let topology = Topology(nodes: [NUMANode(id: node0, cpus: every, memoryBytes: 1 << 30, distances: [node0: 10])],
                                onlineCPUs: every, possibleCPUs: every, cores: every.elements.map { [$0] })
        let d = Device(address: try PCIAddress(parsing: "3b:00.0"), classCode: 0x120000, vendor: 0x1da3, deviceID: 0x1020,
                       kind: .accelerator, driver: nil, firmwareNode: nil, locality: .cpus(scattered, node: node0),
                       cpus: scattered, pciePath: [], warnings: [])
        let inventory = Inventory(topology: topology, devices: [d], warnings: [])
        let text = NFDFeatureExport().render(inventory, source: "a synthetic machine")
        #expect(!text.contains("accelerator-0000_3b_00_0.cpus="))
        #expect(text.contains("# left out numaplaced.io/accelerator-0000_3b_00_0.cpus: the value has"))
        #expect(text.contains("numaplaced.io/accelerator-0000_3b_00_0.numa-node=0"))
        #expect(text.contains("numaplaced.io/accelerator-0000_3b_00_0.locality=cpus"))
    }

    @Test func prefixesNFDRefusesAreRefused() {
        #expect(throws: NFDFeatureExport.OptionError.deniedPrefix("kubernetes.io")) { try NFDFeatureExport(prefix: "kubernetes.io").validate() }
        #expect(throws: NFDFeatureExport.OptionError.self) { try NFDFeatureExport(prefix: "node.k8s.io").validate() }
        #expect(throws: NFDFeatureExport.OptionError.self) { try NFDFeatureExport(prefix: "Numaplaced.IO").validate() }
        #expect(throws: NFDFeatureExport.OptionError.self) { try NFDFeatureExport(prefix: "a..b").validate() }
        #expect(throws: Never.self) { try NFDFeatureExport(prefix: "feature.node.kubernetes.io").validate() }
        #expect(throws: Never.self) { try NFDFeatureExport(prefix: "example.com").validate() }
    }
}

@Suite("Live and offline exports agree")
struct WireInventory {
    /// The daemon's GetTopology reply, through JSON and back to the model, exports what the scan exports:
    /// `numaplacectl export` gives the same text live and offline.
    @Test(.enabled(if: ExportFixtures.available, ExportFixtures.absent), arguments: ExportFixtures.names)
    func replyRoundTripsToTheSameExports(name: String) throws {
        let scanned = try ExportFixtures.inventory(name)
        let data = try JSONEncoder().encode(Manager.GetTopologyReply(scanned, allowed: nil))
        let rebuilt = try JSONDecoder().decode(Manager.GetTopologyReply.self, from: data).inventory()
        #expect(rebuilt.topology == scanned.topology)
        #expect(rebuilt.devices.map(\.address) == scanned.devices.map(\.address))
        #expect(rebuilt.devices.map(\.locality) == scanned.devices.map(\.locality))
        #expect(rebuilt.devices.map(\.deviceNodes) == scanned.devices.map(\.deviceNodes))
        #expect(rebuilt.devices.map(\.names) == scanned.devices.map(\.names))
        #expect(rebuilt.devices.map(\.memoryNode) == scanned.devices.map(\.memoryNode))
        #expect(rebuilt.allWarnings.map(\.description) == scanned.allWarnings.map(\.description))
        let kinds = SlurmGresExport(kinds: DeviceKind.schedulable)
        for kind in DeviceKind.schedulable {
            let export = SlurmGresExport(kinds: [kind], filePattern: kind == .gpu ? nil : "/dev/{address}")
            #expect(try export.render(rebuilt, source: name) == export.render(scanned, source: name))
        }
        #expect(NFDFeatureExport().render(rebuilt, source: name) == NFDFeatureExport().render(scanned, source: name))
    }

    @Test func hostileRepliesAreRefusedWithTheField() throws {
        let node: [String: Any] = ["id": 0, "cpus": "0-3", "memoryBytes": 1, "distances": [10]]
        let device: [String: Any] = [
            "address": "0000:3b:00.0", "class": "0x030200", "vendor": "0x10de", "device": "0x2330", "kind": "gpu",
            "numaNode": 0, "cpus": "0-3", "locality": "node", "placementNodes": [0], "pciePath": [], "warnings": [],
        ]
        func reply(nodes: [[String: Any]] = [node], devices: [[String: Any]] = [device],
                   cores: [String] = ["0", "1", "2", "3"]) throws -> Manager.GetTopologyReply {
            let object: [String: Any] = [
                "nodes": nodes, "devices": devices, "onlineCPUs": "0-3", "possibleCPUs": "0-3", "allowedCPUs": "0-3",
                "cores": cores, "packages": ["0-3"], "warnings": [],
            ]
            return try JSONDecoder().decode(Manager.GetTopologyReply.self, from: JSONSerialization.data(withJSONObject: object))
        }
        func with(_ base: [String: Any], _ key: String, _ value: Any) -> [String: Any] {
            var copy = base
            copy[key] = value
            return copy
        }
        #expect(throws: WireModelError("nodes[0].id", "-1 is not a node id")) {
            _ = try reply(nodes: [with(node, "id", -1)]).inventory()
        }
        #expect(throws: WireModelError("nodes[1].id", "node 0 listed twice")) { _ = try reply(nodes: [node, node]).inventory() }
        #expect(throws: WireModelError("nodes[0].distances", "2 distances for 1 nodes")) {
            _ = try reply(nodes: [with(node, "distances", [10, 20])]).inventory()
        }
        #expect(throws: WireModelError.self) { _ = try reply(nodes: [with(node, "cpus", "3-1")]).inventory() }
        #expect(throws: WireModelError.self) { _ = try reply(cores: ["0-99999999999"]).inventory() }
        #expect(throws: WireModelError.self) { _ = try reply(devices: [with(device, "address", "zz:zz")]).inventory() }
        // Kind and locality are enums of the wire types: a value the schema does not list is refused by
        // the decoder already (numaplacectl reports both as a protocol violation).
        #expect(throws: DecodingError.self) { _ = try reply(devices: [with(device, "kind", "fpga")]) }
        #expect(throws: WireModelError.self) { _ = try reply(devices: [with(device, "vendor", "0x110de")]).inventory() }
        #expect(throws: WireModelError("devices[0].numaNode", "locality node names no node of the topology")) {
            _ = try reply(devices: [with(device, "numaNode", 5)]).inventory()
        }
        #expect(throws: DecodingError.self) { _ = try reply(devices: [with(device, "locality", "near")]) }
        let fine = try reply().inventory()
        #expect(fine.devices.first?.locality == .node(try #require(NUMANodeID(rawValue: 0)), cpuNodes: [try #require(NUMANodeID(rawValue: 0))]))
        #expect(fine.topology.packages == [[0, 1, 2, 3]])
    }
}
}
