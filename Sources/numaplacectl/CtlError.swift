#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import NumaPlaceProtocol
import NumaPlaceSyscall

/// What can end a numaplacectl run, each with its exit code (docs/cli.md, "Exit codes").
enum CtlError: Error, CustomStringConvertible {
    /// The daemon answered with a Varlink error: 1, or 77 for PermissionDenied.
    case remote(VarlinkError)
    /// No daemon at the socket (missing, refused): 69, EX_UNAVAILABLE.
    case unreachable(path: String, errno: Errno)
    /// The socket exists but we may not connect to it: 77, EX_NOPERM.
    case socketPermission(path: String, errno: Errno)
    /// The connection broke mid-call: 69.
    case connectionLost(String)
    /// The daemon sent something that is not a valid reply: 76, EX_PROTOCOL.
    case protocolViolation(String)
    /// Bad arguments found after parsing (a relative path that cannot be resolved, a bad signal): 2.
    case usage(String)
    /// A local failure (cannot write the output file, cannot scan an offline root): 1.
    case local(String)

    var exitCode: Int32 {
        switch self {
        case .remote(let e): return e.isPermissionDenied ? ExitStatus.permissionDenied : ExitStatus.errorReply
        case .unreachable, .connectionLost: return ExitStatus.unavailable
        case .socketPermission: return ExitStatus.permissionDenied
        case .protocolViolation: return ExitStatus.protocolError
        case .usage: return ExitStatus.usage
        case .local: return ExitStatus.errorReply
        }
    }

    var description: String {
        switch self {
        case .remote(let e): return e.inWords
        case .unreachable(let path, let e):
            return "cannot reach numaplaced at \(path): \(e) (is the daemon running? --socket or NUMAPLACE_SOCKET choose another socket)"
        case .socketPermission(let path, let e):
            return "may not connect to \(path): \(e) (the socket is for root and the numaplace group)"
        case .connectionLost(let why): return "lost the connection to numaplaced: \(why)"
        case .protocolViolation(let why): return "numaplaced sent an invalid reply: \(why)"
        case .usage(let why): return why
        case .local(let why): return why
        }
    }
}

/// The exit codes, in one place (sysexits.h names where they exist).
enum ExitStatus {
    static let success: Int32 = 0
    /// The daemon answered with an error (no such device, placement impossible, …).
    static let errorReply: Int32 = 1
    /// Bad command line.
    static let usage: Int32 = 2
    /// EX_UNAVAILABLE: the daemon cannot be reached.
    static let unavailable: Int32 = 69
    /// EX_PROTOCOL: the reply was not Varlink.
    static let protocolError: Int32 = 76
    /// EX_NOPERM: permission denied, by the socket's mode or by the daemon.
    static let permissionDenied: Int32 = 77
}

extension VarlinkError {
    var isPermissionDenied: Bool {
        name == "\(Manager.interface).PermissionDenied" || name == "org.varlink.service.PermissionDenied"
    }

    private func string(_ key: String) -> String? {
        switch parameters[key] {
        case .string(let s)?: return s
        case .int(let i)?: return String(i)
        default: return nil
        }
    }

    /// The error in words, then its Varlink name and parameters, so that both people and bug
    /// reports get what they need: `no device at 0000:99:00.0 (io.numaplaced.Manager.NoSuchDevice address=0000:99:00.0)`.
    var inWords: String {
        let words: String
        switch name {
        case "\(Manager.interface).NoSuchDevice":
            words = "no managed device at \(string("address") ?? "that address")"
        case "\(Manager.interface).NoSuchNode":
            words = "NUMA node \(string("node") ?? "?") does not exist"
        case "\(Manager.interface).NoSuchWorker":
            words = "no worker \(string("id") ?? "?") (workers of other users are not shown)"
        case "\(Manager.interface).PlacementImpossible":
            words = "the placement is impossible: \(string("reason") ?? "no reason given")"
        case "\(Manager.interface).SpawnFailed":
            let errnoText = string("errno").flatMap { Int32($0) }.map { " (errno \($0), \(String(cString: strerror($0))))" } ?? ""
            words = "the worker could not be started at step \(string("step") ?? "?"): \(string("message") ?? "")\(errnoText)"
        case "\(Manager.interface).PermissionDenied":
            words = "permission denied: \(string("reason") ?? "")"
        case "\(Manager.interface).InvalidParameter":
            words = "invalid \(string("parameter") ?? "parameter"): \(string("reason") ?? "")"
        case "\(Manager.interface).LimitExceeded":
            words = "limit \(string("limit") ?? "?") exceeded (at most \(string("maximum") ?? "?"))"
        case "org.varlink.service.MethodNotFound":
            words = "the daemon does not know method \(string("method") ?? "?") (an older numaplaced?)"
        case "org.varlink.service.InterfaceNotFound":
            words = "the daemon does not serve interface \(string("interface") ?? "?")"
        case "org.varlink.service.InvalidParameter":
            words = "the daemon refused parameter \(string("parameter") ?? "?")"
        case "org.varlink.service.PermissionDenied":
            words = "permission denied"
        case "org.varlink.service.ExpectedMore":
            words = "the method streams and needs \"more\""
        default:
            // An error this client does not know: its name and every parameter, as sent.
            let details = parameters.sorted { $0.key < $1.key }.map { k, v in "\(k)=\(Output.encode(v, pretty: false))" }
            return "the daemon answered \(([name] + details).joined(separator: " "))"
        }
        return "\(words) (\(name))"
    }
}
