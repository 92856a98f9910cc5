/// The daemon's settings, as read from `numaplaced.conf` and its drop-ins (see `docs/configuration.md`).
///
/// Every field has a default, so a host without any configuration file runs with `Configuration()`.
/// The struct is a plain value: a SIGHUP reload parses a new one and swaps it in only when parsing
/// succeeded, so a bad file never replaces a running configuration.
public struct Configuration: Hashable, Sendable {
    public static let defaultSocketPath = "/run/numaplaced/io.numaplaced"
    public static let defaultStateDirectory = "/run/numaplaced"

    /// The socket for a run without a configured one: `/run/numaplaced` for root, otherwise
    /// `$XDG_RUNTIME_DIR/numaplaced` (or `/tmp/numaplaced-UID`), so that a user's run needs no
    /// privilege. The daemon binds it and numaplacectl looks for it there.
    public static func runtimeSocketPath(euid: UInt32, xdgRuntimeDirectory: String?) -> String {
        if euid == 0 { return defaultSocketPath }
        if let xdg = xdgRuntimeDirectory, xdg.hasPrefix("/") { return xdg + "/numaplaced/io.numaplaced" }
        return "/tmp/numaplaced-\(euid)/io.numaplaced"
    }

    // [Daemon]
    /// The Varlink socket bound when systemd did not pass one (socket activation wins).
    public var socketPath: String
    /// Where the worker table is persisted for re-adoption after a restart. Must not be wiped by a
    /// restart, so it is not a `RuntimeDirectory=` of the unit.
    public var stateDirectory: String
    public var eventSource: EventSource
    /// Narrows the saved original (the cgroup's CPUs) that workers may be given; `nil` keeps all of it.
    public var workerCPUs: CPUSet?

    // [Placement]
    /// The memory policy of a spawn request that does not name one.
    public var defaultMemoryPolicy: MemoryPolicyMode
    /// The admission of a spawn request that does not name one.
    public var defaultAdmission: Admission

    // [Devices]
    /// Rules from `Match=` lines, in file order; tried before `DeviceClassifier.defaultRules`.
    public var classificationRules: [ClassificationRule]
    /// `Locality=` overrides: the node to use instead of a device's `numa_node`.
    public var localityOverrides: [PCIAddress: NUMANodeID]

    // [Limits]
    public var limits: Limits

    public init(socketPath: String = Configuration.defaultSocketPath,
                stateDirectory: String = Configuration.defaultStateDirectory,
                eventSource: EventSource = .udev, workerCPUs: CPUSet? = nil,
                defaultMemoryPolicy: MemoryPolicyMode = .preferred, defaultAdmission: Admission = .strict,
                classificationRules: [ClassificationRule] = [], localityOverrides: [PCIAddress: NUMANodeID] = [:],
                limits: Limits = Limits()) {
        self.socketPath = socketPath
        self.stateDirectory = stateDirectory
        self.eventSource = eventSource
        self.workerCPUs = workerCPUs
        self.defaultMemoryPolicy = defaultMemoryPolicy
        self.defaultAdmission = defaultAdmission
        self.classificationRules = classificationRules
        self.localityOverrides = localityOverrides
        self.limits = limits
    }

    /// The classifier the scanner uses: configured rules first, then the defaults.
    public var classifier: DeviceClassifier { DeviceClassifier(prepending: classificationRules) }
}

/// One configuration file's path and contents, as the parser receives it.
public struct ConfigSource: Hashable, Sendable {
    /// Used in error messages only (`/etc/numaplaced/numaplaced.conf:12: …`).
    public var path: String
    public var text: String

    public init(path: String, text: String) {
        self.path = path
        self.text = text
    }
}

/// Why a configuration was refused: the file, the line (absent for a file that could not be read at
/// all), a stable code, and the reason in words.
public struct ConfigError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Code: String, Hashable, Sendable {
        /// The file exists but could not be read, is too large, or is not UTF-8.
        case unreadable
        /// A line that is neither `[Section]`, `Key=Value`, a comment nor blank.
        case syntax
        /// A `Key=Value` line before the first `[Section]`.
        case keyOutsideSection
        case unknownSection
        case unknownKey
        case invalidValue
    }

    public let code: Code
    public let file: String
    /// 1-based line number.
    public let line: Int?
    public let reason: String

    public init(_ code: Code, file: String, line: Int?, _ reason: String) {
        self.code = code
        self.file = file
        self.line = line
        self.reason = reason
    }

    /// `file:line: reason`, the form compilers use, so editors can jump to the line.
    public var description: String {
        if let line { return "\(file):\(line): \(reason)" }
        return "\(file): \(reason)"
    }
}
