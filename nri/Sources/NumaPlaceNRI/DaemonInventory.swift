import NumaPlaceCore
import NumaPlaceProtocol

/// The inventory as numaplaced knows it, read with GetTopology over its Varlink socket.
///
/// One call per container that has a device or the annotation, on a fresh connection: the daemon may
/// restart or a device be hot-plugged between containers, and a GetTopology costs well under the
/// runtime's 2-second budget for a plugin's answer.
public struct DaemonInventory: Sendable {
    public let socketPath: String

    public init(socketPath: String) {
        self.socketPath = socketPath
    }

    public func fetch() throws -> Inventory {
        let client = try VarlinkClient(path: socketPath)
        let reply = try client.call("\(Manager.interface).GetTopology", Empty(), as: Manager.GetTopologyReply.self)
        return try reply.inventory()
    }
}
