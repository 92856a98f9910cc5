import NumaPlaceCore
import SwiftProtobuf

/// A ttrpc error reply: a gRPC status code and its text (ttrpc carries google.rpc.Status).
public struct TTRPCStatus: Error, Hashable, Sendable, CustomStringConvertible {
    public var code: Int32
    public var message: String

    public init(code: Int32, message: String) {
        self.code = code
        self.message = message
    }

    // The gRPC codes this plugin answers with.
    public static func invalidArgument(_ m: String) -> TTRPCStatus { TTRPCStatus(code: 3, message: m) }
    public static func failedPrecondition(_ m: String) -> TTRPCStatus { TTRPCStatus(code: 9, message: m) }
    public static func unimplemented(_ m: String) -> TTRPCStatus { TTRPCStatus(code: 12, message: m) }

    public var description: String { "status \(code): \(message)" }
}

/// The plugin's service: NRI's `Plugin` methods over protobuf bytes, with the placements it holds.
///
/// Owns its state and is driven from one thread (NRIPluginSession's loop): the runtime calls a plugin
/// one request at a time per container, and nothing else touches the reservations.
public final class NRIPlugin {
    public static let service = "nri.pkg.api.v1alpha1.Plugin"
    /// CreateContainer, StopContainer and RemoveContainer, as NRI's EventMask writes them: bit (event − 1).
    public static let events: Int32 = [Nri_Pkg_Api_V1alpha1_Event.createContainer, .stopContainer, .removeContainer]
        .reduce(0) { $0 | (1 << ($1.rawValue - 1)) }

    /// Where the inventory comes from: numaplaced's GetTopology in the executable, a fixture in tests.
    public typealias InventorySource = () throws -> Inventory

    private let inventory: InventorySource
    private let log: (String) -> Void
    /// Placements made, by container id, until the container stops or is removed.
    public private(set) var placements: [String: ContainerPlacement] = [:]
    /// Set once the runtime called Shutdown.
    public private(set) var shutDown = false

    public init(inventory: @escaping InventorySource, log: @escaping (String) -> Void = { _ in }) {
        self.inventory = inventory
        self.log = log
    }

    /// The CPUs of every exclusive core held for a running container.
    public var reserved: CPUSet {
        placements.values.reduce(CPUSet()) { acc, p in p.exclusiveCores.reduce(acc) { $0.union($1) } }
    }

    /// Handles one request of the `Plugin` service: the response's bytes, or the status to answer with.
    public func handle(service: String, method: String, payload: [UInt8]) -> Result<[UInt8], TTRPCStatus> {
        guard service == Self.service else { return .failure(.unimplemented("service \(service) is not served here")) }
        do {
            switch method {
            case "Configure":
                let request = try Nri_Pkg_Api_V1alpha1_ConfigureRequest(serializedBytes: payload)
                log("configured by \(request.runtimeName) \(request.runtimeVersion)")
                // One GetTopology now, so that a socket-activated numaplaced is started (and its table read)
                // before the first container needs it: started by that container's own call it can take
                // longer than the call's bound, and the container would be left unplaced.
                do {
                    let machine = try inventory()
                    log("numaplaced answers: \(machine.devices.count) device(s) on \(machine.topology.nodes.count) node(s)")
                } catch {
                    log("numaplaced does not answer yet (containers that need it are left unplaced until it does): \(error)")
                }
                var reply = Nri_Pkg_Api_V1alpha1_ConfigureResponse()
                reply.events = Self.events
                return .success(try reply.serializedBytes())
            case "Synchronize":
                let request = try Nri_Pkg_Api_V1alpha1_SynchronizeRequest(serializedBytes: payload)
                synchronize(request)
                return .success(try Nri_Pkg_Api_V1alpha1_SynchronizeResponse().serializedBytes())
            case "CreateContainer":
                let request = try Nri_Pkg_Api_V1alpha1_CreateContainerRequest(serializedBytes: payload)
                var reply = Nri_Pkg_Api_V1alpha1_CreateContainerResponse()
                if let adjust = try createContainer(pod: request.pod, container: request.container) {
                    reply.adjust = adjust
                }
                return .success(try reply.serializedBytes())
            case "StopContainer":
                let request = try Nri_Pkg_Api_V1alpha1_StopContainerRequest(serializedBytes: payload)
                release(request.container.id, why: "stopped")
                return .success(try Nri_Pkg_Api_V1alpha1_StopContainerResponse().serializedBytes())
            case "UpdateContainer":
                // Not subscribed; answered with no updates should a runtime call it anyway.
                return .success(try Nri_Pkg_Api_V1alpha1_UpdateContainerResponse().serializedBytes())
            case "StateChange":
                let event = try Nri_Pkg_Api_V1alpha1_StateChangeEvent(serializedBytes: payload)
                if event.event == .removeContainer || event.event == .stopContainer {
                    release(event.container.id, why: "removed")
                }
                return .success(try Nri_Pkg_Api_V1alpha1_Empty().serializedBytes())
            case "Shutdown":
                shutDown = true
                return .success(try Nri_Pkg_Api_V1alpha1_Empty().serializedBytes())
            default:
                return .failure(.unimplemented("method \(method) is not served here"))
            }
        } catch let status as TTRPCStatus {
            return .failure(status)
        } catch {
            return .failure(.invalidArgument("cannot decode \(method): \(error)"))
        }
    }

