#if canImport(Glibc)
import Glibc
#endif
import Logging
import NumaPlaceCore
import NumaPlacePlatform
import NumaPlaceProtocol

extension WorkerSupervisor {
    /// Re-adopts the workers a previous instance recorded as running: those whose pid still names
    /// the same process (same start time, and still in the worker's cgroup where it has one) are
    /// watched again; the rest are reported as exited. Then empty groups no worker has are removed.
    public func adopt() -> (adopted: Int, gone: Int) {
        let (records, maxID) = log.load()
        reserveIDs(after: maxID)
        var adopted = 0, gone = 0
        for r in records {
            guard var worker = r.worker, table[r.id] == nil else { continue }
            worker.adopted = true
            let pid = pid_t(worker.pid)
            let ticks = ProcessFacts.startTicks(pid: pid, root: procRoot)
            if ticks != nil, ticks == r.startTicks, let pidfd = try? PidFD.open(pid: pid),
               // Read again through the pidfd's process: the pid cannot have been reused since.
               ProcessFacts.startTicks(pid: pid, root: procRoot) == ticks,
               Self.processMayBe(worker, pid: pid, root: procRoot),
               case (true, let group) = groupAgrees(worker, pid: pid) {
                // Exclusive cores only where no worker adopted before holds them: a record cannot
                // take cores twice, nor all of them.
                var cores = worker.exclusiveCores.compactMap { try? CPUSet(cpulist: $0) }
                let held = table.reserved
                if cores.contains(where: { !$0.isDisjoint(with: held) }) {
                    logger.warning("worker \(r.id) (pid \(pid)): its exclusive cores are held by another worker; adopted as shared")
                    cores = []
                    worker.exclusiveCores = []
                }
                // A tied worker's connection died with the previous instance: stop it, as its close would have.
                track(WorkerTable.Entry(worker: worker, pidfd: pidfd, startTicks: ticks, cores: cores, cgroup: group,
                                        tiedTo: worker.tied == true ? 0 : nil))
                if worker.tied == true { stopTied(r.id) }
                adopted += 1
                logger.info("worker \(r.id) (pid \(pid)) re-adopted",
                            metadata: [LogMetadataKey.messageID: "\(MessageID.workerAdopted)", LogMetadataKey.workerID: "\(r.id)",
                                       LogMetadataKey.workerPID: "\(pid)"])
            } else {
                worker.state = .exited
                worker.exit = Manager.ExitStatus(how: .unknown)
                track(WorkerTable.Entry(worker: worker, pidfd: nil, startTicks: r.startTicks, cores: []))
                log.append(WorkerStateLog.Record(op: "exit", id: r.id, startTicks: nil, worker: nil))
                gone += 1
            }
        }
        sweepStaleGroups()
        // Start the next instance from a compact log.
        log.compactIfNeeded(liveCount: table.running.count, live: table.liveRecords, threshold: 0)
        return (adopted, gone)
    }

    /// Whether the live process may be the worker a record describes, as far as whose it is: the
    /// record's uid is one of the process's (real, effective, saved, filesystem), or the record is
    /// root's (which gives no one but root a handle on it). A record naming a user for someone
    /// else's process would let that user signal it.
    static func processMayBe(_ worker: Manager.Worker, pid: pid_t, root: SysfsRoot) -> Bool {
        if worker.uid == 0 { return true }
        return ProcessFacts.uids(pid: pid, root: root)?.contains(worker.uid) ?? false
    }
}
