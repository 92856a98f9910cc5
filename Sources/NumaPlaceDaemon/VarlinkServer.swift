import CNumaPlaceShim
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

/// Serves Varlink over a Unix stream socket: binds its own path or adopts a socket-activated
/// descriptor, reads each peer's SO_PEERCRED (and SO_PEERPIDFD) at accept, and hands each connection
/// to a `Connection`, which frames its messages, takes the descriptors they carry (SCM_RIGHTS) and
/// runs its calls in order while connections run in parallel. See docs/architecture.md for why this
/// is not SwiftNIO: NIO reads stream sockets with read(2), which drops ancillary data.
public final class VarlinkServer: @unchecked Sendable {
    public enum Listen: Sendable {
        case path(String)
        /// A listening descriptor handed over by systemd (LISTEN_FDS).
        case descriptor(Int32)
    }

    private let dispatcher: VarlinkDispatcher
    private let limits: Configuration.Limits
    private let logger: Logger
    private let connections = ConnectionTable<Connection>()
    private let queue = DispatchQueue(label: "numaplaced.accept")
    private let lock = NIOLock()
    private var acceptSource: DispatchSourceRead?
    private var nextConnection: UInt64 = 0

    public init(dispatcher: VarlinkDispatcher, limits: Configuration.Limits, logger: Logger) {
        self.dispatcher = dispatcher
        self.limits = limits
        self.logger = logger
    }

    public var openConnections: Int { connections.count }

    public enum ServerError: Error, CustomStringConvertible {
        case socketInUse(String)
        case notASocket(String)
        case socket(String, Errno)
        public var description: String {
            switch self {
            case .socketInUse(let p): return "\(p) is served by another running instance"
            case .notASocket(let p): return "\(p) exists and is not a socket: not replacing it"
            case .socket(let what, let e): return "\(what): \(e)"
            }
        }
    }

    /// Binds (or adopts) the listening socket. For `.path`, a stale socket file from an earlier run is
    /// replaced; a live one (another daemon answering) is an error, so two instances never share a path.
    public func start(_ listen: Listen) async throws {
        let fd: Int32
        switch listen {
        case .path(let path):
            if VarlinkServer.isLive(path) { throw ServerError.socketInUse(path) }
            fd = try VarlinkServer.bind(path)
        case .descriptor(let activated):
            fd = activated
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        let source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
        source.setEventHandler { [weak self] in self?.acceptAvailable(fd) }
        source.setCancelHandler { Syscall.close(fd) }
        lock.withLock { acceptSource = source }
        source.resume()
    }

    static func bind(_ path: String) throws -> Int32 {
        var st = stat()
        if lstat(path, &st) == 0 {
            guard st.st_mode & S_IFMT == S_IFSOCK else { throw ServerError.notASocket(path) }
            unlink(path)
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw ServerError.socket("socket", .current) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
            Syscall.close(fd)
            throw ServerError.socket("bind \(path)", Errno(ENAMETOOLONG))
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0, listen(fd, 256) == 0 else {
            let e = Errno.current
            Syscall.close(fd)
            throw ServerError.socket("bind \(path)", e)
        }
        return fd
    }

    /// True when something accepts connections on `path` right now.
    static func isLive(_ path: String) -> Bool {
        (try? VarlinkClient(path: path)) != nil
    }

    /// Stops accepting; open connections finish on their own.
    public func stop() async {
        lock.withLock {
            acceptSource?.cancel()
            acceptSource = nil
        }
    }

    private func acceptAvailable(_ listener: Int32) {
        while true {
            let accepted = Result { () throws(Errno) in try Syscall.retrying { np_accept_nonblocking(listener) } }
            guard case .failure(let error) = accepted else {
                if case .success(let fd) = accepted { admit(fd) }
                continue
            }
            switch error.rawValue {
            case ECONNABORTED: continue
            case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                // The pending connection stays queued and the source would fire again at once: pause.
                logger.warning("cannot accept a connection: \(error); pausing for 100 ms")
                guard let source = lock.withLock({ acceptSource }) else { return }
                source.suspend()
                queue.asyncAfter(deadline: .now() + .milliseconds(100)) { source.resume() }
                return
            default:
                return
            }
        }
    }

    /// The peer's credentials decide its share of the connections and every call's rights; without
    /// them no call is served. SO_PEERPIDFD is asked for only once the connection is admitted, so that
    /// no pidfd is made for one refused at once (a peer that connects and hangs up in a loop).
    private func admit(_ fd: Int32) {
        var pid: pid_t = 0, uid: uid_t = 0, gid: gid_t = 0
        guard np_peer_credentials(fd, &pid, &uid, &gid) == 0 else {
            Syscall.close(fd)
            return
        }
        let id = lock.withLock { () -> UInt64 in
            nextConnection += 1
            return nextConnection
        }
        let context = Connection.Context(dispatcher: dispatcher, limits: limits, logger: logger, table: connections)
        let connection = Connection(fd: fd, peer: PeerCredentials(pid: pid, uid: uid, gid: gid, connection: id),
                                    context: context)
        let admission = connections.admit(connection, uid: uid, limit: limits.maxConnections,
                                          perUserLimit: limits.maxConnectionsPerUser)
        guard admission.admitted else {
            logger.debug("connection of uid \(uid) refused: its \(connections.count(uid: uid)) connections, or all \(connections.count), are busy")
            Syscall.close(fd)
            return
        }
        if let idle = admission.evicted {
            logger.debug("closing the longest-idle connection to admit one of uid \(uid)")
            idle.close()
        }
        let pidfd = np_peer_pidfd(fd)
        connection.start(process: pidfd >= 0 ? PidFD(taking: pidfd, pid: pid) : nil)
    }
}
