import Foundation

/// One long-lived thread that performs every clone for the daemon.
///
/// `PR_SET_PDEATHSIG` fires when the *thread* that created the child exits, not the process
/// (prctl(2)). Swift's concurrency and Dispatch retire idle worker threads, so a worker spawned from
/// one of them with `parentDeathSignal` would be killed at random; spawning from this thread ties
/// the signal to the daemon's lifetime, as callers expect. It also keeps the vfork-style clone (which
/// suspends the calling thread until execve) off the cooperative pool.
final class SpawnThread: @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [() -> Void] = []
    private var thread: Thread?

    init() {
        let t = Thread { [unowned self] in self.loop() }
        t.name = "numaplaced-spawn"
        thread = t
        t.start()
    }

    private func loop() {
        while true {
            condition.lock()
            while jobs.isEmpty { condition.wait() }
            let job = jobs.removeFirst()
            condition.unlock()
            job()
        }
    }

    /// Runs `body` on the spawn thread and returns its result.
    func run<T: Sendable, E: Error>(_ body: @escaping @Sendable () throws(E) -> T) async throws(E) -> T {
        let result: Result<T, E> = await withCheckedContinuation { continuation in
            condition.lock()
            jobs.append {
                continuation.resume(returning: Result { () throws(E) -> T in try body() })
            }
            condition.signal()
            condition.unlock()
        }
        return try result.get()
    }
}
