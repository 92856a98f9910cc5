import NumaPlaceProtocol

/// Where a method writes its replies. One per connection; replies go out in call order.
public protocol ReplySink: Sendable {
    /// Writes one encoded message (with its NUL). Returns false when the peer is gone or its
    /// backlog is full (a streaming method should stop).
    @discardableResult func send(_ bytes: [UInt8]) -> Bool
    /// True while the peer is connected.
    var isOpen: Bool { get }
    /// Ends the connection (after a protocol violation or a stream overflow).
    func close()
}

/// Handles one decoded call. The server calls it for each message of a connection in order.
public protocol VarlinkDispatcher: Sendable {
    func handle(_ call: VarlinkCall, peer: PeerCredentials, sink: ReplySink) async
}

