#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// A method call as received: `{"method": "io.numaplaced.Manager.Spawn", "parameters": {…}, "more": true}`.
public struct VarlinkCall: Sendable {
    /// Fully qualified method name.
    public let method: String
    public let more: Bool
    public let oneway: Bool
    public let upgrade: Bool
    /// The whole message, kept so that `parameters(as:)` can decode the typed parameters lazily.
    public let raw: Data

    /// Deeper nesting than any message of our interface needs (Spawn is 3 levels deep).
    public static let maxNestingDepth = 32

    private struct Header: Decodable {
        let method: String
        let more: Bool?
        let oneway: Bool?
        let upgrade: Bool?
    }

    private struct Wrapper<P: Decodable>: Decodable {
        let parameters: P?
    }

    /// Parses the envelope. A message that is not a JSON object with a string `method` is a
    /// protocol violation (`VarlinkProtocolError`), which ends the connection.
    public init(bytes: [UInt8]) throws(VarlinkProtocolError) {
        guard jsonNestingDepth(bytes) <= Self.maxNestingDepth else { throw .tooDeep }
        // JSON text is UTF-8 (RFC 8259 §8.1); the decoder only checks the strings it decodes, so
        // invalid bytes in a field nobody reads would otherwise pass.
        guard String(validating: bytes, as: UTF8.self) != nil else { throw .invalidJSON }
        let data = Data(bytes)
        let header: Header
        do {
            header = try JSONDecoder().decode(Header.self, from: data)
        } catch DecodingError.keyNotFound, DecodingError.typeMismatch, DecodingError.valueNotFound {
            throw .badEnvelope
        } catch {
            throw .invalidJSON
        }
        method = header.method
        more = header.more ?? false
        oneway = header.oneway ?? false
        upgrade = header.upgrade ?? false
        raw = data
    }

    public init<P: Encodable>(method: String, parameters: P, more: Bool = false, oneway: Bool = false) throws {
        self.method = method
        self.more = more
        self.oneway = oneway
        self.upgrade = false
        raw = try VarlinkCall.encode(method: method, parameters: parameters, more: more, oneway: oneway)
    }

    /// The interface part of `method` (`io.numaplaced.Manager`).
    public var interface: String {
        guard let dot = method.lastIndex(of: ".") else { return "" }
        return String(method[..<dot])
    }

    /// The member part of `method` (`Spawn`).
    public var member: String {
        guard let dot = method.lastIndex(of: ".") else { return method }
        return String(method[method.index(after: dot)...])
    }

    /// Decodes the parameters; a missing `parameters` object decodes as `{}`. A wrong type or a
    /// missing required field becomes `org.varlink.service.InvalidParameter` naming the field.
    public func parameters<P: Decodable>(as type: P.Type) throws(VarlinkError) -> P {
        do {
            if let p = try JSONDecoder().decode(Wrapper<P>.self, from: raw).parameters { return p }
            return try JSONDecoder().decode(P.self, from: Data("{}".utf8))
        } catch let DecodingError.keyNotFound(key, ctx) {
            throw .invalidParameter(Self.path(ctx.codingPath + [key]))
        } catch let DecodingError.typeMismatch(_, ctx) {
            throw .invalidParameter(Self.path(ctx.codingPath))
        } catch let DecodingError.valueNotFound(_, ctx) {
            throw .invalidParameter(Self.path(ctx.codingPath))
        } catch let DecodingError.dataCorrupted(ctx) {
            // FoundationEssentials reports a number that does not fit the field's type (1.5 or 1e99
            // for an integer) as corrupt data with no coding path. The message is valid JSON (the
            // envelope was parsed), and no member of this interface is fractional: name the first
            // non-integral number instead of "parameters".
            if ctx.codingPath.isEmpty, let path = firstNonIntegralNumber() {
                throw .invalidParameter(path)
            }
            throw .invalidParameter(Self.path(ctx.codingPath))
        } catch {
            throw .invalidParameter("parameters")
        }
    }

    /// The path (`exclusiveCores`, `argv[2]`) of the first number in the parameters that is not
    /// an integer an `Int` holds; members in key order.
    private func firstNonIntegralNumber() -> String? {
        struct Envelope: Decodable { let parameters: JSONValue? }
        guard let root = (try? JSONDecoder().decode(Envelope.self, from: raw))?.parameters else { return nil }
        func find(_ v: JSONValue, _ path: String) -> String? {
            switch v {
            case .double: return path
            case .array(let a):
                for (i, e) in a.enumerated() { if let p = find(e, path + "[\(i)]") { return p } }
                return nil
            case .object(let o):
                for key in o.keys.sorted() {
                    if let p = find(o[key]!, path.isEmpty ? key : path + "." + key) { return p }
                }
                return nil
            default:
                return nil
            }
        }
        return find(root, "")
    }

