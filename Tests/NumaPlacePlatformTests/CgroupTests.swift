import Foundation
import Glibc
import NumaPlaceCore
@testable import NumaPlacePlatform
import NumaPlaceTestSupport
import Testing
import CNumaPlaceShim

extension PlatformTests {
    /// The cgroup v2 interface against synthetic trees (the kernel's file names, hostile contents) and
    /// the live host, which is cgroup v1 here: there the answer must be "cgroup v1", never a group.
    @Suite struct CgroupTests {
        static let unifiedMountinfo = "24 1 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw\n"
        static let v1Mountinfo = """
            25 1 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
            26 25 0:24 / /sys/fs/cgroup/cpuset rw,nosuid shared:10 - cgroup cgroup rw,cpuset

            """

        /// A unified hierarchy with the daemon in `service`, its controllers available.
        static func tree(own: String = "system.slice/numaplaced.service", mountinfo: String = unifiedMountinfo) throws -> SyntheticRoot {
            let m = try SyntheticRoot()
            try m.write("proc/self/mountinfo", mountinfo)
            try m.write("proc/self/cgroup", "0::/\(own)\n")
            let dir = "sys/fs/cgroup/\(own)"
            try m.write("\(dir)/cgroup.controllers", "cpuset cpu io memory pids\n")
            try m.write("\(dir)/cgroup.subtree_control", "")
            try m.write("\(dir)/cgroup.procs", "4242\n")
            return m
        }

        @Test("own group from /proc/self/cgroup", arguments: [
            ("0::/system.slice/numaplaced.service\n", "system.slice/numaplaced.service"),
            ("0::/\n", ""),
            ("12:cpuset:/\n1:name=systemd:/x\n0::/a/b/\n", "a/b"),
            ("12:cpuset:/\n1:name=systemd:/x\n", nil),
            ("", nil),
            ("0::/../outside\n", nil),
            ("0::relative\n", nil),
            ("0::/gone (deleted)\n", nil),
            ("0::/a\0b\n", nil),
        ] as [(String, String?)])
        func ownGroup(text: String, expected: String?) {
            #expect(CgroupFiles.parseOwnGroup(text) == expected)
        }

        @Test("hostile values", arguments: ["", "-1\n", " 3 x", "1e9", "max max", "\0", "18446744073709551616"])
        func hostileValue(text: String) {
            #expect(throws: CgroupError.self) { try CgroupFiles.parseValue(text, path: "memory.max") }
        }

        @Test("values, keyed files, pids")
        func parsers() throws {
            #expect(try CgroupFiles.parseValue("max\n", path: "x") == nil)
            #expect(try CgroupFiles.parseValue("1048576\n", path: "x") == 1_048_576)
            let keyed = CgroupFiles.parseKeyed("usage_usec 1234\nuser_usec x\nbroken\nsystem_usec  56 7\noom_kill 2\n")
            #expect(keyed == ["usage_usec": 1234, "oom_kill": 2])
            #expect(try CgroupFiles.parsePids("1\n22\n", path: "p") == [1, 22])
            #expect(throws: CgroupError.self) { try CgroupFiles.parsePids("1\nzz\n", path: "p") }
            #expect(throws: CgroupError.self) { try CgroupFiles.parsePids("0\n", path: "p") }
            #expect(CgroupFiles.parseMountType(Self.unifiedMountinfo, mountPoint: "/sys/fs/cgroup") == "cgroup2")
            #expect(CgroupFiles.parseMountType(Self.v1Mountinfo, mountPoint: "/sys/fs/cgroup") == "tmpfs")
            #expect(CgroupFiles.parseMountType("garbage\n\n- -\n", mountPoint: "/sys/fs/cgroup") == nil)
        }

