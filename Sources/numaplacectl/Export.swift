import ArgumentParser
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import NumaPlaceCore
import NumaPlaceProtocol
import NumaPlaceSyscall

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the device → CPU map in the formats cluster layers read (Slurm, Kubernetes NFD and NodeResourceTopology).",
        discussion: """
        From the running daemon (GetTopology), or offline from a sysfs tree with --sysfs-root DIR (a \
        captured machine, or / for this host without a daemon; offline uses the built-in device classes).
        """,
        subcommands: [SlurmGres.self, NFD.self, NRT.self])
}

/// Where an export reads the model from and where it writes.
struct ExportOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Scan this sysfs root instead of asking the daemon.", valueName: "dir"))
    var sysfsRoot: String?

    @Option(name: .shortAndLong, help: ArgumentHelp("Write to this file (atomically: a hidden temporary file, then a rename) instead of stdout.", valueName: "file"))
    var output: String?
}

protocol ExportCommand: ManagerCommand {
    var export: ExportOptions { get }
}

extension ExportCommand {
    /// The model and a phrase naming where it came from.
    func inventory() throws(CtlError) -> (Inventory, String) {
        if let dir = export.sysfsRoot {
            let root = SysfsRoot(dir)
            guard root.exists("sys/devices/system") || root.exists("sys/bus/pci/devices") else {
                throw .local("\(dir) holds no sysfs tree (no sys/devices/system or sys/bus/pci/devices under it)")
            }
            return (SysfsScanner(root: root).scan(), "the sysfs tree under \(root.path)")
        }
        let session = try session()
        let reply = try session.call("GetTopology").decode(Manager.GetTopologyReply.self)
        do {
            return (try reply.inventory(), "numaplaced at \(session.path)")
        } catch {
            throw .protocolViolation("GetTopology reply: \(error)")
        }
    }

    func emit(_ text: String) throws(CtlError) {
        guard let path = export.output, path != "-" else { return Output.write(text, to: 1) }
        try AtomicFile.write(text, to: path)
    }

    func refuseJSON() throws {
        if global.json { throw ValidationError("--json does not apply to exports: they write their own formats (export nrt is JSON already)") }
    }
}

