import NumaPlacePlatform
import NumaPlaceProtocol

extension SpawnRequestBuilder {
    /// The passed descriptors a Spawn names, resolved: for each of stdin, stdout, stderr the
    /// descriptor to use instead of the path choice (nil: the path choice applies), and the extras
    /// for 3, 4, ….
    struct PassedStdio {
        var stdio: [Int32?] = [nil, nil, nil]
        var extra: [Int32] = []
    }

    /// Checks each index against the descriptors the call carried. A descriptor is the caller's own
    /// open file, so unlike a path it needs no check of what it is: the worker gets what the caller had.
    static func passedDescriptors(_ p: Manager.SpawnParameters, in passed: PassedDescriptors) throws(VarlinkError) -> PassedStdio {
        var result = PassedStdio()
        func resolve(_ index: Int, _ parameter: String) throws(VarlinkError) -> Int32 {
            guard let fd = passed.descriptor(at: index) else {
                throw Manager.invalidParameter(parameter, "no descriptor \(index) came with this call (\(passed.count) did; they are numbered from 0)")
            }
            return fd
        }
        let named: [(index: Int?, path: String?, name: String)] = [
            (p.stdinDescriptor, p.stdin, "stdin"), (p.stdoutDescriptor, p.stdout, "stdout"), (p.stderrDescriptor, p.stderr, "stderr"),
        ]
        for (i, n) in named.enumerated() {
            guard let index = n.index else { continue }
            if n.path != nil {
                throw Manager.invalidParameter(n.name + "Descriptor", "give either \(n.name) or \(n.name)Descriptor, not both")
            }
            result.stdio[i] = try resolve(index, n.name + "Descriptor")
        }
        if let extra = p.descriptors {
            guard extra.count <= Spawner.maxExtraDescriptors else {
                throw Manager.limitExceeded("MaxDescriptorsPerCall", maximum: Spawner.maxExtraDescriptors)
            }
            for (i, index) in extra.enumerated() {
                result.extra.append(try resolve(index, "descriptors[\(i)]"))
            }
        }
        return result
    }
}
