import ArgumentParser
import NumaPlaceProtocol

struct TopologyCommand: ManagerCommand {
    static let configuration = CommandConfiguration(
        commandName: "topology",
        abstract: "Show the NUMA nodes, their CPUs, memory and distances, and the devices on them.",
        discussion: "Example: numaplacectl topology")

    @OptionGroup var global: GlobalOptions

    func run() throws {
        let reply = try session().call("GetTopology")
        if global.json { return Output.json(reply.parameters) }
        let t = try reply.decode(Manager.GetTopologyReply.self)
        var nodes = Table("NODE", "CPUS", "MEMORY", "DISTANCES")
        for n in t.nodes {
            nodes.add(String(n.id), Format.orDash(n.cpus), n.memoryBytes == 0 ? "-" : Format.bytes(n.memoryBytes),
                      n.distances.map(String.init).joined(separator: " "))
        }
        nodes.print()
        Output.line()
        Format.fields([
            ("online CPUs", Format.orDash(t.onlineCPUs)),
            ("possible CPUs", Format.orDash(t.possibleCPUs)),
            ("allowed CPUs", Format.orDash(t.allowedCPUs) + " (the daemon's cgroup, which workers may use)"),
            ("packages", t.packages.isEmpty ? "unknown" : "\(t.packages.count): " + t.packages.joined(separator: " | ")),
            ("cores", "\(t.cores.count) physical cores (SMT sibling groups)"),
        ], indent: "").forEach { Output.line($0) }
        Output.line()
        if t.devices.isEmpty {
            Output.line("no managed devices")
        } else {
            Format.deviceTable(t.devices).print()
        }
        if !t.warnings.isEmpty {
            Output.line()
            Output.line("warnings:")
            for w in t.warnings { Output.line("  " + w) }
        }
    }
}
