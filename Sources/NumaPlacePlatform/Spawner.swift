import CNumaPlaceShim
import Glibc
import NumaPlaceCore
import NumaPlaceSyscall

/// A started worker: its pid, the pidfd this object owns, and what the child had to weaken.
public struct SpawnedProcess: Sendable {
    public let pid: pid_t
    public let pidfd: PidFD
    /// The CPUs the child was asked to run on (the placement's CPUs ∩ the saved original),
    /// or the saved original when there was no CPU target or it could not be applied.
    public let cpus: CPUSet
    /// The memory policy in force when the child called execve, after any degradation.
    public let memory: MemoryPlacement
    /// What best-effort admission weakened, in the parent or in the child. The placement policy's
    /// own notes stay in `PlacementDecision.degraded`.
    public let degradations: [SpawnDegradation]

    public var degradationNotes: [String] { degradations.map(\.description) }
}

/// Starts workers on their placement, whatever affinity and memory policy the daemon inherited.
///
/// Everything is prepared in the parent (argv, envp, PATH lookup, CPU and node masks, stdio,
/// credentials); then `np_spawn` clones a vfork-style child that runs DESIGN.md's spawn sequence
/// with raw system calls and reports each failure on a close-on-exec pipe as (step, errno).
/// `spawn` returns once the child has called execve (or failed): a thrown `SpawnError` means no
/// worker exists and the failed child has been reaped.
///
/// Thread-safe: a `Spawner` holds no mutable state, and every descriptor it makes is O_CLOEXEC, so
/// concurrent spawns on other threads do not inherit one another's pipes. The calling thread is
/// suspended while the child runs (clone(2), CLONE_VFORK), typically well under a millisecond.
/// Requires Linux 5.3 (pidfd_open) and, for `.closeFDs` without a fallback loop, 5.9 (close_range).
public struct Spawner: Sendable {
    /// DESIGN.md's saved original: the CPUs the daemon's cgroup allowed at start, narrowed by
    /// `WorkerCPUs=`. Every worker starts from it; a CPU target is intersected with it.
    public let savedOriginal: AllowedSet

    public init(savedOriginal: AllowedSet) {
        self.savedOriginal = savedOriginal
    }