        @Test("group names an operator recognises, and only those are taken for workers'")
        func names() {
            #expect(CgroupSubtree.groupName(id: "w12", argv0: "/usr/bin/python3.11") == "w12-python3_11")
            #expect(CgroupSubtree.groupName(id: "w3", argv0: "../../etc/x y") == "w3-x_y")
            #expect(CgroupSubtree.groupName(id: "w4", argv0: "/") == "w4")
            #expect(CgroupSubtree.groupName(id: "w5", argv0: String(repeating: "é", count: 40)).count == 3 + 24)
            for name in ["w1", "w12-sleep", "w7-"] { #expect(CgroupSubtree.isWorkerGroupName(name)) }
            for name in ["daemon", "w", "wx-1", "cgroup.procs", "x12", "w1x"] { #expect(!CgroupSubtree.isWorkerGroupName(name)) }
        }

        @Test("cgroup v1 and a hybrid layout are refused as cgroup v1")
        func v1() throws {
            let m = try Self.tree(mountinfo: Self.v1Mountinfo)
            #expect {
                _ = try CgroupSubtree.detect(root: m.root, underSystemd: false)
            } throws: { ($0 as? CgroupError)?.code == .notUnified && "\($0)".hasPrefix("cgroup v1") }
            let none = try Self.tree(mountinfo: "")
            #expect(throws: CgroupError.self) { _ = try CgroupSubtree.detect(root: none.root, underSystemd: false) }
        }

        @Test("without systemd the daemon's group is its own; under systemd only with delegation")
        func delegation() throws {
            let m = try Self.tree()
            let s = try CgroupSubtree.detect(root: m.root, underSystemd: false)
            #expect(s.base == "system.slice/numaplaced.service")
            #expect(s.daemonGroup == "system.slice/numaplaced.service/daemon")
            #expect {
                _ = try CgroupSubtree.detect(root: m.root, underSystemd: true)
            } throws: { ($0 as? CgroupError)?.code == .notDelegated && "\($0)".contains("Delegate=yes") }

            // systemd's mark of a delegated group (user.delegate where trusted.* needs privileges).
            let dir = m.path + "/sys/fs/cgroup/system.slice/numaplaced.service"
            if case .success = runTool(["/usr/bin/python3", "-c", "import os,sys; os.setxattr(sys.argv[1], 'user.delegate', b'1')", dir]) {
                // Delegated, but the daemon in the service's group itself: no leaf for it (systemd < 254).
                #expect {
                    _ = try CgroupSubtree.detect(root: m.root, underSystemd: true)
                } throws: { ($0 as? CgroupError)?.code == .notDelegated && "\($0)".contains("DelegateSubgroup=daemon") }
                let inLeaf = try Self.tree(own: "system.slice/numaplaced.service/daemon")
                try inLeaf.write("sys/fs/cgroup/system.slice/numaplaced.service/cgroup.controllers", "cpuset memory\n")
                try inLeaf.write("sys/fs/cgroup/system.slice/numaplaced.service/cgroup.subtree_control", "")
                _ = runTool(["/usr/bin/python3", "-c", "import os,sys; os.setxattr(sys.argv[1], 'user.delegate', b'1')",
                             inLeaf.path + "/sys/fs/cgroup/system.slice/numaplaced.service"])
                let d = try CgroupSubtree.detect(root: inLeaf.root, underSystemd: true)
                #expect(d.base == "system.slice/numaplaced.service" && d.daemonGroup == "system.slice/numaplaced.service/daemon")
            }

            // Started in the leaf already (DelegateSubgroup=daemon, or a previous instance's move).
            let leaf = try Self.tree(own: "svc/daemon")
            try leaf.write("sys/fs/cgroup/svc/cgroup.controllers", "cpuset memory\n")
            try leaf.write("sys/fs/cgroup/svc/cgroup.subtree_control", "")
            let l = try CgroupSubtree.detect(root: leaf.root, underSystemd: false)
            #expect(l.base == "svc" && l.daemonGroup == "svc/daemon")

            // The root group: workers go under a group of the daemon's own.
            let root = try Self.tree(own: "")
            let r = try CgroupSubtree.detect(root: root.root, underSystemd: false)
            #expect(r.base == "numaplaced" && r.daemonGroup == "")
        }

