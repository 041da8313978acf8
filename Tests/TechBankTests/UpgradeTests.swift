import Foundation
import Ledger
import Postgres
import TechBank
import Testing
import TestSupport

/// The schema of the last release before numbered migrations (commit 9eac699), as that release's
/// `schema.sql`: it is kept as step 1 of each module, joined here, and pinned by its hash.
enum ReleasedSchema {
    static var sql: String { Ledger.migrations.steps[0].sql + "\n" + Schema.migrations.steps[0].sql }

    /// SHA-256 of `git show 9eac699:schema.sql`.
    static let sha256 = "0d070e450fb156aeb5924d3816bc76ee4d3d68bda6e97fe37c79b124391a7be2"
}

/// A bank's worth of rows, written as the released binary wrote them: organizations with API keys,
/// accounts, transfers (one a pending hold), a technology and a deal, their journal entries.
struct ReleasedData {
    let bank = UUID(), institute = UUID(), enterprise = UUID()
    let settlement = UUID(), escrow = UUID(), instituteAccount = UUID(), enterpriseAccount = UUID()
    let deposit = UUID(), payment = UUID(), hold = UUID()
    let technology = UUID(), deal = UUID()

    func insert(on connection: PostgresConnection) async throws {
        for (id, name, kind) in [(bank, "TechBank operator", "operator"), (institute, "Tongji", "institute"), (enterprise, "SAIC", "enterprise")] {
            try await connection.query("INSERT INTO techbank.organizations (id, name, kind, country) VALUES ($1, $2, $3, 'CN')", [id, name, kind])
            try await connection.query(
                "INSERT INTO techbank.api_keys (id, organization_id, key_hash, label) VALUES ($1, $2, sha256(convert_to($3, 'UTF8')), 'admin')",
                [UUID(), id, "tbk_\(name)_key"])
        }
        for (id, owner, code, neverNegative) in [(settlement, bank, "settlement", false), (escrow, bank, "escrow", true),
                                                 (instituteAccount, institute, "operating", true), (enterpriseAccount, enterprise, "operating", true)] {
            try await connection.query(
                "INSERT INTO ledger.accounts (id, currency, owner_id, code, debits_must_not_exceed_credits) VALUES ($1, 'CNY', $2, $3, $4)",
                [id, owner, code, neverNegative])
        }
        let transfers = """
            [{"id": "\(deposit)", "kind": "posted", "debit_account_id": "\(settlement)", "credit_account_id": "\(enterpriseAccount)",
              "amount": 100000, "currency": "CNY", "code": "deposit"},
             {"id": "\(payment)", "kind": "posted", "debit_account_id": "\(enterpriseAccount)", "credit_account_id": "\(instituteAccount)",
              "amount": 25000, "currency": "CNY", "code": "transfer"},
             {"id": "\(hold)", "kind": "pending", "debit_account_id": "\(enterpriseAccount)", "credit_account_id": "\(escrow)",
              "amount": 30000, "currency": "CNY", "code": "escrow_fund", "timeout_seconds": 86400}]
            """
        let outcomes = try await connection.query("SELECT outcome FROM ledger.create_transfers($1::text::jsonb, true)", [transfers])
            .map { row in try row.decode(String.self, at: 0) }
        #expect(outcomes == ["ok", "ok", "ok"])
        try await connection.query("""
            INSERT INTO techbank.technologies (id, owner_id, title, summary, description, field, keywords, trl, inventors, search_text, status)
            VALUES ($1, $2, 'Solid-state battery', 'A safer cell', '', 'biomedicine', ARRAY['battery'], 5,
                    '[{"name": "Li Wei", "share_bp": 10000}]', 'solid-state battery', 'listed')
            """, [technology, institute])
        let terms = #"{"kind": "exclusive_licence", "currency": "CNY", "upfront": 30000}"#
        try await connection.query("""
            INSERT INTO techbank.deals (id, technology_id, seller_id, buyer_id, created_by, terms, kind, currency, total_amount)
            VALUES ($1, $2, $3, $4, $4, $5::text::jsonb, 'exclusive_licence', 'CNY', 30000)
            """, [deal, technology, institute, enterprise, terms])
        try await connection.query("INSERT INTO techbank.deal_versions (deal_id, version, terms, actor_id) VALUES ($1, 1, $2::text::jsonb, $3)",
                                   [deal, terms, enterprise])
        try await connection.query("SELECT ledger.journal_append('deal_created', $1, jsonb_build_object('status', 'draft'))", [deal])
        try await connection.query("SELECT ledger.sequence_journal(1000)")
    }
}

@Suite("Upgrading a database made by the last release before numbered migrations")
struct UpgradeTests {
    /// Every row of every ledger and TechBank table but the migration records, as JSON text.
    static func rows(_ pool: PostgresPool) async throws -> [String: String] {
        try await pool.withConnection { connection throws in
            let tables = try await connection.query("""
                SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) FROM information_schema.tables
                 WHERE table_schema IN ('ledger', 'techbank') AND table_type = 'BASE TABLE' AND table_name <> 'schema_migrations'
                """).map { row in try row.decode(String.self, at: 0) }
            var rows: [String: String] = [:]
            for table in tables {  // names from the catalog, quoted by the server
                rows[table] = try await connection.query(
                    "SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY to_jsonb(t)::text), '[]')::text FROM \(table) t")[0].decode(String.self, at: 0)
            }
            return rows
        }
    }

