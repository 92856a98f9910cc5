import Foundation
import NumaPlaceCore
#if canImport(Glibc)
import Glibc
#endif

/// The machine the tests run on, probed once: its scanned topology and placements, the executables
/// `swift build` made, the tools some tests need, and small process helpers. Tests that need what
/// the host lacks are enabled by these flags and skip with a message naming it.
public enum LiveHost {
    /// The repository, from this file's path (Tests/NumaPlaceTestSupport/LiveHost.swift).
    public static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    // MARK: Topology and placement

    public static let root = SysfsRoot("/")
    public static let inventory: Inventory = SysfsScanner(root: root).scan()
    public static let allowed: AllowedSet = {
        var warnings: [ScanWarning] = []
        return AllowedSet.read(root: root, topology: inventory.topology, warnings: &warnings)
    }()
    public static let isRoot = geteuid() == 0
    public static var firstNode: NUMANodeID? { inventory.topology.nodes.first { $0.hasCPUs }?.id }

    /// The placement Core decides for a node target.
    public static func decision(node: NUMANodeID, memory: MemoryPolicyMode,
                                admission: Admission = .strict) throws -> PlacementDecision {
        try PlacementPolicy.decide(PlacementRequest(target: .node(node), memory: memory, admission: admission),
                                   inventory: inventory, allowed: allowed, reserved: CPUSet())
    }

    /// A placement with no CPU target and the default memory policy.
    public static func anywhere() throws -> PlacementDecision {
        try PlacementPolicy.decide(PlacementRequest(target: .anywhere, memory: .none),
                                   inventory: inventory, allowed: allowed, reserved: CPUSet())
    }

    // MARK: Built executables and tools

    /// Where `swift build` put the executables: beside the test bundle (any `--build-path`; on Linux the
    /// bundle is `.build/<triple>/debug/numaplacedPackageTests.xctest`), the directory above it, the
    /// directory of `argv[0]`, else `.build/debug` of this checkout.
    public static let buildDirectories: [String] = {
        var out: [String] = []
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            let dir = (exe as NSString).deletingLastPathComponent
            out += [dir, (dir as NSString).deletingLastPathComponent]
        }
        out.append((CommandLine.arguments[0] as NSString).deletingLastPathComponent)
        out.append(repository + "/.build/debug")
        return out
    }()

    /// The first build directory holding every one of `names` as an executable.
    public static func buildDirectory(holding names: [String]) -> String? {
        buildDirectories.first { dir in names.allSatisfy { access(dir + "/" + $0, X_OK) == 0 } }
    }

    /// The daemon built beside this test binary, else `.build/debug/numaplaced`.
    public static let binary: String = (buildDirectory(holding: ["numaplaced"]) ?? repository + "/.build/debug") + "/numaplaced"
    public static let binaryBuilt = access(binary, X_OK) == 0
    /// The PyPI `varlink` client (the README's test command installs it).
    public static let pythonVarlink: Bool = (try? run(["/usr/bin/env", "python3", "-c", "import varlink"]).status) == 0
    /// A Python for the second uid: root's pyenv under /root is not readable by other users, and
    /// that client only needs the standard library.
    public static let systemPython: String? = ["/usr/bin/python3", "/bin/python3"].first { (p: String) in access(p, X_OK) == 0 }
    public static let setpriv: String? = ["/usr/bin/setpriv", "/bin/setpriv"].first { (p: String) in access(p, X_OK) == 0 }

    // MARK: Processes and clocks

    public struct Ran {
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    /// Runs a command to completion (killed after `timeout` seconds), capturing its output.
    public static func run(_ argv: [String], timeout: Double = 120, environment: [String: String]? = nil) throws -> Ran {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("np-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out"), err = dir.appendingPathComponent("err")
        FileManager.default.createFile(atPath: out.path, contents: nil)
        FileManager.default.createFile(atPath: err.path, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: argv[0])
        p.arguments = Array(argv.dropFirst())
        if let environment { p.environment = environment }
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = try FileHandle(forWritingTo: out)
        p.standardError = try FileHandle(forWritingTo: err)
        try p.run()
        let pid = p.processIdentifier
        let timer = DispatchWorkItem { kill(pid, SIGKILL) }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: timer)
        p.waitUntilExit()
        timer.cancel()
        return Ran(status: p.terminationStatus,
                   stdout: (try? String(contentsOf: out, encoding: .utf8)) ?? "",
                   stderr: (try? String(contentsOf: err, encoding: .utf8)) ?? "")
    }

    public static func monotonicMicroseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
    }

    public static func realtimeMicroseconds() -> Int { Int(Date().timeIntervalSince1970 * 1_000_000) }

    /// Writes `text` into a sysfs attribute (one write(2), as the kernel wants it).
    public static func writeAttribute(_ path: String, _ text: String) throws {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard n == bytes.count else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    }

    /// True while `pid` is a process that has not exited (a zombie counts as exited).
    public static func isRunning(_ pid: Int) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        let state = stat[stat.index(close, offsetBy: 2)...].prefix(1)
        return state != "Z" && state != "X"
    }
}
