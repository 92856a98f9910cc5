import Foundation
import NumaPlaceCore

/// The real-machine sysfs trees of `../shared/fixtures/sysfs` (beside the repository, never copied into
/// it), each extracted once per test process into a temporary directory removed when the process exits.
/// Every test target finds and extracts them here; a test that needs them is enabled by `isPresent` and
/// skips with `absentMessage` on a bare checkout.
public enum FixtureLibrary {
    /// `<repo>/../shared/fixtures/sysfs`, found from this file's own path.
    public static let directory: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }   // NumaPlaceTestSupport, Tests, <repo>
        return url.deletingLastPathComponent().appendingPathComponent("shared/fixtures/sysfs").standardizedFileURL.path
    }()

    public static let isPresent: Bool = !names.isEmpty

    public static let absentMessage = "\(directory) is absent: real-machine fixture tests skipped"

    /// Fixture names: every `NAME.facts.json` in the folder (each must have its `NAME.tar.gz`).
    public static let names: [String] = {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: directory) else {
            print("SKIP: \(absentMessage)")
            return []
        }
        return entries.filter { $0.hasSuffix(".facts.json") }.map { String($0.dropLast(".facts.json".count)) }.sorted()
    }()

    /// Whether fixture `name` is there to extract.
    public static func has(_ name: String) -> Bool { FileManager.default.fileExists(atPath: tarball(name)) }

    public static func tarball(_ name: String) -> String { "\(directory)/\(name).tar.gz" }

    /// The extraction directory: created, filled and registered for removal on first use.
    private static let extractionBase: String = {
        var template = Array((scratchDirectory + "numaplace-fixtures-XXXXXX").utf8CString)
        let base = mkdtemp(&template).map { String(cString: $0) } ?? scratchDirectory + "numaplace-fixtures-\(getpid())"
        extractionBaseForCleanup = base
        atexit {
            if let base = FixtureLibrary.extractionBaseForCleanup { try? FileManager.default.removeItem(atPath: base) }
        }
        return base
    }()
    nonisolated(unsafe) private static var extractionBaseForCleanup: String?

    private static let lock = NSLock()
    nonisolated(unsafe) private static var extracted: [String: Result<String, ExtractionError>] = [:]

    public struct ExtractionError: Error, CustomStringConvertible {
        public let description: String
    }

    /// The root of fixture `name`, extracting its tarball with `/bin/tar` the first time it is asked for.
    public static func root(_ name: String) throws -> SysfsRoot { SysfsRoot(try path(name)) }

    /// The directory `root(name)` reads, for a daemon or a command given `--sysfs-root`.
    public static func path(_ name: String) throws -> String {
        lock.lock()
        defer { lock.unlock() }
        if let done = extracted[name] { return try done.get() }
        let result = extract(name)
        extracted[name] = result
        return try result.get()
    }

    private static func extract(_ name: String) -> Result<String, ExtractionError> {
        let tarball = tarball(name)
        guard FileManager.default.fileExists(atPath: tarball) else {
            return .failure(ExtractionError(description: "\(tarball) is missing beside its facts.json"))
        }
        let destination = "\(extractionBase)/\(name)"
        do {
            try FileManager.default.createDirectory(atPath: destination, withIntermediateDirectories: true)
        } catch {
            return .failure(ExtractionError(description: "creating \(destination): \(error)"))
        }
        // posix_spawn rather than Foundation's Process: the platform tests count this process's
        // children and descriptors, and nothing here may outlive the extraction.
        if let failure = spawnAndWait(["/bin/tar", "-xzf", tarball, "-C", destination, "--no-same-owner"]) {
            return .failure(ExtractionError(description: "/bin/tar -xzf \(tarball): \(failure)"))
        }
        // Each tarball unpacks to NAME/; accept a tarball whose files sit at the top level too.
        let nested = "\(destination)/\(name)"
        return .success(FileManager.default.fileExists(atPath: "\(nested)/sys") ? nested : destination)
    }

    /// Runs `argv` to completion; nil when it exited 0, else what went wrong.
    private static func spawnAndWait(_ argv: [String]) -> String? {
        var pid: pid_t = 0
        var cArgs = argv.map { strdup($0) }
        cArgs.append(nil)
        defer { cArgs.forEach { free($0) } }
        let rc = posix_spawn(&pid, argv[0], nil, nil, &cArgs, environ)
        guard rc == 0 else { return String(cString: strerror(rc)) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { return "waitpid: \(String(cString: strerror(errno)))" }
        }
        // WIFEXITED && WEXITSTATUS == 0, spelled out: the macros do not reach Swift.
        return status & 0x7f == 0 && (status >> 8) & 0xff == 0 ? nil : "wait status \(status)"
    }
}
