import Testing
@testable import NumaPlaceCore
#if canImport(Glibc)
import Glibc
#endif

private let mainPath = "/etc/numaplaced/numaplaced.conf"

private func parse(_ text: String, path: String = mainPath) throws(ConfigError) -> Configuration {
    try ConfigParser.parse([ConfigSource(path: path, text: text)])
}

private func address(_ text: String) -> PCIAddress? { try? PCIAddress(parsing: text) }

@Suite struct ConfigParserTests {
    // MARK: Defaults and syntax

    @Test func noFilesMeansDefaults() throws {
        #expect(try ConfigParser.parse([]) == Configuration())
        #expect(try parse("") == Configuration())
        #expect(try parse("# only a comment\n; another\n\n   \n[Daemon]\n[Limits]\n") == Configuration())
    }

    @Test func defaultsAreTheDocumentedOnes() {
        let c = Configuration()
        #expect(c.socketPath == "/run/numaplaced/io.numaplaced")
        #expect(c.stateDirectory == "/run/numaplaced")
        #expect(c.eventSource == .udev)
        #expect(c.workerCPUs == nil)
        #expect(c.defaultMemoryPolicy == .preferred)
        #expect(c.defaultAdmission == .strict)
        #expect(c.classificationRules.isEmpty)
        #expect(c.localityOverrides.isEmpty)
        #expect(c.limits == Configuration.Limits(maxMessageBytes: 1 << 20, maxArgvBytes: 256 << 10,
                                                 maxEnvironmentBytes: 256 << 10, maxWorkersPerUser: 256,
                                                 maxConnections: 256, maxMonitorBacklog: 1024))
        #expect(c.classifier == DeviceClassifier())
    }

    @Test func everyKeySet() throws {
        let text = """
        [Daemon]
        Socket=/run/np/api.sock
        StateDirectory=/var/lib/numaplaced/
        EventSource=kernel
        WorkerCPUs=0-7,16-23

        [Placement]
        DefaultMemoryPolicy=bind
        DefaultAdmission=best-effort

        [Devices]
        Match=class=0x0302 vendor=0x10de device=0x2330 kind=accelerator
        Match=class=03 vendor=1a03 kind=ignore
        Locality=3B:00.0 1

        [Limits]
        MaxMessageBytes=4M
        MaxArgvBytes=512K
        MaxEnvironmentBytes=65536
        MaxWorkersPerUser=8
        MaxConnections=64
        MaxConnectionsPerUser=5
        MaxMonitorBacklog=100
        """
        let c = try parse(text)
        #expect(c.socketPath == "/run/np/api.sock")
        #expect(c.stateDirectory == "/var/lib/numaplaced")
        #expect(c.eventSource == .kernel)
        #expect(c.workerCPUs == CPUSet(Array(0...7) + Array(16...23)))
        #expect(c.defaultMemoryPolicy == .bind)
        #expect(c.defaultAdmission == .bestEffort)
        #expect(c.classificationRules == [
            ClassificationRule(classValue: 0x03_0200, classMask: 0xff_ff00, vendor: 0x10de, device: 0x2330, kind: .accelerator),
            ClassificationRule(classValue: 0x03_0000, classMask: 0xff_0000, vendor: 0x1a03, kind: nil),
        ])
        let a = try #require(address("0000:3b:00.0"))
        #expect(c.localityOverrides == [a: NUMANodeID(rawValue: 1)!])
        #expect(c.limits == Configuration.Limits(maxMessageBytes: 4 << 20, maxArgvBytes: 512 << 10,
                                                 maxEnvironmentBytes: 65536, maxWorkersPerUser: 8,
                                                 maxConnections: 64, maxConnectionsPerUser: 5, maxMonitorBacklog: 100))
    }

    /// systemd.syntax(7): whitespace around keys, values and `=` is dropped; `#` and `;` start comment
    /// lines only; CRLF endings and a BOM are tolerated; repeated sections merge.
    @Test(arguments: [
        ("[Daemon]\n  Socket  =  /run/x  \n", "/run/x"),
        ("[Daemon]\n\tSocket\t=\t/run/x\t\n", "/run/x"),
        ("[Daemon]\r\nSocket=/run/x\r\n", "/run/x"),
        ("\u{FEFF}[Daemon]\nSocket=/run/x\n", "/run/x"),
        ("[Daemon]\nSocket=/run/x # not a comment\n", "/run/x # not a comment"),
        ("[Daemon]\n# Socket=/run/no\n; Socket=/run/no\nSocket=/run/x", "/run/x"),
        ("[Daemon]\nSocket=/run/a\n[Limits]\n[Daemon]\nSocket=/run/x\n", "/run/x"),
        ("[Daemon]\nSocket=/run/a=b\n", "/run/a=b"),
    ])
    func whitespaceAndComments(text: String, socket: String) throws {
        #expect(try parse(text).socketPath == socket)
    }

    @Test func extensionSectionsAndKeysAreIgnored() throws {
        let c = try parse("[X-Site]\nAnything=goes\nMore=1\n[Daemon]\nX-Note=hello\nEventSource=kernel\n")
        #expect(c.eventSource == .kernel)
    }

    // MARK: Values

    @Test(arguments: [
        ("class=0x03 kind=gpu", ClassificationRule(classValue: 0x03_0000, classMask: 0xff_0000, kind: .gpu)),
        ("class=0x0b40 kind=accelerator", ClassificationRule(classValue: 0x0b_4000, classMask: 0xff_ff00, kind: .accelerator)),
        ("class=0X120001 kind=accelerator", ClassificationRule(classValue: 0x12_0001, classMask: 0xff_ffff, kind: .accelerator)),
        ("vendor=0x15b3 kind=nic", ClassificationRule(classValue: nil, vendor: 0x15b3, kind: .nic)),
        ("kind=ignore\tvendor=0x102B  device=0x0536", ClassificationRule(classValue: nil, vendor: 0x102b, device: 0x0536, kind: nil)),
        ("vendor=8086 device=d5 kind=gpu", ClassificationRule(classValue: nil, vendor: 0x8086, device: 0x00d5, kind: .gpu)),
    ])
    func matchRules(value: String, rule: ClassificationRule) throws {
        #expect(try parse("[Devices]\nMatch=\(value)\n").classificationRules == [rule])
    }

    /// Configured rules go before the defaults: an ignore rule hides a BMC's VGA, a device rule
    /// reclassifies one GPU model, and everything else keeps its default kind.
    @Test func matchRulesPrecedeDefaults() throws {
        let c = try parse("""
        [Devices]
        Match=class=0x03 vendor=0x1a03 kind=ignore
        Match=vendor=0x10de device=0x2330 kind=accelerator
        """)
        let classifier = c.classifier
        #expect(classifier.kind(classCode: 0x03_0000, vendor: 0x1a03, device: 0x2000) == nil)
        #expect(classifier.kind(classCode: 0x03_0200, vendor: 0x10de, device: 0x2330) == .accelerator)
        #expect(classifier.kind(classCode: 0x03_0200, vendor: 0x10de, device: 0x20b0) == .gpu)
        #expect(classifier.kind(classCode: 0x02_0700, vendor: 0x15b3, device: 0x101b) == .nic)
    }

    /// The scanner skips a function's vendor and device files when its class rules it out: that must
    /// never skip one a rule would manage, with the defaults or with configured rules.
    @Test func mayManageNeverRulesOutAManagedClass() throws {
        let configured = try parse("""
        [Devices]
        Match=class=0x03 vendor=0x1a03 kind=ignore
        Match=class=0x0880 vendor=0x8086 kind=accelerator
        """).classifier
        let vendorOnly = try parse("[Devices]\nMatch=vendor=0x1d0f kind=accelerator\n").classifier
        let classes: [UInt32] = [0x06_0400, 0x06_0000, 0x08_8000, 0x03_0000, 0x03_0200, 0x03_8000, 0x02_0000,
                                 0x02_0700, 0x12_0000, 0x0b_4000, 0x01_0802, 0x0c_0330, 0xff_ffff]
        let vendors: [UInt16] = [0x10de, 0x1002, 0x15b3, 0x8086, 0x1a03, 0x1d0f, 0xffff]
        for classifier in [DeviceClassifier(), configured, vendorOnly] {
            for c in classes where !classifier.mayManage(classCode: c) {
                for v in vendors {
                    #expect(classifier.kind(classCode: c, vendor: v, device: 0x1234) == nil, "class \(c) vendor \(v)")
                }
            }
        }
        #expect(!DeviceClassifier().mayManage(classCode: 0x06_0400), "a PCI bridge is read no further")
        #expect(DeviceClassifier().mayManage(classCode: 0x02_0000), "Ethernet depends on the vendor")
        #expect(configured.mayManage(classCode: 0x08_8000))
        #expect(vendorOnly.mayManage(classCode: 0x06_0400), "a rule without a class may match any class")
    }

    @Test(arguments: ["0000:3b:00.0", "3b:00.0", "3B:00", "00000000:3B:00.0", "0:3b:0.0"])
    func localityAcceptsEverySpelling(spelling: String) throws {
        let c = try parse("[Devices]\nLocality=\(spelling)   2\n")
        #expect(c.localityOverrides == [try #require(address("0000:3b:00.0")): NUMANodeID(rawValue: 2)!])
    }

    @Test func localityLaterAssignmentWins() throws {
        let c = try parse("[Devices]\nLocality=3b:00.0 1\nLocality=0000:3b:00.0 0\nLocality=10000:01:00.0 33\n")
        #expect(c.localityOverrides == [
            try #require(address("0000:3b:00.0")): NUMANodeID(rawValue: 0)!,
            try #require(address("10000:01:00.0")): NUMANodeID(rawValue: 33)!,
        ])
    }

    @Test(arguments: [
        ("MaxMessageBytes=4096", Configuration.Limits(maxMessageBytes: 4096)),
        ("MaxMessageBytes=1G", Configuration.Limits(maxMessageBytes: 1 << 30)),
        ("MaxArgvBytes=128K", Configuration.Limits(maxArgvBytes: 128 << 10)),
        ("MaxEnvironmentBytes=2M", Configuration.Limits(maxEnvironmentBytes: 2 << 20)),
        ("MaxWorkersPerUser=1", Configuration.Limits(maxWorkersPerUser: 1)),
        ("MaxConnections=65536", Configuration.Limits(maxConnections: 65536)),
        ("MaxMonitorBacklog=1000000", Configuration.Limits(maxMonitorBacklog: 1_000_000)),
        ("MaxMonitorBacklog=007", Configuration.Limits(maxMonitorBacklog: 7)),
        ("MaxExclusiveCoresPerUser=3", Configuration.Limits(maxExclusiveCoresPerUser: 3)),
    ])
    func limits(line: String, expected: Configuration.Limits) throws {
        #expect(try parse("[Limits]\n\(line)\n").limits == expected)
    }

    // MARK: Drop-ins and resets

    @Test func dropInsApplyInOrderAndLaterWins() throws {
        let c = try ConfigParser.parse([
            ConfigSource(path: "main", text: "[Placement]\nDefaultMemoryPolicy=bind\nDefaultAdmission=best-effort\n"),
            ConfigSource(path: "10-a.conf", text: "[Placement]\nDefaultMemoryPolicy=interleave\n"),
            ConfigSource(path: "20-b.conf", text: "[Placement]\nDefaultMemoryPolicy=none\n"),
        ])
        #expect(c.defaultMemoryPolicy == MemoryPolicyMode.none)
        #expect(c.defaultAdmission == .bestEffort)
    }

    @Test func listsAccumulateAcrossFilesUntilAnEmptyAssignment() throws {
        let gpu = "[Devices]\nMatch=vendor=0x10de kind=gpu\nLocality=3b:00.0 1\n"
        let nic = "[Devices]\nMatch=vendor=0x15b3 kind=nic\nLocality=5e:00.0 0\n"
        let reset = "[Devices]\nMatch=\nLocality=\nMatch=vendor=0x1da3 kind=accelerator\n"
        let accumulated = try ConfigParser.parse([ConfigSource(path: "a", text: gpu), ConfigSource(path: "b", text: nic)])
        #expect(accumulated.classificationRules.map(\.vendor) == [0x10de, 0x15b3])
        #expect(accumulated.localityOverrides.count == 2)

        let afterReset = try ConfigParser.parse([ConfigSource(path: "a", text: gpu), ConfigSource(path: "b", text: nic),
                                                 ConfigSource(path: "c", text: reset)])
        #expect(afterReset.classificationRules.map(\.vendor) == [0x1da3])
        #expect(afterReset.localityOverrides.isEmpty)
    }

    /// An empty assignment puts a single-valued key back to its default, whatever an earlier file set.
    @Test func emptyAssignmentResetsToDefault() throws {
        let set = """
        [Daemon]
        Socket=/run/a
        StateDirectory=/var/lib/a
        EventSource=kernel
        WorkerCPUs=0-3
        [Placement]
        DefaultMemoryPolicy=bind
        DefaultAdmission=best-effort
        [Limits]
        MaxMessageBytes=8M
        MaxArgvBytes=8K
        MaxEnvironmentBytes=8K
        MaxWorkersPerUser=2
        MaxConnections=2
        MaxMonitorBacklog=2
        """
        let reset = """
        [Daemon]
        Socket=
        StateDirectory=
        EventSource=
        WorkerCPUs=
        [Placement]
        DefaultMemoryPolicy=
        DefaultAdmission=
        [Limits]
        MaxMessageBytes=
        MaxArgvBytes=
        MaxEnvironmentBytes=
        MaxWorkersPerUser=
        MaxConnections=
        MaxMonitorBacklog=
        """
        let changed = try ConfigParser.parse([ConfigSource(path: "a", text: set)])
        #expect(changed != Configuration())
        #expect(try ConfigParser.parse([ConfigSource(path: "a", text: set), ConfigSource(path: "b", text: reset)])
                == Configuration())
    }

    /// Resets go to the defaults the caller passed (a reload keeps command-line overrides).
    @Test func resetsGoToTheGivenDefaults() throws {
        let base = Configuration(socketPath: "/tmp/np.sock")
        let c = try ConfigParser.parse([ConfigSource(path: "a", text: "[Daemon]\nSocket=/run/a\nSocket=\n")], defaults: base)
        #expect(c.socketPath == "/tmp/np.sock")
    }

    // MARK: Refusals with file:line

    static let badLines: [(text: String, message: String)] = [
        // The example from the issue, on line 12.
        (String(repeating: "\n", count: 10) + "[Placement]\nDefaultMemoryPolicy=bindd\n",
         "\(mainPath):12: DefaultMemoryPolicy=bindd: expected preferred, bind, interleave or none"),
        ("[Placement]\nDefaultAdmission=lenient", "\(mainPath):2: DefaultAdmission=lenient: expected strict or best-effort"),
        ("[Daemon]\nEventSource=netlink", "\(mainPath):2: EventSource=netlink: expected udev, kernel or none"),
        ("[Daemon]\nEventSource=UDEV", "\(mainPath):2: EventSource=UDEV: expected udev, kernel or none"),
        // Structure.
        ("Socket=/run/x", "\(mainPath):1: Socket= appears before any [Section]"),
        ("[Deamon]\nSocket=/run/x", "\(mainPath):1: unknown section [Deamon] (expected [Daemon], [Placement], [Devices] or [Limits])"),
        ("[daemon]", "\(mainPath):1: unknown section [daemon] (expected [Daemon], [Placement], [Devices] or [Limits])"),
        ("[Daemon", "\(mainPath):1: malformed section header \"[Daemon\" (expected [Name])"),
        ("[]", "\(mainPath):1: malformed section header \"[]\" (expected [Name])"),
        ("[Daemon]\nSockets=/run/x",
         "\(mainPath):2: unknown key Sockets= in [Daemon] (expected Socket=, StateDirectory=, EventSource= or WorkerCPUs=)"),
        ("[Limits]\nMatch=vendor=0x10de kind=gpu",
         "\(mainPath):2: unknown key Match= in [Limits] (expected MaxMessageBytes=, MaxArgvBytes=, MaxEnvironmentBytes=, MaxWorkersPerUser=, MaxConnections=, MaxConnectionsPerUser=, MaxMonitorBacklog= or MaxExclusiveCoresPerUser=)"),
        ("[Daemon]\nSocket /run/x", "\(mainPath):2: expected Key=Value or [Section], found \"Socket /run/x\""),
        ("[Daemon]\n=/run/x", "\(mainPath):2: missing key before = in \"=/run/x\""),
        ("[Daemon]\nSocket=/run/\\", "\(mainPath):2: line ends in \\: continuation lines are not supported"),
        ("[Daemon]\nSocket=/run/a\0b", "\(mainPath):2: line contains a NUL byte"),
        // Paths.
        ("[Daemon]\nSocket=run/x", "\(mainPath):2: Socket=run/x: expected an absolute path"),
        ("[Daemon]\nSocket=/run/numaplaced/", "\(mainPath):2: Socket=/run/numaplaced/: names a directory; expected the socket's own path"),
        ("[Daemon]\nSocket=/" + String(repeating: "s", count: 107),
         "\(mainPath):2: Socket=/" + String(repeating: "s", count: 63) + "…: 108 bytes, longer than the 107 a Unix socket address holds"),
        ("[Daemon]\nStateDirectory=/run/../etc", "\(mainPath):2: StateDirectory=/run/../etc: must not contain .."),
        ("[Daemon]\nStateDirectory=state", "\(mainPath):2: StateDirectory=state: expected an absolute path"),
        // CPU lists.
        ("[Daemon]\nWorkerCPUs=0-3,x", "\(mainPath):2: WorkerCPUs=0-3,x: malformed element \"x\" (expected a CPU list such as 0-15,32-47)"),
        ("[Daemon]\nWorkerCPUs=7-3", "\(mainPath):2: WorkerCPUs=7-3: range 7-3 runs backwards (expected a CPU list such as 0-15,32-47)"),
        ("[Daemon]\nWorkerCPUs=0-4294967295",
         "\(mainPath):2: WorkerCPUs=0-4294967295: CPU number 4294967295 exceeds 65535 (expected a CPU list such as 0-15,32-47)"),
        // Match=.
        ("[Devices]\nMatch=vendor=0x10de", "\(mainPath):2: Match=vendor=0x10de: kind= is missing (gpu, display, accelerator, nic or ignore)"),
        ("[Devices]\nMatch=kind=ignore", "\(mainPath):2: Match=kind=ignore: needs class=, vendor= or device=: without them the rule matches every PCI function"),
        ("[Devices]\nMatch=device=0x2330 kind=gpu", "\(mainPath):2: Match=device=0x2330 kind=gpu: device= needs vendor=: PCI device ids are assigned per vendor"),
        ("[Devices]\nMatch=class=0x3 kind=gpu",
         "\(mainPath):2: Match=class=0x3 kind=gpu: class=0x3: expected 2, 4 or 6 hex digits (base class, base class and subclass, or the full class code)"),
        ("[Devices]\nMatch=class=0x03000 kind=gpu",
         "\(mainPath):2: Match=class=0x03000 kind=gpu: class=0x03000: expected 2, 4 or 6 hex digits (base class, base class and subclass, or the full class code)"),
        ("[Devices]\nMatch=class=0xzz kind=gpu",
         "\(mainPath):2: Match=class=0xzz kind=gpu: class=0xzz: expected 2, 4 or 6 hex digits (base class, base class and subclass, or the full class code)"),
        ("[Devices]\nMatch=vendor=0x12345 kind=gpu", "\(mainPath):2: Match=vendor=0x12345 kind=gpu: vendor=0x12345: expected a 16-bit hex id such as 0x10de"),
        ("[Devices]\nMatch=vendor=0x kind=gpu", "\(mainPath):2: Match=vendor=0x kind=gpu: vendor=0x: expected a 16-bit hex id such as 0x10de"),
        ("[Devices]\nMatch=vendor=0x10de kind=fpga", "\(mainPath):2: Match=vendor=0x10de kind=fpga: kind=fpga: expected gpu, display, accelerator, nic or ignore"),
        ("[Devices]\nMatch=vendor=0x10de kind=gpu subvendor=0x1028",
         "\(mainPath):2: Match=vendor=0x10de kind=gpu subvendor=0x1028: unknown field subvendor= (expected class=, vendor=, device= and kind=)"),
        ("[Devices]\nMatch=vendor=0x10de vendor=0x1002 kind=gpu", "\(mainPath):2: Match=vendor=0x10de vendor=0x1002 kind=gpu: vendor= given twice"),
        ("[Devices]\nMatch=nvidia kind=gpu", "\(mainPath):2: Match=nvidia kind=gpu: field \"nvidia\" is not name=value"),
        // Locality=.
        ("[Devices]\nLocality=3b:00.0", "\(mainPath):2: Locality=3b:00.0: expected a PCI address and a node id, such as 0000:3b:00.0 1"),
        ("[Devices]\nLocality=3b:00.0 1 2", "\(mainPath):2: Locality=3b:00.0 1 2: expected a PCI address and a node id, such as 0000:3b:00.0 1"),
        ("[Devices]\nLocality=3b:20.0 1",
         "\(mainPath):2: Locality=3b:20.0 1: \"3b:20.0\" is not a PCI address (expected [domain:]bus:device[.function], hex)"),
        ("[Devices]\nLocality=3b:00.0 -1", "\(mainPath):2: Locality=3b:00.0 -1: \"-1\" is not a NUMA node id (0 to 1023)"),
        ("[Devices]\nLocality=3b:00.0 1024", "\(mainPath):2: Locality=3b:00.0 1024: \"1024\" is not a NUMA node id (0 to 1023)"),
        ("[Devices]\nLocality=3b:00.0 one", "\(mainPath):2: Locality=3b:00.0 one: \"one\" is not a NUMA node id (0 to 1023)"),
        // Limits.
        ("[Limits]\nMaxMessageBytes=1K", "\(mainPath):2: MaxMessageBytes=1K: must be between 4K and 1G"),
        ("[Limits]\nMaxMessageBytes=2G", "\(mainPath):2: MaxMessageBytes=2G: must be between 4K and 1G"),
        ("[Limits]\nMaxArgvBytes=1T", "\(mainPath):2: MaxArgvBytes=1T: expected a size in bytes, optionally with a K, M or G suffix"),
        ("[Limits]\nMaxArgvBytes=1 M", "\(mainPath):2: MaxArgvBytes=1 M: expected a size in bytes, optionally with a K, M or G suffix"),
        ("[Limits]\nMaxEnvironmentBytes=-4096", "\(mainPath):2: MaxEnvironmentBytes=-4096: expected a size in bytes, optionally with a K, M or G suffix"),
        ("[Limits]\nMaxEnvironmentBytes=999999999999999G",
         "\(mainPath):2: MaxEnvironmentBytes=999999999999999G: expected a size in bytes, optionally with a K, M or G suffix"),
        ("[Limits]\nMaxWorkersPerUser=0", "\(mainPath):2: MaxWorkersPerUser=0: must be between 1 and 1000000"),
        ("[Limits]\nMaxWorkersPerUser=4K", "\(mainPath):2: MaxWorkersPerUser=4K: expected a whole number"),
        ("[Limits]\nMaxConnections=65537", "\(mainPath):2: MaxConnections=65537: must be between 1 and 65536"),
        ("[Limits]\nMaxMonitorBacklog=+5", "\(mainPath):2: MaxMonitorBacklog=+5: expected a whole number"),
        ("[Limits]\nMaxMonitorBacklog=1e3", "\(mainPath):2: MaxMonitorBacklog=1e3: expected a whole number"),
    ]

    @Test(arguments: badLines)
    func badLineIsRefusedWithFileAndLine(text: String, message: String) {
        do {
            _ = try parse(text)
            Issue.record("accepted: \(message)")
        } catch {
            #expect(error.description == message)
            #expect(error.file == mainPath)
        }
    }

    @Test func errorCodes() {
        func code(_ text: String) -> ConfigError.Code? {
            do { _ = try parse(text); return nil } catch { return error.code }
        }
        #expect(code("Socket=/x") == .keyOutsideSection)
        #expect(code("[Nope]") == .unknownSection)
        #expect(code("[Daemon]\nNope=1") == .unknownKey)
        #expect(code("[Daemon]\nEventSource=x") == .invalidValue)
        #expect(code("[Daemon]\nnonsense") == .syntax)
    }

    /// `check` reports every problem in file and line order; an unknown section is reported once,
    /// not once per key in it; the good lines between still apply.
    @Test func checkReportsAllErrorsAcrossFiles() {
        let (config, errors) = ConfigParser.check([
            ConfigSource(path: "/etc/numaplaced/numaplaced.conf",
                         text: "[Daemon]\nEventSource=kernel\nWorkerCPUs=x\n[Bogus]\nA=1\nB=2\n[Limits]\nMaxConnections=0\n"),
            ConfigSource(path: "/etc/numaplaced/numaplaced.conf.d/10-gpu.conf",
                         text: "# drop-in\n[Devices]\nMatch=kind=gpu\n"),
        ])
        #expect(errors.map(\.description) == [
            "/etc/numaplaced/numaplaced.conf:3: WorkerCPUs=x: malformed element \"x\" (expected a CPU list such as 0-15,32-47)",
            "/etc/numaplaced/numaplaced.conf:4: unknown section [Bogus] (expected [Daemon], [Placement], [Devices] or [Limits])",
            "/etc/numaplaced/numaplaced.conf:8: MaxConnections=0: must be between 1 and 65536",
            "/etc/numaplaced/numaplaced.conf.d/10-gpu.conf:3: Match=kind=gpu: needs class=, vendor= or device=: without them the rule matches every PCI function",
        ])
        #expect(config.eventSource == .kernel)
    }

    @Test func hostileValuesAreClippedInMessages() {
        let long = String(repeating: "x", count: 10_000)
        do {
            _ = try parse("[Daemon]\nEventSource=\(long)")
            Issue.record("accepted a 10000-character EventSource")
        } catch {
            #expect(error.description.utf8.count < 200)
        }
    }
}

