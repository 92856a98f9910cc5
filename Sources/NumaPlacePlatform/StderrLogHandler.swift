import Logging

/// A swift-log handler for when stderr is not the journal: one line per record, prefixed with the
/// syslog priority as `<N>` (sd-daemon(3)'s convention, understood by journald's stream reader
/// with `SyslogLevelPrefix=yes` and by `systemd-cat`), then the message, then the metadata as
/// `key=value` sorted by key.
///
/// A multi-line message becomes several lines, each with the prefix, so no line is read without a
/// priority. Metadata values with spaces, quotes, `=` or control characters are quoted with
/// backslash escapes.
///
///     <6>worker spawned device=0000:3b:00.0 message_id=49ebf4d4b421470286d89df59fa90d78 worker_pid=4242
public struct StderrLogHandler: LogHandler {
    public let label: String
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata
    public var metadataProvider: Logger.MetadataProvider?
    /// Receives each formatted record (newline-terminated); writes to fd 2 by default.
    public var output: @Sendable (String) -> Void

    public init(label: String, logLevel: Logger.Level = .info, metadata: Logger.Metadata = [:],
                metadataProvider: Logger.MetadataProvider? = nil,
                output: @escaping @Sendable (String) -> Void = StderrLogHandler.standardError) {
        self.label = label
        self.logLevel = logLevel
        self.metadata = metadata
        self.metadataProvider = metadataProvider
        self.output = output
    }

    /// Writes a record to fd 2 with a single write(2) where it fits, so concurrent lines stay whole.
    public static let standardError: @Sendable (String) -> Void = { writeToStderr($0) }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        output(Self.format(event: event, metadata: mergedMetadata(metadata, metadataProvider, event.metadata)))
    }

    /// The record's text, newline-terminated.
    public static func format(event: LogEvent, metadata: Logger.Metadata) -> String {
        let prefix = "<\(SyslogPriority(event.level).rawValue)>"
        let message = event.message.description
        var lines: [String] = []
        // Most messages are one line: they are taken whole (appending scalar by scalar was a quarter
        // of the daemon's instructions per spawn at the default log level).
        if !message.utf8.contains(where: { $0 == UInt8(ascii: "\n") || $0 == UInt8(ascii: "\r") }) {
            lines.append(prefix + message)
        } else {
            // Split by scalar: "\r\n" is a single Character and would not match "\n".
            var current = String.UnicodeScalarView()
            for s in message.unicodeScalars {
                if s == "\n" {
                    lines.append(prefix + String(current))
                    current = String.UnicodeScalarView()
                } else if s != "\r" {
                    current.append(s)
                }
            }
            lines.append(prefix + String(current))
        }
        var pairs = metadata.map { ($0.key, renderMetadataValue($0.value)) }.sorted { $0.0 < $1.0 }
        if let error = event.error { pairs.append(("error", String(describing: error))) }
        if !pairs.isEmpty {
            let tail = pairs.map { "\(quoteIfNeeded($0.0))=\(quoteIfNeeded($0.1))" }.joined(separator: " ")
            lines[lines.count - 1] += " " + tail
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func quoteIfNeeded(_ text: String) -> String {
        // Every byte that calls for quotes is ASCII, and UTF-8 never uses ASCII bytes inside a longer scalar.
        let needsQuotes = text.isEmpty || text.utf8.contains {
            $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "=")
                || $0 == UInt8(ascii: "\\") || $0 < 0x20 || $0 == 0x7f
        }
        guard needsQuotes else { return text }
        var out = "\""
        for s in text.unicodeScalars {
            switch s {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if s.value < 0x20 || s.value == 0x7f {
                    let hex = String(s.value, radix: 16)
                    out += "\\x" + (hex.count < 2 ? "0" + hex : hex)
                } else {
                    out.unicodeScalars.append(s)
                }
            }
        }
        return out + "\""
    }
}
