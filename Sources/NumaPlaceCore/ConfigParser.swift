/// Parses systemd-style configuration text into a `Configuration` (syntax: systemd.syntax(7)).
///
/// - `[Section]` headers, `Key=Value` lines (whitespace around the `=` and at both ends is dropped),
///   comment lines starting with `#` or `;`, blank lines. No trailing comments: as in systemd, a `#`
///   after a value is part of the value.
/// - Files are applied in the order given (the main file, then drop-ins in lexical order); a later
///   assignment of a single-valued key overrides an earlier one.
/// - An empty assignment (`Key=`) resets the key to its default; for the list keys `Match=` and
///   `Locality=` it empties the list collected so far, as `ExecStart=` does in a unit drop-in.
/// - Sections and keys starting with `X-` are ignored (systemd's convention for extensions); any
///   other unknown section or key is an error, so a typo is never silently ignored.
/// - A line ending in `\` is refused: continuation lines are not supported, and silently keeping
///   the backslash in a value would be worse.
///
/// Pure: no file system access (`ConfigLoader` reads the files). Errors carry `file:line`.
public enum ConfigParser {
    /// Applies `sources` in order on top of `defaults`; throws the first error found.
    public static func parse(_ sources: [ConfigSource],
                             defaults: Configuration = Configuration()) throws(ConfigError) -> Configuration {
        let (configuration, errors) = check(sources, defaults: defaults)
        if let first = errors.first { throw first }
        return configuration
    }

    /// Applies `sources` and returns every error, in file and line order, for tools that report all
    /// problems at once. The configuration is only meaningful when `errors` is empty.
    public static func check(_ sources: [ConfigSource],
                             defaults: Configuration = Configuration()) -> (Configuration, [ConfigError]) {
        var state = State(config: defaults, defaults: defaults)
        for source in sources { state.apply(source) }
        return (state.config, state.errors)
    }

    /// Every section and its keys, in the order `docs/configuration.md` lists them.
    public static var knownKeys: [(section: String, keys: [String])] {
        Section.allCases.map { ($0.rawValue, $0.keys) }
    }

    enum Section: String, CaseIterable {
        case daemon = "Daemon"
        case placement = "Placement"
        case devices = "Devices"
        case limits = "Limits"

        var keys: [String] {
            switch self {
            case .daemon: return ["Socket", "StateDirectory", "EventSource", "WorkerCPUs"]
            case .placement: return ["DefaultMemoryPolicy", "DefaultAdmission"]
            case .devices: return ["Match", "Locality"]
            case .limits: return LimitKey.allCases.map(\.rawValue)
            }
        }
    }

    enum LimitKey: String, CaseIterable {
        case maxMessageBytes = "MaxMessageBytes"
        case maxArgvBytes = "MaxArgvBytes"
        case maxEnvironmentBytes = "MaxEnvironmentBytes"
        case maxWorkersPerUser = "MaxWorkersPerUser"
        case maxConnections = "MaxConnections"
        case maxConnectionsPerUser = "MaxConnectionsPerUser"
        case maxMonitorBacklog = "MaxMonitorBacklog"
        case maxExclusiveCoresPerUser = "MaxExclusiveCoresPerUser"

        /// Byte sizes accept K, M and G suffixes (powers of 1024, as systemd's sizes).
        var isSize: Bool {
            switch self {
            case .maxMessageBytes, .maxArgvBytes, .maxEnvironmentBytes: return true
            default: return false
            }
        }

        /// Bytes: at least a page, at most 1 GiB, so a typo cannot ask for unbounded buffers.
        /// Counts: at least one, at most what a host can meaningfully hold.
        var range: ClosedRange<Int> {
            switch self {
            case .maxMessageBytes, .maxArgvBytes, .maxEnvironmentBytes: return 4096...(1 << 30)
            case .maxWorkersPerUser: return 1...1_000_000
            case .maxConnections, .maxConnectionsPerUser: return 1...65536
            case .maxMonitorBacklog: return 1...1_000_000
            case .maxExclusiveCoresPerUser: return 0...65536
            }
        }

