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
import NumaPlacePlatform
import NumaPlaceProtocol
#if canImport(Glibc)
import Glibc
#endif

/// The caller, as the kernel vouches for it (SO_PEERCRED at connect time).
public struct PeerCredentials: Hashable, Sendable {
    public let pid: Int32
    public let uid: UInt32
    public let gid: UInt32
    /// The connecting process (SO_PEERPIDFD), for reading its groups and limits without trusting a
    /// pid that may have been recycled; nil where the kernel has no SO_PEERPIDFD (before 6.5).
    public let process: PidFD?

    public init(pid: Int32, uid: UInt32, gid: UInt32, process: PidFD? = nil) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
        self.process = process
    }

    public static func == (a: PeerCredentials, b: PeerCredentials) -> Bool {
        a.pid == b.pid && a.uid == b.uid && a.gid == b.gid
    }

    public func hash(into h: inout Hasher) {
        h.combine(pid)
        h.combine(uid)
        h.combine(gid)
    }

    public var isRoot: Bool { uid == 0 }

    /// Whether this caller may see `worker`: root sees every worker, a user its own.
    public func owns(_ worker: Manager.Worker) -> Bool { isRoot || worker.uid == Int(uid) }
}

/// Where a method writes its replies. One per connection; replies go out in call order.
public protocol ReplySink: Sendable {
    /// Writes one encoded message (with its NUL). Returns false when the peer is gone or its
    /// backlog is full (a streaming method should stop).
    @discardableResult func send(_ bytes: [UInt8]) -> Bool
    /// True while the peer is connected.
    var isOpen: Bool { get }
    /// Ends the connection (after a protocol violation or a stream overflow).
    func close()
}

/// Handles one decoded call. The server calls it for each message of a connection in order.
public protocol VarlinkDispatcher: Sendable {
    func handle(_ call: VarlinkCall, peer: PeerCredentials, sink: ReplySink) async
}

/// Limits on what one client can make the server hold.
public struct ServerLimits: Sendable {
    public var maxMessageBytes = 1 << 20
    public var maxConnections = 1024
    /// Connections one uid other than root may hold (its busy ones included).
    public var maxConnectionsPerUser = 256
    /// Unanswered calls queued on one connection before it is closed.
    public var maxQueuedCalls = 64
    /// Replies written but not yet taken by a slow reader before streaming stops for it.
    public var maxPendingReplies = 4096
    /// Bytes of replies written but not yet taken by the peer before the connection is closed: what a
    /// client that stops reading can make the daemon hold (a message counts whole; one message is
    /// always let through, however large, so that every reply the daemon can make can be read).
    /// Per connection, so one uid can make the daemon hold at most MaxConnectionsPerUser times this.
    public var maxPendingBytes = 1 << 20

