import Glibc
import NumaPlaceSyscall
import NumaPlaceCore

/// Reads and writes of cgroup v2 interface files under an injectable root, and the parsers of their
/// contents. Every path is relative to the cgroup mount (`sys/fs/cgroup` under the root); the parsers
/// are pure and take hostile text without trapping.
public struct CgroupFiles: Hashable, Sendable {
    public let root: SysfsRoot
    /// The mount point of the unified hierarchy, relative to `root`.
    public static let mount = "sys/fs/cgroup"

    public init(root: SysfsRoot) { self.root = root }

    /// The absolute path of a group or of a file in one ("" is the hierarchy's root).
    public func absolute(_ relative: String) -> String {
        root.absolute(relative.isEmpty ? Self.mount : Self.mount + "/" + relative)
    }

    static func join(_ group: String, _ name: String) -> String { group.isEmpty ? name : group + "/" + name }

    public func read(_ relative: String) throws(CgroupError) -> String {
        do {
            return try root.read(relative.isEmpty ? Self.mount : Self.mount + "/" + relative, limit: 64 * 1024)
        } catch {
            throw CgroupError(.io, path: relative, errno: error.errno, detail: "cannot read")
        }
    }

    /// One write(2) of `value`: the kernel takes each interface file's value in a single write, and a
    /// refusal (EINVAL, EBUSY, EACCES) is its answer. Never follows a link, never creates.
    public func write(_ relative: String, _ value: String) throws(CgroupError) {
        let fd: Int32
        do {
            fd = try Syscall.retrying { open(absolute(relative), O_WRONLY | O_CLOEXEC | O_NOFOLLOW) }
        } catch {
            throw CgroupError(.io, path: relative, errno: error, detail: "cannot open \"\(value)\" for writing")
        }
        defer { Syscall.close(fd) }
        let bytes = Array(value.utf8)
        let result: Result<Void, Errno> = bytes.withUnsafeBytes { b in
            Result { () throws(Errno) in try Syscall.writeAll(fd, b) }
        }
        if case .failure(let error) = result {
            throw CgroupError(.io, path: relative, errno: error, detail: "the kernel refused \"\(value)\"")
        }
    }

    public func makeDirectory(_ relative: String) throws(CgroupError) {
        do {
            _ = try Syscall.retrying { mkdir(absolute(relative), 0o755) }
        } catch {
            throw CgroupError(.io, path: relative, errno: error, detail: "cannot create the group")
        }
    }

    public func removeDirectory(_ relative: String) throws(CgroupError) {
        do {
            _ = try Syscall.retrying { rmdir(absolute(relative)) }
        } catch {
            throw CgroupError(.io, path: relative, errno: error, detail: "cannot remove the group")
        }
    }

    public func exists(_ relative: String) -> Bool { access(absolute(relative), F_OK) == 0 }

    /// The subdirectories of a group (its child groups), unsorted.
    public func children(_ relative: String) -> [String] {
        guard let names = try? root.list(relative.isEmpty ? Self.mount : Self.mount + "/" + relative) else { return [] }
        return names.filter { name in
            var st = stat()
            return lstat(absolute(Self.join(relative, name)), &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
        }
    }

    /// The pids in a group's cgroup.procs.
    public func processes(_ group: String) throws(CgroupError) -> [pid_t] {
        let text = try read(Self.join(group, "cgroup.procs"))
        return try Self.parsePids(text, path: Self.join(group, "cgroup.procs"))
    }

    // MARK: Parsers

    /// The daemon's group from /proc/self/cgroup: the path of the `0::` line, without its leading
    /// slash ("" for the root). nil when there is none (a v1-only host).
    public static func parseOwnGroup(_ text: String) -> String? {
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            guard line.hasPrefix("0::") else { continue }
            var path = String(line.dropFirst(3))
            // A process moved out of its group's namespace reads "/../x"; a deleted group " (deleted)".
            guard path.hasPrefix("/"), !path.contains("/.."), !path.hasSuffix(" (deleted)"), !path.contains("\0") else { return nil }
            while path.hasPrefix("/") { path.removeFirst() }
            while path.hasSuffix("/") { path.removeLast() }
            return path
        }
        return nil
    }

    /// The file system type mounted at `mountPoint` in /proc/self/mountinfo (the last mount there
    /// wins, as it hides the others).
    public static func parseMountType(_ text: String, mountPoint: String) -> String? {
        var found: String?
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 7, fields[4] == mountPoint[...],
                  let dash = fields.firstIndex(of: "-"), dash + 1 < fields.count else { continue }
            found = String(fields[dash + 1])
        }
        return found
    }

    /// A space-separated controller list (cgroup.controllers, cgroup.subtree_control).
    public static func parseControllers(_ text: String) -> Set<String> {
        Set(text.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init))
    }

    /// A flat keyed file (cpu.stat, memory.events): "key value" lines. A line that is not one is
    /// skipped; a value that is not a number is left out.
    public static func parseKeyed(_ text: String) -> [String: UInt64] {
        var out: [String: UInt64] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count == 2, let v = UInt64(parts[1]) else { continue }
            out[String(parts[0])] = v
        }
        return out
    }

    /// A single-value file: a number, or "max" (nil).
    public static func parseValue(_ text: String, path: String) throws(CgroupError) -> UInt64? {
        let t = text.trimmingNewline
        if t == "max" { return nil }
        guard let v = UInt64(t) else { throw CgroupError(.malformed, path: path, detail: "not a number: \"\(t.prefix(40))\"") }
        return v
    }

    public static func parsePids(_ text: String, path: String) throws(CgroupError) -> [pid_t] {
        var pids: [pid_t] = []
        for line in text.split(separator: "\n") {
            guard let p = pid_t(line), p > 0 else {
                throw CgroupError(.malformed, path: path, detail: "not a pid: \"\(line.prefix(40))\"")
            }
            pids.append(p)
        }
        return pids
    }
}

extension String {
    var trimmingNewline: String {
        var s = self
        while s.last == "\n" || s.last == " " { s.removeLast() }
        return s
    }
}
