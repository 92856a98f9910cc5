import Foundation
import NumaPlaceTestSupport
import Testing

/// clients/python against a live daemon: its unittest suite (clients/python/tests/test_live.py) runs
/// as one test here, on a daemon of its own.
@Suite(.serialized) struct PythonClientTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("clients/python/tests/test_live.py").path
    static let python = ["/usr/bin/python3", "/usr/local/bin/python3"].first { FileManager.default.isExecutableFile(atPath: $0) }

    @Test(.enabled(if: LiveHost.binaryBuilt && python != nil, "needs the daemon binary (swift build) and python3 ≥ 3.9"),
          .timeLimit(.minutes(2)))
    func pythonClientSuitePasses() throws {
        let daemon = try LiveDaemon()
        try daemon.start()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try #require(Self.python))
        p.arguments = [Self.script, daemon.socket]
        let output = Pipe()
        p.standardOutput = output
        p.standardError = output
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(text)\n\(daemon.logText.suffix(2000))")
        #expect(text.contains("OK"))
    }
}
