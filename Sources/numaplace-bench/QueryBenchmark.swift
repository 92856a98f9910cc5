import ArgumentParser
import Foundation
import Glibc
import NumaPlaceCore
import NumaPlacePlatform
import NumaPlaceProtocol

/// `numaplace-bench query`: GetTopology and ListDevices latency over the socket of a daemon serving
/// a captured machine (`numaplaced --sysfs-root DIR`), against hwloc answering the same question for
/// the same root (`HWLOC_FSROOT=DIR`): `lstopo-no-graphics --of xml -` for the whole model,
/// `hwloc-calc -I numa --physical-output pci=ADDR` for the node of one managed device.
///
/// The daemon keeps its model in memory; hwloc, as a command, starts a process and reads the tree
/// each time. That is the comparison a user makes (ask the daemon, or run the tool), not two
/// parsers side by side.
struct QueryBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "query",
        abstract: "GetTopology and ListDevices latency over the socket vs hwloc on the same sysfs root."
    )

    @Option(help: "The daemon's socket.") var socket: String
    @Option(help: "The sysfs root the daemon serves (for hwloc's HWLOC_FSROOT); omit to skip hwloc.") var root: String?
    @Option(help: "A label for the root in the report.") var label: String = "root"
    @Option(help: "Samples per daemon query.") var iterations: Int = 2000
    @Option(help: "Samples per hwloc command.") var hwlocIterations: Int = 100
    @Option(help: "p99 target for ListDevices, µs (0: none; issue 7).") var targetP99: Double = 200
    @Option(help: "p99 target for GetTopology, µs (0: none; issue 17).") var topologyTargetP99: Double = 60
    @Option(help: "Also compare each daemon figure with the same one of an earlier run on this label.") var compareLabel: String?

    func run() throws {
        let client = try VarlinkClient(path: socket)
        let devices = try client.call("io.numaplaced.Manager.ListDevices", Manager.ListDevicesParameters(),
                                      as: Manager.ListDevicesReply.self).devices
        let topology = try client.call("io.numaplaced.Manager.GetTopology", Empty(), as: Manager.GetTopologyReply.self)
        let firstNode = topology.nodes.first?.id ?? 0

        func measure(_ n: Int, _ body: () throws -> Void) rethrows -> Bench.Summary {
            for _ in 0..<min(100, n) { try body() }
            var xs: [Double] = []
            xs.reserveCapacity(n)
            for _ in 0..<n {
                let t = Bench.now()
                try body()
                xs.append(Bench.now() - t)
            }
            return Bench.Summary(xs)
        }
        // Each query twice: until the whole reply has arrived (the daemon's latency), and decoded into
        // the wire types as a Swift client would (Foundation's JSONDecoder: the client's cost).
        func raw<P: Encodable>(_ method: String, _ p: P) throws {
            try client.sendCall("io.numaplaced.Manager." + method, p)
            _ = try client.receiveRaw()
        }
        let getTopologyRaw = try measure(iterations) { try raw("GetTopology", Empty()) }
        let getTopology = try measure(iterations / 4) {
            _ = try client.call("io.numaplaced.Manager.GetTopology", Empty(), as: Manager.GetTopologyReply.self)
        }
        let listDevicesRaw = try measure(iterations) { try raw("ListDevices", Manager.ListDevicesParameters()) }
        let listDevices = try measure(iterations / 4) {
            _ = try client.call("io.numaplaced.Manager.ListDevices", Manager.ListDevicesParameters(),
                                as: Manager.ListDevicesReply.self)
        }
        let listByNode = try measure(iterations) { try raw("ListDevices", Manager.ListDevicesParameters(node: firstNode)) }
        // What numaplacectl does: connect, one call, close.
        let fresh = try measure(iterations / 4) {
            let c = try VarlinkClient(path: socket)
            try c.sendCall("io.numaplaced.Manager.ListDevices", Manager.ListDevicesParameters())
            _ = try c.receiveRaw()
        }

        let b = "Queries on \(label): \(topology.nodes.count) nodes, \(topology.onlineCPUs) online CPUs, \(devices.count) managed devices"
        print(b)
        var lstopoName: String? = nil, calcName: String? = nil
        if let root, let lstopo = Bench.which("lstopo-no-graphics"), let calc = Bench.which("hwloc-calc") {
            let env = Bench.environment(adding: ["HWLOC_FSROOT=\(root)"])
            let xml = Bench.CArgv([lstopo, "--of", "xml", "-"])
            let s = try measure(hwlocIterations) { try Bench.posixSpawnAndWait(xml, environment: env, quiet: true) }
            lstopoName = "HWLOC_FSROOT lstopo-no-graphics --of xml - (whole topology)"
            Bench.emit(b, lstopoName!, seconds: s)
            if let first = devices.first {
                let q = Bench.CArgv([calc, "-I", "numa", "--physical-output", "pci=\(first.address)"])
                let s = try measure(hwlocIterations) { try Bench.posixSpawnAndWait(q, environment: env, quiet: true) }
                calcName = "HWLOC_FSROOT hwloc-calc -I numa pci=\(first.address) (one device's node)"
                Bench.emit(b, calcName!, seconds: s)
            }
        }
        let target: Double? = targetP99 > 0 ? targetP99 : nil
        let topologyTarget: Double? = topologyTargetP99 > 0 ? topologyTargetP99 : nil
        func anchors(_ hwloc: String?, _ name: String) -> [Bench.Anchor] {
            (hwloc.map { [Bench.Anchor(figure: $0)] } ?? [])
                + (compareLabel.map { [Bench.Anchor(figure: name, benchmark: "Queries on \($0):")] } ?? [])
        }
        Bench.emit(b, "GetTopology (reply received)", seconds: getTopologyRaw,
                   anchors: anchors(lstopoName, "GetTopology (reply received)"), targetMax: topologyTarget,
                   targetOn: topologyTarget == nil ? nil : "p99")
        Bench.emit(b, "GetTopology (reply decoded by the client)", seconds: getTopology,
                   anchors: anchors(lstopoName, "GetTopology (reply decoded by the client)"))
        Bench.emit(b, "ListDevices (all; reply received)", seconds: listDevicesRaw,
                   anchors: anchors(calcName, "ListDevices (all; reply received)"), targetMax: target, targetOn: target == nil ? nil : "p99")
        Bench.emit(b, "ListDevices (all; reply decoded by the client)", seconds: listDevices,
                   anchors: anchors(calcName, "ListDevices (all; reply decoded by the client)"))
        Bench.emit(b, "ListDevices(node: first node; reply received)", seconds: listByNode,
                   anchors: anchors(calcName, "ListDevices(node: first node; reply received)"), targetMax: target, targetOn: target == nil ? nil : "p99")
        Bench.emit(b, "connect + ListDevices + close (as numaplacectl)", seconds: fresh,
                   anchors: anchors(calcName, "connect + ListDevices + close (as numaplacectl)"))
    }
}

