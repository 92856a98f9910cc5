import NumaPlaceCore

public typealias NRIPod = Nri_Pkg_Api_V1alpha1_PodSandbox
public typealias NRIContainer = Nri_Pkg_Api_V1alpha1_Container
public typealias NRIAdjustment = Nri_Pkg_Api_V1alpha1_ContainerAdjustment

/// The annotations a pod or container writes, and the one the plugin writes back.
public enum NRIAnnotation {
    /// Devices to place the container beside, comma-separated: PCI addresses, device files
    /// (`/dev/dri/renderD128`), their last component or driver names (`ve0`). Overrides the spec's devices.
    public static let device = "numaplaced.io/device"
    /// Whole physical cores for this container alone, a decimal count.
    public static let exclusiveCores = "numaplaced.io/exclusive-cores"
    /// Written by the plugin onto a placed container: what it got, for `crictl inspect`.
    public static let placement = "numaplaced.io/placement"
    /// Largest count accepted in `exclusiveCores` (PlacementPolicy bounds it too; this keeps the text short).
    static let maxExclusiveCores = PlacementPolicy.maxExclusiveCores

    /// A container's value for `key`: the container's own annotation, then the pod's
    /// `key.container.NAME` (kubelet passes pod annotations to the sandbox only, so a pod that wants one
    /// container placed names it there), then the pod's `key`, which applies to every container.
    static func value(_ key: String, pod: NRIPod, container: NRIContainer) -> String? {
        container.annotations[key] ?? pod.annotations["\(key).container.\(container.name)"] ?? pod.annotations[key]
    }
}

/// Where a container goes: the CPUs and memory nodes of its devices.
public struct ContainerPlacement: Hashable, Sendable {
    public var devices: [PCIAddress]
    public var cpus: CPUSet
    /// Node ids, as cpuset.mems takes them.
    public var mems: CPUSet
    /// Whole cores held for this container alone until it stops.
    public var exclusiveCores: [CPUSet]
    /// What best-effort admission had to weaken, in words.
    public var degraded: [String]

    /// The NRI adjustment: cpuset.cpus and cpuset.mems, and the placement annotation.
    public func adjustment() -> NRIAdjustment {
        var adjust = NRIAdjustment()
        adjust.linux.resources.cpu.cpus = cpus.cpulist
        if !mems.isEmpty { adjust.linux.resources.cpu.mems = mems.cpulist }
        adjust.annotations[NRIAnnotation.placement] = summary
        return adjust
    }

    public var summary: String {
        var parts = ["devices=\(devices.map(\.description).joined(separator: ","))", "cpus=\(cpus.cpulist)",
                     "mems=\(mems.cpulist)"]
        if !exclusiveCores.isEmpty { parts.append("exclusive=\(exclusiveCores.count)") }
        if !degraded.isEmpty { parts.append("degraded=\(degraded.joined(separator: "; "))") }
        return parts.joined(separator: " ")
    }
}

/// Why a container that asked for a placement cannot have it. The runtime fails the container's
/// creation with this text: an explicit request that cannot be met is an error the pod's owner must see.
public enum ContainerPlacementError: Error, Hashable, Sendable, CustomStringConvertible {
    case noSuchDevice(String)
    /// The device exists, as a kind the plugin does not place containers for (a display, a NIC).
    case notPlaced(name: String, kind: DeviceKind)
    case invalidAnnotation(key: String, value: String, reason: String)
    case placement(PlacementError)

    public var description: String {
        switch self {
        case .noSuchDevice(let name): return "\(NRIAnnotation.device): no accelerator named \(name)"
        case .notPlaced(let name, let kind):
            return "\(NRIAnnotation.device): \(name) is a \(kind.rawValue), and containers are placed only for GPUs and "
                + "accelerators (a [Devices] Match= rule in numaplaced's configuration can classify it as one)"
        case .invalidAnnotation(let key, let value, let why): return "\(key)=\(value): \(why)"
        case .placement(let e): return e.description
        }
    }
}

/// Decides a container's placement. Pure but for stat(2) of the host's device nodes, which `hostDevice`
/// replaces in tests: the inventory and the exclusive reservations are inputs.
public enum ContainerPlacer {
    /// The kinds whose device files make a container "use an accelerator". NICs (an RDMA verbs device in
    /// a pod) and display adapters do not: a pod with only those is left alone.
    static let placedKinds: Set<DeviceKind> = [.gpu, .accelerator]

