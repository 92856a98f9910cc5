import Foundation
import Testing
@testable import NumaPlaceProtocol

/// The hand-written encoder of the spawn path must say exactly what `JSONEncoder` says: every
/// value it writes decodes back to itself, and to the same JSON object as Foundation's encoding.
@Suite struct JSONWriterTests {
    static func worker(_ text: String, exit: Manager.ExitStatus? = nil, applied: Bool = true) -> Manager.Worker {
        Manager.Worker(
            id: "w\(text.utf8.count)", pid: 4_194_303, uid: 0, gid: Int(Int32.max), argv: ["/bin/sh", "-c", text, ""],
            device: text.isEmpty ? nil : "0000:3b:00.0", node: text.isEmpty ? nil : 1, state: .running,
            startedAt: 1_764_000_000_123_456,
            requested: Manager.Placement(cpus: "2-3", memoryPolicy: "bind", memoryNodes: [1]),
            applied: applied ? Manager.Placement(cpus: "2-3", memoryPolicy: "bind", memoryNodes: [1, 3]) : nil,
            degraded: [text, "bind → preferred"], exclusiveCores: ["2", "3"], adopted: !text.isEmpty, exit: exit)
    }

    /// Strings a worker's argv or a degradation note may hold: quotes, backslashes, every control
    /// character, slashes, multibyte UTF-8 and a NUL (which must be escaped, not end the message).
    static let hostileStrings: [String] = [
        "", "plain", #"say "hi""#, #"C:\path\to"#, "/usr/bin/env", "tab\there", "line\nbreak\r\n",
        "nul\u{0}inside", "bell\u{7}back\u{8}ff\u{c}vt\u{b}esc\u{1b}unit\u{1f}", "größe ✓ 漢字 🚀",
        "\u{7f}del", "\u{2028}\u{2029}", String(repeating: "\\\"", count: 100),
        String((0..<32).map { Character(Unicode.Scalar(UInt8($0))) }),
    ]

    static func object(_ bytes: [UInt8]) throws -> NSDictionary {
        try #require(JSONSerialization.jsonObject(with: Data(bytes)) as? NSDictionary)
    }

    @Test(arguments: hostileStrings)
    func workerRoundTripsAndMatchesFoundation(_ text: String) throws {
        for exit in [nil, Manager.ExitStatus(how: .exited, code: 7), Manager.ExitStatus(how: .killed, signal: 9)] {
            for applied in [true, false] {
                let w = Self.worker(text, exit: exit, applied: applied)
                let fast = w.jsonBytes
                #expect(try JSONDecoder().decode(Manager.Worker.self, from: Data(fast)) == w)
                #expect(try Self.object(fast) == Self.object(Array(JSONEncoder().encode(w))))
            }
        }
    }

    @Test func nilOptionalsAreLeftOutAsSynthesizedCodableDoes() throws {
        let w = Self.worker("", exit: nil, applied: false)
        let keys = Set(try Self.object(w.jsonBytes).allKeys.compactMap { $0 as? String })
        #expect(!keys.contains("device") && !keys.contains("node") && !keys.contains("applied") && !keys.contains("exit"))
        #expect(keys.isSuperset(of: ["id", "pid", "argv", "requested", "degraded", "exclusiveCores", "adopted"]))
        let exit = Manager.ExitStatus(how: .exited, code: 0).jsonBytes
        #expect(String(decoding: exit, as: UTF8.self) == #"{"how":"exited","code":0}"#)
    }

    @Test func controlCharactersUseTheShortEscapesOrUnicodeEscapes() {
        var out: [UInt8] = []
        JSONWriter.appendQuoted("a\"b\\c\n\r\t\u{8}\u{c}\u{0}\u{1f}/é", to: &out)
        #expect(String(decoding: out, as: UTF8.self) == #""a\"b\\c\n\r\t\b\f\u0000\u001f/é""#)
    }

    @Test func nestedContainersGetTheirCommasRight() throws {
        var w = JSONWriter()
        w.beginObject()
        w.member("a", [Int]())
        w.member("b", ["x", "y"])
        w.key("c")
        w.beginArray()
        w.value(1)
        w.beginObject()
        w.endObject()
        w.beginArray()
        w.endArray()
        w.value(true)
        w.endArray()
        w.member("d", Optional<String>.none)
        w.member("e", UInt64.max as UInt64?)
        w.endObject()
        #expect(String(decoding: w.bytes, as: UTF8.self) == #"{"a":[],"b":["x","y"],"c":[1,{},[],true],"e":18446744073709551615}"#)
    }

