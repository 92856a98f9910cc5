import Glibc

/// An errno value as a type: what a failed system call answered.
///
/// Following SwiftNIO's rule, EBADF and EFAULT from our own wrappers are our bugs; every other value
/// is an answer from the kernel to pass on, with its number intact for the wire (`SpawnFailed.errno`).
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
    public static let interrupted = Errno(EINTR)
    public static let noChildProcess = Errno(ECHILD)
    public static let permissionDenied = Errno(EACCES)
    public static let invalidArgument = Errno(EINVAL)
    public static let notImplemented = Errno(ENOSYS)
}

/// The one choke point for libc-style calls (-1 and `errno` on failure): EINTR is retried here and
/// nowhere else, every other errno becomes a thrown `Errno`.
public enum Syscall {
    @inline(__always)
    public static func retrying<T: FixedWidthInteger>(_ body: () -> T) throws(Errno) -> T {
        while true {
            let result = body()
            if result != -1 { return result }
            let e = errno
            if e == EINTR { continue }
            throw Errno(e)
        }
    }

    /// close(2), never retried: Linux releases the descriptor even when close reports EINTR, and a
    /// retry could close a descriptor another thread has just been given.
    public static func close(_ fd: Int32) {
        if fd >= 0 { _ = Glibc.close(fd) }
    }

    /// write(2) until every byte is written: short writes continue, EINTR is retried, any other
    /// errno is thrown (with part of the bytes possibly written).
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(Errno) {
        guard let base = bytes.baseAddress else { return }
        var offset = 0
        while offset < bytes.count {
            offset += try retrying { write(fd, base + offset, bytes.count - offset) }
        }
    }
}
