/// What a device is for numaplaced. Only these kinds enter the device table.
public enum DeviceKind: String, CaseIterable, Sendable, Codable {
    case gpu
    /// A display adapter of a BMC or a hypervisor (ASPEED, Matrox, virtio, bochs, VMware): listed and
    /// addressable like any device, never counted or exported as a GPU.
    case display
    case accelerator
    case nic

    /// The kinds a cluster export counts and offers to schedulers.
    public static let schedulable: [DeviceKind] = [.gpu, .accelerator, .nic]
}

/// The memory policy a worker gets (set_mempolicy(2) modes).
public enum MemoryPolicyMode: String, CaseIterable, Sendable, Codable {
    /// MPOL_PREFERRED on the first placement node: allocations fall back elsewhere when it is full.
    case preferred
    /// MPOL_BIND on the placement nodes: allocations fail (OOM) rather than go remote.
    case bind
    /// MPOL_INTERLEAVE over the placement nodes.
    case interleave
    /// Leave MPOL_DEFAULT (local allocation) after the inherited policy was reset.
    case none

    /// The name `/proc/<pid>/numa_maps` and the Varlink API use for the applied policy.
    public var appliedName: String {
        switch self {
        case .preferred: return "preferred"
        case .bind: return "bind"
        case .interleave: return "interleave"
        case .none: return "default"
        }
    }
}

/// What to do when a placement cannot be applied exactly.
public enum Admission: String, CaseIterable, Sendable, Codable {
    /// Fail the spawn with a typed error.
    case strict
    /// Degrade (bind → preferred → none; fewer or shared cores) and report what was applied.
    case bestEffort = "best-effort"
}
