#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import NIOConcurrencyHelpers
import NumaPlaceCore
import NumaPlaceProtocol

/// The one owner of the live device table and topology.
///
/// Enumerates at start; afterwards each udev event re-reads only its device (`refresh`), or the
/// whole topology when a CPU or node goes on- or offline (`rescan`). Every change is published to
/// the event hub. Replies to the hottest query (GetTopology) are encoded once per change.
public actor TopologyStore {
    public private(set) var inventory: Inventory
    public private(set) var allowed: AllowedSet
    private var scanner: SysfsScanner
    private let hub: EventHub
    /// Narrows the saved original on purpose (`WorkerCPUs=`); nil keeps it whole.
    private var workerCPUs: CPUSet?
    private let savedOriginal: AllowedSet
    /// The encoded replies to GetTopology and to ListDevices without filters (on a machine with a
    /// hundred accelerators building the latter is most of a call), built once per change of the
    /// table. Written only by the actor, cleared before a change is announced; read without it, so
    /// that a connection answers these calls on its own thread (`ManagerService.immediateReply`).
    public nonisolated let replies = NIOLockedValueBox(CachedReplies())

    public struct CachedReplies: Sendable {
        public var topology: [UInt8]?
        public var devices: [UInt8]?
    }
    public private(set) var generation = 0

    public init(scanner: SysfsScanner, savedOriginal: AllowedSet, workerCPUs: CPUSet?, hub: EventHub,
                initial: Inventory? = nil) {
        self.scanner = scanner
        self.hub = hub
        self.savedOriginal = savedOriginal
        self.workerCPUs = workerCPUs
        let inv = initial ?? scanner.scan()
        inventory = inv
        allowed = TopologyStore.narrow(savedOriginal, to: workerCPUs)
    }

    static func narrow(_ saved: AllowedSet, to workerCPUs: CPUSet?) -> AllowedSet {
        guard let w = workerCPUs else { return saved }
        let cpus = saved.cpus.intersection(w)
        return AllowedSet(cpus: cpus.isEmpty ? saved.cpus : cpus, mems: saved.mems, source: saved.source + " ∩ WorkerCPUs")
    }

    public var savedOriginalSet: AllowedSet { savedOriginal }

    /// Applies a new configuration: classification rules, overrides, WorkerCPUs; then rescans.
    public func reconfigure(classifier: DeviceClassifier, nodeOverrides: [PCIAddress: NUMANodeID], workerCPUs: CPUSet?) {
        scanner.classifier = classifier
        scanner.nodeOverrides = nodeOverrides
        self.workerCPUs = workerCPUs
        allowed = TopologyStore.narrow(savedOriginal, to: workerCPUs)
        rescan()
    }

    /// Re-reads everything and publishes the differences.
    public func rescan() {
        let next = scanner.scan()
        let topologyChanged = next.topology != inventory.topology
        let old = inventory
        inventory = next
        replies.withLockedValue { $0 = CachedReplies() }
        generation += 1
        if topologyChanged { hub.publish(kind: .topologyChanged) }
        publishDifferences(from: old.devices, to: next.devices)
    }

    /// Re-reads the given devices only (the udev path). A device that is gone, or no longer
    /// managed, is removed; one that appeared is added. A managed device that had an event and is
    /// still there is announced as `deviceChanged` even when its model is unchanged: the kernel said
    /// something happened to it (a `change`, a driver `bind`), and a scheduler may care. Several
    /// events for one device in a burst arrive here as one address, so they make one event.
    public func refresh(_ addresses: Set<PCIAddress>) {
        guard !addresses.isEmpty else { return }
        let warningsBefore = inventory.warnings.count
        var old = inventory.devices.filter { addresses.contains($0.address) }
        var new: [Device] = []
        var unread: Set<PCIAddress> = []
        for address in addresses.sorted() {
            switch scanner.readDevice(address, topology: inventory.topology) {
            case .managed(let d):
                new.append(d)
                inventory.update(address, with: d)
            case .notManaged, .absent:
                inventory.update(address, with: nil)
            case .unreadable(let w):
                // Keep what we had: a transient read failure must not drop a device (nor announce
                // it as removed: what monitors see must match the table).
                if old.contains(where: { $0.address == address }) {
                    unread.insert(address)
                    continue
                }
                inventory.warnings.append(w)
            }
        }
        // Nothing was learnt about a device that could not be read: no event for it.
        old.removeAll { unread.contains($0.address) }
        // Before the events go out: a client that hears of a change and asks gets the new table.
        let before = replies.withLockedValue { r in defer { r = CachedReplies() }; return r }
        let changed = publishDifferences(from: old, to: new, announceUnchanged: true)
        if changed {
            generation += 1
        } else if inventory.warnings.count == warningsBefore {
            // Nothing the replies say has changed (a new warning is part of GetTopology's reply).
            replies.withLockedValue { $0 = before }
        }
    }

    @discardableResult
    private func publishDifferences(from old: [Device], to new: [Device], announceUnchanged: Bool = false) -> Bool {
        let before = Dictionary(old.map { ($0.address, $0) }, uniquingKeysWith: { a, _ in a })
        let after = Dictionary(new.map { ($0.address, $0) }, uniquingKeysWith: { a, _ in a })
        var changed = false
        let t = inventory.topology
        for address in Set(before.keys).union(after.keys).sorted() {
            switch (before[address], after[address]) {
            case (nil, let d?):
                hub.publish(kind: .deviceAdded, address: address.description, device: Manager.Device(d, in: inventory))
                changed = true
            case (let d?, nil):
                hub.publish(kind: .deviceRemoved, address: address.description, device: Manager.Device(d, topology: t))
                changed = true
            case (let a?, let b?) where a != b || announceUnchanged:
                hub.publish(kind: .deviceChanged, address: address.description, device: Manager.Device(b, in: inventory))
                if a != b { changed = true }
            default:
                break
            }
        }
        return changed
    }

    /// The encoded GetTopology reply (with its NUL), cached until the next change.
    public func topologyReply() throws -> [UInt8] {
        if let cached = replies.withLockedValue({ $0.topology }) { return cached }
        let bytes = try VarlinkReply.encode(Manager.GetTopologyReply(inventory, allowed: allowed))
        replies.withLockedValue { $0.topology = bytes }
        return bytes
    }

    /// The encoded ListDevices reply listing every managed device (with its NUL), cached until the
    /// next change.
    public func devicesReply() throws -> [UInt8] {
        if let cached = replies.withLockedValue({ $0.devices }) { return cached }
        let bytes = try VarlinkReply.encode(Manager.ListDevicesReply(devices: inventory.devices.map { Manager.Device($0, in: inventory) }))
        replies.withLockedValue { $0.devices = bytes }
        return bytes
    }

    public func device(_ address: PCIAddress) -> Device? { inventory.device(address) }
}
