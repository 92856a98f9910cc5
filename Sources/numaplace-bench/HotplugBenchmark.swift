import ArgumentParser
import Foundation
import Glibc
import NumaPlaceCore
import NumaPlacePlatform
import NumaPlaceSyscall
import NumaPlaceProtocol

/// `numaplace-bench hotplug`: how fast a Monitor client hears of a uevent on a managed device.
///
/// The daemon (started with `--event-source kernel` and a configuration that manages `--device`)
/// re-reads a device on each uevent for it and passes the uevent on as `deviceChanged`, coalesced per
/// burst, whether or not what it read differs (`TopologyStore.refresh`). Measured:
/// 1. `change` written to the device's `uevent` file (the kernel emits a synthetic uevent; nothing
///    the daemon reads changes);
/// 2. unbinding the device's driver and binding it again, a real change (`driver` differs).
/// The path is the one every uevent takes: netlink → the watcher thread → the store's re-read → the
/// hub → the Monitor stream. Two figures per sample: from the `write(2)` to the Monitor event, and
/// from the uevent's arrival at this process's own kernel netlink monitor to the Monitor event (both
/// on CLOCK_MONOTONIC here), which leaves out the kernel's own work before it sends the uevent.
struct HotplugBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hotplug",
        abstract: "uevent → Monitor event latency: `change` written to uevent, and driver unbind/bind."
    )

    @Option(help: "The daemon's socket.") var socket: String
    @Option(help: "A managed PCI device whose driver may be unbound and bound again (harmless: virtio-rng).") var device: String
    @Option(help: "Unbind/bind pairs.") var iterations: Int = 20
    @Option(help: "`change` writes.") var changes: Int = 100
    @Option(help: "p99 target, ms.") var targetP99Ms: Double = 5

    final class Events: @unchecked Sendable {
        let condition = NSCondition()
        var list: [(event: Manager.Event, at: Double)] = []
        func wait(after index: Int, timeout: Double, _ match: (Manager.Event) -> Bool) -> (Manager.Event, Double)? {
            let deadline = Date(timeIntervalSinceNow: timeout)
            condition.lock()
            defer { condition.unlock() }
            while true {
                if index < list.count, let hit = list[index...].first(where: { match($0.event) }) { return hit }
                if !condition.wait(until: deadline) { return nil }
            }
        }
        var count: Int { condition.lock(); defer { condition.unlock() }; return list.count }
    }

    final class UeventLog: @unchecked Sendable {
        let condition = NSCondition()
        var list: [(action: String, at: Double)] = []
        var count: Int { condition.lock(); defer { condition.unlock() }; return list.count }
    }

    func run() throws {
        let address = try PCIAddress(parsing: device).description
        let sysfs = "/sys/bus/pci/devices/\(address)"
        guard let driverLink = try? SysfsRoot("/").readLink("sys/bus/pci/devices/\(address)/driver"),
              let driver = driverLink.split(separator: "/").last.map(String.init) else {
            throw ValidationError("\(address) has no driver bound")
        }
        let client = try VarlinkClient(path: socket)
        let managed = try client.call("io.numaplaced.Manager.ListDevices", Manager.ListDevicesParameters(address: address),
                                      as: Manager.ListDevicesReply.self).devices
        guard !managed.isEmpty else { throw ValidationError("the daemon does not manage \(address): configure it with Match=") }

        let events = Events()
        let monitor = try VarlinkClient(path: socket)
        let reader = Thread {
            try? monitor.stream("io.numaplaced.Manager.Monitor", Empty(), as: Manager.MonitorReply.self) { reply in
                let at = Bench.now()
                events.condition.lock()
                events.list.append((reply.event, at))
                events.condition.broadcast()
                events.condition.unlock()
                return true
            }
        }
        reader.start()
        _ = events.wait(after: 0, timeout: 5) { $0.kind == .ready }
        let kernel = try UdevMonitor(source: .kernel, subsystems: ["pci"])

        func writeFile(_ path: String, _ text: String) throws {
            let fd = open(path, O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else { throw Bench.Failure("open \(path): \(Errno.current)") }
            defer { close(fd) }
            let n = text.withCString { write(fd, $0, strlen($0)) }
            guard n >= 0 else { throw Bench.Failure("write \(path): \(Errno.current)") }
        }
        // Our own netlink listener runs on a thread of its own, blocked in poll(2) like the Monitor
        // reader, and stamps each uevent when it wakes: the two timestamps are taken alike.
        let seen = UeventLog()
        let listener = Thread {
            var p = pollfd(fd: kernel.fileDescriptor, events: Int16(POLLIN), revents: 0)
            while true {
                guard poll(&p, 1, -1) > 0 else { continue }
                let at = Bench.now()
                while let e = kernel.receive() {
                    guard e.sysname == address else { continue }
                    seen.condition.lock()
                    seen.list.append((e.action, at))
                    seen.condition.broadcast()
                    seen.condition.unlock()
                }
            }
        }
        listener.start()
        /// The first `action` uevent for our device after the `index`-th one, with its arrival time.
        func uevent(_ action: String, after index: Int) -> Double? {
            let deadline = Date(timeIntervalSinceNow: 2)
            seen.condition.lock()
            defer { seen.condition.unlock() }
            while true {
                if index < seen.list.count, let hit = seen.list[index...].first(where: { $0.action == action }) { return hit.at }
                if !seen.condition.wait(until: deadline) { return nil }
            }
        }

        // 1. `change` written to uevent.
        var changeFromWrite: [Double] = [], changeFromUevent: [Double] = []
        var changeLost = 0
        for _ in 0..<changes {
            let index = events.count, uindex = seen.count
            let t0 = Bench.now()
            try writeFile("\(sysfs)/uevent", "change")
            let tU = uevent("change", after: uindex)
            guard let (_, tE) = events.wait(after: index, timeout: 2, { $0.kind == .deviceChanged && $0.address == address })
            else { changeLost += 1; continue }
            changeFromWrite.append(tE - t0)
            if let tU { changeFromUevent.append(tE - tU) }
            Thread.sleep(forTimeInterval: 0.005)   // separate bursts: the watcher coalesces what arrives together
        }

        // 2. Real changes: unbind and bind the driver.
        var fromWrite: [Double] = [], fromUevent: [Double] = []
        var lost = 0
        defer {
            // Leave the device bound, whatever happened.
            if (try? SysfsRoot("/").readLink("sys/bus/pci/devices/\(address)/driver")) == nil {
                try? writeFile("/sys/bus/pci/drivers/\(driver)/bind", address)
            }
        }
        for _ in 0..<iterations {
            for (action, file) in [("unbind", "unbind"), ("bind", "bind")] {
                let index = events.count, uindex = seen.count
                let t0 = Bench.now()
                try writeFile("/sys/bus/pci/drivers/\(driver)/\(file)", address)
                let tU = uevent(action, after: uindex)
                guard let (_, tE) = events.wait(after: index, timeout: 2, { $0.kind == .deviceChanged && $0.address == address })
                else { lost += 1; continue }
                fromWrite.append(tE - t0)
                if let tU { fromUevent.append(tE - tU) }
            }
        }
        let b = "Hotplug reaction for \(address) (driver \(driver)), daemon on kernel uevents"
        print(b)
        Bench.emit(b, "`change` uevent → deviceChanged at a Monitor client", seconds: Bench.Summary(changeFromUevent), unit: "ms",
                   targetMax: targetP99Ms, targetOn: "p99",
                   note: "\(changeFromUevent.count) events; \(changeLost) writes without an event within 2 s")
        Bench.emit(b, "write `change` to uevent → deviceChanged at a Monitor client", seconds: Bench.Summary(changeFromWrite), unit: "ms",
                   targetMax: targetP99Ms, targetOn: "p99")
        Bench.emit(b, "uevent (unbind/bind) → deviceChanged at a Monitor client", seconds: Bench.Summary(fromUevent), unit: "ms",
                   targetMax: targetP99Ms, targetOn: "p99",
                   note: "\(fromUevent.count) events; \(lost) changes without an event within 2 s")
        Bench.emit(b, "write to unbind/bind → deviceChanged at a Monitor client", seconds: Bench.Summary(fromWrite), unit: "ms",
                   note: "includes the driver's own unbind/bind in the kernel")
    }
}
