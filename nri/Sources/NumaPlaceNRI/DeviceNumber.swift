#if canImport(Glibc)
import Glibc
#endif

/// A device file's numbers: what an OCI spec's `linux.devices` entry and stat(2) of the host's node agree
/// on when its path does not (a device plugin may mount the host's node at another path).
public struct DeviceNumber: Hashable, Sendable {
    /// `c` or `b`: a character and a block device of the same numbers are different devices.
    public var type: UInt8
    public var major: Int64
    public var minor: Int64
}

extension DeviceNumber {
    /// The spec entry's numbers; nil where it gives none (type other than c, u or b, or 0:0, which
    /// runtimes leave when they did not stat the host's node).
    init?(spec device: Nri_Pkg_Api_V1alpha1_LinuxDevice) {
        let type: UInt8
        switch device.type {
        case "c", "u": type = UInt8(ascii: "c")
        case "b": type = UInt8(ascii: "b")
        default: return nil
        }
        guard device.major > 0 || device.minor > 0, device.major >= 0, device.minor >= 0 else { return nil }
        self.init(type: type, major: device.major, minor: device.minor)
    }

    /// The numbers of the host's device node at `path`; nil when it is absent or not a device node.
    public static func ofHostNode(_ path: String) -> DeviceNumber? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        let kind = st.st_mode & S_IFMT
        guard kind == S_IFCHR || kind == S_IFBLK else { return nil }
        // glibc's gnu_dev_major / gnu_dev_minor, which Swift's Glibc module does not import.
        let dev = UInt64(st.st_rdev)
        let major = (dev >> 8) & 0xfff | (dev >> 32) & 0xffff_f000
        let minor = dev & 0xff | (dev >> 12) & 0xffff_ff00
        return DeviceNumber(type: UInt8(ascii: kind == S_IFCHR ? "c" : "b"), major: Int64(major), minor: Int64(minor))
    }
}

/// How the placer learns a host node's numbers: stat(2) in production, a table in tests.
public typealias DeviceNumberLookup = (String) -> DeviceNumber?
