#if canImport(Glibc)
import Glibc
#endif
import Logging
import NumaPlaceCore
import NumaPlacePlatform
import NumaPlaceProtocol

extension WorkerSupervisor {
    /// Makes the worker's group before the clone. Where workers get no group, the note that says why
    /// goes into the reply's `degraded`; a group that cannot be made fails a strict spawn and degrades
    /// a best-effort one to the daemon's cgroup.
    func makeGroup(id: String, argv0: String, decision: PlacementDecision, limits: CgroupLimits,
                   admission: Admission) throws(VarlinkError) -> (WorkerCgroup?, [String]) {
        guard cgroups.subtree != nil else { return (nil, cgroups.degradedNote.map { [$0] } ?? []) }
        do {
            return (try cgroups.makeGroup(id: id, argv0: argv0, decision: decision, limits: limits), [])
        } catch {
            if admission == .strict || !limits.isEmpty {
                throw Manager.placementImpossible("cannot make the worker's cgroup: \(error)")
            }
            return (nil, ["no cgroup: \(error); the worker starts in the daemon's cgroup"])
        }
    }

    func openGroup(_ group: WorkerCgroup) throws(VarlinkError) -> Int32 {
        do { return try group.openDirectory() } catch {
            try? group.remove()
            throw Manager.placementImpossible("cannot open the worker's cgroup: \(error)")
        }
    }

    /// A worker as the API reports it: with its group's usage read now while it runs.
    func withUsage(_ worker: Manager.Worker) -> Manager.Worker {
        guard worker.state == .running, let group = table[worker.id]?.cgroup else { return worker }
        var w = worker
        w.usage = WorkerCgroups.usage(group.usage())
        return w
    }

    /// The group's last usage into the worker, and whether the OOM killer killed in it.
    func recordFinalUsage(_ id: String, group: WorkerCgroup, exit: Manager.ExitStatus) -> Manager.ExitStatus {
        let usage = group.usage()
        table.update(id) { $0.worker.usage = WorkerCgroups.usage(usage) }
        var exit = exit
        if (usage.oomKills ?? 0) > 0 { exit.oomKilled = true }
        return exit
    }

    /// An exited worker's group goes; one a child of the worker still holds stays for the stale sweep
    /// of the next start. Cores it held exclusively go back to the others' cpusets.
    func removeGroup(_ group: WorkerCgroup, of id: String, releasedCores: Bool) {
        do { try group.remove() } catch {
            logger.notice("worker \(id): its cgroup \(group.hierarchyPath) stays: \(error)")
        }
        if releasedCores { rebalanceCPUs() }
    }

    /// Exclusive cores are exclusive in the kernel too: every other running worker's cpuset is its
    /// requested CPUs less the cores other workers hold (a shared worker started before them included).
    /// A worker whose every CPU is now held elsewhere keeps its cpuset rather than be left with none.
    func rebalanceCPUs() {
        let reserved = table.reserved
        for id in table.running {
            guard let e = table[id], let group = e.cgroup,
                  let requested = try? CPUSet(cpulist: e.worker.requested.cpus), !requested.isEmpty else { continue }
            let own = e.cores.reduce(CPUSet()) { $0.union($1) }
            let target = requested.subtracting(reserved.subtracting(own))
            if target.isEmpty { continue }
            do { try group.setCPUs(target) } catch {
                logger.warning("worker \(id): cannot narrow its cpuset to \(target.cpulist): \(error)")
            }
        }
    }

    /// Whether a record's group (if it names one) still holds the process: the group is part of the
    /// worker's identity across a restart, with its pid and start time.
    func groupAgrees(_ worker: Manager.Worker, pid: pid_t) -> (Bool, WorkerCgroup?) {
        guard let path = worker.cgroup else { return (true, nil) }
        guard let group = cgroups.group(path: path) else { return (false, nil) }
        return (group.contains(pid), group)
    }

    /// Removes the empty worker groups no running worker has (a previous instance's, whose workers
    /// exited while no daemon ran).
    func sweepStaleGroups() {
        guard let subtree = cgroups.subtree else { return }
        let keep = Set(table.running.compactMap { table[$0]?.cgroup?.name })
        let (removed, busy) = subtree.removeStale(keeping: keep)
        if !removed.isEmpty { logger.info("removed \(removed.count) stale worker cgroups: \(removed.joined(separator: ", "))") }
        if !busy.isEmpty {
            logger.warning("worker cgroups with processes but no worker record, left alone: \(busy.joined(separator: ", "))")
        }
    }
}
