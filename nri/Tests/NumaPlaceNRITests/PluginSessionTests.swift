import Foundation
import Testing
import NumaPlaceCore
@testable import NumaPlaceNRI

/// The plugin over a real Unix socket against FakeRuntime: registration, Configure, Synchronize,
/// CreateContainer with and without an accelerator, the release on stop and removal, Shutdown.
@Suite("NRI plugin against a fake runtime", .serialized)
struct PluginSessionTests {
    /// What the plugin's thread ended with, and its log.
    final class Outcome: @unchecked Sendable {
        private let lock = NSLock()
        private var _error: Error?
        private var _lines: [String] = []
        private var _reserved: CPUSet?
        let done = DispatchSemaphore(value: 0)

        func log(_ line: String) { lock.withLock { _lines.append(line) } }
        func finish(_ error: Error?, reserved: CPUSet?) {
            lock.withLock { _error = error; _reserved = reserved }
            done.signal()
        }
        var error: Error? { lock.withLock { _error } }
        var lines: [String] { lock.withLock { _lines } }
        var reserved: CPUSet? { lock.withLock { _reserved } }

        func wait() -> Bool { done.wait(timeout: .now() + 10) == .success }
    }

    /// Starts the plugin on a thread of its own, connected to `runtime`.
    static func startPlugin(_ runtime: FakeRuntime, inventory: @escaping @Sendable () throws -> Inventory = { try TestMachine.inventory() }) -> Outcome {
        let outcome = Outcome()
        let path = runtime.path
        Thread.detachNewThread {
            var plugin: NRIPlugin?
            do {
                let trunk = try NRITrunk(connectingTo: path)
                let p = NRIPlugin(inventory: inventory, log: outcome.log)
                plugin = p
                try NRIPluginSession(trunk: trunk, plugin: p, name: "numaplace", index: "10").run()
                outcome.finish(nil, reserved: p.reserved)
            } catch {
                outcome.finish(error, reserved: plugin?.reserved)
            }
        }
        return outcome
    }

    @Test func registersPlacesAcceleratorContainersAndReleases() throws {
        let runtime = try FakeRuntime()
        let outcome = Self.startPlugin(runtime)
        try runtime.accept()

        let registration = try runtime.acceptRegistration()
        #expect(registration.pluginName == "numaplace")
        #expect(registration.pluginIdx == "10")

        var configure = Nri_Pkg_Api_V1alpha1_ConfigureRequest()
        configure.runtimeName = "fake"
        configure.runtimeVersion = "1.7.24"
        let configured = try Nri_Pkg_Api_V1alpha1_ConfigureResponse(serializedBytes: try runtime.call("Configure", configure))
        // CreateContainer (4), StopContainer (10), RemoveContainer (11): bits 3, 9 and 10.
        #expect(configured.events == 1 << 3 | 1 << 9 | 1 << 10)
        _ = try runtime.call("Synchronize", Nri_Pkg_Api_V1alpha1_SynchronizeRequest())

        // A container with the node-1 GPU's render node, asking for two whole cores.
        var create = Nri_Pkg_Api_V1alpha1_CreateContainerRequest()
        create.pod = TestMachine.pod()
        create.container = TestMachine.container("gpu", id: "c-gpu", devices: ["/dev/dri/renderD129"],
                                                 annotations: [NRIAnnotation.exclusiveCores: "2"])
        let placed = try Nri_Pkg_Api_V1alpha1_CreateContainerResponse(serializedBytes: try runtime.call("CreateContainer", create))
        #expect(placed.hasAdjust)
        #expect(placed.adjust.linux.resources.cpu.cpus == "8-11")
        #expect(placed.adjust.linux.resources.cpu.mems == "1")

        // One without any device: no adjustment at all.
        create.container = TestMachine.container("plain", id: "c-plain")
        let plain = try Nri_Pkg_Api_V1alpha1_CreateContainerResponse(serializedBytes: try runtime.call("CreateContainer", create))
        #expect(!plain.hasAdjust)
        #expect(plain.adjust.linux.resources.cpu.cpus.isEmpty)

        // A second GPU container on node 1 shares what the exclusive one does not hold.
        create.container = TestMachine.container("gpu2", id: "c-gpu2", devices: ["/dev/dri/renderD129"])
        let second = try Nri_Pkg_Api_V1alpha1_CreateContainerResponse(serializedBytes: try runtime.call("CreateContainer", create))
        #expect(second.adjust.linux.resources.cpu.cpus == "12-15")

        // A device the machine does not have, named by annotation: creation fails with the reason.
        create.container = TestMachine.container("bad", id: "c-bad", annotations: [NRIAnnotation.device: "renderD999"])
        #expect(throws: TTRPCStatus.self) { try runtime.call("CreateContainer", create) }

        // Stop releases the exclusive cores: the next exclusive container gets them again.
        var stop = Nri_Pkg_Api_V1alpha1_StopContainerRequest()
        stop.pod = TestMachine.pod()
        stop.container = TestMachine.container("gpu", id: "c-gpu")
        _ = try runtime.call("StopContainer", stop)
        create.container = TestMachine.container("gpu3", id: "c-gpu3", devices: ["/dev/dri/renderD129"],
                                                 annotations: [NRIAnnotation.exclusiveCores: "2"])
        let again = try Nri_Pkg_Api_V1alpha1_CreateContainerResponse(serializedBytes: try runtime.call("CreateContainer", create))
        #expect(again.adjust.linux.resources.cpu.cpus == "8-11")

        // RemoveContainer arrives as a StateChange event.
        var removed = Nri_Pkg_Api_V1alpha1_StateChangeEvent()
        removed.event = .removeContainer
        removed.container = TestMachine.container("gpu3", id: "c-gpu3")
        _ = try runtime.call("StateChange", removed)

        _ = try runtime.call("Shutdown", Nri_Pkg_Api_V1alpha1_Empty())
        #expect(outcome.wait(), "the plugin did not return after Shutdown")
        #expect(outcome.error == nil, "\(String(describing: outcome.error))")
        #expect(outcome.reserved == CPUSet(), "nothing stays reserved after stop and removal")
        #expect(outcome.lines.contains { $0.contains("ml/trainer/gpu") && $0.contains("cpus=8-11") })
    }

