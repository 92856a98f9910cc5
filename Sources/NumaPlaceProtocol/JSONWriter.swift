#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A JSON text built byte by byte, for the few messages on the spawn path.
///
/// Written by hand because Foundation's `JSONEncoder` (the only JSON encoder among this project's
/// dependencies) goes through `Encodable`'s keyed containers and boxes every value, and a spawn encodes
/// a worker twice (its reply and its state-log record): a large share of the daemon's work per spawn.
/// The writers for each wire type are generated (`ManagerWriters.generated.swift`); everything else is
/// still encoded by `JSONEncoder`, and `JSONWriterTests` checks that both encodings agree.
///
/// Output: compact, keys in declaration order, `nil` optionals omitted (as synthesized `Codable`
/// does), strings escaped per RFC 8259 (`"`, `\` and the control characters; everything else is
/// copied as UTF-8, which a Swift `String` always is).
public struct JSONWriter {
    public private(set) var bytes: [UInt8]
    /// Per nesting level: whether the next member or element needs a comma before it.
    private var needsComma: [Bool] = []

    public init(capacity: Int = 512) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    // MARK: Structure

    public mutating func beginObject() {
        separate()
        bytes.append(UInt8(ascii: "{"))
        needsComma.append(false)
    }

    public mutating func endObject() {
        needsComma.removeLast()
        bytes.append(UInt8(ascii: "}"))
    }

    public mutating func beginArray() {
        separate()
        bytes.append(UInt8(ascii: "["))
        needsComma.append(false)
    }

    public mutating func endArray() {
        needsComma.removeLast()
        bytes.append(UInt8(ascii: "]"))
    }

    /// A member name; the value written next belongs to it.
    public mutating func key(_ name: StaticString) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        // Member names are this project's own identifiers: plain ASCII, nothing to escape.
        name.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
        pendingValue = true
    }

    /// True between a key and its value (which takes no comma).
    private var pendingValue = false

    /// Writes the comma before a member or element that is not the first of its container.
    private mutating func separate() {
        if pendingValue {
            pendingValue = false
            return
        }
        guard let last = needsComma.indices.last else { return }
        if needsComma[last] { bytes.append(UInt8(ascii: ",")) }
        needsComma[last] = true
    }

    // MARK: Values

    public mutating func value(_ s: String) {
        separate()
        JSONWriter.appendQuoted(s, to: &bytes)
    }

    public mutating func value(_ n: Int) {
        separate()
        bytes.append(contentsOf: String(n).utf8)
    }

    public mutating func value(_ n: UInt64) {
        separate()
        bytes.append(contentsOf: String(n).utf8)
    }

    public mutating func value(_ b: Bool) {
        separate()
        bytes.append(contentsOf: b ? Array("true".utf8) : Array("false".utf8))
    }

    /// Text that is already a JSON value (from another encoder); copied as is.
    public mutating func raw(_ json: [UInt8]) {
        separate()
        bytes.append(contentsOf: json)
    }

    public mutating func value(_ strings: [String]) {
        beginArray()
        for s in strings { value(s) }
        endArray()
    }

    public mutating func value(_ numbers: [Int]) {
        beginArray()
        for n in numbers { value(n) }
        endArray()
    }

    public mutating func value<T: JSONWritable>(_ v: T) {
        v.writeJSON(to: &self)
    }

    // MARK: Members (a key and its value; optional members are left out when nil)

    public mutating func member(_ name: StaticString, _ s: String) { key(name); value(s) }
    public mutating func member(_ name: StaticString, _ n: Int) { key(name); value(n) }
    public mutating func member(_ name: StaticString, _ b: Bool) { key(name); value(b) }
    public mutating func member(_ name: StaticString, _ a: [String]) { key(name); value(a) }
    public mutating func member(_ name: StaticString, _ a: [Int]) { key(name); value(a) }
    public mutating func member<T: JSONWritable>(_ name: StaticString, _ v: T) { key(name); value(v) }

    public mutating func member(_ name: StaticString, _ s: String?) { if let s { member(name, s) } }
    public mutating func member(_ name: StaticString, _ n: Int?) { if let n { member(name, n) } }
    public mutating func member(_ name: StaticString, _ n: UInt64?) { if let n { key(name); value(n) } }
    public mutating func member(_ name: StaticString, _ b: Bool?) { if let b { member(name, b) } }
    public mutating func member(_ name: StaticString, _ a: [String]?) { if let a { member(name, a) } }
    public mutating func member(_ name: StaticString, _ a: [Int]?) { if let a { member(name, a) } }
    public mutating func member<T: JSONWritable>(_ name: StaticString, _ v: T?) { if let v { member(name, v) } }

    // MARK: Strings

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    /// Appends `s` as a JSON string: quotes around, `"` `\` and U+0000–U+001F escaped.
    public static func appendQuoted(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { utf8 in
            var start = 0
            for i in 0..<utf8.count {
                let c = utf8[i]
                guard c < 0x20 || c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") else { continue }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start..<i]))
                out.append(UInt8(ascii: "\\"))
                switch c {
                case UInt8(ascii: "\""): out.append(UInt8(ascii: "\""))
                case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\"))
                case 0x0A: out.append(UInt8(ascii: "n"))
                case 0x0D: out.append(UInt8(ascii: "r"))
                case 0x09: out.append(UInt8(ascii: "t"))
                case 0x08: out.append(UInt8(ascii: "b"))
                case 0x0C: out.append(UInt8(ascii: "f"))
                default:
                    out.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                            hex[Int(c >> 4)], hex[Int(c & 0xF)]])
                }
                start = i + 1
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start..<utf8.count]))
        }
        out.append(UInt8(ascii: "\""))
    }
}

/// A value that writes itself with `JSONWriter` (the hot messages of the spawn path; their writers are
/// generated with the types, in `ManagerWriters.generated.swift`).
public protocol JSONWritable {
    func writeJSON(to w: inout JSONWriter)
}

extension JSONWritable {
    /// The value as compact JSON text.
    public var jsonBytes: [UInt8] {
        var w = JSONWriter()
        writeJSON(to: &w)
        return w.bytes
    }
}
