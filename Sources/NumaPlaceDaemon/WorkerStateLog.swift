#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import NumaPlacePlatform
import NumaPlaceProtocol
import NumaPlaceSyscall

/// The persisted worker table: an append-only log of JSON lines under the runtime directory
/// (`/run/numaplaced/workers.log`), so that a restarted or SIGKILLed daemon re-adopts running workers.
///
/// Append-only because a spawn must not pay for rewriting the whole table: one `write(2)` per start
/// or exit (the page cache survives a SIGKILL of the daemon; `/run` is tmpfs anyway). The log is
/// compacted (rewritten with only live workers, then renamed over) when it grows well past them.
public final class WorkerStateLog: @unchecked Sendable {
    public struct Record: Codable, Sendable {
        /// "start" or "exit".
        public var op: String
        public var id: String
        /// The process start time in clock ticks since boot (`/proc/<pid>/stat` field 22); with the
        /// pid it identifies the process across pid reuse.
        public var startTicks: UInt64?
        public var worker: Manager.Worker?
    }

    public let path: String
    private var fd: Int32 = -1
    private var lines = 0
    private(set) public var lastError: String?
    /// The last append failed, possibly after writing part of its line (ENOSPC part way through).
    private var lastAppendFailed = false

    public init(directory: String) {
        path = directory + "/workers.log"
    }

    /// The largest log `load` reads: far beyond what the daemon writes between compactions (live
    /// workers, each bounded by MaxArgvBytes, plus 4,096 records), and a bound on what a start costs.
    public static let maxBytes = 256 << 20

    /// Reads the log: the workers that were running when it was last written, and the highest id number.
    /// The file is the daemon's own or nothing: opened without following a link, and ignored (with
    /// `lastError`) unless it is a regular file of the daemon's user that no one else may write.
    public func load() -> (live: [Record], maxID: Int) {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            if errno != ENOENT { lastError = "\(path): \(String(cString: strerror(errno)))" }
            return ([], 0)
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG, st.st_uid == geteuid(), st.st_mode & 0o022 == 0 else {
            lastError = "\(path): not a regular file of uid \(geteuid()) writable by it alone; not adopting from it"
            return ([], 0)
        }
        guard st.st_size <= Self.maxBytes else {
            lastError = "\(path): \(st.st_size) bytes, more than the \(Self.maxBytes >> 20) MiB a log can hold; not adopting from it"
            return ([], 0)
        }
        var data = [UInt8](repeating: 0, count: Int(st.st_size))
        var got = 0
        while got < data.count {
            let n = try? Syscall.retrying { data.withUnsafeMutableBytes { read(fd, $0.baseAddress! + got, $0.count - got) } }
            guard let n, n > 0 else { break }
            got += n
        }
        data.removeSubrange(got...)
        var live: [String: Record] = [:]
        var order: [String] = []
        var maxID = 0
        var count = 0
        for line in data.split(separator: UInt8(ascii: "\n")) {
            count += 1
            // A torn last line (the daemon died mid-write) or garbage is skipped, never fatal.
            guard let r = try? JSONDecoder().decode(Record.self, from: Data(line)), let n = Self.idNumber(r) else { continue }
            maxID = max(maxID, n)
            if r.op == "start", r.worker != nil {
                if live[r.id] == nil { order.append(r.id) }
                live[r.id] = r
            } else if r.op == "exit" {
                live.removeValue(forKey: r.id)
            }
        }
        // Counted, so that the compaction after adoption sees how long the log really is.
        lines = count
        return (order.compactMap { live[$0] }, maxID)
    }

    /// The number of a record's id (`w17` → 17), or nil for a record that cannot be one this daemon
    /// wrote: an id not of that form or beyond 2^52, a worker whose pid is not a pid or whose uid or
    /// gid is out of range. Such a record is skipped like a torn line: the file is the daemon's own,
    /// but a corrupt one must not trap a conversion at every start (a crash loop under Restart=).
    static func idNumber(_ r: Record) -> Int? {
        guard r.id.first == "w", let n = Int(r.id.dropFirst()), (1...(1 << 52)).contains(n) else { return nil }
        if let w = r.worker {
            guard (1...Int(Int32.max)).contains(w.pid), (0...Int(UInt32.max - 1)).contains(w.uid),
                  (0...Int(UInt32.max - 1)).contains(w.gid) else { return nil }
        }
        return n
    }

    /// Appends one record. Failures (full disk, read-only directory) are remembered and reported,
    /// never fatal: the daemon keeps serving, it only loses restart adoption for that worker.
    @discardableResult
    public func append(_ record: Record) -> Bool {
        var bytes = record.jsonBytes
        bytes.append(UInt8(ascii: "\n"))
        // After a failed append the file may end in a torn line; start on a line of our own, or this
        // record would be glued to the fragment and skipped with it when the log is loaded.
        if lastAppendFailed { bytes.insert(UInt8(ascii: "\n"), at: 0) }
        if fd < 0 {
            fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
            if fd < 0 {
                lastError = "\(path): \(String(cString: strerror(errno)))"
                return false
            }
        }
        var failure: Errno? = nil
        do { try Syscall.writeAll(fd, bytes) } catch { failure = error }
        lastAppendFailed = failure != nil
        if let failure {
            lastError = "\(path): \(failure)"
            // Drop a partial line's effect: the loader skips unparsable lines.
            return false
        }
        lines += 1
        return true
    }

    /// Rewrites the log with only `live` when it has grown past `threshold` lines beyond them.
    /// `liveCount` is how many records `live` will hold; `live` is only built when the log is compacted
    /// (building it walks the worker table).
    public func compactIfNeeded(liveCount: Int, live: @autoclosure () -> [Record], threshold: Int = 4096) {
        guard lines > liveCount + threshold else { return }
        let live = live()
        let tmp = path + ".tmp"
        var out = Data()
        for r in live {
            out.append(contentsOf: r.jsonBytes)
            out.append(UInt8(ascii: "\n"))
        }
        // A fresh file of our own: never through a link, never a file left by someone else.
        unlink(tmp)
        let tmpFD = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard tmpFD >= 0 else {
            lastError = "\(tmp): \(String(cString: strerror(errno)))"
            return
        }
        let written = out.withUnsafeBytes { raw in (try? Syscall.writeAll(tmpFD, raw)) != nil }
        close(tmpFD)
        guard written else {
            lastError = "\(tmp): cannot write"
            unlink(tmp)
            return
        }
        guard rename(tmp, path) == 0 else {
            lastError = "\(path): \(String(cString: strerror(errno)))"
            unlink(tmp)
            return
        }
        if fd >= 0 { close(fd) }
        fd = -1
        lines = live.count
    }

    deinit { if fd >= 0 { close(fd) } }
}

extension WorkerStateLog.Record: JSONWritable {
    public func writeJSON(to w: inout JSONWriter) {
        w.beginObject()
        w.member("op", op)
        w.member("id", id)
        w.member("startTicks", startTicks)
        w.member("worker", worker)
        w.endObject()
    }
}
