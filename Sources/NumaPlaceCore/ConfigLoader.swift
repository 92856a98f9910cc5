#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import NumaPlaceSyscall

/// Reads the configuration files from a directory and hands them to `ConfigParser`.
///
/// The files, in the order they are applied:
/// 1. `DIR/numaplaced.conf`, if it exists;
/// 2. `DIR/numaplaced.conf.d/*.conf`, sorted by file name byte by byte (as systemd orders drop-ins,
///    so `10-site.conf` comes before `50-gpu.conf` in every locale).
///
/// A missing file or drop-in directory is not an error (every key has a default); a file that exists
/// but cannot be read, is larger than `maxFileBytes` or is not UTF-8 is, with its path.
public enum ConfigLoader {
    public static let defaultDirectory = "/etc/numaplaced"
    public static let mainFileName = "numaplaced.conf"
    public static let dropInDirectoryName = "numaplaced.conf.d"
    /// A configuration file is a few kilobytes; the bound keeps a wrong path (a log, a device) from
    /// being read whole.
    public static let maxFileBytes = 1 << 20

    /// The files that exist, read, in the order they apply.
    public static func sources(directory: String = defaultDirectory) throws(ConfigError) -> [ConfigSource] {
        let root = SysfsRoot(directory)
        var sources: [ConfigSource] = []
        if let main = try read(root, mainFileName) { sources.append(main) }

        let names: [String]
        do {
            names = try root.list(dropInDirectoryName)
        } catch {
            guard error.isMissing else {
                throw ConfigError(.unreadable, file: root.absolute(dropInDirectoryName), line: nil,
                                  "cannot list drop-ins: \(error.errno)")
            }
            names = []
        }
        let dropIns = names
            .filter { $0.hasSuffix(".conf") && !$0.hasPrefix(".") }
            .sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        for name in dropIns {
            if let source = try read(root, dropInDirectoryName + "/" + name) { sources.append(source) }
        }
        return sources
    }

    /// The configuration named by `path`: a single file, or else a directory read as
    /// `sources(directory:)` reads one (a path that does not exist gives no sources: every key has a
    /// default). Errors name the file as given.
    public static func sources(path: String) throws(ConfigError) -> [ConfigSource] {
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) != S_IFDIR else {
            return try sources(directory: path)
        }
        let absolute: String
        if path.hasPrefix("/") {
            absolute = path
        } else {
            var cwd = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            guard getcwd(&cwd, cwd.count) != nil else {
                throw ConfigError(.unreadable, file: path, line: nil, "cannot resolve a relative path: \(String(cString: strerror(errno)))")
            }
            absolute = String(decoding: cwd.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) + "/" + path
        }
        guard let source = try read(SysfsRoot("/"), String(absolute.drop { $0 == "/" }), display: path) else {
            return []
        }
        return [source]
    }

    /// Reads and parses the configuration under `directory`; throws the first error with `file:line`.
    public static func load(directory: String = defaultDirectory,
                            defaults: Configuration = Configuration()) throws(ConfigError) -> Configuration {
        try ConfigParser.parse(sources(directory: directory), defaults: defaults)
    }

    /// Nil for a file that does not exist (it may vanish between listing and reading, too).
    private static func read(_ root: SysfsRoot, _ relative: String, display: String? = nil) throws(ConfigError) -> ConfigSource? {
        let path = display ?? root.absolute(relative)
        let bytes: [UInt8]
        do {
            bytes = try root.readBytes(relative, limit: maxFileBytes + 1)
        } catch {
            if error.errno == .noSuchFileOrDirectory { return nil }
            throw ConfigError(.unreadable, file: path, line: nil, error.errno.description)
        }
        guard bytes.count <= maxFileBytes else {
            throw ConfigError(.unreadable, file: path, line: nil, "larger than \(maxFileBytes >> 20) MiB")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ConfigError(.unreadable, file: path, line: nil, "not valid UTF-8")
        }
        return ConfigSource(path: path, text: text)
    }
}
