/// A PCI function address: domain (segment), bus, device, function.
///
/// Drivers and tools spell the same function many ways: nvidia-smi prints `00000000:3B:00.0`, sysfs
/// names it `0000:3b:00.0`, lspci `3b:00.0`, hwloc's 32-bit-domain machines `10000:00:00.0`, and
/// clients often drop the function. `init(parsing:)` accepts all of them; `description` prints the
/// kernel's canonical form, so lookups never fail on spelling.
public struct PCIAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let domain: UInt32
    public let bus: UInt8
    public let device: UInt8     // 0…31
    public let function: UInt8   // 0…7

    public init?(domain: UInt32 = 0, bus: UInt8, device: UInt8, function: UInt8 = 0) {
        guard device < 32, function < 8 else { return nil }
        self.domain = domain
        self.bus = bus
        self.device = device
        self.function = function
    }

    public enum ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        case malformed(String)
        public var description: String {
            switch self {
            case .malformed(let text):
                return "\"\(text.prefix(64))\" is not a PCI address (expected [domain:]bus:device[.function], hex)"
            }
        }
    }

    /// Parses `[domain:]bus:device[.function]` in hex, any case, with a 1–8 digit domain.
    /// Surrounding whitespace is ignored; anything else that does not fit is an error.
    public init(parsing input: some StringProtocol) throws(ParseError) {
        let text = Substring(input).trimmingWhitespace
        func fail() -> ParseError { .malformed(String(input)) }
        guard text.count <= 32, text.allSatisfy({ $0.isASCII }) else { throw fail() }
        let colonParts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard colonParts.count == 2 || colonParts.count == 3 else { throw fail() }
        var domain: UInt32 = 0
        if colonParts.count == 3 {
            let d = colonParts[0]
            guard (1...8).contains(d.count), let v = UInt32(d, radix: 16), d.allSatisfy(\.isHexDigit) else { throw fail() }
            domain = v
        }
        let busText = colonParts[colonParts.count - 2]
        guard (1...2).contains(busText.count), busText.allSatisfy(\.isHexDigit), let bus = UInt8(busText, radix: 16) else {
            throw fail()
        }
        let devFn = colonParts[colonParts.count - 1]
        let dotParts = devFn.split(separator: ".", omittingEmptySubsequences: false)
        guard dotParts.count == 1 || dotParts.count == 2 else { throw fail() }
        let devText = dotParts[0]
        guard (1...2).contains(devText.count), devText.allSatisfy(\.isHexDigit), let dev = UInt8(devText, radix: 16), dev < 32 else {
            throw fail()
        }
        var fn: UInt8 = 0
        if dotParts.count == 2 {
            let f = dotParts[1]
            guard f.count == 1, let v = UInt8(f, radix: 16), v < 8 else { throw fail() }
            fn = v
        }
        self.domain = domain
        self.bus = bus
        self.device = dev
        self.function = fn
    }

    /// The kernel's form: `0000:3b:00.0`; a domain over 0xffff printed with all its digits.
    public var description: String {
        "\(hex(UInt64(domain), width: 4)):\(hex(UInt64(bus), width: 2)):\(hex(UInt64(device), width: 2)).\(function)"
    }

    public static func < (a: PCIAddress, b: PCIAddress) -> Bool {
        (a.domain, a.bus, a.device, a.function) < (b.domain, b.bus, b.device, b.function)
    }
}

/// Lower-case hex with at least `width` digits.
func hex(_ value: UInt64, width: Int) -> String {
    let s = String(value, radix: 16)
    return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
}
