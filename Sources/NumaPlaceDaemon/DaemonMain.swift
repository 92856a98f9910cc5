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
import NumaPlacePlatform
import NumaPlaceProtocol

/// What `numaplaced` does once its arguments are parsed: read the configuration and the model,
/// then either print the model (`--dump`) or serve until told to stop.
public enum DaemonMain {
    /// The process's exit status: 0, 78 (EX_CONFIG) for a configuration refused, 1 for a start or
    /// serve that failed (said on the log first).
    public static func run(_ options: DaemonOptions) async -> Int32 {
        let (configuration, files): (Configuration, [String])
        do {
            (configuration, files) = try loadConfiguration(options.configPath)
        } catch {
            fputs("numaplaced: \(error)\n", stderr)
            return 78
        }
        // Before anything else: the model and the saved original, the CPUs and nodes our cgroup
        // allows. Whatever narrower affinity this process inherited is about the daemon, never its workers.
        let scanner = SysfsScanner(root: options.root, classifier: configuration.classifier,
                                   nodeOverrides: configuration.localityOverrides)
        let inventory = scanner.scan()
        var warnings: [ScanWarning] = []
        let savedOriginal = AllowedSet.read(root: options.root, topology: inventory.topology, warnings: &warnings)

        if options.dump {
            var inv = inventory
            inv.warnings += warnings
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            guard let data = try? encoder.encode(Manager.GetTopologyReply(inv, allowed: savedOriginal)) else { return 1 }
            print(String(decoding: data, as: UTF8.self))
            return 0
        }

        LoggingSetup.bootstrap(identifier: "numaplaced", level: options.logLevel, destination: options.logDestination)
        let logger = Logger(label: "numaplaced")
        for w in warnings { logger.warning("\(w)") }
        let daemon: Daemon
        do {
            daemon = try Daemon(options: options, configuration: configuration, configurationFiles: files,
                                savedOriginal: savedOriginal, inventory: inventory, logger: logger)
        } catch {
            logger.critical("cannot start: \(error)")
            return 1
        }
        do {
            try await daemon.run()
        } catch {
            logger.critical("stopped: \(error)")
            return 1
        }
        return 0
    }
}
