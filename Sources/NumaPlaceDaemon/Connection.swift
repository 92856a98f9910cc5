import Dispatch
import Logging
import NIOConcurrencyHelpers
import NumaPlaceCore
import NumaPlacePlatform
import NumaPlaceProtocol
import NumaPlaceSyscall
#if canImport(Glibc)
import Glibc
#endif

/// One accepted client: reads its messages with recvmsg (so that the descriptors a call carries
/// arrive with it), runs its calls one after another in a task of its own (replies in call order;
/// other connections run in parallel), and writes its replies, bounded in messages and bytes.
///
/// Pipelined calls are served, never refused: at most `maxQueuedCalls` are handed to the task, the
/// whole messages read after them wait as bytes (at most `maxMessageBytes` of them), and past that the
/// connection is not read until its calls catch up, so the client is held back by its own socket
/// buffer. Closing for a full queue made the outcome depend on how the kernel split the client's
/// writes and how fast the daemon answered (2,000 pipelined calls were served in one run, cut off in
/// the next).
///
/// Reads run on a serial queue of the connection's (a DispatchSource), writes on whichever thread
/// answers, under the lock; when the socket is full the rest waits for a write source. The descriptor
/// is closed only once both sources have been cancelled, so no event can reach a recycled number.
final class Connection: ReplySink, @unchecked Sendable {
    struct Context: Sendable {
        let dispatcher: VarlinkDispatcher
        let limits: Configuration.Limits
        let logger: Logger
        let table: ConnectionTable<Connection>
    }

    private struct Queued: @unchecked Sendable {
        let call: VarlinkCall
        let descriptors: PassedDescriptors
        /// More descriptors than a message may carry came with it: all closed, the call refused.
        let refused: Bool
    }

    let fd: Int32
    /// Written once, by `start`, before any call runs.
    private(set) var peer: PeerCredentials
    private let context: Context
    private let queue: DispatchQueue
    private var readSource: DispatchSourceRead?
    private var writeSource: DispatchSourceWrite?
    private var calls: AsyncStream<Queued>.Continuation?
    private var task: Task<Void, Never>?

    private let lock = NIOLock()
    // Under the lock.
    private var closed = false
    /// The write source is inactive or suspended (nothing waits for the socket to drain).
    private var writeIdle = true
    private var output: [[UInt8]] = []
    private var head = 0
    private var written = 0
    private var pendingBytes = 0
    private var queued = 0
    /// Messages wait in `backlog` because `queued` reached the bound: the next finished call pumps.
    private var backlogWaits = false
    /// The read source is suspended (the backlog is full); `close` resumes it so it can be cancelled.
    private var readPaused = false
    /// The call task, waiting for the peer to read its replies before it runs the next call.
    private var drainWaiter: CheckedContinuation<Void, Never>?
    private var sourcesLeft = 2

    // On the queue only.
    private var framer: VarlinkFramer
    /// Descriptors of the message still being received.
    private var carried: [Int32] = []
    private var carriedTruncated = false
    /// Whole messages read but not yet handed to the call task, oldest first, and their bytes.
    private var backlog: [Framed] = []
    private var backlogHead = 0
    private var backlogBytes = 0
    /// While reading is paused, a once-a-second look for the peer's hang-up (a paused source cannot
    /// see the end of the stream, and a hang-up must still stop the client's tied workers).
    private var hangupWatch: DispatchSourceTimer?

    private struct Framed {
        let message: [UInt8]
        let descriptors: [Int32]
        /// More descriptors than a message may carry came with it: all closed, the call refused.
        let refused: Bool
    }

    init(fd: Int32, peer: PeerCredentials, context: Context) {
        self.fd = fd
        self.peer = peer
        self.context = context
        framer = VarlinkFramer(maxMessageBytes: context.limits.maxMessageBytes)
        queue = DispatchQueue(label: "numaplaced.connection", target: .global())
    }

