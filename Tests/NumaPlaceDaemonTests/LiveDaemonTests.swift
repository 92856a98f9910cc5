import CNumaPlaceShim
import Foundation
import NumaPlaceProtocol
import NumaPlaceTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `numaplaced` as a subprocess on a socket in a temporary directory of its own.
final class LiveDaemon {
    let directory: String
    let socket: String
    let stateDirectory: String
    let configFile: String
    let eventSource: String
    let log: String
    private(set) var process: Process?

    init(config: String = "", eventSource: String = "none") throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("np-live-\(UUID().uuidString.prefix(8))").path
        socket = directory + "/run/io.numaplaced"
        stateDirectory = directory + "/state"
        configFile = directory + "/numaplaced.conf"
        log = directory + "/daemon.log"
        self.eventSource = eventSource
        try FileManager.default.createDirectory(atPath: directory + "/run", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: configFile, contents: Data(config.utf8))
        FileManager.default.createFile(atPath: log, contents: nil)
    }

    var pid: Int32 { process?.processIdentifier ?? -1 }

    /// Starts the daemon and returns once it accepts connections.
    /// Lets another user reach the socket: the directories traversable, the socket writable.
    func openToOtherUsers() {
        chmod(directory, 0o755)
        chmod(directory + "/run", 0o755)
        chmod(socket, 0o666)
    }

    func start() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: LiveHost.binary)
        p.arguments = ["--socket", socket, "--state-dir", stateDirectory, "--config", configFile,
                       "--event-source", eventSource, "--log-to", "stderr", "--log-level", "debug"]
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "LISTEN_FDS")
        env.removeValue(forKey: "LISTEN_PID")
        env.removeValue(forKey: "NOTIFY_SOCKET")
        p.environment = env
        p.standardInput = FileHandle.nullDevice
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        handle.seekToEndOfFile()
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        process = p
        // Ready once it logged that it serves (after it set the socket's mode) and accepts a
        // connection; a daemon that exits instead fails the test with its log.
        let deadline = LiveHost.monotonicMicroseconds() + 60_000_000
        let logged = logText.components(separatedBy: "serving io.numaplaced.Manager").count
        while LiveHost.monotonicMicroseconds() < deadline {
            guard p.isRunning else { throw Failure("numaplaced exited with \(p.terminationStatus):\n\(logText)") }
            if logText.components(separatedBy: "serving io.numaplaced.Manager").count > logged,
               (try? VarlinkClient(path: socket)) != nil { return }
            usleep(20_000)
        }
        throw Failure("numaplaced did not accept connections within 60 s:\n\(logText)")
    }

    var logText: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    /// Sends `signal` and waits for the daemon to exit.
    func stop(signal: Int32 = SIGTERM) {
        guard let p = process else { return }
        if p.isRunning { kill(p.processIdentifier, signal) }
        p.waitUntilExit()
        process = nil
    }

    var isRunning: Bool { process?.isRunning ?? false }

    /// A client whose reads give up after 30 s, so a daemon that never answers fails the test
    /// instead of hanging it.
    func client() throws -> VarlinkClient {
        let c = try VarlinkClient(path: socket)
        var tv = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(c.fileDescriptor, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(c.fileDescriptor, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        return c
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

struct Failure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

extension VarlinkClient {
    /// Calls a method with JSON parameters and returns the reply's parameters.
    @discardableResult
    func call(_ method: String, _ parameters: [String: JSONValue] = [:]) throws -> JSONValue {
        try call("io.numaplaced.Manager." + method, JSONValue.object(parameters), as: JSONValue.self)
    }

    /// Calls a method that must fail, and returns the error.
    func failing(_ method: String, _ parameters: [String: JSONValue] = [:]) throws -> VarlinkError {
        do {
            let r = try call(method, parameters)
            throw Failure("\(method) succeeded: \(r)")
        } catch VarlinkClient.ClientError.remote(let e) {
            return e
        }
    }

    /// The next streamed reply's parameters.
    func next() throws -> JSONValue { try receive(JSONValue.self).reply }

    /// True when the daemon closed this connection (EOF or a reset), false when it answered.
    func isClosedByPeer() -> Bool {
        do {
            _ = try receiveRaw()
            return false
        } catch .closed {
            return true
        } catch .io(let e) {
            return e.rawValue == ECONNRESET || e.rawValue == EPIPE
        } catch {
            return false
        }
    }
}

extension JSONValue {
    var array: [JSONValue] { if case .array(let a) = self { return a }; return [] }
}

@Suite(.serialized) struct LiveDaemonTests {
    static let notBuilt = "needs the daemon binary: run `swift build` first"

    // MARK: (a) a real third-party client

    static let pythonSession = #"""
    import json, sys, varlink
    address, spawn = sys.argv[1], json.loads(sys.argv[2])
    result = {}
    with varlink.Client.new_with_address(address) as client:
        # Introspection: the client fetches and parses the interface description itself.
        result["interfaces"] = client.get_interfaces()
        result["members"] = sorted(client.get_interface("io.numaplaced.Manager").members.keys())
        with client.open("io.numaplaced.Manager") as mgr, client.open("io.numaplaced.Manager") as mon:
            result["topology"] = mgr.GetTopology()
            events = mon.Monitor(_more=True)
            result["ready"] = next(events)["event"]
            worker = mgr.Spawn(**spawn)["worker"]
            result["spawned"] = worker
            result["waited"] = mgr.Wait(id=worker["id"])["worker"]
            seen = []
            for reply in events:
                event = reply["event"]
                if (event.get("worker") or {}).get("id") == worker["id"]:
                    seen.append(event)
                    if event["kind"] == "workerExited":
                        break
            result["events"] = seen
            try:
                mgr.GetDevice(address="0000:ff:1f.7")
            except varlink.VarlinkError as e:
                result["error"] = e.error()
    print(json.dumps(result))
    """#

    @Test(.enabled(if: LiveHost.binaryBuilt, "\(notBuilt)"),
          .enabled(if: LiveHost.pythonVarlink, "needs the PyPI varlink client: python3 -m pip install varlink"),
          .timeLimit(.minutes(3)))
    func pythonVarlinkClientIntrospectsAndCalls() throws {
        let daemon = try LiveDaemon()
        try daemon.start()
        defer { daemon.stop() }
        let address = "unix:" + daemon.socket

        // The probe reports its own affinity and environment; /bin/sh stands in without a compiler.
        let probe = daemon.directory + "/numaplace-probe"
        let compiled = try LiveHost.run(["/usr/bin/env", "cc", "-O2", "-o", probe,
                                         LiveHost.repository + "/Tests/probe/numaplace-probe.c"])
        let probeOut = daemon.directory + "/probe.out"
        let argv: [String] = compiled.status == 0 ? [probe, "exit", "7"] : ["/bin/sh", "-c", "echo {} > \(probeOut); exit 7"]
        if compiled.status != 0 { print("probe not compiled (\(compiled.stderr)); spawning /bin/sh instead") }
        let spawn = try JSONSerialization.data(withJSONObject: ["argv": argv, "stdout": probeOut, "name": "probe"])

        let script = daemon.directory + "/session.py"
        try Self.pythonSession.write(toFile: script, atomically: true, encoding: .utf8)
        let ran = try LiveHost.run(["/usr/bin/env", "python3", script, address, String(decoding: spawn, as: UTF8.self)],
                                   timeout: 90)
        try #require(ran.status == 0, "python varlink session failed: \(ran.stderr)\n\(daemon.logText)")
        let r = try JSONDecoder().decode(JSONValue.self, from: Data(ran.stdout.utf8))

        #expect(r["interfaces"] == .array([.string("org.varlink.service"), .string("io.numaplaced.Manager")]))
        let members = r["members"]?.array.compactMap(\.stringValue) ?? []
        for m in ["GetTopology", "ListDevices", "GetDevice", "Spawn", "ListWorkers", "GetWorker", "Signal", "Wait",
                  "Monitor", "GetStatus", "NoSuchDevice", "PermissionDenied"] {
            #expect(members.contains(m), "the interface the client parsed lacks \(m)")
        }
        let online = try String(contentsOfFile: "/sys/devices/system/cpu/online", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(r["topology"]?["onlineCPUs"] == .string(online))
        #expect(!(r["topology"]?["nodes"]?.array.isEmpty ?? true))
        #expect(r["ready"]?["kind"] == .string("ready"))
        let spawned = r["spawned"]
        #expect(spawned?["state"] == .string("running") || spawned?["state"] == .string("exited"))
        #expect(spawned?["argv"] == .array(argv.map(JSONValue.string)))
        #expect(r["waited"]?["exit"]?["how"] == .string("exited"))
        #expect(r["waited"]?["exit"]?["code"] == .int(7))
        let events = r["events"]?.array ?? []
        #expect(events.map { $0["kind"] } == [.string("workerStarted"), .string("workerExited")])
        #expect(events.last?["worker"]?["exit"]?["code"] == .int(7))
        #expect(r["error"] == .string("io.numaplaced.Manager.NoSuchDevice"))

        // The worker's own report: it ran where the reply says the placement was applied.
        if compiled.status == 0 {
            let report = try JSONDecoder().decode(JSONValue.self, from: Data(contentsOf: URL(fileURLWithPath: probeOut)))
            #expect(report["cpus"] == spawned?["applied"]?["cpus"])
            #expect(report["env"]?["NUMAPLACE_CPUS"] == spawned?["requested"]?["cpus"])
        }

        // The command-line client of the same package, for the transcript in the issue.
        for args in [["info", address], ["help", address + "/io.numaplaced.Manager"],
                     ["call", address + "/io.numaplaced.Manager.GetStatus", "{}"]] {
            let cli = try LiveHost.run(["/usr/bin/env", "python3", "-m", "varlink.cli"] + args, timeout: 60)
            #expect(cli.status == 0, "varlink.cli \(args.joined(separator: " ")): \(cli.stderr)")
            if args[0] == "help" {
                #expect(cli.stdout.trimmingCharacters(in: .newlines) == Manager.interfaceDescription.trimmingCharacters(in: .newlines))
            } else {
                print("$ python3 -m varlink.cli \(args.joined(separator: " "))\n\(cli.stdout)")
            }
        }
    }

    // MARK: (b) hostile clients

    @Test(.enabled(if: LiveHost.binaryBuilt, "\(notBuilt)"), .timeLimit(.minutes(3)))
    func splitAndPipelinedMessagesAreServed() throws {
        let daemon = try LiveDaemon()
        try daemon.start()
        defer { daemon.stop() }
        let c = try daemon.client()
        let status = Array(#"{"method":"io.numaplaced.Manager.GetStatus"}"#.utf8) + [0]
        // One byte per write(2).
        for b in status { try c.send(raw: [b]) }
        #expect(try c.receive(JSONValue.self).reply["version"] != nil)
        // Split with the NUL alone in the second write.
        try c.send(raw: Array(status.dropLast()))
        try c.send(raw: [0])
        #expect(try c.receive(JSONValue.self).reply["version"] != nil)
        // Many calls in one write, far more than the 64 a connection runs at a time, are all answered
        // in order (the daemon stops reading rather than closing the connection).
        var batch: [UInt8] = []
        for i in 0..<1000 {
            batch += Array(#"{"method":"io.numaplaced.Manager.GetWorker","parameters":{"id":"x\#(i)"}}"#.utf8) + [0]
        }
        try c.send(raw: batch)
        for i in 0..<1000 {
            do {
                _ = try c.receive(JSONValue.self)
                Issue.record("GetWorker x\(i) succeeded")
            } catch VarlinkClient.ClientError.remote(let e) {
                #expect(e.name == "io.numaplaced.Manager.NoSuchWorker")
                #expect(e.parameters["id"] == .string("x\(i)"), "replies out of order")
            }
        }
        // Errors that are answers keep the connection open.
        #expect(try c.failing("Frobnicate").name == "org.varlink.service.MethodNotFound")
        #expect(try c.failing("GetDevice", ["address": .int(3)]).name == "org.varlink.service.InvalidParameter")
        #expect(try c.failing("Monitor").name == "org.varlink.service.ExpectedMore")
        #expect(try c.call("GetStatus")["version"] != nil)
    }

    @Test(.enabled(if: LiveHost.binaryBuilt, "\(notBuilt)"), .timeLimit(.minutes(3)))
    func garbageAndOversizedMessagesCloseOnlyTheirConnection() throws {
        let daemon = try LiveDaemon()
        try daemon.start()
        defer { daemon.stop() }
        // A client in the middle of a Monitor stream, which must survive everything below.
        let watcher = try daemon.client()
        try watcher.sendCall("io.numaplaced.Manager.Monitor", Empty(), more: true)
        #expect(try watcher.next()["event"]?["kind"] == .string("ready"))

        let hostile: [(String, [UInt8])] = [
            ("text", Array("hello varlink\n".utf8) + [0]),
            ("array", Array("[1,2,3]".utf8) + [0]),
            ("no method", Array(#"{"parameters":{}}"#.utf8) + [0]),
            ("method not a string", Array(#"{"method":17}"#.utf8) + [0]),
            ("invalid UTF-8", Array(#"{"method":"io.numaplaced.Manager.GetStatus","x":""#.utf8) + [0xff, 0xfe] + Array(#""}"#.utf8) + [0]),
            ("deep", Array(repeating: UInt8(ascii: "["), count: 100_000) + [0]),
            ("empty", [0]),
        ]
        for (name, bytes) in hostile {
            let c = try daemon.client()
            try c.send(raw: bytes)
            #expect(c.isClosedByPeer(), "\(name): the connection should be closed")
            #expect(daemon.isRunning, "\(name): the daemon died:\n\(daemon.logText)")
            #expect(try daemon.client().call("GetStatus")["version"] != nil, "\(name): a new client is not served")
        }

        // More than MaxMessageBytes (1 MiB by default) without a NUL.
        let big = try daemon.client()
        let chunk = [UInt8](repeating: UInt8(ascii: " "), count: 64 << 10)
        var sent = 0, refused = false
        while sent <= (1 << 20) + chunk.count {
            do { try big.send(raw: chunk) } catch {
                refused = true  // EPIPE/ECONNRESET: the daemon closed it while we were still writing
                break
            }
            sent += chunk.count
        }
        #expect(refused || big.isClosedByPeer(), "an oversized message must close its connection")
        #expect(daemon.isRunning)

        // The watcher's stream is intact: it sees the event of a worker started now.
        let c = try daemon.client()
        let w = try c.call("Spawn", ["argv": .array([.string("/bin/true")])])
        var kinds: [String] = []
        while kinds.count < 2 {
            let e = try watcher.next()["event"]
            if e?["worker"]?["id"] == w["worker"]?["id"] { kinds.append(e?["kind"]?.stringValue ?? "?") }
        }
        #expect(kinds == ["workerStarted", "workerExited"])
    }

    @Test(.enabled(if: LiveHost.binaryBuilt, "\(notBuilt)"), .timeLimit(.minutes(3)))
    func fiveHundredIdleConnectionsDoNotStallAnotherClient() throws {
        Self.raiseDescriptorLimit()
        let daemon = try LiveDaemon(config: "[Limits]\nMaxConnections=1024\n")
        try daemon.start()
        defer { daemon.stop() }
        var idle: [VarlinkClient] = []
        for i in 0..<500 {
            let c = try daemon.client()
            // Half of them also leave a message half sent.
            if i % 2 == 0 { try c.send(raw: Array(#"{"method":"io.numaplaced.Manager.GetSt"#.utf8)) }
            idle.append(c)
        }
        let start = LiveHost.monotonicMicroseconds()
        let served = try daemon.client()
        let topology = try served.call("GetTopology")
        #expect(!(topology["nodes"]?.array.isEmpty ?? true))
        let w = try served.call("Spawn", ["argv": .array([.string("/bin/true")])])
        let waited = try served.call("Wait", ["id": w["worker"]?["id"] ?? .null])
        #expect(waited["worker"]?["exit"]?["how"] == .string("exited"))
        print("served GetTopology, Spawn and Wait beside 500 idle connections in \((LiveHost.monotonicMicroseconds() - start) / 1000) ms")
        // The idle ones are still connected, and one of them can finish its call.
        try idle[0].send(raw: Array(#"atus"}"#.utf8) + [0])
        #expect(try idle[0].receive(JSONValue.self).reply["version"] != nil)
        idle.removeAll()
    }

    @Test(.enabled(if: LiveHost.binaryBuilt, "\(notBuilt)"), .timeLimit(.minutes(3)))
    func connectionsBeyondTheLimitAreClosedAndServiceResumes() throws {
        let daemon = try LiveDaemon(config: "[Limits]\nMaxConnections=8\n")
        try daemon.start()
        defer { daemon.stop() }
        /// A connection the daemon serves. A slot frees when the daemon sees a close, which may
        /// trail the client's close (the start-up probe's, the held ones'), so a refusal is retried.
        func servedClient() throws -> VarlinkClient {
            let deadline = LiveHost.monotonicMicroseconds() + 30_000_000
            while true {
                let c = try daemon.client()
                if (try? c.call("GetStatus")) != nil { return c }
                guard LiveHost.monotonicMicroseconds() < deadline else { throw Failure("no connection is served") }
                usleep(10_000)
            }
        }
        var held: [VarlinkClient] = []
        for _ in 0..<8 { held.append(try servedClient()) }
        // The daemon marks a call done just after its reply is on the way, so a client can see the reply
        // first; on a loaded host that mark can trail the next connections' (then held[0] is not the one
        // idle longest). Give the last marks time to land.
        usleep(300_000)
        // Then the seven others are used again, so held[0] is idle longest by that margin at least,
        // whatever order the first marks landed in.
        for c in held.dropFirst() { _ = try c.call("GetStatus") }
        usleep(100_000)
        // Idle connections do not lock newcomers out: the one idle longest gives up its slot.
        do {
            let extra = try daemon.client()
            #expect(try extra.call("GetStatus")["version"] != nil, "a ninth client is served while eight sit idle")
            #expect(held[0].isClosedByPeer(), "the connection idle longest was closed for it")
            #expect(try held[7].call("GetStatus")["version"] != nil, "the other connections stay served")
            held.removeAll()
        }
        // Busy connections (Monitor streams) are never closed for a newcomer: with all eight busy,
        // the ninth is refused.
        var streams: [VarlinkClient] = []
        for _ in 0..<8 {
            let c = try servedClient()
            try c.sendCall("io.numaplaced.Manager.Monitor", Empty(), more: true)
            _ = try c.receiveRaw()
            streams.append(c)
        }
        let ninth = try daemon.client()
        try? ninth.send(raw: Array(#"{"method":"io.numaplaced.Manager.GetStatus"}"#.utf8) + [0])
        #expect(ninth.isClosedByPeer(), "the ninth connection must be refused when every one is busy")
        streams.removeAll()
        #expect(try servedClient().call("GetStatus")["version"] != nil)
    }

    /// A Monitor client that never reads is dropped once its unsent replies reach the bound,
    /// while the calls that produce the events keep being served.
    @Test(.enabled(if: LiveHost.binaryBuilt, "\(notBuilt)"), .timeLimit(.minutes(3)))
    func monitorThatStopsReadingIsDroppedWithoutStallingOthers() throws {
        let daemon = try LiveDaemon(config: "[Limits]\nMaxMonitorBacklog=16\n")
        try daemon.start()
        defer { daemon.stop() }
        let slow = try daemon.client()
        try slow.sendCall("io.numaplaced.Manager.Monitor", Empty(), more: true)
        let c = try daemon.client()
        // Fewer than a uid's exited history (256), so that GetStatus counts every one.
        let workers = 200
        for _ in 0..<workers {
            let w = try c.call("Spawn", ["argv": .array([.string("/bin/true")])])
            try c.call("Wait", ["id": w["worker"]?["id"] ?? .null])
        }
        #expect(try c.call("GetStatus")["workers"] == .int(workers))
        // Now read what the slow client was sent: fewer events than happened, then the end.
        var received = 0
        var ended = false
        while !ended {
            do {
                _ = try slow.receiveRaw()
                received += 1
            } catch .closed {
                ended = true
            } catch .io(let e) where e.rawValue == ECONNRESET {
                ended = true
            } catch {
                Issue.record("the slow Monitor client was not dropped: \(error) after \(received) replies")
                break
            }
        }
        #expect(received < 2 * workers + 1)
        print("a Monitor client that stopped reading got \(received) of \(2 * workers + 1) replies before it was dropped")
        let fresh = try daemon.client()
        try fresh.sendCall("io.numaplaced.Manager.Monitor", Empty(), more: true)
        #expect(try fresh.next()["event"]?["kind"] == .string("ready"))
    }

    static func raiseDescriptorLimit() {
        var l = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &l)
        if l.rlim_cur < 4096 {
            l.rlim_cur = min(l.rlim_max, 4096)
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &l)
        }
    }

    // MARK: (c) hotplug on this machine

    /// The first host PCI function of base class 0x02 (network): virtio-net and friends.
    static let hostNIC: String? = {
        let dir = "/sys/bus/pci/devices"
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted()
        return names.first { name in
            (try? String(contentsOfFile: "\(dir)/\(name)/class", encoding: .utf8))?.hasPrefix("0x02") == true
        }
    }()

    /// The daemon's device table, and the same daemon binary's fresh scan of sysfs (`--dump`).
    func tableAndSysfs(_ client: VarlinkClient, _ daemon: LiveDaemon) throws -> (table: JSONValue?, sysfs: JSONValue?) {
        let table = try client.call("GetTopology")["devices"]
        let dump = try LiveHost.run([LiveHost.binary, "--dump", "--config", daemon.configFile])
        try #require(dump.status == 0, "--dump failed: \(dump.stderr)")
        let sysfs = try JSONDecoder().decode(JSONValue.self, from: Data(dump.stdout.utf8))["devices"]
        return (table, sysfs)
    }

    @Test(.enabled(if: LiveHost.binaryBuilt, "\(notBuilt)"),
          .enabled(if: LiveHost.isRoot, "needs root to write uevent files under /sys"),
          .enabled(if: hostNIC != nil, "needs a PCI network function (class 0x02) to classify as managed"),
          .timeLimit(.minutes(3)))
    func kernelUeventsKeepTheTableEqualToSysfs() throws {
        let nic = try #require(Self.hostNIC)
        let sysdir = "/sys/bus/pci/devices/\(nic)"
        let daemon = try LiveDaemon(config: "[Devices]\nMatch=class=0x02 kind=nic\n", eventSource: "kernel")
        try daemon.start()
        defer { daemon.stop() }
        let c = try daemon.client()
        var (table, sysfs) = try tableAndSysfs(c, daemon)
        #expect(table?.array.contains { $0["address"] == .string(nic) } == true, "\(nic) is not managed: \(table ?? .null)")
        #expect(table == sysfs)

        let monitor = try daemon.client()
        try monitor.sendCall("io.numaplaced.Manager.Monitor", Empty(), more: true)
        #expect(try monitor.next()["event"]?["kind"] == .string("ready"))

        // Synthetic uevents: the kernel emits them, nothing about the device changes. `remove`
        // written to a uevent file only announces a removal; the daemon re-reads sysfs, finds the
        // device still there, and must keep it.
        for action in ["change", "add", "remove", "unbind", "bind", "change"] {
            try LiveHost.writeAttribute(sysdir + "/uevent", action)
        }

        // Each burst reaches monitors as deviceChanged (coalesced: at least one, never more than
        // the events), and never as a removal: the device is still in sysfs.
        var kinds: [String] = []
        while kinds.isEmpty || monitor.waitReadable(timeoutMilliseconds: 500) {
            let e = try monitor.next()["event"]
            if e?["address"] == .string(nic) { kinds.append(e?["kind"]?.stringValue ?? "?") }
        }
        #expect(!kinds.isEmpty && kinds.count <= 6 && kinds.allSatisfy { $0 == "deviceChanged" },
                "synthetic uevents must reach monitors as deviceChanged only: \(kinds)")

        // uevent → Monitor latency, one `change` at a time (printed, never asserted).
        var latencies: [UInt64] = []
        var serverSide: [Int] = []
        for _ in 0..<20 {
            let wall = LiveHost.realtimeMicroseconds()
            let t0 = LiveHost.monotonicMicroseconds()
            try LiveHost.writeAttribute(sysdir + "/uevent", "change")
            while true {
                let e = try monitor.next()["event"]
                guard e?["address"] == .string(nic) else { continue }
                #expect(e?["kind"] == .string("deviceChanged"))
                latencies.append(LiveHost.monotonicMicroseconds() - t0)
                serverSide.append((e?["timestamp"]?.intValue ?? wall) - wall)
                break
            }
        }
        let sorted = latencies.sorted()
        print("uevent → Monitor reply latency over \(sorted.count) changes of \(nic): "
              + "min \(sorted.first ?? 0) µs, median \(sorted[sorted.count / 2]) µs, max \(sorted.last ?? 0) µs; "
              + "uevent → event published (daemon clock): median \(serverSide.sorted()[serverSide.count / 2]) µs")

        // A burst of 40 changes, not waited for: coalesced into fewer events, the table intact.
        for _ in 0..<40 { try LiveHost.writeAttribute(sysdir + "/uevent", "change") }
        var burst = 0
        while monitor.waitReadable(timeoutMilliseconds: 500) {
            if try monitor.next()["event"]?["address"] == .string(nic) { burst += 1 }
        }
        #expect(burst >= 1 && burst <= 40)
        print("a burst of 40 change uevents reached Monitor as \(burst) events")
        (table, sysfs) = try tableAndSysfs(c, daemon)
        #expect(table == sysfs, "the device table must equal sysfs after the events")
        #expect(table?.array.contains { $0["address"] == .string(nic) } == true, "a synthetic remove dropped \(nic)")
        #expect(daemon.isRunning)
    }

    // MARK: (d) restart re-adoption

    @Test(.enabled(if: LiveHost.binaryBuilt, "\(notBuilt)"), .timeLimit(.minutes(4)))
    func sigkilledDaemonReadoptsItsWorkers() throws {
        // The test process becomes the subreaper of the workers the killed daemon leaves behind, so
        // that their zombies are collected here (PID 1 in a container may never reap them).
        let prSetChildSubreaper: Int32 = 36  // <linux/prctl.h>
        #expect(np_prctl(prSetChildSubreaper, 1, 0, 0, 0) == 0)
        defer { _ = np_prctl(prSetChildSubreaper, 0, 0, 0, 0) }
        let daemon = try LiveDaemon()
        try daemon.start()
        var pids: [Int] = []
        defer {
            for pid in pids where LiveHost.isRunning(pid) { kill(pid_t(pid), SIGKILL) }
            for pid in pids { var s: Int32 = 0; _ = waitpid(pid_t(pid), &s, 0) }
        }
        let c = try daemon.client()
        var ids: [JSONValue] = []
        for _ in 0..<20 {
            let w = try c.call("Spawn", ["argv": .array([.string("/bin/sleep"), .string("300")])])["worker"]
            ids.append(w?["id"] ?? .null)
            pids.append(w?["pid"]?.intValue ?? -1)
        }
        #expect(Set(ids).count == 20)
        // A 21st worker ends while no daemon watches it; its exit cannot be known, only that it is gone.
        let doomed = try c.call("Spawn", ["argv": .array([.string("/bin/sleep"), .string("300")])])["worker"]
        let doomedPID = pid_t(doomed?["pid"]?.intValue ?? -1)
        daemon.stop(signal: SIGKILL)
        kill(doomedPID, SIGKILL)
        var doomedStatus: Int32 = 0
        #expect(waitpid(doomedPID, &doomedStatus, 0) == doomedPID)
        // None of them died with the daemon.
        let survivors = pids.filter(LiveHost.isRunning)
        #expect(survivors.count == 20, "workers killed by the daemon's death: \(Set(pids).subtracting(survivors))")

        try daemon.start()
        let c2 = try daemon.client()
        let listed = try c2.call("ListWorkers")["workers"]?.array ?? []
        let adopted = listed.filter { ids.contains($0["id"] ?? .null) }
        #expect(adopted.count == 20)
        #expect(adopted.allSatisfy { $0["adopted"] == .bool(true) && $0["state"] == .string("running") })
        #expect(Set(adopted.compactMap { $0["pid"]?.intValue }) == Set(pids))
        #expect(try c2.call("GetStatus")["runningWorkers"] == .int(20))
        let gone = listed.first { $0["id"] == doomed?["id"] }
        #expect(gone?["state"] == .string("exited"))
        #expect(gone?["exit"]?["how"] == .string("unknown"))
        #expect(try c2.call("Wait", ["id": doomed?["id"] ?? .null])["worker"]?["exit"]?["how"] == .string("unknown"))

        let monitor = try daemon.client()
        try monitor.sendCall("io.numaplaced.Manager.Monitor", Empty(), more: true)
        #expect(try monitor.next()["event"]?["kind"] == .string("ready"))
        for id in ids { try c2.call("Signal", ["id": id, "signal": .int(Int(SIGTERM))]) }
        for id in ids {
            let w = try c2.call("Wait", ["id": id])["worker"]
            #expect(w?["state"] == .string("exited"))
            // Not the daemon's child any more: the status went to the subreaper, and it says so.
            #expect(w?["exit"]?["how"] == .string("unknown"))
        }
        var exited: Set<JSONValue> = []
        while exited.count < 20 {
            let e = try monitor.next()["event"]
            if e?["kind"] == .string("workerExited"), let id = e?["worker"]?["id"], ids.contains(id) {
                #expect(e?["worker"]?["adopted"] == .bool(true))
                exited.insert(id)
            }
        }
        for pid in pids {
            var status: Int32 = 0
            #expect(waitpid(pid_t(pid), &status, 0) == pid_t(pid), "worker \(pid) was not reparented here")
            #expect(status & 0x7f == SIGTERM, "worker \(pid) ended by \(status & 0x7f), not by the Signal call")
        }
        pids.removeAll()
        // A third start finds nothing left to adopt.
        daemon.stop()
        try daemon.start()
        let running = try daemon.client().call("GetStatus")["runningWorkers"]
        #expect(running == .int(0))
        daemon.stop()
    }

    // MARK: (e) a second uid

    static let testUser = "numaplace-test"

    /// The second user, created for the test when it does not exist yet (and then removed after it).
    struct TestUser {
        let uid: Int
        let gid: Int
        let created: Bool
        func remove() { if created { _ = try? LiveHost.run(["/usr/sbin/userdel", testUser]) } }
    }

    static func makeTestUser() throws -> TestUser {
        var created = false
        if getpwnam(testUser) == nil {
            let add = try LiveHost.run(["/usr/sbin/useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                                        testUser])
            try #require(add.status == 0, "useradd: \(add.stderr)")
            created = true
        }
        let pw = try #require(getpwnam(testUser))
        return TestUser(uid: Int(pw.pointee.pw_uid), gid: Int(pw.pointee.pw_gid), created: created)
    }

    static let rawClient = #"""
    import json, socket, sys
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(sys.argv[1])
    buf = b""
    for call in sys.argv[2:]:
        s.sendall(call.encode() + b"\0")
        while b"\0" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                sys.exit("connection closed")
            buf += chunk
        message, buf = buf.split(b"\0", 1)
        print(message.decode(), flush=True)
    """#

    @Test(.enabled(if: LiveHost.binaryBuilt, "\(notBuilt)"),
          .enabled(if: LiveHost.isRoot, "needs root to create a second user and change uid"),
          .enabled(if: LiveHost.systemPython != nil && LiveHost.setpriv != nil, "needs /usr/bin/python3 and setpriv"),
          .timeLimit(.minutes(3)))
    func secondUserIsConfinedToItsOwnWorkers() throws {
        let user = try Self.makeTestUser()
        defer { user.remove() }
        let uid = user.uid, gid = user.gid

        let daemon = try LiveDaemon()
        try daemon.start()
        defer { daemon.stop() }
        daemon.openToOtherUsers()
        let script = daemon.directory + "/client.py"
        try Self.rawClient.write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o644)

        /// Runs calls in one connection as the test user; returns the decoded replies.
        func asUser(_ calls: [String]) throws -> [JSONValue] {
            let ran = try LiveHost.run([LiveHost.setpriv!, "--reuid=\(uid)", "--regid=\(gid)", "--clear-groups",
                                        LiveHost.systemPython!, script, daemon.socket] + calls, timeout: 60)
            try #require(ran.status == 0, "client as \(Self.testUser): \(ran.stderr)")
            return try ran.stdout.split(separator: "\n").map { try JSONDecoder().decode(JSONValue.self, from: Data(String($0).utf8)) }
        }
        func m(_ method: String, _ parameters: String = "{}") -> String {
            #"{"method":"io.numaplaced.Manager.\#(method)","parameters":\#(parameters)}"#
        }

        let root = try daemon.client()
        let rootWorker = try root.call("Spawn", ["argv": .array([.string("/bin/sleep"), .string("300")])])["worker"]
        let rootID = rootWorker?["id"]?.stringValue ?? "?"
        var pids = [rootWorker?["pid"]?.intValue ?? -1]
        defer { for pid in pids where LiveHost.isRunning(pid) { kill(pid_t(pid), SIGKILL) } }

        let spawned = try asUser([m("Spawn", #"{"argv":["/bin/sleep","300"]}"#)])
        let userWorker = spawned.first?["parameters"]?["worker"]
        let userID = try #require(userWorker?["id"]?.stringValue, "user spawn failed: \(spawned)")
        let userPID = userWorker?["pid"]?.intValue ?? -1
        pids.append(userPID)
        #expect(userWorker?["uid"] == .int(uid))
        #expect(userWorker?["gid"] == .int(gid))
        // The kernel's view of the worker: every uid and gid is the caller's, no root group.
        let status = try String(contentsOfFile: "/proc/\(userPID)/status", encoding: .utf8)
        func field(_ name: String) -> [String] {
            status.split(separator: "\n").first { $0.hasPrefix(name + ":") }?
                .dropFirst(name.count + 1).split(whereSeparator: \.isWhitespace).map(String.init) ?? []
        }
        #expect(field("Uid") == Array(repeating: "\(uid)", count: 4))
        #expect(field("Gid") == Array(repeating: "\(gid)", count: 4))
        #expect(!field("Groups").contains("0"))

        let replies = try asUser([
            m("Spawn", #"{"argv":["/bin/true"],"user":"root"}"#),
            m("Spawn", #"{"argv":["/bin/true"],"user":"\#(Self.testUser)"}"#),
            m("ListWorkers"),
            m("GetWorker", #"{"id":"\#(rootID)"}"#),
            m("Signal", #"{"id":"\#(rootID)","signal":15}"#),
            m("Wait", #"{"id":"\#(rootID)"}"#),
            m("GetStatus"),
            m("Signal", #"{"id":"\#(userID)","signal":15}"#),
            m("Wait", #"{"id":"\#(userID)"}"#),
        ])
        try #require(replies.count == 9)
        #expect(replies[0]["error"] == .string("io.numaplaced.Manager.PermissionDenied"))
        #expect(replies[1]["error"] == .string("io.numaplaced.Manager.PermissionDenied"), "only root may name a user")
        #expect(replies[2]["parameters"]?["workers"]?.array.map { $0["id"] } == [.string(userID)])
        for i in 3...5 {
            #expect(replies[i]["error"] == .string("io.numaplaced.Manager.NoSuchWorker"), "call \(i): \(replies[i])")
        }
        #expect(replies[6]["parameters"]?["workers"] == .int(1))
        #expect(replies[7]["error"] == nil)
        #expect(replies[8]["parameters"]?["worker"]?["exit"] == .object(["how": .string("killed"), "signal": .int(15)]))

        // Files and directories are opened as the worker, never as the root daemon: a directory
        // only root may enter stays closed to the user's worker.
        let privateDir = daemon.directory + "/private"
        try FileManager.default.createDirectory(atPath: privateDir, withIntermediateDirectories: false,
                                                attributes: [.posixPermissions: 0o700])
        let forbidden = try asUser([
            m("Spawn", #"{"argv":["/bin/true"],"stdout":"\#(privateDir)/out"}"#),
            m("Spawn", #"{"argv":["/bin/true"],"workingDirectory":"\#(privateDir)"}"#),
        ])
        for r in forbidden {
            #expect(r["error"] == .string("io.numaplaced.Manager.SpawnFailed"), "\(r)")
            #expect(r["parameters"]?["errno"] == .int(Int(EACCES)), "\(r)")
        }
        #expect(!FileManager.default.fileExists(atPath: privateDir + "/out"))

        // Root may name the user; the worker then runs as that user.
        let named = try root.call("Spawn", ["argv": .array([.string("/bin/sleep"), .string("300")]),
                                            "user": .string(Self.testUser)])["worker"]
        let namedPID = named?["pid"]?.intValue ?? -1
        pids.append(namedPID)
        #expect(named?["uid"] == .int(uid))
        let namedStatus = try String(contentsOfFile: "/proc/\(namedPID)/status", encoding: .utf8)
        #expect(namedStatus.contains("\nUid:\t\(uid)\t\(uid)\t\(uid)\t\(uid)\n"))
        try root.call("Signal", ["id": named?["id"] ?? .null, "signal": .int(Int(SIGKILL))])
        #expect(try root.call("Wait", ["id": named?["id"] ?? .null])["worker"]?["exit"]?["signal"] == .int(Int(SIGKILL)))

        // Root sees both and may act on any.
        let all = try root.call("ListWorkers")["workers"]?.array.compactMap { $0["id"]?.stringValue } ?? []
        #expect(Set(all).isSuperset(of: [rootID, userID]))
        #expect(try root.call("GetWorker", ["id": .string(userID)])["worker"]?["uid"] == .int(uid))
        try root.call("Signal", ["id": .string(rootID), "signal": .int(Int(SIGTERM))])
        let waited = try root.call("Wait", ["id": .string(rootID)])["worker"]
        #expect(waited?["exit"]?["signal"] == .int(Int(SIGTERM)))
    }

    static let streamHolder = #"""
    import os, socket, sys, time
    path, count, go = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    def connect():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(path)
        return s
    def reply(s):
        buf = b""
        try:
            while b"\0" not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    return None
                buf += chunk
        except OSError:
            return None
        return buf.split(b"\0", 1)[0]
    streams = []
    for i in range(count):
        s = connect()
        s.sendall(b'{"method":"io.numaplaced.Manager.Monitor","parameters":{},"more":true}\0')
        print("stream", i, "served" if reply(s) else "closed", flush=True)
        streams.append(s)
    extra = connect()
    try:
        extra.sendall(b'{"method":"io.numaplaced.Manager.GetStatus"}\0')
    except OSError:
        pass
    print("extra", "served" if reply(extra) else "closed", flush=True)
    deadline = time.monotonic() + 30
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.02)
    """#

    /// `MaxConnectionsPerUser=`: a user whose connections are all busy (Monitor streams) is refused
    /// a new one, over a real socket with the kernel's SO_PEERCRED, while root is still served.
    @Test(.enabled(if: LiveHost.binaryBuilt, "\(notBuilt)"),
          .enabled(if: LiveHost.isRoot, "needs root to create a second user and change uid"),
          .enabled(if: LiveHost.systemPython != nil && LiveHost.setpriv != nil, "needs /usr/bin/python3 and setpriv"),
          .timeLimit(.minutes(3)))
    func aUserCannotHoldMoreThanItsShareOfConnections() throws {
        let user = try Self.makeTestUser()
        defer { user.remove() }
        let uid = user.uid, gid = user.gid

        let daemon = try LiveDaemon(config: "[Limits]\nMaxConnectionsPerUser=2\n")
        try daemon.start()
        defer { daemon.stop() }
        daemon.openToOtherUsers()
        let script = daemon.directory + "/holder.py", output = daemon.directory + "/holder.out"
        let go = daemon.directory + "/go"
        try Self.streamHolder.write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o644)
        FileManager.default.createFile(atPath: output, contents: nil)
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: LiveHost.setpriv!)
        holder.arguments = ["--reuid=\(uid)", "--regid=\(gid)", "--clear-groups", LiveHost.systemPython!, script,
                            daemon.socket, "2", go]
        holder.standardOutput = FileHandle(forWritingAtPath: output)
        try holder.run()
        defer {
            FileManager.default.createFile(atPath: go, contents: nil)
            holder.waitUntilExit()
        }
        var lines: [String] = []
        let deadline = LiveHost.monotonicMicroseconds() + 30_000_000
        while lines.last?.hasPrefix("extra") != true, LiveHost.monotonicMicroseconds() < deadline {
            usleep(20_000)
            lines = ((try? String(contentsOfFile: output, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
        }
        #expect(lines == ["stream 0 served", "stream 1 served", "extra closed"])
        // While the user's two streams are held, root (and so anyone else) is still served.
        #expect(try daemon.client().call("GetStatus")["version"] != nil)
    }
}
