import CNumaPlaceShim
import Glibc
import NumaPlaceCore
import NumaPlaceSyscall

extension Spawner {
    // MARK: Preparation

    /// The worker's envp and the PATH to search argv[0] in.
    struct Environment {
        var envp: CStringArray
        var path: String?
    }

    /// The inherited environment (or none), minus every variable the request sets and the spawner's
    /// own `NUMAPLACE_*`, plus those. Inherited entries are copied byte for byte from `environ`
    /// without becoming Swift strings: this runs on every spawn.
    func buildEnvironment(_ request: SpawnRequest) throws(SpawnError) -> Environment {
        var added: [(key: String, entry: String)] = []
        for (key, value) in request.environment.sorted(by: { $0.key < $1.key })
        where !Spawner.environmentKeys.contains(key) {
            guard !key.isEmpty, !key.utf8.contains(UInt8(ascii: "=")), !key.utf8.contains(0), !value.utf8.contains(0) else {
                throw SpawnError(step: .prepare, errno: .invalidArgument, operation: "environment variable \"\(key.prefix(64))\"")
            }
            added.append((key, "\(key)=\(value)"))
        }
        // "KEY=" prefixes of every variable the inherited environment must not pass on: the request's,
        // and the spawner's own, which describe this placement only (a stale inherited one must go).
        let replaced = Spawner.ownedPrefixes + added.map { Array(($0.key + "=").utf8CString.dropLast()) }
        let placement = request.placement
        let cpus = placement.cpus.isEmpty ? savedOriginal.cpus : placement.cpus.intersection(savedOriginal.cpus)
        if let device = placement.device { added.append(("NUMAPLACE_DEVICE", "NUMAPLACE_DEVICE=\(device)")) }
        if !placement.devices.isEmpty {
            added.append(("NUMAPLACE_DEVICES", "NUMAPLACE_DEVICES=" + placement.devices.map(\.description).joined(separator: ",")))
        }
        if let node = placement.node { added.append(("NUMAPLACE_NODE", "NUMAPLACE_NODE=\(node)")) }
        added.append(("NUMAPLACE_CPUS", "NUMAPLACE_CPUS=\(cpus.isEmpty ? savedOriginal.cpus : cpus)"))

        var pieces: [CStringArray.Piece] = []
        pieces.reserveCapacity(64)
        var path: String? = request.environment["PATH"]
        let needPath = path == nil && !(request.argv.first?.utf8.contains(UInt8(ascii: "/")) ?? true)
        if request.inheritEnvironment, var p = np_environ() {
            while let entry = p.pointee {
                p += 1
                if replaced.contains(where: { prefix in strncmp(entry, prefix, prefix.count) == 0 }) { continue }
                if needPath && path == nil && strncmp(entry, "PATH=", 5) == 0 { path = String(cString: entry + 5) }
                pieces.append(.borrowed(UnsafePointer(entry)))
            }
        }
        pieces += added.map { .owned($0.entry) }
        return Environment(envp: try CStringArray(pieces, what: "environment"), path: path)
    }

    /// execvp(3)'s lookup, done in the parent: a name with a slash is used as is; otherwise the first
    /// regular, executable file named so in `path` (the worker's PATH), the daemon's PATH, or
    /// `defaultPath`. Only existence and mode bits are checked here; execve has the last word.
    /// Unlike execvp, relative PATH entries (and empty ones, meaning ".") are skipped: they would be
    /// looked up from the daemon's working directory, while the worker execs after chdir to its own.
    /// The client controls both PATH and the name, and this runs on the one spawn thread: a name
    /// longer than a file name can be, and PATHs past `maxSearchDirectories` entries, stop early.
    static func resolve(_ name: String, path: String?) throws(SpawnError) -> String {
        if name.contains("/") { return name }
        guard name.utf8.count <= Int(NAME_MAX) else {
            throw SpawnError(step: .exec, errno: Errno(ENAMETOOLONG), operation: "exec \(name.prefix(64))…")
        }
        let search = path ?? getenv("PATH").map { String(cString: $0) } ?? defaultPath
        var sawDenied = false
        for dir in search.split(separator: ":", omittingEmptySubsequences: false).prefix(maxSearchDirectories)
        where dir.hasPrefix("/") {
            let candidate = String(dir) + "/" + name
            var st = stat()
            guard stat(candidate, &st) == 0 else { continue }
            guard st.st_mode & S_IFMT == S_IFREG else { continue }
            // AT_EACCESS: checked with this thread's filesystem identity (the caller's, see
            // CallerFilesystemIdentity), not the daemon's real uid as access(2) would.
            if faccessat(AT_FDCWD, candidate, X_OK, AT_EACCESS) == 0 { return candidate }
            sawDenied = true
        }
        throw SpawnError(step: .exec, errno: sawDenied ? .permissionDenied : .noSuchFileOrDirectory,
                         operation: "exec \(name) (searched PATH \(search.prefix(1024)))")
    }

    /// Opens a worker's stdin (`index` 0), stdout or stderr file; called with the caller's filesystem
    /// identity in force. Non-blocking, so that a FIFO nobody opens answers at once (ENXIO for a
    /// writer) instead of holding the spawn thread; then refused unless it is a regular file outside
    /// procfs (a /proc/self path opened here would be the daemon's) or /dev/null.
    static func openStdio(_ path: String, index: Int) throws(SpawnError) -> Int32 {
        let name = ["stdin", "stdout", "stderr"][index]
        let flags = (index == 0 ? O_RDONLY : (O_WRONLY | O_CREAT | O_APPEND)) | O_NONBLOCK | O_NOCTTY | O_CLOEXEC
        let fd: Int32
        do {
            fd = try Syscall.retrying { open(path, flags, 0o666) }
        } catch {
            throw SpawnError(step: .stdio, errno: error, operation: "open \(name) \(path.prefix(256))")
        }
        let kind = np_fd_kind(fd)
        guard kind >= 0 else {
            let e = Errno.current
            Syscall.close(fd)
            throw SpawnError(step: .stdio, errno: e, operation: "fstat \(name) \(path.prefix(256))")
        }
        let refusal: String?
        switch UInt32(kind) {
        case NP_FD_REGULAR.rawValue, NP_FD_DEV_NULL.rawValue: refusal = nil
        case NP_FD_PROC.rawValue: refusal = "a /proc file (it would be the daemon's)"
        case NP_FD_FIFO.rawValue: refusal = "a FIFO"
        case NP_FD_SOCKET.rawValue: refusal = "a socket"
        case NP_FD_DEVICE.rawValue: refusal = "a device other than /dev/null"
        default: refusal = "not a regular file"
        }
        if let refusal {
            Syscall.close(fd)
            throw SpawnError(step: .stdio, errno: .invalidArgument,
                             operation: "open \(name) \(path.prefix(256)): \(refusal); pass it as a descriptor instead")
        }
        // The worker gets a blocking descriptor, as a shell's redirection would give it.
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        return fd
    }

    /// PATH entries `resolve` tries at most (a real PATH has a dozen).
    static let maxSearchDirectories = 256
}
