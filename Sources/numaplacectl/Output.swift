#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import NumaPlaceProtocol
import NumaPlaceSyscall

/// Writing to stdout and stderr. stdout is flushed after every write so that a `monitor` piped into
/// another program delivers each event as it happens.
enum Output {
    static func line(_ text: String = "") {
        write(text + "\n", to: 1)
    }

    static func error(_ text: String) {
        write("numaplacectl: \(text)\n", to: 2)
    }

    static func write(_ text: String, to fd: Int32) {
        // A failure is a closed pipe: nobody is reading, nothing to report to.
        try? Syscall.writeAll(fd, Array(text.utf8))
    }

    /// The reply parameters, pretty-printed with sorted keys (what `--json` prints).
    static func json(_ value: JSONValue) {
        line(encode(value, pretty: true))
    }

    /// One compact JSON object on one line (what `monitor --json` prints per event).
    static func jsonLine(_ value: JSONValue) {
        line(encode(value, pretty: false))
    }

    /// JSON text with sorted keys: pretty (two-space indent, `"key": value`, `[]` for empty) or
    /// compact. Written by hand because Foundation's pretty printer breaks empty arrays over lines.
    static func encode(_ value: JSONValue, pretty: Bool) -> String {
        var out = ""
        append(value, to: &out, pretty: pretty, indent: "")
        return out
    }

    private static func append(_ value: JSONValue, to out: inout String, pretty: Bool, indent: String) {
        switch value {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d): out += d.isFinite ? "\(d)" : "null"
        case .string(let s): appendString(s, to: &out)
        case .array(let items):
            guard !items.isEmpty else { out += "[]"; return }
            let inner = indent + "  "
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                if pretty { out += "\n" + inner }
                append(item, to: &out, pretty: pretty, indent: inner)
            }
            out += pretty ? "\n" + indent + "]" : "]"
        case .object(let fields):
            guard !fields.isEmpty else { out += "{}"; return }
            let inner = indent + "  "
            out += "{"
            for (i, key) in fields.keys.sorted().enumerated() {
                if i > 0 { out += "," }
                if pretty { out += "\n" + inner }
                appendString(key, to: &out)
                out += pretty ? ": " : ":"
                append(fields[key] ?? .null, to: &out, pretty: pretty, indent: inner)
            }
            out += pretty ? "\n" + indent + "}" : "}"
        }
    }

    /// RFC 8259 string escaping, as the daemon writes it (`JSONWriter.appendQuoted`).
    private static func appendString(_ s: String, to out: inout String) {
        var bytes: [UInt8] = []
        JSONWriter.appendQuoted(s, to: &bytes)
        out += String(decoding: bytes, as: UTF8.self)
    }
}

/// An aligned table: columns padded to their widest cell, two spaces apart, the last not padded.
struct Table {
    let headers: [String]
    var rows: [[String]] = []

    init(_ headers: String...) { self.headers = headers }

    mutating func add(_ cells: String...) { rows.append(cells) }
    mutating func add(_ cells: [String]) { rows.append(cells) }

    var rendered: [String] {
        let all = [headers] + rows
        var widths = [Int](repeating: 0, count: headers.count)
        for row in all {
            for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
        }
        return all.map { row in
            var line = ""
            for (i, cell) in row.enumerated() where i < widths.count {
                let last = i == widths.count - 1
                line += last ? cell : cell + String(repeating: " ", count: widths[i] - cell.count + 2)
            }
            while line.hasSuffix(" ") { line.removeLast() }
            return line
        }
    }

    func print() {
        for l in rendered { Output.line(l) }
    }
}
