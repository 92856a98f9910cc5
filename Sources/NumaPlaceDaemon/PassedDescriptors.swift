import NIOConcurrencyHelpers
import NumaPlacePlatform
import NumaPlaceProtocol
import NumaPlaceSyscall

/// The descriptors that arrived with one call (SCM_RIGHTS), in the order the caller sent them: a
/// call's parameters name them by that index, as sd-varlink does (`stdoutDescriptor: 1`).
///
/// The server owns them until the call is answered and then closes every one, used or not; a method
/// that hands one on (Spawn) closes them as soon as the worker has its copies, so the daemon never
/// holds a caller's descriptor longer than the call that brought it.
public final class PassedDescriptors: @unchecked Sendable {
    private let lock = NIOLock()
    private var fds: [Int32]

    public init(_ fds: [Int32] = []) { self.fds = fds }

    public static var none: PassedDescriptors { PassedDescriptors() }

    /// How many arrived (closed ones included).
    public var count: Int { lock.withLock { fds.count } }

    /// The descriptor at `index`, still owned here; nil when no such one arrived or it was closed.
    public func descriptor(at index: Int) -> Int32? {
        lock.withLock { fds.indices.contains(index) && fds[index] >= 0 ? fds[index] : nil }
    }

    /// Closes every descriptor still held. Idempotent.
    public func closeAll() {
        let held = lock.withLock { () -> [Int32] in
            defer { fds = fds.map { _ in -1 } }
            return fds
        }
        for fd in held { Syscall.close(fd) }
    }

    deinit { for fd in fds { Syscall.close(fd) } }
}