/// `numaplace-bench scan`: the in-process cost of reading a whole sysfs root (`SysfsScanner.scan`),
/// what the daemon pays at start-up and on a full rescan (SIGHUP, CPU or node hotplug).
struct ScanBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "scan", abstract: "Time SysfsScanner.scan() of a root.")

    @Option(help: "The sysfs root.") var root: String
    @Option(help: "A label for the root in the report.") var label: String = "root"
    @Option(help: "Samples.") var iterations: Int = 50
    @Option(help: "Median target, ms (omit for none).") var targetMedianMs: Double?
    @Option(help: "Also compare with the scan of an earlier run on this label.") var compareLabel: String?

    func run() throws {
        let scanner = SysfsScanner(root: SysfsRoot(root))
        var inventory = scanner.scan()
        var xs: [Double] = []
        for _ in 0..<iterations {
            let t = Bench.now()
            inventory = scanner.scan()
            xs.append(Bench.now() - t)
        }
        let t = inventory.topology
        let b = "Scan of \(label): \(t.nodes.count) nodes, \(t.onlineCPUs.count) CPUs, \(inventory.devices.count) managed devices"
        print(b)
        Bench.emit(b, "SysfsScanner.scan()", seconds: Bench.Summary(xs), unit: "ms",
                   anchors: compareLabel.map { [Bench.Anchor(figure: "SysfsScanner.scan()", benchmark: "Scan of \($0):")] } ?? [],
                   targetMax: targetMedianMs, targetOn: targetMedianMs == nil ? nil : "median",
                   note: "\(t.nodes.count) nodes, \(t.onlineCPUs.count) CPUs, \(inventory.devices.count) managed devices, \(inventory.allWarnings.count) warnings")
    }
}

