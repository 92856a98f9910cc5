import CUdev
import NumaPlaceCore
import NumaPlaceSyscall
#if canImport(Glibc)
import Glibc
#endif

/// One uevent as libudev delivers it.
public struct UdevEvent: Hashable, Sendable {
    /// add, remove, bind, unbind, change, online, offline, move.
    public let action: String
    /// pci, cpu, node, memory.
    public let subsystem: String
    /// The kernel name: `0000:3b:00.0`, `cpu3`, `node1`.
    public let sysname: String
    public let devpath: String
    /// CLOCK_MONOTONIC microseconds when libudev handed the event to us.
    public let receivedAt: UInt64

    public init(action: String, subsystem: String, sysname: String, devpath: String, receivedAt: UInt64) {
        self.action = action
        self.subsystem = subsystem
        self.sysname = sysname
        self.devpath = devpath
        self.receivedAt = receivedAt
    }
}

/// A libudev netlink monitor filtered to the subsystems numaplaced cares about
/// (`udev_monitor_new_from_netlink`, `udev_monitor_filter_add_match_subsystem_devtype`,
/// `udev_monitor_receive_device`).
///
/// Source `udev` receives events after udevd processed them (rules applied); source `kernel`
/// receives the raw kernel uevents, for hosts without udevd (containers, a busybox initramfs).
public final class UdevMonitor: @unchecked Sendable {
    public struct MonitorError: Error, CustomStringConvertible {
        public let step: String
        public let errno: Errno
        public init(step: String, errno: Errno) {
            self.step = step
            self.errno = errno
        }
        public var description: String { "\(step): \(errno)" }
    }

    public static let subsystems = ["pci", "cpu", "node"]

    private let udev: OpaquePointer
    private let monitor: OpaquePointer
    public let source: EventSource

    public init(source: EventSource, subsystems: [String] = UdevMonitor.subsystems,
                receiveBufferBytes: Int32 = 8 << 20) throws(MonitorError) {
        guard source != .none else { throw MonitorError(step: "event source none", errno: .invalidArgument) }
        guard let u = udev_new() else { throw MonitorError(step: "udev_new", errno: .current) }
        guard let m = udev_monitor_new_from_netlink(u, source.rawValue) else {
            let e = Errno.current
            udev_unref(u)
            throw MonitorError(step: "udev_monitor_new_from_netlink(\(source.rawValue))", errno: e)
        }
        udev = u
        monitor = m
        self.source = source
        for s in subsystems {
            _ = udev_monitor_filter_add_match_subsystem_devtype(m, s, nil)
        }
        // A burst of hotplug events must not overflow the socket (ENOBUFS loses events); the
        // buffer is a bound, not a promise, so the store also rescans on overflow.
        _ = udev_monitor_set_receive_buffer_size(m, receiveBufferBytes)
        let rc = udev_monitor_enable_receiving(m)
        if rc < 0 {
            udev_monitor_unref(m)
            udev_unref(u)
            throw MonitorError(step: "udev_monitor_enable_receiving", errno: Errno(-rc))
        }
    }

    deinit {
        udev_monitor_unref(monitor)
        udev_unref(udev)
    }

    /// The netlink socket, non-blocking; poll it for POLLIN.
    public var fileDescriptor: Int32 { udev_monitor_get_fd(monitor) }

    /// Receives one event, or nil when none is pending (or the one pending was filtered out).
    public func receive() -> UdevEvent? {
        try? receiveEvent().get()
    }

    /// Receives one event, or else the errno `udev_monitor_receive_device` left, read right after the
    /// call so that no Swift code between can change it: EAGAIN when none is pending, ENOBUFS when the
    /// socket overflowed and events were lost, 0 when the one pending was filtered out.
    public func receiveEvent() -> Result<UdevEvent, Errno> {
        errno = 0
        guard let dev = udev_monitor_receive_device(monitor) else { return .failure(.current) }
        defer { udev_device_unref(dev) }
        func str(_ p: UnsafePointer<CChar>?) -> String { p.map { String(cString: $0) } ?? "" }
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return .success(UdevEvent(action: str(udev_device_get_action(dev)), subsystem: str(udev_device_get_subsystem(dev)),
                         sysname: str(udev_device_get_sysname(dev)), devpath: str(udev_device_get_devpath(dev)),
                         receivedAt: UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000))
    }
}
