import Foundation
@testable import NumaPlaceCore

/// Checks every managed device of `inventory` against DESIGN.md's locality rule applied to the device's
/// own files under `root` (read here with Foundation and parsed independently of `SysfsParsers`).
/// Node CPUs and distances come from the scanned topology, which the fixture and live-host tests check
/// against independent readings of their own. Returns one line per device that breaks the rule.
func localityRuleViolations(root: SysfsRoot, inventory: Inventory) -> [String] {
    let topology = inventory.topology
    func text(_ relative: String) -> String? {
        guard let data = FileManager.default.contents(atPath: root.absolute(relative)) else { return nil }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
    var all = Set<Int>()
    var cpuNodes: [Int: Set<Int>] = [:]
    for n in topology.nodes {
        let s = Set(n.cpus.elements)
        all.formUnion(s)
        if !s.isEmpty { cpuNodes[n.id.rawValue] = s }
    }
    let online = Set(topology.onlineCPUs.elements)
    var bad: [String] = []
    for d in inventory.devices {
        let dir = "sys/bus/pci/devices/\(d.address)"
        let got = Set(d.cpus.elements)
        let numaText = text("\(dir)/numa_node")
        if let t = numaText, let n = Int(t), let id = NUMANodeID(rawValue: n), topology.node(id) != nil {
            if d.locality.name != "node" || d.numaNode?.rawValue != n {
                bad.append("\(d.address): numa_node \(n) exists but locality is \(d.locality.name), node \(String(describing: d.numaNode))")
            }
            let want: Set<Int>
            if let own = cpuNodes[n] {
                want = own
            } else {
                let dist = cpuNodes.keys.map { ($0, topology.distance(node(n), node($0))) }
                let m = dist.map(\.1).min()
                want = dist.filter { $0.1 == m }.reduce(into: Set<Int>()) { $0.formUnion(cpuNodes[$1.0] ?? []) }
            }
            if got != want { bad.append("\(d.address): numa_node \(n): cpus \(d.cpus) != \(CPUSet(want).cpulist)") }
            continue
        }
        var local: Set<Int>? = nil
        if let l = text("\(dir)/local_cpulist") {
            local = independentCPUs(l)
        } else if let m = text("\(dir)/local_cpus") {
            local = independentMask(m)
        }
        let l = (local ?? []).intersection(online.isEmpty ? all : online)
        if cpuNodes.count == 1, let (only, ocpus) = cpuNodes.first, l.isEmpty || l.isSuperset(of: all) {
            // Rule 4: nowhere else to be.
            if d.locality != .onlyNode(node(only)) || got != ocpus {
                bad.append("\(d.address): one CPU-bearing node \(only): locality \(d.locality.name) node \(String(describing: d.numaNode)) cpus \(d.cpus)")
            }
        } else if l.isEmpty || l.isSuperset(of: all) {
            if d.locality != .unknown || d.numaNode != nil || !got.isEmpty {
                bad.append("\(d.address): numa_node \(numaText ?? "missing"), local \(CPUSet(l).cpulist): should be unknown, is \(d.locality.name) node \(String(describing: d.numaNode)) cpus \(d.cpus)")
            }
        } else {
            if d.locality.name != "cpus" || got != l {
                bad.append("\(d.address): local \(CPUSet(l).cpulist): locality \(d.locality.name) cpus \(d.cpus)")
            }
            let holders = cpuNodes.filter { l.isSubset(of: $0.value) }.map(\.key)
            let wantNode = holders.count == 1 ? holders[0] : nil
            if d.numaNode?.rawValue != wantNode {
                bad.append("\(d.address): local \(CPUSet(l).cpulist): node \(String(describing: d.numaNode)) != holder \(String(describing: wantNode))")
            }
        }
    }
    return bad
}

/// A kernel hex mask (`ff,00000000`) read without `CPUSet`, for cross-checking it.
func independentMask(_ text: String) -> Set<Int> {
    var out = Set<Int>()
    let words = text.split(separator: ",")
    var base = 0
    for word in words.reversed() {
        for (i, digit) in word.reversed().enumerated() {
            guard let v = digit.hexDigitValue else { out.insert(-1); continue }
            for b in 0..<4 where v & (1 << b) != 0 { out.insert(base + i * 4 + b) }
        }
        base += words.count == 1 ? word.count * 4 : 32
    }
    return out
}
