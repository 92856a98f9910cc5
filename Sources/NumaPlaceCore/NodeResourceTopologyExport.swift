/// A `NodeResourceTopology` object (`topology.node.k8s.io/v1alpha2`), the per-node record that the
/// Kubernetes scheduler's NodeResourceTopologyMatch plugin reads to place pods on nodes whose NUMA
/// zones can hold them.
///
/// Pure: an inventory in, an `Encodable` value out; `numaplacectl export nrt` writes it as JSON, which
/// `kubectl apply -f` takes as readily as YAML. What it holds:
/// - one zone per NUMA node, `type: Node`, `name: node-N` (the names kubelet's and NFD's topology
///   updaters use, so the plugin matches zones by name whoever wrote them);
/// - `costs`: the node's row of the firmware distance table (`node-M`, distance), its own node included;
/// - `resources`: `cpu` (the node's CPUs), `memory` (its bytes, from the node's meminfo), and one
///   `PREFIX/KIND` per device kind with devices on that node. Capacity, allocatable and available are
///   equal: the inventory knows what the machine has, not what kubelet reserves or pods hold; a node
///   agent that knows those rewrites them. Resources with nothing to offer are left out.
/// - devices whose locality is unknown are in no zone; a top-level attribute counts them, so the gap
///   is visible rather than silent.
/// - `topologyManagerPolicy` / `topologyManagerScope` attributes (and the deprecated `topologyPolicies`
///   value they map to) only when given: they are kubelet's settings, which a sysfs tree does not hold.
public struct NodeResourceTopologyExport: Hashable, Sendable {
    /// `metadata.name`: the Kubernetes node name (a DNS subdomain).
    public var nodeName: String
    /// The resource name prefix for devices (`numaplaced.io/gpu`).
    public var prefix: String
    /// kubelet's `--topology-manager-policy`: none, best-effort, restricted or single-numa-node.
    public var policy: String?
    /// kubelet's `--topology-manager-scope`: container or pod.
    public var scope: String?

    public static let policies = ["none", "best-effort", "restricted", "single-numa-node"]
    public static let scopes = ["container", "pod"]

    public init(nodeName: String, prefix: String = "numaplaced.io", policy: String? = nil, scope: String? = nil) {
        self.nodeName = nodeName
        self.prefix = prefix
        self.policy = policy
        self.scope = scope
    }

    public enum OptionError: Error, Hashable, Sendable, CustomStringConvertible {
        case invalidNodeName(String)
        case invalidPrefix(String)
        case unknownPolicy(String)
        case unknownScope(String)

        public var description: String {
            switch self {
            case .invalidNodeName(let n):
                return "node name \"\(n.prefix(64))\" is not a Kubernetes node name (a DNS subdomain: lower-case letters, digits, '-' and '.')"
            case .invalidPrefix(let p):
                return "resource prefix \"\(p.prefix(64))\" is not a DNS subdomain"
            case .unknownPolicy(let p):
                return "topology manager policy \"\(p.prefix(32))\" is not one of \(NodeResourceTopologyExport.policies.joined(separator: ", "))"
            case .unknownScope(let s):
                return "topology manager scope \"\(s.prefix(32))\" is not one of \(NodeResourceTopologyExport.scopes.joined(separator: ", "))"
            }
        }
    }

    public func validate() throws(OptionError) {
        guard NFDFeatureExport.isDNSSubdomain(nodeName) else { throw .invalidNodeName(nodeName) }
        guard NFDFeatureExport.isDNSSubdomain(prefix) else { throw .invalidPrefix(prefix) }
        if let policy, !Self.policies.contains(policy) { throw .unknownPolicy(policy) }
        if let scope, !Self.scopes.contains(scope) { throw .unknownScope(scope) }
    }

    // MARK: The object, field for field as the v1alpha2 CRD names them

    public struct Object: Encodable, Hashable, Sendable {
        public var apiVersion = "topology.node.k8s.io/v1alpha2"
        public var kind = "NodeResourceTopology"
        public var metadata: Metadata
        public var topologyPolicies: [String]
        public var zones: [Zone]
        public var attributes: [Attribute]
    }

    public struct Metadata: Encodable, Hashable, Sendable {
        public var name: String
    }

    public struct Zone: Encodable, Hashable, Sendable {
        public var name: String
        public var type: String
        public var costs: [Cost]
        public var resources: [Resource]
    }

    public struct Cost: Encodable, Hashable, Sendable {
        public var name: String
        public var value: Int64
    }

    /// A resource quantity: capacity, allocatable and available as Kubernetes quantity strings.
    public struct Resource: Encodable, Hashable, Sendable {
        public var name: String
        public var capacity: String
        public var allocatable: String
        public var available: String

        init(name: String, amount: UInt64) {
            self.name = name
            capacity = String(amount)
            allocatable = capacity
            available = capacity
        }
    }

    public struct Attribute: Encodable, Hashable, Sendable {
        public var name: String
        public var value: String
    }

    public static func zoneName(_ id: NUMANodeID) -> String { "node-\(id.rawValue)" }

    /// The deprecated `topologyPolicies` value kubelet's policy and scope map to (the v1alpha2 API's
    /// TopologyManagerPolicy constants).
    static func legacyPolicy(_ policy: String, scope: String?) -> String {
        let level = scope == "pod" ? "PodLevel" : "ContainerLevel"
        switch policy {
        case "single-numa-node": return "SingleNUMANode" + level
        case "restricted": return "Restricted" + level
        case "best-effort": return "BestEffort" + level
        default: return "None"
        }
    }

    public func object(for inventory: Inventory) -> Object {
        let topology = inventory.topology
        let exported = inventory.devices.filter { DeviceKind.schedulable.contains($0.kind) }
        let zones = topology.nodes.sorted { $0.id.rawValue < $1.id.rawValue }.map { node in
            let costs = node.distances.sorted { $0.key.rawValue < $1.key.rawValue }
                .map { Cost(name: Self.zoneName($0.key), value: Int64($0.value)) }
            var resources: [Resource] = []
            if node.hasCPUs { resources.append(Resource(name: "cpu", amount: UInt64(node.cpus.count))) }
            if node.hasMemory { resources.append(Resource(name: "memory", amount: node.memoryBytes)) }
            for kind in DeviceKind.schedulable {
                let count = exported.filter { $0.kind == kind && $0.numaNode == node.id }.count
                if count > 0 { resources.append(Resource(name: "\(prefix)/\(kind.rawValue)", amount: UInt64(count))) }
            }
            return Zone(name: Self.zoneName(node.id), type: "Node", costs: costs, resources: resources)
        }
        var attributes: [Attribute] = []
        if let policy { attributes.append(Attribute(name: "topologyManagerPolicy", value: policy)) }
        if let scope { attributes.append(Attribute(name: "topologyManagerScope", value: scope)) }
        for kind in DeviceKind.schedulable {
            let unplaced = exported.filter { $0.kind == kind && $0.numaNode.flatMap(topology.node) == nil }.count
            if unplaced > 0 {
                attributes.append(Attribute(name: "\(prefix)/\(kind.rawValue)-locality-unknown", value: String(unplaced)))
            }
        }
        return Object(metadata: Metadata(name: nodeName),
                      topologyPolicies: policy.map { [Self.legacyPolicy($0, scope: scope)] } ?? [],
                      zones: zones, attributes: attributes)
    }
}
