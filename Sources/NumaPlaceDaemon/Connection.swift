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

    struct Queued: @unchecked Sendable {
        /// Charged against `queuedBytes` until the call is done.
        let cost: Int
        let call: VarlinkCall
        let descriptors: PassedDescriptors
        /// More descriptors than a message may carry came with it: all closed, the call refused.
        let refused: Bool
    }

    // Members without `private` are shared with Connection+Reading.swift (the reading side); nothing
    // outside these two files touches them.
    let fd: Int32
    /// Written once, by `start`, before any call runs.
    private(set) var peer: PeerCredentials
    let context: Context
    let queue: DispatchQueue
    var readSource: DispatchSourceRead?
    private var writeSource: DispatchSourceWrite?
    var calls: AsyncStream<Queued>.Continuation?
    private var task: Task<Void, Never>?

    let lock = NIOLock()
    // Under the lock.
    var closed = false
    /// The write source is inactive or suspended (nothing waits for the socket to drain).
    private var writeIdle = true
    private var output: [[UInt8]] = []
    private var head = 0
    private var written = 0
    private var pendingBytes = 0
    var queued = 0
    /// The cost (`Framed.cost`) of the calls queued or running: besides their count, at most
    /// `maxMessageBytes` of them (one is always let through, whatever its size).
    var queuedBytes = 0
    /// Messages wait in `backlog` because `queued` reached the bound: the next finished call pumps.
    var backlogWaits = false
    /// The read source is suspended (the backlog is full); `close` resumes it so it can be cancelled.
    var readPaused = false
    /// The call task, waiting for the peer to read its replies before it runs the next call.
    private var drainWaiter: CheckedContinuation<Void, Never>?
    private var sourcesLeft = 2

    // On the queue only.
    var framer: VarlinkFramer
    /// Descriptors of the message still being received.
    var carried: [Int32] = []
    var carriedTruncated = false
    /// Whole messages read but not yet handed to the call task, oldest first, and their bytes.
    var backlog: [Framed] = []
    var backlogHead = 0
    var backlogBytes = 0
    /// While reading is paused, a once-a-second look for the peer's hang-up (a paused source cannot
    /// see the end of the stream, and a hang-up must still stop the client's tied workers).
    var hangupWatch: DispatchSourceTimer?

    struct Framed {
        let message: [UInt8]
        let descriptors: [Int32]
        /// More descriptors than a message may carry came with it: all closed, the call refused.
        let refused: Bool

        /// What a waiting message is charged against the backlog's bound: its bytes, its entry (so that a
        /// stream of empty messages is bounded too), and a page per descriptor (so that the backlog holds
        /// at most a few hundred of a client's descriptors open, not as many as it can send).
        var cost: Int { message.count + 64 + 4096 * descriptors.count }
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
                // A call sent before its client left still runs (a Spawn whose reply nobody reads, a
                // oneway call): only its reply goes nowhere.
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
                    queuedBytes -= item.cost
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

    /// Replies waiting for the peer past which the next call waits (half of each bound): a client that
    /// pipelines calls and reads their replies slowly is held back, not cut off, and not sent fewer
    /// replies than calls. A reply that is not a call's (a Monitor event) is still bounded by `send`.
    var outputBusy: Bool {
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
