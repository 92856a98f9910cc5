/// A set of CPU (or node) numbers, stored as a bitmap of 64-bit words.
///
/// Parses and prints the kernel's two text forms: the cpulist (`0-3,8-11`, as in `cpulist`,
/// `local_cpulist`, `Cpus_allowed_list`) and the hex mask (`ffffffff,00000000`, as in `cpumap`,
/// `local_cpus`: comma-separated 32-bit words, most significant first). Sizes beyond 1024 CPUs are
/// fine; `limit` bounds what text can make us allocate.
public struct CPUSet: Hashable, Sendable, CustomStringConvertible, ExpressibleByArrayLiteral {
    /// Upper bound on a CPU number parsed from text. The kernel's NR_CPUS is at most 8192 today;
    /// 1 << 16 leaves room and keeps a hostile "0-4294967295" from allocating gigabytes.
    public static let limit = 1 << 16

    /// Words beyond the highest set bit are trimmed so that equal sets compare equal.
    public private(set) var words: [UInt64]

    public init() { words = [] }

    public init<S: Sequence>(_ cpus: S) where S.Element == Int {
        words = []
        for cpu in cpus { insert(cpu) }
    }

    public init(arrayLiteral cpus: Int...) { self.init(cpus) }

    /// Builds a set from raw words (bit i of word w is CPU 64*w + i), as `sched_getaffinity` fills them.
    public init(words: [UInt64]) {
        self.words = words
        trim()
    }

    public var isEmpty: Bool { words.allSatisfy { $0 == 0 } }
    public var count: Int { words.reduce(0) { $0 + $1.nonzeroBitCount } }
    public var first: Int? {
        for w in words.indices where words[w] != 0 {
            return w * 64 + words[w].trailingZeroBitCount
        }
        return nil
    }
    public var last: Int? {
        for w in words.indices.reversed() where words[w] != 0 {
            return w * 64 + 63 - words[w].leadingZeroBitCount
        }
        return nil
    }

    public func contains(_ cpu: Int) -> Bool {
        guard cpu >= 0 else { return false }
        let w = cpu / 64
        return w < words.count && words[w] & (1 << UInt64(cpu % 64)) != 0
    }

    /// Inserts a CPU; negative numbers are ignored.
    public mutating func insert(_ cpu: Int) {
        guard cpu >= 0 else { return }
        let w = cpu / 64
        if w >= words.count { words.append(contentsOf: repeatElement(0, count: w - words.count + 1)) }
        words[w] |= 1 << UInt64(cpu % 64)
    }

    public mutating func remove(_ cpu: Int) {
        guard cpu >= 0, cpu / 64 < words.count else { return }
        words[cpu / 64] &= ~(1 << UInt64(cpu % 64))
        trim()
    }

    /// The members in increasing order.
    public var elements: [Int] {
        var out: [Int] = []
        out.reserveCapacity(count)
        for (w, word) in words.enumerated() {
            var bits = word
            while bits != 0 {
                let b = bits.trailingZeroBitCount
                out.append(w * 64 + b)
                bits &= bits - 1
            }
        }
        return out
    }

    public func union(_ other: CPUSet) -> CPUSet {
        var r = [UInt64](repeating: 0, count: max(words.count, other.words.count))
        for i in r.indices {
            r[i] = (i < words.count ? words[i] : 0) | (i < other.words.count ? other.words[i] : 0)
        }
        return CPUSet(words: r)
    }

    public func intersection(_ other: CPUSet) -> CPUSet {
        let n = min(words.count, other.words.count)
        return CPUSet(words: (0..<n).map { words[$0] & other.words[$0] })
    }

    public func subtracting(_ other: CPUSet) -> CPUSet {
        CPUSet(words: words.indices.map { words[$0] & ~(($0 < other.words.count) ? other.words[$0] : 0) })
    }

    public func isSubset(of other: CPUSet) -> Bool { subtracting(other).isEmpty }
    public func isDisjoint(with other: CPUSet) -> Bool { intersection(other).isEmpty }

    public mutating func formUnion(_ other: CPUSet) { self = union(other) }

    private mutating func trim() {
        while let last = words.last, last == 0 { words.removeLast() }
    }

    // MARK: Text forms

    /// The cpulist form, `0-3,8-11`; the empty set prints as the empty string.
    public var cpulist: String {
        var parts: [String] = []
        var start = -1, prev = -2
        for cpu in elements {
            if cpu == prev + 1 { prev = cpu; continue }
            if start >= 0 { parts.append(start == prev ? "\(start)" : "\(start)-\(prev)") }
            start = cpu; prev = cpu
        }
        if start >= 0 { parts.append(start == prev ? "\(start)" : "\(start)-\(prev)") }
        return parts.joined(separator: ",")
    }

    public var description: String { cpulist }

