import CNumaPlaceShim
import Glibc
import NumaPlaceCore
import NumaPlaceSyscall

extension Spawner {
    // MARK: Reports

    /// Reads every record in the (non-blocking) report pipe: up to EOF, or EAGAIN when a child that
    /// another thread is spawning still holds a copy of the write end until its own execve.
    static func readReports(_ fd: Int32) -> [np_report] {
        var records: [np_report] = []
        var record = np_report()
        let size = MemoryLayout<np_report>.size
        while records.count < 16 {
            let n: Int
            do {
                n = try Syscall.retrying { read(fd, &record, size) }
            } catch {
                break
            }
            // Records are written whole (far below PIPE_BUF), so a short read means no more records.
            guard n == size else { break }
            records.append(record)
        }
        return records
    }

    func describe(_ step: SpawnStep, record: np_report, request: SpawnRequest, path: String,
                          target: CPUSet, setGroups groups: [UInt32]) -> String {
        switch step {
        case .signals: return record.mode > 0 ? "reset the disposition of signal \(record.mode)" : "reset the signal mask"
        case .setsid: return "setsid"
        case .pdeathsig: return "prctl(PR_SET_PDEATHSIG, \(request.parentDeathSignal ?? 0))"
        case .restoreAffinity: return "sched_setaffinity(saved original CPUs \(savedOriginal.cpus))"
        case .resetMempolicy: return "set_mempolicy(default)"
        case .setAffinity: return "sched_setaffinity(CPUs \(target))"
        case .setMempolicy:
            let nodes = record.mode == Int32(NP_MPOL_PREFERRED)
                ? Array(request.placement.memory.nodes.prefix(1)) : request.placement.memory.nodes
            let list = CPUSet(nodes.map(\.rawValue))
            return "set_mempolicy(\(Spawner.modeName(record.mode)), \(nodes.count == 1 ? "node" : "nodes") \(list))"
        case .setgroups: return "setgroups(\(groups.map(String.init).joined(separator: ",")))"
        case .setgid: return "setgid(\(request.credentials?.gid ?? 0))"
        case .setuid: return "setuid(\(request.credentials?.uid ?? 0))"
        case .chdir: return "chdir \(request.workingDirectory ?? "")"
        case .stdio:
            let names = ["stdin", "stdout", "stderr"]
            guard record.mode >= 0 && record.mode < 3 else { return "move the report pipe above stdio" }
            return "dup2 onto \(names[Int(record.mode)])"
        case .closeFDs: return "close_range(3, ~0)"
        case .rlimits: return "prlimit(resource \(record.mode))"
        case .exec: return "exec \(path)"
        case .clone: return "clone"
        case .prepare: return "prepare"
        }
    }
}
