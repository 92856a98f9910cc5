import ArgumentParser
import NumaPlaceProtocol

struct Status: ManagerCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the daemon's version, uptime, counts and allowed CPUs.",
        discussion: "Example: numaplacectl status")

    @OptionGroup var global: GlobalOptions

    func run() throws {
        let session = try session()
        let reply = try session.call("GetStatus")
        if global.json { return Output.json(reply.parameters) }
        let s = try reply.decode(Manager.GetStatusReply.self)
        Output.line("numaplaced \(s.version) on \(session.path)")
        var fields: [(String, String)] = [
            ("started", "\(Format.timestamp(s.startedAt)) (up \(Format.duration(usec: s.uptimeUsec)))"),
            ("nodes", String(s.nodes)),
            ("devices", String(s.devices)),
            ("workers", "\(s.workers) (\(s.runningWorkers) running)"),
            ("allowed", "CPUs \(Format.orDash(s.allowedCPUs)), memory nodes \(Format.orDash(s.allowedMems))"),
            ("events", s.eventSource),
            ("config", s.configurationFiles.isEmpty ? "built-in defaults" : s.configurationFiles.joined(separator: ", ")),
        ]
        fields.append(("warnings", String(s.warnings.count)))
        Format.fields(fields).forEach { Output.line($0) }
        for w in s.warnings { Output.line("    " + w) }
    }
}
