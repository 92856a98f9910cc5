import Foundation
import Glibc
import NumaPlaceCore
import NumaPlacePlatform
import NumaPlaceTestSupport
import Testing

extension PlatformTests {
    /// PlacementReader over a synthetic procfs: the same code that reads the live host.
    @Suite struct PlacementReaderTests {
        /// The trees this test wrote, removed with it: a `SyntheticRoot` removes its tree when
        /// released, and a reader holds only the path.
        final class Trees: @unchecked Sendable { var all: [SyntheticRoot] = [] }
        let trees = Trees()

        func root(status: String?, numaMaps: String?) throws -> SysfsRoot {
            let tree = try SyntheticRoot()
            trees.all.append(tree)
            try tree.mkdir("proc/4242")
            if let status { try tree.write("proc/4242/status", status) }
            if let numaMaps { try tree.write("proc/4242/numa_maps", numaMaps) }
            return tree.root
        }

        static let status = "Name:\tworker\nCpus_allowed:\tf0\nCpus_allowed_list:\t4-7\nMems_allowed:\t00000000,00000003\nMems_allowed_list:\t0-1\n"

        @Test("numa_maps policy words become the API's modes", arguments: [
            ("5600 prefer:1 file=/usr/bin/x mapped=2 N1=2\n", "preferred", CPUSet([1]), MemoryPolicyMode?.some(.preferred)),
            ("5600 bind:0-1 anon=1 dirty=1 N0=1\n", "bind", CPUSet([0, 1]), .some(.bind)),
            ("5600 interleave:0-3 file=/x\n", "interleave", CPUSet(0...3), .some(.interleave)),
            ("5600 default file=/x\n", "default", CPUSet(), .some(MemoryPolicyMode.none)),
            ("5600 bind=static:1 file=/x\n", "bind", CPUSet([1]), .some(.bind)),
            ("5600 local file=/x\n", "local", CPUSet(), nil),
            ("5600 prefer (many):0-1 file=/x\n", "preferred", CPUSet([0, 1]), .some(.preferred)),
        ])
        func policies(_ line: String, _ name: String, _ nodes: CPUSet, _ mode: MemoryPolicyMode?) throws {
            let applied = try PlacementReader(root: root(status: Self.status, numaMaps: line)).read(pid: 4242)
            #expect(applied.cpus == CPUSet(4...7))
            #expect(applied.cpusetMems == [0, 1])
            #expect(applied.memoryPolicy == name)
            #expect(applied.memoryNodes == nodes)
            #expect(applied.memoryMode == mode)
        }

        @Test("hostile or missing files are typed errors, never traps")
        func hostile() throws {
            let noMaps = try root(status: Self.status, numaMaps: "")
            #expect(throws: PlacementReadError.self) { try PlacementReader(root: noMaps).read(pid: 4242) }

            let noField = try root(status: "Name:\tx\n", numaMaps: "1 default\n")
            #expect(throws: PlacementReadError.malformed(path: "proc/4242/status", reason: "no Cpus_allowed_list")) {
                try PlacementReader(root: noField).read(pid: 4242)
            }

            let badList = try root(status: "Cpus_allowed_list:\t7-3\n", numaMaps: "1 default\n")
            #expect(throws: PlacementReadError.self) { try PlacementReader(root: badList).read(pid: 4242) }

            let nul = try root(status: "Cpus_allowed_list:\t0\u{0}-3\n", numaMaps: "1 default\n")
            #expect(throws: PlacementReadError.self) { try PlacementReader(root: nul).read(pid: 4242) }

            let gone = try root(status: nil, numaMaps: nil)
            do {
                _ = try PlacementReader(root: gone).read(pid: 4242)
                Issue.record("read a vanished process")
            } catch {
                guard case .unreadable(let e) = error else { Issue.record("\(error)"); return }
                #expect(e.isMissing)
            }
        }

        @Test("the live reader sees this process's own placement")
        func liveSelf() throws {
            let applied = try PlacementReader().read(pid: getpid())
            #expect(applied.cpus == (try Affinity.cpus(of: getpid())))
            #expect(applied.cpusetMems != nil)
        }
    }
}
