import ArgumentParser
import Dispatch
#if canImport(Glibc)
import Glibc
#endif
import NumaPlaceCore
import NumaPlaceProtocol

/// `numaplacectl run`: a placed command in the foreground, as `numactl` runs one. The worker gets this
/// process's own stdin, stdout and stderr (passed over the socket, so a terminal stays the same
/// terminal), is tied to this process's connection (gone within 2 s of our death, however we die),
/// receives the signals a terminal or a supervisor sends us, and its exit status becomes ours.
struct Run: ManagerCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a command placed on a device's node, a node, or a CPU list, in the foreground.",
        discussion: """
        Like numactl or taskset: the command reads and writes this terminal (or these pipes), Ctrl-C and \
        other signals (INT, TERM, HUP, QUIT, USR1, USR2, WINCH) reach it, and numaplacectl exits with its \
        exit code, or 128 + the signal that killed it. If numaplacectl itself is killed, the daemon stops \
        the command (SIGTERM, then SIGKILL 2 s later). `spawn` is the detached form.

        Examples:
          numaplacectl run --device 3b:00.0 -- python3 bench.py
          numaplacectl run --node 0 --memory bind -- ./stream
          numactl --cpunodebind=0 --membind=0 ./stream     # the same, by hand
        """)

    @OptionGroup var global: GlobalOptions

    @OptionGroup var placement: PlacementOptions

    @Option(name: .long, help: "A name for the worker.")
    var name: String?

    @OptionGroup var commandEnvironment: CommandEnvironmentOptions

    @Argument(parsing: .postTerminator, help: ArgumentHelp("The command and its arguments, after --.", valueName: "command"))
    var command: [String] = []

    /// What a terminal or a supervisor sends the foreground process, forwarded to the worker.
    static let forwarded: [Int32] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH]

    func validate() throws {
        guard !command.isEmpty, !(command.first ?? "").isEmpty else {
            throw ValidationError("give the command to run after --, as in: numaplacectl run --node 0 -- /bin/true")
        }
    }

    func run() throws {
        let t = placement, e = commandEnvironment
        try Run.execute(socket: global.socketPath(), RunRequest(
            device: t.device, devices: t.devices, node: t.node, cpus: t.cpus, memory: t.memory?.rawValue,
            exclusiveCores: t.exclusiveCores, admission: t.admission?.rawValue, name: name, runtimeEnv: t.runtimeEnv,
            clearEnv: e.clearEnv, env: e.env, cwd: e.cwd, command: command))
    }

    /// Spawns `r` tied, with our 0, 1, 2, forwards signals while it runs, and throws its exit status.
    static func execute(socket: String, _ r: RunRequest) throws {
        // Blocked before any other thread exists, so every thread inherits the mask and the signals
        // stay pending for the forwarding thread's sigwait (also those that come before the spawn).
        var set = sigset_t()
        sigemptyset(&set)
        for s in Self.forwarded { sigaddset(&set, s) }
        pthread_sigmask(SIG_BLOCK, &set, nil)

        let (environment, workingDirectory) = try Spawn.environment(clearEnv: r.clearEnv, env: r.env, cwd: r.cwd)
        // Our 0, 1, 2 as they are; one that is closed becomes /dev/null in the worker.
        var passed: [Int32] = []
        var indices: [Int?] = []
        for fd: Int32 in 0...2 {
            if fcntl(fd, F_GETFD) >= 0 {
                indices.append(passed.count)
                passed.append(fd)
            } else {
                indices.append(nil)
            }
        }
        var p = Manager.SpawnParameters(
            argv: r.command, device: r.device, node: r.node, cpus: r.cpus, environment: environment,
            workingDirectory: workingDirectory, memory: r.memory, exclusiveCores: r.exclusiveCores,
            admission: r.admission, name: r.name,
            devices: r.devices.map { $0.split(separator: ",").map(String.init) }, runtimeEnvironment: r.runtimeEnv ? true : nil,
            stdinDescriptor: indices[0], stdoutDescriptor: indices[1], stderrDescriptor: indices[2], tied: true)
        if indices[1] == nil { p.stdout = "null" }
        if indices[2] == nil { p.stderr = "null" }

        // Calls on one connection are answered in order, and this one will sit in Wait: signals go
        // over a second connection, opened now so that forwarding never waits for a connect.
        let session = try ManagerSession(path: socket)
        let signals = try ManagerSession(path: socket)
        let started = try session.call("Spawn", p, descriptors: passed)
        let id = try started.decode(Started.self).worker.id
        let waited = set
        DispatchQueue.global().async {
            var set = waited
            while true {
                var received: Int32 = 0
                guard sigwait(&set, &received) == 0 else { continue }
                // A worker that has just exited cannot be signalled: Wait reports it anyway.
                _ = try? signals.call("Signal", Manager.SignalParameters(id: id, signal: Int(received)))
            }
        }
        let done = try session.call("Wait", Manager.WorkerIDParameters(id: id))
        let w = try done.decode(Done.self).worker
        throw WorkerExit(code: Spawn.exitCode(w.exit))
    }

    // Only what `run` reads of its two replies. Decoding the whole `Manager.WorkerReply` made the
    // runtime look up the Decodable conformances of every field's type (a scan of the binary's
    // conformance records per type), about 1.5 M of the 7 M instructions of a whole `run`.
    private struct Started: Decodable {
        struct Worker: Decodable { let id: String }
        let worker: Worker
    }

    private struct Done: Decodable {
        struct Worker: Decodable { let exit: Manager.ExitStatus? }
        let worker: Worker
    }
}
