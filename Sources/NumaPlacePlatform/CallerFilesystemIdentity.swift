import CNumaPlaceShim
import Glibc
import NumaPlaceSyscall

/// The caller's filesystem identity on the calling thread, for as long as the value lives: path
/// lookups, permission checks and the owner of a created file are then the caller's, while the
/// daemon keeps its own uid (DESIGN.md, Security: "with the caller's hands").
///
/// Per thread on purpose (`np_thread_fs_identity`): the daemon's other threads go on as root. A
/// daemon that is not root, or a request without credentials (root's, or the daemon's own user),
/// changes nothing.
struct CallerFilesystemIdentity: ~Copyable {
    private let saved: (uid: uid_t, gid: gid_t, groups: [gid_t])?

    init(_ credentials: Credentials?) throws(SpawnError) {
        guard let credentials, geteuid() == 0 else {
            saved = nil
            return
        }
        // (uid_t)-1 and (gid_t)-1 name no id: setuid(2) and friends answer EINVAL, while setfsuid(2)
        // would take them as "no change". Refused here as the child's step would refuse them.
        let invalid = gid_t.max
        if credentials.groups.contains(invalid) {
            throw SpawnError(step: .setgroups, errno: .invalidArgument, operation: "setgroups(\(credentials.groups.map(String.init).joined(separator: ",")))")
        }
        if credentials.gid == invalid { throw SpawnError(step: .setgid, errno: .invalidArgument, operation: "setgid(\(credentials.gid))") }
        if credentials.uid == uid_t.max { throw SpawnError(step: .setuid, errno: .invalidArgument, operation: "setuid(\(credentials.uid))") }
        let own = (geteuid(), getegid(), Spawner.currentGroups().map { gid_t($0) })
        let result = credentials.groups.withUnsafeBufferPointer {
            np_thread_fs_identity(credentials.uid, credentials.gid, $0.count, $0.baseAddress, 1)
        }
        guard result == 0 else {
            let e = Errno.current
            // Part of the switch may have happened (the groups): back to the daemon's identity, or stop.
            let back = own.2.withUnsafeBufferPointer { np_thread_fs_identity(own.0, own.1, $0.count, $0.baseAddress, 0) }
            if back != 0 { fatalError("cannot restore the spawn thread's filesystem identity: \(Errno.current)") }
            throw SpawnError(step: .prepare, errno: e, operation: "setfsuid(\(credentials.uid))")
        }
        saved = own
    }

    /// Back to the daemon's identity. Root may always return to its own ids; should the kernel say
    /// otherwise, this thread must not go on with another user's identity, so that is fatal.
    func restore() {
        guard let saved else { return }
        let result = saved.groups.withUnsafeBufferPointer {
            np_thread_fs_identity(saved.uid, saved.gid, $0.count, $0.baseAddress, 0)
        }
        if result != 0 { fatalError("cannot restore the spawn thread's filesystem identity: \(Errno.current)") }
    }
}
