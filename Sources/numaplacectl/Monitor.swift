import ArgumentParser
import NumaPlaceProtocol

struct Monitor: ManagerCommand {
    static let configuration = CommandConfiguration(
        abstract: "Follow device and worker events until interrupted.",
        discussion: """
        One line per event for people; with --json one compact JSON object per line (the reply \
        parameters, {"event": {…}}), flushed as it arrives, so it can be piped. The first event is \
        "ready", sent once the stream is set up. Worker events of other users are not shown (root sees all).

        Examples:
          numaplacectl monitor
          numaplacectl --json monitor | jq -c 'select(.event.kind == "workerExited")'
        """)

    @OptionGroup var global: GlobalOptions

    func run() throws {
        let session = try session()
        var reply = try session.call("Monitor", Empty(), more: true)
        while true {
            if global.json {
                Output.jsonLine(reply.parameters)
            } else {
                Output.line(Self.describe(try reply.decode(Manager.MonitorReply.self).event))
            }
            guard reply.continues else { return }
            reply = try session.next()
        }
    }

    static func describe(_ e: Manager.Event) -> String {
        var text = "\(Format.timestamp(e.timestamp, fractional: true))  #\(e.sequence)  \(e.kind)"
        if let d = e.device {
            text += "  \(d.address) \(d.kind) \(Format.vendor(d)) node \(d.numaNode.map(String.init) ?? "unknown") cpus \(Format.orDash(d.cpus))"
        } else if let a = e.address {
            text += "  \(a)"
        }
        if let w = e.worker {
            text += "  \(w.id) pid \(w.pid)"
            if w.state == .running {
                text += " on " + Format.placement(w.applied ?? w.requested)
            } else {
                text += " " + Format.exit(w.exit)
            }
            text += ": " + Format.command(w.argv, limit: 40)
        }
        return text
    }
}
