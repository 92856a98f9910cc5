#if canImport(Glibc)
import Glibc
#endif
import Logging
import NumaPlacePlatform
import NumaPlaceSyscall
import Testing

/// The sd_notify, socket activation and journald wrappers against libsystemd itself, with the
/// service manager's and journald's sockets played by the test. Serialized: the tests set
/// environment variables libsystemd reads, and bind the fixed journald paths.
@Suite(.serialized) struct SystemdTests {
    // MARK: sd_notify

    /// Binds a datagram socket in a fresh directory and points `$NOTIFY_SOCKET` at it.
    private func withNotifySocket(_ body: (TestSocket) throws -> Void) throws {
        let dir = try makeTemporaryDirectory()
        defer { rmdir(dir) }
        let listener = try TestSocket(type: SOCK_DGRAM, bindTo: dir + "/notify")
        try withEnvironment(["NOTIFY_SOCKET": dir + "/notify"]) { try body(listener) }
    }

    /// The notifier said it sent (`$NOTIFY_SOCKET` was set and the send succeeded).
    private func expectSent(_ sent: Bool, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(sent, "sd_notify reported nothing sent", sourceLocation: sourceLocation)
    }

    private func text(_ datagram: [UInt8]?) -> String? { datagram.map { String(decoding: $0, as: UTF8.self) } }

    @Test func notifyMessages() throws {
        try withNotifySocket { (listener: TestSocket) throws in
            let notifier = SystemdNotifier(monotonicMicroseconds: { 123_456_789 })
            expectSent(try notifier.ready(status: "4 devices, 0 workers"))
            #expect(text(listener.receiveDatagram()) == "READY=1\nSTATUS=4 devices, 0 workers")
            expectSent(try notifier.ready())
            #expect(text(listener.receiveDatagram()) == "READY=1")
            expectSent(try notifier.reloading(status: "reloading configuration"))
            #expect(text(listener.receiveDatagram()) == "RELOADING=1\nMONOTONIC_USEC=123456789\nSTATUS=reloading configuration")
            expectSent(try notifier.stopping())
            #expect(text(listener.receiveDatagram()) == "STOPPING=1")
            expectSent(try notifier.status("3 devices, 2 workers"))
            #expect(text(listener.receiveDatagram()) == "STATUS=3 devices, 2 workers")
            expectSent(try notifier.watchdog())
            #expect(text(listener.receiveDatagram()) == "WATCHDOG=1")
            #expect(listener.receiveDatagram() == nil)
        }
    }

    /// A newline in a status would start a new assignment (`STATUS=x\nREADY=1`): it becomes a space.
    @Test func statusTextCannotInjectAssignments() throws {
        try withNotifySocket { (listener: TestSocket) throws in
            expectSent(try SystemdNotifier().status("bad\nREADY=1\r\nSTOPPING=1"))
            #expect(text(listener.receiveDatagram()) == "STATUS=bad READY=1  STOPPING=1")
        }
    }

    /// The default clock is CLOCK_MONOTONIC in microseconds: the value sent lies between two
    /// readings of that clock taken around the call.
    @Test func reloadingSendsTheMonotonicClock() throws {
        try withNotifySocket { (listener: TestSocket) throws in
            var before = timespec()
            clock_gettime(CLOCK_MONOTONIC, &before)
            expectSent(try SystemdNotifier().reloading())
            var after = timespec()
            clock_gettime(CLOCK_MONOTONIC, &after)
            let lines = (text(listener.receiveDatagram()) ?? "").split(separator: "\n")
            #expect(lines.first == "RELOADING=1")
            let sent = lines.dropFirst().first.flatMap { $0.hasPrefix("MONOTONIC_USEC=") ? UInt64($0.dropFirst(15)) : nil }
            let lo = UInt64(before.tv_sec) * 1_000_000 + UInt64(before.tv_nsec) / 1000
            let hi = UInt64(after.tv_sec) * 1_000_000 + UInt64(after.tv_nsec) / 1000
            #expect(sent.map { (lo...hi).contains($0) } == true, "MONOTONIC_USEC=\(sent.map(String.init) ?? "missing") not in \(lo)...\(hi)")
        }
    }

