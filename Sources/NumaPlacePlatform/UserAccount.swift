#if canImport(Glibc)
import Glibc
#endif

/// A user account from the passwd and group databases (getpwnam_r, getpwuid_r, getgrouplist).
public struct UserAccount: Hashable, Sendable {
    public let name: String
    public let uid: uid_t
    public let gid: gid_t
    public let groups: [gid_t]

    public init(name: String, uid: uid_t, gid: gid_t, groups: [gid_t]) {
        self.name = name
        self.uid = uid
        self.gid = gid
        self.groups = groups
    }

    /// A name, or a number taken as a uid.
    public static func lookup(_ nameOrID: String) -> UserAccount? {
        if let uid = UInt32(nameOrID) { return lookup(uid: uid) }
        return fetch { pw, buf, result in getpwnam_r(nameOrID, pw, buf, 16384, result) }
    }

    public static func lookup(uid: uid_t) -> UserAccount? {
        fetch { pw, buf, result in getpwuid_r(uid, pw, buf, 16384, result) }
    }

    private static func fetch(_ call: (UnsafeMutablePointer<passwd>, UnsafeMutablePointer<CChar>,
                                       UnsafeMutablePointer<UnsafeMutablePointer<passwd>?>) -> Int32) -> UserAccount? {
        var pw = passwd()
        var result: UnsafeMutablePointer<passwd>? = nil
        let buf = UnsafeMutablePointer<CChar>.allocate(capacity: 16384)
        defer { buf.deallocate() }
        guard call(&pw, buf, &result) == 0, result != nil, let namePtr = pw.pw_name else { return nil }
        let name = String(cString: namePtr)
        var count: Int32 = 64
        var groups = [gid_t](repeating: 0, count: Int(count))
        if getgrouplist(namePtr, pw.pw_gid, &groups, &count) < 0 {
            groups = [gid_t](repeating: 0, count: Int(count))
            if getgrouplist(namePtr, pw.pw_gid, &groups, &count) < 0 { count = 0 }
        }
        return UserAccount(name: name, uid: pw.pw_uid, gid: pw.pw_gid, groups: Array(groups.prefix(Int(max(count, 0)))))
    }
}