    @Test func replyEnvelopeIsOneObjectThenNUL() throws {
        let w = Self.worker("echo")
        for continues in [false, true] {
            let bytes = try VarlinkReply.encode(Manager.WorkerReply(worker: w), continues: continues)
            #expect(bytes.last == 0)
            #expect(bytes.dropLast().contains(0) == false)
            let object = try Self.object(Array(bytes.dropLast()))
            #expect((object["continues"] as? Bool) == (continues ? true : nil))
            let inner = try JSONSerialization.data(withJSONObject: try #require(object["parameters"]))
            #expect(try JSONDecoder().decode(Manager.WorkerReply.self, from: inner).worker == w)
        }
    }

    @Test func monitorEventsRoundTripWithAWorkerOrADevice() throws {
        let device = try JSONDecoder().decode(Manager.Device.self, from: Data(#"""
            {"address":"0000:3b:00.0","class":"0x030200","vendor":"0x10de","device":"0x20b0","kind":"gpu",
             "numaNode":1,"cpus":"8-15","locality":"node","placementNodes":[1],"pciePath":["0000:3a:00.0"],
             "warnings":["a \"quoted\" warning"]}
            """#.utf8))
        let events = [
            Manager.Event(sequence: 1, kind: .workerStarted, timestamp: 5, address: "0000:3b:00.0", worker: Self.worker("x")),
            Manager.Event(sequence: 2, kind: .deviceAdded, timestamp: 6, address: "0000:3b:00.0", device: device),
            Manager.Event(sequence: 3, kind: .topologyChanged, timestamp: 7),
        ]
        for e in events {
            let bytes = try VarlinkReply.encode(Manager.MonitorReply(event: e), continues: true)
            let object = try Self.object(Array(bytes.dropLast()))
            #expect(object["continues"] as? Bool == true)
            let inner = try JSONSerialization.data(withJSONObject: try #require(object["parameters"]))
            #expect(try JSONDecoder().decode(Manager.MonitorReply.self, from: inner).event == e)
            #expect(try Self.object(e.jsonBytes) == Self.object(Array(JSONEncoder().encode(e))))
        }
    }

    /// Random workers built from a pool of awkward characters: 500 round trips.
    @Test func randomWorkersRoundTrip() throws {
        var rng = SystemRandomNumberGenerator()
        let pool: [Character] = ["a", "\"", "\\", "\n", "\u{0}", "\u{1}", "\u{1f}", " ", "é", "漢", "🚀", "/", "\u{7f}"]
        for _ in 0..<500 {
            let text = String((0..<Int.random(in: 0...24, using: &rng)).map { _ in pool.randomElement(using: &rng)! })
            let w = Self.worker(text, exit: Bool.random(using: &rng) ? nil : Manager.ExitStatus(how: .unknown))
            #expect(try JSONDecoder().decode(Manager.Worker.self, from: Data(w.jsonBytes)) == w)
        }
    }
}

/// The calls clients send are written by the generated writers; they must say what JSONEncoder says.
@Suite("JSONWriter for call parameters")
struct CallWriterTests {
    static func object(_ data: Data) throws -> NSDictionary {
        try #require(JSONSerialization.jsonObject(with: data) as? NSDictionary)
    }

    @Test(arguments: JSONWriterTests.hostileStrings)
    func spawnParametersMatchFoundation(_ text: String) throws {
        var full = Manager.SpawnParameters(argv: [text, "b"], device: text, node: 1, cpus: "0-3", environment: ["A=" + text],
                                           workingDirectory: text, memory: "bind", exclusiveCores: 2, admission: "strict",
                                           name: text, devices: [text, "0000:3b:00.0"], runtimeEnvironment: true,
                                           stdinDescriptor: 0, stdoutDescriptor: 1, stderrDescriptor: 2, tied: true)
        full.descriptors = [3, 4]
        full.memoryMax = 1 << 30
        full.pidsMax = 64
        full.cpuWeight = 100
        full.deviceMemory = false
        full.parentDeathSignal = 15
        full.user = text
        full.stdout = "null"
        for p in [full, Manager.SpawnParameters(argv: [text])] {
            let call = try VarlinkCall(method: "io.numaplaced.Manager.Spawn", parameters: p, more: true)
            let decoded = try call.parameters(as: Manager.SpawnParameters.self)
            #expect(decoded == p)
            #expect(call.method == "io.numaplaced.Manager.Spawn" && call.more && !call.oneway)
            let foundation = try JSONEncoder().encode(p)
            #expect(try Self.object(Data(p.jsonBytes)) == Self.object(foundation))
        }
    }

    @Test func smallCallsAndFlags() throws {
        let wait = try VarlinkCall(method: "io.numaplaced.Manager.Wait", parameters: Manager.WorkerIDParameters(id: "w\"1"), oneway: true)
        #expect(String(decoding: wait.raw, as: UTF8.self)
                == #"{"method":"io.numaplaced.Manager.Wait","parameters":{"id":"w\"1"},"oneway":true}"#)
        let signal = try VarlinkCall(method: "io.numaplaced.Manager.Signal", parameters: Manager.SignalParameters(id: "w2", signal: 2))
        #expect(try signal.parameters(as: Manager.SignalParameters.self) == Manager.SignalParameters(id: "w2", signal: 2))
    }
}
