import Testing
@testable import NumaPlaceCore
@testable import NumaPlaceProtocol
import Foundation
import NumaPlaceTestSupport

/// Issue 15: for each GPU and accelerator, the RDMA NICs nearest first, as NCCL ranks PCIe paths.
@Suite("Nearest NICs")
struct NearestNICTests {
    /// Two nodes. Host bridge 0000:00 has root ports 00:01.0 (a switch 01:00.0 with downstream ports
    /// 02:00.0 and 02:01.0) and 00:02.0; host bridge 0000:80 sits on node 0 too, 0000:c0 on node 1.
    static func machine() throws -> SyntheticRoot {
        let m = try SyntheticRoot()
        try m.machine(nodes: [(0, Array(0...3), 1 << 20), (1, Array(4...7), 1 << 20)], remote: 21)
        try m.pciDevice("0000:03:00.0", bridges: ["0000:00:01.0", "0000:01:00.0", "0000:02:00.0"], numaNode: "0")   // the GPU
        let ib = "0x020700"
        try m.pciDevice("0000:04:00.0", bridges: ["0000:00:01.0", "0000:01:00.0", "0000:02:01.0"], classCode: ib, vendor: "0x15b3", numaNode: "0")
        try m.pciDevice("0000:05:00.0", bridges: ["0000:00:02.0"], classCode: ib, vendor: "0x15b3", numaNode: "0")
        try m.pciDevice("0000:81:00.0", bridges: ["0000:80:01.0"], classCode: ib, vendor: "0x15b3", numaNode: "0")
        try m.pciDevice("0000:c1:00.0", bridges: ["0000:c0:01.0"], classCode: ib, vendor: "0x15b3", numaNode: "1")
        return m
    }

    @Test func ranksBySwitchRootPortHostBridgeNodeDistance() throws {
        let inventory = try Self.machine().scan()
        let gpu = try #require(inventory.device(pci("0000:03:00.0")))
        #expect(gpu.kind == .gpu)
        let ranked = inventory.nearestNICs(to: gpu.address)
        #expect(ranked == [pci("0000:04:00.0"), pci("0000:05:00.0"), pci("0000:81:00.0"), pci("0000:c1:00.0")])
        let levels = ranked.compactMap { inventory.device($0) }.map { inventory.proximity(gpu, $0) }
        #expect(levels == [.sameSwitch, .sameHostBridge, .sameNode, .otherNode])
        // A NIC has no nearest NICs; neither does an address that is not managed.
        #expect(inventory.nearestNICs(to: pci("0000:04:00.0")).isEmpty)
        #expect(inventory.nearestNICs(to: pci("0000:ff:00.0")).isEmpty)
    }

    @Test func sameRootPortWithoutASwitch() throws {
        let m = try SyntheticRoot()
        try m.machine(nodes: [(0, Array(0...3), 1 << 20)])
        try m.pciDevice("0000:03:00.0", bridges: ["0000:00:01.0"], classCode: "0x120000", vendor: "0x1da3", numaNode: "0")
        try m.pciDevice("0000:03:00.1", bridges: ["0000:00:01.0"], classCode: "0x020700", vendor: "0x15b3", numaNode: "0")
        let inventory = m.scan()
        let acc = try #require(inventory.device(pci("0000:03:00.0")))
        let nic = try #require(inventory.device(pci("0000:03:00.1")))
        #expect(inventory.proximity(acc, nic) == .sameRootPort)
    }

    /// `hwloc-32intel64-2p8co2t+8ve`: eight Vector Engines behind two PCIe switches, each switch with
    /// one InfiniBand NIC. Each VE names its own switch's NIC first (checked against the sysfs links
    /// directly: the NIC whose path shares the switch's bridges).
    @Test(.enabled(if: FixtureLibrary.isPresent, Comment(rawValue: FixtureLibrary.absentMessage)))
    func eachVectorEngineNamesItsSwitchsNICFirst() throws {
        let root = try FixtureLibrary.root("hwloc-32intel64-2p8co2t+8ve")
        let inventory = SysfsScanner(root: root).scan()
        let accelerators = inventory.devices.filter { $0.kind == .accelerator }
        #expect(accelerators.count == 8)
        func links(_ a: PCIAddress) throws -> [Substring] {
            try root.readLink("sys/bus/pci/devices/\(a)").split(separator: "/").dropLast()
        }
        for acc in accelerators {
            let first = try #require(inventory.nearestNICs(to: acc.address).first)
            let mine = try links(acc.address), its = try links(first)
            // ../../../devices/pciD:B/ROOT-PORT/SWITCH-UPSTREAM/…: sharing the first seven components
            // is sharing the switch.
            #expect(zip(mine, its).prefix { $0 == $1 }.count >= 7, "\(acc.address): \(first)")
        }
        let wire = Manager.Device(accelerators[0], in: inventory)
        #expect(wire.nearestNICs.first == inventory.nearestNICs(to: accelerators[0].address).first?.description)
    }

    /// A reply from a daemon that predates the field still decodes.
    @Test func olderRepliesWithoutTheFieldDecode() throws {
        let json = #"{"address":"0000:3b:00.0","class":"0x030200","vendor":"0x10de","device":"0x2330","kind":"gpu","numaNode":0,"cpus":"0-3","locality":"node","placementNodes":[0],"pciePath":[],"warnings":[]}"#
        let d = try JSONDecoder().decode(Manager.Device.self, from: Data(json.utf8))
        #expect(d.nearestNICs.isEmpty)
    }
}
