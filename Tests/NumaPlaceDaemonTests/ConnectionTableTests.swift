import Foundation
import Testing
@testable import NumaPlaceDaemon

/// `MaxConnections` and `MaxConnectionsPerUser`: who gets a slot, who gives one up, who is refused.
@Suite struct ConnectionTableTests {
    /// A clock the test steps by hand: every connection arrives one tick after the previous one, so
    /// which one has been idle longest never depends on two real clock readings differing.
    final class ManualClock: @unchecked Sendable {
        private let lock = NSLock()
        private var ticks: UInt64 = 0
        var now: UInt64 { lock.withLock { ticks } }
        func advance() { lock.withLock { ticks += 1 } }
    }

    let clock: ManualClock
    let table: ConnectionTable<FakeConnection>

    /// Only its identity matters to the table.
    final class FakeConnection {}

    init() {
        let clock = ManualClock()
        self.clock = clock
        table = ConnectionTable(now: { clock.now })
    }

    func connect(_ uid: UInt32, limit: Int = 8, perUser: Int = 3) -> (channel: FakeConnection, admitted: Bool, evicted: FakeConnection?) {
        clock.advance()
        let c = FakeConnection()
        let r = table.admit(c, uid: uid, limit: limit, perUserLimit: perUser)
        return (c, r.admitted, r.evicted)
    }

    @Test func aUserAtItsShareGivesUpItsOwnIdleConnection() {
        let a = (0..<3).map { _ in connect(1000) }
        #expect(a.allSatisfy(\.admitted) && table.count(uid: 1000) == 3)
        table.begin(a[1].channel)   // busy: a Monitor stream, say
        let fourth = connect(1000)
        #expect(fourth.admitted)
        #expect(fourth.evicted === a[0].channel, "the user's longest-idle connection makes room")
        #expect(table.count(uid: 1000) == 3 && table.count == 3)
    }

    @Test func theConnectionIdleLongestIsTheOneGivenUp() {
        let a = (0..<3).map { _ in connect(1000) }
        clock.advance()
        table.begin(a[0].channel)
        table.end(a[0].channel)   // the oldest connection answered a call just now
        let fourth = connect(1000)
        #expect(fourth.admitted)
        #expect(fourth.evicted === a[1].channel, "idle time counts from the last answer, not from the connect")
    }

    @Test func aUserWhoseConnectionsAreAllBusyIsRefusedAndOthersAreNot() {
        let a = (0..<3).map { _ in connect(1000) }
        for c in a { table.begin(c.channel) }
        let refused = connect(1000)
        #expect(!refused.admitted && refused.evicted == nil)
        #expect(table.count(uid: 1000) == 3)
        // Another user, and root, still get in: the busy user did not fill the table.
        #expect(connect(1001).admitted)
        #expect(connect(0).admitted)
        #expect(table.count == 5)
    }

    @Test func rootIsBoundOnlyByTheWholeTable() {
        let r = (0..<8).map { _ in connect(0) }
        #expect(r.allSatisfy(\.admitted) && table.count(uid: 0) == 8)
        for c in r.dropFirst() { table.begin(c.channel) }
        let ninth = connect(0)
        #expect(ninth.admitted && ninth.evicted === r[0].channel, "at MaxConnections the idle one is closed")
        table.begin(ninth.channel)
        #expect(!connect(0).admitted, "every connection busy: refused")
        #expect(!connect(1000).admitted, "a user under its share still needs a free or idle slot")
    }

    @Test func closingAConnectionReturnsItsShare() {
        let a = (0..<3).map { _ in connect(1000) }
        for c in a { table.begin(c.channel) }
        #expect(!connect(1000).admitted)
        table.remove(a[2].channel)
        table.remove(a[2].channel)   // a second close is harmless
        #expect(table.count(uid: 1000) == 2)
        let replacement = connect(1000)
        #expect(replacement.admitted)
        table.begin(replacement.channel)
        table.end(a[0].channel)
        let next = connect(1000)
        #expect(next.admitted && next.evicted === a[0].channel, "an answered call makes the connection idle again")
    }
}
