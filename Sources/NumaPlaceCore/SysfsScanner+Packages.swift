extension SysfsScanner {
    /// Groups the online CPUs by `topology/physical_package_id`.
    ///
    /// All or nothing: when one online CPU has no readable, non-negative id (some virtual machines and
    /// architectures write -1, old kernels lack the file), the result is empty and users of `packages`
    /// treat the machine as one package, rather than building an order from half the facts.
    func readPackages(_ online: CPUSet) -> [CPUSet] {
        var byID: [Int: CPUSet] = [:]
        for cpu in online.elements {
            guard let text = try? root.readAttribute("\(Self.cpuDir)/cpu\(cpu)/topology/physical_package_id", limit: 64) else {
                return []
            }
            let t = text.trimmingWhitespace
            guard t.count <= 9, let id = Int(t), id >= 0 else { return [] }
            byID[id, default: CPUSet()].insert(cpu)
        }
        return byID.values.sorted { ($0.first ?? Int.max) < ($1.first ?? Int.max) }
    }
}