    public init() {}
}

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
    private let limits: ServerLimits
    private let logger: Logger
    private var channel: Channel?
    private let connections = ConnectionTable()

    public init(group: EventLoopGroup, dispatcher: VarlinkDispatcher, limits: ServerLimits, logger: Logger) {
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

/// The open connections, for `MaxConnections` and `MaxConnectionsPerUser`.
///
/// When every slot is taken, the connection idle longest (no call queued or running; one following a
/// Monitor or waiting in Wait is busy) is closed to admit the new one. A counter alone let clients that
/// connect and never call hold every slot, so that nobody else was served until they left. Busy
/// connections are never closed for a newcomer, so a second bound applies per uid (root excepted):
/// a user at its share gives up its own longest-idle connection, or is refused, and cannot fill the
/// table with streams that lock every other user out.
final class ConnectionTable: @unchecked Sendable {
    private struct Slot {
        let channel: Channel
        let uid: UInt32
        var busy: Int
        var lastActive: UInt64
    }

    private let lock = NIOLock()
    private var slots: [ObjectIdentifier: Slot] = [:]
    private var perUser: [UInt32: Int] = [:]

    var count: Int { lock.withLock { slots.count } }

    func count(uid: UInt32) -> Int { lock.withLock { perUser[uid, default: 0] } }

    /// The monotonic clock that orders idle connections; tests step their own.
    private let now: @Sendable () -> UInt64

    init(now: @escaping @Sendable () -> UInt64 = { DispatchTime.now().uptimeNanoseconds }) {
        self.now = now
    }

    /// Admits `channel` of `uid` if a slot is free or an idle connection can give up its own
    /// (returned, for the caller to close); refuses it when every candidate is busy. Past its share,
    /// a uid other than root can only take a slot from itself.
    func admit(_ channel: Channel, uid: UInt32, limit: Int, perUserLimit: Int) -> (admitted: Bool, evicted: Channel?) {
        lock.withLock {
            var evicted: Channel? = nil
            func evictIdle(where matches: (Slot) -> Bool) -> Bool {
                guard let idle = slots.filter({ $0.value.busy == 0 && matches($0.value) })
                    .min(by: { $0.value.lastActive < $1.value.lastActive }) else { return false }
                removeSlot(idle.key)
                evicted = idle.value.channel
                return true
            }
            if uid != 0, perUser[uid, default: 0] >= perUserLimit {
                guard evictIdle(where: { $0.uid == uid }) else { return (false, nil) }
            } else if slots.count >= limit {
                guard evictIdle(where: { _ in true }) else { return (false, nil) }
            }
            slots[ObjectIdentifier(channel)] = Slot(channel: channel, uid: uid, busy: 0, lastActive: now())
            perUser[uid, default: 0] += 1
            return (true, evicted)
        }
    }

    /// Under the lock.
    private func removeSlot(_ key: ObjectIdentifier) {
        guard let slot = slots.removeValue(forKey: key) else { return }
        perUser[slot.uid, default: 1] -= 1
        if perUser[slot.uid] == 0 { perUser.removeValue(forKey: slot.uid) }
    }

    /// A call of `channel` was queued.
    func begin(_ channel: Channel) {
        lock.withLock {
            slots[ObjectIdentifier(channel)]?.busy += 1
            slots[ObjectIdentifier(channel)]?.lastActive = now()
        }
    }

    /// A call of `channel` was answered.
    func end(_ channel: Channel) {
        lock.withLock {
            slots[ObjectIdentifier(channel)]?.busy -= 1
            slots[ObjectIdentifier(channel)]?.lastActive = now()
        }
    }

    func remove(_ channel: Channel) {
        lock.withLock { removeSlot(ObjectIdentifier(channel)) }
    }
}

/// A lock-protected integer (atomics would add a dependency for one counter).
final class ManagedAtomicCounter: @unchecked Sendable {
    private let lock = NIOLock()
    private var count = 0
    var value: Int { lock.withLock { count } }
    func increment(limit: Int) -> Bool {
        lock.withLock {
            guard count < limit else { return false }
            count += 1
            return true
        }
    }
    func decrement() { lock.withLock { count -= 1 } }
}

/// SO_PEERCRED's `struct ucred`, declared here because Glibc's module hides it (_GNU_SOURCE).
struct UCred: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}

