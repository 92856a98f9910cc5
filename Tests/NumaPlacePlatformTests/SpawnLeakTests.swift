import Foundation
import Glibc
import NumaPlaceCore
import NumaPlacePlatform
import Testing
import NumaPlaceTestSupport

extension PlatformTests {
    @Suite struct SpawnLeakTests {
        static let iterations = 2_000

        @Test("2,000 spawns leave no descriptor in the parent, none beyond stdio in the workers, no zombie")
        func noLeaks() throws {
            let node = try #require(LiveHost.firstNode)
            let spawner = Spawner(savedOriginal: LiveHost.allowed)
            let placement = try LiveHost.decision(node: node, memory: .preferred)
            let probe = try Scratch.probePath()
            _ = try runProbe(spawner, placement: placement) // warm-up: lazily opened runtime descriptors

            // A descriptor the parent leaves inheritable (no O_CLOEXEC), as careless libraries do:
            // the workers must not get it.
            let leaky = open("/dev/null", O_RDONLY)
            try #require(leaky >= 3)
            defer { close(leaky) }

            let before = openDescriptors()
            // The loop runs on a named thread, so that an unreaped child would be recognised as ours.
            let loop: Result<(Set<[Int32]>, Int, [ProcessExitStatus: Int]), Error> = onDedicatedThread {
                Result {
                    var workerFDs: Set<[Int32]> = []
                    var failures = 0
                    var statuses: [ProcessExitStatus: Int] = [:]
                    for i in 0..<Self.iterations {
                        if i % 10 == 9 {
                            // Every tenth a failing exec, so the error path is looped too.
                            do {
                                _ = try spawner.spawn(SpawnRequest(argv: [Scratch.dir + "/no-such-worker"], placement: placement))
                            } catch let error as SpawnError {
                                if error.step == .exec && error.errno == .noSuchFileOrDirectory { failures += 1 }
                            }
                            continue
                        }
                        let pipe = try CapturePipe()
                        let process = try spawner.spawn(SpawnRequest(argv: [probe], stdout: .fd(pipe.writeEnd), placement: placement))
                        pipe.closeWriteEnd()
                        let text = pipe.read()
                        statuses[try process.pidfd.waitForExit(), default: 0] += 1
                        let report = try JSONDecoder().decode(ProbeReport.self, from: Data(text.utf8))
                        workerFDs.insert(report.fds)
                    }
                    return (workerFDs, failures, statuses)
                }
            }
            let (workerFDs, failures, statuses) = try loop.get()
            let after = openDescriptors()

            #expect(failures == Self.iterations / 10)
            #expect(statuses == [.exited(0): Self.iterations - Self.iterations / 10])
            #expect(workerFDs == [[0, 1, 2]])
            // The kinds the spawner makes (its report pipe, pidfds, /dev/null) must match exactly. Other
            // kinds are compared by count only, with slack: in a full `swift test` run other targets'
            // tests run concurrently in this process and open files of their own, but a leak of one
            // descriptor per spawn would still show as hundreds.
            #expect(spawnerKinds(after) == spawnerKinds(before),
                    "descriptors gained: \(after.filter { before[$0.key] != $0.value })")
            #expect(after.count < before.count + Self.iterations / 20,
                    "descriptors gained: \(after.filter { before[$0.key] != $0.value })")
            #expect(zombieChildren().isEmpty)
        }
    }
}
