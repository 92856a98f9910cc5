import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import NumaPlaceCore

/// Tier 1: each parser against a table of hostile text. No input traps; each bad one is a typed error.
@Suite("SysfsParsers")
struct SysfsParsersTests {
    typealias E = SysfsParsers.ParseError

    // MARK: numa_node

    @Test(arguments: [("0", 0), ("1\n", 1), (" 3 ", 3), ("1023", 1023), ("\t33\n", 33)])
    func numaNodeAccepts(text: String, id: Int) throws {
        #expect(try SysfsParsers.numaNode(text)?.rawValue == id)
    }

    @Test(arguments: ["-1", "-1\n", " -1 "])
    func numaNodeMinusOneIsNoNode(text: String) throws {
        #expect(try SysfsParsers.numaNode(text) == nil)
    }

    @Test(arguments: [
        ("", E.empty), ("\n", .empty), ("   ", .empty),
        ("0\01", .containsNUL), ("\0", .containsNUL),
        ("garbage", .malformed("garbage")), ("0x1", .malformed("0x1")), ("1 2", .malformed("1 2")),
        ("1.0", .malformed("1.0")), ("\u{FFFD}\u{FFFD}", .malformed("\u{FFFD}\u{FFFD}")),
        ("-2", .outOfRange("-2")), ("1024", .outOfRange("1024")), ("2147483648", .outOfRange("2147483648")),
        ("99999999999999999999", .outOfRange("99999999999999999999")),
        ("-99999999999999999999", .outOfRange("-99999999999999999999")),
    ])
    func numaNodeRejects(text: String, error: E) {
        #expect(throws: error) { try SysfsParsers.numaNode(text) }
    }

    // MARK: class / vendor / device

    @Test(arguments: [
        ("0x030200\n", 24, 0x030200), ("0x10de\n", 16, 0x10de), ("0X10DE", 16, 0x10de),
        ("10de", 16, 0x10de), ("0x0b4000", 24, 0x0b4000), (" 0xffff ", 16, 0xffff), ("0xffffff", 24, 0xffffff),
    ])
    func hexIDAccepts(text: String, bits: Int, value: UInt32) throws {
        #expect(try SysfsParsers.hexID(text, bits: bits) == value)
    }

    @Test(arguments: [
        ("", 16, E.empty), ("  \n", 16, .empty), ("0x10\0de", 16, .containsNUL),
        ("0x", 16, .malformed("")), ("0xzz", 16, .malformed("zz")), ("-1", 16, .malformed("-1")),
        ("0x-1", 16, .malformed("-1")), ("0x10 de", 16, .malformed("10 de")), ("garbage", 24, .malformed("garbage")),
        ("0x\u{FFFD}", 16, .malformed("\u{FFFD}")),
        ("0x10000", 16, .outOfRange("10000")), ("0x1000000", 24, .outOfRange("1000000")),
        ("0x123456789", 24, .outOfRange("123456789")),
        ("0x" + String(repeating: "f", count: 40), 16, .outOfRange(String(repeating: "f", count: 40))),
    ])
    func hexIDRejects(text: String, bits: Int, error: E) {
        #expect(throws: error) { try SysfsParsers.hexID(text, bits: bits) }
    }

    // MARK: distance

    @Test(arguments: [
        ("10\n", [10]), ("10 21\n", [10, 21]), ("10 16 16 22 16 22 16 22", [10, 16, 16, 22, 16, 22, 16, 22]),
        ("10  20", [10, 20]), ("10\t20", [10, 20]), ("10 255", [10, 255]),
    ])
    func distancesAccept(text: String, row: [Int]) throws {
        #expect(try SysfsParsers.distances(text) == row)
    }

    @Test(arguments: [
        ("", E.empty), ("\n", .empty), ("10 2\00", .containsNUL), ("10 x", .malformed("x")),
        ("10,20", .malformed("10,20")), ("ten", .malformed("ten")),
        ("10 -1", .outOfRange("-1")), ("10 256", .outOfRange("256")), ("10 99999", .outOfRange("99999")),
        ("10 99999999999999999999", .outOfRange("99999999999999999999")),
        (Array(repeating: "10", count: 1025).joined(separator: " "), .outOfRange("1025 entries")),
    ])
    func distancesReject(text: String, error: E) {
        #expect(throws: error) { try SysfsParsers.distances(text) }
    }

    // MARK: meminfo

    @Test(arguments: [
        ("Node 0 MemTotal:       16747124 kB\nNode 0 MemFree: 1 kB\n", UInt64(16_747_124) * 1024),
        ("Node 1 MemFree: 5 kB\nNode 1 MemTotal: 0 kB\n", 0),
        ("MemTotal:        2048 kB\n", 2_097_152),                   // /proc/meminfo
        ("Node 33 MemTotal: 1\n", 1024),
    ])
    func memTotalAccepts(text: String, bytes: UInt64) throws {
        #expect(try SysfsParsers.memTotal(text) == bytes)
    }