/// `numaplace-bench synthetic-root DIR`: writes a machine that exists on paper only, laid out as the
/// kernel lays out sysfs: N nodes of C CPUs (two SMT threads per core), SLIT distances 10 / 12 within
/// a package of 4 nodes / 32 across, one PCIe root port per node and A accelerators spread over the
/// nodes (class 0x120000, processing accelerator, behind the node's root port), plus the procfs and
/// cgroup files the daemon reads for its saved original.
struct SyntheticRootCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "synthetic-root",
                                                    abstract: "Write a synthetic sysfs root (default: 64 nodes, 1024 CPUs, 128 accelerators).")

    @Argument(help: "The directory to create.") var directory: String
    @Option var nodes: Int = 64
    @Option var cpusPerNode: Int = 16
    @Option var accelerators: Int = 128

    func run() throws {
        let fm = FileManager.default
        func write(_ rel: String, _ text: String) throws {
            let path = directory + "/" + rel
            try fm.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        }
        func link(_ rel: String, _ target: String) throws {
            let path = directory + "/" + rel
            try fm.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try? fm.removeItem(atPath: path)
            try fm.createSymbolicLink(atPath: path, withDestinationPath: target)
        }
        let cpus = nodes * cpusPerNode
        try write("sys/devices/system/cpu/online", "0-\(cpus - 1)\n")
        try write("sys/devices/system/cpu/possible", "0-\(cpus - 1)\n")
        try write("sys/devices/system/node/online", "0-\(nodes - 1)\n")
        try write("sys/devices/system/node/possible", "0-\(nodes - 1)\n")
        try write("sys/devices/system/node/has_cpu", "0-\(nodes - 1)\n")
        for n in 0..<nodes {
            let first = n * cpusPerNode, last = first + cpusPerNode - 1
            let dir = "sys/devices/system/node/node\(n)"
            try write("\(dir)/cpulist", "\(first)-\(last)\n")
            try write("\(dir)/cpumap", CPUSet(first...last).hexMask + "\n")
            let kb = 64 * 1024 * 1024
            try write("\(dir)/meminfo", "Node \(n) MemTotal:       \(kb) kB\nNode \(n) MemFree:        \(kb / 2) kB\n")
            let row = (0..<nodes).map { m in m == n ? "10" : (m / 4 == n / 4 ? "12" : "32") }.joined(separator: " ")
            try write("\(dir)/distance", row + "\n")
            for cpu in stride(from: first, through: last, by: 2) {
                for c in [cpu, cpu + 1] {
                    try write("sys/devices/system/cpu/cpu\(c)/topology/thread_siblings_list", "\(cpu)-\(cpu + 1)\n")
                    try write("sys/devices/system/cpu/cpu\(c)/topology/core_cpus_list", "\(cpu)-\(cpu + 1)\n")
                    try write("sys/devices/system/cpu/cpu\(c)/topology/physical_package_id", "\(n / 4)\n")
                    try write("sys/devices/system/cpu/cpu\(c)/topology/core_id", "\((cpu % (cpusPerNode * 4)) / 2)\n")
                    let packageFirst = (n / 4) * 4 * cpusPerNode
                    let packageLast = min(cpus, packageFirst + 4 * cpusPerNode) - 1
                    try write("sys/devices/system/cpu/cpu\(c)/topology/core_siblings_list", "\(packageFirst)-\(packageLast)\n")
                    // The mask forms too: hwloc finds the topology directory by them.
                    let thread = CPUSet([cpu, cpu + 1]).hexMask, package = CPUSet(packageFirst...packageLast).hexMask
                    try write("sys/devices/system/cpu/cpu\(c)/topology/thread_siblings", thread + "\n")
                    try write("sys/devices/system/cpu/cpu\(c)/topology/core_cpus", thread + "\n")
                    try write("sys/devices/system/cpu/cpu\(c)/topology/core_siblings", package + "\n")
                    try write("sys/devices/system/cpu/cpu\(c)/topology/package_cpus", package + "\n")
                }
            }
        }
        func pciFiles(_ dir: String, cls: String, vendor: String, device: String, node: Int, cpuList: String,
                      secondaryBus: Int? = nil) throws {
            // The first 64 bytes of config space, for readers (hwloc) that take the ids from there.
            var config = [UInt8](repeating: 0, count: 64)
            func le16(_ at: Int, _ hex: String) {
                let v = UInt16(hex.dropFirst(2), radix: 16) ?? 0
                config[at] = UInt8(v & 0xff)
                config[at + 1] = UInt8(v >> 8)
            }
            le16(0, vendor)
            le16(2, device)
            let c = UInt32(cls.dropFirst(2), radix: 16) ?? 0
            config[9] = UInt8(c & 0xff)
            config[10] = UInt8((c >> 8) & 0xff)
            config[11] = UInt8(c >> 16)
            if let bus = secondaryBus {
                config[0x0e] = 1   // a PCI-to-PCI bridge header
                config[0x19] = UInt8(bus)
                config[0x1a] = UInt8(bus)
            }
            let path = directory + "/" + dir + "/config"
            try fm.createDirectory(atPath: directory + "/" + dir, withIntermediateDirectories: true)
            try Data(config).write(to: URL(fileURLWithPath: path))
            try write("\(dir)/local_cpus", (try CPUSet(cpulist: cpuList)).hexMask + "\n")
            try write("\(dir)/class", cls + "\n")
            try write("\(dir)/vendor", vendor + "\n")
            try write("\(dir)/device", device + "\n")
            try write("\(dir)/numa_node", "\(node)\n")
            try write("\(dir)/local_cpulist", cpuList + "\n")
        }
        for n in 0..<nodes {
            let bus = String(n * 4, radix: 16)
            let busHex = bus.count == 1 ? "0" + bus : bus
            let rootPort = "0000:\(busHex):00.0"
            let rootDir = "sys/devices/pci0000:\(busHex)/\(rootPort)"
            let cpuList = "\(n * cpusPerNode)-\(n * cpusPerNode + cpusPerNode - 1)"
            try pciFiles(rootDir, cls: "0x060400", vendor: "0x8086", device: "0x2030", node: n, cpuList: cpuList,
                         secondaryBus: n * 4 + 1)
            try link("sys/bus/pci/devices/\(rootPort)", "../../../devices/pci0000:\(busHex)/\(rootPort)")
            let here = (0..<accelerators).filter { $0 % nodes == n }
            for (i, _) in here.enumerated() {
                let sub = String(n * 4 + 1, radix: 16)
                let subHex = sub.count == 1 ? "0" + sub : sub
                let addr = "0000:\(subHex):\(i < 16 ? "0" : "")\(String(i, radix: 16)).0"
                let dir = "\(rootDir)/\(addr)"
                try pciFiles(dir, cls: "0x120000", vendor: "0x1da3", device: "0x1020", node: n, cpuList: cpuList)
                try link("sys/bus/pci/devices/\(addr)", "../../../devices/pci0000:\(busHex)/\(rootPort)/\(addr)")
            }
        }
        try write("proc/self/cgroup", "0::/\n")
        try write("sys/fs/cgroup/cpuset.cpus.effective", "0-\(cpus - 1)\n")
        try write("sys/fs/cgroup/cpuset.mems.effective", "0-\(nodes - 1)\n")
        try write("proc/meminfo", "MemTotal:       \(nodes * 64 * 1024 * 1024) kB\n")
        print("wrote \(directory): \(nodes) nodes, \(cpus) CPUs, \(accelerators) accelerators, \(nodes) root ports")
    }
}