// MARK: Loading files

extension ConfigParserTests {
/// The loader on real files; nested so that `--filter ConfigParserTests` runs it too.
@Suite struct Loader {
    /// A fresh directory under /tmp, removed by `remove(_:)`.
    private func makeDirectory() throws -> String {
        var template = Array("/tmp/numaplace-config-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buffer in buffer.baseAddress.map { mkdtemp($0) != nil } ?? false }
        try #require(made)
        return String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private func write(_ path: String, _ bytes: [UInt8]) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        try #require(fd >= 0)
        defer { close(fd) }
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        try #require(n == bytes.count)
    }

    private func write(_ path: String, _ text: String) throws { try write(path, Array(text.utf8)) }

    private func remove(_ directory: String) {
        let root = SysfsRoot(directory)
        for name in (try? root.list(ConfigLoader.dropInDirectoryName)) ?? [] {
            unlink(root.absolute(ConfigLoader.dropInDirectoryName + "/" + name))
        }
        rmdir(root.absolute(ConfigLoader.dropInDirectoryName))
        unlink(root.absolute(ConfigLoader.mainFileName))
        rmdir(directory)
    }

    @Test func missingDirectoryMeansDefaults() throws {
        #expect(try ConfigLoader.sources(directory: "/nonexistent/numaplaced").isEmpty)
        #expect(try ConfigLoader.load(directory: "/nonexistent/numaplaced") == Configuration())
    }

    @Test func dropInsAreReadInByteOrderAndOnlyConfFiles() throws {
        let dir = try makeDirectory()
        defer { remove(dir) }
        try write("\(dir)/numaplaced.conf", "[Placement]\nDefaultMemoryPolicy=bind\n")
        try #require(mkdir("\(dir)/numaplaced.conf.d", 0o755) == 0)
        try write("\(dir)/numaplaced.conf.d/50-b.conf", "[Placement]\nDefaultMemoryPolicy=none\n")
        try write("\(dir)/numaplaced.conf.d/10-a.conf", "[Placement]\nDefaultMemoryPolicy=interleave\n")
        // "Z" (0x5a) sorts before "a" (0x61) byte by byte, whatever the locale says.
        try write("\(dir)/numaplaced.conf.d/50-Z.conf", "[Daemon]\nEventSource=kernel\n")
        try write("\(dir)/numaplaced.conf.d/README", "not a config file\n")
        try write("\(dir)/numaplaced.conf.d/90-x.conf.example", "[Daemon]\nSocket=/run/example\n")
        try write("\(dir)/numaplaced.conf.d/.99-hidden.conf", "[Daemon]\nSocket=/run/hidden\n")

        let sources = try ConfigLoader.sources(directory: dir)
        #expect(sources.map(\.path) == [
            "\(dir)/numaplaced.conf",
            "\(dir)/numaplaced.conf.d/10-a.conf",
            "\(dir)/numaplaced.conf.d/50-Z.conf",
            "\(dir)/numaplaced.conf.d/50-b.conf",
        ])
        let c = try ConfigLoader.load(directory: dir)
        #expect(c.defaultMemoryPolicy == MemoryPolicyMode.none)
        #expect(c.eventSource == .kernel)
        #expect(c.socketPath == Configuration.defaultSocketPath)
    }