    /// nil when the container uses no accelerator the inventory knows and names none: no adjustment.
    ///
    /// The allowed set is the machine's online CPUs and its nodes with memory, not the daemon's own
    /// cgroup: the container lives under the runtime's cgroups, which the runtime narrows itself.
    /// Admission is best-effort, so that a device of unknown locality or a short supply of whole cores
    /// still starts the container (what was weakened is in `degraded` and the placement annotation).
    public static func decide(pod: NRIPod, container: NRIContainer, inventory: Inventory, reserved: CPUSet,
                              hostDevice: DeviceNumberLookup = DeviceNumber.ofHostNode)
        throws(ContainerPlacementError) -> ContainerPlacement? {
        let devices = try selectedDevices(pod: pod, container: container, inventory: inventory, hostDevice: hostDevice)
        guard !devices.isEmpty else { return nil }
        let exclusive = try exclusiveCores(pod: pod, container: container)

        let topology = inventory.topology
        let memoryNodes = topology.nodes.filter(\.hasMemory).map(\.id.rawValue)
        let allowed = AllowedSet(cpus: topology.onlineCPUs, mems: CPUSet(memoryNodes), source: "online")
        let target: PlacementTarget = devices.count == 1 ? .device(devices[0]) : .devices(devices)
        let decision: PlacementDecision
        do {
            decision = try PlacementPolicy.decide(
                PlacementRequest(target: target, memory: .bind, exclusiveCores: exclusive, admission: .bestEffort),
                inventory: inventory, allowed: allowed, reserved: reserved)
        } catch {
            throw .placement(error)
        }
        return ContainerPlacement(devices: devices, cpus: decision.cpus,
                                  mems: CPUSet(decision.memory.nodes.map(\.rawValue)),
                                  exclusiveCores: decision.exclusiveCores, degraded: decision.degraded)
    }

    /// The annotation's devices when it is present (each must resolve), otherwise the accelerators among
    /// the spec's device files (others — /dev/fuse, a NIC — are ignored). In first-seen order, once each.
    ///
    /// A spec device's `path` is where the container sees it, which a device plugin may choose freely
    /// (the host's renderD129 as the container's /dev/dri/renderD128); its major and minor are the host
    /// device's. So a device is found by its numbers first, against the host's nodes of the inventory's
    /// accelerators; by path only where the host has no node of those numbers (a captured machine, a
    /// node not created), and then not when the host's node at that path has other numbers (a remapped
    /// path: the container's /dev/X is some other device).
    static func selectedDevices(pod: NRIPod, container: NRIContainer, inventory: Inventory,
                                hostDevice: DeviceNumberLookup = DeviceNumber.ofHostNode)
        throws(ContainerPlacementError) -> [PCIAddress] {
        var found: [PCIAddress] = []
        if let text = NRIAnnotation.value(NRIAnnotation.device, pod: pod, container: container) {
            let names = text.split(separator: ",").map { $0.trimmingSpaces }.filter { !$0.isEmpty }
            guard !names.isEmpty, names.count <= 64 else {
                throw .invalidAnnotation(key: NRIAnnotation.device, value: text, reason: "name 1 to 64 devices")
            }
            for name in names {
                guard let d = inventory.device(named: name) else { throw .noSuchDevice(name) }
                guard placedKinds.contains(d.kind) else { throw .notPlaced(name: name, kind: d.kind) }
                if !found.contains(d.address) { found.append(d.address) }
            }
            return found
        }
        let specDevices = container.linux.devices.prefix(1024)
        guard !specDevices.isEmpty else { return [] }
        var byNumber: [DeviceNumber: PCIAddress] = [:]
        for d in inventory.devices where placedKinds.contains(d.kind) {
            for node in d.deviceNodes.prefix(64) {
                if let n = hostDevice(node), byNumber[n] == nil { byNumber[n] = d.address }
            }
        }
        for device in specDevices {
            let number = DeviceNumber(spec: device)
            let address: PCIAddress?
            if let n = number, let a = byNumber[n] {
                address = a
            } else if let d = inventory.device(named: device.path), placedKinds.contains(d.kind),
                      number == nil || hostDevice(device.path).map({ $0 == number }) ?? true {
                address = d.address
            } else {
                address = nil
            }
            if let a = address, !found.contains(a) { found.append(a) }
        }
        return Array(found.prefix(64))
    }

    static func exclusiveCores(pod: NRIPod, container: NRIContainer) throws(ContainerPlacementError) -> Int {
        guard let text = NRIAnnotation.value(NRIAnnotation.exclusiveCores, pod: pod, container: container) else { return 0 }
        let trimmed = text.trimmingSpaces
        guard trimmed.count <= 5, trimmed.allSatisfy(\.isASCIIDigit), let n = Int(trimmed),
              n <= NRIAnnotation.maxExclusiveCores else {
            throw .invalidAnnotation(key: NRIAnnotation.exclusiveCores, value: text,
                                     reason: "a whole number from 0 to \(NRIAnnotation.maxExclusiveCores)")
        }
        return n
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}

extension StringProtocol {
    var trimmingSpaces: String {
        String(drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}