    @Test(arguments: [
        ("", E.malformed("no MemTotal line")),
        ("Node 0 MemFree: 5 kB\n", .malformed("no MemTotal line")),
        ("Node 0 MemTotal: kB", .malformed("Node 0 MemTotal: kB")),
        ("Node 0 MemTotal: -5 kB", .malformed("Node 0 MemTotal: -5 kB")),
        ("Node 0 MemTotal: 5 MB", .malformed("Node 0 MemTotal: 5 MB")),
        ("Node 0 MemTotal: 5\0 kB", .containsNUL),
        ("Node 0 MemTotal: 99999999999999999999 kB", .outOfRange("Node 0 MemTotal: 99999999999999999999 kB")),
    ])
    func memTotalRejects(text: String, error: E) {
        #expect(throws: error) { try SysfsParsers.memTotal(text) }
    }

    // MARK: cgroup

    @Test func cgroupLinesReadsV1AndV2() {
        let lines = SysfsParsers.cgroupLines("""
            12:cpuset:/machine.slice
            5:cpu,cpuacct:/user.slice
            0::/system.slice/numaplaced.service

            """)
        #expect(lines.count == 3)
        #expect(lines[0] == .init(hierarchy: 12, controllers: ["cpuset"], path: "/machine.slice"))
        #expect(lines[1].controllers == ["cpu", "cpuacct"])
        #expect(lines[2] == .init(hierarchy: 0, controllers: [], path: "/system.slice/numaplaced.service"))
    }

    @Test(arguments: [
        "", "\n\n", "garbage", "x:cpuset:/a", "3:cpuset", "3:cpuset:relative/path", "3:cpuset:/a/../../etc",
        "0::/..", "3:cpuset:/a\0b", "\u{FFFD}:cpuset:/", "99999999999999999999999:cpuset:/",
    ])
    func cgroupLinesSkipsHostileLines(text: String) {
        #expect(SysfsParsers.cgroupLines(text).isEmpty)
    }

    @Test func cgroupLinesKeepsColonsInPath() {
        #expect(SysfsParsers.cgroupLines("0::/a:b\n").first?.path == "/a:b")
    }

    // MARK: /proc/<pid>/status

    @Test func statusFields() {
        let status = """
            Name:\tprobe
            Cpus_allowed:\t3
            Cpus_allowed_list:\t0-1
            Mems_allowed:\t00000000,00000001
            Mems_allowed_list:\t0

            """
        #expect(SysfsParsers.statusField("Cpus_allowed_list", in: status) == "0-1")
        #expect(SysfsParsers.statusField("Cpus_allowed", in: status) == "3")
        #expect(SysfsParsers.statusField("Mems_allowed_list", in: status) == "0")
        #expect(SysfsParsers.statusField("Missing", in: status) == nil)
        #expect(SysfsParsers.statusField("Cpus_allowed_list", in: "") == nil)
        #expect(SysfsParsers.statusField("Cpus_allowed_list", in: "Cpus_allowed_list:") == "")
        #expect(SysfsParsers.statusField("Cpus_allowed_list", in: "garbage\0\nCpus_allowed_list:\t0\0\n") == "0\0")
    }

    // MARK: numa_maps

    @Test(arguments: [
        ("7f0000000000 default anon=1 dirty=1\n", "default", ""),
        ("00400000 prefer:1 file=/bin/probe mapped=2\n", "preferred", "1"),
        ("00400000 bind:0-1 file=/bin/probe\n", "bind", "0-1"),
        ("00400000 bind=static:1 file=/bin/probe\n", "bind", "1"),
        ("00400000 interleave:0,2 anon=3\n", "interleave", "0,2"),
        ("00400000 interleave=relative:0-3 anon=3\n", "interleave", "0-3"),
        ("00400000 local\n", "local", ""),
        ("00400000 prefer (many):0-1 anon=1\n", "preferred", "0-1"),
        ("00400000 weighted interleave:0-1 anon=1\n", "weighted-interleave", "0-1"),
        ("00400000 bind:garbage\n", "bind", ""),
    ])
    func numaMapsPolicy(text: String, mode: String, nodes: String) {
        let policy = SysfsParsers.numaMapsPolicy(text)
        #expect(policy?.mode == mode)
        #expect(policy?.nodes.cpulist == nodes)
    }

    @Test(arguments: ["", "\n", "00400000", "garbage\n"])
    func numaMapsPolicyWithoutMapping(text: String) {
        #expect(SysfsParsers.numaMapsPolicy(text) == nil)
    }

