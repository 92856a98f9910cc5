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

/// Writes replies to a NIO channel, counting the messages and bytes the peer has not taken yet.
/// A peer that lets more than `maxPendingBytes` pile up has stopped reading (or reads too slowly to
/// be served): its connection is closed, which frees what NIO held for it. A count of messages alone
/// would not bound memory: one event can carry a worker's whole argv.
final class ChannelSink: ReplySink, @unchecked Sendable {
    private let channel: Channel
    private let maxPending: Int
    private let maxPendingBytes: Int
    private let lock = NIOLock()
    private var pending = 0
    private var pendingBytes = 0

    init(channel: Channel, maxPending: Int, maxPendingBytes: Int = Configuration.Limits().maxPendingBytes) {
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