    /// The variables the spawner owns in every worker's environment.
    public static let environmentKeys = ["NUMAPLACE_DEVICE", "NUMAPLACE_DEVICES", "NUMAPLACE_NODE", "NUMAPLACE_CPUS"]
    private static let ownedPrefixes = environmentKeys.map { Array(($0 + "=").utf8CString.dropLast()) }
    /// The PATH used when neither the worker's nor the daemon's environment has one.
    public static let defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    public func spawn(_ request: SpawnRequest) throws(SpawnError) -> SpawnedProcess {
        let strict = request.admission == .strict
        var degradations: [SpawnDegradation] = []

        // argv, envp and the executable.
        guard let name = request.argv.first, !name.isEmpty else {
            throw SpawnError(step: .prepare, errno: .invalidArgument, operation: "argv: empty")
        }
        let environment = try buildEnvironment(request)

        // What is looked up and opened for the caller is looked up and opened as the caller: the PATH
        // search and the stdio files, on this thread, with the caller's filesystem identity.
        var files: [Int32] = [-1, -1, -1]
        defer { for fd in files { Syscall.close(fd) } }
        let path: String
        do {
            let identity = try CallerFilesystemIdentity(request.credentials)
            defer { identity.restore() }
            path = try Spawner.resolve(name, path: environment.path)
            for (i, choice) in [request.stdin, request.stdout, request.stderr].enumerated() {
                // A relative path names a file in the worker's working directory, as it would if the
                // worker opened it itself.
                guard case .file(let p) = choice else { continue }
                if !p.hasPrefix("/"), let cwd = request.workingDirectory {
                    files[i] = try Spawner.openStdio(cwd + "/" + p, index: i)
                } else {
                    files[i] = try Spawner.openStdio(p, index: i)
                }
            }
        }
        let argvC = try CStringArray(request.argv, what: "argv")
        let envpC = environment.envp
        let pathC = try CStringArray([path], what: "argv[0]")
        let cwdC = try request.workingDirectory.map { dir throws(SpawnError) in try CStringArray([dir], what: "working directory") }

        // CPUs: the target is the placement's CPUs within the saved original (DESIGN.md step 4).
        var targetCPUs = CPUSet()
        if !request.placement.cpus.isEmpty {
            targetCPUs = request.placement.cpus.intersection(savedOriginal.cpus)
            if targetCPUs.isEmpty {
                let operation = "sched_setaffinity(CPUs \(request.placement.cpus))"
                if strict { throw SpawnError(step: .setAffinity, errno: .invalidArgument, operation: operation) }
                degradations.append(SpawnDegradation(
                    step: .setAffinity, errno: .invalidArgument, operation: operation,
                    fallback: "none of them is in the saved original CPUs \(savedOriginal.cpus); the worker runs on those"))
            } else if targetCPUs != request.placement.cpus {
                degradations.append(SpawnDegradation(
                    step: .setAffinity, errno: .invalidArgument, operation: "sched_setaffinity(CPUs \(request.placement.cpus))",
                    fallback: "CPUs \(request.placement.cpus.subtracting(savedOriginal.cpus)) are outside the saved original; narrowed to \(targetCPUs)"))
            }
        }
        let savedMask = Spawner.kernelMask(savedOriginal.cpus)
        let targetMask = Spawner.kernelMask(targetCPUs)

        // Memory: the node mask as set_mempolicy(2) takes it, and the preferred fallback.
        let memory = request.placement.memory
        let nodeSet = CPUSet(memory.nodes.map(\.rawValue))
        let nodeMask = Spawner.kernelMask(nodeSet, minimumBits: 64)
        let preferredMask = Spawner.kernelMask(CPUSet(memory.nodes.prefix(1).map(\.rawValue)), minimumBits: nodeMask.count * 64)
        let maxnode = UInt(nodeMask.count * UInt.bitWidth + 1)

        // Credentials: only what differs from the daemon's own, so an unprivileged daemon can still
        // spawn as itself.
        var setGroups = false, setGID = false, setUID = false
        var groups: [UInt32] = []
        if let creds = request.credentials {
            setUID = !(getuid() == creds.uid && geteuid() == creds.uid)
            setGID = !(getgid() == creds.gid && getegid() == creds.gid)
            groups = creds.groups.map { UInt32($0) }
            setGroups = Set(groups) != Set(Spawner.currentGroups())
        }

        // Descriptors: the report pipe, /dev/null when asked for. All O_CLOEXEC.
        var reportFDs: [Int32] = [-1, -1]
        do {
            _ = try Syscall.retrying { np_pipe2(&reportFDs, O_CLOEXEC | O_NONBLOCK) }
        } catch {
            throw SpawnError(step: .prepare, errno: error, operation: "pipe2")
        }
        defer {
            Syscall.close(reportFDs[0])
            Syscall.close(reportFDs[1])
        }
        var devNull: Int32 = -1
        defer { Syscall.close(devNull) }
        if [request.stdin, request.stdout, request.stderr].contains(.null) {
            do {
                devNull = try Syscall.retrying { open("/dev/null", O_RDWR | O_CLOEXEC) }
            } catch {
                throw SpawnError(step: .stdio, errno: error, operation: "open /dev/null")
            }
        }

        let limitList = request.resourceLimits.map { np_rlimit(resource: $0.resource, soft: $0.soft, hard: $0.hard) }

        // The configuration the child reads; every pointer in it stays valid until np_spawn returns.
        var pid: pid_t = 0
        var pidfd: Int32 = -1
        let spawnResult: Int32 = savedMask.withUnsafeBufferPointer { saved in
            targetMask.withUnsafeBufferPointer { target in
                nodeMask.withUnsafeBufferPointer { nodes in
                    preferredMask.withUnsafeBufferPointer { preferred in
                        limitList.withUnsafeBufferPointer { limitBuffer in
                        groups.withUnsafeBufferPointer { groupList in
                            var config = np_spawn_config()
                            config.path = pathC.pointers[0].map { UnsafePointer($0) }
                            config.argv = UnsafePointer(argvC.pointers.baseAddress)
                            config.envp = UnsafePointer(envpC.pointers.baseAddress)
                            config.cwd = cwdC?.pointers[0].map { UnsafePointer($0) }
                            let choices = [request.stdin, request.stdout, request.stderr]
                            var stdio = (np_stdio(), np_stdio(), np_stdio())
                            for i in 0..<3 {
                                var s = np_stdio()
                                switch choices[i] {
                                case .inherit: s.kind = Int32(NP_STDIO_INHERIT.rawValue)
                                case .null:
                                    s.kind = Int32(NP_STDIO_FD.rawValue)
                                    s.fd = devNull
                                case .fd(let fd):
                                    s.kind = Int32(NP_STDIO_FD.rawValue)
                                    s.fd = fd
                                case .file:
                                    s.kind = Int32(NP_STDIO_FD.rawValue)
                                    s.fd = files[i]
                                }
                                switch i {
                                case 0: stdio.0 = s
                                case 1: stdio.1 = s
                                default: stdio.2 = s
                                }
                            }
                            config.stdio = stdio
                            config.report_fd = reportFDs[1]
                            config.strict = strict ? 1 : 0
                            config.pdeathsig = request.parentDeathSignal ?? 0
                            if !savedOriginal.cpus.isEmpty {
                                config.saved_mask = saved.baseAddress
                                config.saved_mask_bytes = saved.count * MemoryLayout<UInt>.size
                            }
                            if !targetCPUs.isEmpty {
                                config.target_mask = target.baseAddress
                                config.target_mask_bytes = target.count * MemoryLayout<UInt>.size
                            }
                            if memory.mode != .none && !memory.nodes.isEmpty {
                                config.mpol_mode = Spawner.kernelMode(memory.mode)
                                config.nodemask = nodes.baseAddress
                                config.maxnode = maxnode
                                config.preferred_nodemask = preferred.baseAddress
                            }
                            config.set_groups = setGroups ? 1 : 0
                            config.set_gid = setGID ? 1 : 0
                            config.set_uid = setUID ? 1 : 0
                            config.gid = UInt32(request.credentials?.gid ?? 0)
                            config.uid = UInt32(request.credentials?.uid ?? 0)
                            config.ngroups = groupList.count
                            config.groups = groupList.baseAddress
                            config.nrlimits = limitBuffer.count
                            config.rlimits = limitBuffer.baseAddress
                            return withExtendedLifetime((argvC, envpC, pathC, cwdC)) {
                                np_spawn(&config, &pid, &pidfd) == 0 ? 0 : errno
                            }
                        }
                        }
                    }
                }
            }
        }
        if spawnResult != 0 {
            throw SpawnError(step: .clone, errno: Errno(spawnResult), operation: "clone")
        }
        // Our end of the write side must go before reading, or EOF could never come.
        Syscall.close(reportFDs[1])
        reportFDs[1] = -1
        let handle: PidFD
        if pidfd >= 0 {
            handle = PidFD(taking: pidfd, pid: pid)
        } else {
            // np_spawn could open no pidfd (Linux < 5.3): do not leave an untracked process behind.
            _ = kill(pid, SIGKILL)
            var status: Int32 = 0
            _ = try? Syscall.retrying { waitpid(pid, &status, 0) }
            throw SpawnError(step: .clone, errno: .notImplemented, operation: "pidfd_open(\(pid))")
        }

        // The child is past execve or dead (CLONE_VFORK), so every record it wrote is in the pipe.
        let records = Spawner.readReports(reportFDs[0])
        var appliedMemory = memory
        var appliedCPUs = targetCPUs.isEmpty ? savedOriginal.cpus : targetCPUs
        for record in records {
            let step = SpawnStep(child: record.step) ?? .exec
            let err = Errno(record.err)
            let operation = describe(step, record: record, request: request, path: path, target: targetCPUs,
                                     setGroups: groups)
            if record.fatal != 0 {
                // The child has exited 127 (or is about to): reap it so no zombie stays behind.
                _ = try? handle.waitForExit()
                throw SpawnError(step: step, errno: err, operation: operation)
            }
            var fallback = ""
            switch step {
            case .restoreAffinity:
                fallback = "the worker keeps the daemon's affinity until its CPU target is set"
            case .resetMempolicy:
                fallback = "the daemon's memory policy may remain"
            case .setAffinity:
                appliedCPUs = savedOriginal.cpus
                fallback = "the worker stays on the saved original CPUs \(savedOriginal.cpus)"
            case .setMempolicy:
                if record.mode != Int32(NP_MPOL_PREFERRED) && memory.nodes.count > 0 {
                    appliedMemory = MemoryPlacement(mode: .preferred, nodes: Array(memory.nodes.prefix(1)))
                    fallback = "degraded to preferred, node \(memory.nodes[0])"
                } else {
                    appliedMemory = .none
                    fallback = "left at the default policy"
                }
            default:
                fallback = "continued"
            }
            degradations.append(SpawnDegradation(step: step, errno: err, operation: operation, fallback: fallback))
        }
        return SpawnedProcess(pid: pid, pidfd: handle, cpus: appliedCPUs, memory: appliedMemory,
                              degradations: degradations)
    }