        var keyPath: WritableKeyPath<Configuration.Limits, Int> {
            switch self {
            case .maxMessageBytes: return \.maxMessageBytes
            case .maxArgvBytes: return \.maxArgvBytes
            case .maxEnvironmentBytes: return \.maxEnvironmentBytes
            case .maxWorkersPerUser: return \.maxWorkersPerUser
            case .maxConnections: return \.maxConnections
            case .maxConnectionsPerUser: return \.maxConnectionsPerUser
            case .maxMonitorBacklog: return \.maxMonitorBacklog
            case .maxExclusiveCoresPerUser: return \.maxExclusiveCoresPerUser
            }
        }
    }

    /// Longest `Socket=` path: `sun_path` is 108 bytes including the terminating NUL.
    static let maxSocketPathBytes = 107

    private enum Current {
        case none
        case known(Section)
        /// An `X-` section, or an unknown one already reported: its keys are skipped.
        case skipped
    }

    struct State {
        var config: Configuration
        let defaults: Configuration
        var errors: [ConfigError] = []

        mutating func apply(_ source: ConfigSource) {
            var current = Current.none
            var text = Substring(source.text)
            if text.unicodeScalars.first == "\u{FEFF}" { text = Substring(text.unicodeScalars.dropFirst()) }
            var number = 0
            // Split on the LF byte: "\r\n" is a single Character, so a Character split would not
            // see the line ends of a file written on Windows.
            for rawBytes in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
                let raw = Substring(rawBytes)
                number += 1
                func fail(_ code: ConfigError.Code, _ reason: String) {
                    errors.append(ConfigError(code, file: source.path, line: number, reason))
                }
                let line = raw.trimmingWhitespace
                if line.isEmpty || line.first == "#" || line.first == ";" { continue }
                if line.contains("\0") {
                    fail(.syntax, "line contains a NUL byte")
                    continue
                }
                if line.last == "\\" {
                    fail(.syntax, "line ends in \\: continuation lines are not supported")
                    continue
                }
                if line.first == "[" {
                    guard line.count >= 3, line.last == "]" else {
                        fail(.syntax, "malformed section header \(quoted(line)) (expected [Name])")
                        continue
                    }
                    let name = line.dropFirst().dropLast()
                    if let section = Section(rawValue: String(name)) {
                        current = .known(section)
                    } else {
                        if !name.hasPrefix("X-") {
                            fail(.unknownSection, "unknown section [\(clip(name))] (expected "
                                 + list(Section.allCases.map { "[\($0.rawValue)]" }) + ")")
                        }
                        current = .skipped
                    }
                    continue
                }
                guard let eq = line.firstIndex(of: "=") else {
                    fail(.syntax, "expected Key=Value or [Section], found \(quoted(line))")
                    continue
                }
                let key = line[..<eq].trimmingWhitespace
                let value = line[line.index(after: eq)...].trimmingWhitespace
                guard !key.isEmpty else {
                    fail(.syntax, "missing key before = in \(quoted(line))")
                    continue
                }
                switch current {
                case .none:
                    fail(.keyOutsideSection, "\(clip(key))= appears before any [Section]")
                case .skipped:
                    continue
                case .known(let section):
                    if key.hasPrefix("X-") { continue }
                    guard section.keys.contains(String(key)) else {
                        fail(.unknownKey, "unknown key \(clip(key))= in [\(section.rawValue)] (expected "
                             + list(section.keys.map { $0 + "=" }) + ")")
                        continue
                    }
                    if let reason = assign(section, String(key), value) {
                        fail(.invalidValue, "\(key)=\(clip(value)): \(reason)")
                    }
                }
            }
        }

