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
    static let ownedPrefixes = environmentKeys.map { Array(($0 + "=").utf8CString.dropLast()) }
    /// The most descriptors a worker gets beyond 0, 1, 2 (the child's NP_MAX_EXTRA_FDS).
    public static let maxExtraDescriptors = Int(NP_MAX_EXTRA_FDS)

    /// The PATH used when neither the worker's nor the daemon's environment has one.
    public static let defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    public func spawn(_ request: SpawnRequest) throws(SpawnError) -> SpawnedProcess {
        let strict = request.admission == .strict
        var degradations: [SpawnDegradation] = []

        // argv, envp and the executable.
        guard let name = request.argv.first, !name.isEmpty else {
            throw SpawnError(step: .prepare, errno: .invalidArgument, operation: "argv: empty")
        }
        guard request.extraDescriptors.count <= Spawner.maxExtraDescriptors else {
            throw SpawnError(step: .prepare, errno: .invalidArgument,
                             operation: "\(request.extraDescriptors.count) extra descriptors (at most \(Spawner.maxExtraDescriptors))")
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

        // The configuration the child reads; every buffer it points at lives until np_spawn returns.
        let buffers = ChildBuffers(argv: argvC, envp: envpC, path: pathC, cwd: cwdC,
                                   savedMask: PinnedArray(savedOriginal.cpus.isEmpty ? [] : savedMask),
                                   targetMask: PinnedArray(targetCPUs.isEmpty ? [] : targetMask),
                                   nodeMask: PinnedArray(nodeMask), preferredMask: PinnedArray(preferredMask),
                                   groups: PinnedArray(groups),
                                   limits: PinnedArray(request.resourceLimits.map {
                                       np_rlimit(resource: $0.resource, soft: $0.soft, hard: $0.hard)
                                   }),
                                   extra: PinnedArray(request.extraDescriptors))
        var config = np_spawn_config()
        buffers.fill(&config)
        let stdioFDs = [request.stdin, request.stdout, request.stderr].enumerated().map { i, choice -> np_stdio in
            var s = np_stdio()
            switch choice {
            case .inherit: s.kind = Int32(NP_STDIO_INHERIT.rawValue)
            case .null: (s.kind, s.fd) = (Int32(NP_STDIO_FD.rawValue), devNull)
            case .fd(let fd): (s.kind, s.fd) = (Int32(NP_STDIO_FD.rawValue), fd)
            case .file: (s.kind, s.fd) = (Int32(NP_STDIO_FD.rawValue), files[i])
            }
            return s
        }
        config.stdio = (stdioFDs[0], stdioFDs[1], stdioFDs[2])
        config.report_fd = reportFDs[1]
        config.strict = strict ? 1 : 0
        config.pdeathsig = request.parentDeathSignal ?? 0
        if memory.mode != .none && !memory.nodes.isEmpty {
            config.mpol_mode = Spawner.kernelMode(memory.mode)
            config.maxnode = maxnode
        } else {
            config.nodemask = nil
            config.preferred_nodemask = nil
        }
        config.set_groups = setGroups ? 1 : 0
        config.set_gid = setGID ? 1 : 0
        config.set_uid = setUID ? 1 : 0
        config.gid = UInt32(request.credentials?.gid ?? 0)
        config.uid = UInt32(request.credentials?.uid ?? 0)
        config.into_cgroup = request.cgroupDirectory == nil ? 0 : 1
        config.cgroup_fd = request.cgroupDirectory ?? -1
        config.clone_method = request.cloneMethod.rawValue
        var pid: pid_t = 0
        var pidfd: Int32 = -1
        let spawnResult = withExtendedLifetime(buffers) { np_spawn(&config, &pid, &pidfd) == 0 ? 0 : errno }
        if spawnResult != 0 {
            throw SpawnError(step: .clone, errno: Errno(spawnResult),
                             operation: request.cgroupDirectory == nil && request.cloneMethod == .automatic
                                 ? "clone" : "clone3\(request.cgroupDirectory == nil ? "" : "(CLONE_INTO_CGROUP)")")
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
}

/// Everything the child's configuration points at, kept alive together until np_spawn returns.
private struct ChildBuffers {
    let argv: CStringArray
    let envp: CStringArray
    let path: CStringArray
    let cwd: CStringArray?
    let savedMask: PinnedArray<UInt>
    let targetMask: PinnedArray<UInt>
    let nodeMask: PinnedArray<UInt>
    let preferredMask: PinnedArray<UInt>
    let groups: PinnedArray<UInt32>
    let limits: PinnedArray<np_rlimit>
    let extra: PinnedArray<Int32>

    /// The pointers and sizes; an empty mask stays null, which the child reads as "not asked for".
    func fill(_ config: inout np_spawn_config) {
        config.path = path.pointers[0].map { UnsafePointer($0) }
        config.argv = UnsafePointer(argv.pointers.baseAddress)
        config.envp = UnsafePointer(envp.pointers.baseAddress)
        config.cwd = cwd?.pointers[0].map { UnsafePointer($0) }
        config.saved_mask = UnsafePointer(savedMask.address)
        config.saved_mask_bytes = savedMask.count * MemoryLayout<UInt>.size
        config.target_mask = UnsafePointer(targetMask.address)
        config.target_mask_bytes = targetMask.count * MemoryLayout<UInt>.size
        config.nodemask = UnsafePointer(nodeMask.address)
        config.preferred_nodemask = UnsafePointer(preferredMask.address)
        config.ngroups = groups.count
        config.groups = UnsafePointer(groups.address)
        config.nrlimits = limits.count
        config.rlimits = UnsafePointer(limits.address)
        config.nextra = extra.count
        config.extra_fds = UnsafePointer(extra.address)
    }
}
