import Foundation
import Logging
import NumaPlaceCore
import NumaPlacePlatform
import NumaPlaceProtocol
import NumaPlaceTestSupport
import Testing
@testable import NumaPlaceDaemon

/// A machine written by the test under a temporary root: 2 nodes (CPUs 0-1 and 2-3), a GPU on
/// node 1 behind a bridge, an InfiniBand NIC whose `numa_node` is -1 and whose `local_cpulist`
/// covers every CPU (locality unknown), and a host bridge the classifier does not manage.
final class SyntheticMachine: @unchecked Sendable {
    /// The tree, removed when this machine is released.
    let tree: SyntheticRoot
    var root: String { tree.path }
    static let gpu = "0000:3b:00.0"
    static let nic = "0000:5e:00.0"

    init() throws {
        tree = try SyntheticRoot()
        chmod(tree.path, 0o755)   // readable by the other uids the tests spawn as, as the temporary directory is
        write("sys/devices/system/cpu/online", "0-3\n")
        write("sys/devices/system/cpu/possible", "0-3\n")
        for (node, cpus, distance) in [(0, "0-1", "10 21"), (1, "2-3", "21 10")] {
            write("sys/devices/system/node/node\(node)/cpulist", cpus + "\n")
            write("sys/devices/system/node/node\(node)/meminfo", "Node \(node) MemTotal:       4194304 kB\n")
            write("sys/devices/system/node/node\(node)/distance", distance + "\n")
        }
        try addDevice(Self.gpu, bridge: "0000:3a:00.0", class: "0x030200", vendor: "0x10de", device: "0x2330",
                      numaNode: "1", localCPUs: "2-3")
        try addDevice(Self.nic, bridge: "0000:5d:00.0", class: "0x020700", vendor: "0x15b3", device: "0x101b",
                      numaNode: "-1", localCPUs: "0-3")
        try addDevice("0000:00:1f.0", bridge: nil, class: "0x060100", vendor: "0x8086", device: "0xa1c1",
                      numaNode: "-1", localCPUs: "0-3")
    }

    func path(_ relative: String) -> String { root + "/" + relative }

    func write(_ relative: String, _ text: String) { try? tree.write(relative, text) }

    /// Lays a device out as the kernel does: a directory under `sys/devices` and a link to it in
    /// `sys/bus/pci/devices` (the scanner reads the bridges above it from the link).
    func addDevice(_ address: String, bridge: String?, class cls: String, vendor: String, device: String,
                   numaNode: String, localCPUs: String) throws {
        let host = "pci" + address.prefix(4) + ":" + (bridge.map { String($0.dropFirst(5).prefix(2)) } ?? "00")
        let dir = "sys/devices/\(host)/" + (bridge.map { $0 + "/" } ?? "") + address
        for (file, value) in [("class", cls), ("vendor", vendor), ("device", device), ("numa_node", numaNode),
                              ("local_cpulist", localCPUs)] {
            write("\(dir)/\(file)", value + "\n")
        }
        try tree.symlink("sys/bus/pci/devices/\(address)", to: "../../../" + dir.dropFirst(4))
    }

    /// Removes the device the way a hot-unplug does: both the link and the directory go.
    func removeDevice(_ address: String) throws {
        let link = path("sys/bus/pci/devices/\(address)")
        let target = try FileManager.default.destinationOfSymbolicLink(atPath: link)
        try FileManager.default.removeItem(atPath: link)
        try FileManager.default.removeItem(atPath: path("sys/bus/pci/devices/" + target))
    }

    func deviceFile(_ address: String, _ file: String) throws -> String {
        let link = path("sys/bus/pci/devices/\(address)")
        return path("sys/bus/pci/devices/" + (try FileManager.default.destinationOfSymbolicLink(atPath: link)) + "/" + file)
    }

    func setDeviceFile(_ address: String, _ file: String, _ text: String) throws {
        #expect(FileManager.default.createFile(atPath: try deviceFile(address, file), contents: Data(text.utf8)))
    }
}

/// A ReplySink that keeps every message and hands them out in order to an async reader.
final class CollectingSink: ReplySink, @unchecked Sendable {
    private let lock = NSLock()
    private var messages: [[UInt8]] = []
    private var open = true
    let replies: AsyncStream<[UInt8]>
    private let continuation: AsyncStream<[UInt8]>.Continuation

    init() {
        (replies, continuation) = AsyncStream<[UInt8]>.makeStream(bufferingPolicy: .unbounded)
    }

    func send(_ bytes: [UInt8]) -> Bool {
        let accepted = lock.withLock { () -> Bool in
            guard open else { return false }
            messages.append(bytes)
            return true
        }
        if accepted { continuation.yield(bytes) }
        return accepted
    }

    var isOpen: Bool { lock.withLock { open } }

    func close() {
        lock.withLock { open = false }
        continuation.finish()
    }

    var all: [[UInt8]] { lock.withLock { messages } }
}

/// One decoded reply: either `parameters` (with `continues`) or an `error` with its parameters.
struct Reply {
    let json: JSONValue

    init(_ bytes: [UInt8]) throws {
        #expect(bytes.last == 0, "every reply ends in its NUL")
        #expect(!bytes.dropLast().contains(0), "a reply holds exactly one NUL")
        json = try JSONDecoder().decode(JSONValue.self, from: Data(bytes.dropLast()))
    }

