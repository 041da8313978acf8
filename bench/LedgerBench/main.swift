// LedgerBench: throughput and latency of the ledger's transfer path against a real PostgreSQL.
//
// Phases, each printed as one machine-readable `key=value` line on stdout:
//   config   the settings of this run and of the server (version, fsync, synchronous_commit)
//   setup    accounts created
//   connections  pooled connections opened, and how many distinct journal shards they map to
//   warmup   single transfers whose numbers are discarded (plans cached, connections open)
//   single   `Ledger.createTransfer` (one posted transfer per database transaction) from N tasks
//   grouped  the same through `GroupCommit`, where concurrent transfers share a ledger call
//   batched  `Ledger.createTransfers(_:atomic: true)` with --batch-size transfers per call
//   check    the database agrees with what the client saw (row count, debits == credits)
// Anything that is not outcome `ok` is a failure: it is counted, the first few are printed on
// stderr, and the process exits with status 1 after printing every line.

import ArgumentParser
import Foundation
import Ledger
import Logging
import Postgres

// main.swift is top-level code, so the command is started here rather than with @main. Not with
// `LedgerBench.main()` or `command.run()`: at top level those resolve to ParsableCommand's
// synchronous overloads, which would only print the help.
do {
    let command = try LedgerBench.parse()
    try await command.execute()
} catch {
    LedgerBench.exit(withError: error)
}

