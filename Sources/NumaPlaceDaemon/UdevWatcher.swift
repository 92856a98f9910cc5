import NIOPosix
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import NumaPlaceCore
import NumaPlacePlatform
import NumaPlaceSyscall
import ServiceLifecycle
#if canImport(Glibc)
import Glibc
#endif

/// Feeds udev (or kernel) uevents into the topology store.
///
/// A dedicated thread blocks in poll(2) on the monitor socket, drains every event already queued,
/// and hands the batch over: repeated events for one device collapse into one re-read, which is how
/// bursts are coalesced without losing the final state (the re-read sees sysfs as it is now).
/// A CPU or node event, or a lost-events condition (ENOBUFS), triggers a full rescan.
public final class UdevWatcher: Service, @unchecked Sendable {
    public struct Batch: Sendable {
        public var devices: Set<PCIAddress> = []
        public var rescan = false
        /// Monotonic microseconds at which the first event of the batch was received.
        public var firstReceivedAt: UInt64 = 0
        public var isEmpty: Bool { devices.isEmpty && !rescan }
    }

    private let monitor: UdevMonitor
    private let store: TopologyStore
    private let logger: Logger
    private var wakePipe: [Int32] = [-1, -1]

    public init(source: EventSource, store: TopologyStore, logger: Logger) throws {
        monitor = try UdevMonitor(source: source)
        self.store = store
        self.logger = logger
    }

    /// Turns a batch of raw events into the work for the store. Pure, so tests feed it directly.
    public static func coalesce(_ events: [UdevEvent]) -> Batch {
        var batch = Batch()
        for e in events {
            if batch.firstReceivedAt == 0 { batch.firstReceivedAt = e.receivedAt }
            switch e.subsystem {
            case "pci":
                if let a = try? PCIAddress(parsing: e.sysname) { batch.devices.insert(a) }
            case "cpu", "node":
                batch.rescan = true
            default:
                break
            }
        }
        return batch
    }

    public func run() async throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw UdevMonitor.MonitorError(step: "pipe", errno: .current) }
        wakePipe = fds
        defer { close(fds[0]); close(fds[1]) }
        let (stream, continuation) = AsyncStream<Batch>.makeStream(bufferingPolicy: .unbounded)
        let monitor = self.monitor
        let wake = fds[0]
        // A thread of its own (a one-thread NIOThreadPool), since the loop blocks in poll(2).
        let thread = NIOThreadPool(numberOfThreads: 1)
        thread.start()
        thread.submit { _ in
            var polls = [pollfd(fd: monitor.fileDescriptor, events: Int16(POLLIN), revents: 0),
                         pollfd(fd: wake, events: Int16(POLLIN), revents: 0)]
            while true {
                guard (try? Syscall.retrying { poll(&polls, 2, -1) }) != nil else { break }
                if polls[1].revents != 0 { break }
                var events: [UdevEvent] = []
                var received = monitor.receiveEvent()
                while case .success(let e) = received {
                    events.append(e)
                    received = monitor.receiveEvent()
                }
                // The drain ends at EAGAIN, at a filtered event, or at ENOBUFS: events were lost, and
                // the kernel reports that ahead of what is still queued, so it may come after some
                // events were read. Either way the table is rebuilt.
                if case .failure(.noBufferSpace) = received {
                    continuation.yield(Batch(devices: [], rescan: true, firstReceivedAt: 0))
                    continue
                }
                if events.isEmpty { continue }
                let batch = UdevWatcher.coalesce(events)
                if !batch.isEmpty { continuation.yield(batch) }
            }
            continuation.finish()
        }
        defer { thread.shutdownGracefully { _ in } }
        logger.debug("watching \(monitor.source.rawValue) uevents for \(UdevMonitor.subsystems)")
        await withGracefulShutdownHandler {
            for await batch in stream {
                if batch.rescan {
                    await store.rescan()
                } else {
                    await store.refresh(batch.devices)
                }
            }
        } onGracefulShutdown: { [fds] in
            var b: UInt8 = 1
            _ = write(fds[1], &b, 1)
        }
    }
}