final class ConnectionHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer

    private let dispatcher: VarlinkDispatcher
    private let limits: ServerLimits
    private let logger: Logger
    private let connections: ConnectionTable
    private var framer: VarlinkFramer
    private var calls: AsyncStream<VarlinkCall>.Continuation?
    private var queued = 0
    private var counted = false
    private var task: Task<Void, Never>?

    init(dispatcher: VarlinkDispatcher, limits: ServerLimits, logger: Logger, connections: ConnectionTable) {
        self.dispatcher = dispatcher
        self.limits = limits
        self.logger = logger
        self.connections = connections
        self.framer = VarlinkFramer(maxMessageBytes: limits.maxMessageBytes)
    }

    func channelActive(context: ChannelHandlerContext) {
        let channel = context.channel
        let loop = channel.eventLoop
        let connections = self.connections
        let limits = self.limits
        let logger = self.logger
        // The peer's credentials decide its share of the connections, and every call's rights.
        // (On the event loop the option is read at once, so admission happens before any read.)
        // SO_PEERPIDFD (77, Linux 6.5) is asked for only once SO_PEERCRED has answered, so that no
        // pidfd is ever made for a connection that is refused before it could own one (a peer that
        // connects and hangs up at once would otherwise leak a descriptor each time); -1 where the
        // kernel does not have it.
        let credentials: EventLoopFuture<(UCred, Int32)>
        if let provider = channel as? SocketOptionProvider {
            credentials = provider.unsafeGetSocketOption(level: SocketOptionLevel(SOL_SOCKET),
                                                         name: SocketOptionName(SO_PEERCRED))
                .flatMap { (cred: UCred) in
                    provider.unsafeGetSocketOption(level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(77))
                        .recover { _ in Int32(-1) }
                        .map { (cred, $0) }
                }
        } else {
            credentials = loop.makeFailedFuture(ChannelError.operationUnsupported)
        }
        let admitted = loop.makePromise(of: PeerCredentials.self)
        credentials.whenComplete { [weak self] result in
            // Without credentials no call is served: the security model depends on them.
            guard case .success((let cred, let pidfd)) = result, channel.isActive else {
                if case .success((_, let pidfd)) = result, pidfd >= 0 { close(pidfd) }
                admitted.fail(ChannelError.operationUnsupported)
                channel.close(promise: nil)
                return
            }
            // Owned from here: released (and closed) with the connection, or at once if it is refused.
            let process = pidfd >= 0 ? PidFD(taking: pidfd, pid: cred.pid) : nil
            let admission = connections.admit(channel, uid: cred.uid, limit: limits.maxConnections,
                                              perUserLimit: limits.maxConnectionsPerUser)
            guard admission.admitted else {
                logger.debug("connection of uid \(cred.uid) refused: its \(connections.count(uid: cred.uid)) connections, or all \(connections.count), are busy")
                admitted.fail(ChannelError.ioOnClosedChannel)
                channel.close(promise: nil)
                return
            }
            if let idle = admission.evicted {
                logger.debug("closing the longest-idle connection to admit one of uid \(cred.uid)")
                idle.close(promise: nil)
            }
            self?.counted = true
            admitted.succeed(PeerCredentials(pid: cred.pid, uid: cred.uid, gid: cred.gid, process: process))
        }
        let sink = ChannelSink(channel: channel, maxPending: limits.maxPendingReplies, maxPendingBytes: limits.maxPendingBytes)
        let (stream, continuation) = AsyncStream<VarlinkCall>.makeStream(bufferingPolicy: .unbounded)
        calls = continuation
        let dispatcher = self.dispatcher
        task = Task { [weak self] in
            guard let peer = try? await admitted.futureResult.get() else { return }
            for await call in stream {
                await dispatcher.handle(call, peer: peer, sink: sink)
                connections.end(channel)
                loop.execute { self?.queued -= 1 }
                if !sink.isOpen { break }
            }
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        guard let bytes = buffer.readBytes(length: buffer.readableBytes) else { return }
        let messages: [[UInt8]]
        do {
            messages = try framer.push(bytes)
        } catch {
            logger.debug("closing connection: \(error)")
            context.close(promise: nil)
            return
        }
        for message in messages {
            do {
                let call = try VarlinkCall(bytes: message)
                queued += 1
                if queued > limits.maxQueuedCalls {
                    logger.debug("closing connection: more than \(limits.maxQueuedCalls) calls queued")
                    context.close(promise: nil)
                    return
                }
                connections.begin(context.channel)
                calls?.yield(call)
            } catch {
                // Not a Varlink message at all: there is no call to answer, so the connection ends.
                logger.debug("closing connection: \(error)")
                context.close(promise: nil)
                return
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        calls?.finish()
        calls = nil
        task?.cancel()
        if counted {
            connections.remove(context.channel)
            counted = false
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

/// Writes replies to a NIO channel, counting the messages and bytes the peer has not taken yet.
/// A peer that lets more than `maxPendingBytes` pile up has stopped reading (or reads too slowly to
/// be served): its connection is closed, which frees what NIO held for it. Counting messages alone let
/// 8 Monitor clients that never read hold 2 GB of events carrying 240 KiB argvs.
final class ChannelSink: ReplySink, @unchecked Sendable {
    private let channel: Channel
    private let maxPending: Int
    private let maxPendingBytes: Int
    private let lock = NIOLock()
    private var pending = 0
    private var pendingBytes = 0

    init(channel: Channel, maxPending: Int, maxPendingBytes: Int = ServerLimits().maxPendingBytes) {
        self.channel = channel
        self.maxPending = maxPending
        self.maxPendingBytes = maxPendingBytes
    }

    var isOpen: Bool { channel.isActive }

    func send(_ bytes: [UInt8]) -> Bool {
        guard channel.isActive else { return false }
        let size = bytes.count
        enum Admission { case admitted, full, behind }
        let admission = lock.withLock { () -> Admission in
            guard pending < maxPending else { return .full }
            guard pending == 0 || pendingBytes + size <= maxPendingBytes else { return .behind }
            pending += 1
            pendingBytes += size
            return .admitted
        }
        switch admission {
        case .admitted: break
        case .full: return false
        case .behind:
            channel.close(promise: nil)
            return false
        }
        let buffer = channel.allocator.buffer(bytes: bytes)
        channel.writeAndFlush(buffer).whenComplete { [weak self] _ in
            guard let self else { return }
            self.lock.withLock {
                self.pending -= 1
                self.pendingBytes -= size
            }
        }
        return true
    }

    func close() { channel.close(promise: nil) }
}
