import Dispatch
import NIOConcurrencyHelpers
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import NumaPlaceCore
import NumaPlacePlatform
import NumaPlaceProtocol
import ServiceLifecycle
#if canImport(Glibc)
import Glibc
#endif

/// The assembled daemon: the store, the supervisor, the socket server, the udev watcher and the
/// systemd conversation, run as services of one `ServiceGroup` (SIGTERM/SIGINT shut it down gracefully).
public final class Daemon: @unchecked Sendable {
    public let store: TopologyStore
    public let supervisor: WorkerSupervisor
    public let hub: EventHub
    public let service: ManagerService
    public let server: VarlinkServer
    let options: DaemonOptions
    let logger: Logger
    let notifier = SystemdNotifier()
    let listen: VarlinkServer.Listen
    let socketDescription: String
    private let configState: ConfigState
    let eventSource: EventSource

    final class ConfigState: @unchecked Sendable {
        let lock = NIOLock()
        var configuration: Configuration
        var files: [String]
        init(_ c: Configuration, _ f: [String]) { configuration = c; files = f }
    }

    /// Builds everything up to (not including) serving. `savedOriginal` must have been read
    /// before the process changed anything about itself.
    public init(options: DaemonOptions, configuration: Configuration, configurationFiles: [String],
                savedOriginal: AllowedSet, inventory: Inventory, logger: Logger) throws {
        self.options = options
        self.logger = logger
        configState = ConfigState(configuration, configurationFiles)
        hub = EventHub(maxBacklog: configuration.limits.maxMonitorBacklog)
        let scanner = SysfsScanner(root: options.root, classifier: configuration.classifier,
                                   nodeOverrides: configuration.localityOverrides)
        store = TopologyStore(scanner: scanner, savedOriginal: savedOriginal, workerCPUs: configuration.workerCPUs,
                              hub: hub, initial: inventory)
        let stateDirectory = options.stateDirectory
            ?? (options.socketPath.map(Daemon.parentDirectory) ?? configuration.stateDirectory)
        try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o755])
        // The worker table decides whose processes the daemon adopts and signals: a directory
        // someone else can write would let them forge it. From here on the checked, resolved path.
        let trustedState = try TrustedDirectory.check(stateDirectory)
        supervisor = WorkerSupervisor(
            store: store, hub: hub, stateLog: WorkerStateLog(directory: trustedState),
            spawner: Spawner(savedOriginal: savedOriginal), logger: logger, limits: configuration.limits,
            defaults: SpawnDefaults(configuration),
            spawnEnabled: options.root.isLiveHost,
            cgroups: Daemon.workerCgroups(options.root, turnedOff: options.noWorkerCgroups, logger: logger),
            journalStream: { identifier, priority in
                try? JournalStream.open(identifier: identifier, priority: SyslogPriority(rawValue: priority) ?? .info)
            })
        // Taken (and LISTEN_* unset) before any server thread exists: unsetenv is not thread-safe.
        let activatedSocket = try ListenFDs.take(unsetEnvironment: true).first
        let wanted = options.root.isLiveHost ? options.eventSource ?? configuration.eventSource : .none
        // libudev's "udev" source hears nothing when udevd is not running (containers, an
        // initramfs); the kernel's own uevents still arrive, so use them rather than go deaf.
        if wanted == .udev && !FileManager.default.fileExists(atPath: "/run/udev/control") {
            logger.notice("udevd is not running (no /run/udev/control): taking hotplug events from the kernel")
            eventSource = .kernel
        } else {
            eventSource = wanted
        }
        let state = configState
        let reloadBox = ReloadBox()
        service = ManagerService(store: store, supervisor: supervisor, hub: hub, eventSource: eventSource.rawValue,
                                 configurationFiles: { state.lock.withLock { state.files } },
                                 reload: { await reloadBox.reload?() })
        server = VarlinkServer(dispatcher: service, limits: configuration.limits, logger: logger)

        // Socket activation wins over any path: systemd owns the socket then.
        if let activated = activatedSocket {
            listen = .descriptor(activated.fd)
            socketDescription = "socket-activated fd \(activated.fd)\(activated.path.map { " (\($0))" } ?? "")"
        } else {
            let path = options.socketPath ?? (configurationFiles.isEmpty && configuration.socketPath == Configuration.defaultSocketPath
                                              ? DaemonOptions.defaultSocketPath() : configuration.socketPath)
            listen = .path(path)
            socketDescription = path
        }
        reloadBox.reload = { [weak self] in await self?.reload() }
    }

    /// `--no-worker-cgroups`: said once in the log, and in every reply as on a host without cgroup v2.
    /// Detects cgroup v2 and delegation once, before any worker exists (unless `--no-worker-cgroups`
    /// turned them off), and says which way it went.
    static func workerCgroups(_ root: SysfsRoot, turnedOff: Bool, logger: Logger) -> WorkerCgroups {
        let cgroups = turnedOff
            ? WorkerCgroups(subtree: nil, unavailable: WorkerCgroups.note(reason: "turned off by --no-worker-cgroups"))
            : WorkerCgroups.start(root: root)
        if let base = cgroups.subtree {
            logger.notice("each worker gets a cgroup of its own under /\(base.base) (controllers: \(base.controllers.sorted().joined(separator: " ")))")
        } else if let why = cgroups.unavailable {
            logger.warning("\(why)", metadata: [LogMetadataKey.messageID: "\(MessageID.placementDegraded)"])
        }
        return cgroups
    }

    final class ReloadBox: @unchecked Sendable {
        var reload: (@Sendable () async -> String?)?
    }

    /// Re-reads the configuration (SIGHUP, Reload). A bad file is refused and the running
    /// configuration stays; returns the refusal text.
    public func reload() async -> String? {
        _ = try? notifier.reloading(status: "Reloading configuration")
        defer { _ = try? notifier.ready(status: statusLine(devices: nil, running: nil)) }
        let loaded: (Configuration, [String])
        do {
            loaded = try loadConfiguration(options.configPath)
        } catch {
            logger.error("configuration refused, keeping the running one: \(error)",
                         metadata: [LogMetadataKey.messageID: "\(MessageID.configurationReloadFailed)"])
            return error.description
        }
        let (c, files) = loaded
        configState.lock.withLock {
            configState.configuration = c
            configState.files = files
        }
        await supervisor.configure(limits: c.limits, defaults: SpawnDefaults(c))
        await store.reconfigure(classifier: c.classifier, nodeOverrides: c.localityOverrides, workerCPUs: c.workerCPUs)
        hub.publish(kind: .configurationReloaded)
        logger.notice("configuration reloaded from \(files.isEmpty ? "defaults" : files.joined(separator: ", "))",
                      metadata: [LogMetadataKey.messageID: "\(MessageID.configurationReloaded)"])
        return nil
    }

    func statusLine(devices: Int?, running: Int?) -> String {
        "\(devices.map(String.init) ?? "?") devices, \(running.map(String.init) ?? "?") workers running"
    }

    /// The directory part of a path: "/run/x/sock" → "/run/x", "/sock" → "/", "sock" → ".".
    static func parentDirectory(_ path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        let parent = trimmed[..<slash]
        return parent.isEmpty ? "/" : String(parent)
    }

    /// Serves until SIGTERM or SIGINT.
    public func run() async throws {
        let adoption = await supervisor.adopt()
        if adoption.adopted + adoption.gone > 0 {
            logger.notice("re-adopted \(adoption.adopted) running workers; \(adoption.gone) had exited meanwhile")
        }
        var bound = listen
        if case .path(let path) = listen {
            let dir = Daemon.parentDirectory(path)
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o755])
            // Another user who can write here could swap the socket for a link before its mode is set.
            // The checked, resolved directory is the one used: a link in the path given, repointed
            // after the check, leads nowhere.
            let trusted = try TrustedDirectory.check(dir)
            let name = path.split(separator: "/").last.map(String.init) ?? path
            bound = .path(trusted == "/" ? "/" + name : trusted + "/" + name)
        }
        try await server.start(bound)
        if case .path(let path) = bound { Daemon.restrictSocket(path, logger: logger) }
        let inventory = await store.inventory
        logger.notice("serving io.numaplaced.Manager on \(socketDescription): \(inventory.topology.nodes.count) nodes, \(inventory.devices.count) devices, events from \(eventSource)",
                      metadata: [LogMetadataKey.messageID: "\(MessageID.daemonReady)"])

        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: ServerService(server: server)),
            .init(service: SystemdService(daemon: self)),
        ]
        if eventSource != .none {
            do {
                services.append(.init(service: try UdevWatcher(source: eventSource, store: store, logger: logger)))
            } catch {
                logger.warning("no hotplug events (\(error)); the device table is only rescanned on SIGHUP")
            }
        }
        var config = ServiceGroupConfiguration(services: services, logger: logger)
        config.gracefulShutdownSignals = [.sigterm, .sigint]
        let group = ServiceGroup(configuration: config)
        try await group.run()
        _ = try? notifier.stopping(status: "Shutting down; workers keep running")
    }
}

