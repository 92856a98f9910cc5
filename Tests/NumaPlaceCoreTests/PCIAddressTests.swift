import Testing
@testable import NumaPlaceCore

@Suite("PCIAddress")
struct PCIAddressTests {
    /// Every spelling a driver, tool or client uses, and the canonical form the kernel prints.
    @Test(arguments: [
        ("0000:3b:00.0", "0000:3b:00.0"),          // sysfs
        ("0000:3B:00.0", "0000:3b:00.0"),          // upper case
        ("00000000:3B:00.0", "0000:3b:00.0"),      // nvidia-smi, 8-digit domain
        ("00000000:3b:1f.7", "0000:3b:1f.7"),
        ("3b:00.0", "0000:3b:00.0"),               // lspci, no domain
        ("3B:00", "0000:3b:00.0"),                 // no domain, no function
        ("0000:3b:00", "0000:3b:00.0"),            // no function
        ("10000:00:00.0", "10000:00:00.0"),        // hwloc 2pa-pcidomain32bits: a 32-bit domain
        ("10001:01:02.3", "10001:01:02.3"),
        ("ffffffff:ff:1f.7", "ffffffff:ff:1f.7"),  // the largest address
        ("FFFF:FF:1F.7", "ffff:ff:1f.7"),
        ("0008:01:00.0", "0008:01:00.0"),          // Grace-Hopper style domains
        ("8:1:0.0", "0008:01:00.0"),               // short fields
        ("  0000:3b:00.0\n", "0000:3b:00.0"),      // whitespace around, as read from a file
        ("\t0000:3b:00.0 ", "0000:3b:00.0"),
    ])
    func parsesAndPrintsCanonically(input: String, canonical: String) throws {
        let a = try PCIAddress(parsing: input)
        #expect(a.description == canonical)
        #expect(try PCIAddress(parsing: a.description) == a, "canonical form parses back to the same address")
    }

    @Test func fieldsAreIntegers() throws {
        let a = try PCIAddress(parsing: "10000:3B:1f.5")
        #expect(a.domain == 0x10000)
        #expect(a.bus == 0x3b)
        #expect(a.device == 0x1f)
        #expect(a.function == 5)
        #expect(try PCIAddress(parsing: "00000000:3b:00.0") == PCIAddress(parsing: "3b:00.0"))
    }

    @Test(arguments: [
        "", " ", "\n", "garbage", "0000:3b:00.0.0", "0000:3b:00:0", "0000:0000:3b:00.0",
        "0000:3b:20.0",            // device > 31
        "0000:3b:00.8",            // function > 7
        "0000:3b:00.10",           // two-digit function
        "0000:3b:00.",             // dot without function
        "0000:3b:.0",              // no device
        "0000::00.0",              // no bus
        ":3b:00.0",                // empty domain
        "100000000:00:00.0",       // 9-digit domain
        "0000:13b:00.0",           // 3-digit bus
        "0000:3b:000.0",           // 3-digit device
        "-000:3b:00.0", "+000:3b:00.0", "0x00:3b:00.0",
        "0000:3b:00.-1", "0000:-1:00.0",
        "0000:3g:00.0", "zzzz:3b:00.0",
        "0000: 3b:00.0", "0000:3b :00.0",
        "0000:3b:00.0\0", "00\000:3b:00.0",
        "０000:3b:00.0",           // fullwidth digit
        "0000:3b:00.0\u{FFFD}",    // invalid UTF-8, as repaired on reading
        "pci0000:00",              // a host bridge directory name
        "0000:00",                 // a bus name
        String(repeating: "0", count: 10_000) + ":3b:00.0",
        String(repeating: "0000:", count: 100),
    ])
    func rejectsHostileText(_ input: String) {
        #expect(throws: PCIAddress.ParseError.self) { try PCIAddress(parsing: input) }
    }

    @Test func errorMessageIsBounded() {
        let huge = String(repeating: "x", count: 100_000)
        do {
            _ = try PCIAddress(parsing: huge)
            Issue.record("parsed garbage")
        } catch {
            #expect(error.description.count < 200)
        }
    }

    @Test func memberwiseInitValidates() {
        #expect(PCIAddress(domain: 0, bus: 0x3b, device: 31, function: 7) != nil)
        #expect(PCIAddress(domain: 0, bus: 0x3b, device: 32, function: 0) == nil)
        #expect(PCIAddress(domain: 0, bus: 0x3b, device: 0, function: 8) == nil)
    }

    @Test func ordersByDomainBusDeviceFunction() {
        let sorted = ["10000:00:00.0", "0000:3b:00.1", "0001:00:00.0", "0000:3b:00.0", "0000:04:1f.0"].map(pci).sorted()
        #expect(sorted.map(\.description) == ["0000:04:1f.0", "0000:3b:00.0", "0000:3b:00.1", "0001:00:00.0", "10000:00:00.0"])
    }
}
