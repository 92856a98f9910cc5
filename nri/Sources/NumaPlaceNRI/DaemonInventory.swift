#if canImport(Glibc)
import Glibc
#endif
import NumaPlaceCore
import NumaPlaceProtocol
import NumaPlaceSyscall

/// The inventory as numaplaced knows it, read with GetTopology over its Varlink socket.
///
/// One call per container that has a device or the annotation, on a fresh connection: the daemon may
/// restart or a device be hot-plugged between containers. Each send and receive is bounded by
/// `timeoutMilliseconds`, under the runtime's 2-second budget for a plugin's answer: a daemon that
/// accepts and never answers (stopped, wedged) costs the container its placement (the plugin fails open),
/// never the runtime's request, which would otherwise time out and drop the plugin.
public struct DaemonInventory: Sendable {
    public let socketPath: String
    public let timeoutMilliseconds: Int

    public init(socketPath: String, timeoutMilliseconds: Int = 1000) {
        self.socketPath = socketPath
        self.timeoutMilliseconds = max(1, timeoutMilliseconds)
    }

    public func fetch() throws -> Inventory {
        let client = try VarlinkClient(path: socketPath)
        var limit = timeval(tv_sec: timeoutMilliseconds / 1000, tv_usec: (timeoutMilliseconds % 1000) * 1000)
        for option in [SO_RCVTIMEO, SO_SNDTIMEO] {
            guard setsockopt(client.fileDescriptor, SOL_SOCKET, option, &limit, socklen_t(MemoryLayout<timeval>.size)) == 0 else {
                throw Errno.current
            }
        }
        let reply: Manager.GetTopologyReply
        do {
            reply = try client.call("\(Manager.interface).GetTopology", Empty(), as: Manager.GetTopologyReply.self)
        } catch {
            // SO_RCVTIMEO and SO_SNDTIMEO end a blocked call with EAGAIN; say what it means.
            if case .io(let e) = error, e.rawValue == EAGAIN || e.rawValue == EWOULDBLOCK {
                throw DaemonInventoryError.noAnswer(socketPath: socketPath, milliseconds: timeoutMilliseconds)
            }
            throw error
        }
        return try reply.inventory()
    }
}

public enum DaemonInventoryError: Error, Hashable, Sendable, CustomStringConvertible {
    case noAnswer(socketPath: String, milliseconds: Int)

    public var description: String {
        switch self {
        case .noAnswer(let path, let ms):
            return "numaplaced on \(path) did not answer GetTopology within \(ms) ms (starting, stopped or wedged)"
        }
    }
}
