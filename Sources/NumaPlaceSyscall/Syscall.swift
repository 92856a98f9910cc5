// The one place where a system call's failure becomes a value: EINTR is retried here and nowhere
// else, `errno` is read here right after the call that set it, and whole writes loop here.
//
// Why our own module and not swift-system's SystemPackage (already resolved through SwiftNIO):
// SystemPackage wraps file descriptors (open, read, write, writeAll with `retryOnInterrupt`), but its
// generic retry (`valueOrErrno`) and `Errno.current` are internal, and most of our interrupted calls
// are not file I/O (waitpid, poll, send, recv). Those would still need a retry of our own, so the
// tree would have two EINTR policies and two `Errno` types meeting at every layer. This module is
// that one policy, below Core, with no dependencies, so Core, Protocol, Platform, the CLI and the
// bench all use it, and the reliability suite compiles it with Core straight from Sources/. Its
// shape follows swift-system (`Sources/System/Internals/Syscalls.swift`): one function per policy,
// `Errno` as the thrown type.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The choke point for libc-style calls (-1 and `errno` on failure): EINTR is retried here and
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
        if fd >= 0 { _ = closeDescriptor(fd) }
    }

    /// Hands `transfer` the part of `bytes` not yet taken until it has taken all of them: short
    /// transfers continue, EINTR is retried, any other errno is thrown (with part of the bytes
    /// possibly sent). `transfer` is write(2) or send(2) on the rest: -1 and `errno` on failure.
    public static func transferAll(_ bytes: UnsafeRawBufferPointer,
                                   _ transfer: (UnsafeRawBufferPointer) -> Int) throws(Errno) {
        var offset = 0
        while offset < bytes.count {
            offset += try retrying { transfer(UnsafeRawBufferPointer(rebasing: bytes[offset...])) }
        }
    }

    /// `transferAll` of an array's bytes.
    public static func transferAll(_ bytes: [UInt8], _ transfer: (UnsafeRawBufferPointer) -> Int) throws(Errno) {
        // withUnsafeBytes only rethrows (untyped); the Result carries the Errno through it.
        let result = bytes.withUnsafeBytes { raw in Result { () throws(Errno) in try transferAll(raw, transfer) } }
        try result.get()
    }

    /// write(2) until every byte is written: short writes continue, EINTR is retried, any other
    /// errno is thrown (with part of the bytes possibly written).
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(Errno) {
        try transferAll(bytes) { write(fd, $0.baseAddress, $0.count) }
    }

    /// `writeAll` of an array's bytes.
    public static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws(Errno) {
        try transferAll(bytes) { write(fd, $0.baseAddress, $0.count) }
    }
}

/// The C library's close(2), named apart from `Syscall.close` (which would shadow it inside the enum).
private func closeDescriptor(_ fd: Int32) -> Int32 { close(fd) }
