#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import NumaPlaceSyscall

/// The directory every sysfs and procfs read is made under.
///
/// `/` is the live host; any other directory is a captured machine (a fixture, a synthetic tree),
/// and the layers above switch binding and udev off for it. Paths are given relative to the root
/// (`sys/devices/system/node`), so no absolute path is fixed at compile time.
public struct SysfsRoot: Hashable, Sendable {
    public let path: String

    public init(_ path: String = "/") {
        var p = path
        while p.count > 1, p.hasSuffix("/") { p.removeLast() }
        self.path = p.isEmpty ? "/" : p
    }

    public var isLiveHost: Bool { path == "/" }

    /// The absolute path of `relative` under the root.
    public func absolute(_ relative: String) -> String {
        path == "/" ? "/" + relative : path + "/" + relative
    }

    /// A read that failed, with the errno (ENOENT for a vanished file).
    public struct ReadError: Error, Hashable, Sendable, CustomStringConvertible {
        public let path: String
        public let errno: Errno
        public var isMissing: Bool { [.noSuchFileOrDirectory, Errno(ENOTDIR), Errno(ENODEV)].contains(errno) }
        public var description: String { "\(path): \(errno)" }
    }

    /// Reads at most `limit` bytes of a file (sysfs attributes are at most a page; the bound keeps a
    /// hostile tree from making us read gigabytes).
    public func readBytes(_ relative: String, limit: Int = 1 << 20) throws(ReadError) -> [UInt8] {
        let full = absolute(relative)
        let fd = open(full, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw ReadError(path: relative, errno: .current) }
        defer { close(fd) }
        var out: [UInt8] = []
        try readRest(fd, into: &out, limit: limit, path: relative)
        return out
    }

    /// Reads `fd` to its end, or until `out` holds `limit` bytes.
    private func readRest(_ fd: Int32, into out: inout [UInt8], limit: Int, path: String) throws(ReadError) {
        var chunk = [UInt8](repeating: 0, count: 4096)
        while out.count < limit {
            let want = min(chunk.count, limit - out.count)
            let n: Int
            do {
                n = try Syscall.retrying { chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, want) } }
            } catch {
                throw ReadError(path: path, errno: error)
            }
            if n == 0 { break }
            out.append(contentsOf: chunk[0..<n])
        }
    }

    /// Reads a sysfs attribute (or a captured copy of one) as text, at most `limit` bytes. kernfs
    /// generates an attribute's whole value into one page when it is opened and hands it to the first
    /// read, and a regular file is at its end when a read comes up short; so a value shorter than the
    /// first read's buffer takes one read, not the second read that returns 0 (a scan opens hundreds of
    /// attributes: the read to EOF was a quarter of its syscalls). A full buffer reads on as `read` does.
    /// Not for procfs files that are generated record by record.
    public func readAttribute(_ relative: String, limit: Int = 4096) throws(ReadError) -> String {
        let fd = open(absolute(relative), O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw ReadError(path: relative, errno: .current) }
        defer { close(fd) }
        let first = min(limit, 4096)
        enum FirstRead { case whole(String), more([UInt8]), failed(Errno) }
        let result = withUnsafeTemporaryAllocation(byteCount: first, alignment: 1) { buffer -> FirstRead in
            let n: Int
            do throws(Errno) {
                n = try Syscall.retrying { Glibc.read(fd, buffer.baseAddress, first) }
            } catch {
                return .failed(error)
            }
            let bytes = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
            return n == first && first < limit ? .more(Array(bytes)) : .whole(String(decoding: bytes, as: UTF8.self))
        }
        switch result {
        case .whole(let text):
            return text
        case .failed(let e):
            throw ReadError(path: relative, errno: e)
        case .more(var out):
            // Longer than one buffer (a CPU list of a large machine): the rest as `readBytes` reads it.
            try readRest(fd, into: &out, limit: limit, path: relative)
            return String(decoding: out, as: UTF8.self)
        }
    }

    /// Reads the first line of a file (without its newline), at most `limit` bytes of it, in small
    /// reads. For generated files whose every record costs the kernel work: `/proc/<pid>/numa_maps`
    /// walks a mapping's pages for each line, and a 4 KiB read would make it generate a dozen lines
    /// to return one.
    public func readFirstLine(_ relative: String, limit: Int = 4096) throws(ReadError) -> String {
        let fd = open(absolute(relative), O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw ReadError(path: relative, errno: .current) }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 256)
        while out.count < limit {
            let n: Int
            do {
                n = try Syscall.retrying {
                    chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, min($0.count, limit - out.count)) }
                }
            } catch {
                throw ReadError(path: relative, errno: error)
            }
            if n == 0 { break }
            if let newline = chunk[0..<n].firstIndex(of: UInt8(ascii: "\n")) {
                out.append(contentsOf: chunk[0..<newline])
                break
            }
            out.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Reads a file as text. Invalid UTF-8 is repaired (and then fails to parse where it matters).
    public func read(_ relative: String, limit: Int = 1 << 20) throws(ReadError) -> String {
        let bytes = try readBytes(relative, limit: limit)
        return String(decoding: bytes, as: UTF8.self)
    }

    public func exists(_ relative: String) -> Bool {
        access(absolute(relative), F_OK) == 0
    }

    /// Entry names of a directory, without `.` and `..`, sorted.
    public func list(_ relative: String) throws(ReadError) -> [String] {
        guard let dir = opendir(absolute(relative)) else { throw ReadError(path: relative, errno: .current) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// The target of a symbolic link, as stored (usually relative).
    public func readLink(_ relative: String) throws(ReadError) -> String {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink(absolute(relative), &buf, buf.count - 1)
        if n < 0 { throw ReadError(path: relative, errno: .current) }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
