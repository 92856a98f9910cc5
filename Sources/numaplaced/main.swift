import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import Logging
import NumaPlaceCore
import NumaPlaceDaemon
import NumaPlacePlatform
import NumaPlaceProtocol

/// numaplaced: main is thin on purpose (arguments → services → run); the daemon lives in NumaPlaceDaemon.
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
    var config: String = ConfigLoader.defaultDirectory

    @Option(name: .long, help: "Directory for the persisted worker table (default: the socket's directory).")
    var stateDir: String?

    @Option(name: .long, help: "Hotplug events from udev, kernel, or none (overrides EventSource=).")
    var eventSource: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(name: .long, help: "Logs to automatic, journal or stderr.")
    var logTo: String = "automatic"

    mutating func validate() throws {
        if let e = eventSource, !["udev", "kernel", "none"].contains(e) {
            throw ValidationError("--event-source must be udev, kernel or none")
        }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level \(logLevel)") }
        guard LoggingSetup.Destination(rawValue: logTo) != nil else { throw ValidationError("--log-to must be automatic, journal or stderr") }
    }

    func run() async throws {
        let root = SysfsRoot(sysfsRoot)
        // Before anything else: the model and the saved original, the CPUs and nodes our cgroup
        // allows. Whatever narrower affinity this process inherited is about the daemon, never its workers.
        let (configuration, files): (Configuration, [String])
        do {
            (configuration, files) = try loadConfiguration(config)
        } catch {
            fputs("numaplaced: \(error)\n", stderr)
            throw ExitCode(78)  // EX_CONFIG
        }
        let scanner = SysfsScanner(root: root, classifier: configuration.classifier,
                                   nodeOverrides: configuration.localityOverrides)
        let inventory = scanner.scan()
        var warnings: [ScanWarning] = []
        let savedOriginal = AllowedSet.read(root: root, topology: inventory.topology, warnings: &warnings)

        if dump {
            var inv = inventory
            inv.warnings += warnings
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let data = try encoder.encode(Manager.GetTopologyReply(inv, allowed: savedOriginal))
            print(String(decoding: data, as: UTF8.self))
            return
        }

        LoggingSetup.bootstrap(identifier: "numaplaced", level: Logger.Level(rawValue: logLevel) ?? .info,
                               destination: LoggingSetup.Destination(rawValue: logTo) ?? .automatic)
        let logger = Logger(label: "numaplaced")
        for w in warnings { logger.warning("\(w)") }
        var options = DaemonOptions()
        options.root = root
        options.socketPath = socket
        options.stateDirectory = stateDir
        options.eventSource = eventSource
        options.configPath = config
        let daemon: Daemon
        do {
            daemon = try Daemon(options: options, configuration: configuration, configurationFiles: files,
                                savedOriginal: savedOriginal, inventory: inventory, logger: logger)
        } catch {
            logger.critical("cannot start: \(error)")
            throw ExitCode(1)
        }
        do {
            try await daemon.run()
        } catch {
            logger.critical("stopped: \(error)")
            throw ExitCode(1)
        }
    }
}
