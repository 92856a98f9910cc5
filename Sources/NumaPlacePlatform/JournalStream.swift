import CSystemd
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import NumaPlaceSyscall

/// A stream connection to journald for a worker's stdout or stderr, from `sd_journal_stream_fd(3)`:
/// every line written to it becomes a journal record with the worker's own identifier
/// (`journalctl -t IDENTIFIER`) and the given priority.
public enum JournalStream {
    /// Connects to `/run/systemd/journal/stdout` and returns the socket. The caller owns the fd
    /// (close-on-exec: the spawner dup2()s it onto the worker's 1 or 2, which clears the flag on the
    /// copy, and closes the original in the parent).
    ///
    /// - Parameters:
    ///   - identifier: `SYSLOG_IDENTIFIER=` of the records; newlines are replaced by spaces (a newline
    ///     would end the stream's header line early).
    ///   - priority: the priority of each line.
    ///   - levelPrefix: whether journald honours `<N>` prefixes in the stream. Off by default: a
    ///     worker's output is kept as it wrote it.
    public static func open(identifier: String, priority: SyslogPriority = .info,
                            levelPrefix: Bool = false) throws(SystemdError) -> Int32 {
        let fd = sd_journal_stream_fd(singleLine(identifier), priority.rawValue, levelPrefix ? 1 : 0)
        if fd < 0 { throw SystemdError(.journalStream, errno: Errno(-fd), "sd_journal_stream_fd(\(identifier))") }
        return fd
    }
}
