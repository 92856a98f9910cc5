import CNuma
import NumaPlaceCore
import Testing

/// The scanner's reading of this host against libnuma's, an implementation that shares no code with
/// it: the node set, each node's CPUs, the distance table and the node sizes must agree.
@Suite("libnuma cross-check")
struct LibnumaCrossCheckTests {
    /// numa_available() is -1 on a kernel without NUMA support (or where get_mempolicy is refused).
    static let available = numa_available() >= 0

    @Test("nodes, CPUs and distances agree with libnuma", .enabled(if: available, "libnuma reports no NUMA support here"))
    func topologyAgrees() throws {
        let topology = SysfsScanner(root: SysfsRoot("/")).scan().topology
        // libnuma's configured nodes are those with memory; the scanner also lists memoryless ones, so
        // compare on the nodes libnuma knows and check none of them is missing from the scan.
        let maxNode = Int(numa_max_node())
        for id in 0...maxNode where numa_bitmask_isbitset(numa_nodes_ptr, UInt32(id)) != 0 {
            let node = try #require(topology.nodes.first { $0.id.rawValue == id }, "node \(id) is missing from the scan")
            let mask = try #require(numa_allocate_cpumask())
            defer { numa_free_cpumask(mask) }
            #expect(numa_node_to_cpus(Int32(id), mask) == 0)
            let cpus = (0..<Int(numa_num_possible_cpus())).filter { numa_bitmask_isbitset(mask, UInt32($0)) != 0 }
            #expect(Set(cpus) == Set(node.cpus.elements), "node \(id) CPUs")
            for other in topology.nodes where numa_bitmask_isbitset(numa_nodes_ptr, UInt32(other.id.rawValue)) != 0 {
                #expect(Int(numa_distance(Int32(id), Int32(other.id.rawValue))) == topology.distance(node.id, other.id),
                        "distance \(id) → \(other.id)")
            }
            var free: Int64 = 0
            let size = numa_node_size64(Int32(id), &free)
            // Both read the node's MemTotal; libnuma in bytes from the same meminfo line.
            if size > 0 { #expect(UInt64(size) == node.memoryBytes, "node \(id) size") }
        }
    }
}