    private static func path(_ keys: [CodingKey]) -> String {
        // `argv[1]`, `requested.cpus`: an array index follows its field without a dot.
        let names = keys.filter { $0.stringValue != "parameters" }.reduce(into: "") { path, key in
            if let i = key.intValue { path += "[\(i)]" } else { path += (path.isEmpty ? "" : ".") + key.stringValue }
        }
        return names.isEmpty ? "parameters" : names
    }

    private struct Outgoing<P: Encodable>: Encodable {
        let method: String
        let parameters: P
        let more: Bool?
        let oneway: Bool?
    }

    static func encode<P: Encodable>(method: String, parameters: P, more: Bool, oneway: Bool) throws -> Data {
        // The generated writers where a type has one (the calls `numaplacectl run` makes): JSONEncoder's
        // boxing was a seventh of that whole process's instructions.
        if let writable = parameters as? any JSONWritable {
            var w = JSONWriter(capacity: 256)
            w.beginObject()
            w.member("method", method)
            w.key("parameters")
            writable.writeJSON(to: &w)
            if more { w.member("more", true) }
            if oneway { w.member("oneway", true) }
            w.endObject()
            return Data(w.bytes)
        }
        return try JSONEncoder().encode(Outgoing(method: method, parameters: parameters, more: more ? true : nil,
                                                 oneway: oneway ? true : nil))
    }
}

/// A message that breaks the framing or the envelope; the connection is closed after it.
public enum VarlinkProtocolError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidJSON
    case badEnvelope
    case tooDeep

    public var description: String {
        switch self {
        case .invalidJSON: return "message is not valid JSON (or not UTF-8)"
        case .badEnvelope: return "message is not an object with a string \"method\""
        case .tooDeep: return "message nests deeper than \(VarlinkCall.maxNestingDepth) levels"
        }
    }
}

/// A typed Varlink error reply: `{"error": "io.numaplaced.Manager.NoSuchDevice", "parameters": {…}}`.
public struct VarlinkError: Error, Hashable, Sendable, CustomStringConvertible {
    public let name: String
    public let parameters: [String: JSONValue]

    public init(_ name: String, _ parameters: [String: JSONValue] = [:]) {
        self.name = name
        self.parameters = parameters
    }

    public var description: String {
        let short = name.split(separator: ".").last.map(String.init) ?? name
        let details = parameters.sorted { $0.key < $1.key }.map { k, v -> String in
            switch v {
            case .string(let s): return "\(k)=\(s)"
            case .int(let i): return "\(k)=\(i)"
            default: return "\(k)=…"
            }
        }
        return details.isEmpty ? short : "\(short): " + details.joined(separator: ", ")
    }

    // org.varlink.service errors (varlink.org "Service" interface).
    public static func interfaceNotFound(_ interface: String) -> VarlinkError {
        VarlinkError("org.varlink.service.InterfaceNotFound", ["interface": .string(interface)])
    }
    public static func methodNotFound(_ method: String) -> VarlinkError {
        VarlinkError("org.varlink.service.MethodNotFound", ["method": .string(method)])
    }
    public static func methodNotImplemented(_ method: String) -> VarlinkError {
        VarlinkError("org.varlink.service.MethodNotImplemented", ["method": .string(method)])
    }
    public static func invalidParameter(_ parameter: String) -> VarlinkError {
        VarlinkError("org.varlink.service.InvalidParameter", ["parameter": .string(parameter)])
    }
    public static let expectedMore = VarlinkError("org.varlink.service.ExpectedMore")
    public static let permissionDenied = VarlinkError("org.varlink.service.PermissionDenied")
}

/// Encodes replies. One place so that every reply has the same shape.
public enum VarlinkReply {
    private struct Reply<P: Encodable>: Encodable {
        let parameters: P
        let continues: Bool?
    }

    private struct ErrorReply: Encodable {
        let error: String
        let parameters: [String: JSONValue]
    }

    /// `{"parameters": …[, "continues": true]}` followed by the NUL terminator.
    public static func encode<P: Encodable>(_ parameters: P, continues: Bool = false) throws -> [UInt8] {
        if let writable = parameters as? any JSONWritable {
            var w = JSONWriter()
            w.beginObject()
            w.key("parameters")
            writable.writeJSON(to: &w)
            if continues { w.member("continues", true) }
            w.endObject()
            return w.bytes + [0]
        }
        var bytes = [UInt8](try JSONEncoder().encode(Reply(parameters: parameters, continues: continues ? true : nil)))
        bytes.append(0)
        return bytes
    }

    public static func encode(error: VarlinkError) -> [UInt8] {
        var bytes = (try? [UInt8](JSONEncoder().encode(ErrorReply(error: error.name, parameters: error.parameters))))
            ?? Array(#"{"error":"org.varlink.service.InvalidParameter","parameters":{}}"#.utf8)
        bytes.append(0)
        return bytes
    }
}

/// An empty parameter or reply object, `{}`.
public struct Empty: Codable, Hashable, Sendable {
    public init() {}
}
