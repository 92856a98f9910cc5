import Testing
import NumaPlaceCore
import NumaPlaceTestSupport
@testable import NumaPlaceNRI

func cpuset(_ list: String) -> CPUSet {
    do { return try CPUSet(cpulist: list) } catch { preconditionFailure("test cpulist \(list): \(error)") }
}

/// Two nodes (0: CPUs 0-7, 1: CPUs 8-15, SMT pairs), a GPU on each with its render node, and an NVMe-class
/// function that the classifier leaves unmanaged.
enum TestMachine {
    static let gpu0 = "0000:3b:00.0"
    static let gpu1 = "0000:af:00.0"

    static let scanned = Result { try build() }
    static func inventory() throws -> Inventory { try scanned.get() }

    private static func build() throws -> Inventory {
        let m = try SyntheticRoot()
        try m.machine(nodes: [(0, Array(0...7), 1 << 20), (1, Array(8...15), 1 << 20)], remote: 21)
        let d0 = try m.pciDevice(gpu0, numaNode: "0", localCPUList: "0-7")
        try m.mkdir("\(d0)/drm/renderD128")
        try m.mkdir("\(d0)/drm/card0")
        let d1 = try m.pciDevice(gpu1, numaNode: "1", localCPUList: "8-15")
        try m.mkdir("\(d1)/drm/renderD129")
        return m.scan()
    }

    static func container(_ name: String = "c", id: String? = nil, devices: [String] = [],
                          annotations: [String: String] = [:]) -> NRIContainer {
        var c = NRIContainer()
        c.id = id ?? "id-\(name)"
        c.name = name
        c.podSandboxID = "pod-1"
        c.annotations = annotations
        c.linux.devices = devices.map { path in
            var d = Nri_Pkg_Api_V1alpha1_LinuxDevice()
            d.path = path
            d.type = "c"
            return d
        }
        return c
    }

    static func pod(annotations: [String: String] = [:]) -> NRIPod {
        var p = NRIPod()
        p.id = "pod-1"
        p.name = "trainer"
        p.namespace = "ml"
        p.annotations = annotations
        return p
    }
}

@Suite("Container placement decision")
struct ContainerPlacerTests {
    typealias M = TestMachine

    static func decide(_ container: NRIContainer, pod: NRIPod = M.pod(),
                       reserved: CPUSet = CPUSet()) throws -> ContainerPlacement? {
        try ContainerPlacer.decide(pod: pod, container: container, inventory: M.inventory(), reserved: reserved)
    }

    @Test func machineHasTheRenderNodes() throws {
        let inventory = try M.inventory()
        #expect(inventory.device(named: "/dev/dri/renderD128")?.address.description == M.gpu0)
        #expect(inventory.device(named: "/dev/dri/renderD129")?.address.description == M.gpu1)
    }

    @Test func renderNodeInTheSpecPlacesOnItsNode() throws {
        let p = try #require(try Self.decide(M.container(devices: ["/dev/null", "/dev/dri/renderD129"])))
        #expect(p.cpus == cpuset("8-15"))
        #expect(p.mems == [1])
        #expect(p.devices.map(\.description) == [M.gpu1])
        let adjust = p.adjustment()
        #expect(adjust.linux.resources.cpu.cpus == "8-15")
        #expect(adjust.linux.resources.cpu.mems == "1")
        #expect(adjust.annotations[NRIAnnotation.placement]?.contains("cpus=8-15") == true)
    }

    @Test func noAcceleratorNoAdjustment() throws {
        #expect(try Self.decide(M.container()) == nil)
        #expect(try Self.decide(M.container(devices: ["/dev/null", "/dev/fuse", "/dev/dri/renderD200"])) == nil)
    }

    @Test(arguments: ["0000:3b:00.0", "3b:00.0", "/dev/dri/renderD128", "renderD128", "card0"])
    func annotationNamesTheDeviceAnyWay(name: String) throws {
        let p = try #require(try Self.decide(M.container(annotations: [NRIAnnotation.device: name])))
        #expect(p.cpus == cpuset("0-7"))
        #expect(p.mems == [0])
    }

    @Test func annotationOverridesTheSpec() throws {
        let c = M.container(devices: ["/dev/dri/renderD128"], annotations: [NRIAnnotation.device: "renderD129"])
        #expect(try Self.decide(c)?.cpus == cpuset("8-15"))
    }

