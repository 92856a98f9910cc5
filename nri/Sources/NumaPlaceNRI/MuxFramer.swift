// NRI's connection multiplexer (containerd/nri pkg/net/multiplex/mux.go), by hand for the same reason as
// TTRPCFramer: no Swift implementation exists. One Unix socket (the "trunk") carries two byte streams in
// both directions: connection 1, where the plugin serves the `Plugin` service and the runtime calls it,
// and connection 2, where the runtime serves `Runtime` (RegisterPlugin) and the plugin calls it. Each
// chunk of a stream travels as an 8-byte header — connection id (UInt32, big-endian), length (UInt32,
// big-endian) — and the chunk. A chunk is a piece of a stream, not a ttrpc frame: frames are reassembled
// per connection by TTRPCFramer.

/// The connection ids of multiplex/ttrpc.go.
public enum MuxConnection: UInt32, Sendable {
    /// The plugin's service: the runtime's requests arrive here and our responses leave here.
    case pluginService = 1
    /// The runtime's service: our requests leave here and the runtime's responses arrive here.
    case runtimeService = 2
}

public struct MuxChunk: Hashable, Sendable {
    public static let headerLength = 8
    /// mux.go's `maxPayloadSize`.
    public static let maxPayloadLength = 1 << 24

    /// The raw id: chunks for connections neither side opened are dropped, as mux.go drops them.
    public var connection: UInt32
    public var payload: [UInt8]

    public init(connection: UInt32, payload: [UInt8]) {
        self.connection = connection
        self.payload = payload
    }

    public func encoded() throws(MuxFramingError) -> [UInt8] {
        guard payload.count <= Self.maxPayloadLength else { throw .oversize(length: UInt32(clamping: payload.count)) }
        var out: [UInt8] = []
        out.reserveCapacity(Self.headerLength + payload.count)
        appendBigEndian(connection, to: &out)
        appendBigEndian(UInt32(payload.count), to: &out)
        out.append(contentsOf: payload)
        return out
    }
}

public enum MuxFramingError: Error, Hashable, Sendable, CustomStringConvertible {
    case oversize(length: UInt32)
    case truncated(have: Int, need: Int)

    public var description: String {
        switch self {
        case .oversize(let n): return "multiplexed chunk of \(n) bytes exceeds the \(MuxChunk.maxPayloadLength)-byte limit"
        case .truncated(let have, let need): return "trunk ended inside a multiplexed chunk (\(have) of \(need) bytes)"
        }
    }
}

/// Splits the trunk's bytes into chunks; like TTRPCFramer it checks a header before awaiting its payload.
public struct MuxFramer: Sendable {
    private var stream = LengthPrefixedStream(headerLength: MuxChunk.headerLength, lengthOffset: 4)

    public init() {}

    public mutating func push<C: Collection>(_ bytes: C) throws(MuxFramingError) -> [MuxChunk] where C.Element == UInt8 {
        var chunks: [MuxChunk] = []
        try stream.push(bytes, check: { (_, length) throws(MuxFramingError) in
            guard length <= MuxChunk.maxPayloadLength else { throw .oversize(length: length) }
        }, take: { header, payload in
            chunks.append(MuxChunk(connection: readBigEndian(header, at: 0), payload: Array(payload)))
        })
        return chunks
    }

    public func finish() throws(MuxFramingError) {
        if let (have, need) = stream.unfinished { throw .truncated(have: have, need: need) }
    }
}