        /// Sets one key; returns why the value was refused, or nil.
        mutating func assign(_ section: Section, _ key: String, _ value: Substring) -> String? {
            switch (section, key) {
            case (.daemon, "Socket"):
                if value.isEmpty { config.socketPath = defaults.socketPath; return nil }
                if let why = absolutePathProblem(value) { return why }
                if value.utf8.count > maxSocketPathBytes {
                    return "\(value.utf8.count) bytes, longer than the \(maxSocketPathBytes) a Unix socket address holds"
                }
                if value.hasSuffix("/") { return "names a directory; expected the socket's own path" }
                config.socketPath = String(value)
            case (.daemon, "StateDirectory"):
                if value.isEmpty { config.stateDirectory = defaults.stateDirectory; return nil }
                if let why = absolutePathProblem(value) { return why }
                var path = value
                while path.count > 1, path.hasSuffix("/") { path = path.dropLast() }
                config.stateDirectory = String(path)
            case (.daemon, "EventSource"):
                if value.isEmpty { config.eventSource = defaults.eventSource; return nil }
                guard let source = EventSource(rawValue: String(value)) else {
                    return "expected " + list(EventSource.allCases.map(\.rawValue))
                }
                config.eventSource = source
            case (.daemon, "WorkerCPUs"):
                if value.isEmpty { config.workerCPUs = defaults.workerCPUs; return nil }
                do {
                    config.workerCPUs = try CPUSet(cpulist: value)
                } catch {
                    return "\(error) (expected a CPU list such as 0-15,32-47)"
                }
            case (.placement, "DefaultMemoryPolicy"):
                if value.isEmpty { config.defaultMemoryPolicy = defaults.defaultMemoryPolicy; return nil }
                guard let mode = MemoryPolicyMode(rawValue: String(value)) else {
                    return "expected " + list(MemoryPolicyMode.allCases.map(\.rawValue))
                }
                config.defaultMemoryPolicy = mode
            case (.placement, "DefaultAdmission"):
                if value.isEmpty { config.defaultAdmission = defaults.defaultAdmission; return nil }
                guard let admission = Admission(rawValue: String(value)) else {
                    return "expected " + list(Admission.allCases.map(\.rawValue))
                }
                config.defaultAdmission = admission
            case (.devices, "Match"):
                if value.isEmpty { config.classificationRules = []; return nil }
                switch ConfigParser.rule(value) {
                case .success(let rule): config.classificationRules.append(rule)
                case .failure(let why): return why.reason
                }
            case (.devices, "Locality"):
                if value.isEmpty { config.localityOverrides = [:]; return nil }
                switch ConfigParser.locality(value) {
                case .success(let (address, node)): config.localityOverrides[address] = node
                case .failure(let why): return why.reason
                }
            case (.limits, _):
                guard let limit = LimitKey(rawValue: key) else { return "unknown key" }
                if value.isEmpty {
                    config.limits[keyPath: limit.keyPath] = defaults.limits[keyPath: limit.keyPath]
                    return nil
                }
                let parsed = limit.isSize ? ConfigParser.size(value) : ConfigParser.count(value)
                guard let number = parsed else {
                    return limit.isSize ? "expected a size in bytes, optionally with a K, M or G suffix"
                                        : "expected a whole number"
                }
                guard limit.range.contains(number) else {
                    let lo = limit.isSize ? formatSize(limit.range.lowerBound) : String(limit.range.lowerBound)
                    let hi = limit.isSize ? formatSize(limit.range.upperBound) : String(limit.range.upperBound)
                    return "must be between \(lo) and \(hi)"
                }
                config.limits[keyPath: limit.keyPath] = number
            default:
                return "unknown key"
            }
            return nil
        }
    }

    /// A reason a `Match=` or `Locality=` value was refused.
    struct Refusal: Error {
        let reason: String
        init(_ reason: String) { self.reason = reason }
    }

    /// Parses a `Match=` value: space-separated `class=`, `vendor=`, `device=` and `kind=` fields.
    static func rule(_ value: Substring) -> Result<ClassificationRule, Refusal> {
        var classValue: UInt32? = nil
        var classMask: UInt32 = 0xffffff
        var vendor: UInt16? = nil
        var device: UInt16? = nil
        var kind: DeviceKind?? = nil
        var seen: Set<Substring> = []
        for field in value.split(whereSeparator: { $0 == " " || $0 == "\t" }) {
            guard let eq = field.firstIndex(of: "=") else {
                return .failure(Refusal("field \(quoted(field)) is not name=value"))
            }
            let name = field[..<eq]
            let text = field[field.index(after: eq)...]
            guard seen.insert(name).inserted else { return .failure(Refusal("\(clip(name))= given twice")) }
            switch name {
            case "class":
                guard let digits = hexDigits(text), [2, 4, 6].contains(digits.count), let v = UInt32(digits, radix: 16) else {
                    return .failure(Refusal("class=\(clip(text)): expected 2, 4 or 6 hex digits "
                                            + "(base class, base class and subclass, or the full class code)"))
                }
                let shift = UInt32(6 - digits.count) * 4
                classValue = v << shift
                classMask = (0xffffff >> shift) << shift
            case "vendor", "device":
                guard let digits = hexDigits(text), (1...4).contains(digits.count), let v = UInt16(digits, radix: 16) else {
                    return .failure(Refusal("\(name)=\(clip(text)): expected a 16-bit hex id such as 0x10de"))
                }
                if name == "vendor" { vendor = v } else { device = v }
            case "kind":
                if text == "ignore" {
                    kind = .some(nil)
                } else if let k = DeviceKind(rawValue: String(text)) {
                    kind = .some(k)
                } else {
                    return .failure(Refusal("kind=\(clip(text)): expected "
                                            + list(DeviceKind.allCases.map(\.rawValue) + ["ignore"])))
                }
            default:
                return .failure(Refusal("unknown field \(clip(name))= (expected class=, vendor=, device= and kind=)"))
            }
        }
        guard let kind else {
            return .failure(Refusal("kind= is missing (" + list(DeviceKind.allCases.map(\.rawValue) + ["ignore"]) + ")"))
        }
        guard classValue != nil || vendor != nil || device != nil else {
            return .failure(Refusal("needs class=, vendor= or device=: without them the rule matches every PCI function"))
        }
        if device != nil && vendor == nil {
            return .failure(Refusal("device= needs vendor=: PCI device ids are assigned per vendor"))
        }
        return .success(ClassificationRule(classValue: classValue, classMask: classMask, vendor: vendor, device: device,
                                           kind: kind))
    }

    /// Parses a `Locality=` value: `ADDRESS NODE`.
    static func locality(_ value: Substring) -> Result<(PCIAddress, NUMANodeID), Refusal> {
        let fields = value.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard fields.count == 2 else {
            return .failure(Refusal("expected a PCI address and a node id, such as 0000:3b:00.0 1"))
        }
        let address: PCIAddress
        do { address = try PCIAddress(parsing: fields[0]) } catch { return .failure(Refusal("\(error)")) }
        guard fields[1].allSatisfy({ $0.isASCII && $0.isNumber }), let node = NUMANodeID(fields[1]) else {
            return .failure(Refusal("\(quoted(fields[1])) is not a NUMA node id (0 to \(NUMANodeID.limit - 1))"))
        }
        return .success((address, node))
    }

    /// `123`, `4K`, `1M`, `1G` (powers of 1024). Nil on anything else or on overflow.
    static func size(_ text: Substring) -> Int? {
        var digits = text
        var multiplier = 1
        switch text.last {
        case "K": multiplier = 1 << 10
        case "M": multiplier = 1 << 20
        case "G": multiplier = 1 << 30
        default: break
        }
        if multiplier != 1 { digits = text.dropLast() }
        guard let n = count(digits) else { return nil }
        let (product, overflow) = n.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : product
    }

    /// A plain decimal number: ASCII digits only (no sign, no spaces), at most 15 of them.
    static func count(_ text: Substring) -> Int? {
        guard !text.isEmpty, text.count <= 15, text.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Int(text)
    }
}

