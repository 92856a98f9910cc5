import NIOConcurrencyHelpers
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import NumaPlaceProtocol

/// Numbers events and hands them to Monitor subscribers, each with a bounded backlog.
///
/// A subscriber that falls `maxBacklog` events behind (a client that stopped reading) is dropped
/// with a final overflow notice instead of letting the daemon's memory grow without bound.
public final class EventHub: @unchecked Sendable {
    public typealias Sink = @Sendable (Manager.Event) -> Bool

    private let lock = NIOLock()
    private var sequence = 0
    private var subscribers: [Int: Subscriber] = [:]
    private var nextID = 0
    public let maxBacklog: Int
    private let clock: @Sendable () -> Int

    final class Subscriber: @unchecked Sendable {
        let deliver: Sink
        let overflow: @Sendable () -> Void
        init(deliver: @escaping Sink, overflow: @escaping @Sendable () -> Void) {
            self.deliver = deliver
            self.overflow = overflow
        }
    }

    /// `clock` returns microseconds since the epoch (injected so tests can fix it).
    public init(maxBacklog: Int = 4096, clock: @escaping @Sendable () -> Int = EventHub.realtimeMicroseconds) {
        self.maxBacklog = maxBacklog
        self.clock = clock
    }

    public static let realtimeMicroseconds: @Sendable () -> Int = {
        Int(Date().timeIntervalSince1970 * 1_000_000)
    }

    public var currentSequence: Int { lock.withLock { sequence } }
    public var subscriberCount: Int { lock.withLock { subscribers.count } }

    /// Registers a subscriber. `deliver` returns false when its backlog is full; the hub then calls
    /// `overflow` once and forgets it. Returns a token for `unsubscribe` and the sequence at subscription.
    public func subscribe(deliver: @escaping Sink, overflow: @escaping @Sendable () -> Void) -> (token: Int, sequence: Int) {
        lock.withLock {
            nextID += 1
            subscribers[nextID] = Subscriber(deliver: deliver, overflow: overflow)
            return (nextID, sequence)
        }
    }

    public func unsubscribe(_ token: Int) {
        lock.withLock { _ = subscribers.removeValue(forKey: token) }
    }

    /// Numbers and publishes an event; returns it.
    @discardableResult
    public func publish(kind: Manager.Event.Kind, address: String? = nil, device: Manager.Device? = nil,
                        worker: Manager.Worker? = nil) -> Manager.Event {
        let (event, targets): (Manager.Event, [(Int, Subscriber)]) = lock.withLock {
            sequence += 1
            let e = Manager.Event(sequence: sequence, kind: kind, timestamp: clock(), address: address,
                                  device: device, worker: worker)
            return (e, Array(subscribers))
        }
        for (token, s) in targets where !s.deliver(event) {
            unsubscribe(token)
            s.overflow()
        }
        return event
    }

    /// A `ready` event for a new subscriber, carrying the current sequence (not numbered itself).
    public func readyEvent(sequence: Int) -> Manager.Event {
        Manager.Event(sequence: sequence, kind: .ready, timestamp: clock())
    }
}