    @Test func bothGPUsSpanBothNodes() throws {
        let p = try #require(try Self.decide(M.container(devices: ["/dev/dri/renderD128", "/dev/dri/renderD129"])))
        #expect(p.cpus == cpuset("0-15"))
        #expect(p.mems == [0, 1])
        #expect(!p.degraded.isEmpty)
    }

    @Test func podAnnotationsPerContainerThenForAll() throws {
        let pod = M.pod(annotations: [NRIAnnotation.device: "renderD128",
                                      "\(NRIAnnotation.device).container.worker": "renderD129"])
        #expect(try Self.decide(M.container("worker"), pod: pod)?.cpus == cpuset("8-15"))
        #expect(try Self.decide(M.container("sidecar"), pod: pod)?.cpus == cpuset("0-7"))
    }

    @Test func exclusiveCoresAreWholeCoresAvoidingReservations() throws {
        let c = M.container(devices: ["/dev/dri/renderD128"], annotations: [NRIAnnotation.exclusiveCores: "2"])
        let first = try #require(try Self.decide(c))
        #expect(first.cpus == cpuset("0-3"))
        #expect(first.exclusiveCores == [cpuset("0-1"), cpuset("2-3")])
        let second = try #require(try Self.decide(c, reserved: first.cpus))
        #expect(second.cpus == cpuset("4-7"))
        // A shared container on that node avoids what exclusive ones hold.
        let shared = try #require(try Self.decide(M.container(devices: ["/dev/dri/renderD128"]), reserved: cpuset("0-3")))
        #expect(shared.cpus == cpuset("4-7"))
    }

    @Test func tooFewFreeCoresDegradesInsteadOfFailing() throws {
        let c = M.container(devices: ["/dev/dri/renderD128"], annotations: [NRIAnnotation.exclusiveCores: "3"])
        let p = try #require(try Self.decide(c, reserved: cpuset("0-5")))
        #expect(p.cpus == cpuset("6-7"))
        #expect(p.degraded.contains { $0.contains("1 of 3") })
    }

    @Test(arguments: ["-1", "two", "1.5", "", "99999999999999999999", "4097"])
    func badExclusiveCountIsRefused(value: String) throws {
        let c = M.container(devices: ["/dev/dri/renderD128"], annotations: [NRIAnnotation.exclusiveCores: value])
        #expect(throws: ContainerPlacementError.self) { try Self.decide(c) }
    }

    @Test(arguments: ["renderD999", "0000:00:00.0", ",", "nvme0"])
    func unknownAnnotatedDeviceIsRefused(name: String) throws {
        #expect(throws: ContainerPlacementError.self) {
            try Self.decide(M.container(annotations: [NRIAnnotation.device: name]))
        }
    }
}

/// Every accelerator with a device file on the real-machine fixtures: a container holding that file gets
/// the device's CPUs (all of them: nothing is reserved) and the memory of its placement nodes.
@Suite("Container placement on fixtures")
struct ContainerPlacerFixtureTests {
    @Test(.enabled(if: FixtureLibrary.isPresent, Comment(rawValue: FixtureLibrary.absentMessage)),
          arguments: FixtureLibrary.names)
    func deviceFilesPlaceOnTheirDevice(fixture: String) throws {
        let inventory = SysfsScanner(root: try FixtureLibrary.root(fixture)).scan()
        let topology = inventory.topology
        for device in inventory.devices where ContainerPlacer.placedKinds.contains(device.kind) && device.locality != .unknown {
            for path in device.deviceNodes where inventory.device(named: path)?.address == device.address {
                let c = TestMachine.container(devices: [path])
                let p = try #require(try ContainerPlacer.decide(pod: NRIPod(), container: c, inventory: inventory,
                                                                reserved: CPUSet()), "\(fixture) \(path)")
                #expect(p.cpus == device.cpus.intersection(topology.onlineCPUs), "\(fixture) \(path)")
                let memory = Set(topology.nodes.filter(\.hasMemory).map(\.id))
                #expect(p.mems == CPUSet(device.placementNodes(in: topology).filter(memory.contains).map(\.rawValue)),
                        "\(fixture) \(path)")
            }
        }
    }
}
