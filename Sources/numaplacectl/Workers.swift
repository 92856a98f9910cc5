import ArgumentParser
import NumaPlaceProtocol

struct Workers: ManagerCommand {
    static let configuration = CommandConfiguration(
        abstract: "List workers (yours; root sees all), running and recently exited.",
        discussion: """
        CPUS and MEMORY are the placement read back from the worker (/proc/PID/status and numa_maps), or \
        the requested one where it could not be read.

        Example: numaplacectl workers
        """)

    @OptionGroup var global: GlobalOptions

    func run() throws {
        let reply = try session().call("ListWorkers")
        if global.json { return Output.json(reply.parameters) }
        let workers = try reply.decode(Manager.ListWorkersReply.self).workers
        if workers.isEmpty { return Output.line("no workers") }
        Format.workerTable(workers).print()
    }
}

struct WorkerCommand: ManagerCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Show one worker: command, owner, requested and applied placement, exit status.",
        discussion: "Example: numaplacectl worker w3")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The worker's id (w1, w2, …).")
    var id: String

    func run() throws {
        let reply = try session().call("GetWorker", Manager.WorkerIDParameters(id: id))
        if global.json { return Output.json(reply.parameters) }
        Format.workerDetails(try reply.decode(Manager.WorkerReply.self).worker).forEach { Output.line($0) }
    }
}

struct Kill: ManagerCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send a signal to a worker (SIGTERM unless --signal says otherwise).",
        discussion: """
        Examples:
          numaplacectl kill w3
          numaplacectl kill w3 --signal KILL
        """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The worker's id.")
    var id: String

    @Option(name: .shortAndLong, help: ArgumentHelp("Signal number or name (TERM, SIGKILL, 9, …).", valueName: "signal"))
    var signal: String = "TERM"

    func validate() throws {
        guard Signals.parse(signal) != nil else {
            throw ValidationError("--signal \(signal): not a signal number (1-64) or name such as TERM, KILL, HUP, USR1")
        }
    }

    func run() throws {
        guard let number = Signals.parse(signal) else { throw CtlError.usage("--signal \(signal): not a signal") }
        let reply = try session().call("Signal", Manager.SignalParameters(id: id, signal: number))
        if global.json { return Output.json(reply.parameters) }
        Output.line("sent signal \(number)\(Signals.name(of: number).map { " (\($0))" } ?? "") to worker \(id)")
    }
}

struct Wait: ManagerCommand {
    static let configuration = CommandConfiguration(
        abstract: "Wait until a worker has exited and show how it ended.",
        discussion: """
        Exits 0 once the worker has exited, whatever its status (spawn --wait exits with the status).

        Example: numaplacectl wait w3
        """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The worker's id.")
    var id: String

    func run() throws {
        let reply = try session().call("Wait", Manager.WorkerIDParameters(id: id))
        if global.json { return Output.json(reply.parameters) }
        let w = try reply.decode(Manager.WorkerReply.self).worker
        Output.line("worker \(w.id) (pid \(w.pid)) \(Format.exit(w.exit))")
    }
}

struct Reload: ManagerCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make the daemon re-read its configuration and rescan sysfs, like SIGHUP (root only).",
        discussion: """
        A configuration the daemon refuses leaves the running one in place; the error names the file and line.

        Example: sudo numaplacectl reload
        """)

    @OptionGroup var global: GlobalOptions

    func run() throws {
        let reply = try session().call("Reload")
        if global.json { return Output.json(reply.parameters) }
        Output.line("configuration reloaded and sysfs rescanned")
    }
}
