import Logging

/// A syslog priority (syslog(3) `LOG_EMERG` … `LOG_DEBUG`), as journald's `PRIORITY=` field and the
/// `<N>` prefix of a stderr line carry it.
public enum SyslogPriority: Int32, CaseIterable, Hashable, Sendable {
    case emergency = 0
    case alert = 1
    case critical = 2
    case error = 3
    case warning = 4
    case notice = 5
    case info = 6
    case debug = 7

    /// swift-log's levels onto syslog's: trace and debug are both debug (syslog has nothing finer).
    public init(_ level: Logger.Level) {
        switch level {
        case .trace, .debug: self = .debug
        case .info: self = .info
        case .notice: self = .notice
        case .warning: self = .warning
        case .error: self = .error
        case .critical: self = .critical
        }
    }
}
