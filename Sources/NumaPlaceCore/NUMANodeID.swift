/// A NUMA node number as the kernel names it (`/sys/devices/system/node/nodeN`).
///
/// Node ids are sparse (0, 1, 2, 33, 34 …) and are never array indices. A missing node
/// (`numa_node` reads `-1`) is not a node id: it is represented by `Locality.unknown`.
public struct NUMANodeID: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The kernel caps MAX_NUMNODES at 1 << CONFIG_NODES_SHIFT (10 at most), so 1024 nodes.
    public static let limit = 1024

    public let rawValue: Int

    /// Fails for negative ids and for ids at or above `limit`.
    public init?(rawValue: Int) {
        guard rawValue >= 0, rawValue < Self.limit else { return nil }
        self.rawValue = rawValue
    }

    public init?(_ text: Substring) {
        guard let value = Int(text), let id = NUMANodeID(rawValue: value) else { return nil }
        self = id
    }

    public static func < (a: NUMANodeID, b: NUMANodeID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { String(rawValue) }
}
