import Foundation
import Ledger
import Postgres
import Testing
import TestSupport

/// The four running balances of an account.
struct Balances: Equatable, Sendable, CustomStringConvertible {
    var debitsPosted: Int64 = 0
    var creditsPosted: Int64 = 0
    var debitsPending: Int64 = 0
    var creditsPending: Int64 = 0

    init(debitsPosted: Int64 = 0, creditsPosted: Int64 = 0, debitsPending: Int64 = 0, creditsPending: Int64 = 0) {
        self.debitsPosted = debitsPosted
        self.creditsPosted = creditsPosted
        self.debitsPending = debitsPending
        self.creditsPending = creditsPending
    }

    init(_ account: Account) {
        self.init(debitsPosted: account.debitsPosted, creditsPosted: account.creditsPosted,
                  debitsPending: account.debitsPending, creditsPending: account.creditsPending)
    }

    var description: String { "dp=\(debitsPosted) cp=\(creditsPosted) dq=\(debitsPending) cq=\(creditsPending)" }
}

/// A ledger on one fresh test database, with short helpers for the tests.
struct Bank: Sendable {
    let pool: PostgresPool
    let ledger: Ledger
    let owner = UUID()

    init(_ pool: PostgresPool) {
        self.pool = pool
        self.ledger = Ledger(pool: pool)
    }

    var journal: Journal { Journal(pool: pool) }

    /// Opens an account and returns its id.
    func open(_ currency: String = "CNY", code: String = "operating", debitsMustNotExceedCredits: Bool = false,
              creditsMustNotExceedDebits: Bool = false) async throws -> UUID {
        let (account, created) = try await ledger.createAccount(NewAccount(
            currency: currency, ownerID: owner, code: code, debitsMustNotExceedCredits: debitsMustNotExceedCredits,
            creditsMustNotExceedDebits: creditsMustNotExceedDebits))
        #expect(created)
        return account.id
    }

    @discardableResult
    func post(_ debit: UUID, _ credit: UUID, _ amount: Int64, currency: String = "CNY", id: UUID = UUID(),
              code: String = "transfer", metadata: JSONB? = nil) async throws -> TransferResult {
        try await ledger.createTransfer(TransferRequest(
            id: id, action: .post(debit: debit, credit: credit, amount: amount, currency: currency), code: code,
            metadata: metadata))
    }

    @discardableResult
    func hold(_ debit: UUID, _ credit: UUID, _ amount: Int64, currency: String = "CNY", timeout: Int32? = nil,
              id: UUID = UUID()) async throws -> TransferResult {
        try await ledger.createTransfer(TransferRequest(
            id: id, action: .hold(debit: debit, credit: credit, amount: amount, currency: currency, timeoutSeconds: timeout)))
    }

    @discardableResult
    func postPending(_ pending: UUID, amount: Int64? = nil, id: UUID = UUID()) async throws -> TransferResult {
        try await ledger.createTransfer(TransferRequest(id: id, action: .postPending(pendingID: pending, amount: amount)))
    }

    @discardableResult
    func void(_ pending: UUID, id: UUID = UUID()) async throws -> TransferResult {
        try await ledger.createTransfer(TransferRequest(id: id, action: .voidPending(pendingID: pending)))
    }