struct LedgerBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "LedgerBench",
        abstract: "Benchmark Ledger.createTransfer / createTransfers against PostgreSQL.",
        discussion: """
            Without --database-url (or DATABASE_URL) a throwaway embedded cluster with default \
            (durable) settings is created in a temporary directory and deleted afterwards.
            """)

    @Option(help: "libpq connection string or URL of the database to use (env: DATABASE_URL).")
    var databaseURL: String?

    @Option(help: "Concurrent tasks issuing single transfers.")
    var concurrency: Int = 16

    @Option(help: "Duration of each measured phase, in seconds.")
    var seconds: Double = 10

    @Option(help: "Accounts to create and transfer between.")
    var accounts: Int = 1_000

    @Option(help: "Transfers per atomic batch in the batched phase (1...\(Ledger.maxBatchSize)).")
    var batchSize: Int = 1_000

    @Option(help: "Concurrent tasks issuing batches (default: min(concurrency, 4)).")
    var batchConcurrency: Int?

    @Option(help: "Connections in the pool.")
    var poolSize: Int = 16

    @Option(help: "Seconds of single transfers run before measuring, not counted.")
    var warmupSeconds: Double = 1

    @Option(help: "Currency of the accounts and transfers.")
    var currency: String = "CNY"

    func validate() throws {
        guard concurrency >= 1 else { throw ValidationError("--concurrency must be at least 1") }
        guard seconds > 0 else { throw ValidationError("--seconds must be positive") }
        guard warmupSeconds >= 0 else { throw ValidationError("--warmup-seconds must not be negative") }
        guard accounts >= 2 else { throw ValidationError("--accounts must be at least 2") }
        guard (1...Ledger.maxBatchSize).contains(batchSize) else {
            throw ValidationError("--batch-size must be between 1 and \(Ledger.maxBatchSize)")
        }
        if let batchConcurrency, batchConcurrency < 1 { throw ValidationError("--batch-concurrency must be at least 1") }
        guard poolSize >= 1 else { throw ValidationError("--pool-size must be at least 1") }
    }

    func run() async throws {
        try await execute()
    }

    func execute() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
            return handler
        }
        let logger = Logger(label: "ledger-bench")

        var embedded: EmbeddedPostgres?
        let conninfo: String
        if let url = databaseURL ?? ProcessInfo.processInfo.environment["DATABASE_URL"], !url.isEmpty {
            conninfo = url
        } else {
            let directory = NSTemporaryDirectory() + "ledger-bench-\(UUID().uuidString.prefix(8))"
            let cluster = try EmbeddedPostgres(options: EmbeddedPostgres.Options(directory: directory))
            embedded = cluster
            do {
                try await cluster.start(logger: logger)
            } catch {
                try? cluster.destroy()
                throw error
            }
            conninfo = cluster.conninfo
        }

        var configuration = PostgresConfiguration(conninfo: conninfo)
        configuration.maxConnections = poolSize
        configuration.leaseTimeout = .seconds(120)
        configuration.statementTimeoutMilliseconds = 600_000
        let pool = PostgresPool(configuration: configuration, logger: logger)

        let outcome: Result<Bool, any Error>
        do {
            outcome = .success(try await benchmark(pool: pool))
        } catch {
            outcome = .failure(error)
        }
        await pool.close()
        if let embedded { try? embedded.destroy() }
        guard try outcome.get() else { throw ExitCode(1) }
    }

    /// Runs every phase; returns whether everything succeeded.
    private func benchmark(pool: PostgresPool) async throws -> Bool {
        let ledger = Ledger(pool: pool)
        let batchTasks = batchConcurrency ?? min(concurrency, 4)

        try await Ledger.migrate(pool)
        let server = try await pool.withConnection { connection in
            try await connection.query(
                "SELECT current_setting('server_version'), current_setting('fsync'), current_setting('synchronous_commit')")
        }[0]
        emit("config", [
            ("concurrency", "\(concurrency)"), ("batch_concurrency", "\(batchTasks)"), ("pool_size", "\(poolSize)"),
            ("seconds", "\(seconds)"), ("accounts", "\(accounts)"), ("batch_size", "\(batchSize)"),
            ("server_version", String(try server.decode(String.self, at: 0).split(separator: " ").first ?? "unknown")),
            ("fsync", try server.decode(String.self, at: 1)),
            ("synchronous_commit", try server.decode(String.self, at: 2)),
        ])

        let transfersBefore = try await storedTransfers(pool)

        // Accounts: one currency, no balance rule, so no transfer can fail for lack of funds.
        let setupStart = ContinuousClock.now
        let accountIDs = try await createAccounts(ledger)
        emit("setup", [("accounts", "\(accountIDs.count)"), ("seconds", fixed(elapsedSeconds(since: setupStart), 2))])

        // Opens every pooled connection, so that no measured call pays for a connect.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<poolSize {
                group.addTask {
                    try await pool.withConnection { connection in
                        try await connection.query("SELECT 1")
                        try await Task.sleep(for: .milliseconds(100))
                    }
                }
            }
            try await group.waitForAll()
        }

        // The journal is sharded by `pg_backend_pid() % 16` (schema.sql); connections that share a
        // shard serialize on its head row until commit, which shows in the single phase.
        let shards = try await pool.withConnection { connection in
            try await connection.query(
                """
                SELECT count(DISTINCT pid % 16), count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND backend_type = 'client backend'
                """)
        }[0]
        emit("connections", [
            ("open", "\(try shards.decode(Int.self, at: 1))"),
            ("distinct_journal_shards", "\(try shards.decode(Int.self, at: 0))"),
        ])

        var allSucceeded = true
        var okTransfers = 0

        let groupCommit = GroupCommit(pool: pool)
        let alone: @Sendable (TransferRequest) async throws -> TransferResult = { try await ledger.createTransfer($0) }
        let grouped: @Sendable (TransferRequest) async throws -> TransferResult = { try await groupCommit.createTransfer($0) }

        if warmupSeconds > 0 {
            let warmup = try await runSingle(accountIDs, for: warmupSeconds, alone)
            okTransfers += warmup.stats.ok
            allSucceeded = report(warmup.stats, phase: "warmup") && allSucceeded
            emit("warmup", [("count", "\(warmup.stats.ok)"), ("failures", "\(warmup.stats.failureCount)")])
        }

        // Single transfers, each its own ledger call; then the same through group commit, where
        // concurrent ones share a call.
        for (phase, create) in [("single", alone), ("grouped", grouped)] {
            let single = try await runSingle(accountIDs, for: seconds, create)
            okTransfers += single.stats.ok
            allSucceeded = report(single.stats, phase: phase) && allSucceeded
            let singleLatency = single.stats.latencies.sorted()
            emit(phase, [
                ("transfers_per_second", fixed(Double(single.stats.ok) / single.elapsed, 1)),
                ("count", "\(single.stats.ok)"), ("failures", "\(single.stats.failureCount)"),
                ("elapsed_s", fixed(single.elapsed, 3)), ("concurrency", "\(concurrency)"),
                ("p50_ms", fixed(percentile(singleLatency, 50), 2)), ("p90_ms", fixed(percentile(singleLatency, 90), 2)),
                ("p99_ms", fixed(percentile(singleLatency, 99), 2)), ("max_ms", fixed(singleLatency.last ?? .nan, 2)),
            ])
        }

        let batched = try await runBatched(ledger, accountIDs, tasks: batchTasks, for: seconds)
        okTransfers += batched.stats.ok
        allSucceeded = report(batched.stats, phase: "batched") && allSucceeded
        let batchLatency = batched.stats.latencies.sorted()
        emit("batched", [
            ("transfers_per_second", fixed(Double(batched.stats.ok) / batched.elapsed, 1)),
            ("batches", "\(batched.stats.calls)"), ("transfers", "\(batched.stats.ok)"),
            ("failures", "\(batched.stats.failureCount)"), ("elapsed_s", fixed(batched.elapsed, 3)),
            ("batch_size", "\(batchSize)"), ("concurrency", "\(batchTasks)"),
            ("p50_batch_ms", fixed(percentile(batchLatency, 50), 1)),
            ("p99_batch_ms", fixed(percentile(batchLatency, 99), 1)),
            ("max_batch_ms", fixed(batchLatency.last ?? .nan, 1)),
        ])

        // The database must hold exactly the transfers reported `ok`, and stay balanced.
        let stored = try await storedTransfers(pool) - transfersBefore
        let totals = try await ledger.totals()
        let balanced = totals.allSatisfy { $0.debitsPosted == $0.creditsPosted && $0.debitsPending == $0.creditsPending }
        let countMatches = stored == okTransfers
        emit("check", [
            ("stored_transfers", "\(stored)"), ("ok_transfers", "\(okTransfers)"),
            ("count_matches", "\(countMatches)"), ("balanced", "\(balanced)"),
        ])
        if !countMatches {
            printError("check: \(stored) transfers were stored but \(okTransfers) were reported ok (was something else writing to this database?)")
        }
        if !balanced { printError("check: debits and credits differ: \(totals)") }
        return allSucceeded && countMatches && balanced
    }

    // MARK: Phases

    private func createAccounts(_ ledger: Ledger) async throws -> [UUID] {
        let owner = UUID()
        let count = accounts
        let currency = currency
        let workers = min(concurrency, count)
        return try await withThrowingTaskGroup(of: [UUID].self) { group in
            for worker in 0..<workers {
                group.addTask {
                    var ids: [UUID] = []
                    for _ in stride(from: worker, to: count, by: workers) {
                        let new = NewAccount(currency: currency, ownerID: owner, code: "bench")
                        let (account, created) = try await ledger.createAccount(new)
                        guard created else { throw BenchError("account \(new.id) was not created") }
                        ids.append(account.id)
                    }
                    return ids
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
    }

    /// `concurrency` tasks, each creating one transfer at a time with `create` until the deadline.
    private func runSingle(_ accountIDs: [UUID], for duration: Double,
                           _ create: @escaping @Sendable (TransferRequest) async throws -> TransferResult) async throws -> (stats: Stats, elapsed: Double) {
        let currency = currency
        let start = ContinuousClock.now
        let deadline = start + .seconds(duration)
        let stats = try await withThrowingTaskGroup(of: Stats.self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    var stats = Stats()
                    while ContinuousClock.now < deadline {
                        let request = randomTransfer(accountIDs, currency: currency)
                        let began = ContinuousClock.now
                        do {
                            let result = try await create(request)
                            stats.latencies.append(milliseconds(ContinuousClock.now - began))
                            stats.calls += 1
                            stats.record(result)
                        } catch {
                            stats.calls += 1
                            stats.fail(kind: "error", "createTransfer threw: \(error)")
                            try? await Task.sleep(for: Stats.errorPause)
                        }
                    }
                    return stats
                }
            }
            return try await group.reduce(into: Stats()) { $0.merge($1) }
        }
        return (stats, elapsedSeconds(since: start))
    }

    /// `tasks` tasks, each calling `createTransfers(_:atomic: true)` with `batchSize` fresh transfers
    /// until the deadline. Building the batch is part of the elapsed time, not of a batch's latency.
    private func runBatched(_ ledger: Ledger, _ accountIDs: [UUID], tasks: Int, for duration: Double) async throws -> (stats: Stats, elapsed: Double) {
        let currency = currency
        let size = batchSize
        let start = ContinuousClock.now
        let deadline = start + .seconds(duration)
        let stats = try await withThrowingTaskGroup(of: Stats.self) { group in
            for _ in 0..<tasks {
                group.addTask {
                    var stats = Stats()
                    while ContinuousClock.now < deadline {
                        let requests = (0..<size).map { _ in randomTransfer(accountIDs, currency: currency) }
                        let began = ContinuousClock.now
                        do {
                            let results = try await ledger.createTransfers(requests, atomic: true)
                            stats.latencies.append(milliseconds(ContinuousClock.now - began))
                            stats.calls += 1
                            if results.count != size {
                                stats.fail(kind: "short_result", "a batch of \(size) returned \(results.count) results")
                            }
                            for result in results { stats.record(result) }
                        } catch {
                            stats.calls += 1
                            stats.fail(kind: "error", "createTransfers threw: \(error)")
                            try? await Task.sleep(for: Stats.errorPause)
                        }
                    }
                    return stats
                }
            }
            return try await group.reduce(into: Stats()) { $0.merge($1) }
        }
        return (stats, elapsedSeconds(since: start))
    }

    // MARK: Helpers

    private func storedTransfers(_ pool: PostgresPool) async throws -> Int {
        try await pool.withConnection { connection in
            try await connection.query("SELECT count(*) FROM ledger.transfers")[0].decode(Int.self, at: 0)
        }
    }

    /// Prints a phase's failures on stderr; returns whether there were none.
    private func report(_ stats: Stats, phase: String) -> Bool {
        guard stats.failureCount > 0 else { return true }
        let kinds = stats.failureKinds.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        printError("\(phase): \(stats.failureCount) failures (\(kinds)); first \(stats.failureSamples.count):")
        for sample in stats.failureSamples { printError("  \(sample)") }
        return false
    }
}

