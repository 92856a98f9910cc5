import CNumaPlaceShim
import Foundation
import Glibc
import NumaPlaceCore
import NumaPlacePlatform
import NumaPlaceSyscall
import NumaPlaceTestSupport
import Testing

/// Every test of this target runs under this one serialized suite: the leak tests count the
/// process's descriptors and children, which a concurrently running spawn test would disturb.
@Suite(.serialized) struct PlatformTests {}

/// Files the tests make: the probe, compiled once, and scratch files, in one temporary directory.
enum Scratch {
    /// The repository's Tests/ directory, from this file's path.
    static let testsDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()

    static let dir: String = {
        var template = Array("/tmp/numaplace-platform-tests.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { return "/tmp" }
        let path = String(cString: made)
        // World-traversable, so a worker run as another uid can reach the files meant for it.
        chmod(path, 0o755)
        // Removed when the test process exits, whatever the outcome of the tests.
        atexit { try? FileManager.default.removeItem(atPath: Scratch.dir) }
        return path
    }()

    /// The probe binary, or nil with the compiler's complaint recorded.
    static let probe: Result<String, ToolFailure> = {
        let source = testsDir.appendingPathComponent("probe/numaplace-probe.c").path
        let output = dir + "/numaplace-probe"
        return runTool(["cc", "-O2", "-Wall", "-o", output, source]).map { _ in
            chmod(output, 0o755)
            return output
        }
    }()

    static func probePath() throws -> String { try probe.get() }

    /// A file with the given contents and mode.
    static func file(_ name: String, contents: String, mode: mode_t) -> String {
        let path = dir + "/" + name
        _ = FileManager.default.createFile(atPath: path, contents: Data(contents.utf8))
        chmod(path, mode)
        return path
    }

    static func directory(_ name: String, mode: mode_t) -> String {
        let path = dir + "/" + name
        mkdir(path, 0o700)
        chmod(path, mode)
        return path
    }
}

struct ToolFailure: Error, CustomStringConvertible {
    var description: String
}

/// Runs a helper tool (cc, tar) with posix_spawnp, independently of the spawner under test.
@discardableResult
func runTool(_ argv: [String]) -> Result<Void, ToolFailure> {
    var pid: pid_t = 0
    var cArgs = argv.map { strdup($0) }
    cArgs.append(nil)
    defer { cArgs.forEach { free($0) } }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    let rc = posix_spawnp(&pid, argv[0], &actions, nil, &cArgs, environ)
    guard rc == 0 else { return .failure(ToolFailure(description: "\(argv[0]): \(Errno(rc))")) }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    // WIFEXITED && WEXITSTATUS == 0, spelled out: the macros do not reach Swift.
    guard status & 0x7f == 0, (status >> 8) & 0xff == 0 else {
        return .failure(ToolFailure(description: "\(argv.joined(separator: " ")) failed with wait status \(status)"))
    }
    return .success(())
}

/// What the probe prints.
struct ProbeReport: Decodable, Equatable {
    var pid: Int32
    var cpus: String
    var policy: String
    var policyNodes: String
    var pageNode: Int
    var cpu: Int
    var env: [String: String]
    var fds: [Int32]
}

/// A pipe whose read end the test keeps and whose write end becomes a worker's stdout.
final class CapturePipe {
    let readEnd: Int32
    private(set) var writeEnd: Int32

    init() throws {
        var fds: [Int32] = [-1, -1]
        guard np_pipe2(&fds, O_CLOEXEC) == 0 else { throw Errno.current }
        readEnd = fds[0]
        writeEnd = fds[1]
    }

    /// Call after spawning, so that EOF arrives when the worker exits.
    func closeWriteEnd() {
        if writeEnd >= 0 { close(writeEnd) }
        writeEnd = -1
    }

    /// Reads until EOF, or until a newline when `line` is set (a worker that keeps running).
    func read(untilNewline line: Bool = false) -> String {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(readEnd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            out += buffer[0..<n]
            if line && out.contains(UInt8(ascii: "\n")) { break }
        }
        return String(decoding: out, as: UTF8.self)
    }