    // MARK: Preparation

    /// The worker's envp and the PATH to search argv[0] in.
    private struct Environment {
        var envp: CStringArray
        var path: String?
    }

    /// The inherited environment (or none), minus every variable the request sets and the spawner's
    /// own `NUMAPLACE_*`, plus those. Inherited entries are copied byte for byte from `environ`
    /// without becoming Swift strings: this runs on every spawn.
    private func buildEnvironment(_ request: SpawnRequest) throws(SpawnError) -> Environment {
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

    /// A CPU or node set as the kernel's array of unsigned longs, at least `minimumBits` long.
    static func kernelMask(_ set: CPUSet, minimumBits: Int = 64) -> [UInt] {
        var words = set.words.map { UInt(truncatingIfNeeded: $0) }
        let minimumWords = (minimumBits + UInt.bitWidth - 1) / UInt.bitWidth
        if words.count < minimumWords { words += repeatElement(0, count: minimumWords - words.count) }
        return words
    }

    static func kernelMode(_ mode: MemoryPolicyMode) -> Int32 {
        switch mode {
        case .preferred: return Int32(NP_MPOL_PREFERRED)
        case .bind: return Int32(NP_MPOL_BIND)
        case .interleave: return Int32(NP_MPOL_INTERLEAVE)
        case .none: return Int32(NP_MPOL_DEFAULT)
        }
    }

    static func modeName(_ kernelMode: Int32) -> String {
        switch kernelMode {
        case Int32(NP_MPOL_PREFERRED): return "preferred"
        case Int32(NP_MPOL_BIND): return "bind"
        case Int32(NP_MPOL_INTERLEAVE): return "interleave"
        case Int32(NP_MPOL_DEFAULT): return "default"
        default: return "mode \(kernelMode)"
        }
    }

    static func currentGroups() -> [UInt32] {
        let n = getgroups(0, nil)
        guard n > 0 else { return [] }
        var list = [gid_t](repeating: 0, count: Int(n))
        let got = getgroups(n, &list)
        return got < 0 ? [] : list.prefix(Int(got)).map { UInt32($0) }
    }

    // MARK: Reports

    /// Reads every record in the (non-blocking) report pipe: up to EOF, or EAGAIN when a child that
    /// another thread is spawning still holds a copy of the write end until its own execve.
    static func readReports(_ fd: Int32) -> [np_report] {
        var records: [np_report] = []
        var record = np_report()
        let size = MemoryLayout<np_report>.size
        while records.count < 16 {
            let n: Int
            do {
                n = try Syscall.retrying { read(fd, &record, size) }
            } catch {
                break
            }
            // Records are written whole (far below PIPE_BUF), so a short read means no more records.
            guard n == size else { break }
            records.append(record)
        }
        return records
    }

    private func describe(_ step: SpawnStep, record: np_report, request: SpawnRequest, path: String,
                          target: CPUSet, setGroups groups: [UInt32]) -> String {
        switch step {
        case .signals: return record.mode > 0 ? "reset the disposition of signal \(record.mode)" : "reset the signal mask"
        case .setsid: return "setsid"
        case .pdeathsig: return "prctl(PR_SET_PDEATHSIG, \(request.parentDeathSignal ?? 0))"
        case .restoreAffinity: return "sched_setaffinity(saved original CPUs \(savedOriginal.cpus))"
        case .resetMempolicy: return "set_mempolicy(default)"
        case .setAffinity: return "sched_setaffinity(CPUs \(target))"
        case .setMempolicy:
            let nodes = record.mode == Int32(NP_MPOL_PREFERRED)
                ? Array(request.placement.memory.nodes.prefix(1)) : request.placement.memory.nodes
            let list = CPUSet(nodes.map(\.rawValue))
            return "set_mempolicy(\(Spawner.modeName(record.mode)), \(nodes.count == 1 ? "node" : "nodes") \(list))"
        case .setgroups: return "setgroups(\(groups.map(String.init).joined(separator: ",")))"
        case .setgid: return "setgid(\(request.credentials?.gid ?? 0))"
        case .setuid: return "setuid(\(request.credentials?.uid ?? 0))"
        case .chdir: return "chdir \(request.workingDirectory ?? "")"
        case .stdio:
            let names = ["stdin", "stdout", "stderr"]
            guard record.mode >= 0 && record.mode < 3 else { return "move the report pipe above stdio" }
            return "dup2 onto \(names[Int(record.mode)])"
        case .closeFDs: return "close_range(3, ~0)"
        case .rlimits: return "prlimit(resource \(record.mode))"
        case .exec: return "exec \(path)"
        case .clone: return "clone"
        case .prepare: return "prepare"
        }
    }
}

/// NUL-terminated C strings and a NULL-terminated array of pointers to them, as execve takes argv
/// and envp, in one allocation each; freed with the object.
final class CStringArray {
    enum Piece {
        /// A C string to copy as is (an `environ` entry).
        case borrowed(UnsafePointer<CChar>)
        case owned(String)
    }

