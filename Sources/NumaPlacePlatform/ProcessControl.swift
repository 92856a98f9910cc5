import CNumaPlaceShim
import Glibc
import NumaPlaceSyscall

/// A process descriptor (pidfd(2)) that this object owns and closes when it is released.
///
/// A pidfd names one process for its whole life: unlike a pid it cannot be recycled to name another
/// process, so signals sent and waits made through it always reach the worker that was spawned.
/// It becomes readable (poll(2) POLLIN) when the process exits, which is how an event loop watches it.
public final class PidFD: Sendable, CustomStringConvertible {
    public let rawValue: Int32
    /// The process id at the time the descriptor was made.
    public let pid: pid_t

    /// Takes ownership of an open pidfd.
    public init(taking rawValue: Int32, pid: pid_t) {
        self.rawValue = rawValue
        self.pid = pid
    }

    /// Opens a pidfd for a running process, as a restarted daemon does to re-adopt its workers.
    /// Wraps `np_pidfd_open` (pidfd_open(2)); ESRCH when no such process exists.
    public static func open(pid: pid_t) throws(Errno) -> PidFD {
        let fd = try Syscall.retrying { np_pidfd_open(pid, 0) }
        // pidfd_open(2) sets O_CLOEXEC on the new descriptor itself.
        return PidFD(taking: fd, pid: pid)
    }

    deinit { Syscall.close(rawValue) }

    public var description: String { "pidfd \(rawValue) (pid \(pid))" }
}

/// How a process ended, as waitid(2) reports it.
public enum ProcessExitStatus: Hashable, Sendable, CustomStringConvertible {
    case exited(Int32)
    case killed(signal: Int32, coreDumped: Bool)

    public var description: String {
        switch self {
        case .exited(let code): return "exited with code \(code)"
        case .killed(let signal, let core):
            return "killed by signal \(signal)" + (core ? " (core dumped)" : "")
        }
    }
}

extension PidFD {
    /// Sends `signal` to the process. Wraps `np_pidfd_send_signal` (pidfd_send_signal(2));
    /// ESRCH once the process has exited, even before it is reaped.
    public func send(signal: Int32) throws(Errno) {
        _ = try Syscall.retrying { np_pidfd_send_signal(rawValue, signal, 0) }
    }

    /// Reaps the process if it has exited, without blocking: nil while it runs.
    /// Wraps `np_waitid_pidfd` (waitid(P_PIDFD, WEXITED | WNOHANG)). ECHILD when it was already
    /// reaped or is not our child.
    public func tryReap() throws(Errno) -> ProcessExitStatus? {
        try waitid(options: WEXITED | WNOHANG)
    }

    /// Blocks until the process exits and reaps it. Wraps `np_waitid_pidfd` (waitid(P_PIDFD, WEXITED)).
    public func waitForExit() throws(Errno) -> ProcessExitStatus {
        while true {
            if let status = try waitid(options: WEXITED) { return status }
        }
    }

    /// Blocks until the process has exited, without reaping it. Wraps poll(2) on the pidfd.
    public func waitUntilExited() throws(Errno) {
        var p = pollfd(fd: rawValue, events: Int16(POLLIN), revents: 0)
        _ = try Syscall.retrying { poll(&p, 1, -1) }
    }

    private func waitid(options: Int32) throws(Errno) -> ProcessExitStatus? {
        var pid: pid_t = 0, code: Int32 = 0, status: Int32 = 0
        _ = try Syscall.retrying { np_waitid_pidfd(rawValue, options, &pid, &code, &status) }
        if pid == 0 { return nil }
        switch code {
        case Int32(CLD_EXITED): return .exited(status)
        case Int32(CLD_KILLED): return .killed(signal: status, coreDumped: false)
        case Int32(CLD_DUMPED): return .killed(signal: status, coreDumped: true)
        default: return nil // stopped, trapped, continued: not asked for (no WSTOPPED/WCONTINUED)
        }
    }
}