    /// Starts reading and serving. Called once, after the connection was admitted, with the peer's
    /// SO_PEERPIDFD where the kernel has it.
    func start(process: PidFD?) {
        if let process {
            peer = PeerCredentials(pid: peer.pid, uid: peer.uid, gid: peer.gid, process: process, connection: peer.connection)
        }
        let read = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
        let write = DispatchSource.makeWriteSource(fileDescriptor: fd, queue: queue)
        read.setEventHandler { [self] in readAvailable() }
        read.setCancelHandler { [self] in
            for fd in carried { Syscall.close(fd) }
            carried = []
            for item in backlog[backlogHead...] { for fd in item.descriptors { Syscall.close(fd) } }
            backlog = []
            backlogHead = 0
            hangupWatch?.cancel()
            hangupWatch = nil
            sourceCancelled()
        }
        write.setEventHandler { [self] in
            let failed = lock.withLock { !closed && !flushLocked() }
            if failed { close() }
        }
        write.setCancelHandler { [self] in sourceCancelled() }
        readSource = read
        writeSource = write

        let (stream, continuation) = AsyncStream<Queued>.makeStream(bufferingPolicy: .unbounded)
        calls = continuation
        let context = self.context
        let peer = self.peer
        task = Task { [self] in
            for await item in stream {
                await outputRoom()
                if item.refused {
                    if !item.call.oneway {
                        send(VarlinkReply.encode(error: Manager.limitExceeded(
                            "MaxDescriptorsPerCall", maximum: UnixSocketIO.maxDescriptorsPerMessage)))
                    }
                } else {
                    await context.dispatcher.handle(item.call, descriptors: item.descriptors, peer: peer, sink: self)
                }
                item.descriptors.closeAll()
                context.table.end(self)
                let pump = lock.withLock { () -> Bool in
                    queued -= 1
                    defer { backlogWaits = false }
                    return backlogWaits && !closed
                }
                if pump { queue.async { [self] in pumpAndResume() } }
                if !isOpen { break }
            }
        }
        read.resume()
    }

    private func sourceCancelled() {
        let last = lock.withLock { () -> Bool in
            sourcesLeft -= 1
            return sourcesLeft == 0
        }
        if last {
            Syscall.close(fd)
            // The handlers hold this object; dropping the sources lets it go.
            queue.async { [self] in
                readSource = nil
                writeSource = nil
            }
        }
    }

    // MARK: Reading

    private static let readBytes = 32 * 1024

    private func readAvailable() {
        withUnsafeTemporaryAllocation(byteCount: Connection.readBytes, alignment: 16) { buffer in
            while isOpen {
                let received: UnixSocketIO.Received
                do throws(Errno) {
                    received = try UnixSocketIO.receive(fd, into: buffer)
                } catch {
                    let e = error.rawValue
                    if e != EAGAIN && e != EWOULDBLOCK { close() }
                    return
                }
                if received.count == 0 {
                    for fd in received.descriptors { Syscall.close(fd) }
                    close()
                    return
                }
                if !ingest(UnsafeRawBufferPointer(rebasing: buffer[0..<received.count]),
                           descriptors: received.descriptors, truncated: received.truncated) { return }
            }
        }
    }

    /// Frames the bytes and puts each complete message, with its descriptors, on the backlog; then
    /// hands what the queue bound allows to the call task. The kernel ends a read right after the
    /// bytes that carried descriptors (unix(7)), and a client sends a message's descriptors with its
    /// first bytes: so a read's descriptors belong to the message its last byte is part of. False when
    /// reading stops: the connection was closed, or the backlog is full and reading paused.
    private func ingest(_ bytes: UnsafeRawBufferPointer, descriptors: [Int32], truncated: Bool) -> Bool {
        let messages: [[UInt8]]
        do {
            messages = try framer.push(bytes)
        } catch {
            for fd in descriptors { Syscall.close(fd) }
            context.logger.debug("closing connection: \(error)")
            close()
            return false
        }
        var incoming = descriptors
        var incomingTruncated = truncated
        let endsAtBoundary = framer.pendingBytes == 0 && !messages.isEmpty
        for (i, message) in messages.enumerated() {
            var fds = carried
            var refused = carriedTruncated
            carried = []
            carriedTruncated = false
            if endsAtBoundary && i == messages.count - 1 {
                fds += incoming
                refused = refused || incomingTruncated
                incoming = []
                incomingTruncated = false
            }
            if refused || fds.count > UnixSocketIO.maxDescriptorsPerMessage {
                for fd in fds { Syscall.close(fd) }
                fds = []
                refused = true
            }
            backlog.append(Framed(message: message, descriptors: fds, refused: refused))
            backlogBytes += message.count
        }
        carried += incoming
        carriedTruncated = carriedTruncated || incomingTruncated
        if carried.count > UnixSocketIO.maxDescriptorsPerMessage {
            for fd in carried { Syscall.close(fd) }
            carried = []
            carriedTruncated = true
        }
        guard pump() else { return false }
        // Whole messages waiting are bounded like one message (the one being received is bounded by
        // the framer): past that the socket is left unread and the client waits on its own send buffer.
        if backlogBytes >= context.limits.maxMessageBytes {
            return !pauseReading()
        }
        return true
    }

