import Glibc
import NumaPlaceCore

/// Everything a worker is started with. The placement itself comes decided from Core
/// (`PlacementPolicy.decide`); the spawner only applies it.
public struct SpawnRequest: Sendable {
    /// argv; argv[0] is the executable, an absolute or relative path, or a name looked up in PATH
    /// (the worker's PATH if its environment has one, else the daemon's). Passed to execve as is.
    public var argv: [String]
    /// Start from the daemon's own environment (true) or from an empty one.
    public var inheritEnvironment: Bool
    /// Variables set on top of the inherited ones. `NUMAPLACE_*` are the spawner's and are replaced.
    public var environment: [String: String]
    /// nil: the daemon's working directory.
    public var workingDirectory: String?
    public var stdin: StdioChoice
    public var stdout: StdioChoice
    public var stderr: StdioChoice
    /// nil: keep the daemon's uid, gid and groups.
    public var credentials: Credentials?
    public var placement: PlacementDecision
    public var admission: Admission
    /// PR_SET_PDEATHSIG: the signal the worker gets when the spawning *thread* exits (prctl(2)).
    public var parentDeathSignal: Int32?
    /// Limits set in the worker before its credentials (the caller's, `PeerProcess`); empty: the
    /// daemon's own, inherited.
    public var resourceLimits: [ResourceLimit] = []
    /// An `O_PATH|O_DIRECTORY` descriptor of the cgroup v2 group the worker is born into (clone3
    /// `CLONE_INTO_CGROUP`, Linux 5.7), so that it never runs outside it; nil: the daemon's own
    /// cgroup, with clone(2). The caller keeps ownership.
    public var cgroupDirectory: Int32?
    /// How the child is made; `.automatic` but for measurements and tests.
    public var cloneMethod: CloneMethod = .automatic
    /// Descriptors of the daemon's the worker gets at 3, 4, … (a caller's passed pipe or eventfd),
    /// at most `Spawner.maxExtraDescriptors`. The caller keeps ownership.
    public var extraDescriptors: [Int32] = []

    public init(argv: [String], inheritEnvironment: Bool = true, environment: [String: String] = [:],
                workingDirectory: String? = nil, stdin: StdioChoice = .null, stdout: StdioChoice = .inherit,
                stderr: StdioChoice = .inherit, credentials: Credentials? = nil,
                placement: PlacementDecision, admission: Admission = .strict, parentDeathSignal: Int32? = nil) {
        self.argv = argv
        self.inheritEnvironment = inheritEnvironment
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.credentials = credentials
        self.placement = placement
        self.admission = admission
        self.parentDeathSignal = parentDeathSignal
    }
}

/// Where one of the worker's descriptors 0, 1, 2 comes from.
public enum StdioChoice: Hashable, Sendable {
    /// Whatever the daemon has there (open or closed).
    case inherit
    /// /dev/null.
    case null
    /// A file opened by the parent before the clone, with the worker's filesystem identity (its uid,
    /// gid and groups on the spawning thread only), non-blocking, and refused unless it is a regular
    /// file outside /proc or /dev/null: read-only for stdin, created and appended to for stdout and
    /// stderr. A FIFO, a socket, a terminal or another device must be passed as a descriptor.
    case file(String)
    /// A descriptor of the daemon's (a journald stream from `sd_journal_stream_fd`, a pipe).
    /// The caller keeps ownership and closes it after `spawn` returns.
    case fd(Int32)
}

/// The identity a worker runs as.
public struct Credentials: Hashable, Sendable {
    public var uid: uid_t
    public var gid: gid_t
    /// Supplementary groups.
    public var groups: [gid_t]

    public init(uid: uid_t, gid: gid_t, groups: [gid_t]) {
        self.uid = uid
        self.gid = gid
        self.groups = groups
    }
}

/// The system call that makes the spawn child (docs/architecture.md, "Born into its group").
public enum CloneMethod: Int32, Sendable, CaseIterable {
    /// clone(2) without a cgroup; clone3 with one, sharing memory where the shim has a trampoline.
    case automatic = 0
    /// clone3(CLONE_VM|CLONE_VFORK) on a stack of the shim's, through its per-architecture trampoline.
    case clone3SharedMemory = 1
    /// clone3(CLONE_VFORK) without CLONE_VM: fork semantics, the daemon's page tables copied.
    case clone3CopiedMemory = 2
}
