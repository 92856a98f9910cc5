import Foundation
import Testing
@testable import NumaPlaceProtocol

/// The wire types are generated from the .varlink file: the checked-in output must be what the
/// generator writes today, and the generated code must write today's wire form: JSONWriter byte for
/// byte, JSONEncoder member for member (which optionals are null and which are left out).
@Suite struct GeneratedTypesTests {
    static let protocolSources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Sources/NumaPlaceProtocol")

    @Test func checkedInTypesAreWhatTheGeneratorWrites() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", Self.protocolSources.appendingPathComponent("generate-types.py").path, "--check"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0,
                "\(text)run python3 Sources/NumaPlaceProtocol/generate-types.py after editing the .varlink file")
    }

    // Today's wire form, keys in declaration order as JSONWriter writes them; JSONEncoder writes the
    // same members (`/` escaped as `\/`) in an order that changes from run to run, so its output is
    // compared as a JSON object, explicit nulls included.
    static let runningWorker = #"""
        {"id":"w17","pid":4242,"uid":1000,"gid":1000,"argv":["\/usr\/bin\/python3","-m","vllm.entrypoints.api_server","--name","say \"hi\"\n"],\#
        "device":"0000:3b:00.0","node":1,"state":"running","startedAt":1764000000123456,\#
        "requested":{"cpus":"8-15","memoryPolicy":"preferred","memoryNodes":[1]},\#
        "applied":{"cpus":"8-15","memoryPolicy":"local","memoryNodes":[]},"degraded":["bind → preferred"],\#
        "exclusiveCores":["8","9"],"adopted":false}
        """#
    static let exitedWorker = #"""
        {"id":"w3","pid":77,"uid":0,"gid":0,"argv":["true"],"state":"exited","startedAt":5,\#
        "requested":{"cpus":"","memoryPolicy":"default","memoryNodes":[]},"degraded":[],"exclusiveCores":[],\#
        "adopted":true,"exit":{"how":"killed","signal":9}}
        """#
    static let device = #"""
        {"address":"0000:3b:00.0","class":"0x030200","vendor":"0x10de","device":"0x2330","vendorName":"NVIDIA",\#
        "kind":"gpu","driver":"nvidia","numaNode":1,"cpus":"8-15","locality":"node","placementNodes":[1],\#
        "pciePath":["0000:3a:00.0"],"nearestNICs":["0000:3c:00.0"],"memoryNode":null,\#
        "deviceNodes":["\/dev\/nvidia0"],"names":["GPU-5f2a"],"warnings":[]}
        """#
    static let unknownDevice = #"""
        {"address":"0000:00:02.0","class":"0x030000","vendor":"0x1a03","device":"0x2000","kind":"display",\#
        "numaNode":null,"cpus":"","locality":"unknown","placementNodes":[],"pciePath":[],"nearestNICs":[],\#
        "memoryNode":null,"deviceNodes":[],"names":[],\#
        "warnings":["unreadable: \/sys\/bus\/pci\/devices\/0000:00:02.0\/numa_node: missing"]}
        """#

    static func reencoded<T: Codable>(_ text: String, as type: T.Type) throws -> (value: T, codable: String) {
        let value = try JSONDecoder().decode(T.self, from: Data(text.utf8))
        return (value, String(decoding: try JSONEncoder().encode(value), as: UTF8.self))
    }

    /// Equal as JSON objects: the same members (a null member is NSNull, an absent one is absent).
    static func same(_ a: String, _ b: String) throws -> Bool {
        let x = try JSONSerialization.jsonObject(with: Data(a.utf8)) as? NSDictionary
        let y = try JSONSerialization.jsonObject(with: Data(b.utf8)) as? NSDictionary
        return x != nil && x == y
    }

    @Test(arguments: [runningWorker, exitedWorker])
    func workerReencodesByteForByteThroughBothPaths(_ text: String) throws {
        let (worker, codable) = try Self.reencoded(text, as: Manager.Worker.self)
        #expect(try Self.same(codable, text))
        let written = text.replacingOccurrences(of: #"\/"#, with: "/")
        #expect(String(decoding: worker.jsonBytes, as: UTF8.self) == written)
        let reply = Manager.WorkerReply(worker: worker)
        #expect(try Self.same(String(decoding: try JSONEncoder().encode(reply), as: UTF8.self), #"{"worker":"# + text + "}"))
        #expect(String(decoding: reply.jsonBytes, as: UTF8.self) == #"{"worker":"# + written + "}")
    }

    @Test(arguments: [device, unknownDevice])
    func deviceReencodesWithItsExplicitNullsAndOmissions(_ text: String) throws {
        let (device, codable) = try Self.reencoded(text, as: Manager.Device.self)
        #expect(try Self.same(codable, text))
        #expect(codable.contains(#""memoryNode":null"#) && codable.contains(#""numaNode":"#))
        #expect(codable.contains(#""vendorName""#) == text.contains(#""vendorName""#))
        #expect(device.locality == (text == Self.device ? .node : .unknown))
    }

    @Test func eventsReencodeByteForByteThroughBothPaths() throws {
        let events = [
            #"{"sequence":0,"kind":"ready","timestamp":1764000000000000}"#,
            #"{"sequence":4,"kind":"deviceAdded","timestamp":7,"address":"0000:3b:00.0","device":"# + Self.device + "}",
            #"{"sequence":5,"kind":"workerExited","timestamp":8,"worker":"# + Self.exitedWorker + "}",
        ]
        for text in events {
            let (event, codable) = try Self.reencoded(text, as: Manager.Event.self)
            #expect(try Self.same(codable, text))
            let written = String(decoding: event.jsonBytes, as: UTF8.self)
            let monitor = String(decoding: Manager.MonitorReply(event: event).jsonBytes, as: UTF8.self)
            if event.device == nil {
                let plain = text.replacingOccurrences(of: #"\/"#, with: "/")
                #expect(written == plain)
                #expect(monitor == #"{"event":"# + plain + "}")
            } else {
                // The writer copies a device's JSONEncoder text in; the members around it are its own.
                #expect(written.hasPrefix(#"{"sequence":4,"kind":"deviceAdded","timestamp":7,"address":"0000:3b:00.0","device":{"#))
                #expect(try Self.same(written, text))
                #expect(try Self.same(monitor, #"{"event":"# + text + "}"))
            }
        }
    }

    /// A device from a daemon that predates nearestNICs, deviceNodes and names decodes with them empty.
    @Test func fieldsAddedLaterDefaultWhenAbsent() throws {
        let old = #"""
            {"address":"0000:3b:00.0","class":"0x030200","vendor":"0x10de","device":"0x2330","kind":"gpu",\#
            "cpus":"8-15","locality":"cpus","placementNodes":[],"pciePath":[],"warnings":[]}
            """#
        let d = try JSONDecoder().decode(Manager.Device.self, from: Data(old.utf8))
        #expect(d.nearestNICs.isEmpty && d.deviceNodes.isEmpty && d.names.isEmpty)
        #expect(d.numaNode == nil && d.memoryNode == nil && d.locality == .cpus)
    }

    /// An enumerated value the schema does not list is a malformed reply, refused by the decoder.
    @Test func unlistedEnumeratedValuesAreRefused() {
        let zombie = Self.exitedWorker.replacingOccurrences(of: #""state":"exited""#, with: #""state":"zombie""#)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(Manager.Worker.self, from: Data(zombie.utf8)) }
        let sideways = Self.device.replacingOccurrences(of: #""locality":"node""#, with: #""locality":"sideways""#)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(Manager.Device.self, from: Data(sideways.utf8)) }
    }

    @Test func enumRawValuesAreTheWireWords() {
        #expect(Manager.Device.Locality.allCases.map(\.rawValue) == ["node", "cpus", "only-node", "unknown"])
        #expect(Manager.Worker.State.allCases.map(\.rawValue) == ["running", "exited"])
        #expect(Manager.ExitStatus.How.allCases.map(\.rawValue) == ["exited", "killed", "unknown"])
        #expect(Manager.Event.Kind.allCases.count == 8)
    }
}