    /// The adjustment for a new container, nil to leave it alone. Throws the status that fails its
    /// creation when it asked for a placement that cannot be made.
    func createContainer(pod: NRIPod, container: NRIContainer) throws(TTRPCStatus) -> NRIAdjustment? {
        // Only containers with a device or the annotation cost a call to the daemon.
        guard !container.linux.devices.isEmpty
                || NRIAnnotation.value(NRIAnnotation.device, pod: pod, container: container) != nil else { return nil }
        let machine: Inventory
        do {
            machine = try inventory()
        } catch {
            // Fail open: a container must not be refused because the placement service is down.
            log("container \(label(pod, container)): left unplaced, the inventory is unavailable: \(error)")
            return nil
        }
        do {
            guard let placement = try ContainerPlacer.decide(pod: pod, container: container, inventory: machine,
                                                             reserved: reserved) else { return nil }
            placements[container.id] = placement
            log("container \(label(pod, container)): \(placement.summary)")
            return placement.adjustment()
        } catch {
            log("container \(label(pod, container)): refused: \(error)")
            throw .failedPrecondition("numaplace-nri: \(error)")
        }
    }

    /// Containers that existed before this plugin connected: those it would have placed exclusively
    /// keep the cores they run on reserved, so that a restart of the plugin does not hand them out twice.
    func synchronize(_ request: Nri_Pkg_Api_V1alpha1_SynchronizeRequest) {
        let pods = Dictionary(request.pods.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        // Read once, at the first container that needs it: one GetTopology, not one per container, inside
        // the runtime's budget for the Synchronize answer.
        var fetched: Result<Inventory, Error>?
        for container in request.containers {
            let pod = pods[container.podSandboxID] ?? NRIPod()
            guard let count = try? ContainerPlacer.exclusiveCores(pod: pod, container: container), count > 0,
                  let cpus = try? CPUSet(cpulist: container.linux.resources.cpu.cpus), !cpus.isEmpty else { continue }
            if fetched == nil {
                fetched = Result { try inventory() }
                if case .failure(let error) = fetched {
                    log("synchronize: exclusive cores of running containers not reserved, the inventory is unavailable: \(error)")
                }
            }
            guard case .success(let machine)? = fetched else { continue }
            let cores = machine.topology.cores.filter { $0.isSubset(of: cpus) }
            placements[container.id] = ContainerPlacement(devices: [], cpus: cpus, mems: CPUSet(),
                                                          exclusiveCores: cores, degraded: [])
            log("container \(label(pod, container)): keeps exclusive CPUs \(cpus.cpulist)")
        }
    }

    func release(_ id: String, why: String) {
        guard let placement = placements.removeValue(forKey: id) else { return }
        if !placement.exclusiveCores.isEmpty {
            log("container \(id) \(why): released exclusive CPUs \(placement.cpus.cpulist)")
        }
    }

    private func label(_ pod: NRIPod, _ container: NRIContainer) -> String {
        pod.name.isEmpty ? container.name : "\(pod.namespace)/\(pod.name)/\(container.name)"
    }
}