    /// Hands backlog messages to the call task while fewer than `maxQueuedCalls` are queued or
    /// running. On the queue. False when the connection was closed (a message that is not a Varlink
    /// call ends it: there is no call to answer).
    private func pump() -> Bool {
        let limit = context.limits.maxQueuedCalls
        while backlogHead < backlog.count {
            // Idle: nothing of this connection's is queued or running, so a reply sent from here now
            // cannot overtake an earlier one.
            enum Admission { case closed, full, idle, queued }
            let admission = lock.withLock { () -> Admission in
                guard !closed else { return .closed }
                if queued == 0 { return .idle }
                guard queued < limit else {
                    backlogWaits = true
                    return .full
                }
                queued += 1
                return .queued
            }
            switch admission {
            case .closed, .full: return isOpen
            case .idle, .queued: break
            }
            let item = backlog[backlogHead]
            backlog[backlogHead] = Framed(message: [], descriptors: [], refused: false)
            backlogHead += 1
            backlogBytes -= item.message.count
            let call: VarlinkCall
            do {
                call = try VarlinkCall(bytes: item.message)
            } catch {
                for fd in item.descriptors { Syscall.close(fd) }
                if admission == .queued { lock.withLock { queued -= 1 } }
                context.logger.debug("closing connection: \(error)")
                close()
                return false
            }
            if admission == .idle {
                if item.descriptors.isEmpty, !item.refused, let bytes = context.dispatcher.immediateReply(to: call) {
                    context.table.touch(self)
                    send(bytes)
                    continue
                }
                lock.withLock { queued += 1 }
            }
            context.table.begin(self)
            // Dropped (and its descriptors closed) if the connection closed meanwhile.
            calls?.yield(Queued(call: call, descriptors: PassedDescriptors(item.descriptors), refused: item.refused))
        }
        backlog.removeAll(keepingCapacity: backlog.count <= 64)
        backlogHead = 0
        return isOpen
    }

    /// After a call finished while messages waited: queues what now fits, and reads again once the
    /// backlog is below its bound. On the queue.
    private func pumpAndResume() {
        guard pump() else { return }
        guard backlogBytes < context.limits.maxMessageBytes else { return }
        let resumed = lock.withLock { () -> Bool in
            guard readPaused, !closed else { return false }
            readPaused = false
            readSource?.resume()
            return true
        }
        if resumed {
            hangupWatch?.cancel()
            hangupWatch = nil
        }
    }

    /// Stops reading this connection until its calls catch up. On the queue. False when it was closed.
    private func pauseReading() -> Bool {
        let paused = lock.withLock { () -> Bool? in
            guard !closed else { return nil }
            guard !readPaused else { return false }
            readPaused = true
            readSource?.suspend()
            return true
        }
        guard let paused else { return false }
        if paused && hangupWatch == nil {
            let timer = DispatchSource.makeTimerSource(queue: queue)
            timer.schedule(deadline: .now() + 1, repeating: 1)
            timer.setEventHandler { [weak self] in self?.checkHangup() }
            hangupWatch = timer
            timer.resume()
        }
        return true
    }

    /// POLLRDHUP (a GNU extension Swift's Glibc does not export; 0x2000 on every Linux architecture
    /// numaplaced builds for) is set once the peer has closed or shut down its side, even with bytes
    /// still unread.
    private static let pollRDHUP: Int16 = 0x2000

    private func checkHangup() {
        guard isOpen else { return }
        var p = pollfd(fd: fd, events: Connection.pollRDHUP, revents: 0)
        if poll(&p, 1, 0) > 0, p.revents & (Connection.pollRDHUP | Int16(POLLHUP) | Int16(POLLERR)) != 0 {
            context.logger.debug("closing connection: the peer hung up while its calls were held back")
            close()
        }
    }

