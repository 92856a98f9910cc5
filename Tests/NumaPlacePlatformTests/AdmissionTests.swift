import CNumaPlaceShim
import Foundation
import Glibc
import NumaPlaceCore
import NumaPlacePlatform
import NumaPlaceSyscall
import Testing
import NumaPlaceTestSupport

extension PlatformTests {
    /// Strict admission fails on what the kernel refuses; best-effort degrades and says how.
    @Suite struct AdmissionTests {
        /// A saved original recorded before the cgroup's cpuset shrank: it names CPUs 0-7, of which
        /// the kernel now allows only the host's. Restoring it still works (the kernel intersects
        /// with the cpuset), but a target on CPUs outside the cpuset gets EINVAL from the kernel.
        static var staleSavedOriginal: AllowedSet {
            AllowedSet(cpus: CPUSet(0..<64), mems: LiveHost.allowed.mems, source: "test: a cpuset that shrank")
        }

        static var unusableCPUs: CPUSet? {
            // CPUs the stale saved original holds but this host cannot run on.
            let outside = CPUSet(0..<64).subtracting(LiveHost.inventory.topology.onlineCPUs)
            let pair = outside.elements.suffix(2)
            return pair.isEmpty ? nil : CPUSet(pair)
        }

        @Test("strict: sched_setaffinity's EINVAL in the child names setAffinity",
              .enabled(if: unusableCPUs != nil, "needs fewer than 64 online CPUs"))
        func strictAffinity() throws {
            var placement = try LiveHost.anywhere()
            let cpus = try #require(Self.unusableCPUs)
            placement.cpus = cpus
            let spawner = Spawner(savedOriginal: Self.staleSavedOriginal)
            let request = SpawnRequest(argv: [try Scratch.probePath()], stdout: .null, placement: placement, admission: .strict)
            // On a named thread, so that a failed child left unreaped would be recognised as ours.
            let result: Result<SpawnedProcess, SpawnError> = onDedicatedThread { Result { () throws(SpawnError) in try spawner.spawn(request) } }
            #expect(throws: SpawnError(step: .setAffinity, errno: .invalidArgument,
                                       operation: "sched_setaffinity(CPUs \(cpus))")) { try result.get() }
            #expect(zombieChildren().isEmpty)
        }

        @Test("best-effort: the worker stays on the saved original and the degradation is reported",
              .enabled(if: unusableCPUs != nil, "needs fewer than 64 online CPUs"))
        func bestEffortAffinity() throws {
            var placement = try LiveHost.decision(node: try #require(LiveHost.firstNode), memory: .bind)
            let cpus = try #require(Self.unusableCPUs)
            placement.cpus = cpus
            let (report, process, status) = try runProbe(Spawner(savedOriginal: Self.staleSavedOriginal),
                                                         placement: placement, admission: .bestEffort)
            #expect(status == .exited(0))
            // The stale original intersected with what the kernel allows: the host's CPUs.
            #expect(report.cpus == LiveHost.inventory.topology.onlineCPUs.intersection(LiveHost.allowed.cpus).cpulist)
            #expect(report.policy == "bind")
            #expect(process.degradations.map(\.step) == [.setAffinity])
            #expect(process.degradations.first?.errno == .invalidArgument)
            #expect(process.degradationNotes.first?.hasPrefix("sched_setaffinity(CPUs \(cpus)): Invalid argument;") == true)
            #expect(process.cpus == Self.staleSavedOriginal.cpus)
        }

        @Test("best-effort in the parent: a target wholly outside the saved original runs on the saved original")
        func bestEffortOutsideSavedOriginal() throws {
            var placement = try LiveHost.anywhere()
            placement.cpus = [(LiveHost.allowed.cpus.last ?? 0) + 1]
            let (report, process, _) = try runProbe(Spawner(savedOriginal: LiveHost.allowed), placement: placement,
                                                    admission: .bestEffort)
            #expect(report.cpus == LiveHost.allowed.cpus.cpulist)
            #expect(process.degradations.map(\.step) == [.setAffinity])
        }

        // MARK: set_mempolicy refused by seccomp

        /// Installs, on the calling thread only, a seccomp filter that makes set_mempolicy(2) with
        /// one of `modes` fail with EPERM, as a container runtime's profile may. The spawned child
        /// inherits the filter (seccomp(2)); the thread and the filter end together.
        static func denySetMempolicy(modes: [Int32]) throws {
            #if arch(x86_64)
            let auditArch: UInt32 = 0xC000_003E, nr: UInt32 = 238
            #elseif arch(arm64)
            let auditArch: UInt32 = 0xC000_00B7, nr: UInt32 = 237
            #endif
            struct Insn { var code: UInt16; var jt: UInt8; var jf: UInt8; var k: UInt32 }
            let ldAbs: UInt16 = 0x20, jeq: UInt16 = 0x15, ret: UInt16 = 0x06
            let allow: UInt32 = 0x7FFF_0000, denyEPERM: UInt32 = 0x0005_0000 | UInt32(EPERM)
            let k = modes.count
            var program: [Insn] = [
                Insn(code: ldAbs, jt: 0, jf: 0, k: 4),                  // seccomp_data.arch
                Insn(code: jeq, jt: 1, jf: 0, k: auditArch),
                Insn(code: ret, jt: 0, jf: 0, k: allow),
                Insn(code: ldAbs, jt: 0, jf: 0, k: 0),                  // seccomp_data.nr
                Insn(code: jeq, jt: 0, jf: UInt8(k + 1), k: nr),
                Insn(code: ldAbs, jt: 0, jf: 0, k: 16),                 // args[0], low half: the mode
            ]
            for (i, mode) in modes.enumerated() {
                program.append(Insn(code: jeq, jt: UInt8(k - i), jf: 0, k: UInt32(mode)))
            }
            program.append(Insn(code: ret, jt: 0, jf: 0, k: allow))
            program.append(Insn(code: ret, jt: 0, jf: 0, k: denyEPERM))
            precondition(MemoryLayout<Insn>.size == 8) // struct sock_filter
            let rc: Int32 = program.withUnsafeBufferPointer { insns in
                // struct sock_fprog: unsigned short len; (padding); struct sock_filter *filter;
                let fprog = UnsafeMutableRawPointer.allocate(byteCount: 16, alignment: 8)
                defer { fprog.deallocate() }
                fprog.initializeMemory(as: UInt8.self, repeating: 0, count: 16)
                fprog.storeBytes(of: UInt16(insns.count), as: UInt16.self)
                fprog.storeBytes(of: insns.baseAddress, toByteOffset: 8, as: UnsafePointer<Insn>?.self)
                // PR_SET_NO_NEW_PRIVS (38): a filter needs it without CAP_SYS_ADMIN; per thread too.
                guard np_prctl(38, 1, 0, 0, 0) == 0 else { return errno }
                // PR_SET_SECCOMP (22), SECCOMP_MODE_FILTER (2), without TSYNC: this thread only.
                return np_prctl(22, 2, UInt(bitPattern: fprog), 0, 0) == 0 ? 0 : errno
            }
            if rc != 0 { throw Errno(rc) }
        }

        static var seccompAvailable: Bool {
            (try? LiveHost.root.read("proc/self/status")).map { $0.contains("Seccomp_filters:") } ?? false
        }

        @Test("strict: set_mempolicy refused (EPERM) fails the spawn naming the mode and node",
              .enabled(if: seccompAvailable, "needs seccomp filters (CONFIG_SECCOMP_FILTER)"))
        func strictMempolicy() throws {
            let node = try #require(LiveHost.firstNode)
            let placement = try LiveHost.decision(node: node, memory: .bind)
            let spawner = Spawner(savedOriginal: LiveHost.allowed)
            let result: Result<SpawnedProcess, Error> = onDedicatedThread {
                Result {
                    try Self.denySetMempolicy(modes: [Int32(NP_MPOL_BIND)])
                    return try spawner.spawn(SpawnRequest(argv: ["/bin/true"], placement: placement, admission: .strict))
                }
            }
            #expect(throws: SpawnError(step: .setMempolicy, errno: .notPermitted, operation: "set_mempolicy(bind, node \(node))")) {
                try result.get()
            }
            #expect(zombieChildren().isEmpty)
            if case .failure(let e as SpawnError) = result {
                #expect(e.description == "set_mempolicy(bind, node \(node)): Operation not permitted")
            }
        }

        @Test("best-effort: bind refused degrades to preferred; preferred refused too leaves the default",
              .enabled(if: seccompAvailable, "needs seccomp filters (CONFIG_SECCOMP_FILTER)"),
              arguments: [false, true])
        func bestEffortMempolicy(preferredRefusedToo: Bool) throws {
            let node = try #require(LiveHost.firstNode)
            let placement = try LiveHost.decision(node: node, memory: .bind)
            let spawner = Spawner(savedOriginal: LiveHost.allowed)
            let denied = preferredRefusedToo ? [Int32(NP_MPOL_BIND), Int32(NP_MPOL_PREFERRED)] : [Int32(NP_MPOL_BIND)]
            let outcome: Result<(ProbeReport, SpawnedProcess, ProcessExitStatus), Error> = onDedicatedThread {
                Result {
                    try Self.denySetMempolicy(modes: denied)
                    return try runProbe(spawner, placement: placement, admission: .bestEffort)
                }
            }
            let (report, process, status) = try outcome.get()
            #expect(status == .exited(0))
            #expect(report.cpus == placement.cpus.cpulist)
            let steps = process.degradations.map(\.step)
            if preferredRefusedToo {
                #expect(report.policy == "default")
                #expect(steps == [.setMempolicy, .setMempolicy])
                #expect(process.memory == .none)
                #expect(process.degradationNotes.last == "set_mempolicy(preferred, node \(node)): Operation not permitted; left at the default policy")
            } else {
                #expect(report.policy == "preferred")
                #expect(report.policyNodes == "\(node)")
                #expect(steps == [.setMempolicy])
                #expect(process.memory == MemoryPlacement(mode: .preferred, nodes: [node]))
            }
            #expect(process.degradationNotes.first?.hasPrefix("set_mempolicy(bind, node \(node)): Operation not permitted;") == true)
        }
    }
}
