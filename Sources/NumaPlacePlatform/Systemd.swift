#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import NumaPlaceSyscall

/// A libsystemd call that failed: which one, the errno it returned (libsystemd returns `-errno`),
/// and what it was about (the fd, the socket path).
public struct SystemdError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Code: String, Hashable, Sendable {
        /// `sd_notify` could not send to `$NOTIFY_SOCKET`.
        case notify
        /// `sd_watchdog_enabled` found `$WATCHDOG_USEC` malformed.
        case watchdog
        /// `sd_listen_fds_with_names` found `$LISTEN_FDS` or `$LISTEN_PID` malformed.
        case listenFDs
        /// A passed fd is not a listening `AF_UNIX` `SOCK_STREAM` socket (the socket unit is wrong).
        case notAUnixStreamListener
        /// `sd_journal_sendv` failed.
        case journal
        /// `sd_journal_stream_fd` could not connect to journald's stdout socket.
        case journalStream
    }

    public let code: Code
    /// The errno; nil where none applies.
    public let errno: Errno?
    public let context: String

    public init(_ code: Code, errno: Errno?, _ context: String) {
        self.code = code
        self.errno = errno
        self.context = context
    }

    public var description: String {
        let reason = errno.map { ": \($0)" } ?? ""
        return "\(code.rawValue): \(context)\(reason)"
    }
}

/// The path a Unix socket is bound to (`getsockname`), `@name` for an abstract socket, nil when
/// unbound or not a Unix socket.
func unixSocketPath(_ fd: Int32) -> String? {
    var address = sockaddr_un()
    var length = socklen_t(MemoryLayout<sockaddr_un>.size)
    let rc = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    guard rc == 0, address.sun_family == sa_family_t(AF_UNIX) else { return nil }
    let pathLength = Int(length) - (MemoryLayout.offset(of: \sockaddr_un.sun_path) ?? MemoryLayout<sa_family_t>.size)
    guard pathLength > 0 else { return nil }
    return withUnsafeBytes(of: &address.sun_path) { raw in
        let bytes = Array(raw.prefix(min(pathLength, raw.count)))
        if bytes.first == 0 {
            return "@" + String(decoding: bytes.dropFirst(), as: UTF8.self)
        }
        let end = bytes.firstIndex(of: 0) ?? bytes.count
        return String(decoding: bytes[..<end], as: UTF8.self)
    }
}
