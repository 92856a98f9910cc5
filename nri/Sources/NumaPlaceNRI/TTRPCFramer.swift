// ttrpc's framing, written here by hand: containerd/ttrpc has Go and Rust implementations only (no Swift
// library exists, and gRPC-Swift speaks HTTP/2, which ttrpc deliberately is not). The frame is small and
// fixed (channel.go): a 10-byte header — payload length (UInt32, big-endian), stream id (UInt32,
// big-endian), message type (1 request, 2 response, 3 data), flags — then the payload, a protobuf
// `ttrpc.Request` or `ttrpc.Response`. ttrpc refuses payloads over 4 MiB (`messageLengthMax`); so do we.

/// The message types of ttrpc's channel.go. Type 3 (stream data) belongs to ttrpc's streaming calls,
/// which NRI does not use; a frame of that or any other type is refused as `.unknownType`.
public enum TTRPCMessageType: UInt8, Sendable {
    case request = 1
    case response = 2
}

/// One ttrpc frame.
public struct TTRPCFrame: Hashable, Sendable {
    public static let headerLength = 10
    /// ttrpc's `messageLengthMax`.
    public static let maxPayloadLength = 4 << 20

    public var streamID: UInt32
    public var type: TTRPCMessageType
    public var flags: UInt8
    public var payload: [UInt8]

    public init(streamID: UInt32, type: TTRPCMessageType, flags: UInt8 = 0, payload: [UInt8]) {
        self.streamID = streamID
        self.type = type
        self.flags = flags
        self.payload = payload
    }

    /// Header and payload, ready to write.
    public func encoded() throws(TTRPCFramingError) -> [UInt8] {
        guard payload.count <= Self.maxPayloadLength else { throw .oversize(length: UInt32(clamping: payload.count)) }
        var out: [UInt8] = []
        out.reserveCapacity(Self.headerLength + payload.count)
        appendBigEndian(UInt32(payload.count), to: &out)
        appendBigEndian(streamID, to: &out)
        out.append(type.rawValue)
        out.append(flags)
        out.append(contentsOf: payload)
        return out
    }
}

/// Why a byte stream is not a sequence of ttrpc frames. Each is fatal for the connection: after a bad
/// header nothing says where the next frame starts.
public enum TTRPCFramingError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A header announced more than `TTRPCFrame.maxPayloadLength` bytes.
    case oversize(length: UInt32)
    /// A header carried a message type other than request or response.
    case unknownType(UInt8)
    /// The stream ended inside a frame: `have` of the `need` bytes the frame announced had arrived.
    case truncated(have: Int, need: Int)

    public var description: String {
        switch self {
        case .oversize(let n): return "ttrpc frame of \(n) bytes exceeds the \(TTRPCFrame.maxPayloadLength)-byte limit"
        case .unknownType(let t): return "ttrpc frame of unknown message type \(t)"
        case .truncated(let have, let need): return "stream ended inside a ttrpc frame (\(have) of \(need) bytes)"
        }
    }
}

/// Splits a byte stream into ttrpc frames. Feed it whatever arrived (frames split anywhere, several at
/// once); it keeps the unfinished tail. The header is checked before the payload is awaited, so an
/// oversize or unknown frame is refused without buffering its announced length.
public struct TTRPCFramer: Sendable {
    private var buffer: [UInt8] = []

    public init() {}

    /// Bytes held that do not yet form a whole frame.
    public var pendingBytes: Int { buffer.count }

    public mutating func push<C: Collection>(_ bytes: C) throws(TTRPCFramingError) -> [TTRPCFrame] where C.Element == UInt8 {
        buffer.append(contentsOf: bytes)
        var frames: [TTRPCFrame] = []
        var start = 0
        while buffer.count - start >= TTRPCFrame.headerLength {
            let length = readBigEndian(buffer, at: start)
            guard length <= TTRPCFrame.maxPayloadLength else { throw .oversize(length: length) }
            guard let type = TTRPCMessageType(rawValue: buffer[start + 8]) else { throw .unknownType(buffer[start + 8]) }
            let total = TTRPCFrame.headerLength + Int(length)
            guard buffer.count - start >= total else { break }
            let body = start + TTRPCFrame.headerLength
            frames.append(TTRPCFrame(streamID: readBigEndian(buffer, at: start + 4), type: type,
                                     flags: buffer[start + 9], payload: Array(buffer[body..<(start + total)])))
            start += total
        }
        buffer.removeFirst(start)
        return frames
    }

    /// Call at end of stream: throws `.truncated` when a frame was begun and not finished.
    public func finish() throws(TTRPCFramingError) {
        guard !buffer.isEmpty else { return }
        let need = buffer.count >= TTRPCFrame.headerLength
            ? TTRPCFrame.headerLength + Int(readBigEndian(buffer, at: 0)) : TTRPCFrame.headerLength
        throw .truncated(have: buffer.count, need: need)
    }
}

func appendBigEndian(_ value: UInt32, to out: inout [UInt8]) {
    out.append(UInt8(truncatingIfNeeded: value >> 24))
    out.append(UInt8(truncatingIfNeeded: value >> 16))
    out.append(UInt8(truncatingIfNeeded: value >> 8))
    out.append(UInt8(truncatingIfNeeded: value))
}

func readBigEndian(_ bytes: [UInt8], at i: Int) -> UInt32 {
    UInt32(bytes[i]) << 24 | UInt32(bytes[i + 1]) << 16 | UInt32(bytes[i + 2]) << 8 | UInt32(bytes[i + 3])
}
