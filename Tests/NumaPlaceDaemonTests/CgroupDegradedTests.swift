import Foundation
import Glibc
import NumaPlaceProtocol
import NumaPlaceTestSupport
import Testing

/// On a host without cgroup v2 (this build host is cgroup v1) the daemon places as before and says so:
/// once in GetStatus, and in every Spawn reply's `degraded`; per-worker limits are refused with the
/// reason. The QEMU test bed (Tests/vm) runs the cgroup v2 side.
@Suite struct CgroupDegradedTests {
    static var unified: Bool {
        (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8))?
            .split(separator: "\n").contains { $0.contains(" /sys/fs/cgroup ") && $0.contains(" - cgroup2 ") } ?? false
    }

    @Test(.enabled(if: LiveHost.binaryBuilt, "the numaplaced binary is not built"),
          .enabled(if: !unified, "this host has cgroup v2: the QEMU test bed's checks cover it"),
          .timeLimit(.minutes(2)))
    func v1HostSaysSo() throws {
        let daemon = try LiveDaemon()
        try daemon.start()
        defer { daemon.stop() }
        let c = try daemon.client()

        let status = try c.call("GetStatus")
        let why = try #require(status["workerCgroupsUnavailable"]?.stringValue)
        #expect(why.contains("cgroup v1"), "\(why)")
        #expect(status["workerCgroups"] == nil)
        #expect(status["warnings"]?.arrayValue.contains(.string(why)) == true)

        let w = try c.call("Spawn", ["argv": .array([.string("/bin/true")])])["worker"]
        let degraded = w?["degraded"]?.arrayValue.compactMap(\.stringValue) ?? []
        #expect(degraded.contains { $0.hasPrefix("no cgroup: ") && $0.contains("cgroup v1") }, "\(degraded)")
        #expect(w?["cgroup"] == nil)

        for limit in ["memoryMax", "pidsMax", "cpuWeight"] {
            let refused = try c.failing("Spawn", ["argv": .array([.string("/bin/true")]), limit: .int(1 << 24)])
            #expect(refused.name == "io.numaplaced.Manager.InvalidParameter")
            #expect(refused.parameters["parameter"] == .string(limit))
            #expect(refused.parameters["reason"]?.stringValue?.contains("cgroup v1") == true)
        }
    }
}
