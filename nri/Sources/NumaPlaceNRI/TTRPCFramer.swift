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
    private var stream = LengthPrefixedStream(headerLength: TTRPCFrame.headerLength, lengthOffset: 0)

    public init() {}

    /// Bytes held that do not yet form a whole frame.
    public var pendingBytes: Int { stream.pendingBytes }

    public mutating func push<C: Collection>(_ bytes: C) throws(TTRPCFramingError) -> [TTRPCFrame] where C.Element == UInt8 {
        var frames: [TTRPCFrame] = []
        try stream.push(bytes, check: { (header, length) throws(TTRPCFramingError) in
            guard length <= TTRPCFrame.maxPayloadLength else { throw .oversize(length: length) }
            let type = header[header.startIndex + 8]
            guard TTRPCMessageType(rawValue: type) != nil else { throw .unknownType(type) }
        }, take: { header, payload in
            // The type was checked above.
            frames.append(TTRPCFrame(streamID: readBigEndian(header, at: 4),
                                     type: TTRPCMessageType(rawValue: header[header.startIndex + 8]) ?? .request,
                                     flags: header[header.startIndex + 9], payload: Array(payload)))
        })
        return frames
    }

    /// Call at end of stream: throws `.truncated` when a frame was begun and not finished.
    public func finish() throws(TTRPCFramingError) {
        if let (have, need) = stream.unfinished { throw .truncated(have: have, need: need) }
    }
}

/// What TTRPCFramer and MuxFramer share: a byte stream of records, each a fixed header that holds the
/// payload's length (UInt32, big-endian, at `lengthOffset`), then the payload. Bytes are appended as they
/// come and whole records taken from the front; the unfinished tail is kept, at most one record's header
/// and the payload its checked length allows (plus the bytes of the last push).
struct LengthPrefixedStream: Sendable {
    let headerLength: Int
    let lengthOffset: Int
    private var buffer: [UInt8] = []

    init(headerLength: Int, lengthOffset: Int) {
        self.headerLength = headerLength
        self.lengthOffset = lengthOffset
    }

    var pendingBytes: Int { buffer.count }

    /// Appends `bytes` and hands each whole record's header and payload to `take`, in order. `check` sees
    /// each header and its length as soon as the header is whole, before the payload is awaited; what it
    /// throws ends the push (and the stream: nothing says where a next record would start).
    mutating func push<C: Collection, E: Error>(
        _ bytes: C, check: (ArraySlice<UInt8>, UInt32) throws(E) -> Void,
        take: (ArraySlice<UInt8>, ArraySlice<UInt8>) -> Void
    ) throws(E) where C.Element == UInt8 {
        buffer.append(contentsOf: bytes)
        var start = 0
        while buffer.count - start >= headerLength {
            let header = buffer[start..<(start + headerLength)]
            let length = readBigEndian(header, at: lengthOffset)
            try check(header, length)
            let end = start + headerLength + Int(length)
            guard buffer.count >= end else { break }
            take(header, buffer[(start + headerLength)..<end])
            start = end
        }
        buffer.removeFirst(start)
    }

    /// At end of stream: nil when no record was begun, else the bytes held and those the begun record needs.
    var unfinished: (have: Int, need: Int)? {
        guard !buffer.isEmpty else { return nil }
        let need = buffer.count >= headerLength ? headerLength + Int(readBigEndian(buffer, at: lengthOffset)) : headerLength
        return (buffer.count, need)
    }
}

func appendBigEndian(_ value: UInt32, to out: inout [UInt8]) {
    out.append(UInt8(truncatingIfNeeded: value >> 24))
    out.append(UInt8(truncatingIfNeeded: value >> 16))
    out.append(UInt8(truncatingIfNeeded: value >> 8))
    out.append(UInt8(truncatingIfNeeded: value))
}

/// The UInt32 at `offset` from the start of `bytes` (an array or a slice of one).
func readBigEndian<C: RandomAccessCollection>(_ bytes: C, at offset: Int) -> UInt32 where C.Element == UInt8, C.Index == Int {
    let i = bytes.startIndex + offset
    return UInt32(bytes[i]) << 24 | UInt32(bytes[i + 1]) << 16 | UInt32(bytes[i + 2]) << 8 | UInt32(bytes[i + 3])
}
