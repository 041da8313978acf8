import ArgumentParser
import Foundation
import Ledger
import Logging
import Postgres
import TechBank

/// Times the committee reports on a database of `--deals` deals and `--transfers` transfers over
/// the last year, as the whole committee and as one sub-park; prints one line per report:
///
///     report name=deals_by_sub_park scope=all median_ms=… p95_ms=… runs=…
@main
struct ReportBench: AsyncParsableCommand {
    @Option(help: "libpq connection string of an empty database.")
    var databaseURL: String

    @Option(help: "Deals to create.")
    var deals: Int = 10_000

    @Option(help: "Ledger transfers to create (deposits and deal income).")
    var transfers: Int = 100_000

    @Option(help: "Timed runs of each report (after 3 warm-up runs).")
    var runs: Int = 20

    func validate() throws {
        guard (1...1_000_000).contains(deals), (1...10_000_000).contains(transfers), (1...1_000).contains(runs) else {
            throw ValidationError("--deals, --transfers and --runs must be positive and sensible")
        }
    }

    func run() async throws {
        let logger = Logger(label: "report-bench", factory: { _ in SwiftLogNoOpLogHandler() })
        var configuration = PostgresConfiguration(conninfo: databaseURL)
        configuration.maxConnections = 4
        configuration.statementTimeoutMilliseconds = 600_000
        let pool = PostgresPool(configuration: configuration, logger: logger)
        defer { Task { await pool.close() } }
        try await Schema.migrate(pool)

        let seedStart = ContinuousClock.now
        let subPark = try await seed(pool)
        print("seed deals=\(deals) transfers=\(transfers) seconds=\(String(format: "%.1f", (ContinuousClock.now - seedStart).seconds))")

        let reports = Reports(pool: pool)
        let today = PostgresDate.today()
        let year = ReportPeriod(from: PostgresDate(daysSince2000: today.daysSince2000 - 364), to: today)
        @Sendable func dimensions(_ names: [String], _ all: [ReportDimension]) -> [ReportDimension] {
            names.map { name in all.first { $0.name == name }! }
        }
        let cases: [(String, @Sendable (ReportScope) async throws -> Void)] = [
            ("deals_total", { scope in _ = try await reports.deals(scope: scope, period: year, groupBy: []) }),
            ("deals_by_sub_park_field", { scope in _ = try await reports.deals(scope: scope, period: year, groupBy: dimensions(["sub_park", "field"], ReportDimension.deal)) }),
            ("deals_by_institute_quarter", { scope in _ = try await reports.deals(scope: scope, period: year, groupBy: dimensions(["institute", "quarter"], ReportDimension.deal)) }),
            ("deals_by_kind_month", { scope in _ = try await reports.deals(scope: scope, period: year, groupBy: dimensions(["deal_kind", "month"], ReportDimension.deal)) }),
            ("transfers_by_code_month", { scope in _ = try await reports.transfers(scope: scope, period: year, groupBy: dimensions(["code", "month"], ReportDimension.transfer)) }),
            ("transfers_by_sub_park", { scope in _ = try await reports.transfers(scope: scope, period: year, groupBy: dimensions(["sub_park"], ReportDimension.transfer)) }),
        ]
        for (name, report) in cases {
            for (scopeName, scope) in [("all", ReportScope.everything), ("sub_park", ReportScope.subPark(subPark))] {
                for _ in 0..<3 { try await report(scope) }
                var milliseconds: [Double] = []
                for _ in 0..<runs {
                    let start = ContinuousClock.now
                    try await report(scope)
                    milliseconds.append((ContinuousClock.now - start).seconds * 1_000)
                }
                milliseconds.sort()
                let median = milliseconds[milliseconds.count / 2]
                let p95 = milliseconds[min(milliseconds.count - 1, Int(Double(milliseconds.count) * 0.95))]
                print("report name=\(name) scope=\(scopeName) median_ms=\(String(format: "%.1f", median)) p95_ms=\(String(format: "%.1f", p95)) runs=\(runs)")
            }
        }
    }

