#if canImport(Glibc)
import Glibc
#endif
import NumaPlaceSyscall

/// sendmsg(2) and recvmsg(2) on a Unix stream socket with `SCM_RIGHTS` descriptors (unix(7)), shared by
/// the daemon's connections and the blocking client.
///
/// The cmsg macros (CMSG_SPACE, CMSG_DATA, …) are not imported into Swift; they are spelt out here for
/// Linux, where a `cmsghdr` is aligned to `size_t` and its data follows the aligned header.
public enum UnixSocketIO {
    /// The most descriptors one message may carry. A receive makes room for exactly this many: the
    /// kernel closes whatever does not fit and reports MSG_CTRUNC, so a peer cannot make the daemon
    /// hold more than this per message.
    public static let maxDescriptorsPerMessage = 16

    /// MSG_CMSG_CLOEXEC (Linux): received descriptors are close-on-exec from the start, so a worker
    /// spawned on another thread at that moment cannot inherit them.
    static let cmsgCloexec: Int32 = 0x4000_0000

    static func align(_ n: Int) -> Int { (n + MemoryLayout<Int>.size - 1) & ~(MemoryLayout<Int>.size - 1) }
    static var headerSize: Int { align(MemoryLayout<cmsghdr>.size) }
    static func space(_ n: Int) -> Int { headerSize + align(n) }

    /// A blocking stream socket (close-on-exec) connected to the Unix socket at `path`: the clients'
    /// one way there (VarlinkClient, the NRI plugin's trunk). ENAMETOOLONG when `path` does not fit
    /// `sun_path`; otherwise socket(2)'s or connect(2)'s errno, the socket closed.
    public static func connect(path: String) throws(Errno) -> Int32 {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { throw Errno(ENAMETOOLONG) }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let s = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard s >= 0 else { throw .current }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(s, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if rc != 0 {
            let e = Errno.current
            Syscall.close(s)
            throw e
        }
        return s
    }

    /// What one recvmsg returned.
    public struct Received {
        /// Bytes read; 0 at end of stream.
        public var count: Int
        /// Descriptors that arrived with these bytes, owned by the caller from here.
        public var descriptors: [Int32]
        /// MSG_CTRUNC: more descriptors were sent than fit (the kernel dropped the rest).
        public var truncated: Bool
    }

    /// One recvmsg into `buffer`, non-blocking. Throws the errno (EAGAIN included); EINTR is retried.
    public static func receive(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Received {
        let controlBytes = space(maxDescriptorsPerMessage * MemoryLayout<Int32>.size)
        // Aligned for cmsghdr: an array of Int.
        var control = [Int](repeating: 0, count: controlBytes / MemoryLayout<Int>.size + 1)
        var iov = iovec(iov_base: buffer.baseAddress, iov_len: buffer.count)
        let result = control.withUnsafeMutableBytes { (controlBuffer) -> Result<Received, Errno> in
            withUnsafeMutablePointer(to: &iov) { (iovPointer) -> Result<Received, Errno> in
                var msg = msghdr()
                msg.msg_iov = iovPointer
                msg.msg_iovlen = 1
                msg.msg_control = controlBuffer.baseAddress
                msg.msg_controllen = controlBytes
                let n: Int
                do throws(Errno) {
                    n = try Syscall.retrying { recvmsg(fd, &msg, Int32(MSG_DONTWAIT) | cmsgCloexec) }
                } catch {
                    return .failure(error)
                }
                var fds: [Int32] = []
                var offset = 0
                while offset + headerSize <= Int(msg.msg_controllen) {
                    let header = controlBuffer.load(fromByteOffset: offset, as: cmsghdr.self)
                    let length = Int(header.cmsg_len)
                    guard length >= headerSize, offset + length <= Int(msg.msg_controllen) else { break }
                    if header.cmsg_level == SOL_SOCKET, header.cmsg_type == Int32(SCM_RIGHTS) {
                        let count = (length - headerSize) / MemoryLayout<Int32>.size
                        for i in 0..<count {
                            fds.append(controlBuffer.loadUnaligned(fromByteOffset: offset + headerSize + i * 4, as: Int32.self))
                        }
                    }
                    offset += align(length)
                }
                return .success(Received(count: n, descriptors: fds, truncated: msg.msg_flags & Int32(MSG_CTRUNC) != 0))
            }
        }
        return try result.get()
    }

    /// sendmsg of `bytes` with `descriptors` attached to their first byte; the rest (after a short
    /// write) goes with plain sends. Blocking socket; EINTR retried; SIGPIPE never raised.
    public static func sendAll(_ fd: Int32, _ bytes: [UInt8], descriptors: [Int32] = []) throws(Errno) {
        var offset = 0
        if !descriptors.isEmpty {
            let dataBytes = descriptors.count * MemoryLayout<Int32>.size
            let controlBytes = space(dataBytes)
            var control = [Int](repeating: 0, count: controlBytes / MemoryLayout<Int>.size + 1)
            var copy = bytes
            let sent = copy.withUnsafeMutableBytes { data -> Result<Int, Errno> in
                control.withUnsafeMutableBytes { c in
                    var header = cmsghdr()
                    header.cmsg_len = headerSize + dataBytes
                    header.cmsg_level = SOL_SOCKET
                    header.cmsg_type = Int32(SCM_RIGHTS)
                    c.storeBytes(of: header, as: cmsghdr.self)
                    for (i, d) in descriptors.enumerated() {
                        c.storeBytes(of: d, toByteOffset: headerSize + i * 4, as: Int32.self)
                    }
                    var iov = iovec(iov_base: data.baseAddress, iov_len: data.count)
                    return withUnsafeMutablePointer(to: &iov) { iovPointer in
                        var msg = msghdr()
                        msg.msg_iov = iovPointer
                        msg.msg_iovlen = 1
                        msg.msg_control = c.baseAddress
                        msg.msg_controllen = controlBytes
                        return Result { () throws(Errno) in try Syscall.retrying { sendmsg(fd, &msg, Int32(MSG_NOSIGNAL)) } }
                    }
                }
            }
            offset = try sent.get()
        }
        guard offset < bytes.count else { return }
        try Syscall.transferAll(Array(bytes[offset...])) { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }
}
