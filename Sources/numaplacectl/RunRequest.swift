#if canImport(Glibc)
import Glibc
#endif
import NumaPlaceCore

/// What `run` was asked for, free of ArgumentParser, so that the common command lines skip it.
///
/// `run` is a foreground launcher, compared with `numactl` started the same way: ArgumentParser's
/// reflection (protocol-conformance scans on first use of each type) is a third of a whole `run`'s CPU.
/// `fastParse` takes only plain spellings (`--opt value`, `--opt=value`); anything else, help and
/// every error included, goes to ArgumentParser, which stays the one authority on the grammar.
struct RunRequest {
    var device: String?
    var devices: String?
    var node: Int?
    var cpus: String?
    var memory: String?
    var exclusiveCores: Int?
    var admission: String?
    var name: String?
    var runtimeEnv = false
    var clearEnv = false
    var env: [String] = []
    var cwd: String?
    var command: [String] = []

    /// `[--socket P] run [options] -- COMMAND…` → the socket (nil: the default) and the request; nil
    /// for anything it does not take as is.
    static func fastParse(_ arguments: [String]) -> (socket: String?, request: RunRequest)? {
        var socket: String?
        var r = RunRequest()
        var i = 0
        func value(_ arg: String, _ name: String) -> String?? {
            if arg == name {
                guard i + 1 < arguments.count else { return .some(nil) }
                i += 1
                return .some(arguments[i])
            }
            if arg.hasPrefix(name + "=") { return .some(String(arg.dropFirst(name.count + 1))) }
            return .none
        }
        var sawRun = false
        while i < arguments.count {
            let arg = arguments[i]
            if arg == "--" {
                guard sawRun else { return nil }
                r.command = Array(arguments[(i + 1)...])
                break
            }
            if !sawRun {
                if arg == "run" { sawRun = true }
                else if let v = value(arg, "--socket") { guard let v else { return nil }; socket = v }
                else { return nil }
                i += 1
                continue
            }
            switch arg {
            case "--runtime-env": r.runtimeEnv = true
            case "--clear-env": r.clearEnv = true
            default:
                var matched = false
                names: for name in ["--device", "--devices", "--node", "--cpus", "--memory", "--exclusive-cores",
                             "--admission", "--name", "--env", "--cwd", "--socket"] {
                    guard let v = value(arg, name) else { continue }
                    guard let v, !v.isEmpty else { return nil }
                    matched = true
                    switch name {
                    case "--device": r.device = v
                    case "--devices": r.devices = v
                    case "--node": guard let n = Int(v) else { return nil }; r.node = n
                    case "--cpus": r.cpus = v
                    case "--memory": guard ["preferred", "bind", "interleave", "none"].contains(v) else { return nil }; r.memory = v
                    case "--exclusive-cores": guard let n = Int(v), n >= 0 else { return nil }; r.exclusiveCores = n
                    case "--admission": guard ["strict", "best-effort"].contains(v) else { return nil }; r.admission = v
                    case "--name": r.name = v
                    case "--env": guard let eq = v.firstIndex(of: "="), eq != v.startIndex else { return nil }; r.env.append(v)
                    case "--cwd": r.cwd = v
                    default: socket = v
                    }
                    break names
                }
                guard matched else { return nil }
            }
            i += 1
        }
        // What validate() checks; its messages are ArgumentParser's to give.
        guard let first = r.command.first, !first.isEmpty else { return nil }
        guard [r.device, r.devices, r.node.map(String.init), r.cpus].compactMap({ $0 }).count <= 1 else { return nil }
        if let cpus = r.cpus, (try? CPUSet(cpulist: cpus)) == nil { return nil }
        return (socket, r)
    }
}
