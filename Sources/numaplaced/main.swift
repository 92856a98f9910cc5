import ArgumentParser
import NumaPlaceDaemon

/// numaplaced: arguments → `DaemonOptions` → `DaemonMain.run`; the daemon lives in NumaPlaceDaemon.
@main
struct NumaPlaced: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "numaplaced",
        abstract: "Place accelerator workers on the NUMA node of their device.",
        discussion: """
        Serves io.numaplaced.Manager (Varlink) on a Unix socket. Under systemd the socket comes from
        numaplaced.socket; otherwise it binds --socket (default /run/numaplaced/io.numaplaced as root,
        $XDG_RUNTIME_DIR/numaplaced/io.numaplaced for other users).

        Examples:
          numaplaced --dump                                  # the model of this host, as JSON
          numaplaced --sysfs-root /tmp/machine --dump        # the model of a captured machine
          numaplaced --socket /tmp/np/io.numaplaced          # serve on a path of your own
        """,
        version: ManagerService.version)

    @Option(name: .long, help: "Read sysfs and procfs under DIR instead of / (a captured machine; spawning and hotplug are off).")
    var sysfsRoot: String = "/"

    @Flag(name: .long, help: "Print the scanned model as JSON (the GetTopology reply) and exit.")
    var dump = false

    @Option(name: .long, help: "Listen on PATH (overrides Socket= in the configuration).")
    var socket: String?

    @Option(name: .long, help: "Configuration file, or directory with numaplaced.conf and numaplaced.conf.d/.")
    var config: String = DaemonOptions().configPath

    @Option(name: .long, help: "Directory for the persisted worker table (default: the socket's directory).")
    var stateDir: String?

    @Option(name: .long, help: "Hotplug events from udev, kernel, or none (overrides EventSource=).")
    var eventSource: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(name: .long, help: "Logs to automatic, journal or stderr.")
    var logTo: String = "automatic"

    @Flag(name: .long, help: "Give workers no cgroup of their own, even where cgroup v2 and delegation allow it (another manager owns the cgroups); every reply then says placement is degraded.")
    var noWorkerCgroups = false

    private func options() -> Result<DaemonOptions, DaemonOptions.OptionError> {
        DaemonOptions.parse(sysfsRoot: sysfsRoot, dump: dump, socket: socket, config: config, stateDirectory: stateDir,
                            eventSource: eventSource, logLevel: logLevel, logTo: logTo, noWorkerCgroups: noWorkerCgroups)
    }

    mutating func validate() throws {
        if case .failure(let e) = options() { throw ValidationError(e.description) }
    }

    func run() async throws {
        let options = try options().get()
        let status = await DaemonMain.run(options)
        if status != 0 { throw ExitCode(status) }
    }
}
