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
    /// `descriptors` are those that came with this message; the server closes whatever is left of
    /// them once this returns.
    func handle(_ call: VarlinkCall, descriptors: PassedDescriptors, peer: PeerCredentials, sink: ReplySink) async
    /// The connection `peer.connection` has closed (its calls' tasks are cancelled).
    func connectionClosed(_ peer: PeerCredentials) async
    /// The whole reply to `call` when it is ready in memory and depends on nothing else (no caller,
    /// no descriptors, no state that needs an actor): the connection then sends it from its reading
    /// thread, when no earlier call of its own is still running, without handing the call on.
    func immediateReply(to call: VarlinkCall) -> [UInt8]?
}

extension VarlinkDispatcher {
    /// A call that brought no descriptors.
    public func handle(_ call: VarlinkCall, peer: PeerCredentials, sink: ReplySink) async {
        await handle(call, descriptors: .none, peer: peer, sink: sink)
    }

    public func connectionClosed(_ peer: PeerCredentials) async {}

    public func immediateReply(to call: VarlinkCall) -> [UInt8]? { nil }
}
