import Foundation
import NumaPlaceCore

/// A sysfs/procfs tree written by a test into its own temporary directory, laid out as the kernel lays
/// it out: `sys/devices/system/node/nodeN/{cpulist,meminfo,distance}`, `sys/devices/system/cpu/...`,
/// PCI functions as directories under `sys/devices/pciDDDD:BB/<bridges>/<function>` with the
/// `sys/bus/pci/devices/ADDR` symlink pointing into them, and `proc/self/cgroup` with cgroup cpuset files.
///
/// The directory is removed when the value is released, so each test owns a tree no other test sees.
public final class SyntheticRoot {
    public let path: String
    public var root: SysfsRoot { SysfsRoot(path) }

    public init() throws {
        var template = Array((scratchDirectory + "numaplace-synth-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: "mkdtemp failed: errno \(errno)"])
        }
        path = String(cString: made)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    private func absolute(_ relative: String) -> String { path + "/" + relative }

    public func mkdir(_ relative: String) throws {
        try FileManager.default.createDirectory(atPath: absolute(relative), withIntermediateDirectories: true)
    }

    /// Writes `contents` as UTF-8 (or raw bytes), creating parent directories.
    public func write(_ relative: String, _ contents: String) throws { try write(relative, bytes: Array(contents.utf8)) }

    public func write(_ relative: String, bytes: [UInt8]) throws {
        let full = absolute(relative)
        try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: full))
    }

