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

final class ConnectionHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer

    private let dispatcher: VarlinkDispatcher
    private let limits: Configuration.Limits
    private let logger: Logger
    private let connections: ConnectionTable
    private var framer: VarlinkFramer
    private var calls: AsyncStream<VarlinkCall>.Continuation?
    private var queued = 0
    private var counted = false
    private var task: Task<Void, Never>?

    init(dispatcher: VarlinkDispatcher, limits: Configuration.Limits, logger: Logger, connections: ConnectionTable) {
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

