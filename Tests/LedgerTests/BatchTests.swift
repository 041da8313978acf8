import Foundation
import Ledger
import Postgres
import Testing
import TestSupport

/// Atomic and independent batches, ordering inside a batch, and the batch size limits.
@Suite("Transfer batches")
struct BatchTests {
    /// Which request of a five-request atomic batch fails, and how.
    enum Failure: String, CaseIterable, Sendable {
        case firstExceedsCredits, middleAccountNotFound, lastAmountNotPositive, holdPostedTwice, duplicateIdWithDifferentFields
    }

    @Test(arguments: Failure.allCases)
    func aFailedAtomicBatchChangesNothing(_ failure: Failure) async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let bank = Bank(pool)
            let funding = try await bank.open(), shop = try await bank.open()
            let wallet = try await bank.open(debitsMustNotExceedCredits: true)
            try await bank.post(funding, wallet, 1_000)
            let existing = try await bank.post(funding, shop, 5)
            let holdID = UUID()
            var requests: [TransferRequest] = [
                .post(funding, wallet, 500),
                .hold(wallet, shop, 1_200, id: holdID),
                .postPending(holdID, amount: 700),
                .post(shop, funding, 100),
                .post(wallet, shop, 300),
            ]
            let failing: Int
            let expected: TransferOutcome
            switch failure {
            case .firstExceedsCredits:
                failing = 0; expected = .exceedsCredits
                requests[0] = .post(wallet, shop, 1_001)
            case .middleAccountNotFound:
                failing = 3; expected = .accountNotFound
                requests[3] = .post(shop, UUID(), 100)
            case .lastAmountNotPositive:
                failing = 4; expected = .amountMustBePositive
                requests[4] = .post(wallet, shop, 0)
            case .holdPostedTwice:
                failing = 3; expected = .pendingTransferAlreadyPosted
                requests[3] = .void(holdID)
            case .duplicateIdWithDifferentFields:
                failing = 4; expected = .existsWithDifferentFields
                requests[4] = .post(funding, shop, 6, id: existing.id)
            }
            let balancesBefore = try await bank.allBalances()
            let journalBefore = try await bank.count("SELECT count(*) FROM ledger.journal")
            let before = try await bank.fingerprint()
            let results = try await bank.ledger.createTransfers(requests, atomic: true)
            #expect(results.count == requests.count)
            for (index, result) in results.enumerated() {
                #expect(result.index == index && result.id == requests[index].id)
                #expect(result.outcome == (index == failing ? expected : .linkedEventFailed), "request \(index)")
                #expect(result.transfer == nil)
            }
            #expect(try await bank.allBalances() == balancesBefore)
            #expect(try await bank.count("SELECT count(*) FROM ledger.journal") == journalBefore)
            #expect(try await bank.fingerprint() == before)
            for request in requests where request.id != existing.id {
                #expect(try await bank.ledger.transfer(request.id) == nil)
            }
            try await bank.expectSound()

