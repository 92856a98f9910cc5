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

/// One reply, kept as the bytes the daemon sent: decoded straight into the type a command wants, or
/// into a `JSONValue` only for `--json`. (Decoding every reply into a `JSONValue` first, then encoding
/// and decoding it again, was 5.1 M of the 8.9 M instructions `numaplacectl run` spent in all:
/// `JSONValue`'s decoder tries each JSON type in turn, and each miss throws.)
struct Reply {
    let bytes: [UInt8]
    let continues: Bool

    private struct Typed<R: Decodable>: Decodable { let parameters: R? }

    /// The parameters as sent (for `--json`, printed exactly). `next()` checked they are an object.
    var parameters: JSONValue {
        (try? JSONDecoder().decode(Typed<JSONValue>.self, from: Data(bytes)))?.parameters ?? .object([:])
    }

    /// The parameters as a typed wire value (for the tables); a reply without parameters decodes as `{}`.
    func decode<R: Decodable>(_ type: R.Type) throws(CtlError) -> R {
        do {
            if let p = try JSONDecoder().decode(Typed<R>.self, from: Data(bytes)).parameters { return p }
            return try JSONDecoder().decode(R.self, from: Data("{}".utf8))
        } catch {
            throw .protocolViolation("cannot read the \(R.self) reply: \(error)")
        }
    }
}

/// What `next()` reads of every reply before a command decodes it: whether it is an error, whether
/// more follow, and that its parameters are an object (without decoding their members).
private struct ReplyHeader: Decodable {
    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
    struct AnObject: Decodable {
        init(from decoder: Decoder) throws { _ = try decoder.container(keyedBy: AnyKey.self) }
    }
    let error: String?
    let continues: Bool?
    let parameters: AnObject?
}

/// A connection to the daemon that makes calls of `io.numaplaced.Manager` and maps every failure to
/// a `CtlError` (and so to an exit code). Built on the blocking `VarlinkClient`; the replies are read
/// raw so that `--json` prints what the daemon sent, not what our types kept of it.
final class ManagerSession {
    let path: String
    private let client: VarlinkClient

    init(path: String) throws(CtlError) {
        self.path = path
        do {
            client = try VarlinkClient(path: path)
        } catch {
            switch error {
            case .connect(_, let e) where e == .permissionDenied || e == .notPermitted: throw .socketPermission(path: path, errno: e)
            case .connect(_, let e): throw .unreachable(path: path, errno: e)
            default: throw .connectionLost(error.description)
            }
        }
    }

    /// Calls `Manager.<member>` and returns its (first) reply.
    func call<P: Encodable>(_ member: String, _ parameters: P, more: Bool = false,
                            descriptors: [Int32] = []) throws(CtlError) -> Reply {
        do {
            try client.sendCall("\(Manager.interface).\(member)", parameters, more: more, descriptors: descriptors)
        } catch {
            throw Self.map(error)
        }
        return try next()
    }

    func call(_ member: String) throws(CtlError) -> Reply { try call(member, Empty()) }

    /// The next reply of a streaming call.
    func next() throws(CtlError) -> Reply {
        let bytes: [UInt8]
        do { bytes = try client.receiveRaw() } catch { throw Self.map(error) }
        let header: ReplyHeader
        do {
            header = try JSONDecoder().decode(ReplyHeader.self, from: Data(bytes))
        } catch DecodingError.typeMismatch(_, let context) {
            throw .protocolViolation(context.codingPath.isEmpty ? "a reply that is not an object"
                                     : "a reply whose \(context.codingPath.map(\.stringValue).joined(separator: ".")) has the wrong type")
        } catch {
            throw .protocolViolation("not JSON: \(error)")
        }
        if let name = header.error {
            struct ErrorParameters: Decodable { let parameters: [String: JSONValue]? }
            let params = (try? JSONDecoder().decode(ErrorParameters.self, from: Data(bytes)))?.parameters ?? [:]
            throw .remote(VarlinkError(name, params))
        }
        return Reply(bytes: bytes, continues: header.continues ?? false)
    }

    private static func map(_ error: VarlinkClient.ClientError) -> CtlError {
        switch error {
        case .connect(let path, let e): return .unreachable(path: path, errno: e)
        case .io(let e): return .connectionLost(e.description)
        case .closed: return .connectionLost("the daemon closed the connection")
        case .protocolViolation(let why): return .protocolViolation(why)
        case .remote(let e): return .remote(e)
        }
    }
}
