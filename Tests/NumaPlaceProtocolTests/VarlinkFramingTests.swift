import Foundation
import Testing
@testable import NumaPlaceProtocol

/// Tier 1: the Varlink byte-level rules (one JSON object, then a NUL) and the envelope checks,
/// fed hostile input the way a socket delivers it: split anywhere, glued together, truncated.
@Suite struct VarlinkFramingTests {
    /// Three messages, one of them with multibyte UTF-8 (so some cuts fall inside a character) and
    /// one empty (a bare NUL), as one byte stream.
    static let messages: [[UInt8]] = [
        Array(#"{"method":"io.numaplaced.Manager.GetTopology"}"#.utf8),
        Array(#"{"method":"io.numaplaced.Manager.Spawn","parameters":{"argv":["/bin/echo","größe ✓"]},"more":true}"#.utf8),
        [],
        Array(#"{"method":"org.varlink.service.GetInfo","parameters":{}}"#.utf8),
    ]
    static var stream: [UInt8] { messages.flatMap { $0 + [0] } }

    @Test func wholeStreamInOnePushYieldsEveryMessage() throws {
        var framer = VarlinkFramer()
        #expect(try framer.push(Self.stream) == Self.messages)
        #expect(framer.pendingBytes == 0)
    }

    @Test func splitAtEveryOffsetYieldsTheSameMessages() throws {
        let stream = Self.stream
        for cut in 0...stream.count {
            var framer = VarlinkFramer()
            var got = try framer.push(stream[..<cut])
            // Everything before the cut that ends in a NUL is complete already.
            let completeBeforeCut = stream[..<cut].filter { $0 == 0 }.count
            #expect(got.count == completeBeforeCut, "cut at \(cut)")
            got += try framer.push(stream[cut...])
            #expect(got == Self.messages, "cut at \(cut)")
            #expect(framer.pendingBytes == 0, "cut at \(cut)")
        }
    }

    @Test func byteByByteYieldsEachMessageOnItsNUL() throws {
        var framer = VarlinkFramer()
        var got: [[UInt8]] = []
        for (i, b) in Self.stream.enumerated() {
            let out = try framer.push([b])
            if b == 0 {
                #expect(out.count == 1, "NUL at \(i)")
            } else {
                #expect(out.isEmpty, "byte \(i)")
            }
            got += out
        }
        #expect(got == Self.messages)
    }

    @Test func concatenatedMessagesInOneReadAreAllReturned() throws {
        var framer = VarlinkFramer(maxMessageBytes: 4096)
        let one = Array(#"{"method":"a.b"}"#.utf8) + [0]
        // 1000 complete messages far exceed the bound together; the bound is per message.
        let many = Array([[UInt8]](repeating: one, count: 1000).joined())
        let out = try framer.push(many)
        #expect(out.count == 1000)
        #expect(out.allSatisfy { $0 == Array(one.dropLast()) })
    }

    @Test func missingNULStaysPending() throws {
        var framer = VarlinkFramer(maxMessageBytes: 64)
        let partial = Array(#"{"method":"a.b"}"#.utf8)
        #expect(try framer.push(partial).isEmpty)
        #expect(framer.pendingBytes == partial.count)
        // A message of exactly the bound is still accepted once its NUL arrives.
        var exact = VarlinkFramer(maxMessageBytes: 64)
        let full = [UInt8](repeating: UInt8(ascii: " "), count: 64)
        #expect(try exact.push(full).isEmpty)
        #expect(try exact.push([0]) == [full])
    }

    @Test func pendingBytesBeyondTheBoundAreAnError() throws {
        var framer = VarlinkFramer(maxMessageBytes: 64)
        #expect(try framer.push([UInt8](repeating: UInt8(ascii: "x"), count: 64)).isEmpty)
        #expect(throws: VarlinkFramer.FramingError.messageTooLarge(limit: 64)) {
            _ = try framer.push([UInt8(ascii: "x")])
        }
        // Split across many small reads, the bound still holds.
        var slow = VarlinkFramer(maxMessageBytes: 100)
        var thrown = false
        for i in 0..<200 {
            do { _ = try slow.push([UInt8(ascii: "y")]) } catch {
                #expect(i == 100)
                thrown = true
                break
            }
        }
        #expect(thrown)
    }

    // MARK: Envelope

    @Test func validCallIsParsed() throws {
        let call = try VarlinkCall(bytes: Self.messages[1])
        #expect(call.method == "io.numaplaced.Manager.Spawn")
        #expect(call.interface == "io.numaplaced.Manager")
        #expect(call.member == "Spawn")
        #expect(call.more)
        #expect(!call.oneway)
        let p = try call.parameters(as: Manager.SpawnParameters.self)
        #expect(p.argv == ["/bin/echo", "größe ✓"])
    }

    @Test func invalidUTF8IsInvalidJSON() {
        let bad: [UInt8] = Array(#"{"method":"a.b","parameters":{"x":""#.utf8) + [0xff, 0xfe] + Array(#""}}"#.utf8)
        #expect(throws: VarlinkProtocolError.invalidJSON) { _ = try VarlinkCall(bytes: bad) }
        // Invalid bytes in a string the method decodes are refused the same way.
        let inArgv: [UInt8] = Array(#"{"method":"a.b","parameters":{"argv":[""#.utf8) + [0xc0, 0xaf] + Array(#""]}}"#.utf8)
        #expect(throws: VarlinkProtocolError.invalidJSON) { _ = try VarlinkCall(bytes: inArgv) }
        let truncatedSequence: [UInt8] = Array(#"{"method":"a."#.utf8) + [0xc3] + Array(#""}"#.utf8)
        #expect(throws: VarlinkProtocolError.invalidJSON) { _ = try VarlinkCall(bytes: truncatedSequence) }
    }

    @Test(arguments: [
        ("", VarlinkProtocolError.invalidJSON),
        ("{", .invalidJSON),
        ("{\"method\":\"a.b\"", .invalidJSON),
        ("{\"method\":\"a.b\"} trailing", .invalidJSON),
        ("[]", .badEnvelope),
        ("[{\"method\":\"a.b\"}]", .badEnvelope),
        ("\"io.numaplaced.Manager.GetTopology\"", .badEnvelope),
        ("42", .badEnvelope),
        ("null", .badEnvelope),
        ("{}", .badEnvelope),
        ("{\"parameters\":{}}", .badEnvelope),
        ("{\"method\":7}", .badEnvelope),
        ("{\"method\":null}", .badEnvelope),
        ("{\"method\":\"a.b\",\"more\":\"yes\"}", .badEnvelope),
        ("{\"method\":\"a.b\",\"oneway\":1}", .badEnvelope),
    ] as [(String, VarlinkProtocolError)])
    func malformedEnvelopeIsRefused(text: String, expected: VarlinkProtocolError) {
        #expect(throws: expected) { _ = try VarlinkCall(bytes: Array(text.utf8)) }
    }

    @Test func nestingDepthIgnoresBracketsInStrings() {
        #expect(jsonNestingDepth(Array("{}".utf8)) == 1)
        #expect(jsonNestingDepth(Array("[[[]]]".utf8)) == 3)
        #expect(jsonNestingDepth(Array(#"{"a":"[[[[{{{{"}"#.utf8)) == 1)
        #expect(jsonNestingDepth(Array(#"{"a":"\"[[[","b":[1]}"#.utf8)) == 2)
        #expect(jsonNestingDepth(Array(#"{"a":"\\","b":[[1]]}"#.utf8)) == 3)
        #expect(jsonNestingDepth(Array("]]]]".utf8)) == 0)
    }

    /// `{"method":"a.b","parameters":{"x":[[…]]}}` nesting `depth` levels in all.
    static func nested(depth: Int) -> [UInt8] {
        let inner = depth - 2
        return Array(#"{"method":"a.b","parameters":{"x":"#.utf8) + Array(repeating: UInt8(ascii: "["), count: inner)
            + Array(repeating: UInt8(ascii: "]"), count: inner) + Array("}}".utf8)
    }

    @Test func nestingUpToTheBoundIsAcceptedBeyondItRefused() throws {
        let max = VarlinkCall.maxNestingDepth
        #expect(jsonNestingDepth(Self.nested(depth: max)) == max)
        _ = try VarlinkCall(bytes: Self.nested(depth: max))
        #expect(throws: VarlinkProtocolError.tooDeep) { _ = try VarlinkCall(bytes: Self.nested(depth: max + 1)) }
        // Far beyond any decoder's recursion limit: refused before decoding, without a crash.
        #expect(throws: VarlinkProtocolError.tooDeep) { _ = try VarlinkCall(bytes: Self.nested(depth: 200_000)) }
    }

    // MARK: Parameters

    private func invalidParameter<P: Decodable>(_ json: String, as type: P.Type) throws -> String? {
        let call = try VarlinkCall(bytes: Array(json.utf8))
        do {
            _ = try call.parameters(as: P.self)
            return nil
        } catch {
            #expect(error.name == "org.varlink.service.InvalidParameter")
            return error.parameters["parameter"]?.stringValue
        }
    }

    /// A fractional or out-of-range number for an integer member names that member, although the
    /// decoder itself reports it with no path.
    @Test func fractionalNumbersForIntegersNameTheField() throws {
        let m = "io.numaplaced.Manager"
        #expect(try invalidParameter(#"{"method":"\#(m).Spawn","parameters":{"argv":["/bin/true"],"exclusiveCores":1.5}}"#,
                                     as: Manager.SpawnParameters.self) == "exclusiveCores")
        #expect(try invalidParameter(#"{"method":"\#(m).Spawn","parameters":{"argv":["/bin/true"],"node":1e99}}"#,
                                     as: Manager.SpawnParameters.self) == "node")
        #expect(try invalidParameter(#"{"method":"\#(m).Signal","parameters":{"id":"w1","signal":-0.5}}"#,
                                     as: Manager.SignalParameters.self) == "signal")
    }

    @Test func wrongParameterTypesNameTheField() throws {
        let m = "io.numaplaced.Manager"
        #expect(try invalidParameter(#"{"method":"\#(m).GetDevice","parameters":{"address":5}}"#,
                                     as: Manager.GetDeviceParameters.self) == "address")
        #expect(try invalidParameter(#"{"method":"\#(m).GetDevice","parameters":{"address":null}}"#,
                                     as: Manager.GetDeviceParameters.self) == "address")
        #expect(try invalidParameter(#"{"method":"\#(m).GetDevice","parameters":{}}"#,
                                     as: Manager.GetDeviceParameters.self) == "address")
        #expect(try invalidParameter(#"{"method":"\#(m).GetDevice"}"#,
                                     as: Manager.GetDeviceParameters.self) == "address")
        #expect(try invalidParameter(#"{"method":"\#(m).Signal","parameters":{"id":"w1","signal":"TERM"}}"#,
                                     as: Manager.SignalParameters.self) == "signal")
        // Foundation reports a number that does not fit the field without its coding path, so only
        // the error (not the field) is certain here.
        #expect(try invalidParameter(#"{"method":"\#(m).Signal","parameters":{"id":"w1","signal":1.5}}"#,
                                     as: Manager.SignalParameters.self) != nil)
        #expect(try invalidParameter(#"{"method":"\#(m).Spawn","parameters":{"argv":"/bin/sh"}}"#,
                                     as: Manager.SpawnParameters.self) == "argv")
        #expect(try invalidParameter(#"{"method":"\#(m).Spawn","parameters":{"argv":["/bin/sh",7]}}"#,
                                     as: Manager.SpawnParameters.self) == "argv[1]")
        #expect(try invalidParameter(#"{"method":"\#(m).Spawn","parameters":{"argv":["/bin/sh"],"node":"1"}}"#,
                                     as: Manager.SpawnParameters.self) == "node")
        #expect(try invalidParameter(#"{"method":"\#(m).ListDevices","parameters":{"node":1e400}}"#,
                                     as: Manager.ListDevicesParameters.self) != nil)
        #expect(try invalidParameter(#"{"method":"\#(m).Spawn","parameters":{"argv":["/bin/sh"],"environment":[["A=1"]]}}"#,
                                     as: Manager.SpawnParameters.self) == "environment[0]")
        #expect(try invalidParameter(#"{"method":"\#(m).ListDevices","parameters":[1]}"#,
                                     as: Manager.ListDevicesParameters.self) == "parameters")
        #expect(try invalidParameter(#"{"method":"\#(m).ListDevices","parameters":"node=1"}"#,
                                     as: Manager.ListDevicesParameters.self) == "parameters")
    }

    @Test func missingAndEmptyParametersDecodeAsEmptyObject() throws {
        let bare = try VarlinkCall(bytes: Array(#"{"method":"io.numaplaced.Manager.ListDevices"}"#.utf8))
        #expect(try bare.parameters(as: Manager.ListDevicesParameters.self) == Manager.ListDevicesParameters())
        let null = try VarlinkCall(bytes: Array(#"{"method":"io.numaplaced.Manager.ListDevices","parameters":null}"#.utf8))
        #expect(try null.parameters(as: Manager.ListDevicesParameters.self) == Manager.ListDevicesParameters())
        // Unknown fields are ignored, so an older daemon accepts a newer client's optional fields.
        let extra = try VarlinkCall(bytes: Array(#"{"method":"x.Y","parameters":{"kind":"gpu","future":[1]}}"#.utf8))
        #expect(try extra.parameters(as: Manager.ListDevicesParameters.self).kind == "gpu")
    }

    @Test func methodNameSplitsAtTheLastDot() throws {
        let call = try VarlinkCall(bytes: Array(#"{"method":"org.varlink.service.GetInfo"}"#.utf8))
        #expect(call.interface == "org.varlink.service")
        #expect(call.member == "GetInfo")
        let bare = try VarlinkCall(bytes: Array(#"{"method":"GetInfo"}"#.utf8))
        #expect(bare.interface == "")
        #expect(bare.member == "GetInfo")
    }

    // MARK: Replies

    @Test func repliesEndInOneNULAndRoundTrip() throws {
        let bytes = try VarlinkReply.encode(Manager.GetDeviceParameters(address: "0000:3b:00.0"), continues: true)
        #expect(bytes.last == 0)
        #expect(bytes.dropLast().contains(0) == false)
        let object = try JSONDecoder().decode(JSONValue.self, from: Data(bytes.dropLast()))
        #expect(object["continues"] == .bool(true))
        #expect(object["parameters"]?["address"] == .string("0000:3b:00.0"))
        let single = try JSONDecoder().decode(JSONValue.self, from: Data(try VarlinkReply.encode(Empty()).dropLast()))
        #expect(single["continues"] == nil)

        let error = VarlinkReply.encode(error: Manager.noSuchDevice("0000:3b:00.0"))
        #expect(error.last == 0)
        let e = try JSONDecoder().decode(JSONValue.self, from: Data(error.dropLast()))
        #expect(e["error"] == .string("io.numaplaced.Manager.NoSuchDevice"))
        #expect(e["parameters"]?["address"] == .string("0000:3b:00.0"))
    }

    @Test func clientCallEncodingFramesAsOneMessage() throws {
        let call = try VarlinkCall(method: "io.numaplaced.Manager.Monitor", parameters: Empty(), more: true)
        var framer = VarlinkFramer()
        let out = try framer.push([UInt8](call.raw) + [0])
        #expect(out.count == 1)
        let back = try VarlinkCall(bytes: out[0])
        #expect(back.method == "io.numaplaced.Manager.Monitor")
        #expect(back.more)
        #expect(!back.oneway)
    }

    // MARK: Interface description

    @Test func interfaceLiteralEqualsTheVarlinkFileByteForByte() throws {
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources/NumaPlaceProtocol/io.numaplaced.Manager.varlink")
        let bytes = try Data(contentsOf: file)
        #expect(Array(bytes) == Array(Manager.interfaceDescription.utf8),
                "run python3 Sources/NumaPlaceProtocol/embed-interface.py after editing the .varlink file")
        #expect(Manager.interfaceDescription.contains("interface io.numaplaced.Manager\n"))
    }
}
