import Foundation
import NumaPlaceCore
import Testing

extension ExportsTests {
/// The records slurmd accepts. Its rules for one GRES name, as `slurmd -G` 22.05 applies them: several
/// records only when each has `File=` ("gres.conf duplicate records for NAME"), and never some with
/// `File=` and some without. `Tests/cluster/slurmd-check` runs the real slurmd on the same fixtures.
@Suite("Slurm gres.conf records")
struct SlurmGresRecords {
    static func slurmdAccepts(_ lines: [String]) -> Bool {
        let withFile = lines.filter { field("File", of: $0) != nil }.count
        return lines.count <= 1 || withFile == lines.count
    }

    static func count(of line: String) -> Int? {
        if field("File", of: line) != nil { return 1 }
        return field("Count", of: line).flatMap { Int($0) }
    }

    /// Every default export (no pattern) of every kind on every fixture: records slurmd accepts that
    /// count each device once, or a refusal that names devices on more than one core set.
    @Test(.enabled(if: ExportFixtures.available, ExportFixtures.absent), arguments: ExportFixtures.names)
    func defaultExportsAreRecordsSlurmdAccepts(name: String) throws {
        let inventory = try ExportFixtures.inventory(name)
        for kind in DeviceKind.schedulable {
            let export = SlurmGresExport(name: kind.rawValue, kinds: [kind])
            let devices = export.devices(in: inventory)
            do {
                let entries = try export.entries(for: inventory)
                let lines = entries.map(\.line)
                #expect(Self.slurmdAccepts(lines), "\(name) \(kind): \(lines)")
                #expect(entries.flatMap(\.devices) == devices.map(\.address))
                #expect(lines.map { Self.count(of: $0) ?? -1 }.reduce(0, +) == devices.count, "\(lines)")
            } catch {
                guard case .needsFiles(_, let without, let sets) = error else { return }
                #expect(sets.count > 1 && !without.isEmpty, "\(name) \(kind): \(error)")
            }
        }
    }

    /// The VE chassis: the scan found /dev/ve0…7, so each VE gets its own line with its file.
    @Test(.enabled(if: ExportFixtures.available, ExportFixtures.absent))
    func vectorEnginesGetTheirOwnDeviceFiles() throws {
        let inventory = try ExportFixtures.inventory("hwloc-32intel64-2p8co2t+8ve")
        let export = SlurmGresExport(name: "ve", kinds: [.accelerator])
        #expect(try export.entries(for: inventory).map(\.line) == (0..<8).map { "Name=ve File=/dev/ve\($0) Cores=0-7" })
        let text = try export.render(inventory, source: "the VE chassis")
        #expect(text.contains("# File= is each device's own device file"))
        #expect(!text.contains("sysfs does not name"))
    }

    /// Without device files the devices share one Count= line while they share a core set; one device
    /// elsewhere makes a second record slurmd would refuse, so the export refuses instead.
    @Test(.enabled(if: ExportFixtures.available, ExportFixtures.absent))
    func withoutFilesOneCountLineOrARefusal() throws {
        var inventory = try ExportFixtures.inventory("hwloc-32intel64-2p8co2t+8ve")
        for var d in inventory.devices where d.kind == .accelerator {
            d.deviceNodes = []
            inventory.update(d.address, with: d)
        }
        let export = SlurmGresExport(name: "ve", kinds: [.accelerator])
        #expect(try export.entries(for: inventory).map(\.line) == ["Name=ve Count=8 Cores=0-7"])
        #expect(try export.render(inventory, source: "x").contains("# No File=: not every device file is known"))

        var moved = try #require(inventory.devices.last { $0.kind == .accelerator })
        let node1 = try #require(NUMANodeID(rawValue: 1))
        moved.locality = .node(node1, cpuNodes: [node1])
        moved.cpus = inventory.topology.cpus(of: [node1])
        inventory.update(moved.address, with: moved)
        #expect(throws: SlurmGresExport.ExportError.needsFiles(
            name: "ve", withoutFile: inventory.devices.filter { $0.kind == .accelerator }.map(\.address),
            coreSets: ["Cores=0-7", "Cores=8-15"])) { try export.entries(for: inventory) }
        // A pattern gives every device a file: one line each again, on their own cores.
        let lines = try SlurmGresExport(name: "ve", kinds: [.accelerator], filePattern: "/dev/ve{index}")
            .entries(for: inventory).map(\.line)
        #expect(lines.last == "Name=ve File=/dev/ve7 Cores=8-15")
        #expect(Self.slurmdAccepts(lines) && lines.count == 8)
    }

    /// `{index}` counts the devices of each kind: a GPU beside eight VEs is /dev/x0, and so is the first VE.
    @Test(.enabled(if: ExportFixtures.available, ExportFixtures.absent))
    func indexCountsPerKind() throws {
        var inventory = try ExportFixtures.inventory("hwloc-32intel64-2p8co2t+8ve")
        let node0 = try #require(NUMANodeID(rawValue: 0))
        let gpu = Device(address: try PCIAddress(parsing: "0000:00:05.0"), classCode: 0x030200, vendor: 0x10de,
                         deviceID: 0x20b0, kind: .gpu, driver: "nvidia", firmwareNode: node0,
                         locality: .node(node0, cpuNodes: [node0]), cpus: inventory.topology.cpus(of: [node0]),
                         pciePath: [], warnings: [])
        inventory.update(gpu.address, with: gpu)
        let lines = try SlurmGresExport(kinds: [.gpu, .accelerator], filePattern: "/dev/x{index}")
            .entries(for: inventory).map(\.line)
        #expect(lines.compactMap { field("File", of: $0) } == ["/dev/x0"] + (0..<8).map { "/dev/x\($0)" })
    }

    /// Which of a device's nodes Slurm's device constraint needs, by kind; hostile names are never written.
    @Test(arguments: [
        (DeviceKind.gpu, ["/dev/dri/card1", "/dev/dri/renderD129", "/dev/nvidia3"], "/dev/nvidia3"),
        (.gpu, ["/dev/dri/card0", "/dev/dri/renderD128"], "/dev/dri/renderD128"),
        (.gpu, ["/dev/dri/card2"], "/dev/dri/card2"),
        (.gpu, ["/dev/nvidia-caps", "/dev/nvidiactl"], nil),
        (.gpu, [], nil),
        (.accelerator, ["/dev/accel/accel0"], "/dev/accel/accel0"),
        (.accelerator, ["/dev/ve5"], "/dev/ve5"),
        (.accelerator, ["/dev/dri/card1", "/dev/dri/renderD129"], "/dev/dri/renderD129"),
        (.accelerator, ["/dev/mic0"], "/dev/mic0"),
        (.accelerator, ["/dev/ve0 #", "/dev/ve1\n"], nil),
        (.accelerator, ["ve0"], nil),
        (.nic, ["/dev/infiniband/issm0", "/dev/infiniband/umad0", "/dev/infiniband/uverbs0"], "/dev/infiniband/uverbs0"),
        (.nic, ["/dev/infiniband/umad0"], nil),
    ] as [(DeviceKind, [String], String?)])
    func deviceFileByKind(kind: DeviceKind, nodes: [String], expected: String?) throws {
        var d = Device(address: try PCIAddress(parsing: "0000:3b:00.0"), classCode: 0x030200, vendor: 0x10de,
                       deviceID: 0x2330, kind: kind, driver: nil, firmwareNode: nil, locality: .unknown, cpus: [],
                       pciePath: [], warnings: [])
        d.deviceNodes = nodes
        #expect(SlurmGresExport.deviceFile(of: d) == expected)
    }
}
}