    public func symlink(_ relative: String, to target: String) throws {
        let full = absolute(relative)
        try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: full, withDestinationPath: target)
    }

    public func remove(_ relative: String) throws { try FileManager.default.removeItem(atPath: absolute(relative)) }

    // MARK: Topology

    /// One node directory. `distances` is the SLIT row in the order of the node ids the test writes.
    public func node(_ id: Int, cpus: String, memoryKB: UInt64?, distances: [Int]?) throws {
        let dir = "sys/devices/system/node/node\(id)"
        try mkdir(dir)
        try write("\(dir)/cpulist", cpus + "\n")
        if let memoryKB {
            try write("\(dir)/meminfo", """
                Node \(id) MemTotal:       \(memoryKB) kB
                Node \(id) MemFree:        \(memoryKB / 2) kB
                Node \(id) MemUsed:        \(memoryKB - memoryKB / 2) kB

                """)
        }
        if let distances { try write("\(dir)/distance", distances.map(String.init).joined(separator: " ") + "\n") }
    }

    /// `cpu/online`, `cpu/possible`, and `thread_siblings_list` for every CPU of every sibling group.
    public func cpus(online: String, possible: String? = nil, siblings: [[Int]]) throws {
        let dir = "sys/devices/system/cpu"
        try write("\(dir)/online", online + "\n")
        try write("\(dir)/possible", (possible ?? online) + "\n")
        for group in siblings {
            let text = CPUSet(group).cpulist + "\n"
            for cpu in group { try write("\(dir)/cpu\(cpu)/topology/thread_siblings_list", text) }
        }
    }

    /// A plain machine: `nodes` (id, CPUs, memory kB), distances 10 on the diagonal and `remote`
    /// elsewhere, one sibling pair per two consecutive CPUs of each node (or singletons with `smt: false`).
    public func machine(nodes: [(id: Int, cpus: [Int], memoryKB: UInt64)], remote: Int = 20, smt: Bool = true) throws {
        let ids = nodes.map(\.id)
        var all: [Int] = []
        var groups: [[Int]] = []
        for n in nodes {
            try node(n.id, cpus: CPUSet(n.cpus).cpulist, memoryKB: n.memoryKB,
                     distances: ids.map { $0 == n.id ? 10 : remote })
            all += n.cpus
            let sorted = n.cpus.sorted()
            var i = 0
            while i < sorted.count {
                if smt, i + 1 < sorted.count { groups.append([sorted[i], sorted[i + 1]]); i += 2 } else { groups.append([sorted[i]]); i += 1 }
            }
        }
        try cpus(online: CPUSet(all).cpulist, siblings: groups)
    }

    // MARK: PCI

    /// A PCI function under `sys/devices/pci<domain>:<bus>/<bridges…>/<address>`, with the
    /// `sys/bus/pci/devices/<address>` symlink the kernel creates. Bridges get their own directories
    /// (class 0x060400) and symlinks. A nil file argument leaves that file out.
    @discardableResult
    public func pciDevice(_ address: String, bridges: [String] = [], classCode: String? = "0x030200",
                   vendor: String? = "0x10de", device: String? = "0x2330", numaNode: String? = "-1",
                   localCPUList: String? = nil, localCPUs: String? = nil, driver: String? = nil) throws -> String {
        let hostBridge = "pci" + (address.split(separator: ":").dropLast().joined(separator: ":"))
        let rootBus = bridges.first.map { "pci" + $0.split(separator: ":").dropLast().joined(separator: ":") } ?? hostBridge
        var dir = "sys/devices/\(rootBus)"
        for bridge in bridges {
            dir += "/\(bridge)"
            if !FileManager.default.fileExists(atPath: absolute(dir)) {
                try write("\(dir)/class", "0x060400\n")
                try write("\(dir)/vendor", "0x10b5\n")
                try write("\(dir)/device", "0xc010\n")
                try write("\(dir)/numa_node", (numaNode ?? "-1") + "\n")
                try symlink("sys/bus/pci/devices/\(bridge)", to: "../../../" + String(dir.dropFirst("sys/".count)))
            }
        }
        dir += "/\(address)"
        try mkdir(dir)
        if let classCode { try write("\(dir)/class", classCode + "\n") }
        if let vendor { try write("\(dir)/vendor", vendor + "\n") }
        if let device { try write("\(dir)/device", device + "\n") }
        if let numaNode { try write("\(dir)/numa_node", numaNode + "\n") }
        if let localCPUList { try write("\(dir)/local_cpulist", localCPUList + "\n") }
        if let localCPUs { try write("\(dir)/local_cpus", localCPUs + "\n") }
        if let driver {
            try mkdir("sys/bus/pci/drivers/\(driver)")
            let depth = dir.split(separator: "/").count
            try symlink("\(dir)/driver", to: String(repeating: "../", count: depth - 1) + "bus/pci/drivers/\(driver)")
        }
        try symlink("sys/bus/pci/devices/\(address)", to: "../../../" + String(dir.dropFirst("sys/".count)))
        return dir
    }

    // MARK: cgroups

    /// cgroup v2: `proc/self/cgroup` is `0::PATH` and the cpuset files live under `sys/fs/cgroup/PATH`.
    public func cgroupV2(path cgroupPath: String, cpus: String?, mems: String?) throws {
        try write("proc/self/cgroup", "0::\(cgroupPath)\n")
        let dir = "sys/fs/cgroup" + (cgroupPath == "/" ? "" : cgroupPath)
        try mkdir(dir)
        if let cpus { try write("\(dir)/cpuset.cpus.effective", cpus + "\n") }
        if let mems { try write("\(dir)/cpuset.mems.effective", mems + "\n") }
    }

    /// cgroup v1: a `cpuset` hierarchy line and `sys/fs/cgroup/cpuset/PATH/cpuset.effective_{cpus,mems}`.
    public func cgroupV1(path cgroupPath: String, cpus: String?, mems: String?) throws {
        try write("proc/self/cgroup", """
            12:memory:/user.slice
            5:cpu,cpuacct:/user.slice
            3:cpuset:\(cgroupPath)
            1:name=systemd:/user.slice/session-1.scope
            0::/user.slice/session-1.scope

            """)
        let dir = "sys/fs/cgroup/cpuset" + (cgroupPath == "/" ? "" : cgroupPath)
        try mkdir(dir)
        if let cpus { try write("\(dir)/cpuset.effective_cpus", cpus + "\n") }
        if let mems { try write("\(dir)/cpuset.effective_mems", mems + "\n") }
    }

    // MARK: Scanning

    public func scan(_ classifier: DeviceClassifier = DeviceClassifier(),
              overrides: [PCIAddress: NUMANodeID] = [:]) -> Inventory {
        SysfsScanner(root: root, classifier: classifier, nodeOverrides: overrides).scan()
    }
}

/// Where tests write their trees: `/dev/shm` when it is a writable tmpfs with room (a few thousand
/// small files there take milliseconds; on this project's virtual disks they take seconds), else the
/// usual temporary directory.
public let scratchDirectory: String = {
    var fs = statvfs()
    if access("/dev/shm", W_OK) == 0, statvfs("/dev/shm", &fs) == 0,
       UInt64(fs.f_bavail) * UInt64(fs.f_frsize) >= 1 << 30 {
        return "/dev/shm/"
    }
    let tmp = NSTemporaryDirectory()
    return tmp.hasSuffix("/") ? tmp : tmp + "/"
}()
