import NIOPosix
import NumaPlacePlatform
import NumaPlaceSyscall

/// One long-lived thread that performs every clone for the daemon.
///
/// `PR_SET_PDEATHSIG` fires when the *thread* that created the child exits, not the process
/// (prctl(2)). Swift's concurrency and Dispatch retire idle worker threads, so a worker spawned from
/// one of them with `parentDeathSignal` would be killed at random; spawning from this thread (a
/// one-thread `NIOThreadPool`, whose thread lives until the pool is shut down, which the daemon never
/// does) ties the signal to the daemon's lifetime, as callers expect. It also keeps the vfork-style
/// clone (which suspends the calling thread until execve) off the cooperative pool, and hands the
/// rest of the spawn (the read-back, the reply) back to a thread that is not on the CPU where the
/// new worker starts: cloning on the caller's thread measured slower on a 2-CPU host.
final class SpawnThread: Sendable {
    private let pool: NIOThreadPool

    init() {
        pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
    }

    /// Runs `body` on the spawn thread and returns its result. Always runs it, even when the calling
    /// task is cancelled (a client that disconnected): a clone under way must be seen to its end and
    /// its worker tracked.
    func run<T: Sendable>(_ body: @escaping @Sendable () throws(SpawnError) -> T) async throws(SpawnError) -> T {
        let result: Result<T, SpawnError> = await withCheckedContinuation { continuation in
            pool.submit { state in
                switch state {
                case .active:
                    continuation.resume(returning: Result { () throws(SpawnError) -> T in try body() })
                case .cancelled:
                    continuation.resume(returning: .failure(
                        SpawnError(step: .clone, errno: Errno(ECANCELED), operation: "the spawn thread has stopped")))
                }
            }
        }
        return try result.get()
    }
}