    var error: String? { json["error"]?.stringValue }
    var parameters: JSONValue { json["parameters"] ?? .null }
    var continues: Bool { json["continues"] == .bool(true) }
    subscript(key: String) -> JSONValue? { parameters[key] }
}

extension JSONValue {
    var arrayValue: [JSONValue] { if case .array(let a) = self { return a }; return [] }
}

@Suite struct ManagerServiceTests {
    static let root = PeerCredentials(pid: 4242, uid: 0, gid: 0)
    static let user = PeerCredentials(pid: 4343, uid: 1000, gid: 1000)
    static let allowed = AllowedSet(cpus: [0, 1, 2, 3], mems: [0, 1], source: "test")

    let machine: SyntheticMachine
    let hub: EventHub
    let store: TopologyStore
    let service: ManagerService

    init() throws {
        machine = try SyntheticMachine()
        (hub, store, service) = Self.makeService(machine, spawnEnabled: false)
    }

    /// The service over the synthetic machine. `spawnEnabled: true` is only for requests that must
    /// be refused before anything is started (the validation tests).
    static func makeService(_ machine: SyntheticMachine, spawnEnabled: Bool) -> (EventHub, TopologyStore, ManagerService) {
        let hub = EventHub(maxBacklog: 64, clock: { 1_700_000_000_000_000 })
        let sysfs = SysfsRoot(machine.root)
        let store = TopologyStore(scanner: SysfsScanner(root: sysfs), savedOriginal: allowed, workerCPUs: nil, hub: hub)
        let supervisor = WorkerSupervisor(store: store, hub: hub, stateLog: WorkerStateLog(directory: machine.root),
                                          spawner: Spawner(savedOriginal: allowed), logger: Logger(label: "test"),
                                          procRoot: sysfs, spawnEnabled: spawnEnabled)
        return (hub, store, ManagerService(store: store, supervisor: supervisor, hub: hub, eventSource: "none"))
    }

    /// Sends one call and returns its one reply.
    func call(_ json: String, peer: PeerCredentials = root, on service: ManagerService? = nil) async throws -> Reply {
        let sink = CollectingSink()
        await (service ?? self.service).handle(try VarlinkCall(bytes: Array(json.utf8)), peer: peer, sink: sink)
        let all = sink.all
        try #require(all.count == 1, "one reply to \(json), got \(all.count)")
        return try Reply(all[0])
    }

    func call<P: Encodable>(_ method: String, _ parameters: P, peer: PeerCredentials = root,
                            on service: ManagerService? = nil) async throws -> Reply {
        let call = try VarlinkCall(method: method, parameters: parameters)
        return try await self.call(String(decoding: call.raw, as: UTF8.self), peer: peer, on: service)
    }

    // MARK: Dispatch

