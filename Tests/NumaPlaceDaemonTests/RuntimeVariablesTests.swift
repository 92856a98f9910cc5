import Foundation
import NumaPlaceCore
@testable import NumaPlaceDaemon
import Testing

/// Issue 15: the variables a worker's runtime reads, set from the devices it was placed for.
@Suite struct RuntimeVariablesTests {
    @Test func cudaByUUIDAndTheNearestHCA() throws {
        let m = try SyntheticMachine()
        try FileManager.default.createDirectory(atPath: try m.deviceFile(SyntheticMachine.nic, "infiniband/mlx5_0"),
                                                withIntermediateDirectories: true)
        let info = m.path("proc/driver/nvidia/gpus/\(SyntheticMachine.gpu)")
        try FileManager.default.createDirectory(atPath: info, withIntermediateDirectories: true)
        try "GPU UUID: GPU-0123-abcd\nDevice Minor: 0\n".write(toFile: info + "/information", atomically: true, encoding: .utf8)
        let inventory = SysfsScanner(root: SysfsRoot(m.root)).scan()
        let gpu = try PCIAddress(parsing: SyntheticMachine.gpu), nic = try PCIAddress(parsing: SyntheticMachine.nic)
        #expect(SpawnRequestBuilder.runtimeVariables([gpu], inventory: inventory)
                == ["CUDA_VISIBLE_DEVICES": "GPU-0123-abcd", "NCCL_IB_HCA": "mlx5_0"])
        #expect(SpawnRequestBuilder.runtimeVariables([gpu, nic], inventory: inventory)["NCCL_IB_HCA"] == "mlx5_0")
        // Without a UUID the GPU is not listed at all: a partial list would hide it from CUDA.
        try FileManager.default.removeItem(atPath: info)
        let bare = SysfsScanner(root: SysfsRoot(m.root)).scan()
        #expect(SpawnRequestBuilder.runtimeVariables([gpu], inventory: bare)["CUDA_VISIBLE_DEVICES"] == nil)
    }
}
