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

/// One reply: its parameters as sent (for `--json`, printed exactly) and whether more follow.
struct Reply {
    let parameters: JSONValue
    let continues: Bool

    /// The parameters as a typed wire value (for the tables).
    func decode<R: Decodable>(_ type: R.Type) throws(CtlError) -> R {
        do {
            return try JSONDecoder().decode(R.self, from: JSONEncoder().encode(parameters))
        } catch {
            throw .protocolViolation("cannot read the \(R.self) reply: \(error)")
        }
    }
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
        let envelope: JSONValue
        do {
            envelope = try JSONDecoder().decode(JSONValue.self, from: Data(bytes))
        } catch {
            throw .protocolViolation("not JSON: \(error)")
        }
        guard case .object(let fields) = envelope else { throw .protocolViolation("a reply that is not an object") }
        if let e = fields["error"] {
            guard case .string(let name) = e else { throw .protocolViolation("an error name that is not a string") }
            var params: [String: JSONValue] = [:]
            if case .object(let p)? = fields["parameters"] { params = p }
            throw .remote(VarlinkError(name, params))
        }
        let parameters = fields["parameters"] ?? .object([:])
        guard case .object = parameters else { throw .protocolViolation("parameters that are not an object") }
        var continues = false
        if case .bool(true)? = fields["continues"] { continues = true }
        return Reply(parameters: parameters, continues: continues)
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
