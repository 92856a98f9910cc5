import Testing
@testable import NumaPlaceCore

@Suite("CPUSet")
struct CPUSetTests {
    @Test(arguments: [
        ("0", [0]),
        ("0-3", [0, 1, 2, 3]),
        ("0-3,8-11", [0, 1, 2, 3, 8, 9, 10, 11]),
        ("0,2,4,6", [0, 2, 4, 6]),
        (" 0-1 \n", [0, 1]),
        ("0-1\n", [0, 1]),
        ("3,1,2", [1, 2, 3]),                 // unsorted input
        ("0-3,2-5", [0, 1, 2, 3, 4, 5]),      // overlapping ranges
        ("0-15:4", [0, 4, 8, 12]),            // stride
        ("5-5", [5]),
        ("", []),                             // a CPU-less node's cpulist
        ("\n", []),
        ("   ", []),
        ("65535", [65535]),                   // the last accepted CPU
    ])
    func parsesCPUList(text: String, expected: [Int]) throws {
        let set = try CPUSet(cpulist: text)
        #expect(set.elements == expected)
        #expect(set.count == expected.count)
    }

    @Test(arguments: [
        ("3-1", CPUSet.ParseError.backwardsRange(3, 1)),
        ("8-11,3-0", .backwardsRange(3, 0)),
        ("65536", .tooLarge(65536)),
        ("0-65536", .tooLarge(65536)),
        ("0-4294967295", .tooLarge(4_294_967_295)),
        ("99999999999999999999999", .tooLarge(999_999_999_999_999_999)),
        ("0-3\01", .containsNUL),
        ("\0", .containsNUL),
        ("-1", .malformed("-1")),
        ("garbage", .malformed("garbage")),
        ("0-", .malformed("0-")),
        ("-3", .malformed("-3")),
        ("0--3", .malformed("0--3")),
        ("1,,2", .malformed("")),
        (",", .malformed("")),
        ("0,", .malformed("")),
        ("0x3", .malformed("0x3")),
        ("0-3:0", .malformed("0-3:0")),
        ("0-3:x", .malformed("0-3:x")),
        ("+1", .malformed("+1")),
        ("１", .malformed("１")),          // fullwidth digit
        ("0\u{FFFD}", .malformed("0\u{FFFD}")),
    ])
    func rejectsBadCPUList(text: String, error: CPUSet.ParseError) {
        #expect(throws: error) { try CPUSet(cpulist: text) }
    }

    @Test(arguments: [
        ("00000003", [0, 1]),
        ("3", [0, 1]),
        ("ff", Array(0...7)),
        ("ffffffff,00000000", Array(32...63)),
        ("00000001,00000000,00000001", [0, 64]),
        ("0x00000003", [0, 1]),
        ("00000000", []),
        ("0", []),
        ("  0000ff00\n", Array(8...15)),
        ("ffffffffffffffff", Array(0...63)),  // one unseparated 64-bit word
    ])
    func parsesHexMask(text: String, expected: [Int]) throws {
        #expect(try CPUSet(hexMask: text).elements == expected)
    }

    @Test(arguments: [
        ("", CPUSet.ParseError.empty),
        (" \n", .empty),
        ("zz", .malformed("zz")),
        ("ff,", .malformed("")),
        (",ff", .malformed("")),
        ("0x", .malformed("0x")),
        ("-1", .malformed("-1")),
        ("ff,123456789", .malformed("123456789")),   // a 36-bit word in a multi-word mask
        ("f\0f", .containsNUL),
        ("\u{FFFD}", .malformed("\u{FFFD}")),
        (Array(repeating: "ffffffff", count: 2049).joined(separator: ","), .tooLarge(2049 * 32)),
    ])
    func rejectsBadHexMask(text: String, error: CPUSet.ParseError) {
        #expect(throws: error) { try CPUSet(hexMask: text) }
    }

    @Test(arguments: [0, 1, 63, 64, 65, 127, 1023, 1024, 2047, 2048, 4095, 8191])
    func boundaryCPUs(cpu: Int) throws {
        let set: CPUSet = [cpu]
        #expect(set.contains(cpu))
        #expect(!set.contains(cpu + 1))
        #expect(set.first == cpu)
        #expect(set.last == cpu)
        #expect(try CPUSet(cpulist: set.cpulist) == set)
        #expect(try CPUSet(hexMask: set.hexMask) == set)
    }

    /// Round trips through both text forms, for sizes past the 1024 CPUs of glibc's cpu_set_t.
    @Test(arguments: [
        "0-1", "0-3,8-11", "1,3,5,7,9,11,13,15,17,19,21,23", "0-7,16-23",
        "0-2047", "1024-2047", "0-4095", "0,4095", "0-1023,2048-3071", "64-127,4000-4095",
        "0-8191:2",
    ])
    func roundTrips(list: String) throws {
        let set = try CPUSet(cpulist: list)
        let reparsed = try CPUSet(cpulist: set.cpulist)
        #expect(reparsed == set)
        #expect(try CPUSet(hexMask: set.hexMask) == set)
        #expect(set.hexMask.split(separator: ",").allSatisfy { $0.count == 8 })
    }