    /// Replies waiting for the peer past which the next call waits (half of each bound): a client that
    /// pipelines calls and reads their replies slowly is held back, not cut off, and not sent fewer
    /// replies than calls. A reply that is not a call's (a Monitor event) is still bounded by `send`.
    private var outputBusy: Bool {
        output.count - head >= context.limits.maxPendingReplies / 2 || pendingBytes > context.limits.maxPendingBytes / 2
    }

    /// Returns when the peer has read enough of this connection's replies to take another call's, or
    /// when the connection closed. On the call task.
    private func outputRoom() async {
        guard lock.withLock({ !closed && outputBusy }) else { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = lock.withLock { () -> Bool in
                guard !closed && outputBusy else { return true }
                drainWaiter = continuation
                return false
            }
            if ready { continuation.resume() }
        }
    }

    /// Under the lock: lets the call task go on once the replies have drained (or the connection closed).
    private func releaseDrainWaiterLocked() {
        guard let waiter = drainWaiter, closed || !outputBusy else { return }
        drainWaiter = nil
        waiter.resume()
    }

    // MARK: ReplySink

    var isOpen: Bool { lock.withLock { !closed } }

    /// Queues one reply. A peer that lets more than `maxPendingBytes` pile up has stopped reading (or
    /// reads too slowly to be served): its connection is closed. One message is always let through,
    /// whatever its size. Counting messages alone let 8 Monitor clients that never read hold 2 GB.
    func send(_ bytes: [UInt8]) -> Bool {
        enum Admission { case admitted, full, behind, failed }
        let limits = context.limits
        let admission = lock.withLock { () -> Admission in
            guard !closed else { return .full }
            let pending = output.count - head
            guard pending < limits.maxPendingReplies else { return .full }
            guard pending == 0 || pendingBytes + bytes.count <= limits.maxPendingBytes else { return .behind }
            output.append(bytes)
            pendingBytes += bytes.count
            // While the write source waits, it writes; otherwise try now, on this thread.
            if writeIdle && !flushLocked() { return .failed }
            return .admitted
        }
        switch admission {
        case .admitted: return true
        case .full: return false
        case .behind, .failed:
            close()
            return false
        }
    }

    /// Writes what the socket takes without blocking; arms the write source for the rest. Under the
    /// lock. False when the peer is gone (EPIPE, ECONNRESET).
    private func flushLocked() -> Bool {
        while head < output.count {
            let message = output[head]
            let sent = message.withUnsafeBytes { bytes in
                Result { () throws(Errno) in
                    try Syscall.retrying {
                        Glibc.send(fd, bytes.baseAddress! + written, bytes.count - written, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
                    }
                }
            }
            let n: Int
            switch sent {
            case .success(let count): n = count
            case .failure(let e):
                guard e.rawValue == EAGAIN || e.rawValue == EWOULDBLOCK else { return false }
                if writeIdle {
                    writeIdle = false
                    writeSource?.resume()
                }
                return true
            }
            written += n
            if written == message.count {
                pendingBytes -= message.count
                output[head] = []
                head += 1
                written = 0
            }
            releaseDrainWaiterLocked()
        }
        output.removeAll(keepingCapacity: output.count <= 64)
        head = 0
        if !writeIdle {
            writeIdle = true
            writeSource?.suspend()
        }
        return true
    }

    /// Ends the connection: what is queued for it is written if the socket takes it at once, its
    /// call task is cancelled (a pending Wait ends), its slot is given back, and the dispatcher
    /// hears of it (tied workers). Idempotent, from any thread.
    func close() {
        let first = lock.withLock { () -> Bool in
            guard !closed else { return false }
            if head < output.count { _ = flushLocked() }
            closed = true
            output = []
            head = 0
            pendingBytes = 0
            releaseDrainWaiterLocked()
            // A suspended source is never cancelled: resume it (its handler sees the close and returns).
            if readPaused {
                readPaused = false
                readSource?.resume()
            }
            if writeIdle {
                writeIdle = false
                writeSource?.resume()
            }
            return true
        }
        guard first else { return }
        calls?.finish()
        task?.cancel()
        context.table.remove(self)
        readSource?.cancel()
        writeSource?.cancel()
        let dispatcher = context.dispatcher
        let peer = self.peer
        Task { await dispatcher.connectionClosed(peer) }
    }
}