    /// Hostile first lines: an unknown policy word is passed on as is (the caller compares it with the
    /// mode it asked for), and node lists that do not parse are empty; nothing traps.
    @Test(arguments: [
        ("0 \0\0\0", "\0\0\0", ""), ("0 \u{FFFD}:1", "\u{FFFD}", "1"), ("0 bind:99999999999", "bind", ""),
        ("0 :::", "", ""), ("0 prefer (many)", "preferred", ""), ("0 prefer:3-1", "preferred", ""),
    ])
    func numaMapsPolicyHostile(text: String, mode: String, nodes: String) {
        let policy = SysfsParsers.numaMapsPolicy(text)
        #expect(policy?.mode == mode)
        #expect(policy?.nodes.cpulist == nodes)
    }
}

@Suite("/proc/<pid>/limits")
struct ProcessLimitsParserTests {
    static let sample = """
        Limit                     Soft Limit           Hard Limit           Units     
        Max cpu time              unlimited            unlimited            seconds   
        Max open files            100                  200                  files     
        Max locked memory         65536                65536                bytes     
        Max nice priority         0                    0                    
        Max realtime timeout      unlimited            unlimited            us        

        """

    @Test func rowsByName() {
        let limits = SysfsParsers.processLimits(Self.sample)
        #expect(limits["Max open files"]?.soft == 100 && limits["Max open files"]?.hard == 200)
        #expect(limits["Max cpu time"]?.soft == UInt64.max)
        #expect(limits["Max locked memory"]?.hard == 65536)
        #expect(limits["Max nice priority"]?.soft == 0)
        #expect(limits["Limit"] == nil, "the header is not a row")
    }

    @Test func thisProcessAgreesWithGetrlimit() throws {
        guard let data = FileManager.default.contents(atPath: "/proc/self/limits") else { return }
        let limits = SysfsParsers.processLimits(String(decoding: data, as: UTF8.self))
        for (resource, name) in [(RLIMIT_NOFILE, "Max open files"), (RLIMIT_STACK, "Max stack size"),
                                 (RLIMIT_CORE, "Max core file size")] {
            var r = rlimit()
            #expect(getrlimit(__rlimit_resource_t(resource.rawValue), &r) == 0)
            let row = try #require(limits[name], "no row \(name)")
            #expect(row.soft == UInt64(r.rlim_cur), "\(name) soft")   // RLIM_INFINITY is all ones, as "unlimited" parses
            #expect(row.hard == UInt64(r.rlim_max), "\(name) hard")
        }
        #expect(limits.count >= 16, "every row of the kernel's table: \(limits.keys.sorted())")
    }

    @Test(arguments: ["", "\n\n", "Limit\nMax open files\n", "Limit\nMax open files x y\n",
                      "Limit\nMax open files 99999999999999999999999 1\n", "Limit\nMax open files 5\n", "\0\0\0"])
    func hostileTextGivesNoRowRatherThanATrap(_ text: String) {
        #expect(SysfsParsers.processLimits(text)["Max open files"] == nil)
    }
}

@Suite("SysfsParsers.statusField")
struct StatusFieldTests {
    static let status = """
        Name:\tbash
        Cpus_allowed:\t3
        Cpus_allowed_list:\t0-1
        Groups:\t4 24 27 \n\
        Uid:\t1000\t1000\t1000\t1000
        Mems_allowed_list:\t0
        """

    @Test func findsWholeNamesOnly() {
        #expect(SysfsParsers.statusField("Cpus_allowed", in: Self.status) == "3")
        #expect(SysfsParsers.statusField("Cpus_allowed_list", in: Self.status) == "0-1")
        #expect(SysfsParsers.statusField("Cpus", in: Self.status) == nil)
        #expect(SysfsParsers.statusField("Groups", in: Self.status) == "4 24 27")
        #expect(SysfsParsers.statusField("Uid", in: Self.status) == "1000\t1000\t1000\t1000")
        // The last line has no newline.
        #expect(SysfsParsers.statusField("Mems_allowed_list", in: Self.status) == "0")
        #expect(SysfsParsers.statusField("Mems_allowed_list_x", in: Self.status) == nil)
    }

    @Test(arguments: ["", "\n", ":", "Uid", "Uid\n:", "\nUid", "Ui:d: 1"])
    func absentOrCutShort(_ text: String) {
        #expect(SysfsParsers.statusField("Uid", in: text) == nil)
    }

    @Test func emptyValueAndNonASCII() {
        #expect(SysfsParsers.statusField("Groups", in: "Groups:\nUid:\t0") == "")
        #expect(SysfsParsers.statusField("Name", in: "Name:\tcafé ☕\nUid:\t0") == "café ☕")
    }
}
