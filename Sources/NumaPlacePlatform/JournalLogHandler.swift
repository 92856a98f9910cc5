import CSystemd
import Logging
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import NumaPlaceSyscall

/// A swift-log handler that writes structured journal records through journald's native protocol,
/// with `sd_journal_sendv(3)` (`sd_journal_send` is variadic and cannot be called from Swift).
///
/// Each record carries `MESSAGE`, `PRIORITY`, `SYSLOG_IDENTIFIER`, `CODE_FILE`, `CODE_LINE`,
/// `CODE_FUNC`, `LOGGER` (the logger's label), `ERROR` when the event has one, and one field per
/// metadata entry, named by `fieldName(forMetadataKey:)`: `message_id` → `MESSAGE_ID`,
/// `worker_pid` → `WORKER_PID`. Metadata precedence, lowest first: the handler's, the metadata
/// provider's, the log call's.
///
/// When journald refuses a record (`sd_journal_sendv` fails) the line goes to stderr in
/// `StderrLogHandler`'s format instead, so it is not lost.
public struct JournalLogHandler: LogHandler {
    public let label: String
    /// `SYSLOG_IDENTIFIER=`, what `journalctl -t` selects on.
    public var identifier: String
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata
    public var metadataProvider: Logger.MetadataProvider?

    public init(label: String, identifier: String = "numaplaced", logLevel: Logger.Level = .info,
                metadata: Logger.Metadata = [:], metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.identifier = identifier
        self.logLevel = logLevel
        self.metadata = metadata
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let merged = mergedMetadata(metadata, metadataProvider, event.metadata)
        let fields = Self.fields(for: event, metadata: merged, identifier: identifier, label: label)
        if Self.send(fields) < 0 {
            writeToStderr(StderrLogHandler.format(event: event, metadata: merged))
        }
    }

    /// The fields of one record, in the order they are sent: the handler's own, then the metadata
    /// sorted by field name.
    static func fields(for event: LogEvent, metadata: Logger.Metadata, identifier: String,
                       label: String) -> [(name: String, value: String)] {
        var fields: [(name: String, value: String)] = [
            ("MESSAGE", event.message.description),
            ("PRIORITY", String(SyslogPriority(event.level).rawValue)),
            ("SYSLOG_IDENTIFIER", identifier),
            ("CODE_FILE", event.file),
            ("CODE_LINE", String(event.line)),
            ("CODE_FUNC", event.function),
            ("LOGGER", label),
        ]
        if let error = event.error { fields.append(("ERROR", String(describing: error))) }
        var extra: [(name: String, value: String)] = []
        for (key, value) in metadata {
            guard let name = fieldName(forMetadataKey: key) else { continue }
            extra.append((name, renderMetadataValue(value)))
        }
        extra.sort { ($0.name, $0.value) < ($1.name, $1.value) }
        return fields + extra
    }

    /// Fields the handler sets itself; metadata with these names is renamed `META_…` so that a
    /// metadata key cannot replace the message or the priority.
    static let ownFields: Set<String> = [
        "MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "CODE_FILE", "CODE_LINE", "CODE_FUNC", "LOGGER", "ERROR",
    ]

    /// The journal field name for a metadata key: ASCII letters upper-cased, digits kept, anything else
    /// `_`; leading `_` and digits dropped (journald reserves `_` for trusted fields and drops such
    /// client fields; names must not start with a digit); at most 64 bytes, journald's limit. Nil when
    /// nothing is left.
    public static func fieldName(forMetadataKey key: String) -> String? {
        var bytes: [UInt8] = []
        for b in key.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"): bytes.append(b - 32)
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): bytes.append(b)
            default: bytes.append(UInt8(ascii: "_"))
            }
        }
        while let first = bytes.first, first == UInt8(ascii: "_") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) {
            bytes.removeFirst()
        }
        guard !bytes.isEmpty else { return nil }
        var name = String(decoding: bytes, as: UTF8.self)
        if ownFields.contains(name) { name = "META_" + name }
        return String(name.prefix(64))
    }

    /// Sends one record; returns `sd_journal_sendv`'s result (0, or `-errno`).
    static func send(_ fields: [(name: String, value: String)]) -> Int32 {
        // One contiguous buffer holds every `NAME=value`; the iovecs point into it. libsystemd turns a
        // value with a newline into the protocol's binary length form itself.
        var buffer: [UInt8] = []
        var spans: [(offset: Int, count: Int)] = []
        for field in fields {
            let start = buffer.count
            buffer.append(contentsOf: field.name.utf8)
            buffer.append(UInt8(ascii: "="))
            buffer.append(contentsOf: field.value.utf8)
            spans.append((start, buffer.count - start))
        }
        return buffer.withUnsafeMutableBytes { raw -> Int32 in
            guard let base = raw.baseAddress else { return -EINVAL }
            let vectors = spans.map { iovec(iov_base: base + $0.offset, iov_len: $0.count) }
            return vectors.withUnsafeBufferPointer { sd_journal_sendv($0.baseAddress, Int32($0.count)) }
        }
    }
}

/// Handler metadata, then the provider's, then the call's: later wins.
func mergedMetadata(_ handler: Logger.Metadata, _ provider: Logger.MetadataProvider?,
                    _ call: Logger.Metadata?) -> Logger.Metadata {
    var merged = handler
    if let provided = provider?.get(), !provided.isEmpty {
        merged.merge(provided) { _, new in new }
    }
    if let call, !call.isEmpty {
        merged.merge(call) { _, new in new }
    }
    return merged
}

func renderMetadataValue(_ value: Logger.Metadata.Value) -> String {
    switch value {
    case .string(let s): return s
    case .stringConvertible(let c): return c.description
    case .array, .dictionary: return value.description
    }
}

/// Writes all of `text` to fd 2 in as few write(2) calls as it takes (one, for a line under the
/// pipe buffer size, which keeps concurrent lines whole). Errors are dropped: there is nowhere left
/// to report them.
func writeToStderr(_ text: String) {
    try? Syscall.writeAll(2, Array(text.utf8))
}
