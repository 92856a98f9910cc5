/// One classification rule: a PCI function matches when every field that is set matches.
/// `kind == nil` means "ignore this device" (an operator can hide a BMC's VGA, say).
public struct ClassificationRule: Hashable, Sendable, CustomStringConvertible {
    public var classValue: UInt32?
    /// Which bits of the 24-bit class code must equal `classValue` (`0xff0000` for a base class).
    public var classMask: UInt32
    public var vendor: UInt16?
    public var device: UInt16?
    public var kind: DeviceKind?

    public init(classValue: UInt32? = nil, classMask: UInt32 = 0xffffff, vendor: UInt16? = nil, device: UInt16? = nil,
                kind: DeviceKind?) {
        self.classValue = classValue
        self.classMask = classMask
        self.vendor = vendor
        self.device = device
        self.kind = kind
    }

    public func matches(classCode: UInt32, vendor v: UInt16, device d: UInt16) -> Bool {
        if let c = classValue, classCode & classMask != c & classMask { return false }
        if let vendor, vendor != v { return false }
        if let device, device != d { return false }
        return true
    }

    public var description: String {
        var parts: [String] = []
        if let c = classValue { parts.append("class=0x\(hex(UInt64(c & classMask), width: 6))/0x\(hex(UInt64(classMask), width: 6))") }
        if let v = vendor { parts.append("vendor=0x\(hex(UInt64(v), width: 4))") }
        if let d = device { parts.append("device=0x\(hex(UInt64(d), width: 4))") }
        parts.append("kind=\(kind?.rawValue ?? "ignore")")
        return parts.joined(separator: " ")
    }
}

/// Decides which PCI functions are devices numaplaced manages, and of what kind.
/// Rules are tried in order; the first match wins; no match means the function is not managed.
public struct DeviceClassifier: Hashable, Sendable {
    public var rules: [ClassificationRule]

    public init(rules: [ClassificationRule] = DeviceClassifier.defaultRules) {
        self.rules = rules
    }

    /// Configured rules go first so that they can override (or ignore) what the defaults would say.
    public init(prepending configured: [ClassificationRule]) {
        self.rules = configured + DeviceClassifier.defaultRules
    }

    public func kind(classCode: UInt32, vendor: UInt16, device: UInt16) -> DeviceKind? {
        for rule in rules where rule.matches(classCode: classCode, vendor: vendor, device: device) {
            return rule.kind
        }
        return nil
    }

    /// False when no rule can match a function of this class whatever its vendor and device: the
    /// scanner then reads neither (most of a server's PCI functions are bridges and platform devices,
    /// and their two files were two thirds of the start-up's sysfs reads).
    public func mayManage(classCode: UInt32) -> Bool {
        rules.contains { rule in rule.classValue.map { classCode & rule.classMask == $0 & rule.classMask } ?? true }
    }

    /// DESIGN.md's defaults: 3D controllers, and display controllers of GPU makers → gpu; every other
    /// display controller (the VGA of a BMC or a hypervisor) → display; co-processor and processing
    /// accelerator → accelerator; InfiniBand, and Ethernet from RDMA-capable vendors → nic.
    public static let defaultRules: [ClassificationRule] =
        [ClassificationRule(classValue: 0x03_0200, classMask: 0xff_ff00, kind: .gpu)]
        + gpuVendors.map { ClassificationRule(classValue: 0x03_0000, classMask: 0xff_0000, vendor: $0, kind: .gpu) }
        + [
        ClassificationRule(classValue: 0x03_0000, classMask: 0xff_0000, kind: .display),
        ClassificationRule(classValue: 0x0b_4000, classMask: 0xff_ff00, kind: .accelerator),
        ClassificationRule(classValue: 0x12_0000, classMask: 0xff_0000, kind: .accelerator),
        ClassificationRule(classValue: 0x02_0700, classMask: 0xff_ff00, kind: .nic),
        ClassificationRule(classValue: 0x02_0000, classMask: 0xff_ff00, vendor: 0x15b3, kind: .nic),
    ]

    /// PCI-SIG vendor ids of the makers whose display-class functions (VGA or other, 0x0300/0x0380) are
    /// compute GPUs: NVIDIA, AMD, Intel, Hygon (DCU), Moore Threads, Iluvatar, Biren, MetaX.
    public static let gpuVendors: [UInt16] = [0x10de, 0x1002, 0x8086, 0x1d94, 0x1ed5, 0x1e3e, 0x1ee0, 0x9999]

    /// PCI-SIG vendor ids of accelerator makers, for display only.
    public static let vendorNames: [UInt16: String] = [
        0x10de: "NVIDIA", 0x1002: "AMD", 0x1022: "AMD", 0x8086: "Intel", 0x1da3: "Habana",
        0x19e5: "Huawei", 0xcabc: "Cambricon", 0x1d94: "Hygon", 0x15b3: "Mellanox", 0x1bcf: "NEC",
        0x1a03: "ASPEED", 0x102b: "Matrox", 0x1af4: "Red Hat (virtio)", 0x1234: "QEMU", 0x1e52: "Tenstorrent",
        0x1ed5: "Moore Threads", 0x1e3e: "Iluvatar", 0x1f0f: "Graphcore", 0x1ae0: "Google",
        0x1d0f: "Amazon", 0x14e4: "Broadcom", 0x1ded: "Alibaba (T-Head)", 0x1fc9: "Tehuti",
    ]
}
