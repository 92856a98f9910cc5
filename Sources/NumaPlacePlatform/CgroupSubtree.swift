import CNumaPlaceShim
import Glibc
import NumaPlaceSyscall
import NumaPlaceCore

/// The part of the cgroup v2 hierarchy the daemon may manage, under which every worker gets a group
/// of its own (DESIGN.md, "Workers in cgroups of their own").
///
/// - Under systemd it is the service's group, and only with `Delegate=yes` (systemd marks a delegated
///   group with the `trusted.delegate` or `user.delegate` extended attribute) and
///   `DelegateSubgroup=daemon` (systemd 254), which starts the daemon in the leaf `<service>/daemon`:
///   a group that enables controllers for its children may hold no processes itself (cgroup-v2.rst,
///   "No Internal Process Constraint"), and systemd starts the next instance (a restart while workers
///   run) in the service's group itself unless told the leaf: it fails with 219/CGROUP there.
///   So the daemon never moves itself under systemd; without the leaf its workers get no groups.
/// - Without systemd it is the daemon's current group when the daemon can write it; in the root
///   group (an initramfs, a container's namespace root) a `numaplaced` group made under it.
///
/// `detect` only reads; `prepare` moves the daemon and enables the controllers. Both answer a
/// `CgroupError` whose code names why workers cannot have groups (cgroup v1, no delegation).
public struct CgroupSubtree: Sendable {
    public let files: CgroupFiles
    /// The group whose children the workers' groups are, relative to the mount ("" is the root).
    public let base: String
    /// The leaf the daemon's own processes live in.
    public let daemonGroup: String
    /// The controllers enabled for the workers' groups (after `prepare`).
    public private(set) var controllers: Set<String> = []

    /// cpuset is required (it is the placement); the others give the limits and the accounting.
    public static let wantedControllers = ["cpuset", "memory", "pids", "cpu"]
    static let cgroup2Magic: Int = 0x6367_7270

    init(files: CgroupFiles, base: String, daemonGroup: String) {
        self.files = files
        self.base = base
        self.daemonGroup = daemonGroup
    }

    /// Decides, reading only, where the daemon may make groups.
    /// - Parameter underSystemd: systemd is the service manager (`/run/systemd/system` exists).
    public static func detect(root: SysfsRoot, underSystemd: Bool) throws(CgroupError) -> CgroupSubtree {
        let files = CgroupFiles(root: root)
        let mount = "/" + CgroupFiles.mount
        if root.isLiveHost {
            if np_fs_type(mount) != cgroup2Magic {
                throw CgroupError(.notUnified, path: "", detail: "\(mount) is not the unified cgroup v2 hierarchy")
            }
        } else {
            let type = (try? root.read("proc/self/mountinfo")).flatMap { CgroupFiles.parseMountType($0, mountPoint: mount) }
            guard type == "cgroup2" else {
                throw CgroupError(.notUnified, path: "", detail: "\(mount) is \(type.map { "a \($0) mount" } ?? "not mounted"), not the unified cgroup v2 hierarchy")
            }
        }
        guard let text = try? root.read("proc/self/cgroup"), let own = CgroupFiles.parseOwnGroup(text) else {
            throw CgroupError(.noOwnGroup, path: "", detail: "/proc/self/cgroup names no cgroup v2 group")
        }

        let subtree: CgroupSubtree
        let leaf = own.split(separator: "/").last.map(String.init)
        let parent = own.split(separator: "/").dropLast().joined(separator: "/")
        if underSystemd {
            if !own.isEmpty, isDelegated(files.absolute(own)) {
                throw CgroupError(.notDelegated, path: "/" + own,
                                  detail: "systemd starts the daemon in its delegated group itself, not in the leaf DelegateSubgroup=daemon names (systemd 254): groups made there would make the next restart fail while workers run")
            } else if leaf == "daemon", isDelegated(files.absolute(parent)) {
                subtree = CgroupSubtree(files: files, base: parent, daemonGroup: own)
            } else {
                throw CgroupError(.notDelegated, path: "/" + own,
                                  detail: "systemd runs the daemon without Delegate=yes, so its group is not its own to divide")
            }
        } else if own.isEmpty {
            subtree = CgroupSubtree(files: files, base: "numaplaced", daemonGroup: "")
        } else if leaf == "daemon" {
            subtree = CgroupSubtree(files: files, base: parent, daemonGroup: own)
        } else {
            subtree = CgroupSubtree(files: files, base: own, daemonGroup: CgroupFiles.join(own, "daemon"))
        }

        // The root case makes its base in `prepare`; its rights are the root's.
        let checked = subtree.files.exists(subtree.base) ? subtree.base : ""
        for path in [checked, CgroupFiles.join(checked, "cgroup.subtree_control")]
        where access(files.absolute(path), W_OK) != 0 {
            throw CgroupError(.notDelegated, path: "/" + path, errno: Errno.current, detail: "cannot write the daemon's cgroup")
        }
        let available = CgroupFiles.parseControllers((try? files.read(CgroupFiles.join(checked, "cgroup.controllers"))) ?? "")
        guard available.contains("cpuset") else {
            throw CgroupError(.controllerMissing, path: "/" + CgroupFiles.join(checked, "cgroup.controllers"),
                              detail: "the cpuset controller is not available to the daemon's group")
        }
        return subtree
    }

