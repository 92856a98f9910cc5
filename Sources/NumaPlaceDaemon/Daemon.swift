import Dispatch
import NIOConcurrencyHelpers
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import NIOCore
import NIOPosix
import NumaPlaceCore
import NumaPlacePlatform
import NumaPlaceProtocol
import ServiceLifecycle
#if canImport(Glibc)
import Glibc
#endif

/// What `numaplaced` was asked to do on its command line (the configuration file fills the rest).
public struct DaemonOptions: Sendable {
    public var root = SysfsRoot("/")
    /// A socket path that overrides the configuration's `Socket=`.
    public var socketPath: String?
    public var stateDirectory: String?
    /// Overrides `EventSource=`; `.none` turns the udev watcher off.
    public var eventSource: String?
    /// A configuration file, or a directory holding `numaplaced.conf` and `numaplaced.conf.d/`.
    public var configPath = ConfigLoader.defaultDirectory

    public init() {}

    /// The socket for a run without a configured one (`Configuration.runtimeSocketPath`).
    public static func defaultSocketPath() -> String {
        Configuration.runtimeSocketPath(euid: geteuid(), xdgRuntimeDirectory: getenv("XDG_RUNTIME_DIR").map { String(cString: $0) })
    }
}

/// Loads the configuration named by `path` (a directory with drop-ins, or one file).
public func loadConfiguration(_ path: String) throws(ConfigError) -> (Configuration, [String]) {
    let sources = try ConfigLoader.sources(path: path)
    return (try ConfigParser.parse(sources), sources.map(\.path))
}

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
    let group: MultiThreadedEventLoopGroup
    let notifier = SystemdNotifier()
    let listen: VarlinkServer.Listen
    let socketDescription: String
    private let configState: ConfigState
    let eventSource: String

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
        let (limits, defaults) = Daemon.workerSettings(configuration)
        supervisor = WorkerSupervisor(
            store: store, hub: hub, stateLog: WorkerStateLog(directory: trustedState),
            spawner: Spawner(savedOriginal: savedOriginal), logger: logger, limits: limits, defaults: defaults,
            spawnEnabled: options.root.isLiveHost,
            journalStream: { identifier, priority in
                try? JournalStream.open(identifier: identifier, priority: SyslogPriority(rawValue: priority) ?? .info)
            })
        // Taken (and LISTEN_* unset) before the event loop thread exists: unsetenv is not thread-safe.
        let activatedSocket = try ListenFDs.take(unsetEnvironment: true).first
        // One loop per CPU the daemon may use, up to 8: connections are spread over them, so one
        // client's large reply or slow socket does not hold up the reads of the others.
        group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, min(savedOriginal.cpus.count, 8)))
        if options.root.isLiveHost, options.eventSource != "none" {
            let wanted = options.eventSource ?? configuration.eventSource.rawValue
            // libudev's "udev" source hears nothing when udevd is not running (containers, an
            // initramfs); the kernel's own uevents still arrive, so use them rather than go deaf.
            if wanted == "udev" && !FileManager.default.fileExists(atPath: "/run/udev/control") {
                logger.notice("udevd is not running (no /run/udev/control): taking hotplug events from the kernel")
                eventSource = "kernel"
            } else {
                eventSource = wanted
            }
        } else {
            eventSource = "none"
        }
        var serverLimits = ServerLimits()
        serverLimits.maxMessageBytes = configuration.limits.maxMessageBytes
        serverLimits.maxConnections = configuration.limits.maxConnections
        serverLimits.maxConnectionsPerUser = configuration.limits.maxConnectionsPerUser
        serverLimits.maxPendingReplies = max(configuration.limits.maxMonitorBacklog, 64)
        serverLimits.maxPendingBytes = max(1 << 20, configuration.limits.maxMessageBytes)
        let state = configState
        let reloadBox = ReloadBox()
        service = ManagerService(store: store, supervisor: supervisor, hub: hub, eventSource: eventSource,
                                 configurationFiles: { state.lock.withLock { state.files } },
                                 reload: { await reloadBox.reload?() })
        server = VarlinkServer(group: group, dispatcher: service, limits: serverLimits, logger: logger)

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

    /// The supervisor's limits and defaults from `[Limits]` and `[Placement]`.
    static func workerSettings(_ c: Configuration) -> (WorkerLimits, SpawnDefaults) {
        var limits = WorkerLimits()
        limits.maxArgvBytes = c.limits.maxArgvBytes
        limits.maxEnvironmentBytes = c.limits.maxEnvironmentBytes
        limits.maxWorkersPerUser = c.limits.maxWorkersPerUser
        limits.maxExclusiveCoresPerUser = c.limits.maxExclusiveCoresPerUser
        var defaults = SpawnDefaults()
        defaults.memory = c.defaultMemoryPolicy
        defaults.admission = c.defaultAdmission
        return (limits, defaults)
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
        let (limits, defaults) = Daemon.workerSettings(c)
        await supervisor.configure(limits: limits, defaults: defaults)
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
        if eventSource != "none", let source = UdevMonitor.Source(rawValue: eventSource) {
            do {
                services.append(.init(service: try UdevWatcher(source: source, store: store, logger: logger)))
            } catch {
                logger.warning("no hotplug events (\(error)); the device table is only rescanned on SIGHUP")
            }
        }
        var config = ServiceGroupConfiguration(services: services, logger: logger)
        config.gracefulShutdownSignals = [.sigterm, .sigint]
        let group = ServiceGroup(configuration: config)
        try await group.run()
        _ = try? notifier.stopping(status: "Shutting down; workers keep running")
        try? await self.group.shutdownGracefully()
    }
}

