import Foundation
import Ledger
import Postgres
import Testing
import TestSupport

/// Opening accounts: idempotent by id, validated, always starting at zero.
@Suite("Accounts")
struct AccountTests {
    @Test func openingIsIdempotentAndRefusesAChangedAccount() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let ledger = Ledger(pool: pool)
            let id = UUID(), owner = UUID()
            let new = NewAccount(id: id, currency: "CNY", ownerID: owner, code: "escrow", debitsMustNotExceedCredits: true,
                                 metadata: JSONB(#"{"a": 1, "b": [true]}"#))
            let first = try await ledger.createAccount(new)
            #expect(first.created)
            let account = first.account
            #expect(account.id == id && account.currency == "CNY" && account.ownerID == owner && account.code == "escrow")
            #expect(account.debitsMustNotExceedCredits && !account.creditsMustNotExceedDebits && !account.closed)
            #expect(Balances(account) == Balances())
            #expect(try await ledger.account(id) == account)

            let again = try await ledger.createAccount(new)
            #expect(!again.created && again.account == account)
            var reordered = new
            reordered.metadata = JSONB(#"{"b": [true], "a": 1}"#)  // the same JSON value
            #expect(try await ledger.createAccount(reordered).created == false)

            var changes: [(String, NewAccount)] = []
            var changed = new; changed.currency = "USD"; changes.append(("currency", changed))
            changed = new; changed.ownerID = UUID(); changes.append(("owner_id", changed))
            changed = new; changed.code = "operating"; changes.append(("code", changed))
            changed = new; changed.debitsMustNotExceedCredits = false; changes.append(("debits_must_not_exceed_credits", changed))
            changed = new; changed.metadata = nil; changes.append(("metadata", changed))
            for (field, change) in changes {
                let error = await #expect(throws: LedgerError.self) { try await ledger.createAccount(change) }
                #expect(error?.code == .accountExistsWithDifferentFields && error?.field == field, "\(field)")
            }
            #expect(try await ledger.account(id) == account)
            let journaled = try await pool.withConnection { connection in
                try await connection.query("SELECT count(*)::int8 FROM ledger.journal WHERE subject_id = $1", [id])[0].decode(Int64.self, at: 0)
            }
            #expect(journaled == 1)
            #expect(try await ledger.account(UUID()) == nil)
        }
    }

    @Test func invalidAccountsAreRefused() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let ledger = Ledger(pool: pool)
            let owner = UUID()
            let cases: [(NewAccount, LedgerError.Code, String)] = [
                (NewAccount(currency: "usd", ownerID: owner), .unknownCurrency, "currency"),
                (NewAccount(currency: "XXX", ownerID: owner), .unknownCurrency, "currency"),
                (NewAccount(currency: "CNY", ownerID: owner, code: "Escrow"), .invalidRequest, "code"),
                (NewAccount(currency: "CNY", ownerID: owner, code: ""), .invalidRequest, "code"),
                (NewAccount(currency: "CNY", ownerID: owner, code: String(repeating: "a", count: 64)), .invalidRequest, "code"),
                (NewAccount(currency: "CNY", ownerID: owner, debitsMustNotExceedCredits: true, creditsMustNotExceedDebits: true),
                 .invalidRequest, "credits_must_not_exceed_debits"),
            ]
            for (new, code, field) in cases {
                let error = await #expect(throws: LedgerError.self) { try await ledger.createAccount(new) }
                #expect(error?.code == code && error?.field == field, "\(new.currency) \(new.code)")
            }
            #expect(try await ledger.createAccount(NewAccount(currency: "CNY", ownerID: owner, code: String(repeating: "a", count: 63))).created)
            #expect(try await ledger.totals().count == 1)
        }
    }

    @Test func anAccountCannotBeCreatedWithABalance() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let error = await #expect(throws: PostgresError.self) {
                try await pool.withConnection { connection in
                    try await connection.query(
                        "INSERT INTO ledger.accounts (id, currency, owner_id, code, credits_posted) VALUES ($1, 'CNY', $2, 'operating', 100)",
                        [UUID(), UUID()])
                }
            }
            #expect(error?.sqlState == "TB002")
            #expect(try await Ledger(pool: pool).totals().isEmpty)
        }
    }
}
