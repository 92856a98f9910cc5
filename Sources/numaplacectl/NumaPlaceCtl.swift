import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// numaplacectl: the command-line client of numaplaced. It speaks the Varlink protocol only
/// (NumaPlaceProtocol), plus an offline scan (NumaPlaceCore) for the cluster exports.
@main
struct NumaPlaceCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "numaplacectl",
        abstract: "Ask numaplaced where devices sit, and start workers placed on their NUMA node.",
        discussion: """
        Talks to numaplaced over its Varlink socket (io.numaplaced.Manager). Tables are for people; \
        --json prints the reply parameters exactly as the daemon sent them, for scripts.

        Examples:
          numaplacectl devices --kind gpu
          numaplacectl device 3b:00.0             # any address spelling
          numaplacectl spawn --device 0000:3b:00.0 --wait -- ./worker --rank 0
          numaplacectl --json workers | jq '.workers[].applied'
          numaplacectl monitor
          numaplacectl export slurm-gres --file-pattern '/dev/nvidia{index}'
          numaplacectl export nfd --sysfs-root /tmp/machine -o features.d/numaplaced

        Exit codes:
          0   success
          1   the daemon answered with an error (no such device, no such worker, …)
          2   bad command line
          69  the daemon cannot be reached (EX_UNAVAILABLE)
          76  the daemon's reply was not valid Varlink (EX_PROTOCOL)
          77  permission denied, by the socket or by the daemon (EX_NOPERM)
          run, spawn --wait: the worker's exit code, or 128 + the signal that killed it

        Shell completions: numaplacectl --generate-completion-script bash|zsh|fish
        """,
        subcommands: [
            Status.self, TopologyCommand.self, Devices.self, DeviceCommand.self, Spawn.self, Workers.self,
            Run.self, WorkerCommand.self, Kill.self, Wait.self, Monitor.self, Reload.self, Export.self,
        ])

    @OptionGroup var global: GlobalOptions

    /// ArgumentParser's own main exits 64 for usage errors; ours exits 2, as most tools do, and maps
    /// `CtlError` to the documented codes.
    static func main() {
        // A signal mask inherited blocked (a process started from a thread of a Dispatch pool gets one)
        // would leave monitor and spawn --wait deaf to Ctrl-C and kill. Dispositions stay as inherited:
        // a shell that ignores SIGINT for a background job means it.
        var none = sigset_t()
        sigemptyset(&none)
        pthread_sigmask(SIG_SETMASK, &none, nil)
        if let (socket, request) = RunRequest.fastParse(Array(CommandLine.arguments.dropFirst())) {
            do {
                try Run.execute(socket: socket ?? GlobalOptions.defaultSocketPath(
                    environment: ProcessInfo.processInfo.environment, euid: geteuid()), request)
            } catch {
                finish(error)
            }
            Glibc.exit(ExitStatus.success)
        }
        var command: ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            finish(error)
        }
        do {
            try command.run()
        } catch {
            finish(error)
        }
        Glibc.exit(ExitStatus.success)
    }

    static func finish(_ error: Error) -> Never {
        switch error {
        case let e as CtlError:
            Output.error(e.description)
            Glibc.exit(e.exitCode)
        case let e as WorkerExit:
            Glibc.exit(e.code)
        default:
            let code = exitCode(for: error)
            let message = fullMessage(for: error)
            if code == .success {
                if !message.isEmpty { Output.line(message) }
                Glibc.exit(ExitStatus.success)
            }
            if !message.isEmpty { Output.write(message + "\n", to: 2) }
            // Parse and validation errors (64 in ArgumentParser) are usage errors here.
            Glibc.exit(code == .validationFailure ? ExitStatus.usage : code.rawValue)
        }
    }
}

/// `spawn --wait`: exit with the worker's status.
struct WorkerExit: Error {
    let code: Int32
}

extension ManagerCommand {
    /// Opens the session to the daemon this command talks to.
    func session() throws(CtlError) -> ManagerSession {
        try ManagerSession(path: global.socketPath())
    }
}