extension Daemon {
    /// A socket the daemon bound itself gets what numaplaced.socket gives the systemd one: mode 0660 and
    /// group `numaplace` when that group exists; otherwise 0600 for root (only root may connect) and
    /// 0600 for a user's own daemon. SO_PEERCRED still judges every call; this is the outer gate.
    static func restrictSocket(_ path: String, logger: Logger) {
        // The directory is trusted (TrustedDirectory), so the path is still the socket just bound; a
        // link or anything else in its place is left alone rather than given to the group.
        var st = stat()
        guard lstat(path, &st) == 0, st.st_mode & S_IFMT == S_IFSOCK else {
            logger.warning("\(path) is not the socket just bound: its mode is left as it is")
            return
        }
        if geteuid() == 0, let group = getgrnam("numaplace") {
            if lchown(path, 0, group.pointee.gr_gid) != 0 || chmod(path, 0o660) != 0 {
                logger.warning("cannot give \(path) to group numaplace: \(String(cString: strerror(errno)))")
            }
        } else if chmod(path, 0o600) != 0 {
            logger.warning("cannot restrict \(path): \(String(cString: strerror(errno)))")
        }
    }
}

/// Runs the socket server until graceful shutdown, then stops accepting.
struct ServerService: Service {
    let server: VarlinkServer
    func run() async throws {
        try? await gracefulShutdown()
        await server.stop()
    }
}

/// READY=1 once serving, STATUS= on every change, WATCHDOG=1 at half the interval, and SIGHUP reloads.
struct SystemdService: Service {
    let daemon: Daemon

    func run() async throws {
        let notifier = daemon.notifier
        let hub = daemon.hub
        let store = daemon.store
        let supervisor = daemon.supervisor
        func status() async -> String {
            daemon.statusLine(devices: await store.inventory.devices.count, running: await supervisor.runningCount)
        }
        _ = try? notifier.ready(status: await status())
        let (changes, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let sub = hub.subscribe(deliver: { _ in continuation.yield(()); return true }, overflow: {})
        defer { hub.unsubscribe(sub.token) }

        let hup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        signal(SIGHUP, SIG_IGN)
        hup.setEventHandler { Task { _ = await daemon.reload() } }
        hup.resume()
        defer { hup.cancel() }

        let watchdog = (try? notifier.watchdogInterval()) ?? nil
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { tasks in
                tasks.addTask {
                    for await _ in changes { _ = try? notifier.status(await status()) }
                }
                if let interval = watchdog {
                    tasks.addTask {
                        while !Task.isCancelled {
                            _ = try? notifier.watchdog()
                            try? await Task.sleep(for: interval / 2)
                        }
                    }
                }
                await tasks.next()
                tasks.cancelAll()
            }
        } onGracefulShutdown: {
            continuation.finish()
        }
    }
}
