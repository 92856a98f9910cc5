import Foundation
import NumaPlaceTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `numaplacectl run` as a user meets it: a shell pipeline, a terminal, a signal, a kill -9.
@Suite("numaplacectl run against a live daemon", .serialized)
struct RunTests {
    /// Starts `numaplacectl --socket … run ARGS` under /bin/sh with `shell` around it (`$CTL` is the
    /// whole command up to `run`), stdout and stderr to files.
    final class Started {
        let process = Process()
        let out: URL
        let err: URL

        init(_ h: CLIHarness, _ shell: String) throws {
            let id = UUID().uuidString.prefix(8)
            out = h.dir.appendingPathComponent("run-\(id).out")
            err = h.dir.appendingPathComponent("run-\(id).err")
            FileManager.default.createFile(atPath: out.path, contents: nil)
            FileManager.default.createFile(atPath: err.path, contents: nil)
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", shell]
            var env = ProcessInfo.processInfo.environment
            env["CTL"] = "\(CLIHarness.ctlPath) --socket \(h.socket)"
            process.environment = env
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = try FileHandle(forWritingTo: out)
            process.standardError = try FileHandle(forWritingTo: err)
            try process.run()
        }

        var stdout: String { (try? String(contentsOf: out, encoding: .utf8)) ?? "" }
        var stderr: String { (try? String(contentsOf: err, encoding: .utf8)) ?? "" }

        /// Polls stdout (up to 10 s) until it contains `text`.
        func waitFor(_ text: String) -> Bool {
            for _ in 0..<200 {
                if stdout.contains(text) { return true }
                usleep(50_000)
            }
            return false
        }

        func finish() -> Int32 {
            process.waitUntilExit()
            return process.terminationStatus
        }
    }

    /// The fast path takes plain command lines only; the rest is ArgumentParser's, with its messages.
    @Test(.enabled(if: CLIHarness.available, CLIHarness.missing), .timeLimit(.minutes(2)))
    func usageErrorsAndEqualsSpellings() throws {
        let h = try CLIHarness()
        for args in [["run"], ["run", "--node", "x", "--", "/bin/true"], ["run", "--node", "0", "--cpus", "0", "--", "/bin/true"],
                     ["run", "--bogus", "--", "/bin/true"], ["run", "--memory", "sideways", "--", "/bin/true"]] {
            let r = try h.ctl(args)
            #expect(r.status == 2, "\(args): \(r)")
        }
        let ok = try h.ctl(["run", "--node=0", "--memory=bind", "--env=X=1", "--", "/bin/sh", "-c", "test $X = 1 && exit 5"])
        #expect(ok.status == 5, "\(ok)")
        #expect(try h.ctl(["run", "--help"]).stdout.contains("foreground"))
    }

    @Test(.enabled(if: CLIHarness.available, CLIHarness.missing), .timeLimit(.minutes(2)))
    func aPipelineGetsTheCallersStdioAndExitCode() throws {
        let h = try CLIHarness()
        let run = try Started(h, #"printf 'hello\n' | $CTL run --node 0 -- sh -c 'echo out; echo err >&2; read x; echo got:$x; exit 3'"#)
        let status = run.finish()
        #expect(status == 3, "stdout \(run.stdout) stderr \(run.stderr)\n\(h.daemonLog.suffix(1500))")
        #expect(run.stdout == "out\ngot:hello\n")
        #expect(run.stderr == "err\n")
    }

    @Test(.enabled(if: CLIHarness.available && FileManager.default.isExecutableFile(atPath: "/usr/bin/script"),
                   "needs CLIHarness and script(1) for a pseudo-terminal"), .timeLimit(.minutes(2)))
    func underATerminalTheWorkerHasThatTerminal() throws {
        let h = try CLIHarness()
        // script runs the command on a new pseudo-terminal; the worker and the shell there name the same one.
        let run = try Started(h, #"script -qec 'tty; $CTL run -- tty' /dev/null"#)
        #expect(run.finish() == 0, "\(run.stdout) \(run.stderr)")
        // A terminal ends lines with "\r\n", one Character in Swift.
        let lines = run.stdout.components(separatedBy: .newlines).filter { !$0.isEmpty }
        #expect(lines.count == 2 && lines[0].hasPrefix("/dev/pts/") && lines[0] == lines[1], "\(lines)")
    }

    @Test(.enabled(if: CLIHarness.available, CLIHarness.missing), .timeLimit(.minutes(2)))
    func sigtermReachesTheWorkerAndItsStatusIsRuns() throws {
        let h = try CLIHarness()
        let run = try Started(h, #"exec $CTL run -- sh -c 'trap "echo term; exit 7" TERM; echo ready; while :; do sleep 0.1; done'"#)
        #expect(run.waitFor("ready"))
        kill(run.process.processIdentifier, SIGTERM)
        #expect(run.finish() == 7, "\(run.stdout) \(run.stderr)")
        #expect(run.stdout.contains("term"))
    }

    @Test(.enabled(if: CLIHarness.available, CLIHarness.missing), .timeLimit(.minutes(2)))
    func theWorkerOfAKilledRunIsGoneWithinThreeSeconds() throws {
        let h = try CLIHarness()
        // The worker ignores SIGTERM: only the SIGKILL after the grace period ends it.
        let run = try Started(h, #"exec $CTL run -- sh -c 'trap "" TERM; echo pid:$$; while :; do sleep 0.1; done'"#)
        #expect(run.waitFor("pid:"))
        let pid = Int32(run.stdout.split(separator: ":").last?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? -1
        #expect(pid > 0 && kill(pid, 0) == 0)
        let killed = LiveHost.monotonicMicroseconds()
        kill(run.process.processIdentifier, SIGKILL)
        _ = run.finish()
        var gone = false
        while LiveHost.monotonicMicroseconds() - killed < 3_000_000 {
            // Reaped by the daemon: no /proc entry left (a zombie would still have one).
            if !FileManager.default.fileExists(atPath: "/proc/\(pid)") { gone = true; break }
            usleep(20_000)
        }
        #expect(gone, "worker \(pid) still there 3 s after its run was killed")
    }
}
