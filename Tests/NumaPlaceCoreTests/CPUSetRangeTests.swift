import Testing
@testable import NumaPlaceCore

/// Ranges in a cpulist are set a 64-bit word at a time (a hostile "0-65535,0-65535,…" must cost
/// words, not CPUs); these compare that path with one-by-one inserts across word edges and strides.
@Suite("CPUSet ranges")
struct CPUSetRangeTests {
    @Test(arguments: [1, 2, 3, 7, 31, 63, 64, 65, 100])
    func rangesMatchSingleInserts(step: Int) throws {
        for lo in [0, 1, 62, 63, 64, 65, 127, 128, 200] {
            for length in [0, 1, 2, 62, 63, 64, 65, 130, 500] {
                let hi = lo + length
                let parsed = try CPUSet(cpulist: "\(lo)-\(hi):\(step)")
                let expected = CPUSet(stride(from: lo, through: hi, by: step))
                #expect(parsed == expected, "\(lo)-\(hi):\(step)")
                #expect(parsed.words.last != 0, "trailing zero word left in \(lo)-\(hi):\(step)")
            }
        }
    }

    @Test func repeatedFullRangesParse() throws {
        let text = Array(repeating: "0-65535", count: 2000).joined(separator: ",") + ",1-65535:3"
        let set = try CPUSet(cpulist: text)
        #expect(set.count == 65536)
        #expect(set.last == 65535)
    }
}
