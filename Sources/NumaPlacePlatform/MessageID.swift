/// A journal `MESSAGE_ID=`: a stable 128-bit id per kind of event, so that operators can select
/// events (`journalctl MESSAGE_ID=6f63f2b36d054ec287d679db1315b867`) regardless of the message text.
///
/// The values never change once released (they were generated once, like `journalctl --new-id128`).
/// Log them under the metadata key `LogMetadataKey.messageID`.
public struct MessageID: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// 32 lower-case hex digits.
    public let rawValue: String

    public init?(rawValue: String) {
        guard rawValue.utf8.count == 32,
              rawValue.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) else {
            return nil
        }
        self.rawValue = rawValue
    }

    private init(literal: String) { self.rawValue = literal }

    public var description: String { rawValue }

    public static let daemonStarted = MessageID(literal: "e7e923d3b050402c930f6779509fdb66")
    public static let daemonReady = MessageID(literal: "4f27e14894d641e5a482ad8ccb1f10f2")
    public static let configurationReloaded = MessageID(literal: "ba4aa42f8ce04228acda3b72a698001d")
    /// A SIGHUP reload found a bad configuration; the previous one stays in force.
    public static let configurationReloadFailed = MessageID(literal: "1cf8c8687a9e4e6cb2992fdb9af3247c")
    public static let deviceAdded = MessageID(literal: "6f63f2b36d054ec287d679db1315b867")
    public static let deviceRemoved = MessageID(literal: "f72a42631273480c8f3413f8668c38f2")
    public static let deviceChanged = MessageID(literal: "ffceb4b1e96f46a69de4a402f21be616")
    public static let workerSpawned = MessageID(literal: "49ebf4d4b421470286d89df59fa90d78")
    public static let workerExited = MessageID(literal: "9c3bb7cb071c4d7a90d2294d7c710946")
    public static let spawnFailed = MessageID(literal: "ee5da22c7472429090c06e5f4ad05203")
    /// Best-effort admission applied less than was asked.
    public static let placementDegraded = MessageID(literal: "4a07fca0c7374e4cafc385963ded5654")
    /// A worker from the state file was found alive after a restart and is tracked again.
    public static let workerAdopted = MessageID(literal: "ee85a377046548578ba9e03cef4de41e")

    public static let all: [MessageID] = [
        daemonStarted, daemonReady, configurationReloaded, configurationReloadFailed, deviceAdded, deviceRemoved,
        deviceChanged, workerSpawned, workerExited, spawnFailed, placementDegraded, workerAdopted,
    ]
}

/// The swift-log metadata keys the daemon uses for journal fields. `JournalLogHandler` turns each
/// key into an upper-case field name (`worker_pid` → `WORKER_PID`); these are the ones with a
/// documented meaning.
public enum LogMetadataKey {
    /// A `MessageID`.
    public static let messageID = "message_id"
    /// A canonical PCI address.
    public static let device = "device"
    public static let numaNode = "numa_node"
    public static let workerPID = "worker_pid"
    public static let workerID = "worker_id"
    /// A cpulist.
    public static let cpus = "cpus"
}