    @Test func notifyWithoutNotifySocketIsANoOp() throws {
        try withEnvironment(["NOTIFY_SOCKET": nil]) { () throws in
            #expect(try SystemdNotifier().ready(status: "x") == false)
            #expect(try SystemdNotifier().watchdog() == false)
        }
    }

    @Test func notifyToAMissingSocketThrows() throws {
        try withEnvironment(["NOTIFY_SOCKET": "/nonexistent/numaplace/notify"]) { () throws in
            let error = #expect(throws: SystemdError.self) { try SystemdNotifier().ready() }
            #expect(error?.code == .notify)
            #expect(error?.errno == .noSuchFileOrDirectory)
        }
    }

    // MARK: Watchdog

    @Test func watchdogInterval() throws {
        let me = String(getpid())
        try withEnvironment(["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": me]) { () throws in
            #expect(try SystemdNotifier().watchdogInterval() == .seconds(30))
        }
        try withEnvironment(["WATCHDOG_USEC": "250000", "WATCHDOG_PID": nil]) { () throws in
            #expect(try SystemdNotifier().watchdogInterval() == .milliseconds(250))
        }
        // Meant for another process (a worker that inherited the variables would see this).
        try withEnvironment(["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": String(getpid() + 1)]) { () throws in
            #expect(try SystemdNotifier().watchdogInterval() == nil)
        }
        try withEnvironment(["WATCHDOG_USEC": nil, "WATCHDOG_PID": nil]) { () throws in
            #expect(try SystemdNotifier().watchdogInterval() == nil)
        }
        try withEnvironment(["WATCHDOG_USEC": "thirty", "WATCHDOG_PID": me]) { () throws in
            #expect(throws: SystemdError(.watchdog, errno: .invalidArgument, "sd_watchdog_enabled")) {
                try SystemdNotifier().watchdogInterval()
            }
        }
    }

    // MARK: Socket activation

    @Test func validateAcceptsOnlyListeningUnixStreamSockets() throws {
        let dir = try makeTemporaryDirectory()
        defer { rmdir(dir) }
        let listener = try TestSocket(type: SOCK_STREAM, bindTo: dir + "/io.numaplaced", listen: 8)
        let socket = try ListenFDs.validate(fd: listener.fd, name: "varlink")
        #expect(socket == ListenFDs.Socket(fd: listener.fd, name: "varlink", path: dir + "/io.numaplaced"))

        let notListening = try TestSocket(type: SOCK_STREAM, bindTo: dir + "/idle")
        let datagram = try TestSocket(type: SOCK_DGRAM, bindTo: dir + "/dgram")
        var fds: [Int32] = [-1, -1]
        try #require(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        for fd in [notListening.fd, datagram.fd, fds[0]] {
            #expect(throws: SystemdError(.notAUnixStreamListener, errno: nil,
                                         "passed fd \(fd) (unknown) is not a listening AF_UNIX SOCK_STREAM socket")) {
                try ListenFDs.validate(fd: fd)
            }
        }
        // A closed descriptor: sd_is_socket_unix returns -EBADF.
        let closed = fds[1] + 1000
        #expect(throws: SystemdError(.notAUnixStreamListener, errno: Errno(EBADF), "passed fd \(closed) (unknown)")) {
            try ListenFDs.validate(fd: closed)
        }
    }

    @Test func notSocketActivated() throws {
        try withEnvironment(["LISTEN_FDS": nil, "LISTEN_PID": nil, "LISTEN_FDNAMES": nil]) { () throws in
            #expect(try ListenFDs.take().isEmpty)
        }
        // Variables meant for another process are not ours: no fds, nothing validated.
        try withEnvironment(["LISTEN_FDS": "1", "LISTEN_PID": String(getpid() + 1), "LISTEN_FDNAMES": nil]) { () throws in
            #expect(try ListenFDs.take().isEmpty)
        }
        try withEnvironment(["LISTEN_FDS": "one", "LISTEN_PID": String(getpid()), "LISTEN_FDNAMES": nil]) { () throws in
            #expect(throws: SystemdError(.listenFDs, errno: .invalidArgument, "sd_listen_fds_with_names")) {
                try ListenFDs.take()
            }
        }
    }

    /// Runs `ListenFDs.take` in a forked child whose fds 3, 4, … are `sockets`, with `$LISTEN_PID`
    /// naming the child, as systemd execs a socket-activated service. A child, because fd 3 and up
    /// belong to the test process (the runner's own pipes, other tests' sockets) and must not be
    /// replaced under it. The child only reports, over a pipe, and `_exit`s.
    private func activatedChild(_ sockets: [Int32], names: String?, unsetEnvironment: Bool) throws -> String {
        // Warm up in the parent what the child will run, so that the child, a copy of a
        // multi-threaded process, finds the runtime's lazily built metadata already there.
        _ = try? ListenFDs.take()
        _ = try? ListenFDs.validate(fd: sockets[0])

        var report: [Int32] = [-1, -1]
        guard pipe(&report) == 0 else { throw SetupError("pipe") }
        // Copies above every fd the child will overwrite, so that dup2 onto 3, 4, … never clobbers
        // a source before it was copied.
        let high = try sockets.map { fd -> Int32 in
            let copy = fcntl(fd, F_DUPFD_CLOEXEC, 100)
            guard copy >= 0 else { throw SetupError("F_DUPFD") }
            return copy
        }
        defer { high.forEach { close($0) } }

        let pid = fork()
        if pid == 0 {
            close(report[0])
            var out = ""
            for (i, fd) in high.enumerated() where dup2(fd, 3 + Int32(i)) < 0 { out += "dup2 failed\n" }
            setenv("LISTEN_PID", String(getpid()), 1)
            setenv("LISTEN_FDS", String(high.count), 1)
            if let names { setenv("LISTEN_FDNAMES", names, 1) } else { unsetenv("LISTEN_FDNAMES") }
            do {
                for s in try ListenFDs.take(unsetEnvironment: unsetEnvironment) {
                    let cloexec = fcntl(s.fd, F_GETFD) & FD_CLOEXEC != 0
                    out += "\(s.fd) \(s.name) \(s.path ?? "-") cloexec=\(cloexec)\n"
                }
                out += "LISTEN_FDS " + (getenv("LISTEN_FDS") == nil ? "unset" : "set") + "\n"
            } catch {
                out += "error \(error.code.rawValue) errno=\(error.errno?.rawValue ?? 0)\n"
            }
            let bytes = Array(out.utf8)
            _ = bytes.withUnsafeBytes { write(report[1], $0.baseAddress, $0.count) }
            _exit(0)
        }
        close(report[1])
        guard pid > 0 else {
            close(report[0])
            throw SetupError("fork")
        }
        let output = readAll(report[0])
        close(report[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        #expect(status == 0, "the activated child did not exit 0 (wait status \(status))")
        return String(decoding: output, as: UTF8.self)
    }

    @Test func socketActivation() throws {
        let dir = try makeTemporaryDirectory()
        defer { rmdir(dir) }
        let varlink = try TestSocket(type: SOCK_STREAM, bindTo: dir + "/io.numaplaced", listen: 8)
        let second = try TestSocket(type: SOCK_STREAM, bindTo: dir + "/second", listen: 8)

        #expect(try activatedChild([varlink.fd], names: nil, unsetEnvironment: false)
                == "3 unknown \(dir)/io.numaplaced cloexec=true\nLISTEN_FDS set\n")
        #expect(try activatedChild([varlink.fd, second.fd], names: "varlink:metrics", unsetEnvironment: true)
                == "3 varlink \(dir)/io.numaplaced cloexec=true\n4 metrics \(dir)/second cloexec=true\nLISTEN_FDS unset\n")
    }

    /// A socket unit with `ListenDatagram=` (or a non-listening socket) is refused, not served on.
    @Test func socketActivationWithTheWrongSocketType() throws {
        let dir = try makeTemporaryDirectory()
        defer { rmdir(dir) }
        let varlink = try TestSocket(type: SOCK_STREAM, bindTo: dir + "/io.numaplaced", listen: 8)
        let datagram = try TestSocket(type: SOCK_DGRAM, bindTo: dir + "/dgram")
        #expect(try activatedChild([varlink.fd, datagram.fd], names: nil, unsetEnvironment: false)
                == "error notAUnixStreamListener errno=0\n")
    }

    // MARK: journald, native protocol

    @Test(.enabled(if: getuid() == 0, "binding /run/systemd/journal/socket in place of journald needs root"))
    func journalRecordsCarryStructuredFields() throws {
        try FakeJournald.run { journal, _ in
            let logger = Logger(label: "numaplace.test") {
                JournalLogHandler(label: $0, identifier: "numaplace-test", logLevel: .trace)
            }
            let line = #line + 1
            logger.notice("worker spawned", metadata: [
                LogMetadataKey.messageID: .stringConvertible(MessageID.workerSpawned),
                LogMetadataKey.device: "0000:3b:00.0",
                LogMetadataKey.numaNode: .stringConvertible(1),
                LogMetadataKey.workerPID: .stringConvertible(4242),
                LogMetadataKey.workerID: "w-7",
                LogMetadataKey.cpus: "16-31",
                "argv": .array(["python", "train.py"]),
                "note": "first line\nsecond line",
                "_trusted": "not trusted",
                "priority": "0",
            ])
            let datagram = try #require(journal.receiveDatagram(), "no datagram reached the journal socket")
            let fields = try #require(parseJournalDatagram(datagram), "malformed datagram \(datagram)")
            func value(_ name: String) -> String? {
                let matching = fields.filter { $0.name == name }
                return matching.count == 1 ? matching[0].text : nil
            }
            #expect(value("MESSAGE") == "worker spawned")
            #expect(value("PRIORITY") == "5")
            #expect(value("SYSLOG_IDENTIFIER") == "numaplace-test")
            #expect(value("CODE_FILE")?.hasSuffix("SystemdTests.swift") == true)
            #expect(value("CODE_LINE") == String(line))
            #expect(value("CODE_FUNC") == "journalRecordsCarryStructuredFields()")
            #expect(value("LOGGER") == "numaplace.test")
            #expect(value("MESSAGE_ID") == "49ebf4d4b421470286d89df59fa90d78")
            #expect(value("DEVICE") == "0000:3b:00.0")
            #expect(value("NUMA_NODE") == "1")
            #expect(value("WORKER_PID") == "4242")
            #expect(value("WORKER_ID") == "w-7")
            #expect(value("CPUS") == "16-31")
            #expect(value("ARGV") == "[\"python\", \"train.py\"]")
            // A value with newlines travels in the binary length form and arrives whole.
            #expect(value("NOTE") == "first line\nsecond line")
            // journald reserves leading underscores for trusted fields; a metadata key cannot set
            // PRIORITY either.
            #expect(value("TRUSTED") == "not trusted")
            #expect(value("META_PRIORITY") == "0")
            #expect(!fields.contains { $0.name.hasPrefix("_") })
            #expect(journal.receiveDatagram() == nil)
        }
    }

    @Test(.enabled(if: getuid() == 0, "binding /run/systemd/journal/socket in place of journald needs root"),
          arguments: [(Logger.Level.trace, "7"), (.debug, "7"), (.info, "6"), (.notice, "5"), (.warning, "4"),
                      (.error, "3"), (.critical, "2")])
    func journalPriorities(level: Logger.Level, priority: String) throws {
        try FakeJournald.run { journal, _ in
            var logger = Logger(label: "numaplace.test") { JournalLogHandler(label: $0) }
            logger.logLevel = .trace
            logger[metadataKey: "device"] = "0000:af:00.0"
            logger.log(level: level, "level \(level)", metadata: ["device": "0000:3b:00.0"])
            let fields = try #require(journal.receiveDatagram().flatMap(parseJournalDatagram))
            #expect(fields.filter { $0.name == "PRIORITY" }.map(\.text) == [priority])
            #expect(fields.filter { $0.name == "SYSLOG_IDENTIFIER" }.map(\.text) == ["numaplaced"])
            // The call's metadata wins over the handler's.
            #expect(fields.filter { $0.name == "DEVICE" }.map(\.text) == ["0000:3b:00.0"])
        }
    }

    @Test(.enabled(if: getuid() == 0, "binding /run/systemd/journal/socket in place of journald needs root"))
    func journalRecordCarriesTheError() throws {
        struct SpawnFailure: Error, CustomStringConvertible {
            var description: String { "execve: No such file or directory" }
        }
        try FakeJournald.run { journal, _ in
            let logger = Logger(label: "numaplace.test") { JournalLogHandler(label: $0) }
            logger.error("spawn failed", error: SpawnFailure(),
                         metadata: [LogMetadataKey.messageID: .stringConvertible(MessageID.spawnFailed)])
            let fields = try #require(journal.receiveDatagram().flatMap(parseJournalDatagram))
            #expect(fields.first { $0.name == "ERROR" }?.text == "execve: No such file or directory")
            #expect(fields.first { $0.name == "MESSAGE_ID" }?.text == MessageID.spawnFailed.rawValue)
        }
    }

    // MARK: journald, stdout stream

    @Test(.enabled(if: getuid() == 0, "binding /run/systemd/journal/stdout in place of journald needs root"))
    func journalStreamForAWorker() throws {
        try FakeJournald.run { _, streams in
            let flags = fcntl(streams.fd, F_GETFL)
            try #require(fcntl(streams.fd, F_SETFL, flags | O_NONBLOCK) == 0)
            let fd = try JournalStream.open(identifier: "train\nworker-7", priority: .warning)
            defer { close(fd) }
            #expect(fcntl(fd, F_GETFD) & FD_CLOEXEC != 0)
            let accepted = accept(streams.fd, nil, nil)
            try #require(accepted >= 0, "sd_journal_stream_fd did not connect to \(FakeJournald.stdoutPath)")
            defer { close(accepted) }
            // The stream header (systemd's journald-stream protocol): identifier, unit id, priority,
            // level prefix, forward to syslog, to kmsg, to console.
            let header = String(decoding: receiveAvailable(accepted), as: UTF8.self)
            #expect(header == "train worker-7\n\n4\n0\n0\n0\n0\n")
            let line = Array("epoch 1 loss 0.25\n".utf8)
            #expect(line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == line.count)
            #expect(String(decoding: receiveAvailable(accepted), as: UTF8.self) == "epoch 1 loss 0.25\n")
        }
    }

    @Test func journalStreamWithoutJournaldThrows() throws {
        // Only meaningful where nothing listens at the stdout socket: here, or with the fake
        // journald stopped. Where journald runs the stream opens, which the QEMU test bed covers.
        guard access(FakeJournald.stdoutPath, F_OK) != 0 else {
            try Test.cancel("\(FakeJournald.stdoutPath) exists on this host")
        }
        let error = #expect(throws: SystemdError.self) { try JournalStream.open(identifier: "x") }
        #expect(error?.code == .journalStream)
        #expect(error?.errno == .noSuchFileOrDirectory)
    }

    // MARK: Field names, stderr format, destination

    @Test(arguments: [
        ("device", "DEVICE"), ("worker_pid", "WORKER_PID"), ("worker.pid", "WORKER_PID"), ("Numa-Node", "NUMA_NODE"),
        ("message_id", "MESSAGE_ID"), ("_trusted", "TRUSTED"), ("__x", "X"), ("9lives", "LIVES"), ("_9_a", "A"),
        ("message", "META_MESSAGE"), ("PRIORITY", "META_PRIORITY"), ("code_line", "META_CODE_LINE"),
        ("ünï", "N__"), (String(repeating: "k", count: 80), String(repeating: "K", count: 64)),
    ])
    func fieldNames(key: String, field: String) {
        #expect(JournalLogHandler.fieldName(forMetadataKey: key) == field)
    }

    @Test(arguments: ["", "_", "___", "123", "_0_"])
    func fieldNamesWithNothingLeftAreDropped(key: String) {
        #expect(JournalLogHandler.fieldName(forMetadataKey: key) == nil)
    }

    private func event(_ level: Logger.Level, _ message: Logger.Message, error: (any Error)? = nil) -> LogEvent {
        var e = LogEvent(level: level, message: message, metadata: nil, source: "test", file: #fileID,
                         function: #function, line: #line)
        e.error = error
        return e
    }

    @Test func stderrFormat() {
        #expect(StderrLogHandler.format(event: event(.info, "worker spawned"),
                                        metadata: ["worker_pid": .stringConvertible(4242), "device": "0000:3b:00.0"])
                == "<6>worker spawned device=0000:3b:00.0 worker_pid=4242\n")
        #expect(StderrLogHandler.format(event: event(.critical, "first\r\nsecond"), metadata: ["why": "a b"])
                == "<2>first\n<2>second why=\"a b\"\n")
        #expect(StderrLogHandler.format(event: event(.trace, "t"), metadata: ["empty": "", "q": "say \"hi\"\\\n"])
                == "<7>t empty=\"\" q=\"say \\\"hi\\\"\\\\\\n\"\n")
        #expect(StderrLogHandler.format(event: event(.warning, "x", error: SetupError("bind", errno: EADDRINUSE)), metadata: [:])
                == "<4>x error=\"bind: Address already in use\"\n")
        #expect(StderrLogHandler.format(event: event(.error, "bell"), metadata: ["c": "\u{7}"]) == "<3>bell c=\"\\x07\"\n")
    }

    /// Through swift-log: handler metadata, then the call's, one write per record.
    @Test func stderrHandlerThroughALogger() {
        final class Lines: @unchecked Sendable {
            // Only touched synchronously from this test's thread, inside the log calls below.
            var records: [String] = []
        }
        let lines = Lines()
        var logger = Logger(label: "numaplace.test") {
            StderrLogHandler(label: $0, logLevel: .info, output: { lines.records.append($0) })
        }
        logger[metadataKey: "numa_node"] = "0"
        logger.debug("not shown")
        logger.warning("placement degraded", metadata: ["numa_node": "1", "message_id": "4a07fca0c7374e4cafc385963ded5654"])
        #expect(lines.records == ["<4>placement degraded message_id=4a07fca0c7374e4cafc385963ded5654 numa_node=1\n"])
    }

    @Test func journalStreamVariableIsComparedWithStderr() throws {
        var a: [Int32] = [-1, -1], b: [Int32] = [-1, -1]
        try #require(pipe(&a) == 0 && pipe(&b) == 0)
        defer { (a + b).forEach { close($0) } }
        var st = stat()
        try #require(fstat(a[1], &st) == 0)
        let value = "\(st.st_dev):\(st.st_ino)"
        #expect(LoggingSetup.stderrIsJournal(journalStream: value, fd: a[1]))
        #expect(!LoggingSetup.stderrIsJournal(journalStream: value, fd: b[1]))
        #expect(!LoggingSetup.stderrIsJournal(journalStream: nil, fd: a[1]))
        for bad in ["", ":", "\(st.st_dev)", "\(st.st_dev):", ":\(st.st_ino)", "\(st.st_dev):\(st.st_ino):0",
                    "\(st.st_dev): \(st.st_ino)", "-\(st.st_dev):\(st.st_ino)", "0x\(st.st_dev):\(st.st_ino)"] {
            #expect(!LoggingSetup.stderrIsJournal(journalStream: bad, fd: a[1]), "accepted \"\(bad)\"")
        }
        #expect(!LoggingSetup.stderrIsJournal(journalStream: value, fd: 1000 + a[1]))
    }

    @Test func destinations() throws {
        #expect(LoggingSetup.makeHandler(label: "x", destination: .journal) is JournalLogHandler)
        #expect(LoggingSetup.makeHandler(label: "x", destination: .stderr) is StderrLogHandler)
        let handler = LoggingSetup.makeHandler(label: "x", level: .debug, destination: .stderr)
        #expect(handler.logLevel == .debug)
        // stderr is the journal only when $JOURNAL_STREAM names it.
        var st = stat()
        try #require(fstat(2, &st) == 0)
        try withEnvironment(["JOURNAL_STREAM": "\(st.st_dev):\(st.st_ino)"]) { () throws in
            #expect(LoggingSetup.resolve(.automatic) == .journal)
        }
        try withEnvironment(["JOURNAL_STREAM": "\(st.st_dev):\(st.st_ino &+ 1)"]) { () throws in
            #expect(LoggingSetup.resolve(.automatic) == .stderr)
            #expect(LoggingSetup.resolve(.journal) == .journal)
        }
        try withEnvironment(["JOURNAL_STREAM": nil]) { () throws in
            #expect(LoggingSetup.resolve(.automatic) == .stderr)
        }
    }

    @Test func messageIDs() {
        #expect(MessageID.all.count == 12)
        #expect(Set(MessageID.all).count == MessageID.all.count)
        for id in MessageID.all {
            #expect(MessageID(rawValue: id.rawValue) == id)
        }
        #expect(MessageID(rawValue: "49EBF4D4B421470286D89DF59FA90D78") == nil)
        #expect(MessageID(rawValue: "49ebf4d4-b421-4702-86d8-9df59fa90d78") == nil)
        #expect(MessageID(rawValue: "49ebf4d4b421470286d89df59fa90d7") == nil)
    }
}
