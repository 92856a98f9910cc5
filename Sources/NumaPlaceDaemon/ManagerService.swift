#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import NumaPlaceCore
import NumaPlaceProtocol

/// Answers `org.varlink.service` and `io.numaplaced.Manager` calls. In memory and socket-free:
/// the server hands it decoded calls and a sink, so tests drive it directly.
public final class ManagerService: VarlinkDispatcher, @unchecked Sendable {
    public static let version = "0.1.0"

    let store: TopologyStore
    let supervisor: WorkerSupervisor
    let hub: EventHub
    let startedAt: Int
    let startedMonotonic: UInt64
    let eventSource: String
    /// Called for Reload (and SIGHUP); returns an error text when the new configuration was refused.
    let reload: @Sendable () async -> String?
    let configurationFiles: @Sendable () -> [String]

    public init(store: TopologyStore, supervisor: WorkerSupervisor, hub: EventHub, eventSource: String,
                configurationFiles: @escaping @Sendable () -> [String] = { [] },
                reload: @escaping @Sendable () async -> String? = { nil }) {
        self.store = store
        self.supervisor = supervisor
        self.hub = hub
        self.eventSource = eventSource
        self.configurationFiles = configurationFiles
        self.reload = reload
        startedAt = EventHub.realtimeMicroseconds()
        startedMonotonic = ManagerService.monotonicMicroseconds()
    }

