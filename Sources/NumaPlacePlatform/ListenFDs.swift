import CSystemd
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import NumaPlaceSyscall

/// The sockets systemd passed by socket activation (`numaplaced.socket`), from
/// `sd_listen_fds_with_names(3)`.
///
/// systemd passes them as fds 3, 4, … with `$LISTEN_FDS`, `$LISTEN_PID` (ours, or they are not for
/// us) and `$LISTEN_FDNAMES` (`FileDescriptorName=`, `"unknown"` when unset). libsystemd sets
/// `FD_CLOEXEC` on them, so workers never inherit the listening socket.
public enum ListenFDs {
    /// One passed socket, checked to be what the daemon can serve on.
    public struct Socket: Hashable, Sendable {
        /// Owned by the caller from now on.
        public let fd: Int32
        /// `FileDescriptorName=` of the socket unit, `"unknown"` when it set none.
        public let name: String
        /// The bound path (`getsockname`), `@name` for an abstract socket; nil when it cannot be read.
        public let path: String?

        public init(fd: Int32, name: String, path: String?) {
            self.fd = fd
            self.name = name
            self.path = path
        }
    }

    /// Takes the passed sockets. Empty when not socket-activated (no `$LISTEN_FDS`, or it was meant
    /// for another process). Throws when the variables are malformed, or when any fd is not a
    /// listening `AF_UNIX` `SOCK_STREAM` socket (`sd_is_socket_unix(3)`): a socket unit with
    /// `ListenDatagram=` or `Accept=yes` is a configuration error to report, not to serve on.
    ///
    /// `unsetEnvironment` removes the variables (`unsetenv` is not thread-safe: only before threads
    /// start).
    public static func take(unsetEnvironment: Bool = false) throws(SystemdError) -> [Socket] {
        var names: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = nil
        let count = sd_listen_fds_with_names(unsetEnvironment ? 1 : 0, &names)
        defer {
            if let names {
                var i = 0
                while let name = names[i] { free(name); i += 1 }
                free(names)
            }
        }
        if count < 0 { throw SystemdError(.listenFDs, errno: Errno(-count), "sd_listen_fds_with_names") }
        var sockets: [Socket] = []
        for i in 0..<count {
            let fd = Int32(SD_LISTEN_FDS_START) + i
            let name = names.flatMap { $0[Int(i)] }.map { String(cString: $0) } ?? "unknown"
            sockets.append(try validate(fd: fd, name: name))
        }
        return sockets
    }

    /// Checks that `fd` is a listening Unix stream socket (`sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0)`).
    public static func validate(fd: Int32, name: String = "unknown") throws(SystemdError) -> Socket {
        let rc = sd_is_socket_unix(fd, Int32(SOCK_STREAM.rawValue), 1, nil, 0)
        if rc < 0 {
            throw SystemdError(.notAUnixStreamListener, errno: Errno(-rc), "passed fd \(fd) (\(name))")
        }
        if rc == 0 {
            throw SystemdError(.notAUnixStreamListener, errno: nil,
                               "passed fd \(fd) (\(name)) is not a listening AF_UNIX SOCK_STREAM socket")
        }
        return Socket(fd: fd, name: name, path: unixSocketPath(fd))
    }
}
