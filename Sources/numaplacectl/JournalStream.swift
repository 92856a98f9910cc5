#if canImport(Glibc)
import Glibc
#endif
import NumaPlaceSyscall

/// A stream to journald opened by this process, as `systemd-cat` opens one, to pass to the worker as its
/// stdout or stderr: journald stamps each record with the credentials of the process that connected
/// (`_UID`, `_GID`, `_PID`), so the worker's records are the caller's, never the root daemon's.
///
/// Written here rather than with libsystemd's `sd_journal_stream_fd`: numaplacectl speaks the protocol
/// only and links no C library, and the stream's header is seven lines (systemd's
/// `src/journal/journald-stream.c` reads them): identifier, unit id, priority, level prefix, and
/// forwarding to syslog, kmsg and the console.
enum JournalStream {
    static let socketPath = "/run/systemd/journal/stdout"

    /// A connected, write-only stream, or the errno of why not (ENOENT: journald is not running).
    static func open(identifier: String, priority: Int32) -> Result<Int32, Errno> {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(.current) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in socketPath.utf8.enumerated() { raw[i] = b }
        }
        let connected = Result { () throws(Errno) in
            try Syscall.retrying {
                withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                    }
                }
            }
        }
        if case .failure(let e) = connected {
            Syscall.close(fd)
            return .failure(e)
        }
        _ = shutdown(fd, Int32(SHUT_RD))
        // One line each; a newline in the identifier would shift every field after it.
        let name = String(identifier.map { $0 == "\n" ? " " : $0 }.prefix(64))
        let header = "\(name)\n\n\(priority)\n0\n0\n0\n0\n"
        do {
            try Syscall.writeAll(fd, Array(header.utf8))
        } catch {
            Syscall.close(fd)
            return .failure(error)
        }
        return .success(fd)
    }
}
