/// Where hotplug events come from (`EventSource=`, `numaplaced --event-source`).
public enum EventSource: String, CaseIterable, Hashable, Sendable {
    /// Events after udevd processed them (rules ran, drivers bound): the normal choice.
    case udev
    /// Raw kernel uevents, for hosts and containers without a running udevd.
    case kernel
    /// No hotplug events: the device table changes only on SIGHUP or Reload.
    case none
}

extension Configuration {
    /// Bounds on everything a client controls (DESIGN.md, Security): the one set of limits, read from
    /// `[Limits]` and handed whole to every service, so that a default is written down once.
    public struct Limits: Hashable, Sendable {
        /// Largest Varlink message accepted from a client, NUL terminator included.
        public var maxMessageBytes: Int
        /// Largest total size of a spawn request's argv (each string plus its NUL, as execve(2) counts).
        public var maxArgvBytes: Int
        /// Largest total size of a spawn request's environment (each `KEY=value` plus its NUL).
        public var maxEnvironmentBytes: Int
        /// Running workers one uid may hold at a time (root included: it bounds mistakes, not trust).
        public var maxWorkersPerUser: Int
        /// Client connections open at the same time; at the limit the longest-idle one is closed to admit a new one.
        public var maxConnections: Int
        /// Client connections one uid other than root may hold, so that one user's streams and
        /// pending Waits (busy connections, never closed for a newcomer) cannot take every slot.
        public var maxConnectionsPerUser: Int
        /// Events queued for one slow `Monitor` client before it is disconnected.
        public var maxMonitorBacklog: Int
        /// Whole cores one uid other than root may hold exclusively at a time; 0: half of the cores
        /// the daemon may give out (at least one), so that one user cannot leave root and others none.
        public var maxExclusiveCoresPerUser: Int

        // Not configurable: bounds that only guard against abuse, far above any real request.
        /// Arguments in one spawn request, and `KEY=value` entries in its environment.
        public var maxArguments = 4096
        public var maxEnvironmentEntries = 4096
        /// Exited workers kept for GetWorker and Wait; past it, the oldest eighth is forgotten.
        public var exitedHistory = 1024
        /// Exited workers one uid keeps, by count and by the bytes of their argv: one user's quick spawns
        /// (or huge argvs) forget that user's oldest exits, never another user's.
        public var exitedHistoryPerUser = 256
        public var exitedHistoryBytesPerUser = 8 << 20
        /// Calls queued or running on one connection; past it the connection's further messages wait
        /// (up to `maxMessageBytes` of them), then it is not read until its calls catch up.
        public var maxQueuedCalls = 64

        public init(maxMessageBytes: Int = 1 << 20, maxArgvBytes: Int = 256 << 10,
                    maxEnvironmentBytes: Int = 256 << 10, maxWorkersPerUser: Int = 256,
                    maxConnections: Int = 256, maxConnectionsPerUser: Int = 64, maxMonitorBacklog: Int = 1024,
                    maxExclusiveCoresPerUser: Int = 0) {
            self.maxMessageBytes = maxMessageBytes
            self.maxArgvBytes = maxArgvBytes
            self.maxEnvironmentBytes = maxEnvironmentBytes
            self.maxWorkersPerUser = maxWorkersPerUser
            self.maxConnections = maxConnections
            self.maxConnectionsPerUser = maxConnectionsPerUser
            self.maxMonitorBacklog = maxMonitorBacklog
            self.maxExclusiveCoresPerUser = maxExclusiveCoresPerUser
        }

        /// Replies written but not yet taken by a slow reader before streaming stops for it: a Monitor
        /// client's backlog, and never fewer than a burst of ordinary replies.
        public var maxPendingReplies: Int { max(maxMonitorBacklog, 64) }

        /// Bytes of replies written but not yet taken by the peer before the connection is closed: what a
        /// client that stops reading can make the daemon hold (a message counts whole; one message is
        /// always let through, however large, so that every reply the daemon can make can be read).
        /// Per connection, so one uid can make the daemon hold at most MaxConnectionsPerUser times this.
        public var maxPendingBytes: Int { max(1 << 20, maxMessageBytes) }
    }
}