struct SlurmGres: ExportCommand {
    static let configuration = CommandConfiguration(
        commandName: "slurm-gres",
        abstract: "gres.conf lines that slurmd accepts, with Cores= set to the cores local to each device.",
        discussion: """
        Cores= are Slurm's logical core indices ("Core L#" in lstopo -l: socket by socket, in sub-NUMA \
        clusters node by node), not CPU numbers and not the kernel's core_id. A device whose locality is \
        unknown gets no Cores= and a comment saying so.

        slurmd accepts several records for one name only when each has File=. So each device gets a line \
        with File= when every device file is known: from --file-pattern ({index} counts the exported \
        devices of each kind in PCI order, {address} is the PCI address), else from the scan (/dev/nvidiaN \
        for NVIDIA GPUs, the /dev/dri render node for other GPUs, /dev/accel/accelN or /dev/veN for \
        accelerators, /dev/infiniband/uverbsN for RDMA NICs). Otherwise one Count= line, when all the \
        devices share one core set; when they do not, the export stops and asks for --file-pattern.

        Examples:
          numaplacectl export slurm-gres --file-pattern '/dev/nvidia{index}' --type a100
          numaplacectl export slurm-gres --kind accelerator --name ve --sysfs-root /tmp/machine
        """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var export: ExportOptions

    @Option(name: .long, help: "Device kinds to list (repeatable; default gpu).")
    var kind: [DeviceKind] = []

    @Option(name: .long, help: "The GRES name (Name=; default: the kind listed, or gpu when several are).")
    var name: String?

    @Option(name: .long, help: "Type= for every line (a100, p100, …).")
    var type: String?

    @Option(name: .long, help: ArgumentHelp("Only devices of this PCI vendor: hex id (10de) or name (nvidia).", valueName: "vendor"))
    var vendor: String?

    @Option(name: .long, help: ArgumentHelp("File= from this pattern ({index} per kind, {address}) instead of the scanned device files.", valueName: "pattern"))
    var filePattern: String?

    @Option(name: .long, help: "Start every line with NodeName=NAME.")
    var nodeName: String?

    var exporter: SlurmGresExport {
        get throws {
            // A VE exported as Name=gpu would be counted by jobs that ask for GPUs.
            let kinds = kind.isEmpty ? [DeviceKind.gpu] : kind
            return SlurmGresExport(name: name ?? (kinds.count == 1 ? kinds[0].rawValue : "gpu"), type: type, kinds: kinds,
                            vendor: try vendor.map(Self.vendorID), filePattern: filePattern, nodeName: nodeName)
        }
    }

    static func vendorID(_ text: String) throws -> UInt16 {
        var t = Substring(text.lowercased())
        if t.hasPrefix("0x") { t = t.dropFirst(2) }
        if t.count == 4, let id = UInt16(t, radix: 16) { return id }
        if let id = DeviceClassifier.vendorNames.first(where: { $0.value.lowercased() == text.lowercased() })?.key {
            return id
        }
        throw ValidationError("--vendor \(text): expected a 4-digit hex PCI vendor id (10de) or a known name (nvidia, amd, intel, …)")
    }

    func validate() throws {
        try refuseJSON()
        do { try exporter.validate() } catch let e as SlurmGresExport.OptionError { throw ValidationError(e.description) }
    }

    func run() throws {
        let exporter = try exporter
        let (inventory, source) = try inventory()
        let text: String
        do { text = try exporter.render(inventory, source: source) } catch { throw CtlError.local(error.description) }
        try emit(text)
    }
}

struct NFD: ExportCommand {
    static let configuration = CommandConfiguration(
        commandName: "nfd",
        abstract: "A Node Feature Discovery feature file (name=value lines) for nfd-worker's local source.",
        discussion: """
        Install it as /etc/kubernetes/node-feature-discovery/features.d/numaplaced; every line becomes a \
        node label. Names and values are valid Kubernetes labels: addresses are written 0000_3b_00_0 and CPU \
        lists 0-7_16-23. Needs NFD v0.14.0 or newer: its local source skips the file's # comment lines, \
        which older versions read as features. Those versions accept the numaplaced.io namespace as is.

        Examples:
          numaplacectl export nfd -o features.d/numaplaced
          numaplacectl export nfd --sysfs-root /tmp/machine
        """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var export: ExportOptions

    @Option(name: .long, help: "The label namespace.")
    var prefix: String = "numaplaced.io"

    func validate() throws {
        try refuseJSON()
        do { try NFDFeatureExport(prefix: prefix).validate() } catch { throw ValidationError(error.description) }
    }

    func run() throws {
        let (inventory, source) = try inventory()
        try emit(NFDFeatureExport(prefix: prefix).render(inventory, source: source))
    }
}

struct NRT: ExportCommand {
    static let configuration = CommandConfiguration(
        commandName: "nrt",
        abstract: "A NodeResourceTopology object (topology.node.k8s.io/v1alpha2) as JSON, for kubectl apply.",
        discussion: """
        One zone per NUMA node (node-N, type Node) with its distances as costs and its CPUs, memory and \
        devices (PREFIX/gpu, PREFIX/accelerator, PREFIX/nic) as resources; capacity, allocatable and \
        available are what the machine has. The topology-aware scheduler plugin (NodeResourceTopologyMatch) \
        reads it; the CRD must be installed. --topology-manager-policy and --topology-manager-scope repeat \
        kubelet's settings, which the plugin needs and sysfs does not hold.

        Examples:
          numaplacectl export nrt --node-name worker-1 --topology-manager-policy single-numa-node | kubectl apply -f -
          numaplacectl export nrt --sysfs-root /tmp/machine --node-name test
        """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var export: ExportOptions

    @Option(name: .long, help: "metadata.name: the Kubernetes node name (default: this host's name, lower-cased).")
    var nodeName: String?

    @Option(name: .long, help: "The resource name prefix for devices.")
    var prefix: String = "numaplaced.io"

    @Option(name: .long, help: ArgumentHelp("kubelet's topology manager policy (none, best-effort, restricted, single-numa-node).", valueName: "policy"))
    var topologyManagerPolicy: String?

    @Option(name: .long, help: ArgumentHelp("kubelet's topology manager scope (container, pod).", valueName: "scope"))
    var topologyManagerScope: String?

    var exporter: NodeResourceTopologyExport {
        NodeResourceTopologyExport(nodeName: nodeName ?? Self.hostName(), prefix: prefix,
                                   policy: topologyManagerPolicy, scope: topologyManagerScope)
    }

    /// uname(2)'s nodename, which kubelet also takes as the node name unless told otherwise.
    static func hostName() -> String {
        var u = utsname()
        guard uname(&u) == 0 else { return "localhost" }
        let name = withUnsafeBytes(of: &u.nodename) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        return name.isEmpty ? "localhost" : name.lowercased()
    }

    func validate() throws {
        try refuseJSON()
        do { try exporter.validate() } catch { throw ValidationError(error.description) }
    }

    func run() throws {
        let (inventory, _) = try inventory()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data: Data
        do { data = try encoder.encode(exporter.object(for: inventory)) } catch { throw CtlError.local("encoding the object: \(error)") }
        try emit(String(decoding: data, as: UTF8.self) + "\n")
    }
}

/// Writes a file so that readers see the old or the new content, never a part: a hidden temporary
/// file beside it (NFD ignores dot files), fsync, rename.
enum AtomicFile {
    static func write(_ text: String, to path: String) throws(CtlError) {
        let dir: String, base: String
        if let slash = path.lastIndex(of: "/") {
            dir = slash == path.startIndex ? "/" : String(path[..<slash])
            base = String(path[path.index(after: slash)...])
        } else {
            dir = "."
            base = path
        }
        guard !base.isEmpty else { throw .usage("--output \(path): names a directory, not a file") }
        let temp = (dir == "/" ? "" : dir) + "/.\(base).numaplacectl-\(getpid())"
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            let e = Errno.current
            throw .local("cannot create \(temp): \(e)")
        }
        var failure: Errno? = nil   // the errno of the call that failed
        do { try Syscall.writeAll(fd, Array(text.utf8)) } catch { failure = error }
        if failure == nil && fsync(fd) != 0 { failure = .current }
        close(fd)
        if failure == nil && rename(temp, path) != 0 { failure = .current }
        if let failure {
            unlink(temp)
            throw .local("cannot write \(path): \(failure)")
        }
    }
}
