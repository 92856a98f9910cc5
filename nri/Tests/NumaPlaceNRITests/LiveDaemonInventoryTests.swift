import Foundation
import Testing
import NumaPlaceCore
import NumaPlaceProtocol
import NumaPlaceTestSupport
@testable import NumaPlaceNRI

/// The plugin's inventory as it reads it in production: GetTopology from a built numaplaced serving a
/// real-machine fixture (eight NEC Vector Engines, /dev/ve0 to /dev/ve7, on two nodes), then the fake
/// runtime's CreateContainer for /dev/ve0 and /dev/ve7.
@Suite("NRI plugin with a live numaplaced", .serialized)
struct LiveDaemonInventoryTests {
    static let fixture = "hwloc-32intel64-2p8co2t+8ve"
    static let ready = LiveHost.binaryBuilt && FixtureLibrary.isPresent && FixtureLibrary.has(fixture)

    @Test(.enabled(if: ready, "needs a built numaplaced (swift build) and ../shared/fixtures/sysfs"))
    func veDevicesArePlacedFromTheDaemonsTopology() throws {
        let dir = scratchDirectory + "np-nri-live-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let socket = dir + "/io.numaplaced"
        let daemon = Process()
        daemon.executableURL = URL(fileURLWithPath: LiveHost.binary)
        daemon.arguments = ["--socket", socket, "--event-source", "none", "--log-to", "stderr",
                            "--state-dir", dir + "/state", "--config", dir + "/no-config",
                            "--sysfs-root", try FixtureLibrary.path(Self.fixture)]
        daemon.standardOutput = FileHandle.nullDevice
        daemon.standardError = FileHandle.nullDevice
        daemon.standardInput = FileHandle.nullDevice
        try daemon.run()
        defer { daemon.terminate(); daemon.waitUntilExit() }

        // The socket listens once the scan is done; bounded, so a daemon that never listens fails here.
        let source = DaemonInventory(socketPath: socket)
        var inventory: Inventory?
        for _ in 0..<1200 where inventory == nil && daemon.isRunning {
            inventory = try? source.fetch()
            if inventory == nil { usleep(50_000) }
        }
        let machine = try #require(inventory, "numaplaced did not answer GetTopology")
        let ve0 = try #require(machine.device(named: "/dev/ve0"))
        let ve7 = try #require(machine.device(named: "/dev/ve7"))

        let runtime = try FakeRuntime()
        let outcome = PluginSessionTests.startPlugin(runtime, inventory: { try source.fetch() })
        try runtime.accept()
        _ = try runtime.acceptRegistration()
        var create = Nri_Pkg_Api_V1alpha1_CreateContainerRequest()
        for (path, device) in [("/dev/ve0", ve0), ("/dev/ve7", ve7)] {
            create.container = TestMachine.container("ve", id: path, devices: [path])
            let reply = try Nri_Pkg_Api_V1alpha1_CreateContainerResponse(serializedBytes: try runtime.call("CreateContainer", create))
            #expect(reply.adjust.linux.resources.cpu.cpus == device.cpus.cpulist, "\(path)")
            let nodes = device.placementNodes(in: machine.topology).map(\.rawValue)
            #expect(reply.adjust.linux.resources.cpu.mems == CPUSet(nodes).cpulist, "\(path)")
        }
        _ = try runtime.call("Shutdown", Nri_Pkg_Api_V1alpha1_Empty())
        #expect(outcome.wait())
        #expect(outcome.error == nil)
    }
}