    @Test func unknownInterfaceAndMethod() async throws {
        let r1 = try await call(#"{"method":"com.example.Frob.Do"}"#)
        #expect(r1.error == "org.varlink.service.InterfaceNotFound")
        #expect(r1["interface"] == .string("com.example.Frob"))
        let r2 = try await call(#"{"method":"io.numaplaced.Manager.Frobnicate"}"#)
        #expect(r2.error == "org.varlink.service.MethodNotFound")
        #expect(r2["method"] == .string("io.numaplaced.Manager.Frobnicate"))
        let r3 = try await call(#"{"method":"org.varlink.service.Frobnicate"}"#)
        #expect(r3.error == "org.varlink.service.MethodNotFound")
        let r4 = try await call(#"{"method":"GetTopology"}"#)
        #expect(r4.error == "org.varlink.service.InterfaceNotFound")
        let r5 = try await call(#"{"method":"io.numaplaced.Manager.GetTopology","upgrade":true}"#)
        #expect(r5.error == "org.varlink.service.MethodNotImplemented")
    }

    @Test func onewayCallsGetNoReply() async throws {
        for json in [#"{"method":"io.numaplaced.Manager.GetTopology","oneway":true}"#,
                     #"{"method":"io.numaplaced.Manager.GetStatus","oneway":true}"#,
                     #"{"method":"io.numaplaced.Manager.Nope","oneway":true}"#] {
            let sink = CollectingSink()
            await service.handle(try VarlinkCall(bytes: Array(json.utf8)), peer: Self.root, sink: sink)
            #expect(sink.all.isEmpty, "\(json)")
        }
    }

    @Test func introspection() async throws {
        let info = try await call(#"{"method":"org.varlink.service.GetInfo"}"#)
        #expect(info.error == nil)
        #expect(info["interfaces"] == .array([.string("org.varlink.service"), .string("io.numaplaced.Manager")]))
        #expect(info["version"] == .string(ManagerService.version))

        let manager = try await call(#"{"method":"org.varlink.service.GetInterfaceDescription","parameters":{"interface":"io.numaplaced.Manager"}}"#)
        #expect(manager["description"] == .string(Manager.interfaceDescription))
        let service = try await call(#"{"method":"org.varlink.service.GetInterfaceDescription","parameters":{"interface":"org.varlink.service"}}"#)
        #expect(service["description"]?.stringValue?.contains("interface org.varlink.service") == true)
        let unknown = try await call(#"{"method":"org.varlink.service.GetInterfaceDescription","parameters":{"interface":"com.example.X"}}"#)
        #expect(unknown.error == "org.varlink.service.InterfaceNotFound")
        let missing = try await call(#"{"method":"org.varlink.service.GetInterfaceDescription"}"#)
        #expect(missing.error == "org.varlink.service.InvalidParameter")
        #expect(missing["parameter"] == .string("interface"))
    }

    // MARK: Devices

    @Test func getTopologyReportsNodesDevicesAndUnknownLocality() async throws {
        let r = try await call(#"{"method":"io.numaplaced.Manager.GetTopology"}"#)
        #expect(r.error == nil)
        let nodes = r["nodes"]?.arrayValue ?? []
        #expect(nodes.map { $0["id"] } == [.int(0), .int(1)])
        #expect(nodes.map { $0["cpus"] } == [.string("0-1"), .string("2-3")])
        #expect(nodes.map { $0["distances"] } == [.array([.int(10), .int(21)]), .array([.int(21), .int(10)])])
        #expect(nodes.first?["memoryBytes"] == .int(4_294_967_296))
        let devices = r["devices"]?.arrayValue ?? []
        #expect(devices.map { $0["address"] } == [.string(SyntheticMachine.gpu), .string(SyntheticMachine.nic)])
        let gpu = devices[0], nic = devices[1]
        #expect(gpu["kind"] == .string("gpu"))
        #expect(gpu["numaNode"] == .int(1))
        #expect(gpu["cpus"] == .string("2-3"))
        #expect(gpu["locality"] == .string("node"))
        #expect(gpu["vendorName"] == .string("NVIDIA"))
        #expect(gpu["pciePath"] == .array([.string("0000:3a:00.0")]))
        #expect(nic["kind"] == .string("nic"))
        // Unknown is a state of its own: numaNode is present and null, never -1 and never absent.
        #expect(nic["numaNode"] == .null)
        #expect(nic["locality"] == .string("unknown"))
        #expect(nic["cpus"] == .string(""))
        #expect(r["onlineCPUs"] == .string("0-3"))
        #expect(r["allowedCPUs"] == .string("0-3"))
    }

    @Test func listDevicesFiltersAndAddressSpellings() async throws {
        func addresses(_ json: String) async throws -> [JSONValue] {
            let r = try await call(#"{"method":"io.numaplaced.Manager.ListDevices","parameters":\#(json)}"#)
            #expect(r.error == nil, "\(json): \(r.json)")
            return (r["devices"]?.arrayValue ?? []).compactMap { $0["address"] }
        }
        let gpu = JSONValue.string(SyntheticMachine.gpu), nic = JSONValue.string(SyntheticMachine.nic)
        #expect(try await addresses("{}") == [gpu, nic])
        #expect(try await addresses(#"{"kind":"gpu"}"#) == [gpu])
        #expect(try await addresses(#"{"kind":"nic"}"#) == [nic])
        #expect(try await addresses(#"{"kind":"accelerator"}"#) == [])
        #expect(try await addresses(#"{"node":1}"#) == [gpu])
        #expect(try await addresses(#"{"node":0}"#) == [])
        #expect(try await addresses(#"{"node":1,"kind":"nic"}"#) == [])
        for spelling in ["00000000:3B:00.0", "0000:3b:00.0", "3b:00.0", "3B:00", "0000:3b:00"] {
            #expect(try await addresses(#"{"address":"\#(spelling)"}"#) == [gpu], "\(spelling)")
        }
        #expect(try await addresses(#"{"address":"0000:3c:00.0"}"#) == [])

        let badKind = try await call(#"{"method":"io.numaplaced.Manager.ListDevices","parameters":{"kind":"tpu"}}"#)
        #expect(badKind.error == "io.numaplaced.Manager.InvalidParameter")
        #expect(badKind["parameter"] == .string("kind"))
        let badNode = try await call(#"{"method":"io.numaplaced.Manager.ListDevices","parameters":{"node":7}}"#)
        #expect(badNode.error == "io.numaplaced.Manager.NoSuchNode")
        #expect(badNode["node"] == .int(7))
        let negative = try await call(#"{"method":"io.numaplaced.Manager.ListDevices","parameters":{"node":-1}}"#)
        #expect(negative.error == "io.numaplaced.Manager.NoSuchNode")
        let badAddress = try await call(#"{"method":"io.numaplaced.Manager.ListDevices","parameters":{"address":"3b:00.0.0"}}"#)
        #expect(badAddress.error == "io.numaplaced.Manager.InvalidParameter")
        #expect(badAddress["parameter"] == .string("address"))
        let wrongType = try await call(#"{"method":"io.numaplaced.Manager.ListDevices","parameters":{"node":"1"}}"#)
        #expect(wrongType.error == "org.varlink.service.InvalidParameter")
        #expect(wrongType["parameter"] == .string("node"))
    }

    /// The replies a connection sends from its reading thread are the actor's bytes, only once the
    /// actor has encoded them, never for a call that asks for something else, and never stale: a
    /// device change clears them before its event goes out.
    @Test func immediateRepliesAreTheActorsBytesAndClearedByAChange() async throws {
        func immediate(_ json: String) throws -> [UInt8]? {
            service.immediateReply(to: try VarlinkCall(bytes: Array(json.utf8)))
        }
        let topology = #"{"method":"io.numaplaced.Manager.GetTopology"}"#
        let devices = #"{"method":"io.numaplaced.Manager.ListDevices","parameters":{}}"#
        #expect(try immediate(topology) == nil, "nothing encoded yet: the actor's way encodes it")

        let sink = CollectingSink()
        await service.handle(try VarlinkCall(bytes: Array(topology.utf8)), peer: Self.root, sink: sink)
        await service.handle(try VarlinkCall(bytes: Array(devices.utf8)), peer: Self.root, sink: sink)
        let viaActor = sink.all
        try #require(viaActor.count == 2)
        #expect(try immediate(topology) == viaActor[0])
        #expect(try immediate(devices) == viaActor[1])

        // Calls that ask for something else take the actor's way.
        #expect(try immediate(#"{"method":"io.numaplaced.Manager.GetTopology","oneway":true}"#) == nil)
        #expect(try immediate(#"{"method":"io.numaplaced.Manager.GetTopology","upgrade":true}"#) == nil)
        #expect(try immediate(#"{"method":"io.numaplaced.Manager.ListDevices","parameters":{"node":1}}"#) == nil)
        #expect(try immediate(#"{"method":"io.numaplaced.Manager.ListDevices","parameters":{"node":"x"}}"#) == nil)
        #expect(try immediate(#"{"method":"io.numaplaced.Manager.GetStatus"}"#) == nil)
        #expect(try immediate(#"{"method":"org.varlink.service.GetInfo"}"#) == nil)

        // A refresh that changes nothing keeps them; one that changes the GPU's node clears them.
        await store.refresh([try PCIAddress(parsing: SyntheticMachine.nic)])
        #expect(try immediate(topology) == viaActor[0])
        try machine.setDeviceFile(SyntheticMachine.gpu, "numa_node", "0\n")
        await store.refresh([try PCIAddress(parsing: SyntheticMachine.gpu)])
        #expect(try immediate(topology) == nil)
        #expect(try immediate(devices) == nil)
        let fresh = try await call(topology)
        #expect(try immediate(topology) != nil && immediate(topology) != viaActor[0])
        #expect(fresh.error == nil)
    }

    @Test func getDevice() async throws {
        let found = try await call(#"{"method":"io.numaplaced.Manager.GetDevice","parameters":{"address":"00000000:3B:00.0"}}"#)
        #expect(found["device"]?["address"] == .string(SyntheticMachine.gpu))
        let missing = try await call(#"{"method":"io.numaplaced.Manager.GetDevice","parameters":{"address":"3c:00.0"}}"#)
        #expect(missing.error == "io.numaplaced.Manager.NoSuchDevice")
        #expect(missing["address"] == .string("0000:3c:00.0"))
        let unmanaged = try await call(#"{"method":"io.numaplaced.Manager.GetDevice","parameters":{"address":"0000:00:1f.0"}}"#)
        #expect(unmanaged.error == "io.numaplaced.Manager.NoSuchDevice")
        let noAddress = try await call(#"{"method":"io.numaplaced.Manager.GetDevice","parameters":{}}"#)
        #expect(noAddress.error == "org.varlink.service.InvalidParameter")
        #expect(noAddress["parameter"] == .string("address"))
    }

    @Test func getStatusCounts() async throws {
        let r = try await call(#"{"method":"io.numaplaced.Manager.GetStatus"}"#)
        #expect(r["nodes"] == .int(2))
        #expect(r["devices"] == .int(2))
        #expect(r["workers"] == .int(0))
        #expect(r["allowedCPUs"] == .string("0-3"))
        #expect(r["allowedMems"] == .string("0-1"))
        #expect(r["eventSource"] == .string("none"))
        #expect(r["version"] == .string(ManagerService.version))
    }

    @Test func reloadIsRootOnly() async throws {
        let r = try await call(#"{"method":"io.numaplaced.Manager.Reload"}"#, peer: Self.user)
        #expect(r.error == "io.numaplaced.Manager.PermissionDenied")
        let ok = try await call(#"{"method":"io.numaplaced.Manager.Reload"}"#, peer: Self.root)
        #expect(ok.error == nil)
    }

    // MARK: Monitor

    @Test func monitorWithoutMoreIsExpectedMore() async throws {
        let r = try await call(#"{"method":"io.numaplaced.Manager.Monitor"}"#)
        #expect(r.error == "org.varlink.service.ExpectedMore")
        #expect(hub.subscriberCount == 0)
    }

    @Test(.timeLimit(.minutes(1)))
    func monitorStreamsReadyThenDeviceEvents() async throws {
        let sink = CollectingSink()
        var replies = sink.replies.makeAsyncIterator()
        let monitor = try VarlinkCall(bytes: Array(#"{"method":"io.numaplaced.Manager.Monitor","more":true}"#.utf8))
        let task = Task { await service.handle(monitor, peer: Self.root, sink: sink) }
        func next() async throws -> Reply {
            guard let bytes = await replies.next() else { throw Failure("the Monitor stream ended early") }
            let r = try Reply(bytes)
            #expect(r.error == nil, "\(r.json)")
            #expect(r.continues, "every Monitor reply continues")
            return r
        }
        let ready = try await next()
        #expect(ready["event"]?["kind"] == .string("ready"))
        var last = ready["event"]?["sequence"]?.intValue ?? -1

        // Hot-add an accelerator on node 0.
        let added = "0000:af:00.0"
        try machine.addDevice(added, bridge: "0000:ae:00.0", class: "0x120000", vendor: "0x1da3", device: "0x1020",
                              numaNode: "0", localCPUs: "0-1")
        await store.refresh([try PCIAddress(parsing: added)])
        var r = try await next()
        #expect(r["event"]?["kind"] == .string("deviceAdded"))
        #expect(r["event"]?["address"] == .string(added))
        #expect(r["event"]?["device"]?["kind"] == .string("accelerator"))
        #expect(r["event"]?["device"]?["numaNode"] == .int(0))
        let s1 = r["event"]?["sequence"]?.intValue ?? -1
        #expect(s1 > last)
        last = s1

        // The GPU's firmware node changes.
        try machine.setDeviceFile(SyntheticMachine.gpu, "numa_node", "0\n")
        try machine.setDeviceFile(SyntheticMachine.gpu, "local_cpulist", "0-1\n")
        await store.refresh([try PCIAddress(parsing: SyntheticMachine.gpu)])
        r = try await next()
        #expect(r["event"]?["kind"] == .string("deviceChanged"))
        #expect(r["event"]?["device"]?["numaNode"] == .int(0))
        #expect(r["event"]?["device"]?["cpus"] == .string("0-1"))
        #expect((r["event"]?["sequence"]?.intValue ?? -1) > last)
        last = r["event"]?["sequence"]?.intValue ?? -1

        // An event for a device that is unchanged is passed on as deviceChanged with the same
        // device (the kernel said something happened), and changes nothing in the table.
        let before = await store.inventory
        await store.refresh([try PCIAddress(parsing: SyntheticMachine.nic)])
        r = try await next()
        #expect(r["event"]?["kind"] == .string("deviceChanged"))
        #expect(r["event"]?["address"] == .string(SyntheticMachine.nic))
        #expect(r["event"]?["device"]?["locality"] == .string("unknown"))
        #expect(await store.inventory == before)

        // Hot-remove the accelerator.
        try machine.removeDevice(added)
        await store.refresh([try PCIAddress(parsing: added)])
        r = try await next()
        #expect(r["event"]?["kind"] == .string("deviceRemoved"))
        #expect(r["event"]?["address"] == .string(added))
        #expect((r["event"]?["sequence"]?.intValue ?? -1) > last)
        #expect(await store.inventory.devices.map(\.address.description) == [SyntheticMachine.gpu, SyntheticMachine.nic])

        // The client goes away: the stream ends and the subscription is dropped.
        sink.close()
        task.cancel()
        await task.value
        #expect(hub.subscriberCount == 0)
    }

    /// A device whose identity files cannot be read for a moment (here: `class` turned into a
    /// directory, so read(2) fails with EISDIR) is kept, and no event claims it was removed.
    @Test(.timeLimit(.minutes(1)))
    func transientlyUnreadableDeviceIsKeptWithoutAnEvent() async throws {
        let sink = CollectingSink()
        var replies = sink.replies.makeAsyncIterator()
        let monitor = try VarlinkCall(bytes: Array(#"{"method":"io.numaplaced.Manager.Monitor","more":true}"#.utf8))
        let task = Task { await service.handle(monitor, peer: Self.root, sink: sink) }
        let ready = try Reply(try #require(await replies.next()))
        #expect(ready["event"]?["kind"] == .string("ready"))

        let classFile = try machine.deviceFile(SyntheticMachine.gpu, "class")
        try FileManager.default.removeItem(atPath: classFile)
        try FileManager.default.createDirectory(atPath: classFile, withIntermediateDirectories: false)
        await store.refresh([try PCIAddress(parsing: SyntheticMachine.gpu)])
        // A marker the refresh itself never publishes: the first event after `ready` must be it.
        hub.publish(kind: .configurationReloaded)
        let r = try Reply(try #require(await replies.next()))
        #expect(r["event"]?["kind"] == .string("configurationReloaded"), "got \(r.json)")
        #expect(await store.device(try PCIAddress(parsing: SyntheticMachine.gpu)) != nil)
        let listed = try await call(#"{"method":"io.numaplaced.Manager.GetDevice","parameters":{"address":"3b:00.0"}}"#)
        #expect(listed.error == nil)

        sink.close()
        task.cancel()
        await task.value
    }

    @Test(.timeLimit(.minutes(1)))
    func monitorShowsWorkerEventsOnlyToTheirOwner() async throws {
        let sink = CollectingSink()
        var replies = sink.replies.makeAsyncIterator()
        let monitor = try VarlinkCall(bytes: Array(#"{"method":"io.numaplaced.Manager.Monitor","more":true}"#.utf8))
        let task = Task { await service.handle(monitor, peer: Self.user, sink: sink) }
        _ = try #require(await replies.next())
        func worker(uid: Int) -> Manager.Worker {
            Manager.Worker(id: "w\(uid)", pid: 99999, uid: uid, gid: uid, argv: ["/bin/true"], device: nil, node: nil,
                           state: .running, startedAt: 0, requested: Manager.Placement(cpus: "0-3", memoryPolicy: "default",
                                                                                         memoryNodes: []),
                           applied: nil, degraded: [], exclusiveCores: [], adopted: false, exit: nil)
        }
        hub.publish(kind: .workerStarted, worker: worker(uid: 0))
        hub.publish(kind: .workerStarted, worker: worker(uid: 1000))
        let r = try Reply(try #require(await replies.next()))
        #expect(r["event"]?["worker"]?["uid"] == .int(1000), "root's worker must not reach uid 1000: \(r.json)")
        sink.close()
        task.cancel()
        await task.value
    }

    // MARK: Spawn

    @Test func spawnOnCapturedRootIsRefused() async throws {
        let r = try await call("io.numaplaced.Manager.Spawn", Manager.SpawnParameters(argv: ["/bin/true"], device: SyntheticMachine.gpu))
        #expect(r.error == "io.numaplaced.Manager.PlacementImpossible")
        #expect(r["reason"]?.stringValue?.contains("captured") == true)
        let listed = try await call(#"{"method":"io.numaplaced.Manager.ListWorkers"}"#)
        #expect(listed["workers"] == .array([]))
    }

    @Test func spawnParameterValidation() async throws {
        // Spawning is on, so a request that passed validation would really start: the program does
        // not exist, so even then nothing runs (and the error would be SpawnFailed, failing the test).
        let (_, _, live) = Self.makeService(machine, spawnEnabled: true)
        let program = "/nonexistent/numaplace-test-program"
        func refused(_ p: Manager.SpawnParameters, peer: PeerCredentials = Self.root) async throws -> Reply {
            try await call("io.numaplaced.Manager.Spawn", p, peer: peer, on: live)
        }
        var r = try await refused(Manager.SpawnParameters(argv: []))
        #expect(r.error == "io.numaplaced.Manager.InvalidParameter")
        #expect(r["parameter"] == .string("argv"))
        r = try await refused(Manager.SpawnParameters(argv: [""]))
        #expect(r["parameter"] == .string("argv"))
        r = try await refused(Manager.SpawnParameters(argv: [program, "a\u{0}b"]))
        #expect(r["parameter"] == .string("argv"))
        r = try await refused(Manager.SpawnParameters(argv: [program], device: SyntheticMachine.gpu, node: 1))
        #expect(r.error == "io.numaplaced.Manager.InvalidParameter")
        #expect(r["parameter"] == .string("device"))
        r = try await refused(Manager.SpawnParameters(argv: [program], node: 1, cpus: "0-1"))
        #expect(r.error == "io.numaplaced.Manager.InvalidParameter")
        r = try await refused(Manager.SpawnParameters(argv: [program], device: "not-an-address"))
        #expect(r["parameter"] == .string("device"))
        r = try await refused(Manager.SpawnParameters(argv: [program], memory: "fast"))
        #expect(r.error == "io.numaplaced.Manager.InvalidParameter")
        #expect(r["parameter"] == .string("memory"))
        r = try await refused(Manager.SpawnParameters(argv: [program], admission: "maybe"))
        #expect(r["parameter"] == .string("admission"))
        r = try await refused(Manager.SpawnParameters(argv: [program], environment: ["NO_EQUALS_SIGN"]))
        #expect(r["parameter"] == .string("environment"))
        r = try await refused(Manager.SpawnParameters(argv: [program], environment: ["=value"]))
        #expect(r["parameter"] == .string("environment"))
        r = try await refused(Manager.SpawnParameters(argv: [program], workingDirectory: "relative/dir"))
        #expect(r["parameter"] == .string("workingDirectory"))
        r = try await refused(Manager.SpawnParameters(argv: [program], stdout: "somewhere"))
        #expect(r["parameter"] == .string("stdout"))
        r = try await refused(Manager.SpawnParameters(argv: [program], stdin: "journal"))
        #expect(r["parameter"] == .string("stdin"))
        r = try await refused(Manager.SpawnParameters(argv: [program], exclusiveCores: -1))
        #expect(r["parameter"] == .string("exclusiveCores"))
        r = try await refused(Manager.SpawnParameters(argv: [program], parentDeathSignal: 0))
        #expect(r["parameter"] == .string("parentDeathSignal"))
        r = try await refused(Manager.SpawnParameters(argv: [program], name: ""))
        #expect(r["parameter"] == .string("name"))
        r = try await refused(Manager.SpawnParameters(argv: [program], node: 7))
        #expect(r.error == "io.numaplaced.Manager.NoSuchNode")
        r = try await refused(Manager.SpawnParameters(argv: [program], device: "0000:3c:00.0"))
        #expect(r.error == "io.numaplaced.Manager.NoSuchDevice")

        // Sizes a client controls are bounded.
        let limits = Configuration.Limits()
        r = try await refused(Manager.SpawnParameters(argv: [program] + Array(repeating: "x", count: limits.maxArguments)))
        #expect(r.error == "io.numaplaced.Manager.LimitExceeded")
        #expect(r["limit"] == .string("MaxArguments"))
        #expect(r["maximum"] == .int(limits.maxArguments))
        r = try await refused(Manager.SpawnParameters(argv: [program, String(repeating: "a", count: limits.maxArgvBytes)]))
        #expect(r["limit"] == .string("MaxArgvBytes"))
        r = try await refused(Manager.SpawnParameters(argv: [program],
                                                      environment: (0...limits.maxEnvironmentEntries).map { "V\($0)=1" }))
        #expect(r["limit"] == .string("MaxEnvironmentEntries"))
        r = try await refused(Manager.SpawnParameters(argv: [program],
                                                      environment: ["BIG=" + String(repeating: "b", count: limits.maxEnvironmentBytes)]))
        #expect(r["limit"] == .string("MaxEnvironmentBytes"))

        // Only root may name another user.
        r = try await refused(Manager.SpawnParameters(argv: [program], user: "root"), peer: Self.user)
        #expect(r.error == "io.numaplaced.Manager.PermissionDenied")
        r = try await refused(Manager.SpawnParameters(argv: [program], user: "no-such-user-numaplace-test"))
        #expect(r.error == (geteuid() == 0 ? "io.numaplaced.Manager.InvalidParameter" : "io.numaplaced.Manager.PermissionDenied"))

        // Wrong JSON types never reach the supervisor.
        let typed = try await call(#"{"method":"io.numaplaced.Manager.Spawn","parameters":{"argv":"/bin/sh"}}"#, on: live)
        #expect(typed.error == "org.varlink.service.InvalidParameter")
        #expect(typed["parameter"] == .string("argv"))
        let missing = try await call(#"{"method":"io.numaplaced.Manager.Spawn","parameters":{"node":1}}"#, on: live)
        #expect(missing["parameter"] == .string("argv"))

        let listed = try await call(#"{"method":"io.numaplaced.Manager.ListWorkers"}"#, on: live)
        #expect(listed["workers"] == .array([]), "no refused request may leave a worker behind")
    }

    /// A Wait whose connection went away (the server cancels the connection's task) must end
    /// and forget its waiter, or a client could pile up waits on a long-running worker by
    /// connecting, calling Wait and hanging up, over and over.
    @Test(.timeLimit(.minutes(1)))
    func cancelledWaitReturnsWhileTheWorkerRuns() async throws {
        // A real process, handed to the supervisor the way a restarted daemon re-adopts one.
        let sleeper = Process()
        sleeper.executableURL = URL(fileURLWithPath: "/bin/sleep")
        sleeper.arguments = ["300"]
        try sleeper.run()
        let pid = sleeper.processIdentifier
        // SIGKILL: a test runner may ignore SIGTERM, and Process hands ignored signals on.
        defer {
            kill(pid, SIGKILL)
            sleeper.waitUntilExit()
        }
        let ticks = try #require(ProcessFacts.startTicks(pid: pid, root: SysfsRoot("/")))
        let worker = Manager.Worker(id: "w7", pid: Int(pid), uid: 0, gid: 0, argv: ["/bin/sleep", "300"], device: nil,
                                    node: nil, state: .running, startedAt: 0,
                                    requested: Manager.Placement(cpus: "", memoryPolicy: "default", memoryNodes: []),
                                    applied: nil, degraded: [], exclusiveCores: [], adopted: false, exit: nil)
        let stateDir = machine.path("state")
        try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true)
        #expect(WorkerStateLog(directory: stateDir).append(.init(op: "start", id: "w7", startTicks: ticks, worker: worker)))
        let supervisor = WorkerSupervisor(store: store, hub: hub, stateLog: WorkerStateLog(directory: stateDir),
                                          spawner: Spawner(savedOriginal: Self.allowed), logger: Logger(label: "test"),
                                          procRoot: SysfsRoot("/"), spawnEnabled: false)
        #expect(await supervisor.adopt() == (adopted: 1, gone: 0))
        let service = ManagerService(store: store, supervisor: supervisor, hub: hub, eventSource: "none")

        let wait = try VarlinkCall(bytes: Array(#"{"method":"io.numaplaced.Manager.Wait","parameters":{"id":"w7"}}"#.utf8))
        // The sink stays open so that what the cancelled Wait answered can be read: the worker as it
        // is now, running. A Wait that ended because the worker exited would say "exited".
        for _ in 0..<3 {
            let sink = CollectingSink()
            let task = Task { await service.handle(wait, peer: Self.root, sink: sink) }
            task.cancel()
            await task.value  // hangs (until the time limit) if a cancelled Wait keeps waiting
            #expect(sleeper.isRunning, "the worker still runs when the cancelled Wait has returned")
            #expect(sink.all.count == 1, "a cancelled Wait answers once")
            let answer = try Reply(try #require(sink.all.first))
            #expect(answer.error == nil)
            #expect(answer["worker"]?["state"] == .string("running"))
            #expect(answer["worker"]?["pid"] == .int(Int(pid)))
        }
        // The peer gone, as when the server cancels a hung-up connection's task: nothing is sent.
        let gone = CollectingSink()
        gone.close()
        let hungUp = Task { await service.handle(wait, peer: Self.root, sink: gone) }
        hungUp.cancel()
        await hungUp.value
        #expect(gone.all.isEmpty)
        #expect(sleeper.isRunning)
        #expect(try await call(#"{"method":"io.numaplaced.Manager.GetWorker","parameters":{"id":"w7"}}"#,
                               on: service)["worker"]?["state"] == .string("running"))
        // A Wait that is not cancelled still sees the exit.
        let sink = CollectingSink()
        let waiting = Task { await service.handle(wait, peer: Self.root, sink: sink) }
        kill(pid, SIGKILL)
        await waiting.value
        let reply = try Reply(try #require(sink.all.first))
        #expect(reply["worker"]?["state"] == .string("exited"))
    }

    /// A corrupt state log (a pid beyond pid_t, a negative uid, an id at Int.max) is skipped line by
    /// line: adoption, ListWorkers and the next id go on instead of trapping at every start.
    @Test func corruptStateLogRecordsAreSkipped() async throws {
        let stateDir = machine.path("state-corrupt")
        try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true)
        func line(id: String, pid: Int, uid: Int) -> String {
            #"{"op":"start","id":"\#(id)","startTicks":1,"worker":{"id":"\#(id)","pid":\#(pid),"uid":\#(uid),"gid":0,"#
                + #""argv":["/bin/true"],"state":"running","startedAt":0,"requested":{"cpus":"0","memoryPolicy":"default","#
                + #""memoryNodes":[]},"degraded":[],"exclusiveCores":[],"adopted":false}}"#
        }
        let text = [line(id: "w3", pid: 1 << 40, uid: 0), line(id: "w4", pid: 4_194_300, uid: -5),
                    line(id: "w9223372036854775807", pid: 4_194_301, uid: 0), line(id: "x5", pid: 4_194_302, uid: 0),
                    line(id: "w6", pid: 4_194_303, uid: 0)].joined(separator: "\n") + "\n"
        try text.write(toFile: stateDir + "/workers.log", atomically: true, encoding: .utf8)
        let supervisor = WorkerSupervisor(store: store, hub: hub, stateLog: WorkerStateLog(directory: stateDir),
                                          spawner: Spawner(savedOriginal: Self.allowed), logger: Logger(label: "test"),
                                          procRoot: SysfsRoot("/"), spawnEnabled: false)
        // Only w6 is a record this daemon could have written; its pid runs no such process here.
        #expect(await supervisor.adopt() == (adopted: 0, gone: 1))
        let listed = await supervisor.list(for: Self.root)
        #expect(listed.map(\.id) == ["w6"] && listed.first?.state == .exited)
        #expect(await supervisor.list(for: Self.user).isEmpty)
    }

    /// A device node or a driver name selects a device wherever an address does.
    @Test func devicesAreSelectedByNodeAndName() async throws {
        let named = try SyntheticMachine()
        try FileManager.default.createDirectory(atPath: try named.deviceFile(SyntheticMachine.gpu, "drm/renderD128"),
                                                withIntermediateDirectories: true)
        let (_, _, service) = Self.makeService(named, spawnEnabled: false)
        for selector in ["/dev/dri/renderD128", "renderD128", SyntheticMachine.gpu] {
            let r = try await call(#"{"method":"io.numaplaced.Manager.GetDevice","parameters":{"address":"\#(selector)"}}"#, on: service)
            #expect(r["device"]?["address"] == .string(SyntheticMachine.gpu), "\(selector): \(r)")
            #expect(r["device"]?["deviceNodes"] == .array([.string("/dev/dri/renderD128")]))
            let l = try await call(#"{"method":"io.numaplaced.Manager.ListDevices","parameters":{"address":"\#(selector)"}}"#, on: service)
            #expect(l["devices"]?.array.map { $0["address"] } == [.string(SyntheticMachine.gpu)])
        }
        let unknown = try await call(#"{"method":"io.numaplaced.Manager.GetDevice","parameters":{"address":"renderD999"}}"#, on: service)
        #expect(unknown.error == "io.numaplaced.Manager.InvalidParameter", "\(unknown)")
    }

    @Test func workerQueriesForUnknownIDs() async throws {
        var r = try await call(#"{"method":"io.numaplaced.Manager.GetWorker","parameters":{"id":"w1"}}"#)
        #expect(r.error == "io.numaplaced.Manager.NoSuchWorker")
        #expect(r["id"] == .string("w1"))
        r = try await call(#"{"method":"io.numaplaced.Manager.Wait","parameters":{"id":"w1"}}"#, peer: Self.user)
        #expect(r.error == "io.numaplaced.Manager.NoSuchWorker")
        r = try await call(#"{"method":"io.numaplaced.Manager.Signal","parameters":{"id":"w1","signal":15}}"#)
        #expect(r.error == "io.numaplaced.Manager.NoSuchWorker")
        r = try await call(#"{"method":"io.numaplaced.Manager.Signal","parameters":{"id":"w1","signal":0}}"#)
        #expect(r.error == "io.numaplaced.Manager.InvalidParameter")
        #expect(r["parameter"] == .string("signal"))
        r = try await call(#"{"method":"io.numaplaced.Manager.ListWorkers"}"#, peer: Self.user)
        #expect(r["workers"] == .array([]))
    }
}

@Suite struct DaemonPathTests {
    @Test(arguments: [
        ("/run/numaplaced/io.numaplaced", "/run/numaplaced"), ("/sock", "/"), ("sock", "."),
        ("dir/sock", "dir"), ("/tmp/x/", "/tmp"), ("/", "/"), ("//a", "/"),
    ])
    func parentDirectory(_ path: String, _ parent: String) {
        #expect(Daemon.parentDirectory(path) == parent)
    }
}
