import CNumaPlaceShim
import Glibc
import NumaPlaceCore

/// What the daemon reads of the process at the other end of a connection, so that a worker gets the
/// caller's own supplementary groups and resource limits (DESIGN.md: the caller's hands, never the
/// daemon's wider ones). Read through the peer's pidfd (`SO_PEERPIDFD`, Linux 6.5): the pid is only
/// trusted while the pidfd says that process is alive, so a recycled pid is never read.
public struct PeerProcess: Sendable {
    /// Supplementary groups, from `/proc/<pid>/status` (`Groups:`), as the process has them now.
    public var groups: [gid_t]
    /// The process's limits (`/proc/<pid>/limits`), each narrowed to the daemon's own.
    public var limits: [ResourceLimit]

    /// The limits a worker inherits that a caller could use to hurt others or that the daemon's
    /// unit widens (LimitNOFILE=, LimitMEMLOCK=).
    /// Linux's RLIMIT_* numbers (the same on every architecture numaplaced builds for) and the names
    /// `/proc/<pid>/limits` gives them.
    public static let resources: [(resource: Int32, name: String)] = [
        (0, "Max cpu time"), (1, "Max file size"), (2, "Max data size"), (3, "Max stack size"),
        (4, "Max core file size"), (6, "Max processes"), (7, "Max open files"), (8, "Max locked memory"),
        (9, "Max address space"), (11, "Max pending signals"), (12, "Max msgqueue size"),
        (13, "Max nice priority"), (14, "Max realtime priority"),
    ]

    /// Reads the process `pidfd` names; nil when it has exited (or `/proc` cannot say), as a client
    /// that passed its connection on and exited would leave it.
    /// `uid` and `gid` are the connection's (SO_PEERCRED): unless they are root's, the process must
    /// still have exactly those ids, every one of them, before and after its limits are read. A process
    /// that has since exec'd something setuid (a sudo waiting at its prompt, with its limits raised)
    /// is not the caller any more.
    public static func read(pidfd: PidFD, uid: uid_t, gid: gid_t, procRoot: SysfsRoot = SysfsRoot("/")) -> PeerProcess? {
        let pid = pidfd.pid
        func readStatus() -> String? {
            guard let text = try? procRoot.read("proc/\(pid)/status", limit: 65536) else { return nil }
            if uid == 0 { return text }
            func ids(_ name: String) -> [String] {
                SysfsParsers.statusField(name, in: text)?.split(whereSeparator: \.isWhitespace).map(String.init) ?? []
            }
            guard ids("Uid") == Array(repeating: String(uid), count: 4),
                  ids("Gid") == Array(repeating: String(gid), count: 4) else { return nil }
            return text
        }
        guard let status = readStatus(), let field = SysfsParsers.statusField("Groups", in: status) else { return nil }
        let groups = field.split(whereSeparator: \.isWhitespace).compactMap { gid_t($0) }
        guard let text = try? procRoot.read("proc/\(pid)/limits", limit: 65536) else { return nil }
        let theirs = SysfsParsers.processLimits(text)
        var limits: [ResourceLimit] = []
        for (resource, name) in resources {
            var ours = rlimit()
            guard let t = theirs[name], np_prlimit(0, resource, &ours) == 0 else { return nil }
            limits.append(ResourceLimit(resource: resource, soft: min(t.soft, UInt64(ours.rlim_cur)),
                                        hard: min(t.hard, UInt64(ours.rlim_max))))
        }
        // Still the same process, with the same ids: what was read under its pid was its own.
        guard readStatus() != nil, np_pidfd_send_signal(pidfd.rawValue, 0, 0) == 0 else { return nil }
        return PeerProcess(groups: groups, limits: limits)
    }
}

/// One resource limit a worker gets (setrlimit(2) semantics; RLIM_INFINITY is `UInt64.max`).
public struct ResourceLimit: Hashable, Sendable {
    public var resource: Int32
    public var soft: UInt64
    public var hard: UInt64

    public init(resource: Int32, soft: UInt64, hard: UInt64) {
        self.resource = resource
        self.soft = min(soft, hard)
        self.hard = hard
    }
}
