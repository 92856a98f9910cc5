import CSystemd
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import NumaPlaceSyscall

/// Tells the service manager how the daemon is doing, through `sd_notify(3)` (`Type=notify`).
///
/// Every method sends one datagram to `$NOTIFY_SOCKET` and returns `true`, or returns `false` when the
/// variable is unset (not started by systemd: nothing to tell). `sd_notify` reads the variable on
/// each call and never unsets it; the spawner never passes the daemon's environment to workers, so
/// they cannot inherit it (and `NotifyAccess=main` makes systemd ignore them if they did).
///
/// Status texts are single-line: a newline would start a new assignment in the protocol, so it is
/// replaced by a space.
public struct SystemdNotifier: Sendable {
    /// `CLOCK_MONOTONIC` in microseconds, as `MONOTONIC_USEC=` wants it. Injected so that tests can
    /// check the value sent.
    public var monotonicMicroseconds: @Sendable () -> UInt64

    public init(monotonicMicroseconds: @escaping @Sendable () -> UInt64 = SystemdNotifier.monotonicNow) {
        self.monotonicMicroseconds = monotonicMicroseconds
    }

    /// `clock_gettime(CLOCK_MONOTONIC)` in microseconds, the clock systemd compares against.
    @Sendable public static func monotonicNow() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1_000
    }

    /// `READY=1`: start-up finished (after the first full scan and with the socket listening), or a
    /// reload finished.
    @discardableResult
    public func ready(status: String? = nil) throws(SystemdError) -> Bool {
        try send([("READY", "1")] + statusField(status))
    }

    /// `RELOADING=1` with `MONOTONIC_USEC=`: a SIGHUP reload started. systemd ≥ 253 requires the
    /// timestamp with `RELOADING=1` (it tells a new reload from a stale message); older versions
    /// ignore it. Send `ready()` when the reload is over, whether it succeeded or not.
    @discardableResult
    public func reloading(status: String? = nil) throws(SystemdError) -> Bool {
        try send([("RELOADING", "1"), ("MONOTONIC_USEC", String(monotonicMicroseconds()))] + statusField(status))
    }

    /// `STOPPING=1`: shutdown began.
    @discardableResult
    public func stopping(status: String? = nil) throws(SystemdError) -> Bool {
        try send([("STOPPING", "1")] + statusField(status))
    }

    /// `STATUS=`: the one-line status `systemctl status` shows (device and worker counts).
    @discardableResult
    public func status(_ text: String) throws(SystemdError) -> Bool {
        try send(statusField(text))
    }

    /// `WATCHDOG=1`: keep-alive; send at least every half of `watchdogInterval()`.
    @discardableResult
    public func watchdog() throws(SystemdError) -> Bool {
        try send([("WATCHDOG", "1")])
    }

    /// Sends assignments as one message (`KEY=value` lines). Keys must be upper-case protocol
    /// names; newlines in values become spaces.
    @discardableResult
    public func send(_ assignments: [(key: String, value: String)]) throws(SystemdError) -> Bool {
        let message = Self.message(assignments)
        let rc = sd_notify(0, message)
        if rc < 0 { throw SystemdError(.notify, errno: Errno(-rc), "sd_notify(\(assignments.map(\.key).joined(separator: ",")))") }
        return rc > 0
    }

    /// The watchdog interval systemd expects keep-alives within (`WatchdogSec=`), from
    /// `sd_watchdog_enabled(3)`; nil when no watchdog is set for this process (`$WATCHDOG_PID` must
    /// name us, so a child that inherited the variables does not ping on our behalf).
    public func watchdogInterval() throws(SystemdError) -> Duration? {
        var usec: UInt64 = 0
        let rc = sd_watchdog_enabled(0, &usec)
        if rc < 0 { throw SystemdError(.watchdog, errno: Errno(-rc), "sd_watchdog_enabled") }
        guard rc > 0, usec > 0 else { return nil }
        return .microseconds(Int64(clamping: usec))
    }

    /// The datagram's text: one `KEY=value` per line.
    static func message(_ assignments: [(key: String, value: String)]) -> String {
        assignments.map { a in
            return "\(a.key)=\(singleLine(a.value))"
        }.joined(separator: "\n")
    }

    private func statusField(_ text: String?) -> [(key: String, value: String)] {
        guard let text else { return [] }
        return [("STATUS", text)]
    }
}

/// The text with CR, LF and NUL replaced by spaces (by scalar: "\r\n" is one `Character`).
func singleLine(_ text: String) -> String {
    var scalars = String.UnicodeScalarView()
    for s in text.unicodeScalars {
        scalars.append(s == "\n" || s == "\r" || s == "\0" ? " " : s)
    }
    return String(scalars)
}
