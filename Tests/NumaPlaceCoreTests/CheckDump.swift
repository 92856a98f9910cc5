import Foundation
import NumaPlaceTestSupport
@testable import NumaPlaceCore

extension FixtureLibrary {
    /// What `NAME.facts.json` records about fixture `name`, independently of this code.
    static func facts(_ name: String) throws -> MachineFacts {
        let data = try Data(contentsOf: URL(fileURLWithPath: "\(directory)/\(name).facts.json"))
        return try JSONDecoder().decode(MachineFacts.self, from: data)
    }
}

/// What a `*.facts.json` says about its machine (the fields `check-dump.py` reads).
struct MachineFacts: Decodable {
    struct Node: Decodable {
        let cpulist: String
        let memtotal_kB: UInt64?
        let distance: [Int]?
    }
    struct Accelerator: Decodable {
        let `class`: String
        let numa_node: Int?
        let local_cpulist: String?
    }
    let nodes: [String: Node]
    let accelerators: [String: Accelerator]
}

/// The fields of `numaplaced --dump` that `check-dump.py` compares, taken from an `Inventory` the way
/// the dump writes them: node distances in the order of `nodes`, `numaNode` nil when unknown,
/// `cpus` empty when unknown.
struct DumpView {
    struct Node { let id: Int; let cpus: String; let memoryBytes: UInt64; let distances: [Int?] }
    struct Device { let address: String; let numaNode: Int?; let cpus: String; let locality: String }
    let nodes: [Node]
    let devices: [Device]

    init(_ inventory: Inventory) {
        let order = inventory.topology.nodes.map(\.id)
        nodes = inventory.topology.nodes.map { n in
            Node(id: n.id.rawValue, cpus: n.cpus.cpulist, memoryBytes: n.memoryBytes,
                 distances: order.map { n.distances[$0] })
        }
        devices = inventory.devices.map { d in
            Device(address: d.address.description, numaNode: d.numaNode?.rawValue, cpus: d.cpus.cpulist,
                   locality: d.locality.name)
        }
    }
}

/// A port of `check-dump.py`: compares a dump with the facts by DESIGN.md's locality rule.
/// Returns the mismatches (empty when every checked fact holds) and how many facts were checked.
func checkDump(_ dump: DumpView, against facts: MachineFacts) -> (mismatches: [String], checked: Int) {
    var bad: [String] = []
    var checked = 0
    let dn = Dictionary(dump.nodes.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
    var fn: [Int: MachineFacts.Node] = [:]
    for (k, v) in facts.nodes {
        guard let id = Int(k) else { bad.append("facts node id \(k) is not an integer"); continue }
        fn[id] = v
    }
    if Set(dn.keys) != Set(fn.keys) {
        bad.append("node ids \(dn.keys.sorted()) != expected \(fn.keys.sorted())")
    }
    let order = dump.nodes.map(\.id)
    for (nid, fv) in fn {
        guard let d = dn[nid] else { continue }
        checked += 1
        if independentCPUs(d.cpus) != independentCPUs(fv.cpulist) {
            bad.append("node \(nid) cpus \(d.cpus) != \(fv.cpulist)")
        }
        if let kb = fv.memtotal_kB, kb != 0, d.memoryBytes != kb * 1024 {
            bad.append("node \(nid) memoryBytes \(d.memoryBytes) != \(kb * 1024)")
        }
        if let row = fv.distance, !row.isEmpty, order == fn.keys.sorted() {
            if d.distances.map({ $0 ?? -1 }) != row {
                bad.append("node \(nid) distances \(d.distances) != \(row)")
            }
        }
    }
    let allCPUs = fn.values.reduce(into: Set<Int>()) { $0.formUnion(independentCPUs($1.cpulist)) }
    let cpuNodes = fn.compactMapValues { v -> Set<Int>? in
        let s = independentCPUs(v.cpulist)
        return s.isEmpty ? nil : s
    }
    let dd = Dictionary(dump.devices.map { ($0.address.lowercased(), $0) }, uniquingKeysWith: { a, _ in a })
    for (addr, a) in facts.accelerators.sorted(by: { $0.key < $1.key }) {
        guard let x = dd[addr.lowercased()] else {
            bad.append("device \(addr) (class \(a.class)) missing")
            continue
        }
        let got = independentCPUs(x.cpus)
        if let n = a.numa_node, n >= 0, let nodeFacts = fn[n] {
            checked += 1
            if x.numaNode != n { bad.append("device \(addr) numaNode \(String(describing: x.numaNode)) != \(n)") }
            if let own = cpuNodes[n] {
                if got != own { bad.append("device \(addr) cpus \(x.cpus) != node \(n) cpus") }
            } else if let row = nodeFacts.distance, row.count == fn.count {
                // CPU-less node: the nearest CPU-bearing nodes by distance.
                let ids = fn.keys.sorted()
                var dist: [Int: Int] = [:]
                for (i, id) in ids.enumerated() where cpuNodes[id] != nil { dist[id] = row[i] }
                if let m = dist.values.min() {
                    let want = dist.filter { $0.value == m }.keys.reduce(into: Set<Int>()) { $0.formUnion(cpuNodes[$1] ?? []) }
                    if got != want { bad.append("device \(addr) on CPU-less node \(n): cpus \(x.cpus), want nearest \(want.sorted().prefix(4))…") }
                }
            }
        } else {
            let l = independentCPUs(a.local_cpulist)
            checked += 1
            if cpuNodes.count == 1, let (only, ocpus) = cpuNodes.first, l.isEmpty || l.isSuperset(of: allCPUs) {
                // Rule 4: the only CPU-bearing node.
                if x.numaNode != only || got != ocpus {
                    bad.append("device \(addr) on a one-node machine should be on node \(only); got \(String(describing: x.numaNode)), \(x.cpus)")
                }
            } else if l.isEmpty || l.isSuperset(of: allCPUs) {
                if x.locality != "unknown" || x.numaNode != nil || !got.isEmpty {
                    bad.append("device \(addr) should be unknown (numa_node \(String(describing: a.numa_node)), local \(a.local_cpulist ?? "nil")); got \(x.locality), \(String(describing: x.numaNode)), \(x.cpus)")
                }
            } else {
                if got != l { bad.append("device \(addr) cpus \(x.cpus) != local_cpulist \(a.local_cpulist ?? "nil")") }
                let holders = cpuNodes.filter { l.isSubset(of: $0.value) }.map(\.key)
                if holders.count == 1, x.numaNode != holders[0] {
                    bad.append("device \(addr) numaNode \(String(describing: x.numaNode)) != \(holders[0]) (holds all its CPUs)")
                }
            }
        }
    }
    return (bad, checked)
}

/// `check-dump.py`'s own cpulist reader, kept independent of `CPUSet` so the fixture checks do not
/// test the parser with itself. Ranges end below `CPUSet.limit` (a hostile "0-99999999999" must not
/// become a set of 10^11 numbers); anything it cannot read becomes -1, which no CPU set holds.
func independentCPUs(_ text: String?) -> Set<Int> {
    var out = Set<Int>()
    for part in (text ?? "").replacingOccurrences(of: " ", with: "").split(separator: ",") {
        let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
        if bounds.count == 2, let a = Int(bounds[0]), let b = Int(bounds[1]), a <= b, b < CPUSet.limit {
            out.formUnion(a...b)
        } else if let a = Int(part) {
            out.insert(a)
        } else {
            out.insert(-1)   // Never a CPU: makes a comparison with a malformed list fail visibly.
        }
    }
    return out
}
