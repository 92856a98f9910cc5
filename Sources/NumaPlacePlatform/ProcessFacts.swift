#if canImport(Glibc)
import Glibc
#endif
import NumaPlaceCore

/// What procfs says about one process that a restarted daemon needs to recognise its workers.
public enum ProcessFacts {
    /// Field 22 of `/proc/<pid>/stat`, the start time in clock ticks since boot: with the pid, it names
    /// one process for the life of the machine (a recycled pid gets a later start time).
    public static func startTicks(pid: pid_t, root: SysfsRoot) -> UInt64? {
        guard let text = try? root.read("proc/\(pid)/stat", limit: 4096) else { return nil }
        // Over the bytes (the file is ASCII but for the command name): `Character` splitting costs a
        // Unicode lookup per character, and this runs on every spawn.
        let bytes = Array(text.utf8)
        // The command name (field 2) may contain spaces and parentheses: count from the last ')'.
        guard let close = bytes.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = bytes[(close + 1)...].split(separator: UInt8(ascii: " "))
        guard fields.count > 19 else { return nil }
        return UInt64(String(decoding: fields[19], as: UTF8.self))
    }

    /// The process's real, effective, saved and filesystem uids (`Uid:` of `/proc/<pid>/status`);
    /// nil when it cannot be read.
    public static func uids(pid: pid_t, root: SysfsRoot) -> [Int]? {
        guard let status = try? root.read("proc/\(pid)/status", limit: 16384),
              let field = SysfsParsers.statusField("Uid", in: status) else { return nil }
        return field.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
    }
}
