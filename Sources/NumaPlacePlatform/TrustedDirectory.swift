import Glibc

/// DESIGN.md, Security: nothing the daemon trusts is writable by others. A directory that holds the
/// daemon's socket or its worker table must be the daemon's own and writable by it alone, and no
/// directory above it may let another user replace it: each ancestor belongs to root or the daemon's
/// user and is not group- or world-writable unless it is sticky (`/tmp`, where others cannot rename or
/// remove what is not theirs). The rules of OpenSSH's StrictModes, applied to the resolved path.
public enum TrustedDirectory {
    public struct Refusal: Error, Hashable, Sendable, CustomStringConvertible {
        public let path: String
        public let reason: String
        public var description: String { "refusing \(path): \(reason)" }
    }

    /// Throws unless `path` (which must exist) and every directory above it pass the rules above.
    /// Returns the resolved path (symbolic links followed), whose components were checked.
    @discardableResult
    public static func check(_ path: String, owner: uid_t = geteuid()) throws(Refusal) -> String {
        guard let resolvedC = realpath(path, nil) else {
            throw Refusal(path: path, reason: String(cString: strerror(errno)))
        }
        let resolved = String(cString: resolvedC)
        free(resolvedC)
        var components = resolved.split(separator: "/").map(String.init)
        var current = resolved
        var isTarget = true
        while true {
            var st = stat()
            guard lstat(current, &st) == 0 else { throw Refusal(path: current, reason: String(cString: strerror(errno))) }
            let mode = st.st_mode
            guard mode & S_IFMT == S_IFDIR else { throw Refusal(path: current, reason: "not a directory") }
            if isTarget {
                guard st.st_uid == owner else {
                    throw Refusal(path: current, reason: "owned by uid \(st.st_uid), not the daemon's uid \(owner)")
                }
                guard mode & 0o022 == 0 else {
                    throw Refusal(path: current, reason: "group- or world-writable (mode \(String(mode & 0o7777, radix: 8)))")
                }
            } else {
                guard st.st_uid == 0 || st.st_uid == owner else {
                    throw Refusal(path: current, reason: "a directory above it is owned by uid \(st.st_uid)")
                }
                guard mode & 0o022 == 0 || mode & 0o1000 != 0 else {
                    throw Refusal(path: current, reason: "a directory above it is group- or world-writable and not sticky")
                }
            }
            isTarget = false
            if components.isEmpty { break }
            components.removeLast()
            current = "/" + components.joined(separator: "/")
        }
        return resolved
    }
}