    /// Runs `body` on a database created and filled as the released binary did.
    static func withReleasedDatabase(_ body: (PostgresPool, ReleasedData) async throws -> Void) async throws {
        let released = ReleasedSchema.sql
        let data = ReleasedData()
        try await TestDatabase.withPool(template: .empty) { pool throws in
            try await pool.withTransaction { connection throws in
                try await connection.query("SET LOCAL client_min_messages = warning")
                try await connection.executeScript(released)
            }
            try await pool.withTransaction { connection in try await data.insert(on: connection) }
            try await body(pool, data)
        }
    }

    @Test func migratingKeepsEveryRowBalanceAndChainAndRecordsTheSteps() async throws {
        try await Self.withReleasedDatabase { pool, data in
            let before = try await Self.rows(pool)
            #expect(try await pool.withConnection { try await Schema.isCurrent($0) } == false)

            #expect(try await Schema.migrate(pool) == Schema.version)

            let after = try await Self.rows(pool)
            #expect(after.filter { before.keys.contains($0.key) } == before, "every row kept")
            #expect(after.filter { !before.keys.contains($0.key) }.values.allSatisfy { $0 == "[]" }, "tables added since hold nothing")
            #expect(before["techbank.organizations"]?.contains(data.enterprise.uuidString.lowercased()) == true)
            #expect(before["ledger.open_holds"]?.contains(data.hold.uuidString.lowercased()) == true)
            try await pool.withConnection { connection throws in
                #expect(try await Schema.isCurrent(connection))
                // A release from before numbered migrations refuses any version above its own, 1.
                #expect(try await connection.query("SELECT version FROM public.schema_version")[0].decode(Int32.self, at: 0) == 2)
                let totals = try await connection.query("""
                    SELECT sum(debits_posted) = sum(credits_posted) AND sum(debits_pending) = sum(credits_pending) FROM ledger.accounts
                    """)
                #expect(try totals[0].decode(Bool.self, at: 0))
            }
            let enterprise = try #require(try await Ledger(pool: pool).account(data.enterpriseAccount))
            #expect([enterprise.creditsPosted, enterprise.debitsPosted, enterprise.debitsPending] == [100_000, 25_000, 30_000])
            try await Self.expectAuditVerifies(pool)
        }
    }

    @Test func theMigratedDatabaseWorksWithTheCurrentCode() async throws {
        try await Self.withReleasedDatabase { pool, data in
            try await Schema.migrate(pool)
            let ledger = Ledger(pool: pool)
            let paid = try await ledger.createTransfer(TransferRequest(
                id: UUID(), action: .post(debit: data.enterpriseAccount, credit: data.instituteAccount, amount: 1_000, currency: "CNY")))
            #expect(paid.outcome == .ok)
            let released = try await ledger.createTransfer(TransferRequest(id: UUID(), action: .postPending(pendingID: data.hold, amount: nil), code: "escrow_fund"))
            #expect(released.outcome == .ok)

            // What the release let a tenant do and the ledger's step 2 forbids: pay into the bank's settlement account.
            let tenant = Principal(ownerID: data.enterprise, reservedCodes: MoneyModel.bankHeldAccountCodes.sorted())
            let intoSettlement = try await ledger.createTransfer(TransferRequest(
                id: UUID(), action: .post(debit: data.enterpriseAccount, credit: data.settlement, amount: 1_000, currency: "CNY")), principal: tenant)
            #expect(intoSettlement.outcome == .codeReserved)
            #expect(intoSettlement.detail == "credit_account_id")

            _ = try await AuditLog(pool: pool).sequence()
            try await Self.expectAuditVerifies(pool)
        }
    }

    @Test func theServersRoleSeesTheMigratedSchemaAsCurrent() async throws {
        try await Self.withReleasedDatabase { pool, _ in
            try await Schema.migrate(pool)
            var configuration = pool.configuration
            configuration.role = Schema.applicationRole
            let application = PostgresPool(configuration: configuration, logger: TestDatabase.logger)
            do {
                #expect(try await application.withConnection { try await Schema.isCurrent($0) })
                await application.close()
            } catch {
                await application.close()
                throw error
            }
        }
    }

    /// What `techbank audit verify` checks: every journal chain, and every Merkle subtree.
    static func expectAuditVerifies(_ pool: PostgresPool) async throws {
        let chains = try await Journal(pool: pool).verify()
        #expect(chains.isIntact)
        #expect(chains.entriesChecked >= 4)
        #expect(try await AuditLog(pool: pool).verifyTree() == nil)
        #expect(try await AuditLog(pool: pool).size() >= 4)
    }
}
