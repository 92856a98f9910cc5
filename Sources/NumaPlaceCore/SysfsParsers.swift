/// Parsers for the text of individual sysfs and procfs files. Pure: text in, typed value or typed
/// error out. Each one is tested against a table of hostile input (`-1`, empty, NUL bytes, huge
/// numbers, backwards ranges) and none of them traps.
public enum SysfsParsers {
    public enum ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        case empty
        case containsNUL
        case malformed(String)
        case outOfRange(String)

        public var description: String {
            switch self {
            case .empty: return "empty"
            case .containsNUL: return "contains a NUL byte"
            case .malformed(let t): return "malformed \"\(t.prefix(40))\""
            case .outOfRange(let t): return "out of range \"\(t.prefix(40))\""
            }
        }
    }

    static func clean(_ text: String) throws(ParseError) -> Substring {
        if text.contains("\0") { throw .containsNUL }
        let t = text.trimmingWhitespace
        if t.isEmpty { throw .empty }
        return t
    }

    /// `numa_node`: a node id, or nil for `-1` (no node, as VMs and firmware without _PXM say).
    /// Other negative numbers and ids beyond the kernel's node limit are errors.
    public static func numaNode(_ text: String) throws(ParseError) -> NUMANodeID? {
        let t = try clean(text)
        let digits = t.first == "-" ? t.dropFirst() : t
        guard !digits.isEmpty, digits.allSatisfy(\.isASCIIDigit) else { throw .malformed(String(t)) }
        // A number, but too long for any node: out of range rather than malformed.
        guard digits.count <= 12, let v = Int(t) else { throw .outOfRange(String(t)) }
        if v == -1 { return nil }
        guard let id = NUMANodeID(rawValue: v) else { throw .outOfRange(String(t)) }
        return id
    }

    /// `class`, `vendor`, `device`: hex with `0x`, at most `bits` wide.
    public static func hexID(_ text: String, bits: Int) throws(ParseError) -> UInt32 {
        var t = try clean(text)
        if t.hasPrefix("0x") || t.hasPrefix("0X") { t = t.dropFirst(2) }
        guard !t.isEmpty, t.allSatisfy({ $0.isASCII && $0.isHexDigit }) else { throw .malformed(String(t)) }
        guard t.count <= 8, let v = UInt32(t, radix: 16) else { throw .outOfRange(String(t)) }
        guard bits >= 32 || v < (1 << UInt32(bits)) else { throw .outOfRange(String(t)) }
        return v
    }

    /// A node's `distance` row: space-separated integers (10 for itself, 255 for unreachable).
    public static func distances(_ text: String) throws(ParseError) -> [Int] {
        let t = try clean(text)
        var out: [Int] = []
        for part in t.split(whereSeparator: \.isWhitespace) {
            let digits = part.first == "-" ? part.dropFirst() : part
            guard !digits.isEmpty, digits.allSatisfy(\.isASCIIDigit) else { throw .malformed(String(part)) }
            guard part.count <= 4, let v = Int(part) else { throw .outOfRange(String(part)) }
            guard (0...255).contains(v) else { throw .outOfRange(String(part)) }
            out.append(v)
        }
        guard out.count <= NUMANodeID.limit else { throw .outOfRange("\(out.count) entries") }
        return out
    }

    /// A node's `meminfo`: the `MemTotal:` line in kB, returned in bytes.
    public static func memTotal(_ text: String) throws(ParseError) -> UInt64 {
        if text.contains("\0") { throw .containsNUL }
        for line in text.split(separator: "\n") {
            guard let r = line.firstRange(of: "MemTotal:") else { continue }
            let rest = line[r.upperBound...].trimmingWhitespace
            let number = rest.prefix(while: { $0.isASCII && $0.isNumber })
            guard !number.isEmpty else { throw .malformed(String(line)) }
            // 15 digits of kB is 1 EiB; anything longer would overflow the byte count.
            guard number.count <= 15, let kb = UInt64(number) else { throw .outOfRange(String(line)) }
            let unit = rest.dropFirst(number.count).trimmingWhitespace
            guard unit == "kB" || unit.isEmpty else { throw .malformed(String(line)) }
            return kb * 1024
        }
        throw .malformed("no MemTotal line")
    }

    /// A cpulist file (`cpulist`, `local_cpulist`, `online`, `possible`, `has_cpu`).
    public static func cpulist(_ text: String) throws(CPUSet.ParseError) -> CPUSet {
        try CPUSet(cpulist: text)
    }

    /// A mask file (`cpumap`, `local_cpus`).
    public static func cpumask(_ text: String) throws(CPUSet.ParseError) -> CPUSet {
        try CPUSet(hexMask: text)
    }

    /// One line of `/proc/<pid>/cgroup`: `hierarchy-id:controllers:path`.
    public struct CgroupLine: Equatable, Sendable {
        public let hierarchy: Int
        public let controllers: [Substring]
        public let path: String
    }

    public static func cgroupLines(_ text: String) -> [CgroupLine] {
        var out: [CgroupLine] = []
        for line in text.split(separator: "\n") {
            let f = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard f.count == 3, let h = Int(f[0]), f[2].hasPrefix("/"), !f[2].contains("\0"),
                  !f[2].split(separator: "/").contains("..") else { continue }
            out.append(CgroupLine(hierarchy: h, controllers: f[1].split(separator: ","), path: String(f[2])))
        }
        return out
    }

    /// A field of `/proc/<pid>/status` (`Cpus_allowed_list`, `Mems_allowed_list`).
    /// Scans the UTF-8 bytes line by line without splitting the file into an array first: the
    /// daemon reads two fields of `/proc/<pid>/status` on every spawn, and splitting (with a new
    /// `name + ":"` per line) was a tenth of its CPU under a spawn load.
    /// Over the contiguous bytes (offsets, not `String.Index` steps, which cost a tenth of the daemon's
    /// instructions per spawn: six fields a spawn, each a scan of a 1.5 kB file).
    public static func statusField(_ name: String, in text: String) -> Substring? {
        var text = text
        let key = Array(name.utf8)
        let range = text.withUTF8 { bytes -> Range<Int>? in
            var lineStart = 0
            while lineStart < bytes.count {
                var lineEnd = lineStart
                while lineEnd < bytes.count && bytes[lineEnd] != UInt8(ascii: "\n") { lineEnd += 1 }
                let colon = lineStart + key.count
                if colon < lineEnd && bytes[colon] == UInt8(ascii: ":")
                    && key.indices.allSatisfy({ bytes[lineStart + $0] == key[$0] }) {
                    return (colon + 1)..<lineEnd
                }
                lineStart = lineEnd + 1
            }
            return nil
        }
        guard let range else { return nil }
        let utf8 = text.utf8
        let lower = utf8.index(utf8.startIndex, offsetBy: range.lowerBound)
        let upper = utf8.index(lower, offsetBy: range.count)
        return text[lower..<upper].trimmingWhitespace
    }

    /// `/proc/<pid>/limits`: the soft and hard value of each row, keyed by the row's name ("Max open
    /// files"); `unlimited` is `UInt64.max`. Rows that do not parse are left out. Read rather than
    /// prlimit(2), which needs CAP_SYS_RESOURCE for another user's process; the file is world-readable.
    public static func processLimits(_ text: String) -> [String: (soft: UInt64, hard: UInt64)] {
        // Over the UTF-8 bytes, as the kernel writes them, one pass per line with nothing allocated
        // but the row's name: splitting into `Character`s (a Unicode lookup per character), and then
        // an array of fields per line, made this the costliest step of the daemon's spawn path.
        var out: [String: (soft: UInt64, hard: UInt64)] = [:]
        out.reserveCapacity(20)
        var text = text
        text.withUTF8 { bytes in
            func isSpace(_ b: UInt8) -> Bool { b == 0x20 || (0x09...0x0D).contains(b) }
            /// A value token: digits (nil on overflow) or `unlimited`; .none when it is not one at all.
            func value(_ r: Range<Int>) -> UInt64?? {
                let unlimited: StaticString = "unlimited"
                if r.count == unlimited.utf8CodeUnitCount,
                   r.indices.allSatisfy({ bytes[$0] == unlimited.utf8Start[$0 - r.lowerBound] }) {
                    return .some(UInt64.max)
                }
                var v: UInt64 = 0
                for i in r {
                    let b = bytes[i]
                    guard (0x30...0x39).contains(b) else { return .none }
                    let (m, o1) = v.multipliedReportingOverflow(by: 10)
                    let (sum, o2) = m.addingReportingOverflow(UInt64(b - 0x30))
                    if o1 || o2 { return .some(nil) }
                    v = sum
                }
                return .some(v)
            }
            var name: [UInt8] = []
            name.reserveCapacity(64)
            var sawHeader = false
            var i = 0
            while i < bytes.count {
                // One line: the name's tokens (joined by one space), then soft and hard; units ignored.
                name.removeAll(keepingCapacity: true)
                var soft: UInt64? = nil
                var row: (soft: UInt64, hard: UInt64)? = nil
                var broken = false
                var tokens = 0
                while i < bytes.count && bytes[i] != UInt8(ascii: "\n") {
                    if isSpace(bytes[i]) { i += 1; continue }
                    let start = i
                    while i < bytes.count && !isSpace(bytes[i]) { i += 1 }
                    tokens += 1
                    guard sawHeader, !broken, row == nil else { continue }
                    switch value(start..<i) {
                    case .none where soft == nil:
                        if !name.isEmpty { name.append(0x20) }
                        name.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<i]))
                    case .some(let v?) where soft == nil:
                        soft = v
                    case .some(let v?):
                        row = (soft!, v)
                    default:
                        broken = true   // an overflowing number, or a word where hard belongs
                    }
                }
                i += 1
                if tokens > 0 && !sawHeader {   // the first line is the header
                    sawHeader = true
                    continue
                }
                if let row, !name.isEmpty { out[String(decoding: name, as: UTF8.self)] = row }
            }
        }
        return out
    }

    /// The memory policy `/proc/<pid>/numa_maps` shows for the task: the policy word of its first
    /// mapping (`default`, `prefer:1`, `bind:0-1`, `interleave:0-1`, `prefer (many):0-1`, `local`).
    /// Returns the mode name of the Varlink API and the node set. nil when there is no mapping
    /// (a zombie has no memory map).
    public static func numaMapsPolicy(_ text: String) -> (mode: String, nodes: CPUSet)? {
        guard let line = text.split(separator: "\n").first else { return nil }
        let fields = line.split(separator: " ", maxSplits: 1)
        guard fields.count == 2 else { return nil }
        var policy = fields[1]
        // Two mode names hold a space (mm/mempolicy.c policy_modes[]): read them before splitting on one.
        for (name, mode) in [("prefer (many)", "preferred"), ("weighted interleave", "weighted-interleave")]
        where policy.hasPrefix(name) {
            let rest = policy.dropFirst(name.count)   // "=static:0-1 anon=1" or ":0-1 anon=1"
            let nodes = rest.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).dropFirst().first
                .map { $0.prefix(while: { $0 != " " }) } ?? ""
            return (mode, (try? CPUSet(cpulist: nodes)) ?? CPUSet())
        }
        policy = policy.prefix(while: { $0 != " " })
        let parts = policy.split(separator: ":", maxSplits: 1)
        var word = parts.first.map(String.init) ?? ""
        // Flags print as "bind=static:1"; keep only the mode.
        if let eq = word.firstIndex(of: "=") { word = String(word[..<eq]) }
        let nodes = parts.count == 2 ? ((try? CPUSet(cpulist: parts[1])) ?? CPUSet()) : CPUSet()
        switch word {
        case "default": return ("default", CPUSet())
        case "local": return ("local", CPUSet())
        case "prefer": return ("preferred", nodes)
        case "bind": return ("bind", nodes)
        case "interleave": return ("interleave", nodes)
        default: return (word, nodes)
        }
    }
}

extension Character {
    /// 0-9 only (`isNumber` also takes other scripts' digits and fractions).
    var isASCIIDigit: Bool { isASCII && isNumber }
}
