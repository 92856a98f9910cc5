import CNumaPlaceShim
import NumaPlaceCore
import NumaPlaceSyscall

/// The step of the spawn sequence (DESIGN.md) at which something failed or degraded.
/// The raw value is the `step` of the Varlink `SpawnFailed` error.
public enum SpawnStep: String, Sendable, CaseIterable {
    case signals, setsid, pdeathsig, restoreAffinity, resetMempolicy, setAffinity, setMempolicy
    case setgroups, setgid, setuid, chdir, stdio, closeFDs, exec, rlimits
    /// clone(2) itself, in the parent.
    case clone
    /// Building argv, envp and the masks in the parent, before any process exists.
    case prepare

    init?(child value: Int32) {
        switch value {
        case Int32(NP_STEP_SIGNALS.rawValue): self = .signals
        case Int32(NP_STEP_SETSID.rawValue): self = .setsid
        case Int32(NP_STEP_PDEATHSIG.rawValue): self = .pdeathsig
        case Int32(NP_STEP_RESTORE_AFFINITY.rawValue): self = .restoreAffinity
        case Int32(NP_STEP_RESET_MEMPOLICY.rawValue): self = .resetMempolicy
        case Int32(NP_STEP_SET_AFFINITY.rawValue): self = .setAffinity
        case Int32(NP_STEP_SET_MEMPOLICY.rawValue): self = .setMempolicy
        case Int32(NP_STEP_SETGROUPS.rawValue): self = .setgroups
        case Int32(NP_STEP_SETGID.rawValue): self = .setgid
        case Int32(NP_STEP_SETUID.rawValue): self = .setuid
        case Int32(NP_STEP_CHDIR.rawValue): self = .chdir
        case Int32(NP_STEP_STDIO.rawValue): self = .stdio
        case Int32(NP_STEP_CLOSE_FDS.rawValue): self = .closeFDs
        case Int32(NP_STEP_EXEC.rawValue): self = .exec
        case Int32(NP_STEP_RLIMITS.rawValue): self = .rlimits
        default: return nil
        }
    }
}

/// A spawn that did not produce a running worker: the step, the kernel's errno, and what the step
/// was doing. `description` reads "exec /opt/x: No such file or directory" or
/// "set_mempolicy(bind, node 1): Operation not permitted". The daemon maps it to the Varlink error
/// `io.numaplaced.Manager.SpawnFailed(step: step.rawValue, errno: errno.rawValue, message: description)`.
public struct SpawnError: Error, Hashable, Sendable, CustomStringConvertible {
    public var step: SpawnStep
    public var errno: Errno
    /// The operation with its arguments: "exec /opt/x", "chdir /srv/work", "setuid(4294967295)".
    public var operation: String

    public init(step: SpawnStep, errno: Errno, operation: String) {
        self.step = step
        self.errno = errno
        self.operation = operation
    }

    public var description: String { "\(operation): \(errno)" }
}

/// Something best-effort admission weakened in the child, and what the worker got instead.
public struct SpawnDegradation: Hashable, Sendable, CustomStringConvertible {
    public var step: SpawnStep
    public var errno: Errno
    public var operation: String
    /// What was applied instead, in words ("stays on the saved original CPUs 0-7").
    public var fallback: String

    public var description: String { "\(operation): \(errno); \(fallback)" }
}