    @Test func largeSetsCountAndPrint() throws {
        let big = try CPUSet(cpulist: "0-4095")
        #expect(big.count == 4096)
        #expect(big.cpulist == "0-4095")
        #expect(big.hexMask == Array(repeating: "ffffffff", count: 128).joined(separator: ","))
        let upper = try CPUSet(cpulist: "2048-4095")
        #expect(upper.hexMask.hasSuffix(Array(repeating: "00000000", count: 64).joined(separator: ",")))
        #expect(upper.hexMask.split(separator: ",").count == 128)
        #expect(try CPUSet(cpulist: "1024-2047").hexMask.split(separator: ",").count == 64)
    }

    @Test func textForms() {
        #expect(CPUSet().cpulist == "")
        #expect(CPUSet().hexMask == "00000000")
        #expect(([0, 1, 2, 4, 6, 7] as CPUSet).cpulist == "0-2,4,6-7")
        #expect(([0, 1] as CPUSet).hexMask == "00000003")
        #expect(([32] as CPUSet).hexMask == "00000001,00000000")
        #expect(([5] as CPUSet).description == "5")
    }

    @Test func algebra() {
        let a = cpuset("0-7")
        let b = cpuset("4-11")
        let far = cpuset("2048-2050")
        #expect(a.union(b) == cpuset("0-11"))
        #expect(a.intersection(b) == cpuset("4-7"))
        #expect(a.subtracting(b) == cpuset("0-3"))
        #expect(b.subtracting(a) == cpuset("8-11"))
        #expect(a.union(far) == cpuset("0-7,2048-2050"))
        #expect(a.intersection(far).isEmpty)
        #expect(a.intersection(far) == CPUSet())          // trimmed words compare equal
        #expect(far.subtracting(far) == CPUSet())
        #expect(a.isDisjoint(with: far))
        #expect(!a.isDisjoint(with: b))
        #expect(cpuset("4-7").isSubset(of: a))
        #expect(!b.isSubset(of: a))
        #expect(CPUSet().isSubset(of: a))
        #expect(a.union(far).subtracting(a) == far)
        var c = far
        c.remove(2050)
        c.remove(2049)
        c.remove(2048)
        #expect(c == CPUSet())
        #expect(c.words.isEmpty)
        c.remove(-1)
        c.insert(-5)
        #expect(c.isEmpty)
        #expect(!c.contains(-1))
        #expect(CPUSet(words: [0, 0, 0]) == CPUSet())
        #expect(CPUSet(words: [3, 0]).elements == [0, 1])
        var d = a
        d.formUnion(far)
        #expect(d.count == 11)
        #expect(d.first == 0)
        #expect(d.last == 2050)
        #expect(CPUSet().first == nil)
        #expect(CPUSet().last == nil)
        #expect(Set([a, cpuset("0-7"), cpuset("0-3,4-7")]).count == 1)   // Hashable agrees with ==
    }

    /// Plain elements are read from their bytes, the rest by the general path: both must agree.
    /// Spaces inside an element send it down the general path; the sets must not differ.
    @Test func plainAndGeneralPathsAgree() throws {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            var plain: [String] = [], spaced: [String] = []
            for _ in 0..<Int.random(in: 1...12, using: &rng) {
                let lo = Int.random(in: 0...4000, using: &rng)
                switch Int.random(in: 0...2, using: &rng) {
                case 0:
                    plain.append("\(lo)"); spaced.append(" \(lo) ")
                case 1:
                    let hi = lo + Int.random(in: 0...300, using: &rng)
                    plain.append("\(lo)-\(hi)"); spaced.append("\(lo)-\(hi)\t")
                default:
                    let hi = lo + Int.random(in: 0...300, using: &rng), step = Int.random(in: 1...70, using: &rng)
                    plain.append("\(lo)-\(hi):\(step)"); spaced.append(" \(lo)-\(hi):\(step)")
                }
            }
            let a = try CPUSet(cpulist: plain.joined(separator: ","))
            let b = try CPUSet(cpulist: spaced.joined(separator: ","))
            #expect(a == b, "\(plain) vs \(spaced)")
            #expect(try CPUSet(cpulist: a.cpulist) == a)
        }
        // Leading zeros, and the errors of elements that look plain but are not.
        #expect(try CPUSet(cpulist: "007,0010-0011") == CPUSet([7, 10, 11]))
        #expect(throws: CPUSet.ParseError.backwardsRange(9, 3)) { try CPUSet(cpulist: "1,9-3:2") }
        #expect(throws: CPUSet.ParseError.tooLarge(70000)) { try CPUSet(cpulist: "1,70000") }
        #expect(throws: CPUSet.ParseError.malformed("0-3:0")) { try CPUSet(cpulist: "0-3:0") }
    }
}