    /// Five sub-parks with ten institutes and ten enterprises each, 2,000 licensed technologies,
    /// `deals` signed deals spread over the last year with funded milestones, and `transfers`
    /// posted transfers (deposits, and deal income from the bank); returns one sub-park's id.
    func seed(_ pool: PostgresPool) async throws -> UUID {
        try await pool.withTransaction { connection in
            try await connection.query(
                """
                INSERT INTO techbank.organizations (id, name, kind, country) VALUES (gen_random_uuid(), 'Bank', 'operator', 'CN')
                ON CONFLICT DO NOTHING
                """)
            try await connection.query(
                """
                INSERT INTO techbank.organizations (id, name, kind, country)
                SELECT gen_random_uuid(), 'Park ' || p, 'sub_park', 'CN' FROM generate_series(1, 5) p
                """)
            try await connection.query(
                """
                INSERT INTO techbank.organizations (id, name, kind, sub_park_id, country)
                SELECT gen_random_uuid(), k || ' ' || p.name || ' ' || i, k, p.id, 'CN'
                  FROM techbank.organizations p, generate_series(1, 10) i, unnest(ARRAY['institute', 'enterprise']) k
                 WHERE p.kind = 'sub_park'
                """)
            try await connection.query(
                """
                INSERT INTO techbank.technologies (id, owner_id, title, summary, description, field, keywords, trl, inventors, status, search_text)
                SELECT gen_random_uuid(), o.id, 'Technology ' || n, 'Summary', '', f.code, '{}', 5,
                       '[{"name": "Inventor", "share_bp": 10000}]', 'licensed', 'Technology ' || n
                  FROM generate_series(1, 2000) n
                  JOIN LATERAL (SELECT id FROM techbank.organizations WHERE kind = 'institute' ORDER BY id OFFSET n % 50 LIMIT 1) o ON true
                  JOIN LATERAL (SELECT code FROM techbank.fields ORDER BY code OFFSET n % 12 LIMIT 1) f ON true
                """)
            try await connection.query(
                """
                INSERT INTO techbank.technology_history (technology_id, version, event, actor_id, changed_at, changes)
                SELECT id, 3, 'listing', owner_id, now() - interval '400 days', '{}' FROM techbank.technologies
                """)
            try await connection.query(
                """
                INSERT INTO techbank.deals (id, technology_id, seller_id, buyer_id, created_by, status, terms, kind, currency, total_amount,
                                            seller_signed_at, buyer_signed_at, signed_at, funded_at, created_at)
                SELECT gen_random_uuid(), t.id, t.owner_id, b.id, t.owner_id, 'active',
                       jsonb_build_object('kind', k.kind, 'field_of_use', 'all', 'territories', '["CN"]'::jsonb, 'starts_on', '2026-01-01',
                                          'ends_on', '2030-12-31', 'currency', 'CNY', 'upfront', 1000000, 'milestones', '[]'::jsonb,
                                          'royalty_bp', 300, 'minimum_annual_royalty', 0, 'sublicensing_allowed', false, 'broker_fee_bp', 0,
                                          'sub_park_fee_bp', 100, 'contract_category', 'licence'),
                       k.kind, 'CNY', 1000000 + n * 100, at, at, at, at, at - interval '10 days'
                  FROM generate_series(1, $1) n
                  CROSS JOIN LATERAL (SELECT now() - (n % 360) * interval '1 day' AS at) d
                  JOIN LATERAL (SELECT id, owner_id FROM techbank.technologies ORDER BY id OFFSET n % 2000 LIMIT 1) t ON true
                  JOIN LATERAL (SELECT id FROM techbank.organizations WHERE kind = 'enterprise' ORDER BY id OFFSET n % 50 LIMIT 1) b ON true
                  CROSS JOIN LATERAL (SELECT (ARRAY['exclusive_licence', 'sole_licence', 'non_exclusive_licence', 'assignment'])[1 + n % 4] AS kind) k
                """,
                [Int64(deals)])
            try await connection.query(
                """
                INSERT INTO techbank.deal_milestones (deal_id, number, name, amount, due_on, evidence_required, status)
                SELECT id, 1, 'Milestone', 500000, current_date + 90, false, 'funded' FROM techbank.deals
                """)
        }
        // Transfers go through the ledger, in batches: deposits to enterprises, and deal income
        // to sellers from the bank's settlement account.
        let ids = try await pool.withConnection { connection in
            try await connection.query(
                """
                SELECT (SELECT id FROM techbank.organizations WHERE kind = 'operator'),
                       (SELECT array_agg(id ORDER BY id) FROM techbank.organizations WHERE kind = 'enterprise'),
                       (SELECT array_agg(id ORDER BY id) FROM (SELECT id FROM techbank.deals ORDER BY id LIMIT 1000) d),
                       (SELECT array_agg(seller_id ORDER BY id) FROM (SELECT id, seller_id FROM techbank.deals ORDER BY id LIMIT 1000) d),
                       (SELECT id FROM techbank.organizations WHERE kind = 'sub_park' ORDER BY id LIMIT 1)
                """)[0]
        }
        let bank = try ids.decode(UUID.self, at: 0)
        let enterprises = try ids.decode([UUID].self, at: 1)
        let dealIDs = try ids.decode([UUID].self, at: 2)
        let sellers = try ids.decode([UUID].self, at: 3)
        let ledger = Ledger(pool: pool)
        let settlement = NewAccount(currency: "CNY", ownerID: bank, code: "settlement")
        _ = try await ledger.createAccount(settlement)
        var accounts: [UUID: UUID] = [:]
        for owner in Set(enterprises + sellers) {
            // Only the bank's settlement account may go below zero (TB020).
            let account = NewAccount(currency: "CNY", ownerID: owner, code: "operating", debitsMustNotExceedCredits: true)
            accounts[owner] = try await ledger.createAccount(account).account.id
        }
        var made = 0
        while made < transfers {
            let count = min(Ledger.maxBatchSize, transfers - made)
            let batch = try (0..<count).map { offset -> TransferRequest in
                let n = made + offset
                if n % 2 == 0 {
                    return TransferRequest(id: UUID(), action: .post(debit: settlement.id, credit: accounts[enterprises[n % enterprises.count]]!, amount: 1_000, currency: "CNY"),
                                           code: "deposit")
                }
                let deal = n % dealIDs.count
                return TransferRequest(id: UUID(), action: .post(debit: settlement.id, credit: accounts[sellers[deal]]!, amount: 700, currency: "CNY"),
                                       code: "seller_income", metadata: try JSONB(encoding: ["deal_id": dealIDs[deal].uuidString.lowercased()]))
            }
            let results = try await ledger.createTransfers(batch, atomic: true)
            guard results.allSatisfy(\.outcome.succeeded) else { throw ValidationError("seeding transfers failed: \(results.first { !$0.outcome.succeeded }!)") }
            made += count
        }
        try await pool.withConnection { try await $0.query("ANALYZE") }
        return try ids.decode(UUID.self, at: 4)
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
