/// A Node Feature Discovery feature file: what the local feature source of nfd-worker reads from
/// `/etc/kubernetes/node-feature-discovery/features.d/`, one `name=value` per line, `#` comments.
/// The local source skips `#` lines from NFD v0.14.0; older nfd-workers read them as feature names
/// (which then fail label validation), so the file is for v0.14.0 and newer.
///
/// Every name becomes a node label, so every name and value here is a valid Kubernetes label key and
/// value (checked by `isValidLabelKey` / `isValidLabelValue`; anything that would not be is left out
/// with a comment, never written). PCI addresses become `0000_3b_00_0` because `:` may not appear in
/// a label; CPU lists become `0-7_16-23` because `,` may not appear in a value. Labels:
///
///     numaplaced.io/numa-nodes=2                       nodes in the model
///     numaplaced.io/gpus=4                             devices of each kind (gpus, accelerators, nics)
///     numaplaced.io/gpus.locality-unknown=0            … of which the locality is unknown
///     numaplaced.io/node-1.gpus=2                      devices of each kind per node (only where > 0)
///     numaplaced.io/gpu-0000_3b_00_0.numa-node=1       per device: node (or "unknown"),
///     numaplaced.io/gpu-0000_3b_00_0.locality=node     how it was resolved (node, cpus, unknown),
///     numaplaced.io/gpu-0000_3b_00_0.cpus=8-15_24-31   its CPUs (left out beyond 63 characters),
///     numaplaced.io/gpu-0000_3b_00_0.vendor=10de       and its PCI vendor and device ids
///     numaplaced.io/gpu-0000_3b_00_0.device=2330
public struct NFDFeatureExport: Hashable, Sendable {
    /// The label namespace. NFD v0.13 and newer accept any namespace but `kubernetes.io` and its
    /// subdomains (except `feature.node.kubernetes.io` and `profile.node.kubernetes.io`); older
    /// nfd-master needs `-extra-label-ns=numaplaced.io`.
    public var prefix: String

    public init(prefix: String = "numaplaced.io") {
        self.prefix = prefix
    }

    public enum OptionError: Error, Hashable, Sendable, CustomStringConvertible {
        case invalidPrefix(String)
        case deniedPrefix(String)

        public var description: String {
            switch self {
            case .invalidPrefix(let p):
                return "label prefix \"\(p.prefix(64))\" is not a DNS subdomain (lower-case letters, digits, '-' and '.', at most 253 characters)"
            case .deniedPrefix(let p):
                return "label prefix \"\(p.prefix(64))\" is in the kubernetes.io namespace, which NFD refuses"
            }
        }
    }

    public func validate() throws(OptionError) {
        guard Self.isDNSSubdomain(prefix) else { throw .invalidPrefix(prefix) }
        let allowed = ["feature.node.kubernetes.io", "profile.node.kubernetes.io"]
        let denied = ["kubernetes.io", "k8s.io"]
        if denied.contains(where: { prefix == $0 || prefix.hasSuffix("." + $0) }),
           !allowed.contains(where: { prefix == $0 || prefix.hasSuffix("." + $0) }) {
            throw .deniedPrefix(prefix)
        }
    }

    /// One label, or the reason it was left out.
    public enum Item: Hashable, Sendable {
        case label(key: String, value: String)
        case omitted(key: String, reason: String)
    }

