import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import NumaPlaceCore

/// Options every verb takes, before or after the verb's name (`numaplacectl --json devices`,
/// `numaplacectl devices --json`).
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "The daemon's socket.",
        discussion: "Default: $NUMAPLACE_SOCKET, else /run/numaplaced/io.numaplaced for root, else $XDG_RUNTIME_DIR/numaplaced/io.numaplaced, else /tmp/numaplaced-UID/io.numaplaced (the daemon's own defaults).",
        valueName: "path"))
    var socket: String?

    @Flag(name: .long, help: "Print the Varlink reply parameters as JSON (pretty, sorted keys; one compact object per line for monitor).")
    var json = false

    /// The socket to use: `--socket`, `$NUMAPLACE_SOCKET`, or the daemon's default for this user.
    func socketPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let socket { return socket }
        return Self.defaultSocketPath(environment: environment, euid: geteuid())
    }

    /// `$NUMAPLACE_SOCKET`, else where the daemon binds by default (`Configuration.runtimeSocketPath`).
    static func defaultSocketPath(environment: [String: String], euid: uid_t) -> String {
        if let s = environment["NUMAPLACE_SOCKET"], !s.isEmpty { return s }
        return Configuration.runtimeSocketPath(euid: euid, xdgRuntimeDirectory: environment["XDG_RUNTIME_DIR"])
    }
}

/// A verb that talks to the daemon. ArgumentParser hands a subcommand's `@OptionGroup` the values
/// given before the verb's name too, so `global` holds them wherever they were written.
protocol ManagerCommand: ParsableCommand {
    var global: GlobalOptions { get }
}
