/// Varlink framing: every message is one JSON object followed by a NUL byte (varlink.org).
///
/// Written by hand because no library here frames Varlink; the NIO handler in the daemon and the
/// blocking client both call this one splitter, so the byte-level rules live in one place.
public struct VarlinkFramer: Sendable {
    public enum FramingError: Error, Equatable, Sendable, CustomStringConvertible {
        /// More than `maxMessageBytes` arrived without a terminating NUL.
        case messageTooLarge(limit: Int)
        public var description: String {
            switch self {
            case .messageTooLarge(let limit): return "message exceeds \(limit) bytes without a NUL terminator"
            }
        }
    }

    public let maxMessageBytes: Int
    private var buffer: [UInt8] = []
    /// Where the search for the next NUL resumes, so split input is scanned once.
    private var scanned = 0

    public init(maxMessageBytes: Int = 1 << 20) {
        self.maxMessageBytes = maxMessageBytes
    }

    /// Bytes received but not yet part of a complete message.
    public var pendingBytes: Int { buffer.count }

    /// Appends received bytes and returns every complete message (without its NUL).
    public mutating func push(_ bytes: some Sequence<UInt8>) throws(FramingError) -> [[UInt8]] {
        buffer.append(contentsOf: bytes)
        var messages: [[UInt8]] = []
        var start = 0
        var i = scanned
        while i < buffer.count {
            if buffer[i] == 0 {
                messages.append(Array(buffer[start..<i]))
                start = i + 1
            }
            i += 1
        }
        if start > 0 { buffer.removeFirst(start) }
        scanned = buffer.count
        if buffer.count > maxMessageBytes { throw .messageTooLarge(limit: maxMessageBytes) }
        return messages
    }
}

/// Measures how deeply a JSON text nests arrays and objects, ignoring brackets inside strings.
/// Used to refuse hostile nesting before a recursive decoder sees it.
public func jsonNestingDepth(_ bytes: some Sequence<UInt8>) -> Int {
    var depth = 0, maxDepth = 0
    var inString = false, escaped = false
    for b in bytes {
        if inString {
            if escaped { escaped = false }
            else if b == UInt8(ascii: "\\") { escaped = true }
            else if b == UInt8(ascii: "\"") { inString = false }
            continue
        }
        switch b {
        case UInt8(ascii: "\""): inString = true
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            depth += 1
            maxDepth = max(maxDepth, depth)
        case UInt8(ascii: "}"), UInt8(ascii: "]"): depth -= 1
        default: break
        }
    }
    return maxDepth
}
