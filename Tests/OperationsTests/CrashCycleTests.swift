import Foundation
import Testing
import TestSupport

/// The real `techbank serve`, its server and every PostgreSQL process killed with SIGKILL at
/// random moments while writers post transfers: nothing acknowledged is ever lost, and a request
/// left without an answer, resent with the same id and body, lands exactly once.
@Suite("Crash cycles", .serialized)
struct CrashCycleTests {
    static let cycles = 20
    static let writers = 8

    @Test("SIGKILL of the server and its cluster loses no acknowledged transfer; in-doubt retries land once")
    func killedAgainAndAgain() async throws {
        let seed = SeededGenerator.seed(from: "TECHBANK_CRASH_SEED")
        print("crash cycles: seed \(seed) (set TECHBANK_CRASH_SEED=\(seed) to repeat)")
        var generator = SeededGenerator(seed: seed)
        let work = NSTemporaryDirectory() + "techbank-crash-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: false)
        let server = ServerUnderTest(dataDir: work + "/cluster")
        defer {
            server.killEverything()
            removeIfPresent(work)
        }
        try await server.start()
        let tenant = try await Tenant.create(on: try server.client, accounts: 6)
        let log = TransferLog()
        let started = Date()
        for cycle in 1...Self.cycles {
            let (stop, writersSeed) = (StopFlag(), generator.next())
            let writing = Task { [client = try server.client] in
                await runWriters(Self.writers, tenant: tenant, client: client, log: log, seed: writersSeed, stop: stop)
            }
            try await Task.sleep(for: .milliseconds(Int.random(in: 100...900, using: &generator)))
            stop.set()
            try server.crash(clusterFirst: Bool.random(using: &generator))
            await writing.value
            try await server.start()
            try await log.retryInDoubt(client: try server.client, key: tenant.key)
            let problems = try await LedgerChecks.problems(dataDir: server.dataDir, acknowledged: await log.acknowledged)
            #expect(problems.isEmpty, "cycle \(cycle), seed \(seed): \(problems.prefix(10))")
            let conflicts = await log.conflicts
            #expect(conflicts.isEmpty, "cycle \(cycle), seed \(seed): \(conflicts.prefix(10))")
            if cycle % 5 == 0 { _ = try await LedgerChecks.auditVerify(dataDir: server.dataDir) }
        }
        let lost = try await LedgerChecks.problems(dataDir: server.dataDir, acknowledged: await log.acknowledged).filter { $0.hasPrefix("lost") }
        print("""
            crash cycles: \(Self.cycles) cycles, seed \(seed), \(await log.acknowledged.count) acknowledged, \
            \(await log.everInDoubt) in doubt (retries answered \(await log.retryAnswers[200] ?? 0)× 200 had landed, \
            \(await log.retryAnswers[201] ?? 0)× 201 had not), \(await log.refused) refused, \(lost.count) lost, \
            \(String(format: "%.1f", Date().timeIntervalSince(started))) s
            """)
        #expect(lost.isEmpty)
        #expect(await log.acknowledged.count > Self.cycles, "the writers got transfers through")
        try await server.stop()
    }
}
