import NumaPlaceCore
import NumaPlacePlatform
import NumaPlaceProtocol
import Testing
@testable import NumaPlaceDaemon

/// The request builder alone: hostile parameters, no actor, no process.
@Suite struct SpawnRequestBuilderTests {
    typealias P = Manager.SpawnParameters

    static func refusal(_ body: () throws(VarlinkError) -> Void) -> VarlinkError? {
        do { try body(); return nil } catch { return error }
    }

    @Test(arguments: [
        (P(argv: []), "InvalidParameter"),
        (P(argv: [""]), "InvalidParameter"),
        (P(argv: ["/bin/true", "a\u{0}b"]), "InvalidParameter"),
        (P(argv: ["/bin/true"], environment: ["=x"]), "InvalidParameter"),
        (P(argv: ["/bin/true"], environment: ["NOEQUALS"]), "InvalidParameter"),
        (P(argv: ["/bin/true"], workingDirectory: "relative"), "InvalidParameter"),
        (P(argv: ["/bin/true"], exclusiveCores: -1), "InvalidParameter"),
        (P(argv: ["/bin/true"], name: "two\nlines"), "InvalidParameter"),
        (P(argv: ["/bin/true"], parentDeathSignal: 65), "InvalidParameter"),
        (P(argv: Array(repeating: "x", count: 4097)), "LimitExceeded"),
        (P(argv: ["/bin/true", String(repeating: "a", count: 256 << 10)]), "LimitExceeded"),
    ])
    func hostileShapesAreRefused(_ p: P, _ error: String) {
        let e = Self.refusal { () throws(VarlinkError) in try SpawnRequestBuilder.validate(p, limits: Configuration.Limits()) }
        #expect(e?.name == "io.numaplaced.Manager." + error)
    }

    @Test func aPlainCallPasses() throws {
        try SpawnRequestBuilder.validate(P(argv: ["/bin/true"], environment: ["A=b"], workingDirectory: "/"),
                                         limits: Configuration.Limits())
        #expect(SpawnRequestBuilder.environment(["A=b=c"]) == ["A": "b=c", "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
        #expect(SpawnRequestBuilder.identifier(P(argv: ["/usr/bin/python3"])) == "python3")
        #expect(SpawnRequestBuilder.identifier(P(argv: ["/usr/bin/python3"], name: "engine")) == "engine")
    }

    @Test func targetsAndDefaults() throws {
        let m = try SyntheticMachine()
        let inventory = SysfsScanner(root: SysfsRoot(m.root)).scan()
        var d = SpawnDefaults()
        d.memory = .bind
        let r = try SpawnRequestBuilder.placementRequest(P(argv: ["x"], device: "0000:3B:00.0"), inventory: inventory, defaults: d)
        #expect(r.target == .device(try PCIAddress(parsing: SyntheticMachine.gpu)) && r.memory == .bind && r.admission == .strict)
        let anywhere = try SpawnRequestBuilder.placementRequest(P(argv: ["x"]), inventory: inventory, defaults: d)
        #expect(anywhere.target == .anywhere && anywhere.memory == MemoryPolicyMode.none)
        for bad in [P(argv: ["x"], device: "0000:3b:00.0", node: 1), P(argv: ["x"], memory: "everywhere"),
                    P(argv: ["x"], admission: "maybe"), P(argv: ["x"], node: 1, deviceMemory: true),
                    P(argv: ["x"], device: "no-such-device"), P(argv: ["x"], cpus: "3-1"),
                    P(argv: ["x"], devices: []), P(argv: ["x"], devices: [SyntheticMachine.gpu, "0000:3b:00.0"])] {
            let e = Self.refusal { () throws(VarlinkError) in
                _ = try SpawnRequestBuilder.placementRequest(bad, inventory: inventory, defaults: d)
            }
            #expect(e?.name == "io.numaplaced.Manager.InvalidParameter", "\(bad)")
        }
        let e = Self.refusal { () throws(VarlinkError) in
            _ = try SpawnRequestBuilder.placementRequest(P(argv: ["x"], node: -1), inventory: inventory, defaults: d)
        }
        #expect(e?.name == "io.numaplaced.Manager.NoSuchNode")
    }

    @Test func identityRules() throws {
        let accounts = SpawnRequestBuilder.Accounts(
            byName: { $0 == "svc" ? UserAccount(name: "svc", uid: 500, gid: 500, groups: [500, 44]) : nil },
            byUID: { $0 == 1000 ? UserAccount(name: "u", uid: 1000, gid: 1000, groups: [1000, 27]) : nil })
        let user = PeerCredentials(pid: 1, uid: 1000, gid: 1000), root = PeerCredentials(pid: 1, uid: 0, gid: 0)
        func creds(_ name: String?, _ peer: PeerCredentials, groups: [UInt32]? = nil, daemon: UInt32 = 0)
            -> Result<Credentials?, VarlinkError> {
            Result { () throws(VarlinkError) in
                try SpawnRequestBuilder.credentials(user: name, peer: peer, callerGroups: groups, daemonUID: daemon,
                                                    accounts: accounts)
            }
        }
        #expect(try creds("svc", root).get() == Credentials(uid: 500, gid: 500, groups: [500, 44]))
        #expect(try creds(nil, root).get() == nil)
        // The process's own groups win over the database (a user dropped from a group keeps none of it).
        #expect(try creds(nil, user, groups: [1000]).get() == Credentials(uid: 1000, gid: 1000, groups: [1000]))
        #expect(try creds(nil, user).get() == Credentials(uid: 1000, gid: 1000, groups: [1000, 27]))
        for refused in [creds("svc", user), creds("nobody-here", root), creds(nil, user, daemon: 1001), creds("svc", root, daemon: 1001)] {
            guard case .failure = refused else { Issue.record("accepted: \(refused)"); continue }
        }
    }

    @Test func stdioRules() throws {
        func plan(_ c: String?, input: Bool = false, caller: UInt32 = 1000) -> Result<StdioPlan, VarlinkError> {
            Result { () throws(VarlinkError) in
                try SpawnRequestBuilder.stdio(c, name: "stdout", input: input, priority: 6, callerUID: caller, daemonUID: 0)
            }
        }
        #expect(try plan(nil).get() == .null && plan("/tmp/out").map { $0 } == .success(.file("/tmp/out")))
        #expect(try plan("journal", caller: 0).get() == .journal(priority: 6))
        #expect(try plan("inherit", caller: 0).get() == .inherit)
        // Another user's worker would write journal records stamped with the root daemon's uid.
        for refused in [plan("inherit"), plan("journal"), plan("journal", input: true), plan("relative/path"), plan("")] {
            guard case .failure(let e) = refused else { Issue.record("accepted: \(refused)"); continue }
            #expect(e.name == "io.numaplaced.Manager.InvalidParameter")
        }
    }
}
