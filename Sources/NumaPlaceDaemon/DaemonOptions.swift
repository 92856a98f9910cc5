#if canImport(Glibc)
import Glibc
#endif
import Logging
import NumaPlaceCore
import NumaPlacePlatform

/// What `numaplaced` was asked to do on its command line (the configuration file fills the rest).
public struct DaemonOptions: Sendable {
    public var root = SysfsRoot("/")
    /// A socket path that overrides the configuration's `Socket=`.
    public var socketPath: String?
    public var stateDirectory: String?
    /// Overrides `EventSource=`.
    public var eventSource: EventSource?
    /// A configuration file, or a directory holding `numaplaced.conf` and `numaplaced.conf.d/`.
    public var configPath = ConfigLoader.defaultDirectory
    public var logLevel: Logger.Level = .info
    public var logDestination: LoggingSetup.Destination = .automatic
    /// Print the scanned model (the GetTopology reply) and exit instead of serving.
    public var dump = false
    /// Give workers no cgroup of their own even where the host would allow it (another manager owns
    /// the cgroups); replies then say so, as on a host without cgroup v2.
    public var noWorkerCgroups = false

    public init() {}

    /// The values the command line accepts, for its help and its checks.
    public static let eventSources = EventSource.allCases.map(\.rawValue)
    public static let logLevels = Logger.Level.allCases.map(\.rawValue)
    public static let logDestinations = LoggingSetup.Destination.allCases.map(\.rawValue)

    /// Options from the command line's strings; nil with the reason when one is not a known value.
    public static func parse(sysfsRoot: String, dump: Bool, socket: String?, config: String, stateDirectory: String?,
                             eventSource: String?, logLevel: String, logTo: String,
                             noWorkerCgroups: Bool = false) -> Result<DaemonOptions, OptionError> {
        var o = DaemonOptions()
        o.root = SysfsRoot(sysfsRoot)
        o.dump = dump
        o.noWorkerCgroups = noWorkerCgroups
        o.socketPath = socket
        o.configPath = config
        o.stateDirectory = stateDirectory
        if let e = eventSource {
            guard let source = EventSource(rawValue: e) else {
                return .failure(OptionError("--event-source must be udev, kernel or none"))
            }
            o.eventSource = source
        }
        guard let level = Logger.Level(rawValue: logLevel) else { return .failure(OptionError("unknown --log-level \(logLevel)")) }
        o.logLevel = level
        guard let destination = LoggingSetup.Destination(rawValue: logTo) else {
            return .failure(OptionError("--log-to must be automatic, journal or stderr"))
        }
        o.logDestination = destination
        return .success(o)
    }

    public struct OptionError: Error, CustomStringConvertible {
        public let description: String
        init(_ d: String) { description = d }
    }

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