    let storage: UnsafeMutableBufferPointer<CChar>
    let pointers: UnsafeMutableBufferPointer<UnsafeMutablePointer<CChar>?>

    convenience init(_ strings: [String], what: String) throws(SpawnError) {
        try self.init(strings.map { .owned($0) }, what: what)
    }

    init(_ pieces: [Piece], what: String) throws(SpawnError) {
        var lengths: [Int] = []
        lengths.reserveCapacity(pieces.count)
        for piece in pieces {
            switch piece {
            case .borrowed(let c): lengths.append(strlen(c))
            case .owned(let s):
                if s.utf8.contains(0) {
                    throw SpawnError(step: .prepare, errno: .invalidArgument, operation: "\(what): a NUL byte in \"\(s.prefix(64))\"")
                }
                lengths.append(s.utf8.count)
            }
        }
        storage = .allocate(capacity: max(1, lengths.reduce(pieces.count, +)))
        pointers = .allocate(capacity: pieces.count + 1)
        guard let base = storage.baseAddress else { preconditionFailure("allocate returned no memory") }
        var cursor = base
        for (i, piece) in pieces.enumerated() {
            pointers[i] = cursor
            switch piece {
            case .borrowed(let c): cursor.update(from: c, count: lengths[i])
            case .owned(let s):
                var s = s
                s.withUTF8 { utf8 in
                    utf8.withMemoryRebound(to: CChar.self) { chars in
                        if let src = chars.baseAddress { cursor.update(from: src, count: chars.count) }
                    }
                }
            }
            cursor[lengths[i]] = 0
            cursor += lengths[i] + 1
        }
        pointers[pieces.count] = nil
    }

    deinit {
        storage.deallocate()
        pointers.deallocate()
    }
}
