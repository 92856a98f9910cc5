import Testing
@testable import NumaPlaceNRI

/// ttrpc frames and NRI's multiplexed chunks byte by byte: known bytes, splits at every offset, and
/// hostile headers (oversize, unknown type, cut short), each a typed error.
@Suite struct FramingTests {
    static let frames = [
        TTRPCFrame(streamID: 1, type: .request, payload: Array("hello".utf8)),
        TTRPCFrame(streamID: 3, type: .response, flags: 0, payload: []),
        TTRPCFrame(streamID: 0xdead_beef, type: .response, flags: 0x04, payload: Array(repeating: 0xab, count: 300)),
    ]

    static func stream() throws -> [UInt8] { try frames.flatMap { try $0.encoded() } }

    @Test func headerIsLengthStreamTypeFlagsBigEndian() throws {
        let bytes = try TTRPCFrame(streamID: 0x0102_0304, type: .response, flags: 0x05, payload: [9, 8]).encoded()
        #expect(bytes == [0, 0, 0, 2, 1, 2, 3, 4, 2, 5, 9, 8])
    }

    @Test func splitAtEveryOffsetYieldsTheSameFrames() throws {
        let stream = try Self.stream()
        for cut in 0...stream.count {
            var framer = TTRPCFramer()
            var got = try framer.push(stream[..<cut])
            got += try framer.push(stream[cut...])
            #expect(got == Self.frames, "cut at \(cut)")
            #expect(framer.pendingBytes == 0)
            try framer.finish()
        }
    }

    @Test func byteByByte() throws {
        var framer = TTRPCFramer()
        var got: [TTRPCFrame] = []
        for b in try Self.stream() { got += try framer.push([b]) }
        #expect(got == Self.frames)
    }

    @Test func oversizeLengthIsRefusedFromTheHeaderAlone() {
        var framer = TTRPCFramer()
        // 4 MiB + 1 announced, nothing of the payload sent: refused without waiting for it.
        let header: [UInt8] = [0, 0x40, 0, 1, 0, 0, 0, 1, 1, 0]
        #expect(throws: TTRPCFramingError.oversize(length: (4 << 20) + 1)) { try framer.push(header) }
        var huge = TTRPCFramer()
        #expect(throws: TTRPCFramingError.oversize(length: .max)) { try huge.push([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 1, 0]) }
    }

    @Test func exactlyTheLimitIsAccepted() throws {
        let frame = TTRPCFrame(streamID: 1, type: .request, payload: Array(repeating: 7, count: TTRPCFrame.maxPayloadLength))
        var framer = TTRPCFramer()
        #expect(try framer.push(try frame.encoded()) == [frame])
        let over = TTRPCFrame(streamID: 1, type: .request, payload: Array(repeating: 7, count: TTRPCFrame.maxPayloadLength + 1))
        #expect(throws: TTRPCFramingError.oversize(length: UInt32(TTRPCFrame.maxPayloadLength + 1))) { try over.encoded() }
    }

    @Test(arguments: [UInt8(0), 3, 4, 0xff])
    func unknownTypeIsRefused(type: UInt8) {
        var framer = TTRPCFramer()
        #expect(throws: TTRPCFramingError.unknownType(type)) { try framer.push([0, 0, 0, 0, 0, 0, 0, 1, type, 0]) }
    }

    @Test func truncatedHeaderAndPayloadAreReportedAtEnd() throws {
        var framer = TTRPCFramer()
        #expect(try framer.push([0, 0, 0]).isEmpty)
        #expect(throws: TTRPCFramingError.truncated(have: 3, need: 10)) { try framer.finish() }
        var partial = TTRPCFramer()
        #expect(try partial.push(try Self.frames[0].encoded().dropLast(2)).isEmpty)
        #expect(throws: TTRPCFramingError.truncated(have: 13, need: 15)) { try partial.finish() }
    }

    // MARK: The multiplexer's chunks

    @Test func muxHeaderIsConnectionThenLength() throws {
        #expect(try MuxChunk(connection: 2, payload: [1, 2, 3]).encoded() == [0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3])
    }

    @Test func muxChunksSplitAnywhere() throws {
        let chunks = [MuxChunk(connection: 1, payload: Array("abc".utf8)), MuxChunk(connection: 2, payload: []),
                      MuxChunk(connection: 7, payload: [0, 0, 0, 0, 0, 0, 0, 0, 0])]
        let stream = try chunks.flatMap { try $0.encoded() }
        for cut in 0...stream.count {
            var framer = MuxFramer()
            let got = try framer.push(stream[..<cut]) + framer.push(stream[cut...])
            #expect(got == chunks, "cut at \(cut)")
            try framer.finish()
        }
    }

    @Test func muxOversizeAndTruncation() throws {
        var framer = MuxFramer()
        #expect(throws: MuxFramingError.oversize(length: (1 << 24) + 1)) { try framer.push([0, 0, 0, 1, 1, 0, 0, 1]) }
        var cut = MuxFramer()
        #expect(try cut.push([0, 0, 0, 1, 0, 0, 0, 5, 1]).isEmpty)
        #expect(throws: MuxFramingError.truncated(have: 9, need: 13)) { try cut.finish() }
    }

    /// A ttrpc frame may cross chunks: the framer of each connection reassembles it.
    @Test func frameSpreadOverChunksReassembles() throws {
        let bytes = try Self.frames[2].encoded()
        var framer = TTRPCFramer()
        var got: [TTRPCFrame] = []
        for start in stride(from: 0, to: bytes.count, by: 7) {
            got += try framer.push(bytes[start..<min(start + 7, bytes.count)])
        }
        #expect(got == [Self.frames[2]])
    }
}
