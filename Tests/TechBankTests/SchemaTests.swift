import Crypto
import Foundation
import Ledger
import Postgres
import TechBank
import Testing
import TechBankTestSupport
import TestSupport

@Suite("Schema migration")
struct SchemaTests {
    /// Every applied step of both modules, with when it was applied.
    static func appliedSteps(_ pool: PostgresPool) async throws -> [String] {
        try await pool.withConnection { connection throws in
            try await connection.query("""
                SELECT 'ledger', version, name, applied_at::text FROM ledger.schema_migrations
                UNION ALL SELECT 'public', version, name, applied_at::text FROM public.schema_migrations ORDER BY 1, 2
                """).map { row in
                "\(try row.decode(String.self, at: 0)) \(try row.decode(Int.self, at: 1)) \(try row.decode(String.self, at: 2)) \(try row.decode(String.self, at: 3))"
            }
        }
    }

    @Test func anEmptyDatabaseGetsEveryStepOnceAndMigratingAgainAppliesNothing() async throws {
        try await TestDatabase.withPool(template: .empty) { pool throws in
            #expect(try await Schema.migrate(pool) == Schema.version)
            let steps = try await Self.appliedSteps(pool)
            #expect(steps.count == Ledger.migrations.steps.count + Schema.migrations.steps.count)
            #expect(try await Schema.migrate(pool) == Schema.version)
            #expect(try await Self.appliedSteps(pool) == steps)  // same rows, same applied_at
            #expect(try await pool.withConnection { try await Schema.isCurrent($0) })
        }
    }

    @Test func theTemplateHoldsTheNewestStepsOfBothModules() async throws {
        try await TestDatabase.withPool(template: .techbank) { pool throws in
            try await pool.withConnection { connection throws in
                #expect(try await Ledger.migrations.appliedVersion(on: connection) == Ledger.migrations.latest)
                #expect(try await Schema.migrations.appliedVersion(on: connection) == Schema.version)
                #expect(try await Schema.isCurrent(connection))
            }
            #expect(Schema.version >= 2)
        }
    }

    @Test("a database with a step newer than the binary knows is refused and left untouched", arguments: ["ledger", "public"])
    func refusesADatabaseWithANewerStep(schema: String) async throws {
        try await TestDatabase.withPool(template: .techbank) { pool throws in
            let future = schema == "ledger" ? Ledger.migrations.latest + 1 : Schema.version + 1
            try await pool.withConnection { connection throws in
                try await connection.query("INSERT INTO \(schema).schema_migrations (version, name) VALUES ($1, 'future')", [Int32(future)])
            }
            let before = try await Self.appliedSteps(pool)
            await #expect {
                try await Schema.migrate(pool)
            } throws: { error in
                guard case let .databaseIsNewer(inSchema, database, _)? = error as? SchemaError else { return false }
                return inSchema == schema && database == future
            }
            #expect(try await Self.appliedSteps(pool) == before)
            #expect(try await pool.withConnection { try await Schema.isCurrent($0) } == false)
        }
    }

    @Test func concurrentMigrationsApplyEachStepOnce() async throws {
        try await TestDatabase.withPool(template: .empty, maxConnections: 4) { pool throws in
            async let first = Schema.migrate(pool)
            async let second = Schema.migrate(pool)
            async let third = Schema.migrate(pool)
            #expect(try await [first, second, third] == [Schema.version, Schema.version, Schema.version])
            let steps = try await Self.appliedSteps(pool)
            #expect(steps.count == Ledger.migrations.steps.count + Schema.migrations.steps.count)
            let heads = try await pool.withConnection { try await $0.query("SELECT count(*) FROM ledger.journal_heads")[0].decode(Int.self, at: 0) }
            #expect(heads == 16)
        }
    }

    @Test func eachModulesStepsAreNumberedFromOneWithoutGaps() {
        for migrations in [Ledger.migrations, Schema.migrations] {
            #expect(migrations.steps.map(\.version) == Array(1...migrations.latest), "\(migrations.schema)")
            #expect(migrations.steps.allSatisfy { !$0.sql.isEmpty && !$0.name.isEmpty })
        }
    }

    @Test("a gap, a duplicate or a first step other than 1 is refused", arguments: [[1, 3], [1, 2, 2], [2], [0, 1]])
    func misnumberedStepsAreRefused(numbers: [Int]) {
        let steps = numbers.map { Migration(version: $0, name: "step", sql: "SELECT 1") }
        #expect(throws: SchemaError.self) { try SchemaMigrations(schema: "ledger", steps: steps) }
    }

    @Test func aFileNotNamedLikeAStepIsRefused() throws {
        let directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("migrations-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try "SELECT 1".write(to: directory.appendingPathComponent("0001_baseline.sql"), atomically: true, encoding: .utf8)
        #expect(try SchemaMigrations(schema: "ledger", directory: directory).latest == 1)
        try "SELECT 1".write(to: directory.appendingPathComponent("2_next.sql"), atomically: true, encoding: .utf8)
        #expect(throws: SchemaError.self) { try SchemaMigrations(schema: "ledger", directory: directory) }
    }

    @Test("step 1 of each module is the schema of the last release before numbered migrations")
    func theBaselineStepsAreTheReleasedSchema() throws {
        let digest = SHA256.hash(data: Data(ReleasedSchema.sql.utf8)).map { String(format: "%02x", $0) }.joined()
        #expect(digest == ReleasedSchema.sha256)
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
