import Foundation
import Ledger
import Postgres
import Testing
import TestSupport

/// Every outcome code of `TransferOutcome`, each produced through `Ledger.createTransfers`, and
/// for every failure: nothing moved.
@Suite("Transfer outcomes")
struct TransferOutcomeTests {
    @Test func okStoresThePostedTransferAndMovesPostedBalances() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let bank = Bank(pool)
            let a = try await bank.open(), b = try await bank.open()
            let id = UUID()
            let result = try await bank.post(a, b, 700, id: id, code: "fee", metadata: JSONB(#"{"order": 7}"#))
            #expect(result.outcome == .ok && result.index == 0 && result.id == id && result.detail == nil)
            let transfer = try #require(result.transfer)
            #expect(transfer.id == id && transfer.kind == .posted && transfer.debitAccountID == a && transfer.creditAccountID == b)
            #expect(transfer.amount == 700 && transfer.currency == "CNY" && transfer.code == "fee")
            #expect(transfer.pendingID == nil && transfer.timeoutSeconds == nil && transfer.expiresAt == nil)
            #expect(transfer.metadata == JSONB(#"{"order": 7}"#))
            #expect(try await bank.ledger.transfer(id) == transfer)
            #expect(try await bank.balances(a) == Balances(debitsPosted: 700))
            #expect(try await bank.balances(b) == Balances(creditsPosted: 700))
            try await bank.expectSound()
        }
    }

