#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import SwiftProtobuf

/// One connection's life, as containerd/nri's pkg/stub runs it: RegisterPlugin on the runtime's service
/// (connection 2), then serve the plugin's service (connection 1) until the runtime shuts the plugin
/// down or closes the socket. Both happen in one loop, because the runtime may send Configure before our
/// RegisterPlugin's response has been read.
public struct NRIPluginSession {
    public static let runtimeService = "nri.pkg.api.v1alpha1.Runtime"

    /// The runtime's default registration timeout (adaptation/plugin.go).
    public static let registrationTimeoutMilliseconds: Int32 = 5000

    public let trunk: NRITrunk
    public let plugin: NRIPlugin
    /// The plugin name and its two-digit index, which orders plugins in the runtime ("10").
    public let name: String
    public let index: String

    public init(trunk: NRITrunk, plugin: NRIPlugin, name: String = "numaplace", index: String = "10") {
        self.trunk = trunk
        self.plugin = plugin
        self.name = name
        self.index = index
    }

    /// Returns when the runtime called Shutdown; throws `.closed` when it closed the socket.
    public func run() throws(NRIConnectionError) {
        let registerStream: UInt32 = 1
        var request = Ttrpc_Request()
        request.service = Self.runtimeService
        request.method = "RegisterPlugin"
        var register = Nri_Pkg_Api_V1alpha1_RegisterPluginRequest()
        register.pluginName = name
        register.pluginIdx = index
        do {
            request.payload = try register.serializedData()
            try trunk.send(TTRPCFrame(streamID: registerStream, type: .request, payload: try request.serializedBytes()),
                           on: .runtimeService)
        } catch let e as NRIConnectionError {
            throw e
        } catch {
            throw .protocolViolation("cannot encode RegisterPlugin: \(error)")
        }

        var registered = false
        let deadline = monotonicMilliseconds() + Int64(Self.registrationTimeoutMilliseconds)
        while !plugin.shutDown {
            let wait: Int32 = registered ? -1 : Int32(clamping: max(0, deadline - monotonicMilliseconds()))
            guard let (connection, frame) = try trunk.receive(timeoutMilliseconds: wait) else {
                throw .registrationTimedOut
            }
            switch (connection, frame.type) {
            case (.runtimeService, .response):
                guard frame.streamID == registerStream, !registered else {
                    throw .protocolViolation("response on stream \(frame.streamID), which no call of ours opened")
                }
                let response: Ttrpc_Response
                do { response = try Ttrpc_Response(serializedBytes: frame.payload) } catch {
                    throw .protocolViolation("cannot decode the RegisterPlugin response: \(error)")
                }
                if response.hasStatus && response.status.code != 0 {
                    throw .registrationRefused(TTRPCStatus(code: response.status.code, message: response.status.message))
                }
                registered = true
            case (.pluginService, .request):
                try serve(frame)
            default:
                throw .protocolViolation("a \(frame.type) on connection \(connection.rawValue)")
            }
        }
    }

    private func serve(_ frame: TTRPCFrame) throws(NRIConnectionError) {
        var response = Ttrpc_Response()
        do {
            let request = try Ttrpc_Request(serializedBytes: frame.payload)
            switch plugin.handle(service: request.service, method: request.method, payload: Array(request.payload)) {
            case .success(let bytes):
                response.payload = Data(bytes)
            case .failure(let status):
                response.status.code = status.code
                response.status.message = status.message
            }
        } catch {
            response.status.code = TTRPCStatus.invalidArgument("").code
            response.status.message = "cannot decode the ttrpc request: \(error)"
        }
        let bytes: [UInt8]
        do { bytes = try response.serializedBytes() } catch {
            throw .protocolViolation("cannot encode a response: \(error)")
        }
        try trunk.send(TTRPCFrame(streamID: frame.streamID, type: .response, payload: bytes), on: .pluginService)
    }
}

private func monotonicMilliseconds() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}
