#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import NumaPlaceProtocol

/// Human renderings of wire values, shared by the verbs.
enum Format {
    /// `-` for nothing, so that table columns stay aligned.
    static func orDash(_ s: String?) -> String {
        guard let s, !s.isEmpty else { return "-" }
        return s
    }

    static func nodes(_ ids: [Int]) -> String {
        ids.isEmpty ? "-" : ids.map(String.init).joined(separator: ",")
    }

    static func bytes(_ n: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
        var value = Double(n)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        guard unit > 0 else { return "\(n) B" }
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10) \(units[unit])"
    }

    /// Microseconds since the epoch as local time, `2025-11-24 23:10:01`.
    static func timestamp(_ usec: Int, fractional: Bool = false) -> String {
        var seconds = time_t(usec / 1_000_000)
        var tm = tm()
        localtime_r(&seconds, &tm)
        func pad(_ n: Int, _ width: Int) -> String {
            let digits = String(n)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        var text = pad(Int(tm.tm_year) + 1900, 4) + "-" + pad(Int(tm.tm_mon) + 1, 2) + "-" + pad(Int(tm.tm_mday), 2)
            + " " + pad(Int(tm.tm_hour), 2) + ":" + pad(Int(tm.tm_min), 2) + ":" + pad(Int(tm.tm_sec), 2)
        if fractional { text += "." + pad((usec % 1_000_000) / 1000, 3) }
        return text
    }

    static func duration(usec: Int) -> String {
        var s = usec / 1_000_000
        let d = s / 86400; s %= 86400
        let h = s / 3600; s %= 3600
        let m = s / 60; s %= 60
        if d > 0 { return "\(d)d \(h)h \(m)m" }
        if h > 0 { return "\(h)h \(m)m \(s)s" }
        if m > 0 { return "\(m)m \(s)s" }
        return "\(s)s"
    }

    /// `preferred on 1`, `bind on 0,1`, `default`.
    static func memory(_ p: Manager.Placement) -> String {
        p.memoryNodes.isEmpty ? p.memoryPolicy : "\(p.memoryPolicy) on \(nodes(p.memoryNodes))"
    }

    static func placement(_ p: Manager.Placement) -> String {
        "CPUs \(orDash(p.cpus)), memory \(memory(p))"
    }

    /// `exited with code 7`, `killed by signal 9 (KILL)`.
    static func exit(_ e: Manager.ExitStatus?) -> String {
        guard let e else { return "running" }
        switch e.how {
        case .exited: return "exited with code \(e.code.map(String.init) ?? "?")"
        case .killed:
            let name = e.signal.flatMap { Signals.name(of: $0) }.map { " (\($0))" } ?? ""
            return "killed by signal \(e.signal.map(String.init) ?? "?")\(name)\(e.oomKilled == true ? " (out of memory: the OOM killer, in the worker's cgroup)" : "")"
        case .unknown: return "exit status unknown (\(e.how.rawValue))"
        }
    }

    /// The short form for a table cell: `0`, `sig 15`, `?`.
    static func exitCell(_ w: Manager.Worker) -> String {
        guard let e = w.exit else { return "-" }
        switch e.how {
        case .exited: return e.code.map(String.init) ?? "?"
        case .killed: return "sig \(e.signal.map(String.init) ?? "?")"
        case .unknown: return "?"
        }
    }

    static func command(_ argv: [String], limit: Int = 60) -> String {
        let text = argv.map { arg in
            arg.isEmpty || arg.contains(where: { $0 == " " || $0 == "\"" || $0 == "'" || $0 == "\t" }) ? "'\(arg)'" : arg
        }.joined(separator: " ")
        return text.count > limit ? String(text.prefix(limit - 1)) + "…" : text
    }

    static func vendor(_ d: Manager.Device) -> String { d.vendorName ?? d.vendor }

    static func deviceRow(_ d: Manager.Device) -> [String] {
        [d.address, d.kind.rawValue, vendor(d), d.device, d.numaNode.map(String.init) ?? "-", nodes(d.placementNodes),
         orDash(d.cpus), d.locality.rawValue, orDash(d.driver)]
    }

    static func deviceTable(_ devices: [Manager.Device]) -> Table {
        var t = Table("ADDRESS", "KIND", "VENDOR", "DEVICE", "NODE", "MEMNODES", "CPUS", "LOCALITY", "DRIVER")
        for d in devices { t.add(deviceRow(d)) }
        return t
    }

    static func workerTable(_ workers: [Manager.Worker]) -> Table {
        var t = Table("ID", "PID", "STATE", "EXIT", "NODE", "DEVICE", "CPUS", "MEMORY", "COMMAND")
        for w in workers {
            let shown = w.applied ?? w.requested
            t.add(w.id, String(w.pid), w.state.rawValue, exitCell(w), w.node.map(String.init) ?? "-", orDash(w.device),
                  orDash(shown.cpus), memory(shown), command(w.argv))
        }
        return t
    }

    /// The lines `worker` and `spawn` print about one worker.
    static func workerDetails(_ w: Manager.Worker) -> [String] {
        let lines = ["worker \(w.id): pid \(w.pid), \(w.state == .running ? "running" : exit(w.exit))"]
        var fields: [(String, String)] = [
            ("command", command(w.argv, limit: 200)),
            ("user", "uid \(w.uid), gid \(w.gid)"),
            ("started", timestamp(w.startedAt)),
        ]
        if let d = w.device { fields.append(("device", d)) }
        if let n = w.node { fields.append(("node", String(n))) }
        fields.append(("requested", placement(w.requested)))
        fields.append(("applied", w.applied.map(placement) ?? "not read back"))
        if !w.exclusiveCores.isEmpty { fields.append(("exclusive", "cores " + w.exclusiveCores.joined(separator: " "))) }
        for d in w.degraded { fields.append(("degraded", d)) }
        if w.adopted { fields.append(("adopted", "re-adopted after a daemon restart")) }
        if let c = w.cgroup { fields.append(("cgroup", c)) }
        if let u = w.usage { fields.append(("usage", usage(u))) }
        return lines + Self.fields(fields)
    }

    /// "CPU 1.25 s, memory 12.0 MiB (peak 15.3 MiB), 3 pids"; absent figures are left out.
    static func usage(_ u: Manager.WorkerUsage) -> String {
        func decimal(_ v: Int, _ unit: Int, places: Int) -> String {
            let scale = places == 1 ? 10 : 100
            let scaled = (v * scale + unit / 2) / unit
            let frac = String(scaled % scale)
            return "\(scaled / scale)." + String(repeating: "0", count: places - frac.count) + frac
        }
        func mib(_ b: Int) -> String { decimal(b, 1_048_576, places: 1) + " MiB" }
        var parts: [String] = []
        if let c = u.cpuUsec { parts.append("CPU \(decimal(c, 1_000_000, places: 2)) s") }
        if let m = u.memoryCurrent { parts.append("memory \(mib(m))" + (u.memoryPeak.map { " (peak \(mib($0)))" } ?? "")) }
        else if let p = u.memoryPeak { parts.append("memory peak \(mib(p))") }
        if let p = u.pids { parts.append("\(p) pids") }
        return parts.isEmpty ? "not available" : parts.joined(separator: ", ")
    }

    /// Key/value lines with aligned values.
    static func fields(_ pairs: [(String, String)], indent: String = "  ") -> [String] {
        let width = pairs.map(\.0.count).max() ?? 0
        return pairs.map { indent + $0.0 + String(repeating: " ", count: width - $0.0.count + 2) + $0.1 }
    }
}
