import Foundation
import Glibc
import NumaPlaceCore
import NumaPlacePlatform
import NumaPlaceSyscall
import Testing
import NumaPlaceTestSupport

extension PlatformTests {
    /// Every way a spawn can fail comes back as a typed error naming the step and the errno, the
    /// failed child is reaped, and the parent loses no descriptor.
    @Suite struct SpawnFailureTests {
        struct Case: CustomTestStringConvertible, Sendable {
            var name: String
            var step: SpawnStep
            var errno: Int32
            /// The whole description, when it is fixed.
            var description: String?
            var needsRoot = false
            var build: @Sendable () throws -> SpawnRequest

            var testDescription: String { name }
        }

        static func request(_ argv: [String], _ change: (inout SpawnRequest) -> Void = { _ in }) throws -> SpawnRequest {
            var r = SpawnRequest(argv: argv, stdout: .null, stderr: .null, placement: try LiveHost.anywhere())
            change(&r)
            return r
        }

        static let cases: [Case] = [
            Case(name: "missing file", step: .exec, errno: ENOENT,
                 description: "exec /nonexistent/numaplace-worker: No such file or directory") {
                try request(["/nonexistent/numaplace-worker"])
            },
            Case(name: "not executable (0644, even for root)", step: .exec, errno: EACCES) {
                try request([Scratch.file("not-executable", contents: "#!/bin/sh\n", mode: 0o644)])
            },
            Case(name: "a directory", step: .exec, errno: EACCES) {
                try request([Scratch.directory("a-directory", mode: 0o755)])
            },
            Case(name: "no format the kernel knows (no #!)", step: .exec, errno: ENOEXEC) {
                try request([Scratch.file("garbage", contents: "this is not an ELF file\n", mode: 0o755)])
            },
            Case(name: "a name not found in PATH", step: .exec, errno: ENOENT) {
                try request(["numaplace-no-such-tool"]) { $0.environment["PATH"] = Scratch.dir }
            },
            Case(name: "a name longer than NAME_MAX is not searched for", step: .exec, errno: ENAMETOOLONG) {
                try request([String(repeating: "x", count: 300)]) { $0.environment["PATH"] = "/usr/bin:/bin" }
            },
            // A relative PATH entry would be read from the daemon's working directory, not the
            // worker's: not searched, even where the file is there (a scratch executable, named by its
            // path relative to this process's working directory).
            Case(name: "relative PATH entries are not searched", step: .exec, errno: ENOENT) {
                let exe = Scratch.file("relative-path-tool", contents: "#!/bin/sh\n", mode: 0o755)
                let cwd = FileManager.default.currentDirectoryPath
                let up = String(repeating: "../", count: cwd.split(separator: "/").count)
                let relativeDir = up + Scratch.dir.dropFirst()
                try #require(access(relativeDir + "/relative-path-tool", X_OK) == 0, "\(relativeDir) from \(cwd)")
                _ = exe
                return try request(["relative-path-tool"]) { $0.environment["PATH"] = relativeDir }
            },
            Case(name: "missing working directory", step: .chdir, errno: ENOENT,
                 description: "chdir /nonexistent/dir: No such file or directory") {
                try request(["/bin/true"]) { $0.workingDirectory = "/nonexistent/dir" }
            },
            Case(name: "working directory is a file", step: .chdir, errno: ENOTDIR) {
                try request(["/bin/true"]) { $0.workingDirectory = Scratch.file("plain-file", contents: "", mode: 0o644) }
            },
            Case(name: "stdout file in a missing directory", step: .stdio, errno: ENOENT,
                 description: "open stdout /nonexistent/dir/out.log: No such file or directory") {
                try request(["/bin/true"]) { $0.stdout = .file("/nonexistent/dir/out.log") }
            },
            Case(name: "stdin from a descriptor that is not open", step: .stdio, errno: EBADF) {
                try request(["/bin/true"]) { $0.stdin = .fd(987_654) }
            },
            Case(name: "an invalid parent-death signal", step: .pdeathsig, errno: EINVAL) {
                try request(["/bin/true"]) { $0.parentDeathSignal = 1000 }
            },
            Case(name: "a NUL byte in argv", step: .prepare, errno: EINVAL) {
                try request(["/bin/true", "a\u{0}b"])
            },
            Case(name: "an environment name with '='", step: .prepare, errno: EINVAL) {
                try request(["/bin/true"]) { $0.environment["A=B"] = "c" }
            },
            Case(name: "empty argv", step: .prepare, errno: EINVAL) {
                try request([])
            },
            // As root, setuid(2) accepts any uid the kernel can map, so a "bad uid" fails only where
            // the kernel says so: (uid_t)-1 has no mapping (EINVAL), and a real but unprivileged uid
            // cannot execute or enter what only root may.
            Case(name: "uid (uid_t)-1", step: .setuid, errno: EINVAL, description: "setuid(4294967295): Invalid argument",
                 needsRoot: true) {
                try request(["/bin/true"]) { $0.credentials = Credentials(uid: 4_294_967_295, gid: 65534, groups: []) }
            },
            Case(name: "gid (gid_t)-1", step: .setgid, errno: EINVAL, needsRoot: true) {
                try request(["/bin/true"]) { $0.credentials = Credentials(uid: 65534, gid: 4_294_967_295, groups: []) }
            },
            Case(name: "supplementary group (gid_t)-1", step: .setgroups, errno: EINVAL, needsRoot: true) {
                try request(["/bin/true"]) { $0.credentials = Credentials(uid: 65534, gid: 65534, groups: [4_294_967_295]) }
            },
            Case(name: "uid 65534 execs a root-only (0700) file", step: .exec, errno: EACCES, needsRoot: true) {
                try request([Scratch.file("root-only", contents: "#!/bin/true\n", mode: 0o700)]) {
                    $0.credentials = Credentials(uid: 65534, gid: 65534, groups: [])
                }
            },
            Case(name: "uid 65534 enters a root-only (0700) directory", step: .chdir, errno: EACCES, needsRoot: true) {
                try request(["/bin/true"]) {
                    $0.workingDirectory = Scratch.directory("root-only-dir", mode: 0o700)
                    $0.credentials = Credentials(uid: 65534, gid: 65534, groups: [])
                }
            },
            Case(name: "uid 65534 opens a stdout file it may not write", step: .stdio, errno: EACCES, needsRoot: true) {
                try request(["/bin/true"]) {
                    $0.stdout = .file(Scratch.file("root-owned.log", contents: "", mode: 0o600))
                    $0.credentials = Credentials(uid: 65534, gid: 65534, groups: [])
                }
            },
        ]

