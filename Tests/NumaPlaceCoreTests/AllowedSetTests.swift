import Testing
@testable import NumaPlaceCore
import NumaPlaceTestSupport

/// DESIGN.md's "saved original": the cgroup's effective cpuset, read through the root.
@Suite("AllowedSet")
struct AllowedSetTests {
    /// Two nodes, 0 (CPUs 0-3) and 1 (CPUs 4-7), both with memory.
    static func machine() throws -> SyntheticRoot {
        let m = try SyntheticRoot()
        try m.machine(nodes: [(0, Array(0...3), 1 << 20), (1, Array(4...7), 1 << 20)])
        return m
    }

    static func read(_ m: SyntheticRoot) -> (AllowedSet, [ScanWarning]) {
        var warnings: [ScanWarning] = []
        let topology = SysfsScanner(root: m.root).scanTopology(warnings: &warnings)
        warnings = []
        let allowed = AllowedSet.read(root: m.root, topology: topology, warnings: &warnings)
        return (allowed, warnings)
    }

    @Test func noCgroupFileFallsBackToOnline() throws {
        let m = try Self.machine()
        let (allowed, warnings) = Self.read(m)
        #expect(allowed == AllowedSet(cpus: cpuset("0-7"), mems: cpuset("0-1"), source: "online"))
        #expect(warnings.isEmpty)
    }

    @Test func cgroupV2Narrows() throws {
        let m = try Self.machine()
        try m.cgroupV2(path: "/system.slice/numaplaced.service", cpus: "2-5", mems: "0")
        let (allowed, warnings) = Self.read(m)
        #expect(allowed == AllowedSet(cpus: cpuset("2-5"), mems: [0], source: "cgroup2:/system.slice/numaplaced.service"))
        #expect(warnings.isEmpty)
    }

    @Test func cgroupV1Narrows() throws {
        let m = try Self.machine()
        try m.cgroupV1(path: "/numaplaced", cpus: "4-7", mems: "1")
        let (allowed, warnings) = Self.read(m)
        #expect(allowed == AllowedSet(cpus: cpuset("4-7"), mems: [1], source: "cgroup1:/numaplaced"))
        #expect(warnings.isEmpty)
    }

    /// Kernels before 4.x have no effective_* files in cgroup v1: the configured ones are read.
    @Test func cgroupV1WithoutEffectiveFiles() throws {
        let m = try Self.machine()
        try m.cgroupV1(path: "/", cpus: nil, mems: nil)
        try m.write("sys/fs/cgroup/cpuset/cpuset.cpus", "0-1\n")
        try m.write("sys/fs/cgroup/cpuset/cpuset.mems", "0\n")
        let (allowed, _) = Self.read(m)
        #expect(allowed == AllowedSet(cpus: cpuset("0-1"), mems: [0], source: "cgroup1:/"))
    }

    /// A v2 group whose parent does not delegate cpuset has no cpuset files: it runs on its nearest
    /// ancestor's effective set, not on every online CPU.
    @Test func cgroupV2LeafWithoutCpusetTakesAncestor() throws {
        let m = try Self.machine()
        try m.cgroupV2(path: "/machine.slice", cpus: "6-7", mems: "1")
        try m.write("proc/self/cgroup", "0::/machine.slice/worker.scope/inner\n")
        try m.mkdir("sys/fs/cgroup/machine.slice/worker.scope/inner")
        let (allowed, warnings) = Self.read(m)
        #expect(allowed.cpus == cpuset("6-7"))
        #expect(allowed.mems == [1])
        #expect(allowed.source == "cgroup2:/machine.slice/worker.scope/inner")
        #expect(warnings.isEmpty)
    }

    /// Inside a cgroup namespace the path can name a group that is not mounted here: the root of the
    /// mount is the group.
    @Test func cgroupV2PathOutsideTheMount() throws {
        let m = try Self.machine()
        try m.cgroupV2(path: "/", cpus: "1-2", mems: "0-1")
        try m.write("proc/self/cgroup", "0::/kubepods/pod1234/container\n")
        let (allowed, _) = Self.read(m)
        #expect(allowed.cpus == cpuset("1-2"))
    }

    @Test func offlineCPUsAreDropped() throws {
        let m = try Self.machine()
        try m.cgroupV2(path: "/a", cpus: "0-3,100-200", mems: "0")
        let (allowed, warnings) = Self.read(m)
        #expect(allowed.cpus == cpuset("0-3"))
        #expect(warnings.isEmpty)
    }

    @Test func noOnlineCPUAllowedIsAConflict() throws {
        let m = try Self.machine()
        try m.cgroupV2(path: "/a", cpus: "100-200", mems: "0")
        let (allowed, warnings) = Self.read(m)
        #expect(allowed.source == "online")
        #expect(allowed.cpus == cpuset("0-7"))
        #expect(warnings.map(\.code) == [.conflict])
    }

    @Test(arguments: [
        ("garbage", ScanWarning.Code.malformed), ("3-1", .malformed), ("0-3\0", .malformed), ("0-99999999", .outOfRange),
    ])
    func malformedCPUsFileIsAWarning(text: String, code: ScanWarning.Code) throws {
        let m = try Self.machine()
        try m.cgroupV2(path: "/a", cpus: text, mems: "0")
        let (allowed, warnings) = Self.read(m)
        #expect(allowed.source == "online")
        #expect(allowed.cpus == cpuset("0-7"))
        #expect(warnings.map(\.code) == [code])
        #expect(warnings.first?.path == "sys/fs/cgroup/a/cpuset.cpus.effective")
    }

    @Test func malformedMemsFileIsAWarning() throws {
        let m = try Self.machine()
        try m.cgroupV2(path: "/a", cpus: "0-1", mems: "x")
        let (allowed, warnings) = Self.read(m)
        #expect(allowed.cpus == cpuset("0-1"))
        #expect(allowed.mems == cpuset("0-1"), "falls back to the nodes with memory")
        #expect(warnings.map(\.code) == [.malformed])
        #expect(warnings.first?.path == "sys/fs/cgroup/a/cpuset.mems.effective")
    }

    @Test(arguments: ["", "garbage\n", "\0\0\0", "3:cpuset\n", "0::relative\n", "0::/../../etc\n", "x::/a\n"])
    func hostileCgroupFileFallsBack(text: String) throws {
        let m = try Self.machine()
        try m.cgroupV2(path: "/a", cpus: "0", mems: "0")
        try m.write("proc/self/cgroup", text)
        let (allowed, _) = Self.read(m)
        #expect(allowed.source == "online")
        #expect(allowed.cpus == cpuset("0-7"))
    }

    /// Memory nodes fall back to the nodes with memory, or every node when none reports memory.
    @Test func memsFallback() throws {
        let m = try SyntheticRoot()
        try m.machine(nodes: [(0, Array(0...1), 1 << 20), (1, Array(2...3), 0), (4, Array(4...5), 1 << 20)])
        #expect(Self.read(m).0.mems == [0, 4])
        let bare = try SyntheticRoot()
        try bare.machine(nodes: [(0, Array(0...1), 0), (1, Array(2...3), 0)])
        #expect(Self.read(bare).0.mems == [0, 1])
    }
}
