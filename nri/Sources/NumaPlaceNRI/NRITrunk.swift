#if canImport(Glibc)
import Glibc
#endif
import NumaPlaceSyscall
import NumaPlaceProtocol

/// Why the trunk to the runtime failed.
public enum NRIConnectionError: Error, Hashable, Sendable, CustomStringConvertible {
    case connect(path: String, errno: Errno)
    case io(errno: Errno)
    /// The runtime closed the socket (between frames).
    case closed
    case mux(MuxFramingError)
    case ttrpc(connection: UInt32, TTRPCFramingError)
    /// A message that decodes but breaks the protocol (a response to a call never made, a bad payload).
    case protocolViolation(String)
    /// The runtime answered RegisterPlugin with an error.
    case registrationRefused(TTRPCStatus)
    case registrationTimedOut

    public var description: String {
        switch self {
        case .connect(let path, let e): return "cannot connect to \(path): \(e)"
        case .io(let e): return "NRI socket error: \(e)"
        case .closed: return "the runtime closed the NRI connection"
        case .mux(let e): return e.description
        case .ttrpc(let c, let e): return "connection \(c): \(e)"
        case .protocolViolation(let why): return "protocol violation: \(why)"
        case .registrationRefused(let s): return "the runtime refused the registration: \(s.message)"
        case .registrationTimedOut: return "the runtime did not answer RegisterPlugin"
        }
    }
}

/// The one Unix socket to the runtime, with its two multiplexed ttrpc streams. Blocking, driven by
/// one thread; reads are bounded by the framers' limits.
public final class NRITrunk {
    private let fd: Int32
    private var mux = MuxFramer()
    private var streams: [UInt32: TTRPCFramer] = [
        MuxConnection.pluginService.rawValue: TTRPCFramer(), MuxConnection.runtimeService.rawValue: TTRPCFramer(),
    ]
    private var pending: [(MuxConnection, TTRPCFrame)] = []
    private var buffer = [UInt8](repeating: 0, count: 65536)

    /// Connects to the runtime's NRI socket (`/var/run/nri/nri.sock`).
    public init(connectingTo path: String) throws(NRIConnectionError) {
        do {
            fd = try UnixSocketIO.connect(path: path)
        } catch {
            throw .connect(path: path, errno: error)
        }
    }

    /// Takes ownership of a connected stream socket (a socketpair end in tests).
    public init(adopting descriptor: Int32) {
        fd = descriptor
    }

    deinit { close(fd) }

    /// Writes one ttrpc frame as one multiplexed chunk.
    public func send(_ frame: TTRPCFrame, on connection: MuxConnection) throws(NRIConnectionError) {
        let chunk: [UInt8]
        do {
            chunk = try MuxChunk(connection: connection.rawValue, payload: try frame.encoded()).encoded()
        } catch let e as TTRPCFramingError {
            throw .ttrpc(connection: connection.rawValue, e)
        } catch let e as MuxFramingError {
            throw .mux(e)
        } catch {
            throw .protocolViolation("\(error)")
        }
        do {
            try Syscall.transferAll(chunk) { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        } catch {
            throw .io(errno: error)
        }
    }

    /// The next whole frame and the connection it came on; nil when `timeoutMilliseconds` passed first
    /// (negative: wait for ever). Chunks for connections other than 1 and 2 are dropped, as mux.go does.
    public func receive(timeoutMilliseconds: Int32) throws(NRIConnectionError) -> (MuxConnection, TTRPCFrame)? {
        while pending.isEmpty {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready: Int32
            do {
                ready = try Syscall.retrying { poll(&p, 1, timeoutMilliseconds) }
            } catch {
                throw .io(errno: error)
            }
            if ready == 0 { return nil }
            let n: Int
            do {
                n = try Syscall.retrying { buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) } }
            } catch {
                throw .io(errno: error)
            }
            if n == 0 { try endOfStream() }
            let chunks: [MuxChunk]
            do { chunks = try mux.push(buffer[0..<n]) } catch { throw .mux(error) }
            for chunk in chunks {
                guard let connection = MuxConnection(rawValue: chunk.connection) else { continue }
                do {
                    for frame in try streams[chunk.connection, default: TTRPCFramer()].push(chunk.payload) {
                        pending.append((connection, frame))
                    }
                } catch {
                    throw .ttrpc(connection: chunk.connection, error)
                }
            }
        }
        return pending.removeFirst()
    }

    /// At end of stream: a chunk or frame cut short is reported as such; a clean end as `.closed`.
    private func endOfStream() throws(NRIConnectionError) -> Never {
        do { try mux.finish() } catch { throw .mux(error) }
        for (id, framer) in streams.sorted(by: { $0.key < $1.key }) {
            do { try framer.finish() } catch { throw .ttrpc(connection: id, error) }
        }
        throw .closed
    }
}
