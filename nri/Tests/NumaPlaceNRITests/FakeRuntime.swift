import Foundation
import Glibc
import SwiftProtobuf
@testable import NumaPlaceNRI

/// The runtime's side of NRI, as containerd's adaptation package plays it: a listening Unix socket, the
/// multiplexed trunk, a ttrpc server for `Runtime` on connection 2 and a ttrpc client of `Plugin` on
/// connection 1. Its frames are built and parsed here byte by byte, apart from the framers under test,
/// so that a mistake shared by both sides cannot hide.
final class FakeRuntime {
    let path: String
    private let listener: Int32
    private var fd: Int32 = -1
    private var inbox: [UInt8] = []
    private var nextStream: UInt32 = 1

    struct Frame {
        var connection: UInt32
        var stream: UInt32
        var type: UInt8
        var flags: UInt8
        var payload: [UInt8]
    }

    struct Failure: Error, CustomStringConvertible { let description: String }

    init() throws {
        path = scratchPath()
        listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in path.utf8.enumerated() { raw[i] = b }
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard listener >= 0, rc == 0, listen(listener, 1) == 0 else { throw Failure(description: "cannot listen on \(path)") }
    }

    deinit {
        if fd >= 0 { close(fd) }
        close(listener)
        unlink(path)
    }

    func accept(timeoutMilliseconds: Int32 = 5000) throws {
        var p = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, timeoutMilliseconds) == 1 else { throw Failure(description: "no plugin connected") }
        fd = Glibc.accept(listener, nil, nil)
        guard fd >= 0 else { throw Failure(description: "accept failed") }
    }

    func write(raw bytes: [UInt8]) throws {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw Failure(description: "send failed: errno \(errno)") }
            off += n
        }
    }

    func closeTrunk() {
        shutdown(fd, Int32(SHUT_RDWR))
    }

    static func be(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24 & 0xff), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)] }
    static func be(_ b: ArraySlice<UInt8>) -> UInt32 { b.reduce(0) { $0 << 8 | UInt32($1) } }

    /// One ttrpc frame in one mux chunk, written by hand.
    func send(connection: UInt32, stream: UInt32, type: UInt8, payload: [UInt8]) throws {
        let frame = Self.be(UInt32(payload.count)) + Self.be(stream) + [type, 0] + payload
        try write(raw: Self.be(connection) + Self.be(UInt32(frame.count)) + frame)
    }

    /// Reads the next ttrpc frame (assuming, as our plugin writes them, one frame per chunk).
    func receive(timeoutMilliseconds: Int32 = 5000) throws -> Frame {
        func fill(_ count: Int) throws {
            var buffer = [UInt8](repeating: 0, count: 65536)
            while inbox.count < count {
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&p, 1, timeoutMilliseconds) == 1 else { throw Failure(description: "plugin silent") }
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                guard n > 0 else { throw Failure(description: "plugin closed the trunk") }
                inbox += buffer[0..<n]
            }
        }
        try fill(8)
        let connection = Self.be(inbox[0..<4]), length = Int(Self.be(inbox[4..<8]))
        try fill(8 + length)
        let chunk = Array(inbox[8..<(8 + length)])
        inbox.removeFirst(8 + length)
        guard chunk.count >= 10, Int(Self.be(chunk[0..<4])) == chunk.count - 10 else {
            throw Failure(description: "chunk is not exactly one ttrpc frame")
        }
        return Frame(connection: connection, stream: Self.be(chunk[4..<8]), type: chunk[8], flags: chunk[9],
                     payload: Array(chunk[10...]))
    }

    /// Answers the plugin's RegisterPlugin; returns the request.
    func acceptRegistration() throws -> Nri_Pkg_Api_V1alpha1_RegisterPluginRequest {
        let frame = try receive()
        guard frame.connection == 2, frame.type == 1 else { throw Failure(description: "expected a request on connection 2") }
        let request = try Ttrpc_Request(serializedBytes: frame.payload)
        guard request.service == "nri.pkg.api.v1alpha1.Runtime", request.method == "RegisterPlugin" else {
            throw Failure(description: "expected RegisterPlugin, got \(request.service).\(request.method)")
        }
        var response = Ttrpc_Response()
        response.payload = try Nri_Pkg_Api_V1alpha1_Empty().serializedData()
        try send(connection: 2, stream: frame.stream, type: 2, payload: try response.serializedBytes())
        return try Nri_Pkg_Api_V1alpha1_RegisterPluginRequest(serializedBytes: request.payload)
    }

    /// Calls `Plugin.method` and returns the response's payload, or throws its status.
    func call<M: SwiftProtobuf.Message>(_ method: String, _ message: M) throws -> [UInt8] {
        try call(method, payload: try message.serializedBytes())
    }

    /// Calls `Plugin.method` with `payload` as the request's bytes, whatever they are.
    func call(_ method: String, payload: [UInt8]) throws -> [UInt8] {
        var request = Ttrpc_Request()
        request.service = "nri.pkg.api.v1alpha1.Plugin"
        request.method = method
        request.payload = Data(payload)
        request.timeoutNano = 2_000_000_000
        return try call(requestBytes: try request.serializedBytes())
    }

    /// Sends `requestBytes` as a ttrpc request frame's payload (a `ttrpc.Request`, or not) on the plugin's
    /// connection; returns the response's payload, or throws its status.
    func call(requestBytes: [UInt8]) throws -> [UInt8] {
        let stream = nextStream
        nextStream += 2
        try send(connection: 1, stream: stream, type: 1, payload: requestBytes)
        let frame = try receive()
        guard frame.connection == 1, frame.type == 2, frame.stream == stream else {
            throw Failure(description: "expected the response to stream \(stream) on connection 1")
        }
        let response = try Ttrpc_Response(serializedBytes: frame.payload)
        if response.hasStatus && response.status.code != 0 {
            throw TTRPCStatus(code: response.status.code, message: response.status.message)
        }
        return Array(response.payload)
    }
}

/// A socket path in the scratch directory, short enough for sun_path.
func scratchPath() -> String {
    "/tmp/np-nri-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
}
