@testable import NumaPlaceCore

/// Shorthands for tests: literal ids and addresses that are known to be valid.
func node(_ id: Int) -> NUMANodeID {
    guard let n = NUMANodeID(rawValue: id) else { preconditionFailure("test node id \(id) out of range") }
    return n
}

func pci(_ text: String) -> PCIAddress {
    do { return try PCIAddress(parsing: text) } catch { preconditionFailure("test address \(text): \(error)") }
}

func cpuset(_ list: String) -> CPUSet {
    do { return try CPUSet(cpulist: list) } catch { preconditionFailure("test cpulist \(list): \(error)") }
}

/// A classifier that manages every PCI function (as an accelerator), to see all devices' localities.
let everyDeviceClassifier = DeviceClassifier(rules: [ClassificationRule(kind: .accelerator)])