    deinit {
        close(readEnd)
        if writeEnd >= 0 { close(writeEnd) }
    }
}

/// Spawns the probe with its stdout captured, waits for it and decodes its report.
func runProbe(_ spawner: Spawner, placement: PlacementDecision, admission: Admission = .strict,
              configure: (inout SpawnRequest) -> Void = { _ in }) throws -> (ProbeReport, SpawnedProcess, ProcessExitStatus) {
    let pipe = try CapturePipe()
    var request = SpawnRequest(argv: [try Scratch.probePath()], stdout: .fd(pipe.writeEnd),
                               placement: placement, admission: admission)
    configure(&request)
    let process = try spawner.spawn(request)
    pipe.closeWriteEnd()
    let text = pipe.read()
    let status = try process.pidfd.waitForExit()
    let report = try JSONDecoder().decode(ProbeReport.self, from: Data(text.utf8))
    return (report, process, status)
}

/// The name (comm) of the threads `onDedicatedThread` makes. A child that fails before execve keeps
/// its spawning thread's name, which is how `zombieChildren` tells this target's children apart.
let dedicatedThreadName = "np-test-spawner"

/// Runs `body` on a new pthread and returns its result: thread affinity, memory policy and seccomp
/// filters are per thread, so what a test does to this thread dies with it.
func onDedicatedThread<T>(_ body: @escaping () -> T) -> T {
    var result: T?
    let work = ThreadWork {
        // PR_SET_NAME (15): the thread's comm, inherited by the children it clones.
        dedicatedThreadName.withCString { _ = np_prctl(15, UInt(bitPattern: $0), 0, 0, 0) }
        result = body()
    }
    var thread = pthread_t()
    let arg = Unmanaged.passRetained(work).toOpaque()
    let rc = pthread_create(&thread, nil, { raw in
        guard let raw else { return nil }
        Unmanaged<ThreadWork>.fromOpaque(raw).takeRetainedValue().run()
        return nil
    }, arg)
    precondition(rc == 0, "pthread_create: \(Errno(rc))")
    pthread_join(thread, nil)
    guard let result else { preconditionFailure("the thread returned no result") }
    return result
}

final class ThreadWork {
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
}

/// The descriptors this process has open, with what they point at.
func openDescriptors() -> [Int32: String] {
    var out: [Int32: String] = [:]
    guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return out }
    for name in names {
        guard let fd = Int32(name) else { continue }
        let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(name)")) ?? "?"
        out[fd] = target
    }
    // The directory listing's own descriptor is gone by now; drop whatever no longer resolves.
    return out.filter { $0.value != "?" }
}

/// The descriptors of the kinds the spawner makes: its report pipe, pidfds, /dev/null. Tests compare
/// these exactly; other kinds may come and go with tests of other targets running concurrently.
func spawnerKinds(_ fds: [Int32: String]) -> [Int32: String] {
    fds.filter { $0.value.hasPrefix("pipe:") || $0.value == "anon_inode:[pidfd]" || $0.value == "/dev/null" }
}

/// Children of this process that are zombies (state Z in /proc/<pid>/stat) and are ours to judge:
/// the probe, or a child that failed before execve on a dedicated thread and so still bears its name.
/// Children of other test targets running concurrently (other names) are left out.
func zombieChildren() -> [pid_t] {
    let me = getpid()
    let names: Set<String> = [dedicatedThreadName, "numaplace-probe"]
    var zombies: [pid_t] = []
    guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return zombies }
    for entry in entries {
        guard let pid = pid_t(entry),
              let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
              let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")") else { continue }
        // "pid (comm) S ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
        let comm = String(stat[stat.index(after: open)..<close])
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 2, let ppid = pid_t(fields[1]) else { continue }
        if ppid == me && fields[0] == "Z" && names.contains(comm) { zombies.append(pid) }
    }
    return zombies
}

/// The Uid/Gid/Groups lines of a process.
func credentials(of pid: pid_t) -> (uid: String, gid: String, groups: String)? {
    guard let text = try? LiveHost.root.read("proc/\(pid)/status") else { return nil }
    func field(_ name: String) -> String {
        SysfsParsers.statusField(name, in: text).map(String.init) ?? ""
    }
    return (field("Uid"), field("Gid"), field("Groups"))
}