/// What the tasks of one phase saw.
struct Stats: Sendable {
    static let maxSamples = 10
    /// How long a task pauses after a call throws, so that a broken database is not hammered.
    /// (A static, not a global: globals in main.swift are only set when execution reaches them.)
    static let errorPause = Duration.milliseconds(20)

    /// Calls made (transfers for single, batches for batched).
    var calls = 0
    /// Transfers with outcome `ok`.
    var ok = 0
    /// Latency of each completed call, in milliseconds.
    var latencies: [Double] = []
    var failureCount = 0
    var failureKinds: [String: Int] = [:]
    var failureSamples: [String] = []

    mutating func record(_ result: TransferResult) {
        if result.outcome == .ok {
            ok += 1
        } else {
            fail(kind: result.outcome.rawValue,
                 "transfer \(result.id): \(result.outcome.rawValue)" + (result.detail.map { " (\($0))" } ?? ""))
        }
    }

    mutating func fail(kind: String, _ message: String) {
        failureCount += 1
        failureKinds[kind, default: 0] += 1
        if failureSamples.count < Self.maxSamples { failureSamples.append(message) }
    }

    mutating func merge(_ other: Stats) {
        calls += other.calls
        ok += other.ok
        latencies += other.latencies
        failureCount += other.failureCount
        failureKinds.merge(other.failureKinds, uniquingKeysWith: +)
        failureSamples += other.failureSamples.prefix(Self.maxSamples - failureSamples.count)
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A posted transfer of 1...10000 minor units between two distinct random accounts, with a fresh id.
func randomTransfer(_ accountIDs: [UUID], currency: String) -> TransferRequest {
    let debit = Int.random(in: 0..<accountIDs.count)
    var credit = Int.random(in: 0..<(accountIDs.count - 1))
    if credit >= debit { credit += 1 }
    return TransferRequest(
        id: UUID(),
        action: .post(debit: accountIDs[debit], credit: accountIDs[credit], amount: Int64.random(in: 1...10_000), currency: currency),
        code: "bench")
}

/// Nearest-rank percentile of an ascending array; NaN if it is empty.
func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    let rank = Int((p / 100 * Double(sorted.count)).rounded(.up))
    return sorted[min(max(rank, 1), sorted.count) - 1]
}

func milliseconds(_ duration: Duration) -> Double {
    let (seconds, attoseconds) = duration.components
    return Double(seconds) * 1_000 + Double(attoseconds) / 1e15
}

func elapsedSeconds(since start: ContinuousClock.Instant) -> Double {
    milliseconds(ContinuousClock.now - start) / 1_000
}

func fixed(_ value: Double, _ digits: Int) -> String {
    value.isFinite ? String(format: "%.\(digits)f", value) : "nan"
}

/// One result line: the phase name, then space-separated `key=value` pairs.
func emit(_ phase: String, _ fields: [(String, String)]) {
    print(([phase] + fields.map { "\($0.0)=\($0.1)" }).joined(separator: " "))
    fflush(nil)
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
