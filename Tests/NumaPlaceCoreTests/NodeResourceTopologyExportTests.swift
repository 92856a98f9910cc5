import Foundation
import NumaPlaceCore
import Testing

/// The rules of the NodeResourceTopology CRD's v1alpha2 schema (topology.node.k8s.io_noderesourcetopologies.yaml
/// in k8stopologyawareschedwg/noderesourcetopology-api, generated from its v1alpha2 types.go), written out
/// here: required fields, types, and the fields a structural schema keeps (the API server prunes others).
enum NRTSchema {
    /// resource.Quantity's pattern in the CRD.
    static let quantity = try? NSRegularExpression(
        pattern: #"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"#)

    static func isQuantity(_ value: Any?) -> Bool {
        if value is Int { return true }
        guard let s = value as? String, let quantity else { return false }
        return quantity.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil
    }

    /// JSONSerialization's numbers convert to Int only when they are integers.
    static func isInteger(_ value: Any?) -> Bool { !(value is String) && (value as? Int) != nil }

    /// Every way `object` breaks the schema, as "path: problem".
    static func problems(_ object: [String: Any]) -> [String] {
        var out: [String] = []
        func keys(_ o: [String: Any], _ path: String, allowed: Set<String>, required: Set<String>) {
            for k in o.keys where !allowed.contains(k) { out.append("\(path).\(k): not in the schema") }
            for k in required where o[k] == nil { out.append("\(path).\(k): required") }
        }
        func list(_ value: Any?, _ path: String) -> [[String: Any]] {
            guard let value else { return [] }
            guard let items = value as? [Any] else { out.append("\(path): not an array"); return [] }
            return items.enumerated().compactMap { i, item in
                guard let o = item as? [String: Any] else { out.append("\(path)[\(i)]: not an object"); return nil }
                return o
            }
        }
        func string(_ value: Any?, _ path: String) {
            if let value, !(value is String) { out.append("\(path): not a string") }
        }
        keys(object, "", allowed: ["apiVersion", "kind", "metadata", "topologyPolicies", "zones", "attributes"], required: ["zones"])
        if object["apiVersion"] as? String != "topology.node.k8s.io/v1alpha2" { out.append(".apiVersion: not v1alpha2") }
        if object["kind"] as? String != "NodeResourceTopology" { out.append(".kind: not NodeResourceTopology") }
        if ((object["metadata"] as? [String: Any])?["name"] as? String)?.isEmpty != false { out.append(".metadata.name: missing") }
        if let policies = object["topologyPolicies"], !(policies is [String]) { out.append(".topologyPolicies: not strings") }
        for (i, a) in list(object["attributes"], ".attributes").enumerated() {
            keys(a, ".attributes[\(i)]", allowed: ["name", "value"], required: ["name", "value"])
            string(a["name"], ".attributes[\(i)].name")
            string(a["value"], ".attributes[\(i)].value")
        }
        for (z, zone) in list(object["zones"], ".zones").enumerated() {
            let p = ".zones[\(z)]"
            keys(zone, p, allowed: ["name", "type", "parent", "costs", "attributes", "resources"], required: ["name", "type"])
            for k in ["name", "type", "parent"] { string(zone[k], "\(p).\(k)") }
            for (i, c) in list(zone["costs"], "\(p).costs").enumerated() {
                keys(c, "\(p).costs[\(i)]", allowed: ["name", "value"], required: ["name", "value"])
                string(c["name"], "\(p).costs[\(i)].name")
                if !isInteger(c["value"]) { out.append("\(p).costs[\(i)].value: not an integer") }
            }
            for (i, a) in list(zone["attributes"], "\(p).attributes").enumerated() {
                keys(a, "\(p).attributes[\(i)]", allowed: ["name", "value"], required: ["name", "value"])
            }
            for (i, r) in list(zone["resources"], "\(p).resources").enumerated() {
                let fields = ["capacity", "allocatable", "available"]
                keys(r, "\(p).resources[\(i)]", allowed: Set(fields + ["name"]), required: Set(fields + ["name"]))
                string(r["name"], "\(p).resources[\(i)].name")
                for f in fields where r[f] != nil && !isQuantity(r[f]) { out.append("\(p).resources[\(i)].\(f): not a quantity") }
            }
        }
        return out
    }
}

extension ExportsTests {
@Suite("NodeResourceTopology export")
struct NodeResourceTopology {
    static func json(_ object: NodeResourceTopologyExport.Object) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(object)) as? [String: Any])
    }

    /// On every fixture: an object the v1alpha2 schema accepts, whose zones, costs, CPUs and memory
    /// are what the fixture's facts.json (recorded by another tool from the same files) says.
    @Test(.enabled(if: ExportFixtures.available, ExportFixtures.absent), arguments: ExportFixtures.names)
    func objectFollowsTheSchemaAndTheFacts(name: String) throws {
        let inventory = try ExportFixtures.inventory(name)
        let export = NodeResourceTopologyExport(nodeName: "worker-1", policy: "single-numa-node", scope: "pod")
        try export.validate()
        let object = try Self.json(export.object(for: inventory))
        let problems = NRTSchema.problems(object)
        #expect(problems.isEmpty, "\(name): \(problems)")

        let nodes = try #require(try ExportFixtures.facts(name)["nodes"] as? [String: [String: Any]])
        let ids = nodes.keys.compactMap { Int($0) }.sorted()
        let zones = try #require(object["zones"] as? [[String: Any]])
        #expect(zones.map { $0["name"] as? String } == ids.map { "node-\($0)" })
        for (zone, id) in zip(zones, ids) {
            let fact = try #require(nodes[String(id)])
            #expect(zone["type"] as? String == "Node")
            let resources = Dictionary(((zone["resources"] as? [[String: Any]]) ?? []).map { ($0["name"] as? String ?? "", $0) },
                                       uniquingKeysWith: { a, _ in a })
            let kB = UInt64((fact["memtotal_kB"] as? Int) ?? Int(fact["memtotal_kB"] as? String ?? "") ?? 0)
            #expect(resources["memory"]?["capacity"] as? String == (kB > 0 ? String(kB * 1024) : nil), "\(name) node \(id)")
            let cpus = (fact["cpulist"] as? String).flatMap { try? CPUSet(cpulist: $0) } ?? CPUSet()
            let node = try #require(inventory.topology.nodes.first { $0.id.rawValue == id })
            #expect(resources["cpu"]?["capacity"] as? String == (node.cpus.isEmpty ? nil : String(node.cpus.count)))
            #expect(node.cpus.elements.allSatisfy { cpus.contains($0) }, "\(name) node \(id): CPUs outside the facts' cpulist")
            for (key, r) in resources {
                #expect(r["capacity"] as? String == r["allocatable"] as? String && r["capacity"] as? String == r["available"] as? String, "\(key)")
            }
            let costs = ((zone["costs"] as? [[String: Any]]) ?? []).map { ($0["name"] as? String ?? "", $0["value"] as? Int ?? -1) }
            if let row = fact["distance"] as? [Int] {
                #expect(costs.map(\.0) == ids.map { "node-\($0)" } && costs.map(\.1) == row, "\(name) node \(id): \(costs) vs \(row)")
            }
        }
        // Each device with a node is counted in that node's zone, the others in an attribute.
        for kind in DeviceKind.schedulable {
            let placed = zones.flatMap { ($0["resources"] as? [[String: Any]]) ?? [] }
                .filter { $0["name"] as? String == "numaplaced.io/\(kind.rawValue)" }
                .reduce(0) { $0 + (Int($1["capacity"] as? String ?? "") ?? 0) }
            let unknown = ((object["attributes"] as? [[String: String]]) ?? [])
                .first { $0["name"] == "numaplaced.io/\(kind.rawValue)-locality-unknown" }.flatMap { Int($0["value"] ?? "") } ?? 0
            #expect(placed + unknown == inventory.devices.filter { $0.kind == kind }.count, "\(name) \(kind)")
        }
        #expect(object["topologyPolicies"] as? [String] == ["SingleNUMANodePodLevel"])
    }

    /// The checker above must be able to fail: objects that break the schema are caught.
    @Test(.enabled(if: ExportFixtures.available, ExportFixtures.absent))
    func brokenObjectsAreCaught() throws {
        let inventory = try ExportFixtures.inventory("hwloc-32em64t-2n8c+1mic")
        let good = try Self.json(NodeResourceTopologyExport(nodeName: "n").object(for: inventory))
        #expect(NRTSchema.problems(good).isEmpty)
        var zones = try #require(good["zones"] as? [[String: Any]])
        var resources = try #require(zones[0]["resources"] as? [[String: Any]])
        resources[0]["available"] = nil
        resources[0]["capacity"] = "8 cores"
        zones[0]["resources"] = resources
        zones[0]["costs"] = [["name": "node-0", "value": "ten"]]
        zones[1]["numa"] = 1
        zones[1]["type"] = nil
        var bad = good
        bad["zones"] = zones
        #expect(Set(NRTSchema.problems(bad)) == [
            ".zones[0].resources[0].available: required", ".zones[0].resources[0].capacity: not a quantity",
            ".zones[0].costs[0].value: not an integer", ".zones[1].numa: not in the schema", ".zones[1].type: required",
        ])
    }

    @Test func optionsAreChecked() {
        #expect(throws: NodeResourceTopologyExport.OptionError.invalidNodeName("Worker_1")) {
            try NodeResourceTopologyExport(nodeName: "Worker_1").validate()
        }
        #expect(throws: NodeResourceTopologyExport.OptionError.unknownPolicy("numa")) {
            try NodeResourceTopologyExport(nodeName: "w", policy: "numa").validate()
        }
        #expect(throws: NodeResourceTopologyExport.OptionError.unknownScope("node")) {
            try NodeResourceTopologyExport(nodeName: "w", scope: "node").validate()
        }
        #expect(throws: NodeResourceTopologyExport.OptionError.self) { try NodeResourceTopologyExport(nodeName: "w", prefix: "a..b").validate() }
        #expect(throws: Never.self) { try NodeResourceTopologyExport(nodeName: "worker-1.example", policy: "restricted").validate() }
    }
}
}
