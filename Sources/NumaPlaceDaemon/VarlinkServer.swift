import Dispatch
import NIOConcurrencyHelpers
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import NIOCore
import NIOPosix
import NumaPlaceCore
import NumaPlacePlatform
import NumaPlaceProtocol
#if canImport(Glibc)
import Glibc
#endif

/// Serves Varlink over a Unix stream socket with SwiftNIO: binds its own path or adopts a
/// socket-activated descriptor, reads each peer's SO_PEERCRED, frames messages, and hands calls to
/// the dispatcher one connection at a time (so replies stay in order) while connections run in parallel.
public final class VarlinkServer: @unchecked Sendable {
    public enum Listen: Sendable {
        case path(String)
        /// A listening descriptor handed over by systemd (LISTEN_FDS).
        case descriptor(Int32)
    }

    private let group: EventLoopGroup
    private let dispatcher: VarlinkDispatcher
    private let limits: Configuration.Limits
    private let logger: Logger
    private var channel: Channel?
    private let connections = ConnectionTable()

    public init(group: EventLoopGroup, dispatcher: VarlinkDispatcher, limits: Configuration.Limits, logger: Logger) {
        self.group = group
        self.dispatcher = dispatcher
        self.limits = limits
        self.logger = logger
    }

    public var openConnections: Int { connections.count }

    /// Binds (or adopts) the listening socket. For `.path`, a stale socket file from an earlier run is
    /// replaced; a live one (another daemon answering) is an error, so two instances never share a path.
    public func start(_ listen: Listen) async throws {
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 256)
            .childChannelInitializer { [dispatcher, limits, logger, connections] channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = ConnectionHandler(dispatcher: dispatcher, limits: limits, logger: logger,
                                                    connections: connections)
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
        switch listen {
        case .path(let path):
            if VarlinkServer.isLive(path) {
                throw ServerError.socketInUse(path)
            }
            channel = try await bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
        case .descriptor(let fd):
            channel = try await bootstrap.withBoundSocket(fd).get()
        }
    }

    public enum ServerError: Error, CustomStringConvertible {
        case socketInUse(String)
        public var description: String {
            switch self {
            case .socketInUse(let p): return "\(p) is served by another running instance"
            }
        }
    }

    /// True when something accepts connections on `path` right now.
    static func isLive(_ path: String) -> Bool {
        (try? VarlinkClient(path: path)) != nil
    }

    /// Stops accepting; open connections finish on their own.
    public func stop() async {
        try? await channel?.close()
    }
}

