#if canImport(Glibc)
import Glibc
#endif
import Testing

/// A system call in a test's set-up that failed.
struct SetupError: Error, CustomStringConvertible {
    let what: String
    let errno: Int32
    init(_ what: String, errno: Int32 = Glibc.errno) {
        self.what = what
        self.errno = errno
    }
    var description: String { "\(what): \(String(cString: strerror(errno)))" }
}

/// Calls `body` with `path` as a `sockaddr_un`; nil when the path does not fit `sun_path`.
func withUnixAddress<R>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R? {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    let capacity = MemoryLayout.size(ofValue: address.sun_path)
    guard bytes.count < capacity else { return nil }
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        raw.copyBytes(from: bytes)
        raw[bytes.count] = 0
    }
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
}

/// A Unix socket a test creates, optionally bound (the path is unlinked on close) and listening.
final class TestSocket {
    let fd: Int32
    let path: String?

    init(type: __socket_type, bindTo path: String? = nil, listen backlog: Int32? = nil) throws {
        let fd = socket(AF_UNIX, Int32(type.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SetupError("socket") }
        self.fd = fd
        self.path = path
        if let path {
            unlink(path)
            guard let rc = withUnixAddress(path, { bind(fd, $0, $1) }), rc == 0 else {
                let e = SetupError("bind \(path)")
                close(fd)
                throw e
            }
        }
        if let backlog, Glibc.listen(fd, backlog) != 0 {
            let e = SetupError("listen")
            close(fd)
            if let path { unlink(path) }
            throw e
        }
    }

    deinit {
        close(fd)
        if let path { unlink(path) }
    }

    /// The next queued datagram, or nil when none is queued (never blocks: libsystemd's sends are
    /// synchronous, so a message that was sent is already queued when the call returns).
    func receiveDatagram() -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        guard n >= 0 else { return nil }
        return Array(buffer[0..<n])
    }

}

/// Everything queued on a stream socket now, without blocking.
func receiveAvailable(_ fd: Int32) -> [UInt8] {
    var out: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        if n <= 0 { return out }
        out += buffer[0..<n]
    }
}

/// Sets (or, for nil, unsets) environment variables for the duration of `body` and restores them.
/// libsystemd reads them at each call, so this is how a test points it somewhere.
@discardableResult
func withEnvironment<R>(_ variables: [String: String?], _ body: () throws -> R) rethrows -> R {
    var saved: [String: String?] = [:]
    for (name, value) in variables {
        saved[name] = getenv(name).map { String(cString: $0) }
        if let value { setenv(name, value, 1) } else { unsetenv(name) }
    }
    defer {
        for (name, value) in saved {
            if let value { setenv(name, value, 1) } else { unsetenv(name) }
        }
    }
    return try body()
}

/// A fresh directory under /tmp.
func makeTemporaryDirectory() throws -> String {
    var template = Array("/tmp/numaplace-systemd-XXXXXX".utf8CString)
    let made = template.withUnsafeMutableBufferPointer { buffer in buffer.baseAddress.map { mkdtemp($0) != nil } ?? false }
    guard made else { throw SetupError("mkdtemp") }
    return String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Reads until end of file.
func readAll(_ fd: Int32) -> [UInt8] {
    var out: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return out }
        out += buffer[0..<n]
    }
}

/// One field of a journal native-protocol datagram (systemd's JOURNAL_NATIVE_PROTOCOL).
struct JournalField: Equatable, CustomStringConvertible {
    let name: String
    let value: [UInt8]
    var text: String { String(decoding: value, as: UTF8.self) }
    var description: String { "\(name)=\(text)" }
}

/// Parses a native-protocol datagram: `NAME=value\n`, or, for values with newlines,
/// `NAME\n` + 64-bit little-endian length + value + `\n`. Nil on anything malformed.
func parseJournalDatagram(_ data: [UInt8]) -> [JournalField]? {
    var fields: [JournalField] = []
    var i = 0
    while i < data.count {
        guard let newline = data[i...].firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        let line = data[i..<newline]
        if let eq = line.firstIndex(of: UInt8(ascii: "=")) {
            fields.append(JournalField(name: String(decoding: line[..<eq], as: UTF8.self),
                                       value: Array(line[(eq + 1)...])))
            i = newline + 1
        } else {
            let lengthStart = newline + 1
            guard lengthStart + 8 <= data.count else { return nil }
            var length: UInt64 = 0
            for (k, byte) in data[lengthStart..<(lengthStart + 8)].enumerated() {
                length |= UInt64(byte) << (8 * UInt64(k))
            }
            let valueStart = lengthStart + 8
            guard length <= UInt64(data.count - valueStart) else { return nil }
            let valueEnd = valueStart + Int(length)
            guard valueEnd < data.count, data[valueEnd] == UInt8(ascii: "\n") else { return nil }
            fields.append(JournalField(name: String(decoding: line, as: UTF8.self),
                                       value: Array(data[valueStart..<valueEnd])))
            i = valueEnd + 1
        }
    }
    return fields
}

/// Stands in for journald: binds `/run/systemd/journal/socket` (datagrams, `sd_journal_sendv`) and
/// `/run/systemd/journal/stdout` (streams, `sd_journal_stream_fd`) for the duration of `body`, and
/// removes them and any directory it had to create afterwards.
///
/// Those paths are fixed in libsystemd, so this needs root and a host where journald is not
/// running; concurrent test processes take turns through a lock file in /run/lock.
enum FakeJournald {
    static let directory = "/run/systemd/journal"
    static let socketPath = directory + "/socket"
    static let stdoutPath = directory + "/stdout"

    static func run(_ body: (_ datagrams: TestSocket, _ streams: TestSocket) throws -> Void) throws {
        let lockDirectory = access("/run/lock", W_OK) == 0 ? "/run/lock" : "/run"
        let lock = open(lockDirectory + "/numaplace-fake-journald.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lock >= 0 else { throw SetupError("open lock file") }
        defer { close(lock) }
        while flock(lock, LOCK_EX) != 0 {
            guard errno == EINTR else { throw SetupError("flock") }
        }

        if isListening(socketPath) || isListening(stdoutPath) {
            try Test.cancel("journald is running on this host (\(socketPath) answers): its fields are checked with journalctl in the QEMU test bed")
        }
        var created: [String] = []
        for dir in ["/run/systemd", directory] where access(dir, F_OK) != 0 {
            guard mkdir(dir, 0o755) == 0 else { throw SetupError("mkdir \(dir)") }
            created.append(dir)
        }
        defer { for dir in created.reversed() { rmdir(dir) } }
        let datagrams = try TestSocket(type: SOCK_DGRAM, bindTo: socketPath)
        let streams = try TestSocket(type: SOCK_STREAM, bindTo: stdoutPath, listen: 16)
        try body(datagrams, streams)
    }

    /// Whether something accepts connections at `path` (a stale socket file refuses them).
    private static func isListening(_ path: String) -> Bool {
        for type in [SOCK_DGRAM, SOCK_STREAM] {
            let fd = socket(AF_UNIX, Int32(type.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            if withUnixAddress(path, { connect(fd, $0, $1) }) == 0 { return true }
        }
        return false
    }
}
