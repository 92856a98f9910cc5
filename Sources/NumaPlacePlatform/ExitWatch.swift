import Dispatch

/// Calls back when a process exits: its pidfd becomes readable then (pidfd_open(2)), and libdispatch
/// watches it with the other descriptors, so no thread waits per worker.
///
/// The handler runs once per readiness; after it the watch stays quiet until `rearm` (a pidfd that
/// is readable but not yet reapable) or `cancel`.
public final class ExitWatch: @unchecked Sendable {
    private let source: DispatchSourceRead

    public init(_ pidfd: PidFD, queue: DispatchQueue = .global(), onExit: @escaping @Sendable () -> Void) {
        let source = DispatchSource.makeReadSource(fileDescriptor: pidfd.rawValue, queue: queue)
        self.source = source
        source.setEventHandler {
            source.suspend()
            onExit()
        }
        // libdispatch keys its epoll registration by descriptor number and drops it only when the
        // cancellation completes; closing the pidfd before that lets the next worker's pidfd (same
        // number) join the stale registration, and that worker's exit is never seen.
        source.setCancelHandler { withExtendedLifetime(pidfd) {} }
        source.resume()
    }

    /// Watches again after a handler that found nothing to reap.
    public func rearm() { source.resume() }

    /// Ends the watch after its handler ran (the source is suspended then). libdispatch traps when a
    /// suspended source is released, and a suspended source never completes its cancellation, so it
    /// is cancelled and then resumed once; the pidfd stays open until the cancellation completes.
    public func cancelAfterExit() {
        source.cancel()
        source.resume()
    }
}
