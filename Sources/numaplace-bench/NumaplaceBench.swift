import ArgumentParser

/// `numaplace-bench`: measurements that are not tests (they report numbers, they do not assert).
/// Each benchmark is a subcommand; add new ones to `subcommands`.
@main
struct NumaplaceBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "numaplace-bench",
        abstract: "Benchmarks for numaplaced. Build with -c release before trusting a number.",
        subcommands: [SpawnBenchmark.self, CLIRunBenchmark.self, SoakCommand.self, DaemonSpawnBenchmark.self, DaemonThroughputBenchmark.self, QueryBenchmark.self, ScanBenchmark.self, SyntheticRootCommand.self, HotplugBenchmark.self, StartupBenchmark.self, WorkerMemoryBenchmark.self]
    )
}
