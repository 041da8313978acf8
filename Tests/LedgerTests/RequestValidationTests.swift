import Foundation
import Ledger
import Postgres
import Testing
import TestSupport

/// Malformed requests are refused as a whole (a `LedgerError`), before anything is applied.
@Suite("Request validation")
struct RequestValidationTests {
    @Test(arguments: [true, false])
    func aMalformedRequestRefusesTheWholeBatch(atomic: Bool) async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let bank = Bank(pool)
            let a = try await bank.open(), b = try await bank.open()
            let hold = try await bank.hold(a, b, 100)
            let before = try await bank.fingerprint()
            let good = TransferRequest.post(a, b, 10)
            var badCode = TransferRequest.post(a, b, 10); badCode.code = "Fee"
            var emptyCode = TransferRequest.post(a, b, 10); emptyCode.code = ""
            var longCode = TransferRequest.post(a, b, 10); longCode.code = String(repeating: "x", count: 64)
            let notJSON = TransferRequest(id: UUID(), action: .post(debit: a, credit: b, amount: 10, currency: "CNY"), metadata: JSONB("{not json"))
            let cases: [(TransferRequest, LedgerError.Code, String)] = [
                (badCode, .invalidRequest, "transfers[1].code"),
                (emptyCode, .invalidRequest, "transfers[1].code"),
                (longCode, .invalidRequest, "transfers[1].code"),
                (.hold(a, b, 10, timeout: 0), .invalidRequest, "transfers[1].timeout_seconds"),
                (.hold(a, b, 10, timeout: -5), .invalidRequest, "transfers[1].timeout_seconds"),
                (.post(a, b, 10, currency: "cny"), .unknownCurrency, "transfers[1].currency"),
                (.hold(a, b, 10, currency: "CNYX"), .unknownCurrency, "transfers[1].currency"),
                (notJSON, .invalidRequest, "transfers[1].metadata"),
            ]
            for (bad, code, field) in cases {
                let error = await #expect(throws: LedgerError.self) {
                    try await bank.ledger.createTransfers([good, bad, .postPending(hold.id)], atomic: atomic)
                }
                #expect(error?.code == code && error?.field == field, "\(bad.action) code=\(bad.code)")
            }
            #expect(try await bank.fingerprint() == before)
        }
    }

    /// Metadata is spliced into the batch JSON as it is: text that is not exactly one JSON value
    /// must not be able to add or override fields of the transfer.
    @Test func metadataThatIsNotOneJSONValueCannotChangeTheTransfer() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let bank = Bank(pool)
            let a = try await bank.open(), b = try await bank.open()
            let hold = try await bank.hold(a, b, 1_000)
            let before = try await bank.fingerprint()
            let fullPost = TransferRequest(id: UUID(), action: .postPending(pendingID: hold.id, amount: nil),
                                           metadata: JSONB(#"{}, "amount": 1"#))
            let untimedHold = TransferRequest(id: UUID(), action: .hold(debit: a, credit: b, amount: 5, currency: "CNY", timeoutSeconds: nil),
                                              metadata: JSONB(#"{}, "timeout_seconds": 1"#))
            for request in [fullPost, untimedHold] {
                let error = await #expect(throws: LedgerError.self) { try await bank.ledger.createTransfer(request) }
                #expect(error?.code == .invalidRequest)
            }
            #expect(try await bank.fingerprint() == before)
            #expect(try await bank.ledger.transfer(fullPost.id) == nil)
            #expect(try await bank.balances(a) == Balances(debitsPending: 1_000))
        }
    }

    /// Metadata the database cannot parse or store (not JSON; a NUL character, which `jsonb`
    /// refuses) makes a malformed request like any other: a `LedgerError`, not a raw database error.
    @Test(arguments: ["{not json", #"{"note": "\u0000"}"#])
    func metadataTheDatabaseCannotStoreIsAnInvalidRequest(_ text: String) async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let bank = Bank(pool)
            let a = try await bank.open(), b = try await bank.open()
            let before = try await bank.fingerprint()
            let transfer = TransferRequest(id: UUID(), action: .post(debit: a, credit: b, amount: 1, currency: "CNY"), metadata: JSONB(text))
            let error = await #expect(throws: LedgerError.self) { try await bank.ledger.createTransfer(transfer) }
            #expect(error?.code == .invalidRequest)
            let accountError = await #expect(throws: LedgerError.self) {
                try await bank.ledger.createAccount(NewAccount(currency: "CNY", ownerID: UUID(), metadata: JSONB(text)))
            }
            #expect(accountError?.code == .invalidRequest)
            #expect(try await bank.fingerprint() == before)
        }
    }
}
