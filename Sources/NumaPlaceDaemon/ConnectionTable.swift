import Dispatch
import NIOConcurrencyHelpers

/// The open connections, for `MaxConnections` and `MaxConnectionsPerUser`.
///
/// When every slot is taken, the connection idle longest (no call queued or running; one following a
/// Monitor or waiting in Wait is busy) is closed to admit the new one. A counter alone let clients that
/// connect and never call hold every slot, so that nobody else was served until they left. Busy
/// connections are never closed for a newcomer, so a second bound applies per uid (root excepted):
/// a user at its share gives up its own longest-idle connection, or is refused, and cannot fill the
/// table with streams that lock every other user out.
final class ConnectionTable<Connection: AnyObject>: @unchecked Sendable {
    private struct Slot {
        let connection: Connection
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

    /// Admits `connection` of `uid` if a slot is free or an idle connection can give up its own
    /// (returned, for the caller to close); refuses it when every candidate is busy. Past its share,
    /// a uid other than root can only take a slot from itself.
    func admit(_ connection: Connection, uid: UInt32, limit: Int, perUserLimit: Int) -> (admitted: Bool, evicted: Connection?) {
        lock.withLock {
            var evicted: Connection? = nil
            func evictIdle(where matches: (Slot) -> Bool) -> Bool {
                guard let idle = slots.filter({ $0.value.busy == 0 && matches($0.value) })
                    .min(by: { $0.value.lastActive < $1.value.lastActive }) else { return false }
                removeSlot(idle.key)
                evicted = idle.value.connection
                return true
            }
            if uid != 0, perUser[uid, default: 0] >= perUserLimit {
                guard evictIdle(where: { $0.uid == uid }) else { return (false, nil) }
            } else if slots.count >= limit {
                guard evictIdle(where: { _ in true }) else { return (false, nil) }
            }
            slots[ObjectIdentifier(connection)] = Slot(connection: connection, uid: uid, busy: 0, lastActive: now())
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

    /// A call of `connection` was queued.
    func begin(_ connection: Connection) {
        lock.withLock {
            slots[ObjectIdentifier(connection)]?.busy += 1
            slots[ObjectIdentifier(connection)]?.lastActive = now()
        }
    }

    /// A call of `connection` was answered.
    func end(_ connection: Connection) {
        lock.withLock {
            slots[ObjectIdentifier(connection)]?.busy -= 1
            slots[ObjectIdentifier(connection)]?.lastActive = now()
        }
    }

    /// A call of `connection` was answered at once, without being queued.
    func touch(_ connection: Connection) {
        lock.withLock { slots[ObjectIdentifier(connection)]?.lastActive = now() }
    }

    func remove(_ connection: Connection) {
        lock.withLock { removeSlot(ObjectIdentifier(connection)) }
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

