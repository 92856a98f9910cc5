#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import NumaPlaceNRI
import NumaPlaceCore

/// The NRI plugin as a process of its own beside numaplaced (docs/cluster.md says why): connects to the
/// runtime's NRI socket, registers, places containers that use an accelerator, and reconnects when the
/// runtime restarts.
@main
struct NumaPlaceNRICommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "numaplace-nri",
        abstract: "NRI plugin for containerd and CRI-O: puts containers that use an accelerator on its NUMA node.",
        discussion: """
        A container that has an accelerator's device file in its spec, or the annotation \
        numaplaced.io/device, gets cpuset.cpus and cpuset.mems of that device's placement as numaplaced \
        computes it; numaplaced.io/exclusive-cores: N gives it N whole cores of its own until it stops. \
        Other containers are left alone. See docs/cluster.md.
        """
    )

    @Option(help: "The runtime's NRI socket.")
    var nriSocket = "/var/run/nri/nri.sock"

    @Option(help: "numaplaced's Varlink socket.")
    var daemonSocket = Configuration.defaultSocketPath

    @Option(help: "The plugin's name in the runtime.")
    var name = "numaplace"

    @Option(help: "Two digits that order this plugin among the runtime's plugins.")
    var index = "10"

    @Flag(help: "Exit when the runtime closes the connection instead of reconnecting.")
    var once = false

    func validate() throws {
        guard index.count == 2, index.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw ValidationError("--index takes two digits, as NRI requires (\"10\")")
        }
        guard !name.isEmpty, name.utf8.count <= 64 else { throw ValidationError("--name must be 1 to 64 bytes") }
    }

    func run() throws {
        let source = DaemonInventory(socketPath: daemonSocket)
        // Launched by the runtime itself (a binary in /opt/nri/plugins named "10-numaplace"): it hands
        // over a connected socket and the identity in the environment, as pkg/stub reads them, and the
        // plugin lives exactly as long as that connection.
        if let text = getenv("NRI_PLUGIN_SOCKET").map({ String(cString: $0) }) {
            guard let fd = Int32(text), fd >= 0 else { throw ValidationError("NRI_PLUGIN_SOCKET=\(text) is not a descriptor") }
            let envName = getenv("NRI_PLUGIN_NAME").map { String(cString: $0) } ?? name
            let envIndex = getenv("NRI_PLUGIN_IDX").map { String(cString: $0) } ?? index
            let plugin = NRIPlugin(inventory: source.fetch, log: { say($0) })
            do {
                try NRIPluginSession(trunk: NRITrunk(adopting: fd), plugin: plugin, name: envName, index: envIndex).run()
            } catch {
                say("\(error)")
                throw ExitCode(1)
            }
            return
        }
        var backoff: UInt32 = 1
        while true {
            let plugin = NRIPlugin(inventory: source.fetch, log: { say($0) })
            do {
                let trunk = try NRITrunk(connectingTo: nriSocket)
                say("connected to \(nriSocket); registering as \(index)-\(name)")
                backoff = 1
                try NRIPluginSession(trunk: trunk, plugin: plugin, name: name, index: index).run()
                // The runtime stops its plugins when it stops itself; wait for the next one.
                say("the runtime shut the plugin down")
                if once { return }
            } catch {
                say("\(error)")
                if once { throw ExitCode(1) }
            }
            // The runtime restarts (containerd upgrade, crash): come back when its socket does.
            sleep(backoff)
            backoff = min(backoff * 2, 30)
        }
    }
}

/// One line to stderr, which journald takes under systemd.
private func say(_ text: String) {
    var line = text
    line.append("\n")
    _ = line.withCString { fputs($0, stderr) }
}