    public func items(for inventory: Inventory) -> [Item] {
        var out: [Item] = []
        func add(_ name: String, _ value: String) {
            let key = "\(prefix)/\(name)"
            if !Self.isValidLabelKey(key) {
                out.append(.omitted(key: key, reason: "not a valid label key"))
            } else if !Self.isValidLabelValue(value) {
                out.append(.omitted(key: key, reason: value.utf8.count > 63
                                    ? "the value has \(value.utf8.count) characters, a label value at most 63"
                                    : "the value is not a valid label value"))
            } else {
                out.append(.label(key: key, value: value))
            }
        }
        let topology = inventory.topology
        add("numa-nodes", String(topology.nodes.count))
        // Display adapters (a BMC's VGA) are no resource a pod can ask for: never counted or labelled.
        for kind in DeviceKind.schedulable {
            let devices = inventory.devices.filter { $0.kind == kind }
            add(Self.plural(kind), String(devices.count))
            add(Self.plural(kind) + ".locality-unknown", String(devices.filter { $0.locality == .unknown }.count))
        }
        for node in topology.nodes {
            for kind in DeviceKind.schedulable {
                let n = inventory.devices.filter { $0.kind == kind && $0.numaNode == node.id }.count
                if n > 0 { add("node-\(node.id).\(Self.plural(kind))", String(n)) }
            }
        }
        for d in inventory.devices.sorted(by: { $0.address < $1.address }) where d.kind != .display {
            let base = "\(d.kind.rawValue)-\(Self.labelForm(d.address))"
            add(base + ".numa-node", d.numaNode.map(String.init(describing:)) ?? "unknown")
            add(base + ".locality", d.locality.name)
            if !d.cpus.isEmpty { add(base + ".cpus", d.cpus.cpulist.replacingPlaceholder(",", with: "_")) }
            add(base + ".vendor", String(d.vendorHex.dropFirst(2)))
            add(base + ".device", String(d.deviceHex.dropFirst(2)))
        }
        return out
    }

    /// The labels only, in file order.
    public func labels(for inventory: Inventory) -> [(key: String, value: String)] {
        items(for: inventory).compactMap {
            if case .label(let k, let v) = $0 { return (k, v) }
            return nil
        }
    }

    /// The feature file. Comments never start with `# +`, which NFD reads as a directive.
    public func render(_ inventory: Inventory, source: String) -> String {
        var out = ["# Node Feature Discovery features written by numaplacectl export nfd from \(source.filter { $0 != "\n" })."]
        for item in items(for: inventory) {
            switch item {
            case .label(let k, let v): out.append("\(k)=\(v)")
            case .omitted(let k, let why): out.append("# left out \(k): \(why)")
            }
        }
        return out.joined(separator: "\n") + "\n"
    }

    static func plural(_ kind: DeviceKind) -> String { kind.rawValue + "s" }

    /// `0000:3b:00.0` → `0000_3b_00_0`.
    public static func labelForm(_ address: PCIAddress) -> String {
        String(address.description.map { $0 == ":" || $0 == "." ? "_" : $0 })
    }

    // MARK: Kubernetes label syntax (k8s.io/apimachinery validation: IsQualifiedName, IsValidLabelValue)

    /// `[prefix/]name`: the prefix a DNS subdomain of at most 253 characters, the name 1 to 63
    /// characters of `[A-Za-z0-9_.-]` beginning and ending with a letter or digit.
    public static func isValidLabelKey(_ key: String) -> Bool {
        let parts = key.split(separator: "/", omittingEmptySubsequences: false)
        switch parts.count {
        case 1: return isQualifiedNamePart(parts[0])
        case 2: return isDNSSubdomain(parts[0]) && isQualifiedNamePart(parts[1])
        default: return false
        }
    }

    /// Empty, or 1 to 63 characters of `[A-Za-z0-9_.-]` beginning and ending with a letter or digit.
    public static func isValidLabelValue(_ value: String) -> Bool {
        value.isEmpty || isQualifiedNamePart(Substring(value))
    }

    static func isQualifiedNamePart(_ s: Substring) -> Bool {
        guard (1...63).contains(s.utf8.count), let first = s.first, let last = s.last,
              isASCIIAlphanumeric(first), isASCIIAlphanumeric(last) else { return false }
        return s.allSatisfy { isASCIIAlphanumeric($0) || $0 == "-" || $0 == "_" || $0 == "." }
    }

    static func isDNSSubdomain<S: StringProtocol>(_ s: S) -> Bool {
        guard (1...253).contains(s.utf8.count) else { return false }
        return s.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            guard (1...63).contains(label.utf8.count), let f = label.first, let l = label.last,
                  isLowerAlphanumeric(f), isLowerAlphanumeric(l) else { return false }
            return label.allSatisfy { isLowerAlphanumeric($0) || $0 == "-" }
        }
    }

    static func isASCIIAlphanumeric(_ c: Character) -> Bool {
        c.isASCII && (c.isLetter || c.isNumber)
    }

    static func isLowerAlphanumeric(_ c: Character) -> Bool {
        c.isASCII && ((c.isLetter && c.isLowercase) || c.isNumber)
    }
}
