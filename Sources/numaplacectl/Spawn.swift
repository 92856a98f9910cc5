import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import NumaPlaceCore
import NumaPlaceProtocol
import NumaPlaceSyscall

struct Spawn: ManagerCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start a command as a worker placed on a device's node, a node, or a CPU list.",
        discussion: """
        The daemon starts the command with your uid, gid and groups, your environment and working \
        directory (unless --clear-env / --cwd say otherwise), pinned to the target's CPUs with the memory \
        policy asked for, and reports the placement it read back from /proc. Workers see NUMAPLACE_DEVICE, \
        NUMAPLACE_NODE and NUMAPLACE_CPUS. Without a target a worker gets every CPU the daemon may give.

        stdin, stdout and stderr are null (the default), inherit (the daemon's own; its own user only), \
        journal (stdout and stderr only: a journald stream numaplacectl opens and passes, so the records \
        carry your uid; the identifier is --name) or a file path (stdout and stderr append).

        With --wait numaplacectl waits for the worker and exits with its exit code, or 128 + the signal \
        that killed it. Interrupting numaplacectl stops the waiting, not the worker (numaplacectl kill ID).

        Examples:
          numaplacectl spawn --device 3b:00.0 -- python3 serve.py --port 8000
          numaplacectl spawn --node 1 --memory bind --exclusive-cores 4 -- ./shard
          numaplacectl spawn --cpus 0-3 --wait -- ./bench
        """)

    @OptionGroup var global: GlobalOptions

    @OptionGroup var placement: PlacementOptions

    @Flag(name: .long, help: "With --device: aim the memory policy at the device's own memory node (coherent GPU memory).")
    var deviceMemory = false

    @Option(name: .long, help: ArgumentHelp("Memory limit of the worker's cgroup in bytes (memory.max; cgroup v2 only).", valueName: "bytes"))
    var memoryMax: Int?

    @Option(name: .long, help: ArgumentHelp("Process limit of the worker's cgroup (pids.max; cgroup v2 only).", valueName: "n"))
    var pidsMax: Int?

    @Option(name: .long, help: ArgumentHelp("CPU weight of the worker's cgroup, 1-10000 (cpu.weight; cgroup v2 only).", valueName: "n"))
    var cpuWeight: Int?

    @Option(name: .long, help: ArgumentHelp("The worker's stdin: null or inherit (or a file).", valueName: "null|inherit|path"))
    var stdin: String?

    @Option(name: .long, help: ArgumentHelp("The worker's stdout.", valueName: "null|inherit|journal|path"))
    var stdout: String?

    @Option(name: .long, help: ArgumentHelp("The worker's stderr.", valueName: "null|inherit|journal|path"))
    var stderr: String?

    @Option(name: .long, help: "A name for the worker (its journal identifier).")
    var name: String?

    @Option(name: .long, help: "Run as this user (root only).")
    var user: String?

    @OptionGroup var commandEnvironment: CommandEnvironmentOptions

    @Flag(name: .long, help: "Wait for the worker and exit with its status.")
    var wait = false

    @Argument(parsing: .postTerminator, help: ArgumentHelp("The command and its arguments, after --.", valueName: "command"))
    var command: [String] = []

    func validate() throws {
        guard !command.isEmpty, !(command.first ?? "").isEmpty else {
            throw ValidationError("give the command to start after --, as in: numaplacectl spawn --node 0 -- /bin/true")
        }
        for (option, value, journal) in [("--stdin", stdin, false), ("--stdout", stdout, true), ("--stderr", stderr, true)] {
            guard let value else { continue }
            if value == "journal" && !journal { throw ValidationError("\(option) cannot read from the journal") }
            if value.isEmpty { throw ValidationError("\(option) needs null, inherit, journal or a path") }
        }
    }

    /// `null`, `inherit` and `journal` pass as they are; anything else is a path, made absolute
    /// against our working directory (the daemon's is not ours).
    static func stdio(_ value: String?, cwd: String) -> String? {
        guard let value else { return nil }
        if ["null", "inherit", "journal"].contains(value) || value.hasPrefix("/") { return value }
        return absolute(value, cwd: cwd)
    }

    static func absolute(_ path: String, cwd: String) -> String {
        path.hasPrefix("/") ? path : (cwd.hasSuffix("/") ? cwd : cwd + "/") + path
    }

    /// This process's environment (unless `clearEnv`) with `env` on top, and the worker's working
    /// directory: `cwd` made absolute, or ours.
    static func environment(clearEnv: Bool, env: [String], cwd: String?) throws(CtlError) -> (environment: [String], workingDirectory: String) {
        let here = FileManager.default.currentDirectoryPath
        var environment: [String] = []
        if !clearEnv {
            environment = ProcessInfo.processInfo.environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        }
        for e in env {
            let key = e.prefix { $0 != "=" }
            environment.removeAll { $0.hasPrefix(key + "=") }
            environment.append(e)
        }
        guard here.hasPrefix("/") || (cwd?.hasPrefix("/") ?? false) else {
            throw .usage("cannot tell the current directory; give --cwd with an absolute path")
        }
        let workingDirectory = cwd.map { Self.absolute($0, cwd: here) } ?? here
        if !clearEnv && !env.contains(where: { $0.hasPrefix("PWD=") }) {
            // Ours named our directory; the worker's names its own.
            environment.removeAll { $0.hasPrefix("PWD=") }
            environment.append("PWD=\(workingDirectory)")
        }
        return (environment, workingDirectory)
    }

    func parameters() throws(CtlError) -> Manager.SpawnParameters {
        let here = FileManager.default.currentDirectoryPath
        let e = commandEnvironment, t = placement
        let (environment, workingDirectory) = try Self.environment(clearEnv: e.clearEnv, env: e.env, cwd: e.cwd)
        return Manager.SpawnParameters(
            argv: command, device: t.device, node: t.node, cpus: t.cpus, environment: environment,
            workingDirectory: workingDirectory, memory: t.memory?.rawValue,
            exclusiveCores: t.exclusiveCores, admission: t.admission?.rawValue,
            stdin: Self.stdio(stdin, cwd: here), stdout: Self.stdio(stdout, cwd: here),
            stderr: Self.stdio(stderr, cwd: here), user: user, name: name,
            deviceMemory: deviceMemory ? true : nil,
            devices: t.deviceList, runtimeEnvironment: t.runtimeEnv ? true : nil,
            memoryMax: memoryMax, pidsMax: pidsMax, cpuWeight: cpuWeight)
    }

    func run() throws {
        let session = try session()
        var parameters = try parameters()
        // `journal` is a stream this process opens and passes, so that journald records the worker's
        // lines as ours (our uid), not as the daemon's.
        var passed: [Int32] = []
        defer { for fd in passed { Syscall.close(fd) } }
        let identifier = name ?? String(command.first?.split(separator: "/").last ?? "worker")
        for (value, priority, isStdout) in [(stdout, Int32(6), true), (stderr, Int32(3), false)] where value == "journal" {
            switch JournalStream.open(identifier: identifier, priority: priority) {
            case .success(let fd):
                passed.append(fd)
                if isStdout {
                    parameters.stdout = nil
                    parameters.stdoutDescriptor = passed.count - 1
                } else {
                    parameters.stderr = nil
                    parameters.stderrDescriptor = passed.count - 1
                }
            case .failure(let e):
                throw CtlError.usage("--\(isStdout ? "stdout" : "stderr") journal: cannot connect to journald at \(JournalStream.socketPath): \(e)")
            }
        }
        let started = try session.call("Spawn", parameters, descriptors: passed)
        guard wait else {
            if global.json { return Output.json(started.parameters) }
            let w = try started.decode(Manager.WorkerReply.self).worker
            Format.workerDetails(w).forEach { Output.line($0) }
            return
        }
        if !global.json {
            let w = try started.decode(Manager.WorkerReply.self).worker
            Format.workerDetails(w).forEach { Output.line($0) }
        }
        let id = try started.decode(Manager.WorkerReply.self).worker.id
        let done = try session.call("Wait", Manager.WorkerIDParameters(id: id))
        let w = try done.decode(Manager.WorkerReply.self).worker
        if global.json {
            Output.json(done.parameters)
        } else {
            Output.line("worker \(w.id) \(Format.exit(w.exit))")
        }
        throw WorkerExit(code: Self.exitCode(w.exit))
    }

    /// The shell's convention: the exit code, or 128 + the signal; an unknown status is an error (1).
    static func exitCode(_ e: Manager.ExitStatus?) -> Int32 {
        switch (e?.how, e?.code, e?.signal) {
        case (.exited, let code?, _): return Int32(truncatingIfNeeded: code & 0xff)
        case (.killed, _, let signal?) where (1...127).contains(signal): return Int32(128 + signal)
        default: return ExitStatus.errorReply
        }
    }
}

extension MemoryPolicyMode: ExpressibleByArgument {}
extension Admission: ExpressibleByArgument {}
