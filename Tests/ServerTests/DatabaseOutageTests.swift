import Foundation
import HTTPTypes
import Postgres
import TechBank
import Testing
import TestSupport

/// The database goes away under a running server and comes back: the server answers 503 with
/// `Retry-After` meanwhile (never a hang, never a wrong answer), replaces its dead connections,
/// and serves again without a restart. Each test runs its own cluster, since it stops it.
@Suite("A database that comes and goes")
struct DatabaseOutageTests {
    /// What an outage looks like to the server: a clean stop, or a power cut (SIGKILL of every
    /// process of the cluster).
    enum Outage: String, CaseIterable, Sendable { case stopped, killed }

    @Test("while the database is down, every request gets 503 with Retry-After; after it is back, the server serves again", arguments: Outage.allCases)
    func serverRidesOutAnOutage(_ outage: Outage) async throws {
        let cluster = try ThrowawayCluster(port: outage == .stopped ? 5436 : 5437)
        defer { cluster.destroy() }
        try await cluster.start()
        var configuration = PostgresConfiguration(conninfo: cluster.conninfo)
        configuration.maxConnections = 4
        configuration.leaseTimeout = .seconds(2)
        let pool = PostgresPool(configuration: configuration, logger: TestDatabase.logger)
        defer { Task { await pool.close() } }
        try await Schema.migrate(pool)

        try await withAPI(on: pool) { api in
            let (payer, from, to) = try await payerAndPayee(api)

            switch outage {
            case .stopped: try await cluster.stop()
            case .killed: try cluster.kill()
            }

            let ready = try await withinLiveness { try await api.call(.get, "/readyz", key: nil) }
            #expect(ready.status == .serviceUnavailable, "\(ready)")
            #expect(ready.headers[.retryAfter] == "1", "\(ready)")
            let read = try await withinLiveness { try await api.call(.get, "/v1/accounts/\(from)", key: payer.key) }
            expectUnavailable(read)
            let transferID = newID()
            let write = try await withinLiveness { try await api.transfer(from, to, 250, key: payer.key, id: transferID) }
            expectUnavailable(write)

            try await cluster.start()
            #expect(try await readyAgain(api), "/readyz never answered 200 after the database came back")

            // The transfer refused with 503 was not made; sent again with its id it lands once.
            #expect(try await api.transfer(from, to, 250, key: payer.key, id: transferID).status == .created)
            #expect(try await api.transfer(from, to, 250, key: payer.key, id: transferID).status == .ok)
            #expect(try await api.balances(from) == [250, 1_000, 0, 0])
            #expect(try await api.balances(to) == [0, 250, 0, 0])
            let usage = await pool.usage()
            #expect(usage.open <= pool.configuration.maxConnections && usage.leased == 0, "\(usage)")
        }
    }

    @Test("a primary demoted under the server (its database turns read-only, its sessions end) and promoted again: 503 with Retry-After meanwhile, /readyz too; then a transfer retried with its id lands once")
    func demotedThenPromoted() async throws {
        try await TestDatabase.withPool(template: .techbank) { pool in
            let database = try await pool.withConnection { try await $0.query("SELECT current_database()")[0].decode(String.self, at: 0) }
            let conninfo = try await TestDatabase.serverConninfo()
            /// What a failover does to this database, done as the cluster's superuser.
            @Sendable func failover(readOnly: Bool) async throws {
                let admin = try await PostgresConnection.connect(conninfo: conninfo, database: "postgres", statementTimeoutMilliseconds: 60_000,
                                                                 threadPool: .singleton)
                defer { admin.close() }
                try await admin.query("ALTER DATABASE \(database) SET default_transaction_read_only = \(readOnly ? "on" : "off")")
                try await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", [database])
            }
            try await withAPI(on: pool) { api in
                let (payer, from, to) = try await payerAndPayee(api)

                try await failover(readOnly: true)
                let ready = try await withinLiveness { try await api.call(.get, "/readyz", key: nil) }
                #expect(ready.status == .serviceUnavailable && ready.headers[.retryAfter] == "1", "\(ready)")
                let transferID = newID()
                for _ in 0..<3 {
                    expectUnavailable(try await withinLiveness { try await api.transfer(from, to, 250, key: payer.key, id: transferID) })
                }

                try await failover(readOnly: false)
                #expect(try await readyAgain(api), "/readyz never answered 200 after the promotion")
                #expect(try await api.transfer(from, to, 250, key: payer.key, id: transferID).status == .created)
                #expect(try await api.transfer(from, to, 250, key: payer.key, id: transferID).status == .ok)
                #expect(try await api.balances(from) == [250, 1_000, 0, 0])
            }
        }
    }

    /// A payer with 1,000 in its account, an empty account of a payee, and the server ready.
    private func payerAndPayee(_ api: API) async throws -> (payer: Org, from: String, to: String) {
        let payer = try await api.createOrganization("Payer", kind: "enterprise")
        let payee = try await api.createOrganization("Payee", kind: "enterprise")
        let from = try await api.createAccount(for: payer, funded: 1_000)
        let to = try await api.createAccount(for: payee)
        #expect(try await api.call(.get, "/readyz", key: nil).status == .ok)
        return (payer, from, to)
    }

    /// Whether `/readyz` answers 200 within 30 s (polled every 100 ms).
    private func readyAgain(_ api: API) async throws -> Bool {
        for _ in 0..<300 {
            if try await api.call(.get, "/readyz", key: nil).status == .ok { return true }
            try await Task.sleep(for: .milliseconds(100))
        }
        return false
    }

    private func expectUnavailable(_ response: APIResponse, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(response.status == .serviceUnavailable, "\(response)", sourceLocation: sourceLocation)
        #expect(response.code == "unavailable", "\(response)", sourceLocation: sourceLocation)
        #expect(response.contentType == "application/problem+json", "\(response)", sourceLocation: sourceLocation)
        #expect(response.headers[.retryAfter] == "1", "\(response)", sourceLocation: sourceLocation)
    }

    /// Runs `request`, failing the test if it has not answered within a generous bound: a request
    /// to a server whose database is gone must be answered, not left hanging. (A liveness bound,
    /// well above the lease and connect timeouts, not a measure of speed.)
    private func withinLiveness(_ request: @escaping @Sendable () async throws -> APIResponse) async throws -> APIResponse {
        try await withThrowingTaskGroup(of: APIResponse?.self) { group in
            group.addTask { try await request() }
            group.addTask {
                try await Task.sleep(for: .seconds(60))
                return nil
            }
            let first = try #require(try await group.next())
            group.cancelAll()
            return try #require(first, "the request hung while the database was down")
        }
    }
}
