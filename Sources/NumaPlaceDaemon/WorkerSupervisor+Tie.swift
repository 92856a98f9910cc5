import NumaPlacePlatform
import NumaPlaceProtocol
#if canImport(Glibc)
import Glibc
#endif

extension WorkerSupervisor {
    /// How long a tied worker has between SIGTERM and SIGKILL once its client is gone: short, so that
    /// a killed `numaplacectl run` leaves nothing behind for long, and long enough to flush and exit.
    public static let tieGracePeriod: Duration = .seconds(2)

    /// The connection `connection` closed: each running worker tied to it is stopped.
    public func connectionClosed(_ connection: UInt64) {
        guard connection != 0, let ids = tiedByConnection.removeValue(forKey: connection) else { return }
        // Workers that exited meanwhile are passed over by stopTied.
        for id in ids { stopTied(id) }
    }

    /// SIGTERM now and SIGKILL after the grace period, to a tied worker whose client is gone. Once
    /// per worker: the tie is cut, so a second close or a re-check does not restart the clock.
    func stopTied(_ id: String) {
        guard let entry = table[id], entry.worker.state == .running, entry.tiedTo != nil,
              let pidfd = entry.pidfd else { return }
        table.update(id) { $0.tiedTo = nil }
        logger.info("worker \(id) (pid \(entry.worker.pid)): its client is gone, stopping it")
        try? pidfd.send(signal: SIGTERM)
        Task {
            try? await Task.sleep(for: WorkerSupervisor.tieGracePeriod)
            self.killIfRunning(id, pidfd: pidfd)
        }
    }

    private func killIfRunning(_ id: String, pidfd: PidFD) {
        // The same process (the pidfd names it, never a recycled pid) and not reaped yet.
        guard let entry = table[id], entry.worker.state == .running, entry.pidfd === pidfd else { return }
        logger.notice("worker \(id) (pid \(entry.worker.pid)) did not stop within \(WorkerSupervisor.tieGracePeriod) of SIGTERM: SIGKILL")
        try? pidfd.send(signal: SIGKILL)
    }
}
