import CNumaPlaceShim
import Foundation
import Glibc
import NumaPlaceCore
import NumaPlacePlatform
import NumaPlaceSyscall
import Testing
import NumaPlaceTestSupport

extension PlatformTests {
    /// The thin wrappers other parts of the daemon call directly.
    @Suite struct WrapperTests {
        @Test("np_peer_credentials reports the peer of a Unix socket (SO_PEERCRED)")
        func peerCredentials() throws {
            var fds: [Int32] = [-1, -1]
            try #require(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0)
            defer { close(fds[0]); close(fds[1]) }
            var pid: pid_t = 0, uid: uid_t = 0, gid: gid_t = 0
            #expect(np_peer_credentials(fds[0], &pid, &uid, &gid) == 0)
            #expect(pid == getpid())
            #expect(uid == geteuid())
            #expect(gid == getegid())
            // Not a socket: the errno comes back, nothing traps.
            #expect(np_peer_credentials(-1, &pid, &uid, &gid) == -1 && errno == EBADF)
        }

        @Test("a second pidfd opened by pid (a restarted daemon re-adopting a worker) reaps it")
        func readopt() throws {
            let pipe = try CapturePipe()
            let process = try Spawner(savedOriginal: LiveHost.allowed).spawn(SpawnRequest(
                argv: [try Scratch.probePath(), "exit", "7"], stdout: .fd(pipe.writeEnd), placement: try LiveHost.anywhere()))
            pipe.closeWriteEnd()
            let adopted = try PidFD.open(pid: process.pid)
            #expect(adopted.rawValue != process.pidfd.rawValue)
            _ = pipe.read()
            #expect(try adopted.waitForExit() == .exited(7))
            #expect(throws: Errno.noChildProcess) { try process.pidfd.tryReap() }
        }

        @Test("pidfd_open of a process that does not exist is ESRCH")
        func openMissing() {
            // pid_max is at most 2^22 (PID_MAX_LIMIT), so this pid cannot exist.
            #expect(throws: Errno.noSuchProcess) { try PidFD.open(pid: 1 << 23) }
        }

        @Test("PR_SET_PDEATHSIG fires when the spawning thread exits, not only the process (prctl(2))")
        func parentDeathSignal() throws {
            let probe = try Scratch.probePath()
            let placement = try LiveHost.anywhere()
            let spawner = Spawner(savedOriginal: LiveHost.allowed)
            let spawned: Result<SpawnedProcess, Error> = onDedicatedThread {
                Result {
                    let pipe = try CapturePipe()
                    let p = try spawner.spawn(SpawnRequest(argv: [probe, "sleep", "60"], stdout: .fd(pipe.writeEnd),
                                                           placement: placement, parentDeathSignal: SIGTERM))
                    pipe.closeWriteEnd()
                    _ = pipe.read(untilNewline: true)
                    return p
                }
            }
            // The thread has been joined; the worker was signalled as its parent thread exited.
            let process = try spawned.get()
            #expect(try process.pidfd.waitForExit() == .killed(signal: SIGTERM, coreDumped: false))
        }

        @Test("thread affinity and memory policy helpers round-trip on a dedicated thread")
        func affinityRoundTrip() throws {
            let node = try #require(LiveHost.firstNode)
            let cpu = try #require(LiveHost.allowed.cpus.last)
            let result: Result<(CPUSet, ThreadMemoryPolicy, ThreadMemoryPolicy), Error> = onDedicatedThread {
                Result {
                    try Affinity.pinCurrentThread(to: [cpu])
                    try Affinity.setMemoryPolicyOfCurrentThread(.interleave, nodes: [node])
                    let pinned = try Affinity.cpus()
                    let interleave = try Affinity.memoryPolicyOfCurrentThread()
                    try Affinity.setMemoryPolicyOfCurrentThread(.none, nodes: [])
                    // A CPU that cannot exist is answered with EINVAL, not a trap (and pins nothing).
                    do {
                        try Affinity.pinCurrentThread(to: [CPUSet.limit - 1])
                        throw ToolFailure(description: "pinned to CPU \(CPUSet.limit - 1)")
                    } catch let e as Errno where e == .invalidArgument {}
                    return (pinned, interleave, try Affinity.memoryPolicyOfCurrentThread())
                }
            }
            let (pinned, interleave, reset) = try result.get()
            #expect(pinned == [cpu])
            #expect(interleave.description == "interleave:\(node)")
            #expect(reset.name == "default" && reset.nodes.isEmpty)
        }
    }
}
