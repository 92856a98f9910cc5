import Foundation
import Testing
import NumaPlaceCore
@testable import NumaPlaceNRI

/// What a runtime or a daemon can get wrong without ending the plugin: bytes that are frames but not
/// messages, a daemon that accepts and never answers, a Synchronize of many running containers.
@Suite("NRI plugin robustness", .serialized)
struct PluginRobustnessTests {
    /// Garbled protobuf inside well-formed frames: each call is answered with INVALID_ARGUMENT and the
    /// session serves the next one.
    @Test func garbledPayloadsAreAnsweredWithStatusAndTheSessionGoesOn() throws {
        let runtime = try FakeRuntime()
        let outcome = PluginSessionTests.startPlugin(runtime)
        try runtime.accept()
        _ = try runtime.acceptRegistration()
        let junk: [UInt8] = [0xff, 0xff, 0xff, 0xff, 0x0f]
        for (label, attempt) in [("not a ttrpc.Request", { try runtime.call(requestBytes: junk) }),
                                 ("not a CreateContainerRequest", { try runtime.call("CreateContainer", payload: junk) }),
                                 ("truncated StopContainerRequest", { try runtime.call("StopContainer", payload: [0x0a, 0x20, 1]) })] {
            do {
                _ = try attempt()
                Issue.record("\(label): answered without a status")
            } catch let status as TTRPCStatus {
                #expect(status.code == 3, "\(label): \(status)")
            }
        }
        var create = Nri_Pkg_Api_V1alpha1_CreateContainerRequest()
        create.container = TestMachine.container("gpu", devices: ["/dev/dri/renderD128"])
        let reply = try Nri_Pkg_Api_V1alpha1_CreateContainerResponse(serializedBytes: try runtime.call("CreateContainer", create))
        #expect(reply.adjust.linux.resources.cpu.cpus == "0-7")
        _ = try runtime.call("Shutdown", Nri_Pkg_Api_V1alpha1_Empty())
        #expect(outcome.wait())
        #expect(outcome.error == nil, "\(String(describing: outcome.error))")
    }

    /// A numaplaced that accepts the connection and never answers (stopped, wedged): GetTopology gives up
    /// within its limit, and the container is answered unplaced inside the runtime's 2-second budget.
    @Test func silentDaemonCostsThePlacementNotTheRuntimesRequest() throws {
        let silent = try FakeRuntime()   // a listening socket that nobody accepts on: connect succeeds
        let source = DaemonInventory(socketPath: silent.path, timeoutMilliseconds: 300)
        let started = Date()
        #expect(throws: DaemonInventoryError.noAnswer(socketPath: silent.path, milliseconds: 300)) { try source.fetch() }
        #expect(Date().timeIntervalSince(started) < 1.5)

        let runtime = try FakeRuntime()
        let outcome = PluginSessionTests.startPlugin(runtime, inventory: { try source.fetch() })
        try runtime.accept()
        _ = try runtime.acceptRegistration()
        var create = Nri_Pkg_Api_V1alpha1_CreateContainerRequest()
        create.container = TestMachine.container("gpu", devices: ["/dev/dri/renderD128"])
        let asked = Date()
        let reply = try Nri_Pkg_Api_V1alpha1_CreateContainerResponse(serializedBytes: try runtime.call("CreateContainer", create))
        #expect(Date().timeIntervalSince(asked) < 2)
        #expect(!reply.hasAdjust)
        _ = try runtime.call("Shutdown", Nri_Pkg_Api_V1alpha1_Empty())
        #expect(outcome.wait())
        #expect(outcome.lines.contains { $0.contains("left unplaced") })
    }

    /// Synchronize with running exclusive containers: their cores stay reserved (a new exclusive
    /// container gets others), read with one inventory call however many there are.
    @Test func synchronizeReservesRunningExclusiveCoresWithOneInventoryCall() throws {
        final class Counter: @unchecked Sendable {
            private let lock = NSLock()
            private var n = 0
            func next() { lock.withLock { n += 1 } }
            var count: Int { lock.withLock { n } }
        }
        let calls = Counter()
        let runtime = try FakeRuntime()
        let outcome = PluginSessionTests.startPlugin(runtime, inventory: { calls.next(); return try TestMachine.inventory() })
        try runtime.accept()
        _ = try runtime.acceptRegistration()
        // Configure asks once: that call starts a socket-activated daemon before any container needs it.
        _ = try runtime.call("Configure", Nri_Pkg_Api_V1alpha1_ConfigureRequest())
        #expect(calls.count == 1)
        var sync = Nri_Pkg_Api_V1alpha1_SynchronizeRequest()
        sync.pods = [TestMachine.pod()]
        for (id, cpus) in [("old-1", "8-9"), ("old-2", "10-11")] {
            var c = TestMachine.container(id, id: id, devices: ["/dev/dri/renderD129"],
                                          annotations: [NRIAnnotation.exclusiveCores: "1"])
            c.linux.resources.cpu.cpus = cpus
            sync.containers.append(c)
        }
        sync.containers.append(TestMachine.container("plain", id: "old-plain"))
        _ = try runtime.call("Synchronize", sync)
        #expect(calls.count == 2)

        var create = Nri_Pkg_Api_V1alpha1_CreateContainerRequest()
        create.pod = TestMachine.pod()
        create.container = TestMachine.container("new", id: "new", devices: ["/dev/dri/renderD129"],
                                                 annotations: [NRIAnnotation.exclusiveCores: "1"])
        let reply = try Nri_Pkg_Api_V1alpha1_CreateContainerResponse(serializedBytes: try runtime.call("CreateContainer", create))
        let cpus = try CPUSet(cpulist: reply.adjust.linux.resources.cpu.cpus)
        #expect(!cpus.isEmpty)
        #expect(cpus.intersection(try CPUSet(cpulist: "8-11")).isEmpty, "\(cpus.cpulist)")
        _ = try runtime.call("Shutdown", Nri_Pkg_Api_V1alpha1_Empty())
        #expect(outcome.wait())
    }
}
