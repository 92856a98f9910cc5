// libFuzzer driver: the configuration parser. The input is one or two files (split at the first
// 0xff byte, which valid UTF-8 never holds): the main file and a drop-in applied after it.
import NumaPlaceCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    var sources: [ConfigSource] = []
    if let cut = bytes.firstIndex(of: 0xff) {
        sources.append(ConfigSource(path: "numaplaced.conf", text: String(decoding: bytes[..<cut], as: UTF8.self)))
        sources.append(ConfigSource(path: "numaplaced.conf.d/50-fuzz.conf",
                                    text: String(decoding: bytes[(cut + 1)...], as: UTF8.self)))
    } else {
        sources.append(ConfigSource(path: "numaplaced.conf", text: String(decoding: bytes, as: UTF8.self)))
    }
    let (configuration, errors) = ConfigParser.check(sources)
    let parsed = Result { () throws(ConfigError) in try ConfigParser.parse(sources) }
    switch parsed {
    case .success(let c):
        precondition(errors.isEmpty && c == configuration, "parse and check disagree")
        // Every limit a file can set stays within its documented bounds.
        precondition(c.limits.maxMessageBytes >= 4096 && c.limits.maxConnections >= 1, "a limit escaped its range")
    case .failure(let e):
        precondition(errors.first == e, "parse threw something check did not report first")
    }
    for e in errors { _ = e.description }
    return 0
}
