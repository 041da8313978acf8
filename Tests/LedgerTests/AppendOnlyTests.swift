import Foundation
import Ledger
import Postgres
import Testing
import TestSupport

/// Nothing in the ledger's history is updated or deleted, whatever SQL a caller runs.
@Suite("Append-only history")
struct AppendOnlyTests {
    struct Attempt: Sendable, CustomTestStringConvertible {
        let sql: String
        let sqlState: String
        var testDescription: String { "\(sql) → \(sqlState)" }
    }

    static let attempts: [Attempt] = [
        Attempt(sql: "UPDATE ledger.transfers SET amount = amount + 1", sqlState: "TB001"),
        Attempt(sql: "UPDATE ledger.transfers SET code = 'changed' WHERE kind = 'posted'", sqlState: "TB001"),
        Attempt(sql: "UPDATE ledger.transfers SET metadata = '{}'", sqlState: "TB001"),
        Attempt(sql: "DELETE FROM ledger.transfers WHERE kind = 'posted'", sqlState: "TB001"),
        Attempt(sql: "DELETE FROM ledger.transfers", sqlState: "TB001"),
        Attempt(sql: "TRUNCATE ledger.transfers CASCADE", sqlState: "TB001"),
        Attempt(sql: "TRUNCATE ledger.transfers, ledger.pending_resolutions, ledger.open_holds", sqlState: "TB001"),
        Attempt(sql: "UPDATE ledger.journal SET payload = '{}' WHERE seq = 1", sqlState: "TB001"),
        Attempt(sql: "UPDATE ledger.journal SET hash = prev_hash", sqlState: "TB001"),
        Attempt(sql: "DELETE FROM ledger.journal WHERE seq > 1", sqlState: "TB001"),
        Attempt(sql: "TRUNCATE ledger.journal", sqlState: "TB001"),
        Attempt(sql: "UPDATE ledger.pending_resolutions SET resolution = 'voided' WHERE resolution = 'posted'", sqlState: "TB001"),
        Attempt(sql: "UPDATE ledger.pending_resolutions SET resolved_at = now()", sqlState: "TB001"),
        Attempt(sql: "DELETE FROM ledger.pending_resolutions", sqlState: "TB001"),
        Attempt(sql: "TRUNCATE ledger.pending_resolutions", sqlState: "TB001"),
        Attempt(sql: "DELETE FROM ledger.accounts WHERE code = 'unused'", sqlState: "TB002"),
        Attempt(sql: "DELETE FROM ledger.accounts", sqlState: "TB002"),
        Attempt(sql: "UPDATE ledger.accounts SET currency = 'USD'", sqlState: "TB002"),
        Attempt(sql: "UPDATE ledger.accounts SET currency = 'USD' WHERE code = 'unused'", sqlState: "TB002"),
        Attempt(sql: "UPDATE ledger.accounts SET owner_id = gen_random_uuid()", sqlState: "TB002"),
        Attempt(sql: "UPDATE ledger.accounts SET debits_must_not_exceed_credits = false", sqlState: "TB002"),
        Attempt(sql: "UPDATE ledger.accounts SET metadata = '{}'", sqlState: "TB002"),
        Attempt(sql: "UPDATE ledger.accounts SET created_at = now() - interval '1 day'", sqlState: "TB002"),
        Attempt(sql: "TRUNCATE ledger.accounts CASCADE", sqlState: "TB002"),
    ]

    @Test(arguments: attempts)
    func historyCannotBeChanged(_ attempt: Attempt) async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let bank = Bank(pool)
            let funding = try await bank.open(), shop = try await bank.open()
            let wallet = try await bank.open(debitsMustNotExceedCredits: true)
            _ = try await bank.open(code: "unused")
            try await bank.post(funding, wallet, 1_000)
            let posted = try await bank.hold(wallet, shop, 300)
            let voided = try await bank.hold(wallet, shop, 200)
            try await bank.hold(wallet, shop, 100)
            try await bank.postPending(posted.id, amount: 250)
            try await bank.void(voided.id)
            let before = try await bank.fingerprint()
            let error = await #expect(throws: PostgresError.self) { try await bank.sql(attempt.sql) }
            #expect(error?.sqlState == attempt.sqlState, "\(String(describing: error))")
            #expect(try await bank.fingerprint() == before)
            try await bank.expectSound()
        }
    }

    @Test func plainTruncateOfReferencedTablesIsRefusedToo() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let bank = Bank(pool)
            let a = try await bank.open(), b = try await bank.open()
            let hold = try await bank.hold(a, b, 10)
            try await bank.void(hold.id)
            let before = try await bank.fingerprint()
            for table in ["ledger.transfers", "ledger.accounts"] {
                await #expect(throws: PostgresError.self) { try await bank.sql("TRUNCATE \(table)") }
            }
            #expect(try await bank.fingerprint() == before)
        }
    }
}
