// swift-tools-version:6.0
// numaplaced: place accelerator workers on the NUMA node of their device.
// Layers follow DESIGN.md: Core (pure model) ← Protocol (Varlink wire) ← Platform (C libraries, spawner)
// ← Daemon (services) ← numaplaced; numaplacectl speaks the Protocol only.
import PackageDescription

let package = Package(
    name: "numaplaced",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "numaplaced", targets: ["numaplaced"]),
        .executable(name: "numaplacectl", targets: ["numaplacectl"]),
        .executable(name: "numaplace-bench", targets: ["numaplace-bench"]),
        // For the NRI plugin's own package (nri/Package.swift), which depends on this one by path so that
        // its swift-protobuf never enters this package's build. Not a stable API for anyone else.
        .library(name: "NumaPlaceSyscall", targets: ["NumaPlaceSyscall"]),
        .library(name: "NumaPlaceCore", targets: ["NumaPlaceCore"]),
        .library(name: "NumaPlaceProtocol", targets: ["NumaPlaceProtocol"]),
        .library(name: "NumaPlaceTestSupport", targets: ["NumaPlaceTestSupport"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.80.0"),
        // 1.12: LogHandler.log(event:) with LogEvent.error, which the journal and stderr handlers implement.
        .package(url: "https://github.com/apple/swift-log.git", from: "1.12.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
    ],
    targets: [
        // System libraries, found through pkg-config; apt names the Debian package to install. libnuma
        // is the live-host tests' independent reading of the topology only (docs/architecture.md says why
        // the daemon reads sysfs itself).
        .systemLibrary(name: "CNuma", pkgConfig: "numa", providers: [.apt(["libnuma-dev"])]),
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        .systemLibrary(name: "CUdev", pkgConfig: "libudev", providers: [.apt(["libudev-dev"])]),

        // The code that runs between clone and execve, plus thin wrappers for the GNU extensions
        // Swift's Glibc module hides (sched_setaffinity, pipe2, SO_PEERCRED, pidfd_*).
        .target(name: "CNumaPlaceShim"),

        // Errno, EINTR retries and whole writes, for every layer (why our own: the file's top comment).
        .target(name: "NumaPlaceSyscall"),
        .target(name: "NumaPlaceCore", dependencies: ["NumaPlaceSyscall"]),
        .target(
            name: "NumaPlaceProtocol",
            dependencies: ["NumaPlaceCore", "NumaPlaceSyscall"],
            exclude: ["io.numaplaced.Manager.varlink", "embed-interface.py", "generate-types.py"]
        ),
        .target(
            name: "NumaPlacePlatform",
            dependencies: [
                "NumaPlaceSyscall", "NumaPlaceCore", "CNumaPlaceShim", "CSystemd", "CUdev",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "NumaPlaceDaemon",
            dependencies: [
                "NumaPlaceSyscall", "NumaPlaceCore", "NumaPlaceProtocol", "NumaPlacePlatform", "CNumaPlaceShim",
                // NIOPosix for its thread pools (SpawnThread, UdevWatcher); connections are served on
                // libdispatch with recvmsg, which NIO's channels cannot do (docs/architecture.md).
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "numaplaced",
            dependencies: [
                "NumaPlaceDaemon", "NumaPlacePlatform", "NumaPlaceCore", "NumaPlaceProtocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "numaplacectl",
            dependencies: [
                "NumaPlaceProtocol", "NumaPlaceCore", "NumaPlaceSyscall",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "numaplace-bench",
            dependencies: [
                "NumaPlaceProtocol", "NumaPlaceCore", "NumaPlacePlatform", "NumaPlaceSyscall",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // What every test target shares: the real-machine fixtures of ../shared (found, never copied),
        // sysfs trees written by a test, and the live host's probes and process helpers.
        .target(name: "NumaPlaceTestSupport", dependencies: ["NumaPlaceCore"], path: "Tests/NumaPlaceTestSupport"),
        // Tier 1 and 2 of DESIGN.md: parsers, model, placement; hostile tables and fixtures.
        .testTarget(name: "NumaPlaceCoreTests", dependencies: ["NumaPlaceCore", "NumaPlaceProtocol", "NumaPlaceTestSupport"]),
        // The Varlink wire: framing byte by byte, the JSON writers, the embedded interface text.
        .testTarget(name: "NumaPlaceProtocolTests", dependencies: ["NumaPlaceProtocol"]),
        // Tier 3: real spawns, the C child, libudev, sd_notify and journald wrappers on this host.
        .testTarget(
            name: "NumaPlacePlatformTests",
            dependencies: [
                "NumaPlaceSyscall", "NumaPlaceCore", "NumaPlacePlatform", "CNumaPlaceShim", "CNuma",
                "NumaPlaceTestSupport",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The daemon in memory and over a live socket.
        .testTarget(
            name: "NumaPlaceDaemonTests",
            dependencies: [
                "NumaPlaceCore", "NumaPlaceProtocol", "NumaPlacePlatform", "NumaPlaceDaemon", "NumaPlaceTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // numaplacectl as its users run it: the built executable against a live numaplaced.
        .testTarget(name: "NumaPlaceCtlTests", dependencies: ["NumaPlaceProtocol", "NumaPlaceCore", "NumaPlaceTestSupport"]),
    ],
    swiftLanguageModes: [.v5]
)