            // the same batch without the failure goes through as a whole
            let fixed = try await bank.ledger.createTransfers(
                [.post(funding, wallet, 500), .hold(wallet, shop, 1_200, id: holdID), .postPending(holdID, amount: 700),
                 .post(shop, funding, 100), .post(wallet, shop, 300)], atomic: true)
            #expect(fixed.map(\.outcome) == Array(repeating: .ok, count: 5))
            #expect(try await bank.balances(wallet) == Balances(debitsPosted: 1_000, creditsPosted: 1_500))
        }
    }

    @Test func anIndependentBatchAppliesEachSuccessOnItsOwn() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let bank = Bank(pool)
            let funding = try await bank.open(), shop = try await bank.open()
            let wallet = try await bank.open(debitsMustNotExceedCredits: true)
            let results = try await bank.ledger.createTransfers(
                [.post(funding, wallet, 100), .post(wallet, shop, 101), .post(wallet, shop, 60), .post(wallet, shop, 60),
                 .hold(wallet, wallet, 1), .hold(wallet, shop, 40), .post(funding, shop, 7, currency: "USD")],
                atomic: false)
            #expect(results.map(\.outcome) == [.ok, .exceedsCredits, .ok, .exceedsCredits, .accountsMustBeDifferent, .ok, .currencyMismatch])
            #expect(results.map { $0.transfer != nil } == [true, false, true, false, false, true, false])
            #expect(try await bank.balances(wallet) == Balances(debitsPosted: 60, creditsPosted: 100, debitsPending: 40))
            #expect(try await bank.balances(shop) == Balances(creditsPosted: 60, creditsPending: 40))
            #expect(try await bank.count("SELECT count(*) FROM ledger.transfers") == 3)
            try await bank.expectSound()
        }
    }

    @Test(arguments: [true, false])
    func laterTransfersSeeEarlierOnesOfTheSameBatch(atomic: Bool) async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let bank = Bank(pool)
            let funding = try await bank.open(), shop = try await bank.open()
            let wallet = try await bank.open(debitsMustNotExceedCredits: true)
            let fundID = UUID(), holdID = UUID(), hold2ID = UUID()
            let requests: [TransferRequest] = [
                .post(funding, wallet, 1_000, id: fundID),
                .post(wallet, shop, 300),  // only possible after the funding above
                .hold(wallet, shop, 700, id: holdID),  // uses the rest: counts the 300 posted above
                .postPending(holdID, amount: 200),  // the hold created just above
                .hold(wallet, shop, 500, id: hold2ID),  // possible only because the post released 500
                .void(hold2ID),
                .post(funding, wallet, 1_000, id: fundID),  // the same id again: exists
                .void(hold2ID),  // already voided by the request above
            ]
            let results = try await bank.ledger.createTransfers(requests, atomic: atomic)
            let expected: [TransferOutcome] = atomic
                ? [.linkedEventFailed, .linkedEventFailed, .linkedEventFailed, .linkedEventFailed, .linkedEventFailed,
                   .linkedEventFailed, .linkedEventFailed, .pendingTransferAlreadyVoided]
                : [.ok, .ok, .ok, .ok, .ok, .ok, .exists, .pendingTransferAlreadyVoided]
            #expect(results.map(\.outcome) == expected)
            if atomic {
                #expect(try await bank.balances(wallet) == Balances())
                // without the failing last request, the batch applies as a whole
                let again = try await bank.ledger.createTransfers(Array(requests.dropLast()), atomic: true)
                #expect(again.map(\.outcome) == [.ok, .ok, .ok, .ok, .ok, .ok, .exists])
                #expect(again[6].transfer == again[0].transfer)
            } else {
                #expect(results[6].transfer == results[0].transfer)
            }
            #expect(try await bank.balances(wallet) == Balances(debitsPosted: 500, creditsPosted: 1_000))
            #expect(try await bank.balances(shop) == Balances(creditsPosted: 500))
            #expect(try await bank.resolutions() == [holdID: "posted", hold2ID: "voided"])
            #expect(try await bank.count("SELECT count(*) FROM ledger.transfers") == 6)
            try await bank.expectSound()
        }
    }

    @Test func aRequestCannotSeeALaterOneOfTheSameBatch() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let bank = Bank(pool)
            let funding = try await bank.open(), shop = try await bank.open()
            let wallet = try await bank.open(debitsMustNotExceedCredits: true)
            let holdID = UUID()
            let results = try await bank.ledger.createTransfers(
                [.postPending(holdID), .post(wallet, shop, 10), .hold(funding, shop, 50, id: holdID), .post(funding, wallet, 10)],
                atomic: false)
            #expect(results.map(\.outcome) == [.pendingTransferNotFound, .exceedsCredits, .ok, .ok])
        }
    }

    @Test func aDuplicateIdInsideABatchIsExistsOrDifferent() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let bank = Bank(pool)
            let a = try await bank.open(), b = try await bank.open()
            let id = UUID()
            let results = try await bank.ledger.createTransfers(
                [.post(a, b, 10, id: id), .post(a, b, 10, id: id), .post(a, b, 11, id: id), .hold(a, b, 10, id: id)], atomic: false)
            #expect(results.map(\.outcome) == [.ok, .exists, .existsWithDifferentFields, .existsWithDifferentFields])
            #expect(results.map(\.detail) == [nil, nil, "amount", "kind"])
            #expect(results[1].transfer == results[0].transfer)
            #expect(try await bank.balances(a) == Balances(debitsPosted: 10))
            // a request that fails first and then succeeds under the same id in the same batch
            let retried = UUID()
            let second = try await bank.ledger.createTransfers(
                [.post(a, UUID(), 5, id: retried), .post(a, b, 5, id: retried), .post(a, b, 5, id: retried)], atomic: false)
            #expect(second.map(\.outcome) == [.accountNotFound, .ok, .exists])
            #expect(try await bank.balances(a) == Balances(debitsPosted: 15))
        }
    }

    @Test func batchSizeLimits() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let bank = Bank(pool)
            let a = try await bank.open(), b = try await bank.open()
            for atomic in [true, false] {
                let empty = await #expect(throws: LedgerError.self) { try await bank.ledger.createTransfers([], atomic: atomic) }
                #expect(empty?.code == .invalidRequest && empty?.field == "transfers")
                let tooMany = (0...Ledger.maxBatchSize).map { _ in TransferRequest.post(a, b, 1) }
                #expect(tooMany.count == 8_001)
                let error = await #expect(throws: LedgerError.self) { try await bank.ledger.createTransfers(tooMany, atomic: atomic) }
                #expect(error?.code == .invalidRequest && error?.field == "transfers")
            }
            #expect(try await bank.count("SELECT count(*) FROM ledger.transfers") == 0)
            // exactly the limit is fine
            let full = (0..<Ledger.maxBatchSize).map { _ in TransferRequest.post(a, b, 1) }
            let results = try await bank.ledger.createTransfers(full, atomic: true)
            #expect(results.count == 8_000 && results.allSatisfy { $0.outcome == .ok })
            #expect(try await bank.balances(b) == Balances(creditsPosted: 8_000))
            try await bank.expectSound()
        }
    }
}