    @Test func okStoresTheHoldAndMovesPendingBalances() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let bank = Bank(pool)
            let a = try await bank.open(), b = try await bank.open()
            let result = try await bank.hold(a, b, 250, timeout: 3_600)
            #expect(result.outcome == .ok)
            let transfer = try #require(result.transfer)
            #expect(transfer.kind == .pending && transfer.amount == 250 && transfer.timeoutSeconds == 3_600)
            let expiresAt = try #require(transfer.expiresAt)
            #expect(abs(expiresAt.timeIntervalSince(transfer.createdAt) - 3_600) < 0.001)
            #expect(try await bank.balances(a) == Balances(debitsPending: 250))
            #expect(try await bank.balances(b) == Balances(creditsPending: 250))
            #expect(try await bank.count("SELECT count(*) FROM ledger.open_holds WHERE pending_id = $1", [result.id]) == 1)
            try await bank.expectSound()
        }
    }

    @Test func replayWithIdenticalFieldsIsExists() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let bank = Bank(pool)
            let a = try await bank.open(), b = try await bank.open()
            let id = UUID()
            let first = try await bank.post(a, b, 300, id: id)
            let again = try await bank.post(a, b, 300, id: id)
            #expect(first.outcome == .ok && again.outcome == .exists && again.detail == nil)
            #expect(again.transfer != nil && again.transfer == first.transfer)
            #expect(try await bank.balances(a) == Balances(debitsPosted: 300))
        }
    }

    /// The same id as a stored `post a→b 500 CNY code transfer`, with some fields changed.
    enum Difference: String, CaseIterable, Sendable {
        case amount, code, debit, credit, metadata, currency, amountCodeAndMetadata, holdInstead, holdWithTimeoutInstead

        var expectedDetail: String {
            switch self {
            case .amount: "amount"
            case .code: "code"
            case .debit: "debit_account_id"
            case .credit: "credit_account_id"
            case .metadata: "metadata"
            case .currency: "currency"
            case .amountCodeAndMetadata: "amount,code,metadata"
            case .holdInstead: "kind"
            case .holdWithTimeoutInstead: "kind,timeout_seconds"
            }
        }
    }

    @Test(arguments: Difference.allCases)
    func sameIdWithDifferentFieldsNamesTheFields(_ difference: Difference) async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let bank = Bank(pool)
            let a = try await bank.open(), b = try await bank.open(), c = try await bank.open()
            let id = UUID()
            let first = try await bank.post(a, b, 500, id: id)
            #expect(first.outcome == .ok)
            let before = try await bank.fingerprint()
            var request = TransferRequest.post(a, b, 500, id: id)
            switch difference {
            case .amount: request.action = .post(debit: a, credit: b, amount: 501, currency: "CNY")
            case .code: request.code = "fee"
            case .debit: request.action = .post(debit: c, credit: b, amount: 500, currency: "CNY")
            case .credit: request.action = .post(debit: a, credit: c, amount: 500, currency: "CNY")
            case .metadata: request.metadata = JSONB(#"{"x": 1}"#)
            case .currency: request.action = .post(debit: a, credit: b, amount: 500, currency: "USD")
            case .amountCodeAndMetadata:
                request.action = .post(debit: a, credit: b, amount: 1, currency: "CNY")
                request.code = "refund"
                request.metadata = JSONB("[]")
            case .holdInstead: request.action = .hold(debit: a, credit: b, amount: 500, currency: "CNY", timeoutSeconds: nil)
            case .holdWithTimeoutInstead: request.action = .hold(debit: a, credit: b, amount: 500, currency: "CNY", timeoutSeconds: 60)
            }
            for atomic in [true, false] {
                let result = try await bank.ledger.createTransfers([request], atomic: atomic)[0]
                #expect(result.outcome == .existsWithDifferentFields)
                #expect(result.detail == difference.expectedDetail)
                #expect(result.transfer == nil)
            }
            #expect(try await bank.fingerprint() == before)
            #expect(try await bank.ledger.transfer(id) == first.transfer)
        }
    }

    @Test func resolutionsWithDifferentFieldsNameTheFields() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let bank = Bank(pool)
            let a = try await bank.open(), b = try await bank.open()
            let hold = try await bank.hold(a, b, 1_000)
            let other = try await bank.hold(a, b, 1_000)
            let postID = UUID()
            #expect(try await bank.postPending(hold.id, amount: 300, id: postID).outcome == .ok)
            // nil amount means the whole hold (1,000), which differs from the stored 300
            let full = try await bank.postPending(hold.id, id: postID)
            #expect(full.outcome == .existsWithDifferentFields && full.detail == "amount")
            let asVoid = try await bank.void(hold.id, id: postID)
            #expect(asVoid.outcome == .existsWithDifferentFields && asVoid.detail == "kind")
            let otherHold = try await bank.postPending(other.id, amount: 300, id: postID)
            #expect(otherHold.outcome == .existsWithDifferentFields && otherHold.detail == "pending_id")
            #expect(try await bank.postPending(hold.id, amount: 300, id: postID).outcome == .exists)
            // the other hold was not touched by the refused request
            #expect(try await bank.balances(a) == Balances(debitsPosted: 300, debitsPending: 1_000))
        }
    }

    @Test(arguments: [Int64(0), -1, Int64.min])
    func nonPositiveAmountsAreRefused(_ amount: Int64) async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let bank = Bank(pool)
            let a = try await bank.open(), b = try await bank.open()
            let hold = try await bank.hold(a, b, 100)
            let before = try await bank.fingerprint()
            #expect(try await bank.post(a, b, amount).outcome == .amountMustBePositive)
            #expect(try await bank.hold(a, b, amount).outcome == .amountMustBePositive)
            #expect(try await bank.postPending(hold.id, amount: amount).outcome == .amountMustBePositive)
            // checked before the hold is even looked up
            #expect(try await bank.postPending(UUID(), amount: amount).outcome == .amountMustBePositive)
            #expect(try await bank.fingerprint() == before)
        }
    }

    @Test func accountsMustBeDifferent() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let bank = Bank(pool)
            let a = try await bank.open()
            let before = try await bank.fingerprint()
            #expect(try await bank.post(a, a, 10).outcome == .accountsMustBeDifferent)
            #expect(try await bank.hold(a, a, 10).outcome == .accountsMustBeDifferent)
            let unknown = UUID()
            #expect(try await bank.post(unknown, unknown, 10).outcome == .accountsMustBeDifferent)
            #expect(try await bank.fingerprint() == before)
        }
    }

    @Test func accountNotFoundNamesTheSide() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let bank = Bank(pool)
            let a = try await bank.open()
            let before = try await bank.fingerprint()
            let debit = try await bank.post(UUID(), a, 10)
            #expect(debit.outcome == .accountNotFound && debit.detail == "debit_account_id")
            let credit = try await bank.hold(a, UUID(), 10)
            #expect(credit.outcome == .accountNotFound && credit.detail == "credit_account_id")
            let both = try await bank.post(UUID(), UUID(), 10)
            #expect(both.outcome == .accountNotFound && both.detail == "debit_account_id")
            #expect(try await bank.fingerprint() == before)
        }
    }

    @Test func currencyMismatchNamesTheSide() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let bank = Bank(pool)
            let cny1 = try await bank.open("CNY"), cny2 = try await bank.open("CNY"), usd = try await bank.open("USD")
            let before = try await bank.fingerprint()
            let wrongCurrency = try await bank.post(cny1, cny2, 10, currency: "USD")
            #expect(wrongCurrency.outcome == .currencyMismatch && wrongCurrency.detail == "debit_account_id")
            let crossCurrency = try await bank.hold(cny1, usd, 10, currency: "CNY")
            #expect(crossCurrency.outcome == .currencyMismatch && crossCurrency.detail == "credit_account_id")
            let unknownCurrency = try await bank.post(cny1, cny2, 10, currency: "ZZZ")
            #expect(unknownCurrency.outcome == .currencyMismatch && unknownCurrency.detail == "debit_account_id")
            #expect(try await bank.fingerprint() == before)
            // A malformed currency never reaches the database.
            await #expect(throws: LedgerError.self) { try await bank.post(cny1, cny2, 10, currency: "cny") }
        }
    }

    @Test func closedAccountsRefuseNewTransfersButHoldsOnThemCanBeResolved() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let bank = Bank(pool)
            let a = try await bank.open(), b = try await bank.open(), c = try await bank.open()
            try await bank.post(c, a, 5_000)
            let toPost = try await bank.hold(a, b, 1_000)
            let toVoid = try await bank.hold(b, a, 400)
            #expect(try await bank.ledger.closeAccount(b) == true)
            #expect(try await bank.ledger.closeAccount(b) == true)  // closing twice is harmless
            #expect(try await bank.ledger.closeAccount(UUID()) == false)
            #expect(try await bank.ledger.account(b)?.closed == true)
            let before = try await bank.fingerprint()
            let credit = try await bank.post(a, b, 10)
            #expect(credit.outcome == .accountClosed && credit.detail == "credit_account_id")
            let debit = try await bank.post(b, a, 10)
            #expect(debit.outcome == .accountClosed && debit.detail == "debit_account_id")
            let newHold = try await bank.hold(a, b, 10, timeout: 60)
            #expect(newHold.outcome == .accountClosed && newHold.detail == "credit_account_id")
            #expect(try await bank.fingerprint() == before)

            #expect(try await bank.postPending(toPost.id, amount: 600).outcome == .ok)
            #expect(try await bank.void(toVoid.id).outcome == .ok)
            #expect(try await bank.balances(b) == Balances(creditsPosted: 600))
            #expect(try await bank.balances(a) == Balances(debitsPosted: 600, creditsPosted: 5_000))
            try await bank.expectSound()
        }
    }

    @Test func exceedsCreditsAndExceedsDebits() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let bank = Bank(pool)
            let funding = try await bank.open(), sink = try await bank.open()
            let wallet = try await bank.open(debitsMustNotExceedCredits: true)
            let liability = try await bank.open(creditsMustNotExceedDebits: true)
            try await bank.post(funding, wallet, 100)
            let before = try await bank.fingerprint()
            #expect(try await bank.post(wallet, sink, 101).outcome == .exceedsCredits)
            #expect(try await bank.hold(wallet, sink, 101).outcome == .exceedsCredits)
            #expect(try await bank.post(funding, liability, 1).outcome == .exceedsDebits)
            #expect(try await bank.hold(funding, liability, 1).outcome == .exceedsDebits)
            #expect(try await bank.fingerprint() == before)
            #expect(try await bank.post(wallet, sink, 100).outcome == .ok)
            #expect(try await bank.post(wallet, sink, 1).outcome == .exceedsCredits)
            try await bank.post(liability, sink, 70)
            #expect(try await bank.post(funding, liability, 70).outcome == .ok)
            #expect(try await bank.post(funding, liability, 1).outcome == .exceedsDebits)
            try await bank.expectSound()
        }
    }

    @Test func overflowsDebitsAndOverflowsCredits() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let bank = Bank(pool)
            let a = try await bank.open(), b = try await bank.open(), c = try await bank.open(), d = try await bank.open()
            #expect(try await bank.post(a, b, Int64.max).outcome == .ok)
            let before = try await bank.fingerprint()
            #expect(try await bank.post(a, c, 1).outcome == .overflowsDebits)
            #expect(try await bank.hold(a, c, 1).outcome == .overflowsDebits)
            #expect(try await bank.post(d, b, 1).outcome == .overflowsCredits)
            #expect(try await bank.hold(d, b, Int64.max).outcome == .overflowsCredits)
            #expect(try await bank.fingerprint() == before)
            #expect(try await bank.balances(a) == Balances(debitsPosted: Int64.max))

            // pending amounts count towards the limit too
            let e = try await bank.open(), f = try await bank.open(), g = try await bank.open()
            let hold = try await bank.hold(e, f, Int64.max - 10)
            #expect(hold.outcome == .ok)
            #expect(try await bank.post(e, g, 11).outcome == .overflowsDebits)
            #expect(try await bank.post(g, f, 11).outcome == .overflowsCredits)
            #expect(try await bank.post(e, g, 10).outcome == .ok)
            #expect(try await bank.post(g, f, 10).outcome == .ok)
            #expect(try await bank.post(e, g, 1).outcome == .overflowsDebits)
            // releasing the hold makes room again
            #expect(try await bank.postPending(hold.id, amount: 5).outcome == .ok)
            #expect(try await bank.post(e, g, Int64.max - 20).outcome == .ok)
            #expect(try await bank.balances(e) == Balances(debitsPosted: Int64.max - 5))
            #expect(try await bank.balances(f) == Balances(creditsPosted: 15))
        }
    }

    @Test func pendingTransferNotFound() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let bank = Bank(pool)
            let a = try await bank.open(), b = try await bank.open()
            let posted = try await bank.post(a, b, 10)
            let refused = try await bank.hold(b, a, 10, currency: "USD")  // never stored
            let before = try await bank.fingerprint()
            #expect(try await bank.postPending(UUID()).outcome == .pendingTransferNotFound)
            #expect(try await bank.void(UUID()).outcome == .pendingTransferNotFound)
            // an existing transfer that is not a hold
            #expect(try await bank.postPending(posted.id).outcome == .pendingTransferNotFound)
            #expect(try await bank.void(posted.id).outcome == .pendingTransferNotFound)
            #expect(try await bank.void(refused.id).outcome == .pendingTransferNotFound)
            #expect(try await bank.fingerprint() == before)
        }
    }

    @Test func aResolvedHoldCannotBeResolvedAgain() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let bank = Bank(pool)
            let a = try await bank.open(), b = try await bank.open()
            let posted = try await bank.hold(a, b, 100)
            let voided = try await bank.hold(a, b, 200)
            let post = try await bank.postPending(posted.id)
            let void = try await bank.void(voided.id)
            #expect(post.outcome == .ok && post.transfer?.amount == 100 && post.transfer?.pendingID == posted.id)
            #expect(void.outcome == .ok && void.transfer?.amount == 200 && void.transfer?.kind == .voidPending)
            let before = try await bank.fingerprint()
            #expect(try await bank.postPending(posted.id).outcome == .pendingTransferAlreadyPosted)
            #expect(try await bank.postPending(posted.id, amount: 1).outcome == .pendingTransferAlreadyPosted)
            #expect(try await bank.void(posted.id).outcome == .pendingTransferAlreadyPosted)
            #expect(try await bank.postPending(voided.id).outcome == .pendingTransferAlreadyVoided)
            #expect(try await bank.void(voided.id).outcome == .pendingTransferAlreadyVoided)
            #expect(try await bank.fingerprint() == before)
            #expect(try await bank.balances(a) == Balances(debitsPosted: 100))
            #expect(try await bank.resolutions() == [posted.id: "posted", voided.id: "voided"])
        }
    }

    @Test func amountExceedsPending() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let bank = Bank(pool)
            let a = try await bank.open(), b = try await bank.open()
            let hold = try await bank.hold(a, b, 1_000)
            let before = try await bank.fingerprint()
            #expect(try await bank.postPending(hold.id, amount: 1_001).outcome == .amountExceedsPending)
            #expect(try await bank.postPending(hold.id, amount: Int64.max).outcome == .amountExceedsPending)
            #expect(try await bank.fingerprint() == before)
            #expect(try await bank.postPending(hold.id, amount: 1_000).outcome == .ok)
            #expect(try await bank.balances(a) == Balances(debitsPosted: 1_000))
        }
    }

    @Test func linkedEventFailedMarksTheInnocentOnesOfAFailedAtomicBatch() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let bank = Bank(pool)
            let a = try await bank.open(), b = try await bank.open()
            let before = try await bank.fingerprint()
            let results = try await bank.ledger.createTransfers(
                [.post(a, b, 10), .hold(a, b, 20), .post(a, UUID(), 30), .post(b, a, 40)], atomic: true)
            #expect(results.map(\.outcome) == [.linkedEventFailed, .linkedEventFailed, .accountNotFound, .linkedEventFailed])
            #expect(results.map(\.index) == [0, 1, 2, 3])
            #expect(results[2].detail == "credit_account_id")
            #expect(results.allSatisfy { $0.transfer == nil })
            #expect(try await bank.fingerprint() == before)
        }
    }
}
