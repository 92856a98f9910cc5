import Logging
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Chooses where the daemon's logs go and installs the swift-log handler for the process.
public enum LoggingSetup {
    public enum Destination: String, CaseIterable, Hashable, Sendable {
        /// The journal when stderr is connected to it, stderr otherwise.
        case automatic
        /// Structured records through the native protocol (`JournalLogHandler`).
        case journal
        /// `<N>`-prefixed lines on stderr (`StderrLogHandler`).
        case stderr
    }

    /// Installs the handler factory with `LoggingSystem.bootstrap`. swift-log allows this once per
    /// process (a second call traps), so only `main` calls it; libraries and tests build handlers
    /// with `makeHandler` instead.
    public static func bootstrap(identifier: String = "numaplaced", level: Logger.Level = .info,
                                 destination: Destination = .automatic,
                                 metadataProvider: Logger.MetadataProvider? = nil) {
        let resolved = resolve(destination)
        LoggingSystem.bootstrap({ label, provider in
            makeHandler(label: label, identifier: identifier, level: level, destination: resolved,
                        metadataProvider: provider)
        }, metadataProvider: metadataProvider)
    }

    /// A handler for `destination` (`.automatic` is resolved first).
    public static func makeHandler(label: String, identifier: String = "numaplaced", level: Logger.Level = .info,
                                   destination: Destination = .automatic,
                                   metadataProvider: Logger.MetadataProvider? = nil) -> any LogHandler {
        switch resolve(destination) {
        case .journal:
            return JournalLogHandler(label: label, identifier: identifier, logLevel: level,
                                     metadataProvider: metadataProvider)
        case .stderr, .automatic:
            return StderrLogHandler(label: label, logLevel: level, metadataProvider: metadataProvider)
        }
    }

    /// `.automatic` becomes `.journal` when `stderrIsJournal()`, `.stderr` otherwise; the others stay.
    public static func resolve(_ destination: Destination) -> Destination {
        guard destination == .automatic else { return destination }
        let variable = getenv("JOURNAL_STREAM").map { String(cString: $0) }
        return stderrIsJournal(journalStream: variable) ? .journal : .stderr
    }

    /// Whether fd `fd` (stderr) is the stream systemd connected to journald: `$JOURNAL_STREAM` holds
    /// that stream's `device:inode` (systemd.exec(5)), and matches only while stderr was not
    /// redirected elsewhere since (a shell `2>file`, a wrapper script).
    public static func stderrIsJournal(journalStream: String?, fd: Int32 = 2) -> Bool {
        guard let journalStream else { return false }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return false }
        return journalStreamMatches(journalStream, device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }

    /// Parses `DEVICE:INODE` (two decimal numbers) and compares them.
    static func journalStreamMatches(_ value: String, device: UInt64, inode: UInt64) -> Bool {
        let parts = value.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2,
              parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0.isASCII && $0.isNumber } }),
              let d = UInt64(parts[0]), let i = UInt64(parts[1]) else { return false }
        return d == device && i == inode
    }
}
