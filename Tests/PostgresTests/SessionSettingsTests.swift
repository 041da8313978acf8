import Postgres
import Testing
import TestSupport

/// `PostgresSession.settings` travel with a lease's first statement (no round trip of their own);
/// these tests pin the connection (a pool of one) so each lease reuses the last one's session.
@Suite("Session settings follow the task into every connection it leases")
struct SessionSettingsTests {
    static func actor(_ pool: PostgresPool) async throws -> String? {
        try await pool.withConnection { try await $0.query("SELECT current_setting('test.actor', true)")[0].decode(String?.self, at: 0) }
    }

    @Test func eachLeaseSeesItsOwnSettingsAndNoneLeftByTheLastOne() async throws {
        try await TestDatabase.withPool(template: .empty, maxConnections: 1) { pool throws in
            #expect(try await PostgresSession.$settings.withValue(["test.actor": "a"]) { try await Self.actor(pool) } == "a")
            #expect(try await Self.actor(pool) == "", "a lease without the setting finds it emptied")
            #expect(try await PostgresSession.$settings.withValue(["test.actor": "b"]) { try await Self.actor(pool) } == "b")
            let piped = try await PostgresSession.$settings.withValue(["test.actor": "c"]) {
                try await pool.withConnection { try await $0.pipeline([PostgresStatement("SELECT current_setting('test.actor')")]) }
            }
            #expect(try piped[0].get()[0].decode(String.self, at: 0) == "c", "a pipeline runs after the settings too")
        }
    }

    /// A transaction's BEGIN carries the settings, so its rollback undoes them; a failed statement
    /// aborts the implicit transaction that carried them. Either way the next statement sends them
    /// again instead of running without them.
    @Test func settingsSurviveRollbacksAndFailedStatements() async throws {
        try await TestDatabase.withPool(template: .empty, maxConnections: 1) { pool throws in
            try await PostgresSession.$settings.withValue(["test.actor": "a"]) { () async throws in
                await #expect(throws: Rollback.self) { try await pool.withTransaction { _ throws in throw Rollback() } }
                #expect(try await Self.actor(pool) == "a")
            }
            let backend = try await pool.withConnection { try await $0.query("SELECT pg_backend_pid()")[0].decode(Int32.self, at: 0) }
            try await PostgresSession.$settings.withValue(["test.actor": "b"]) { () async throws in
                await #expect(throws: PostgresError.self) { try await pool.withConnection { try await $0.query("SELECT 1 / 0") } }
                await #expect(throws: PostgresError.self) { try await pool.withTransaction { try await $0.query("SELECT 1 / 0") } }
                #expect(try await Self.actor(pool) == "b")
                let inTransaction = try await pool.withTransaction { try await $0.query("SELECT current_setting('test.actor')")[0].decode(String.self, at: 0) }
                #expect(inTransaction == "b")
            }
            // The failed transaction was rolled back and its connection kept: the rollback ran.
            #expect(try await pool.withConnection { try await $0.query("SELECT pg_backend_pid()")[0].decode(Int32.self, at: 0) } == backend)
        }
    }
}