        @Test("a failed spawn is a typed error; the parent keeps no child and no descriptor", arguments: cases)
        func failure(_ c: Case) throws {
            if c.needsRoot && !LiveHost.isRoot { try Test.cancel("\(c.name): needs root") }
            let request = try c.build()
            let before = openDescriptors()
            let spawner = Spawner(savedOriginal: LiveHost.allowed)
            // On a named thread, so that a failed child left unreaped would be recognised as ours.
            let result: Result<SpawnedProcess, SpawnError> = onDedicatedThread { Result { () throws(SpawnError) in try spawner.spawn(request) } }
            switch result {
            case .success(let process):
                Issue.record("spawned pid \(process.pid) although \(c.name) should fail")
                _ = try? process.pidfd.waitForExit()
            case .failure(let error):
                #expect(error.step == c.step)
                #expect(error.errno == Errno(c.errno), "\(error)")
                if let d = c.description { #expect(error.description == d) }
                #expect(error.description.hasSuffix(": \(Errno(c.errno))"))
            }
            #expect(zombieChildren().isEmpty)
            let after = openDescriptors()
            #expect(spawnerKinds(after) == spawnerKinds(before), "gained: \(after.filter { before[$0.key] != $0.value })")
        }

        @Test("the strict affinity error reads like the kernel's answer")
        func affinityOutsideTheSavedOriginal() throws {
            // CPUs the saved original does not hold: known in the parent, before any clone.
            var placement = try LiveHost.anywhere()
            let outside = (LiveHost.allowed.cpus.last ?? 0) + 1
            placement.cpus = [outside]
            let spawner = Spawner(savedOriginal: LiveHost.allowed)
            #expect(throws: SpawnError(step: .setAffinity, errno: .invalidArgument,
                                       operation: "sched_setaffinity(CPUs \(outside))")) {
                try spawner.spawn(SpawnRequest(argv: ["/bin/true"], placement: placement, admission: .strict))
            }
        }
    }
}
