// libFuzzer driver: Varlink framing, the call envelope and parameter decoding into the
// io.numaplaced.Manager wire types — everything the daemon does with a client's bytes before a
// method runs. Built by Tests/reliability/run with `swiftc -sanitize=fuzzer,address`.
//
// The input is split into chunks whose sizes come from its own bytes, so framing is exercised
// across every kind of split (a NUL at a chunk edge, a message spanning many reads).
import Foundation
import NumaPlaceCore
import NumaPlaceProtocol

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzVarlink(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    // A small bound, so the too-large path is reached by short inputs too.
    var framer = VarlinkFramer(maxMessageBytes: 512)
    var messages: [[UInt8]] = []
    var offset = 0
    var chunkSeed = bytes.first.map(Int.init) ?? 1
    while offset < bytes.count {
        let n = min(bytes.count - offset, (chunkSeed & 0xffff) % 97 + 1)
        do {
            messages += try framer.push(bytes[offset..<offset + n])
        } catch {
            precondition(framer.pendingBytes > 512, "framer refused a message within its bound")
            break
        }
        chunkSeed = chunkSeed &* 31 &+ Int(bytes[offset])
        offset += n
    }
    // The same bytes in one piece must frame identically (up to the first refusal).
    var whole = VarlinkFramer(maxMessageBytes: 512)
    if let all = try? whole.push(bytes) {
        precondition(Array(all.prefix(messages.count)) == messages, "framing depends on how the bytes were split")
    }
    // Without a terminating NUL the last message is not complete: whatever was pushed and not
    // returned is pending, never lost.
    for message in messages {
        precondition(!message.contains(0), "a framed message contains its terminator")
        _ = jsonNestingDepth(message)
        guard let call = try? VarlinkCall(bytes: message) else { continue }
        _ = call.interface
        _ = call.member
        _ = try? call.parameters(as: Empty.self)
        _ = try? call.parameters(as: Manager.ListDevicesParameters.self)
        _ = try? call.parameters(as: Manager.GetDeviceParameters.self)
        _ = try? call.parameters(as: Manager.SpawnParameters.self)
        _ = try? call.parameters(as: Manager.WorkerIDParameters.self)
        _ = try? call.parameters(as: Manager.SignalParameters.self)
        _ = try? call.parameters(as: VarlinkService.GetInterfaceDescriptionParameters.self)
        // Error parameters are free-form JSON (the client decodes them as JSONValue).
        if let p = try? call.parameters(as: [String: JSONValue].self) {
            _ = VarlinkReply.encode(error: VarlinkError("fuzz.Error", p))
        }
        // A spawn request that decodes must survive the daemon's own parsing of its fields.
        if let spawn = try? call.parameters(as: Manager.SpawnParameters.self) {
            if let d = spawn.device { _ = try? PCIAddress(parsing: d) }
            if let c = spawn.cpus { _ = try? CPUSet(cpulist: c) }
            if let n = spawn.node { _ = NUMANodeID(rawValue: n) }
        }
        if let a = try? call.parameters(as: Manager.ListDevicesParameters.self), let text = a.address {
            _ = try? PCIAddress(parsing: text)
        }
    }
    return 0
}
