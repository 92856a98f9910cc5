/// A typed note that a sysfs or procfs file was missing, unreadable or disagreed with another.
///
/// Warnings never stop a scan: the reader logs nothing itself (library layer) and hands them up.
public struct ScanWarning: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// The file could not be read (errno in `detail`).
        case unreadable
        /// The file is missing where the kernel normally writes it.
        case missing
        /// The text did not parse.
        case malformed
        /// A value is outside what the model accepts (a node id that does not exist, a huge number).
        case outOfRange
        /// Two files disagree (numa_node against local_cpulist).
        case conflict
        /// A device directory disappeared between listing and reading (hot removal mid-scan).
        case vanished
        /// A configured override replaced what sysfs said.
        case overridden
    }

    public let code: Code
    /// The path relative to the root (`sys/bus/pci/devices/0000:3b:00.0/numa_node`).
    public let path: String
    public let detail: String

    public init(_ code: Code, path: String, _ detail: String) {
        self.code = code
        self.path = path
        self.detail = detail
    }

    public var description: String { "\(code.rawValue): \(path): \(detail)" }
}

extension ScanWarning.Code {
    /// The code for a parser's error: a number too large for the model is `outOfRange`, everything
    /// else that did not parse (empty, NUL bytes, garbage, backwards ranges) is `malformed`.
    static func forParseError(_ error: any Error) -> Self {
        if let e = error as? SysfsParsers.ParseError, case .outOfRange = e { return .outOfRange }
        if let e = error as? CPUSet.ParseError, case .tooLarge = e { return .outOfRange }
        return .malformed
    }
}
