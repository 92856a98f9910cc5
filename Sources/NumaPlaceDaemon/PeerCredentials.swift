import NumaPlacePlatform
import NumaPlaceProtocol

/// The caller, as the kernel vouches for it (SO_PEERCRED at connect time).
public struct PeerCredentials: Hashable, Sendable {
    public let pid: Int32
    public let uid: UInt32
    public let gid: UInt32
    /// The connecting process (SO_PEERPIDFD), for reading its groups and limits without trusting a
    /// pid that may have been recycled; nil where the kernel has no SO_PEERPIDFD (before 6.5).
    public let process: PidFD?
    /// The connection the call came on, unique for the daemon's run; 0 for calls made in memory.
    /// Workers tied to their client are tied to this.
    public let connection: UInt64

    public init(pid: Int32, uid: UInt32, gid: UInt32, process: PidFD? = nil, connection: UInt64 = 0) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
        self.process = process
        self.connection = connection
    }

    public static func == (a: PeerCredentials, b: PeerCredentials) -> Bool {
        a.pid == b.pid && a.uid == b.uid && a.gid == b.gid
    }

    public func hash(into h: inout Hasher) {
        h.combine(pid)
        h.combine(uid)
        h.combine(gid)
    }

    public var isRoot: Bool { uid == 0 }

    /// Whether this caller may see `worker`: root sees every worker, a user its own.
    public func owns(_ worker: Manager.Worker) -> Bool { isRoot || worker.uid == Int(uid) }
}

/// SO_PEERCRED's `struct ucred`, declared here because Glibc's module hides it (_GNU_SOURCE).
struct UCred: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}

