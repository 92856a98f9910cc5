import Glibc
import NumaPlaceCore
import NumaPlacePlatform
import NumaPlaceTestSupport
import Testing

extension PlatformTests {
    /// Both clone3 children run the same spawn sequence as clone's: placed, with their stdio, and
    /// reaped. (Into a group only where the host has cgroup v2: the QEMU test bed.)
    @Suite struct Clone3SpawnTests {
        @Test("clone3 sharing or copying memory places the worker as clone does",
              arguments: [CloneMethod.clone3SharedMemory, .clone3CopiedMemory, .automatic])
        func placed(method: CloneMethod) throws {
            let node = try #require(LiveHost.firstNode)
            let spawner = Spawner(savedOriginal: LiveHost.allowed)
            let placement = try LiveHost.decision(node: node, memory: .preferred)
            for _ in 0..<20 {
                let (report, process, status) = try runProbe(spawner, placement: placement) { $0.cloneMethod = method }
                #expect(status == .exited(0))
                #expect(report.pid == process.pid)
                #expect(report.cpus == placement.cpus.cpulist)
                #expect(report.fds == [0, 1, 2])
            }
        }

        @Test("a failing exec under clone3 is reported with its step and reaped")
        func failure() throws {
            let node = try #require(LiveHost.firstNode)
            let spawner = Spawner(savedOriginal: LiveHost.allowed)
            let placement = try LiveHost.decision(node: node, memory: .preferred)
            for method in [CloneMethod.clone3SharedMemory, .clone3CopiedMemory] {
                var request = SpawnRequest(argv: ["/nonexistent/worker"], placement: placement)
                request.cloneMethod = method
                #expect {
                    _ = try spawner.spawn(request)
                } throws: { ($0 as? SpawnError)?.step == .exec }
            }
            #expect(zombieChildren().isEmpty)
        }
    }
}