    /// Balances of one account read through the API.
    func balances(_ id: UUID) async throws -> Balances {
        Balances(try #require(try await ledger.account(id)))
    }

    /// Balances of every account, in one query.
    func allBalances() async throws -> [UUID: Balances] {
        let rows = try await sql(
            "SELECT id, debits_posted, credits_posted, debits_pending, credits_pending FROM ledger.accounts")
        var result: [UUID: Balances] = [:]
        for row in rows {
            result[try row.decode(UUID.self, at: 0)] = Balances(
                debitsPosted: try row.decode(Int64.self, at: 1), creditsPosted: try row.decode(Int64.self, at: 2),
                debitsPending: try row.decode(Int64.self, at: 3), creditsPending: try row.decode(Int64.self, at: 4))
        }
        return result
    }

    @discardableResult
    func sql(_ text: String, _ binds: [any PostgresEncodable] = []) async throws -> PostgresResult {
        try await pool.withConnection { connection in try await connection.query(text, binds) }
    }

    func count(_ text: String, _ binds: [any PostgresEncodable] = []) async throws -> Int {
        try await sql(text, binds)[0].decode(Int.self, at: 0)
    }

    /// The resolution recorded for each resolved hold.
    func resolutions() async throws -> [UUID: String] {
        var result: [UUID: String] = [:]
        for row in try await sql("SELECT pending_id, resolution FROM ledger.pending_resolutions") {
            result[try row.decode(UUID.self, at: 0)] = try row.decode(String.self, at: 1)
        }
        return result
    }

    /// A fingerprint of everything the ledger stores, to show that a refused change changed nothing.
    func fingerprint() async throws -> String {
        try await sql(
            """
            SELECT concat_ws('|',
              (SELECT md5(coalesce(string_agg(a::text, ',' ORDER BY a.id), '')) FROM ledger.accounts a),
              (SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t.seq), '')) FROM ledger.transfers t),
              (SELECT md5(coalesce(string_agg(r::text, ',' ORDER BY r.pending_id), '')) FROM ledger.pending_resolutions r),
              (SELECT md5(coalesce(string_agg(h::text, ',' ORDER BY h.pending_id), '')) FROM ledger.open_holds h),
              (SELECT md5(coalesce(string_agg(j::text, ',' ORDER BY j.shard, j.seq), '')) FROM ledger.journal j),
              (SELECT md5(coalesce(string_agg(h::text, ',' ORDER BY h.shard), '')) FROM ledger.journal_heads h))
            """)[0].decode(String.self, at: 0)
    }

    /// Checks the ledger-wide invariants: per currency debits equal credits (posted and pending
    /// separately), no flagged account breaks its rule, no balance is negative, and the journal verifies.
    func expectSound(_ context: String = "", sourceLocation: SourceLocation = #_sourceLocation) async throws {
        for total in try await ledger.totals() {
            #expect(total.debitsPosted == total.creditsPosted, "\(context) posted totals of \(total.currency)", sourceLocation: sourceLocation)
            #expect(total.debitsPending == total.creditsPending, "\(context) pending totals of \(total.currency)", sourceLocation: sourceLocation)
        }
        let broken = try await count(
            """
            SELECT count(*) FROM ledger.accounts
             WHERE (debits_must_not_exceed_credits AND debits_posted + debits_pending > credits_posted)
                OR (credits_must_not_exceed_debits AND credits_posted + credits_pending > debits_posted)
                OR least(debits_posted, credits_posted, debits_pending, credits_pending) < 0
            """)
        #expect(broken == 0, "\(context) accounts breaking their balance rule", sourceLocation: sourceLocation)
        let verification = try await journal.verify()
        #expect(verification.isIntact, "\(context) journal: \(String(describing: verification.firstBreak))", sourceLocation: sourceLocation)
        let entries = try await count("SELECT count(*) FROM ledger.journal")
        #expect(verification.entriesChecked == entries, "\(context) journal entries checked", sourceLocation: sourceLocation)
    }
}

extension TransferRequest {
    static func post(_ debit: UUID, _ credit: UUID, _ amount: Int64, currency: String = "CNY", id: UUID = UUID(),
                     code: String = "transfer") -> TransferRequest {
        TransferRequest(id: id, action: .post(debit: debit, credit: credit, amount: amount, currency: currency), code: code)
    }

    static func hold(_ debit: UUID, _ credit: UUID, _ amount: Int64, currency: String = "CNY", timeout: Int32? = nil,
                     id: UUID = UUID()) -> TransferRequest {
        TransferRequest(id: id, action: .hold(debit: debit, credit: credit, amount: amount, currency: currency, timeoutSeconds: timeout))
    }

    static func postPending(_ pending: UUID, amount: Int64? = nil, id: UUID = UUID()) -> TransferRequest {
        TransferRequest(id: id, action: .postPending(pendingID: pending, amount: amount))
    }

    static func void(_ pending: UUID, id: UUID = UUID()) -> TransferRequest {
        TransferRequest(id: id, action: .voidPending(pendingID: pending))
    }
}

extension SeededGenerator {
    /// true with probability `p`.
    mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &self) < p }
}

/// Waits until `condition` holds, polling, for at most `timeout`.
func eventually(timeout: Duration = .seconds(10), _ condition: () async throws -> Bool) async throws -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(20))
    }
    return try await condition()
}

extension TestTemplate {
    /// The ledger's schema alone, built through its numbered migrations: the ledger stands without TechBank.
    static let ledger = TestTemplate(name: "ledger") { try await Ledger.migrate($0) }
}
