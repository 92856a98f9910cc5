// libFuzzer driver: the parsers of sysfs and procfs text (`SysfsParsers`, `CPUSet(cpulist:)`,
// `CPUSet(hexMask:)`, `PCIAddress(parsing:)`). Every parser sees every input; whatever parses must
// print back to text that parses to the same value (the round trips the daemon relies on when it
// sends cpulists and addresses over the wire and reads them back).
import NumaPlaceCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSysfs(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    _ = try? SysfsParsers.numaNode(text)
    for bits in [8, 16, 24, 32] { _ = try? SysfsParsers.hexID(text, bits: bits) }
    _ = try? SysfsParsers.distances(text)
    _ = try? SysfsParsers.memTotal(text)
    _ = SysfsParsers.cgroupLines(text)
    // statusField scans bytes; on ASCII text without CR (a CR LF is one Character, so a
    // Character split keeps it whole) it must find what a split into lines finds.
    if text.utf8.allSatisfy({ $0 < 0x80 && $0 != 13 }) {
        for name in ["Cpus_allowed_list", "Name", "A"] {
            let reference = text.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") })
                .map { trim($0.dropFirst(name.count + 1)) }
            precondition(SysfsParsers.statusField(name, in: text) == reference, "statusField(\(name))")
        }
    }
    _ = SysfsParsers.numaMapsPolicy(text)

    if let set = try? SysfsParsers.cpulist(text) {
        precondition((try? CPUSet(cpulist: set.cpulist)) == set, "cpulist round trip: \(set.cpulist)")
        precondition((try? CPUSet(hexMask: set.hexMask)) == set, "hexMask round trip: \(set.hexMask)")
        precondition(set.count == set.elements.count, "count disagrees with elements")
    }
    if let set = try? SysfsParsers.cpumask(text) {
        precondition((try? CPUSet(cpulist: set.cpulist)) == set, "cpulist round trip of a mask: \(set.cpulist)")
        precondition((try? CPUSet(hexMask: set.hexMask)) == set, "hexMask round trip: \(set.hexMask)")
    }
    if let address = try? PCIAddress(parsing: text) {
        precondition((try? PCIAddress(parsing: address.description)) == address, "PCI address round trip: \(address)")
    }
    // Ranges are set a word at a time; they must set exactly the CPUs a one-by-one loop sets.
    if size >= 6 {
        let lo = (Int(data[0]) << 8 | Int(data[1])) % 1024
        let hi = lo + (Int(data[2]) << 8 | Int(data[3])) % 300
        let step = Int(data[4]) % 130 + 1
        let expected = CPUSet(Swift.stride(from: lo, through: hi, by: step))
        precondition((try? CPUSet(cpulist: "\(lo)-\(hi):\(step)")) == expected, "range \(lo)-\(hi):\(step)")
        precondition((try? CPUSet(cpulist: "\(lo)-\(hi)")) == CPUSet(lo...hi), "range \(lo)-\(hi)")
    }
    // The file may be any of the kernel's: a line of it is what the scanner often passes.
    for line in text.split(separator: "\n").prefix(4) {
        _ = try? CPUSet(cpulist: line)
        _ = try? CPUSet(hexMask: line)
        _ = try? PCIAddress(parsing: line)
    }
    return 0
}

private func trim(_ s: Substring) -> Substring {
    var t = s
    // Any whitespace, as the parsers trim it (a form feed or CR LF some kernels write around a value).
    while let f = t.first, f.isWhitespace { t = t.dropFirst() }
    while let l = t.last, l.isWhitespace { t = t.dropLast() }
    return t
}