    static func monotonicMicroseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
    }

    public func handle(_ call: VarlinkCall, descriptors: PassedDescriptors, peer: PeerCredentials, sink: ReplySink) async {
        do {
            try await dispatch(call, descriptors: descriptors, peer: peer, sink: sink)
        } catch let error as VarlinkError {
            if !call.oneway { sink.send(VarlinkReply.encode(error: error)) }
        } catch {
            if !call.oneway {
                sink.send(VarlinkReply.encode(error: Manager.invalidParameter("parameters", "\(error)")))
            }
        }
    }

    private func reply<P: Encodable>(_ p: P, _ call: VarlinkCall, _ sink: ReplySink) throws {
        guard !call.oneway else { return }
        sink.send(try VarlinkReply.encode(p))
    }

    public func connectionClosed(_ peer: PeerCredentials) async {
        await supervisor.connectionClosed(peer.connection)
    }

    /// GetTopology and ListDevices without filters, once their replies are encoded (the first call
    /// after a change takes the actor's way and encodes them). The answer is the same bytes the
    /// actor's way sends; anything unusual about the call (oneway, upgrade, parameters that do not
    /// decode) takes the actor's way, which answers it as before.
    public func immediateReply(to call: VarlinkCall) -> [UInt8]? {
        guard !call.oneway, !call.upgrade, call.interface == Manager.interface else { return nil }
        switch call.member {
        case "GetTopology":
            guard (try? call.parameters(as: Empty.self)) != nil else { return nil }
            return store.replies.withLockedValue { $0.topology }
        case "ListDevices":
            guard (try? call.parameters(as: Manager.ListDevicesParameters.self)) == Manager.ListDevicesParameters() else {
                return nil
            }
            return store.replies.withLockedValue { $0.devices }
        default:
            return nil
        }
    }

    private func dispatch(_ call: VarlinkCall, descriptors: PassedDescriptors, peer: PeerCredentials,
                          sink: ReplySink) async throws {
        if call.upgrade { throw VarlinkError.methodNotImplemented(call.method) }
        switch call.interface {
        case VarlinkService.interface:
            try serviceCall(call, sink)
            return
        case Manager.interface:
            break
        default:
            throw VarlinkError.interfaceNotFound(call.interface)
        }
        // `more` on a method with one reply is allowed: that single reply simply does not continue.
        switch call.member {
        case "GetTopology":
            _ = try call.parameters(as: Empty.self)
            if !call.oneway { sink.send(try await store.topologyReply()) }
        case "ListDevices":
            let p = try call.parameters(as: Manager.ListDevicesParameters.self)
            if p == Manager.ListDevicesParameters() {
                if !call.oneway { sink.send(try await store.devicesReply()) }
            } else {
                try reply(Manager.ListDevicesReply(devices: try await listDevices(p)), call, sink)
            }
        case "GetDevice":
            let p = try call.parameters(as: Manager.GetDeviceParameters.self)
            let inventory = await store.inventory
            let address = try resolveDevice(p.address, in: inventory)
            guard let d = inventory.device(address) else { throw Manager.noSuchDevice(address.description) }
            try reply(Manager.GetDeviceReply(device: Manager.Device(d, in: inventory)), call, sink)
        case "Spawn":
            let p = try call.parameters(as: Manager.SpawnParameters.self)
            // Held only until the worker has its copies.
            defer { descriptors.closeAll() }
            let worker = try await supervisor.spawn(p, peer: peer, descriptors: descriptors)
            descriptors.closeAll()
            if p.tied == true, !sink.isOpen {
                // The client left while the worker was being started: the server's close may have
                // come before the worker was tracked, so stop it here (stopTied runs once).
                await supervisor.stopTied(worker.id)
            }
            try reply(Manager.WorkerReply(worker: worker), call, sink)
        case "ListWorkers":
            _ = try call.parameters(as: Empty.self)
            try reply(Manager.ListWorkersReply(workers: await supervisor.list(for: peer)), call, sink)
        case "GetWorker":
            let p = try call.parameters(as: Manager.WorkerIDParameters.self)
            try reply(Manager.WorkerReply(worker: try await supervisor.get(p.id, for: peer)), call, sink)
        case "Signal":
            let p = try call.parameters(as: Manager.SignalParameters.self)
            try await supervisor.signal(p.id, signal: p.signal, for: peer)
            try reply(Empty(), call, sink)
        case "Wait":
            let p = try call.parameters(as: Manager.WorkerIDParameters.self)
            let worker = try await supervisor.wait(p.id, for: peer)
            try reply(Manager.WorkerReply(worker: worker), call, sink)
        case "Monitor":
            _ = try call.parameters(as: Empty.self)
            guard call.more else { throw VarlinkError.expectedMore }
            await monitor(peer: peer, sink: sink)
        case "GetStatus":
            _ = try call.parameters(as: Empty.self)
            try reply(await status(peer: peer), call, sink)
        case "Reload":
            _ = try call.parameters(as: Empty.self)
            guard peer.isRoot else { throw Manager.permissionDenied("only root may reload the configuration") }
            if let refused = await reload() { throw Manager.invalidParameter("configuration", refused) }
            try reply(Empty(), call, sink)
        default:
            throw VarlinkError.methodNotFound(call.method)
        }
    }

    private func serviceCall(_ call: VarlinkCall, _ sink: ReplySink) throws {
        switch call.member {
        case "GetInfo":
            _ = try call.parameters(as: Empty.self)
            try reply(VarlinkService.GetInfoReply(vendor: "numaplaced", product: "numaplaced", version: Self.version,
                                                  url: "https://github.com/numaplaced/numaplaced",
                                                  interfaces: [VarlinkService.interface, Manager.interface]), call, sink)
        case "GetInterfaceDescription":
            let p = try call.parameters(as: VarlinkService.GetInterfaceDescriptionParameters.self)
            switch p.interface {
            case VarlinkService.interface:
                try reply(VarlinkService.GetInterfaceDescriptionReply(description: VarlinkService.description), call, sink)
            case Manager.interface:
                try reply(VarlinkService.GetInterfaceDescriptionReply(description: Manager.interfaceDescription), call, sink)
            default:
                throw VarlinkError.interfaceNotFound(p.interface)
            }
        default:
            throw VarlinkError.methodNotFound(call.method)
        }
    }

    /// A device selector: a PCI address in any spelling, or a device node or name a device has
    /// (`/dev/dri/renderD128`, `mlx5_0`, `GPU-…`).
    func resolveDevice(_ text: String, in inventory: Inventory, parameter: String = "address") throws(VarlinkError) -> PCIAddress {
        do { return try PCIAddress(parsing: text) } catch {
            if let d = inventory.device(named: text) { return d.address }
            throw Manager.invalidParameter(parameter, "\(error.description), and no device has that name or device node")
        }
    }

    private func listDevices(_ p: Manager.ListDevicesParameters) async throws -> [Manager.Device] {
        var kind: DeviceKind? = nil
        if let k = p.kind {
            guard let parsed = DeviceKind(rawValue: k) else {
                throw Manager.invalidParameter("kind", "expected gpu, display, accelerator or nic")
            }
            kind = parsed
        }
        let inventory = await store.inventory
        let address = try p.address.map { a throws(VarlinkError) in try resolveDevice(a, in: inventory) }
        if let n = p.node, NUMANodeID(rawValue: n).flatMap({ inventory.topology.node($0) }) == nil {
            throw Manager.noSuchNode(n)
        }
        let t = inventory.topology
        return inventory.devices.filter { d in
            (kind == nil || d.kind == kind) && (address == nil || d.address == address)
                && (p.node == nil || d.numaNode?.rawValue == p.node
                    || d.placementNodes(in: t).contains { $0.rawValue == p.node })
        }.map { Manager.Device($0, in: inventory) }
    }

    private func status(peer: PeerCredentials) async -> Manager.GetStatusReply {
        let inventory = await store.inventory
        let allowed = await store.allowed
        let counts = await supervisor.counts(for: peer)
        return Manager.GetStatusReply(
            version: Self.version, startedAt: startedAt,
            uptimeUsec: Int(ManagerService.monotonicMicroseconds() - startedMonotonic),
            nodes: inventory.topology.nodes.count, devices: inventory.devices.count,
            workers: counts.total, runningWorkers: counts.running,
            allowedCPUs: allowed.cpus.cpulist, allowedMems: allowed.mems.cpulist, eventSource: eventSource,
            configurationFiles: configurationFiles(),
            warnings: inventory.allWarnings.map(\.description)
                + (await supervisor.stateLogError.map { ["worker table not persisted (restart adoption may miss workers): \($0)"] } ?? [])
                + (supervisor.cgroups.unavailable.map { [$0] } ?? []),
            workerCgroups: supervisor.cgroups.subtree.map { "/" + $0.base },
            workerCgroupsUnavailable: supervisor.cgroups.unavailable)
    }

    /// Streams events until the client goes away or falls too far behind. Worker events are shown
    /// only to their owner (and root), device events to everyone.
    private func monitor(peer: PeerCredentials, sink: ReplySink) async {
        let (stream, continuation) = AsyncStream<Manager.Event>.makeStream(bufferingPolicy: .unbounded)
        let backlog = hub.maxBacklog
        let pending = ManagedAtomicCounter()
        let sub = hub.subscribe(deliver: { event in
            if let w = event.worker, !peer.owns(w) { return true }
            guard pending.increment(limit: backlog) else { return false }
            continuation.yield(event)
            return true
        }, overflow: {
            continuation.finish()
        })
        defer { hub.unsubscribe(sub.token) }
        guard let ready = try? VarlinkReply.encode(Manager.MonitorReply(event: hub.readyEvent(sequence: sub.sequence)),
                                                   continues: true),
              sink.send(ready) else { return }
        for await event in stream {
            pending.decrement()
            guard let bytes = try? VarlinkReply.encode(Manager.MonitorReply(event: event), continues: true),
                  sink.send(bytes) else { break }
        }
        if sink.isOpen {
            // The hub dropped us: say why, then end the connection.
            sink.send(VarlinkReply.encode(error: Manager.limitExceeded("MonitorBacklog", maximum: backlog)))
            sink.close()
        }
    }
}
