import NumaPlaceSyscall

/// Why the cgroup v2 interface could not do something: a stable code, the file or directory (relative
/// to the cgroup mount), the errno where a system call answered, and the words an operator reads.
public struct CgroupError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// /sys/fs/cgroup is not the unified hierarchy (cgroup v1, or a hybrid layout).
        case notUnified = "cgroup v1"
        /// /proc/self/cgroup has no `0::` line.
        case noOwnGroup = "no cgroup v2 group"
        /// The daemon may not manage its group: systemd without Delegate=yes, or no write access.
        case notDelegated = "no delegation"
        /// A controller the daemon needs is not available in its group (cgroup.controllers).
        case controllerMissing = "controller missing"
        /// A file had contents the kernel never writes.
        case malformed = "malformed"
        /// A system call on the hierarchy failed.
        case io = "cgroup I/O"
    }

    public let code: Code
    public let path: String
    public let errno: Errno?
    public let detail: String

    public init(_ code: Code, path: String, errno: Errno? = nil, detail: String) {
        self.code = code
        self.path = path
        self.errno = errno
        self.detail = detail
    }

    public var description: String {
        "\(code.rawValue): \(detail)\(path.isEmpty ? "" : " (\(path)")\(errno.map { path.isEmpty ? " (\($0))" : ": \($0))" } ?? (path.isEmpty ? "" : ")"))"
    }
}
