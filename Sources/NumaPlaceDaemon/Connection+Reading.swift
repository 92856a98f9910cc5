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

/// The reading side of a connection: framing, the backlog of pipelined calls, and the pause (with its
/// hang-up watch) that holds back a client whose calls are not keeping up.
extension Connection {
    private static let readBytes = 32 * 1024

    func readAvailable() {
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
            let framed = Framed(message: message, descriptors: fds, refused: refused)
            backlog.append(framed)
            backlogBytes += framed.cost
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
            let cost = backlog[backlogHead].cost
            let byteLimit = context.limits.maxMessageBytes
            let admission = lock.withLock { () -> Admission in
                guard !closed else { return .closed }
                // Idle also needs room for its reply: an answer sent from here must not pile up
                // unread replies past the bounds the call task waits on.
                if queued == 0 && !outputBusy { return .idle }
                guard queued < limit, queued == 0 || queuedBytes + cost <= byteLimit else {
                    backlogWaits = true
                    return .full
                }
                queued += 1
                queuedBytes += cost
                return .queued
            }
            switch admission {
            case .closed, .full: return isOpen
            case .idle, .queued: break
            }
            let item = backlog[backlogHead]
            backlog[backlogHead] = Framed(message: [], descriptors: [], refused: false)
            backlogHead += 1
            backlogBytes -= item.cost
            let call: VarlinkCall
            do {
                call = try VarlinkCall(bytes: item.message)
            } catch {
                for fd in item.descriptors { Syscall.close(fd) }
                if admission == .queued {
                    lock.withLock {
                        queued -= 1
                        queuedBytes -= cost
                    }
                }
                context.logger.debug("closing connection: \(error)")
                close()
                return false
            }
            if admission == .idle {
                if item.descriptors.isEmpty, !item.refused, let bytes = context.dispatcher.immediateReply(to: call) {
                    context.table.touch(self)
                    // Room was checked above; a reply the bounds still refuse means the peer is gone.
                    guard send(bytes) else {
                        close()
                        return false
                    }
                    continue
                }
                lock.withLock {
                    queued += 1
                    queuedBytes += cost
                }
            }
            context.table.begin(self)
            // Dropped (and its descriptors closed) if the connection closed meanwhile.
            calls?.yield(Queued(cost: cost, call: call, descriptors: PassedDescriptors(item.descriptors), refused: item.refused))
        }
        backlog.removeAll(keepingCapacity: backlog.count <= 64)
        backlogHead = 0
        return isOpen
    }

    /// After a call finished while messages waited: queues what now fits, and reads again once the
    /// backlog is below its bound. On the queue.
    func pumpAndResume() {
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
}