    /// Whether systemd delegated the group (systemd sets the attribute on a `Delegate=yes` unit's group).
    static func isDelegated(_ absolutePath: String) -> Bool {
        for name in ["trusted.delegate", "user.delegate"] {
            var value = [UInt8](repeating: 0, count: 8)
            let n = np_getxattr(absolutePath, name, &value, value.count)
            if n == 1 && value[0] == UInt8(ascii: "1") { return true }
        }
        return false
    }

    /// Makes the base, moves the daemon's processes into their leaf, and enables the controllers for
    /// the workers' groups. Idempotent: a restarted daemon finds most of it done.
    public mutating func prepare() throws(CgroupError) {
        if base == "numaplaced" && daemonGroup.isEmpty {
            if !files.exists(base) { try files.makeDirectory(base) }
            _ = enable(in: "")
        }
        if !daemonGroup.isEmpty, daemonGroup != base {
            if !files.exists(daemonGroup) { try files.makeDirectory(daemonGroup) }
            // Every process of the base: the daemon, and whatever systemd started beside it.
            for pid in (try? files.processes(base)) ?? [] {
                do {
                    try files.write(CgroupFiles.join(daemonGroup, "cgroup.procs"), "\(pid)")
                } catch where error.errno == Errno.noSuchProcess {
                    continue
                }
            }
        }
        controllers = enable(in: base)
        guard controllers.contains("cpuset") else {
            throw CgroupError(.controllerMissing, path: "/" + CgroupFiles.join(base, "cgroup.subtree_control"),
                              detail: "the cpuset controller could not be enabled for the workers' groups")
        }
    }

    /// Writes each wanted controller on its own, so that one the kernel lacks does not stop the rest.
    private func enable(in group: String) -> Set<String> {
        let path = CgroupFiles.join(group, "cgroup.subtree_control")
        let available = CgroupFiles.parseControllers((try? files.read(CgroupFiles.join(group, "cgroup.controllers"))) ?? "")
        var enabled = CgroupFiles.parseControllers((try? files.read(path)) ?? "")
        for c in Self.wantedControllers where available.contains(c) && !enabled.contains(c) {
            if (try? files.write(path, "+\(c)")) != nil { enabled.insert(c) }
        }
        return enabled.intersection(Self.wantedControllers)
    }

    // MARK: Workers' groups

    /// The group name of a worker: its id and its program, so that `systemd-cgls` and `ls` say whose
    /// it is ("w12-python3"). Only letters, digits, '-' and '_': no '.' that systemd would read as a
    /// unit suffix, no '/' or control characters from a client's argv.
    public static func groupName(id: String, argv0: String) -> String {
        let base = argv0.split(separator: "/").last.map(String.init) ?? ""
        let clean = String(base.unicodeScalars.prefix(24).map { s -> Character in
            s.isASCII && (("a"..."z").contains(s) || ("A"..."Z").contains(s) || ("0"..."9").contains(s) || s == "-" || s == "_")
                ? Character(s) : "_"
        })
        return clean.isEmpty ? id : id + "-" + clean
    }

    /// Whether a child group's name is one `groupName` makes ("w<digits>" or "w<digits>-...").
    public static func isWorkerGroupName(_ name: String) -> Bool {
        guard name.first == "w" else { return false }
        let digits = name.dropFirst().prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty else { return false }
        let rest = name.dropFirst(1 + digits.count)
        return rest.isEmpty || rest.first == "-"
    }

    public func group(named name: String) -> WorkerCgroup { WorkerCgroup(files: files, path: CgroupFiles.join(base, name)) }

    /// Makes a worker's group and sets its placement and limits; on any failure the group is removed.
    public func makeGroup(named name: String, cpus: CPUSet, memoryNodes: [Int], limits: CgroupLimits) throws(CgroupError) -> WorkerCgroup {
        let group = self.group(named: name)
        try files.makeDirectory(group.path)
        do {
            try group.configure(cpus: cpus, memoryNodes: memoryNodes, limits: limits, controllers: controllers)
        } catch {
            try? files.removeDirectory(group.path)
            throw error
        }
        return group
    }

    /// The worker groups under the base (by name).
    public func workerGroups() -> [String] { files.children(base).filter(Self.isWorkerGroupName).sorted() }

    /// Removes the empty worker groups not in `keeping`; a group with processes stays (its worker may
    /// be one no record names) and is returned as busy.
    public func removeStale(keeping: Set<String>) -> (removed: [String], busy: [String]) {
        var removed: [String] = [], busy: [String] = []
        for name in workerGroups() where !keeping.contains(name) {
            let g = group(named: name)
            if let pids = try? files.processes(g.path), !pids.isEmpty {
                busy.append(name)
            } else if (try? g.remove()) != nil {
                removed.append(name)
            } else {
                busy.append(name)
            }
        }
        return (removed, busy)
    }
}