    @Test func unknownMethodIsUnimplementedAndTheSessionGoesOn() throws {
        let runtime = try FakeRuntime()
        let outcome = Self.startPlugin(runtime)
        try runtime.accept()
        _ = try runtime.acceptRegistration()
        #expect(throws: TTRPCStatus(code: 12, message: "method Frobnicate is not served here")) {
            try runtime.call("Frobnicate", Nri_Pkg_Api_V1alpha1_Empty())
        }
        _ = try runtime.call("Shutdown", Nri_Pkg_Api_V1alpha1_Empty())
        #expect(outcome.wait())
        #expect(outcome.error == nil)
    }

    @Test func daemonDownLeavesContainersAlone() throws {
        struct Down: Error {}
        let runtime = try FakeRuntime()
        let outcome = Self.startPlugin(runtime, inventory: { throw Down() })
        try runtime.accept()
        _ = try runtime.acceptRegistration()
        var create = Nri_Pkg_Api_V1alpha1_CreateContainerRequest()
        create.container = TestMachine.container("gpu", devices: ["/dev/dri/renderD128"])
        let reply = try Nri_Pkg_Api_V1alpha1_CreateContainerResponse(serializedBytes: try runtime.call("CreateContainer", create))
        #expect(!reply.hasAdjust)
        runtime.closeTrunk()
        #expect(outcome.wait())
        #expect(outcome.error as? NRIConnectionError == .closed)
    }

    @Test func refusedRegistrationIsTyped() throws {
        let runtime = try FakeRuntime()
        let outcome = Self.startPlugin(runtime)
        try runtime.accept()
        let frame = try runtime.receive()
        var response = Ttrpc_Response()
        response.status.code = 3
        response.status.message = "invalid plugin index"
        try runtime.send(connection: 2, stream: frame.stream, type: 2, payload: try response.serializedBytes())
        #expect(outcome.wait())
        #expect(outcome.error as? NRIConnectionError == .registrationRefused(TTRPCStatus(code: 3, message: "invalid plugin index")))
    }

    /// Hostile trunks: each ends the session with its typed error, never a crash or a hang.
    @Test(arguments: [
        ("oversize chunk", FakeRuntime.be(1) + FakeRuntime.be(UInt32(1 << 24) + 1), NRIConnectionError.mux(.oversize(length: (1 << 24) + 1))),
        ("oversize frame", FakeRuntime.be(1) + FakeRuntime.be(10) + FakeRuntime.be(UInt32(4 << 20) + 1) + FakeRuntime.be(1) + [1, 0],
         .ttrpc(connection: 1, .oversize(length: (4 << 20) + 1))),
        ("unknown type", FakeRuntime.be(1) + FakeRuntime.be(10) + FakeRuntime.be(0) + FakeRuntime.be(1) + [9, 0],
         .ttrpc(connection: 1, .unknownType(9))),
        ("truncated frame", FakeRuntime.be(1) + FakeRuntime.be(12) + FakeRuntime.be(5) + FakeRuntime.be(1) + [1, 0, 0, 0],
         .ttrpc(connection: 1, .truncated(have: 12, need: 15))),
        ("truncated chunk", FakeRuntime.be(1) + FakeRuntime.be(100) + [1, 2, 3], .mux(.truncated(have: 11, need: 108))),
    ])
    func hostileTrunkEndsTheSessionTyped(label: String, bytes: [UInt8], expected: NRIConnectionError) throws {
        let runtime = try FakeRuntime()
        let outcome = Self.startPlugin(runtime)
        try runtime.accept()
        _ = try runtime.acceptRegistration()
        try runtime.write(raw: bytes)
        runtime.closeTrunk()
        #expect(outcome.wait(), "\(label)")
        #expect(outcome.error as? NRIConnectionError == expected, "\(label): \(String(describing: outcome.error))")
    }
}
