#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import NumaPlaceSyscall

/// A blocking Varlink client over a Unix stream socket, for numaplacectl, benchmarks and tests.
///
/// Written by hand on purpose: a command-line client makes one call (or follows one stream) and exits,
/// so an event-loop group (threads, start-up cost) would be all overhead; the framing itself is the
/// shared `VarlinkFramer`.
public final class VarlinkClient {
    public enum ClientError: Error, CustomStringConvertible {
        case connect(path: String, errno: Errno)
        case io(errno: Errno)
        case closed
        case protocolViolation(String)
        case remote(VarlinkError)

        public var description: String {
            switch self {
            case .connect(let path, let e): return "cannot connect to \(path): \(e)"
            case .io(let e): return "socket error: \(e)"
            case .closed: return "the daemon closed the connection"
            case .protocolViolation(let why): return "protocol violation: \(why)"
            case .remote(let e): return e.description
            }
        }
    }

    public let path: String
    private let fd: Int32
    private var framer = VarlinkFramer(maxMessageBytes: 64 << 20)
    private var pending: [[UInt8]] = []
    /// Reused for every recv (a fresh zeroed 64 KiB per reply showed in profiles).
    private var buffer = [UInt8](repeating: 0, count: 65536)

    public init(path: String) throws(ClientError) {
        self.path = path
        do {
            fd = try UnixSocketIO.connect(path: path)
        } catch {
            throw .connect(path: path, errno: error)
        }
    }

    deinit { close(fd) }

    /// Sends raw bytes (tests use this to send hostile input), with `descriptors` attached to the
    /// first byte (SCM_RIGHTS): the daemon reads them as belonging to the message those bytes hold.
    public func send(raw bytes: [UInt8], descriptors: [Int32] = []) throws(ClientError) {
        do {
            try UnixSocketIO.sendAll(fd, bytes, descriptors: descriptors)
        } catch {
            throw .io(errno: error)
        }
    }

    /// Reads the next reply message (without its NUL).
    public func receiveRaw() throws(ClientError) -> [UInt8] {
        while pending.isEmpty {
            let n: Int
            do {
                n = try Syscall.retrying { buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) } }
            } catch {
                throw .io(errno: error)
            }
            if n == 0 { throw .closed }
            do {
                pending.append(contentsOf: try framer.push(buffer[0..<n]))
            } catch {
                throw .protocolViolation(error.description)
            }
        }
        return pending.removeFirst()
    }

    /// A reply decoded in one pass: `parameters` is read as `R`, or as an error's parameters when
    /// `error` is present. (Reading it first as an error envelope and then again as `R` parsed every
    /// reply twice and built a tree of its parameters on the way, half of a client's CPU per call.)
    private struct Envelope<R: Decodable>: Decodable {
        var error: String?
        var errorParameters: [String: JSONValue]?
        var parameters: R?
        var continues: Bool?

        enum CodingKeys: String, CodingKey { case error, parameters, continues }

        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            error = try c.decodeIfPresent(String.self, forKey: .error)
            continues = try c.decodeIfPresent(Bool.self, forKey: .continues)
            if error != nil {
                errorParameters = try? c.decodeIfPresent([String: JSONValue].self, forKey: .parameters)
            } else {
                parameters = try c.decodeIfPresent(R.self, forKey: .parameters)
            }
        }
    }

    /// Decodes one reply; an error reply throws `.remote`.
    public func receive<R: Decodable>(_ type: R.Type) throws(ClientError) -> (reply: R, continues: Bool) {
        let bytes = try receiveRaw()
        let env: Envelope<R>
        do {
            env = try JSONDecoder().decode(Envelope<R>.self, from: Data(bytes))
        } catch {
            throw .protocolViolation("cannot decode reply: \(error)")
        }
        if let name = env.error {
            throw .remote(VarlinkError(name, env.errorParameters ?? [:]))
        }
        if let p = env.parameters { return (p, env.continues ?? false) }
        do {
            return (try JSONDecoder().decode(R.self, from: Data("{}".utf8)), env.continues ?? false)
        } catch {
            throw .protocolViolation("cannot decode reply: \(error)")
        }
    }

    /// Calls `method` and returns its single reply.
    public func call<P: Encodable, R: Decodable>(_ method: String, _ parameters: P, as type: R.Type,
                                                 descriptors: [Int32] = []) throws(ClientError) -> R {
        try sendCall(method, parameters, more: false, descriptors: descriptors)
        return try receive(R.self).reply
    }

    /// Calls `method` with `more` and hands each reply to `body` until the server stops
    /// continuing or `body` returns false.
    public func stream<P: Encodable, R: Decodable>(_ method: String, _ parameters: P, as type: R.Type,
                                                     _ body: (R) throws -> Bool) throws {
        try sendCall(method, parameters, more: true)
        while true {
            let (reply, continues) = try receive(R.self)
            if try !body(reply) || !continues { return }
        }
    }

    public func sendCall<P: Encodable>(_ method: String, _ parameters: P, more: Bool = false,
                                       oneway: Bool = false, descriptors: [Int32] = []) throws(ClientError) {
        let call: VarlinkCall
        do {
            call = try VarlinkCall(method: method, parameters: parameters, more: more, oneway: oneway)
        } catch {
            throw .protocolViolation("cannot encode call: \(error)")
        }
        var bytes = [UInt8](call.raw)
        bytes.append(0)
        try send(raw: bytes, descriptors: descriptors)
    }

    /// Waits until the socket is readable or `timeoutMilliseconds` pass; true when readable.
    public func waitReadable(timeoutMilliseconds: Int32) -> Bool {
        if !pending.isEmpty { return true }
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, timeoutMilliseconds) > 0
    }

    /// The raw descriptor (for poll loops in tests).
    public var fileDescriptor: Int32 { fd }
}
