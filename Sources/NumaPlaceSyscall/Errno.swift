#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An errno value as a type: what a failed system call answered.
///
/// Following SwiftNIO's rule, EBADF and EFAULT from our own wrappers are our bugs; every other value
/// is an answer from the kernel to pass on, with its number intact for the wire (`SpawnFailed.errno`).
/// There is no constant for an interrupted call: `Syscall` retries it, so no caller is handed one.
public struct Errno: RawRepresentable, Error, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32

    public init(rawValue: Int32) { self.rawValue = rawValue }
    public init(_ rawValue: Int32) { self.rawValue = rawValue }

    /// The calling thread's `errno` right now.
    public static var current: Errno { Errno(errno) }

    /// The C library's text, as `strerror(3)` gives it ("No such file or directory").
    /// glibc's strerror is thread-safe since 2.32 (unknown numbers use a thread-local buffer).
    public var description: String { String(cString: strerror(rawValue)) }

    public static let notPermitted = Errno(EPERM)
    public static let noSuchFileOrDirectory = Errno(ENOENT)
    public static let noSuchProcess = Errno(ESRCH)
    public static let noChildProcess = Errno(ECHILD)
    public static let permissionDenied = Errno(EACCES)
    public static let invalidArgument = Errno(EINVAL)
    public static let noBufferSpace = Errno(ENOBUFS)
    public static let notImplemented = Errno(ENOSYS)
}