// MARK: Helpers for values and messages

/// Hex digits after an optional `0x`; nil when empty or not hex.
private func hexDigits(_ text: Substring) -> Substring? {
    var t = text
    if t.hasPrefix("0x") || t.hasPrefix("0X") { t = t.dropFirst(2) }
    guard !t.isEmpty, t.allSatisfy({ $0.isASCII && $0.isHexDigit }) else { return nil }
    return t
}

private func absolutePathProblem(_ value: Substring) -> String? {
    guard value.hasPrefix("/") else { return "expected an absolute path" }
    if value.split(separator: "/").contains(where: { $0 == ".." }) { return "must not contain .." }
    return nil
}

/// `a`, `a or b`, `a, b or c`.
private func list(_ items: [String]) -> String {
    guard items.count > 1 else { return items.first ?? "" }
    return items.dropLast().joined(separator: ", ") + " or " + items[items.count - 1]
}

/// Values are clipped in messages so that a hostile line cannot make a huge log record.
private func clip(_ text: some StringProtocol) -> String {
    text.count <= 64 ? String(text) : String(text.prefix(64)) + "…"
}

private func quoted(_ text: some StringProtocol) -> String { "\"" + clip(text) + "\"" }

private func formatSize(_ n: Int) -> String {
    if n >= 1 << 30, n % (1 << 30) == 0 { return "\(n >> 30)G" }
    if n >= 1 << 20, n % (1 << 20) == 0 { return "\(n >> 20)M" }
    if n >= 1 << 10, n % (1 << 10) == 0 { return "\(n >> 10)K" }
    return String(n)
}