        @Test("no cpuset controller: refused, naming it")
        func noCpuset() throws {
            let m = try Self.tree()
            try m.write("sys/fs/cgroup/system.slice/numaplaced.service/cgroup.controllers", "memory pids\n")
            #expect {
                _ = try CgroupSubtree.detect(root: m.root, underSystemd: false)
            } throws: { ($0 as? CgroupError)?.code == .controllerMissing && "\($0)".contains("cpuset") }
        }

        @Test("prepare moves the daemon into its leaf and enables the controllers")
        func prepare() throws {
            let m = try Self.tree()
            let base = "sys/fs/cgroup/system.slice/numaplaced.service"
            try m.write("\(base)/daemon/cgroup.procs", "")
            var s = try CgroupSubtree.detect(root: m.root, underSystemd: false)
            try s.prepare()
            #expect(s.controllers == ["cpuset", "memory", "pids", "cpu"])
            #expect(try m.root.read("\(base)/daemon/cgroup.procs") == "4242")
        }

        @Test("placement, limits and usage files; hostile usage reads as absent")
        func groupFiles() throws {
            let m = try Self.tree()
            let g = "sys/fs/cgroup/svc/w1-sleep"
            for f in ["cpuset.cpus", "cpuset.mems", "memory.max", "pids.max", "cpu.weight"] { try m.write("\(g)/\(f)", "") }
            let group = WorkerCgroup(files: CgroupFiles(root: m.root), path: "svc/w1-sleep")
            try group.configure(cpus: CPUSet([4, 5, 6, 7]), memoryNodes: [1], limits: CgroupLimits(memoryMax: 1 << 26, pidsMax: 64, cpuWeight: 50),
                                controllers: ["cpuset", "memory", "pids", "cpu"])
            #expect(try m.root.read("\(g)/cpuset.cpus") == "4-7")
            #expect(try m.root.read("\(g)/cpuset.mems") == "1")
            #expect(try m.root.read("\(g)/memory.max") == "67108864")
            #expect(group.hierarchyPath == "/svc/w1-sleep")
            #expect {
                try group.configure(cpus: CPUSet(), memoryNodes: [], limits: CgroupLimits(pidsMax: 3), controllers: ["cpuset"])
            } throws: { ($0 as? CgroupError)?.code == .controllerMissing }

            try m.write("\(g)/cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n")
            try m.write("\(g)/memory.current", "8192\n")
            try m.write("\(g)/memory.peak", "-5\n")
            try m.write("\(g)/pids.current", "max\n")
            try m.write("\(g)/memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
            let u = group.usage()
            #expect(u == CgroupUsage(cpuUsec: 1500, memoryCurrent: 8192, memoryPeak: nil, pids: nil, oomKills: 1))
        }

        @Test("a group that cannot be configured is removed again")
        func makeGroupCleansUp() throws {
            let m = try Self.tree()
            var s = try CgroupSubtree.detect(root: m.root, underSystemd: false)
            try m.write("sys/fs/cgroup/system.slice/numaplaced.service/daemon/cgroup.procs", "")
            try s.prepare()
            // In a synthetic tree mkdir makes no interface files, so the first write fails.
            #expect(throws: CgroupError.self) {
                _ = try s.makeGroup(named: "w1-x", cpus: CPUSet([0]), memoryNodes: [0], limits: CgroupLimits())
            }
            #expect(!m.root.exists("sys/fs/cgroup/system.slice/numaplaced.service/w1-x"))
        }

        @Test("stale groups: empty worker groups go, busy and foreign ones stay")
        func stale() throws {
            let m = try Self.tree()
            let base = "sys/fs/cgroup/system.slice/numaplaced.service"
            try m.mkdir("\(base)/w1-gone")
            try m.write("\(base)/w2-alive/cgroup.procs", "77\n")
            try m.write("\(base)/w3-kept/cgroup.procs", "")
            try m.mkdir("\(base)/daemon")
            try m.mkdir("\(base)/someone-else")
            let s = try CgroupSubtree.detect(root: m.root, underSystemd: false)
            #expect(s.workerGroups() == ["w1-gone", "w2-alive", "w3-kept"])
            let (removed, busy) = s.removeStale(keeping: ["w3-kept"])
            #expect(removed == ["w1-gone"])
            #expect(busy == ["w2-alive"])
            #expect(m.root.exists("\(base)/daemon") && m.root.exists("\(base)/someone-else"))
        }

        @Test("the live host: a cgroup v1 host is named as such, never given groups")
        func liveHost() {
            let unified = np_fs_type("/sys/fs/cgroup") == CgroupSubtree.cgroup2Magic
            do {
                _ = try CgroupSubtree.detect(root: SysfsRoot("/"), underSystemd: access("/run/systemd/system", F_OK) == 0)
                #expect(unified)
            } catch {
                if !unified { #expect(error.code == .notUnified && error.description.hasPrefix("cgroup v1")) }
            }
        }
    }
}
