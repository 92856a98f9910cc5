#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import NumaPlaceProtocol

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

    /// Reads the log: the workers that were running when it was last written, and the highest id number.
    public func load() -> (live: [Record], maxID: Int) {
        guard let data = FileManager.default.contents(atPath: path) else { return ([], 0) }
        var live: [String: Record] = [:]
        var order: [String] = []
        var maxID = 0
        for line in data.split(separator: UInt8(ascii: "\n")) {
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
            fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
            if fd < 0 {
                lastError = "\(path): \(String(cString: strerror(errno)))"
                return false
            }
        }
        let ok = bytes.withUnsafeBytes { raw -> Bool in
            var off = 0
            while off < raw.count {
                let n = write(fd, raw.baseAddress! + off, raw.count - off)
                if n < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                off += n
            }
            return true
        }
        lastAppendFailed = !ok
        if !ok {
            lastError = "\(path): \(String(cString: strerror(errno)))"
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
        guard FileManager.default.createFile(atPath: tmp, contents: out, attributes: [.posixPermissions: 0o600]) else {
            lastError = "\(tmp): cannot write"
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
