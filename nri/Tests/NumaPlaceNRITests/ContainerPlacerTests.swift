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
    /// A BMC's VGA (ASPEED): a display, which containers are never placed for.
    static let bmc = "0000:02:00.0"

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
        _ = try m.pciDevice(bmc, classCode: "0x030000", vendor: "0x1a03", device: "0x2000", numaNode: "0", localCPUList: "0-7")
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

    /// The host as stat(2) would show it in `specDevicesAreFoundByTheirNumbers`: GPU 0's render node is
    /// 226:128, GPU 1's 226:129, /dev/null 1:3.
    static let hostNodes: [String: DeviceNumber] = [
        "/dev/dri/renderD128": DeviceNumber(type: UInt8(ascii: "c"), major: 226, minor: 128),
        "/dev/dri/renderD129": DeviceNumber(type: UInt8(ascii: "c"), major: 226, minor: 129),
        "/dev/null": DeviceNumber(type: UInt8(ascii: "c"), major: 1, minor: 3),
    ]

    static func specDevice(_ path: String, _ type: String, _ major: Int64, _ minor: Int64) -> Nri_Pkg_Api_V1alpha1_LinuxDevice {
        var d = Nri_Pkg_Api_V1alpha1_LinuxDevice()
        (d.path, d.type, d.major, d.minor) = (path, type, major, minor)
        return d
    }

    /// A device plugin may mount a host node at another path in the container: the numbers decide.
    @Test func specDevicesAreFoundByTheirNumbers() throws {
        func decide(_ devices: [Nri_Pkg_Api_V1alpha1_LinuxDevice]) throws -> ContainerPlacement? {
            var c = M.container()
            c.linux.devices = devices
            return try ContainerPlacer.decide(pod: M.pod(), container: c, inventory: M.inventory(), reserved: CPUSet(),
                                              hostDevice: { Self.hostNodes[$0] })
        }
        // The host's renderD129 (GPU 1) seen in the container as /dev/dri/renderD128: node 1, not 0.
        #expect(try decide([Self.specDevice("/dev/dri/renderD128", "c", 226, 129)])?.cpus == cpuset("8-15"))
        // At any path at all.
        #expect(try decide([Self.specDevice("/dev/accel0", "c", 226, 128)])?.cpus == cpuset("0-7"))
        // The container's /dev/dri/renderD128 is the host's /dev/null: no accelerator, left alone.
        #expect(try decide([Self.specDevice("/dev/dri/renderD128", "c", 1, 3)]) == nil)
        // A block device of the GPU's numbers is not the GPU.
        #expect(try decide([Self.specDevice("/dev/dri/renderD130", "b", 226, 129)]) == nil)
        // Numbers the host has no node of, at the path of an accelerator the host has no node for either
        // (a captured machine): the path decides.
        let captured: DeviceNumberLookup = { _ in nil }
        var c = M.container()
        c.linux.devices = [Self.specDevice("/dev/dri/renderD129", "c", 1, 3)]
        #expect(try ContainerPlacer.decide(pod: M.pod(), container: c, inventory: M.inventory(), reserved: CPUSet(),
                                           hostDevice: captured)?.cpus == cpuset("8-15"))
        // Without numbers (0:0, or a type that has none), the path decides too.
        #expect(try decide([Self.specDevice("/dev/dri/renderD129", "c", 0, 0)])?.cpus == cpuset("8-15"))
        #expect(try decide([Self.specDevice("/dev/dri/renderD129", "p", 226, 128)])?.cpus == cpuset("8-15"))
    }

    /// stat(2) of a real node: /dev/null is the character device 1:3 on every Linux.
    @Test func hostNodeNumbersComeFromStat() {
        #expect(DeviceNumber.ofHostNode("/dev/null") == DeviceNumber(type: UInt8(ascii: "c"), major: 1, minor: 3))
        #expect(DeviceNumber.ofHostNode("/proc/self/status") == nil)
        #expect(DeviceNumber.ofHostNode("/nonexistent/dev/x") == nil)
    }

    /// A device the daemon knows as a display is refused as what it is, not as an unknown name.
    @Test func annotatedDisplayIsRefusedAsADisplay() throws {
        #expect(try M.inventory().device(named: M.bmc)?.kind == .display)
        do {
            _ = try Self.decide(M.container(annotations: [NRIAnnotation.device: M.bmc]))
            Issue.record("a display was placed")
        } catch let error as ContainerPlacementError {
            #expect(error == .notPlaced(name: M.bmc, kind: .display))
            #expect(error.description.contains("is a display"), "\(error)")
        }
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
