import ArgumentParser
import NumaPlaceCore

/// Where `spawn` and `run` place their command: one target and how strictly.
struct PlacementOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Place on the node of this device: a PCI address (any spelling), a device node (/dev/dri/renderD128) or a driver name (mlx5_0, GPU-…).", valueName: "device"))
    var device: String?

    @Option(name: .long, help: "Place on this NUMA node.")
    var node: Int?

    @Option(name: .long, help: ArgumentHelp("Place on these CPUs (a cpulist such as 0-3,8).", valueName: "list"))
    var cpus: String?

    @Option(name: .long, help: "Memory policy: preferred (the default), bind, interleave or none.")
    var memory: MemoryPolicyMode?

    @Option(name: .long, help: ArgumentHelp("Place one worker for several devices (comma-separated addresses, device nodes or names) on the node that holds them all.", valueName: "list"))
    var devices: String?

    @Flag(name: .long, help: "With --device or --devices: also set CUDA_VISIBLE_DEVICES (GPU UUIDs) and NCCL_IB_HCA (nearest RDMA NICs).")
    var runtimeEnv = false

    @Option(name: .long, help: ArgumentHelp("Reserve this many whole cores for the worker alone.", valueName: "n"))
    var exclusiveCores: Int?

    @Option(name: .long, help: "strict (fail when the placement cannot be applied exactly; the default) or best-effort.")
    var admission: Admission?

    func validate() throws {
        let targets = [device != nil, devices != nil, node != nil, cpus != nil].filter { $0 }.count
        guard targets <= 1 else { throw ValidationError("give at most one of --device, --devices, --node and --cpus") }
        if let device, device.isEmpty { throw ValidationError("--device needs a PCI address, a device node or a name") }
        if let cpus {
            do { _ = try CPUSet(cpulist: cpus) } catch { throw ValidationError("--cpus \(cpus): \(error)") }
        }
        if let n = exclusiveCores, n < 0 { throw ValidationError("--exclusive-cores must not be negative") }
    }

    /// `--devices` as the wire's list.
    var deviceList: [String]? { devices.map { $0.split(separator: ",").map(String.init) } }
}

/// The environment and directory `spawn` and `run` give their command.
struct CommandEnvironmentOptions: ParsableArguments {
    @Flag(name: .long, help: "Start the worker with an empty environment (plus --env) instead of this one's.")
    var clearEnv = false

    @Option(name: .long, parsing: .singleValue, help: ArgumentHelp("Set a variable for the worker (repeatable).", valueName: "name=value"))
    var env: [String] = []

    @Option(name: .long, help: ArgumentHelp("The worker's working directory (default: this one's).", valueName: "dir"))
    var cwd: String?

    func validate() throws {
        for e in env where !(e.firstIndex(of: "=").map { $0 != e.startIndex } ?? false) {
            throw ValidationError("--env \(e): expected NAME=value")
        }
    }
}