    @Test func errorsNameTheDropInPath() throws {
        let dir = try makeDirectory()
        defer { remove(dir) }
        try #require(mkdir("\(dir)/numaplaced.conf.d", 0o755) == 0)
        try write("\(dir)/numaplaced.conf.d/10-a.conf", "[Placement]\n\nDefaultAdmission=maybe\n")
        #expect(throws: ConfigError(.invalidValue, file: "\(dir)/numaplaced.conf.d/10-a.conf", line: 3,
                                    "DefaultAdmission=maybe: expected strict or best-effort")) {
            try ConfigLoader.load(directory: dir)
        }
    }

    @Test func invalidUTF8IsRefused() throws {
        let dir = try makeDirectory()
        defer { remove(dir) }
        try write("\(dir)/numaplaced.conf", Array("[Daemon]\nSocket=/run/".utf8) + [0xff, 0xfe, 0x0a])
        #expect(throws: ConfigError(.unreadable, file: "\(dir)/numaplaced.conf", line: nil, "not valid UTF-8")) {
            try ConfigLoader.load(directory: dir)
        }
    }

    @Test func oversizedFileIsRefused() throws {
        let dir = try makeDirectory()
        defer { remove(dir) }
        try write("\(dir)/numaplaced.conf", [UInt8](repeating: UInt8(ascii: "#"), count: ConfigLoader.maxFileBytes + 1))
        #expect(throws: ConfigError(.unreadable, file: "\(dir)/numaplaced.conf", line: nil, "larger than 1 MiB")) {
            try ConfigLoader.load(directory: dir)
        }
    }

    @Test func directoryInPlaceOfAFileIsRefused() throws {
        let dir = try makeDirectory()
        defer { remove(dir) }
        try #require(mkdir("\(dir)/numaplaced.conf.d", 0o755) == 0)
        try #require(mkdir("\(dir)/numaplaced.conf.d/10-dir.conf", 0o755) == 0)
        defer { rmdir("\(dir)/numaplaced.conf.d/10-dir.conf") }
        #expect(throws: ConfigError(.unreadable, file: "\(dir)/numaplaced.conf.d/10-dir.conf", line: nil,
                                    "Is a directory")) {
            try ConfigLoader.load(directory: dir)
        }
    }

    /// `--config PATH` names a directory or one file; a file is read alone, with the same bounds
    /// and its name as given in errors, relative or not.
    @Test func aPathIsOneFileOrADirectory() throws {
        let dir = try makeDirectory()
        defer { remove(dir) }
        try write("\(dir)/numaplaced.conf", "[Placement]\nDefaultMemoryPolicy=bind\n")
        #expect(try ConfigLoader.sources(path: dir).map(\.path) == ["\(dir)/numaplaced.conf"])
        let single = try ConfigLoader.sources(path: "\(dir)/numaplaced.conf")
        #expect(single.map(\.path) == ["\(dir)/numaplaced.conf"])
        #expect(try ConfigParser.parse(single).defaultMemoryPolicy == .bind)
        #expect(try ConfigLoader.sources(path: "\(dir)/missing").isEmpty)

        // Relative to the working directory (without changing it: other suites run alongside),
        // and named as given.
        var cwd = [CChar](repeating: 0, count: 4096)
        try #require(getcwd(&cwd, cwd.count) != nil)
        let depth = String(cString: cwd).split(separator: "/").count
        let relativePath = String(repeating: "../", count: depth) + dir.dropFirst() + "/numaplaced.conf"
        let relative = try ConfigLoader.sources(path: relativePath)
        #expect(relative.map(\.path) == [relativePath] && relative.first?.text.contains("bind") == true)

        try write("\(dir)/numaplaced.conf", Array("[Daemon]\n".utf8) + [0xff, 0x0a])
        #expect(throws: ConfigError(.unreadable, file: relativePath, line: nil, "not valid UTF-8")) {
            try ConfigLoader.sources(path: relativePath)
        }
    }

    // MARK: The shipped file

    /// `etc/numaplaced` of this repository.
    private var shippedDirectory: String {
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)   // Tests/NumaPlaceCoreTests/ConfigParserTests.swift
        return parts.joined(separator: "/") + "/etc/numaplaced"
    }

    @Test func shippedFileParsesToTheDefaults() throws {
        let sources = try ConfigLoader.sources(directory: shippedDirectory)
        #expect(sources.map(\.path) == ["\(shippedDirectory)/numaplaced.conf"])
        #expect(try ConfigParser.parse(sources) == Configuration())
    }

    /// Every key appears commented out at its default: uncommenting all of them (`#Key=value` lines)
    /// still gives the defaults, so the file cannot drift from the code.
    @Test func shippedFileDocumentsEveryKeyAtItsDefault() throws {
        let sources = try ConfigLoader.sources(directory: shippedDirectory)
        let main = try #require(sources.first)
        var uncommented: [String] = []
        var keysShown: Set<String> = []
        for line in main.text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("#"), let next = line.dropFirst().first, next.isUppercase, line.contains("=") {
                let assignment = line.dropFirst()
                keysShown.insert(String(assignment.prefix(while: { $0 != "=" })))
                uncommented.append(String(assignment))
            } else {
                uncommented.append(String(line))
            }
        }
        let allKeys = ConfigParser.knownKeys.flatMap(\.keys)
        #expect(keysShown == Set(allKeys))
        #expect(try ConfigParser.parse([ConfigSource(path: main.path, text: uncommented.joined(separator: "\n"))])
                == Configuration())
    }

    /// The example drop-in shipped beside the main file is valid (the loader ignores it by name).
    @Test func shippedExampleDropInIsValid() throws {
        let root = SysfsRoot(shippedDirectory)
        let path = ConfigLoader.dropInDirectoryName + "/50-example.conf.example"
        let text = try root.read(path)
        let c = try ConfigParser.parse([ConfigSource(path: root.absolute(path), text: text)])
        #expect(c.defaultAdmission == .bestEffort)
        #expect(c.classificationRules.count == 2)
        #expect(c.localityOverrides == [try #require(address("0000:b1:00.0")): NUMANodeID(rawValue: 1)!])
    }
}
}
