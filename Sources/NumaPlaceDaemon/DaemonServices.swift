import Dispatch
import Logging
import NumaPlacePlatform
import ServiceLifecycle
#if canImport(Glibc)
import Glibc
#endif

extension Daemon {
    /// A socket the daemon bound itself gets what numaplaced.socket gives the systemd one: mode 0660 and
    /// group `numaplace` when that group exists; otherwise 0600 for root (only root may connect) and
    /// 0600 for a user's own daemon. SO_PEERCRED still judges every call; this is the outer gate.
    static func restrictSocket(_ path: String, logger: Logger) {
        // The directory is trusted (TrustedDirectory), so the path is still the socket just bound; a
        // link or anything else in its place is left alone rather than given to the group.
        var st = stat()
        guard lstat(path, &st) == 0, st.st_mode & S_IFMT == S_IFSOCK else {
            logger.warning("\(path) is not the socket just bound: its mode is left as it is")
            return
        }
        if geteuid() == 0, let group = getgrnam("numaplace") {
            if lchown(path, 0, group.pointee.gr_gid) != 0 || chmod(path, 0o660) != 0 {
                logger.warning("cannot give \(path) to group numaplace: \(String(cString: strerror(errno)))")
            }
        } else if chmod(path, 0o600) != 0 {
            logger.warning("cannot restrict \(path): \(String(cString: strerror(errno)))")
        }
    }
}

/// Runs the socket server until graceful shutdown, then stops accepting.
struct ServerService: Service {
    let server: VarlinkServer
    func run() async throws {
        try? await gracefulShutdown()
        await server.stop()
    }
}

/// READY=1 once serving, STATUS= on every change, WATCHDOG=1 at half the interval, and SIGHUP reloads.
struct SystemdService: Service {
    let daemon: Daemon

    func run() async throws {
        let notifier = daemon.notifier
        let hub = daemon.hub
        let store = daemon.store
        let supervisor = daemon.supervisor
        func status() async -> String {
            daemon.statusLine(devices: await store.inventory.devices.count, running: await supervisor.runningCount)
        }
        _ = try? notifier.ready(status: await status())
        let (changes, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let sub = hub.subscribe(deliver: { _ in continuation.yield(()); return true }, overflow: {})
        defer { hub.unsubscribe(sub.token) }

        let hup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        signal(SIGHUP, SIG_IGN)
        hup.setEventHandler { Task { _ = await daemon.reload() } }
        hup.resume()
        defer { hup.cancel() }

        let watchdog = (try? notifier.watchdogInterval()) ?? nil
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { tasks in
                tasks.addTask {
                    for await _ in changes { _ = try? notifier.status(await status()) }
                }
                if let interval = watchdog {
                    tasks.addTask {
                        while !Task.isCancelled {
                            _ = try? notifier.watchdog()
                            try? await Task.sleep(for: interval / 2)
                        }
                    }
                }
                await tasks.next()
                tasks.cancelAll()
            }
        } onGracefulShutdown: {
            continuation.finish()
        }
    }
}
