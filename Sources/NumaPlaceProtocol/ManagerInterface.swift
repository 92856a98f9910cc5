// The interface description served by GetInterfaceDescription. It must equal
// io.numaplaced.Manager.varlink byte for byte (a test checks): edit the .varlink file, then run
// `python3 Sources/NumaPlaceProtocol/embed-interface.py`.
extension Manager {
    public static let interfaceDescription = #"""
# numaplaced places accelerator workers on the NUMA node of their device.
#
# Addresses are accepted in any spelling a driver or client uses ("00000000:3B:00.0",
# "3b:00.0", "0000:3b:00") and always returned in the kernel's canonical form ("0000:3b:00.0").
# CPU sets travel as cpulist strings ("0-7,16-23"); an empty string is the empty set.
interface io.numaplaced.Manager

# A NUMA node as the kernel reports it. Node ids may be sparse.
type Node (
  id: int,
  # Online CPUs of the node; empty for a memory-only node (GPU HBM, CXL).
  cpus: string,
  # MemTotal of the node; 0 for a memory-less node.
  memoryBytes: int,
  # SLIT distances to every node, in the order of GetTopology's nodes.
  distances: []int
)

# An accelerator, GPU, RDMA NIC or display adapter with its resolved locality.
type Device (
  # Canonical PCI address.
  address: string,
  # PCI class, vendor and device ids as hex strings: "0x030200", "0x10de", "0x2330"; "0xffff" for an id
  # sysfs did not give (a warning says which).
  class: string,
  vendor: string,
  device: string,
  vendorName: ?string,
  # gpu, accelerator, nic or display (a BMC's or hypervisor's VGA: never counted or exported as a GPU).
  kind: string,
  driver: ?string,
  # The node the device belongs to; null when its locality is unknown.
  numaNode: ?int,
  # The CPUs a worker for this device gets; empty when unknown.
  cpus: string,
  # node (numa_node was valid), cpus (from local_cpulist), only-node (neither said anything, and the
  # machine has a single node with CPUs) or unknown.
  locality: string,
  # The nodes whose CPUs and memory a worker uses (the nearest CPU-bearing nodes for a CPU-less node).
  placementNodes: []int,
  # Upstream bridges from the root port down, canonical addresses.
  pciePath: []string,
  # For a GPU or accelerator: the RDMA NICs, nearest first (same PCIe switch, same root port, same
  # host bridge, same node, then by node distance). Empty for others.
  nearestNICs: []string,
  # The device's own memory as a NUMA node (coherent GPU memory: the node the NVIDIA driver names in
  # numa_status, or a CPU-less node numa_node names); null when it has none.
  memoryNode: ?int,
  # Device files (/dev/dri/renderD128, /dev/infiniband/uverbs0, /dev/nvidia0) and driver names
  # (mlx5_0, ib0, ve0, an NVIDIA GPU-... UUID); any of them selects the device where an address does.
  deviceNodes: []string,
  names: []string,
  # Where sysfs disagreed with itself or could not be read.
  warnings: []string
)

# Where a worker runs.
type Placement (
  cpus: string,
  # default, preferred, bind or interleave.
  memoryPolicy: string,
  memoryNodes: []int
)

type ExitStatus (
  # exited, killed, or unknown (the worker was re-adopted after a daemon restart).
  how: string,
  code: ?int,
  signal: ?int,
  # True when the kernel's OOM killer killed a process of the worker's cgroup (memory.events oom_kill).
  oomKilled: ?bool
)

# What a worker's cgroup has used (cgroup v2 only); null members where a controller is not enabled.
type WorkerUsage (
  # cpu.stat usage_usec.
  cpuUsec: ?int,
  # memory.current and memory.peak (Linux 5.19) in bytes.
  memoryCurrent: ?int,
  memoryPeak: ?int,
  # pids.current.
  pids: ?int
)

type Worker (
  id: string,
  pid: int,
  uid: int,
  gid: int,
  argv: []string,
  device: ?string,
  node: ?int,
  # running or exited.
  state: string,
  # Microseconds since the epoch.
  startedAt: int,
  requested: Placement,
  # Read back from /proc/<pid>/status and numa_maps after exec; null when it could not be read.
  applied: ?Placement,
  # Steps best-effort admission had to weaken, in words.
  degraded: []string,
  exclusiveCores: []string,
  # True when this daemon re-adopted the worker from its state file after a restart.
  adopted: bool,
  exit: ?ExitStatus,
  # The worker's own cgroup v2 group, as /proc/<pid>/cgroup shows it; null where workers get none
  # (cgroup v1, no delegation: GetStatus says why).
  cgroup: ?string,
  # Read from the group: live while the worker runs, final after it exited.
  usage: ?WorkerUsage,
  # True when the worker is stopped (SIGTERM, SIGKILL 2 s later) as the connection that spawned it closes.
  tied: ?bool
)

type Event (
  # Strictly increasing per daemon run.
  sequence: int,
  # deviceAdded, deviceRemoved, deviceChanged, workerStarted, workerExited, topologyChanged, configurationReloaded.
  kind: string,
  # Microseconds since the epoch.
  timestamp: int,
  address: ?string,
  device: ?Device,
  worker: ?Worker
)

# The whole model: nodes, devices, and the CPU sets the daemon sees.
method GetTopology() -> (
  nodes: []Node,
  devices: []Device,
  onlineCPUs: string,
  possibleCPUs: string,
  # The saved original: the CPUs the daemon's cgroup allows, recorded at start.
  allowedCPUs: string,
  # Physical cores: the SMT sibling groups of the online CPUs, sorted by first CPU.
  cores: []string,
  # The online CPUs of each processor package (socket), sorted by first CPU; empty when sysfs
  # does not say. With cores and nodes, what cluster exports need for hwloc's core order.
  packages: []string,
  warnings: []string
)

# Devices, filtered by kind, node or address (any spelling).
method ListDevices(kind: ?string, node: ?int, address: ?string) -> (devices: []Device)

method GetDevice(address: string) -> (device: Device)

# Starts argv[0] (an absolute path, or a name looked up in PATH) as a worker placed on the
# node of `device`, on `node`, or on the explicit `cpus`. Exactly one target may be given; none means
# the whole allowed set. memory: preferred (default), bind, interleave, none. admission: strict
# (default) or best-effort. stdin, stdout, stderr: null (default), inherit (the daemon's own: its user
# only), journal, or an absolute path of a regular file or /dev/null, opened as the caller before the
# worker exists (stdout and stderr append). user: only root may name another user. deviceMemory:
# with a device, aim the memory policy at the device's own memoryNode (strict: refused without one).
# devices: several devices for one worker, placed on the node that holds them all (strict admission
# refuses devices on different nodes; best-effort spans them and says so in degraded). The worker gets
# NUMAPLACE_DEVICES; runtimeEnvironment also sets CUDA_VISIBLE_DEVICES (GPU UUIDs, where the driver
# names them) and NCCL_IB_HCA (each device's nearest RDMA NIC).
method Spawn(
  device: ?string,
  node: ?int,
  cpus: ?string,
  argv: []string,
  environment: ?[]string,
  workingDirectory: ?string,
  memory: ?string,
  exclusiveCores: ?int,
  admission: ?string,
  stdin: ?string,
  stdout: ?string,
  stderr: ?string,
  user: ?string,
  name: ?string,
  parentDeathSignal: ?int,
  deviceMemory: ?bool,
  devices: ?[]string,
  runtimeEnvironment: ?bool,
  # Limits of the worker's cgroup (memory.max in bytes, pids.max, cpu.weight 1-10000); refused where
  # workers get no cgroup of their own.
  memoryMax: ?int,
  pidsMax: ?int,
  cpuWeight: ?int,
  # Indices among the descriptors sent with this call (SCM_RIGHTS) that become the worker's stdin,
  # stdout and stderr; each excludes the path form of the same stream.
  stdinDescriptor: ?int,
  stdoutDescriptor: ?int,
  stderrDescriptor: ?int,
  # Indices of further passed descriptors, placed at 3, 4, … in the worker.
  descriptors: ?[]int,
  # SIGTERM, then SIGKILL 2 s later, to the worker when the connection that spawned it closes.
  tied: ?bool
) -> (worker: Worker)

method ListWorkers() -> (workers: []Worker)

method GetWorker(id: string) -> (worker: Worker)

method Signal(id: string, signal: int) -> ()

# Returns once the worker has exited.
method Wait(id: string) -> (worker: Worker)

# Streams events (call with "more": true). The first reply is a `ready` event carrying the current
# sequence number.
method Monitor() -> (event: Event)

method GetStatus() -> (
  version: string,
  startedAt: int,
  uptimeUsec: int,
  nodes: int,
  devices: int,
  workers: int,
  runningWorkers: int,
  allowedCPUs: string,
  allowedMems: string,
  eventSource: string,
  configurationFiles: []string,
  warnings: []string,
  # The cgroup v2 group under which each worker gets its own; null when workers get none, and then
  # workerCgroupsUnavailable says why (cgroup v1, no delegation).
  workerCgroups: ?string,
  workerCgroupsUnavailable: ?string
)

# Re-reads the configuration and rescans sysfs, like SIGHUP (root only).
method Reload() -> ()

error NoSuchDevice (address: string)
error NoSuchNode (node: int)
error NoSuchWorker (id: string)
error PlacementImpossible (reason: string)
error SpawnFailed (step: string, errno: int, message: string)
error PermissionDenied (reason: string)
error InvalidParameter (parameter: string, reason: string)
error LimitExceeded (limit: string, maximum: int)

"""#
}