    /// The hex mask form, comma-separated 32-bit words, most significant first (`00000003`).
    public var hexMask: String {
        let nwords32 = max(1, (words.count * 2))
        var chunks: [String] = []
        for i in (0..<nwords32).reversed() {
            let word = words.count > i / 2 ? words[i / 2] : 0
            let half = UInt32(truncatingIfNeeded: i % 2 == 0 ? word : word >> 32)
            let hex = String(half, radix: 16)
            chunks.append(String(repeating: "0", count: 8 - hex.count) + hex)
        }
        // Drop leading all-zero words but keep at least one, as the kernel prints the possible range.
        while chunks.count > 1, chunks.first == "00000000" { chunks.removeFirst() }
        return chunks.joined(separator: ",")
    }

    /// Why a text form could not be parsed.
    public enum ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        case empty
        case malformed(String)
        case backwardsRange(Int, Int)
        case tooLarge(Int)
        case containsNUL

        public var description: String {
            switch self {
            case .empty: return "empty"
            case .malformed(let part): return "malformed element \"\(part)\""
            case .backwardsRange(let a, let b): return "range \(a)-\(b) runs backwards"
            case .tooLarge(let n): return "CPU number \(n) exceeds \(CPUSet.limit - 1)"
            case .containsNUL: return "contains a NUL byte"
            }
        }
    }

    /// Parses a cpulist (`0-3,8-11`, `0-15:2` strides included). Surrounding whitespace is ignored.
    /// An empty (or all-whitespace) text is the empty set, as the kernel writes for a CPU-less node.
    public init(cpulist text: Substring) throws(ParseError) {
        self.init()
        if text.contains("\0") { throw .containsNUL }
        let trimmed = text.trimmingWhitespace
        if trimmed.isEmpty { return }
        // Elements are cut at commas on the UTF-8 view (a comma is one byte, so every cut is a
        // character boundary); each is read from its bytes when it is plain digits ("7", "0-3",
        // "0-15:2"), else by the general path below, which also words the errors.
        let utf8 = trimmed.utf8
        var start = utf8.startIndex
        while true {
            let end = utf8[start...].firstIndex(of: UInt8(ascii: ",")) ?? utf8.endIndex
            try parseElement(trimmed[start..<end])
            guard end != utf8.endIndex else { break }
            start = utf8.index(after: end)
        }
    }

    /// "a", "a-b" or "a-b:s" of ASCII digits only, each number at most 9 digits; nil for anything
    /// else (whitespace, signs, other characters), which the general path then judges.
    private static func plainElement(_ part: Substring) -> (lo: Int, hi: Int, stride: Int)? {
        var lo = 0, hi = 0, stride = 0
        var field = 0, digits = 0
        for b in part.utf8 {
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                digits += 1
                guard digits <= 9 else { return nil }
                let d = Int(b &- UInt8(ascii: "0"))
                switch field {
                case 0: lo = lo * 10 + d
                case 1: hi = hi * 10 + d
                default: stride = stride * 10 + d
                }
            case UInt8(ascii: "-") where field == 0 && digits > 0:
                field = 1
                digits = 0
            case UInt8(ascii: ":") where field == 1 && digits > 0:
                field = 2
                digits = 0
            default:
                return nil
            }
        }
        guard digits > 0 else { return nil }
        switch field {
        case 0: return (lo, lo, 1)
        case 1: return (lo, hi, 1)
        default: return stride > 0 ? (lo, hi, stride) : nil
        }
    }

    private mutating func parseElement(_ part: Substring) throws(ParseError) {
        if let (lo, hi, stride) = CPUSet.plainElement(part) {
            if lo >= CPUSet.limit { throw .tooLarge(lo) }
            if hi >= CPUSet.limit { throw .tooLarge(hi) }
            if hi < lo { throw .backwardsRange(lo, hi) }
            insert(from: lo, through: hi, by: stride)
            return
        }
        let p = part.trimmingWhitespace
        guard !p.isEmpty else { throw .malformed(String(part)) }
        var stride = 1
        var rangeText = p
        if let colon = p.firstIndex(of: ":") {
            // "a-b:s" (the kernel also accepts "a-b:used/group"; only the plain stride is kept here)
            guard let s = CPUSet.number(p[p.index(after: colon)...]), s > 0 else { throw .malformed(String(p)) }
            stride = s
            rangeText = p[..<colon]
        }
        let bounds = rangeText.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard let lo = CPUSet.number(bounds[0]) else {
            if let big = CPUSet.bigNumber(bounds[0]) { throw .tooLarge(big) }
            throw .malformed(String(p))
        }
        var hi = lo
        if bounds.count == 2 {
            guard let h = CPUSet.number(bounds[1]) else {
                if let big = CPUSet.bigNumber(bounds[1]) { throw .tooLarge(big) }
                throw .malformed(String(p))
            }
            hi = h
        }
        if lo >= CPUSet.limit { throw .tooLarge(lo) }
        if hi >= CPUSet.limit { throw .tooLarge(hi) }
        if hi < lo { throw .backwardsRange(lo, hi) }
        insert(from: lo, through: hi, by: stride)
    }

    /// Adds every `step`-th CPU from `lo` through `hi`, one 64-bit word at a time: a range costs
    /// the words it spans, not its CPUs. Bit by bit, a client's 1 MB cpulist of "0-65535,0-65535,…"
    /// cost billions of inserts and held the spawn path for minutes (found by the reliability suite).
    private mutating func insert(from lo: Int, through hi: Int, by step: Int) {
        guard lo >= 0, hi >= lo, step > 0 else { return }
        let lastWord = hi / 64
        if lastWord >= words.count { words.append(contentsOf: repeatElement(0, count: lastWord - words.count + 1)) }
        if lo == hi {
            // One CPU, the common element of a list: its bit makes the last word non-zero.
            words[lo / 64] |= 1 << UInt64(lo % 64)
            return
        }
        if step >= 64 {
            for cpu in Swift.stride(from: lo, through: hi, by: step) { words[cpu / 64] |= 1 << UInt64(cpu % 64) }
        } else {
            // Within a word the CPUs to set repeat with the word's phase relative to lo; at most
            // `step` phases occur, so each pattern is built once.
            var patterns = [UInt64?](repeating: nil, count: step)
            for w in (lo / 64)...lastWord {
                let base = w * 64
                let phase = ((base - lo) % step + step) % step
                let pattern: UInt64
                if let p = patterns[phase] {
                    pattern = p
                } else {
                    var p: UInt64 = 0
                    for bit in Swift.stride(from: (step - phase) % step, to: 64, by: step) { p |= 1 << UInt64(bit) }
                    patterns[phase] = p
                    pattern = p
                }
                var mask = pattern
                if base < lo { mask &= ~UInt64(0) << UInt64(lo - base) }
                if hi - base < 63 { mask &= ~UInt64(0) >> UInt64(63 - (hi - base)) }
                words[w] |= mask
            }
        }
        trim()
    }

    public init(cpulist text: String) throws(ParseError) { try self.init(cpulist: Substring(text)) }

    /// Parses a hex mask (`ff,00000000`; `0x` prefixes tolerated). Whitespace around is ignored.
    public init(hexMask text: Substring) throws(ParseError) {
        self.init()
        if text.contains("\0") { throw .containsNUL }
        let trimmed = text.trimmingWhitespace
        guard !trimmed.isEmpty else { throw .empty }
        let chunks = trimmed.split(separator: ",", omittingEmptySubsequences: false)
        guard chunks.count * 32 <= CPUSet.limit else { throw .tooLarge(chunks.count * 32) }
        var bit = 0
        for chunk in chunks.reversed() {
            var c = chunk.trimmingWhitespace
            if c.hasPrefix("0x") || c.hasPrefix("0X") { c = c.dropFirst(2) }
            // Each chunk is a 32-bit word; a single unseparated mask may be longer, so read it in 8-digit slices.
            guard !c.isEmpty, c.allSatisfy({ $0.isHexDigit }) else { throw .malformed(String(chunk)) }
            let digits = Array(c)
            let width = chunks.count == 1 ? digits.count * 4 : 32
            if chunks.count > 1 && digits.count > 8 { throw .malformed(String(chunk)) }
            for (i, d) in digits.reversed().enumerated() {
                guard let v = d.hexDigitValue else { throw .malformed(String(chunk)) }
                for b in 0..<4 where v & (1 << b) != 0 {
                    let cpu = bit + i * 4 + b
                    if cpu >= CPUSet.limit { throw .tooLarge(cpu) }
                    insert(cpu)
                }
            }
            bit += width
        }
    }

    public init(hexMask text: String) throws(ParseError) { try self.init(hexMask: Substring(text)) }

    /// A decimal number of at most 9 digits (anything longer is beyond `limit` anyway).
    private static func number(_ s: Substring) -> Int? {
        let t = s.trimmingWhitespace
        guard !t.isEmpty, t.count <= 9, t.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Int(t)
    }

    /// A long run of digits, reported as "too large" rather than "malformed".
    private static func bigNumber(_ s: Substring) -> Int? {
        let t = s.trimmingWhitespace
        guard t.count > 9, t.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Int(t.prefix(18)) ?? Int.max
    }
}

extension Substring {
    /// The text without leading and trailing spaces, tabs and newlines (Foundation-free).
    var trimmingWhitespace: Substring {
        var s = self
        // Character.isWhitespace: a "\r\n" pair is one Character, and some kernels and captures pad
        // values with it, a vertical tab or a form feed; none of them is ever part of a value.
        while let f = s.first, f.isWhitespace { s = s.dropFirst() }
        while let l = s.last, l.isWhitespace { s = s.dropLast() }
        return s
    }
}

extension String {
    var trimmingWhitespace: Substring { Substring(self).trimmingWhitespace }
}
