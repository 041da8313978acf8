import Foundation
import Postgres
import TechBank
import Testing
import TechBankTestSupport
import TestSupport

@Suite("Schema migration")
struct SchemaTests {
    @Test func applyingTwiceIsHarmlessAndRecordsTheVersion() async throws {
        try await TestDatabase.withPool(template: .techbank) { pool throws in
            // The test database was created from a migrated template; apply again, twice.
            #expect(try await Schema.migrate(pool) == Schema.version)
            #expect(try await Schema.migrate(pool) == Schema.version)
            let version = try await pool.withConnection { try await Schema.installedVersion($0) }
            #expect(version == Schema.version)
            #expect(Schema.version >= 1)
        }
    }

    @Test("the top-level schema.sql is the ledger's schema and TechBank's, joined")
    func topLevelSchemaFileIsTheModulesSchemas() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let file = try String(contentsOf: root.appendingPathComponent("schema.sql"), encoding: .utf8)
        #expect(file == Schema.fullSQL,
                "regenerate it: (cat Sources/Ledger/ledger.sql; echo; cat Sources/TechBank/schema.sql) > schema.sql")
    }

    @Test func refusesADatabaseWithANewerSchema() async throws {
        try await TestDatabase.withPool(template: .techbank) { pool throws in
            try await pool.withConnection { try await $0.query("UPDATE schema_version SET version = $1", [Int32(Schema.version + 1)]) }
            await #expect(throws: SchemaError.self) { try await Schema.migrate(pool) }
            let version = try await pool.withConnection { try await Schema.installedVersion($0) }
            #expect(version == Schema.version + 1)  // left untouched
        }
    }
}

@Suite("Idempotency records")
struct IdempotencyStoreTests {
    @Test func claimReplayMismatchAndPurgeAfterRetention() async throws {
        try await TestDatabase.withPool(template: .techbank) { pool throws in
            let organizations = Organizations(pool: pool)
            _ = try await organizations.bootstrapOperator(adminKey: "tbk_test_operator_key_0123456789")
            let org = try await organizations.create(name: "Tongji", kind: .institute, subParkID: nil, country: "CN")
            let store = IdempotencyStore(pool: pool)
            let hash = Data(repeating: 7, count: 32)
            #expect(try await store.claim(organizationID: org.id, key: "k", requestHash: hash) == .claimed)
            #expect(try await store.claim(organizationID: org.id, key: "k", requestHash: hash) == .inProgress)
            #expect(try await store.claim(organizationID: org.id, key: "k", requestHash: Data(repeating: 8, count: 32)) == .mismatch)
            let stored = IdempotencyStore.StoredResponse(status: 201, headers: ["Content-Type": "application/json", "Location": "/v1/x"], body: Data("{}".utf8))
            try await store.complete(organizationID: org.id, key: "k", response: stored)
            #expect(try await store.claim(organizationID: org.id, key: "k", requestHash: hash) == .replay(stored))

            // Records younger than the retention survive a purge; older ones go.
            #expect(try await store.purge() == 0)
            try await pool.withConnection { try await $0.query("UPDATE techbank.idempotency_keys SET created_at = now() - interval '49 hours'") }
            #expect(try await store.purge() == 1)
            #expect(try await store.claim(organizationID: org.id, key: "k", requestHash: hash) == .claimed)
        }
    }
}

@Suite("Least privilege")
struct LeastPrivilegeTests {
    /// Runs `sql` on a connection that works as the server's role, returning the SQLSTATE it fails with.
    static func failure(of sql: String, _ binds: [any PostgresEncodable] = [], on pool: PostgresPool) async throws -> String? {
        var configuration = pool.configuration
        configuration.role = Schema.applicationRole
        let application = PostgresPool(configuration: configuration, logger: TestDatabase.logger)
        defer { Task { await application.close() } }
        do {
            try await application.withConnection { try await $0.query(sql, binds) }
            return nil
        } catch let error as PostgresError {
            return error.sqlState
        }
    }

    @Test("the server's role cannot change ledger rows except through the ledger's functions")
    func theServersRoleCannotWriteLedgerRows() async throws {
        try await TestDatabase.withPool(template: .techbank) { pool throws in
            let organizations = Organizations(pool: pool)
            _ = try await organizations.bootstrapOperator(adminKey: "tbk_test_operator_key_0123456789")
            let org = try await organizations.create(name: "Tongji", kind: .institute, subParkID: nil, country: "CN")
            try await Money(pool: pool).move(.deposit, organizationID: org.id, amount: 500, currency: "CNY", externalRef: "R-1", actor: org.id)
            let denied = "42501"
            for sql in [
                "UPDATE ledger.accounts SET credits_posted = credits_posted + 1000000",
                "UPDATE ledger.accounts SET owner_id = gen_random_uuid()",
                "DELETE FROM ledger.transfers",
                "UPDATE ledger.journal SET payload = '{}'",
                "INSERT INTO ledger.transfers (id, kind, debit_account_id, credit_account_id, amount, currency, code) SELECT gen_random_uuid(), 'posted', a.id, b.id, 1, 'CNY', 'x' FROM ledger.accounts a, ledger.accounts b WHERE a.id <> b.id LIMIT 1",
                "INSERT INTO ledger.accounts (id, currency, owner_id, code, debits_must_not_exceed_credits, credits_posted) VALUES (gen_random_uuid(), 'CNY', gen_random_uuid(), 'x', true, 100)",
                "TRUNCATE techbank.payments",
            ] {
                #expect(try await Self.failure(of: sql, on: pool) == denied, "\(sql)")
            }
            // What the server does need still works as that role.
            #expect(try await Self.failure(of: "SELECT count(*) FROM ledger.accounts", on: pool) == nil)
            #expect(try await Self.failure(of: "SELECT * FROM ledger.create_transfers('[]'::jsonb, true)", on: pool) == "TB003")
            let balances = try await Money(pool: pool).balances(of: org.id)
            #expect(balances.first?.total.creditsPosted == 500)
        }
    }
}
