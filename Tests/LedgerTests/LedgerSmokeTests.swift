import Foundation
import Ledger
import Postgres
import Testing
import TestSupport

@Suite("Ledger basics")
struct LedgerSmokeTests {
    @Test func postHoldPostPendingAndVerify() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let ledger = Ledger(pool: pool)
            let owner = UUID()
            let (funding, _) = try await ledger.createAccount(NewAccount(currency: "CNY", ownerID: owner, code: "funding"))
            let (buyer, _) = try await ledger.createAccount(NewAccount(currency: "CNY", ownerID: owner, debitsMustNotExceedCredits: true))
            let (escrow, _) = try await ledger.createAccount(NewAccount(currency: "CNY", ownerID: owner, code: "escrow"))
            let deposit = try await ledger.createTransfer(TransferRequest(id: UUID(), action: .post(debit: funding.id, credit: buyer.id, amount: 5_000, currency: "CNY")))
            #expect(deposit.outcome == .ok)
            let hold = try await ledger.createTransfer(TransferRequest(id: UUID(), action: .hold(debit: buyer.id, credit: escrow.id, amount: 3_000, currency: "CNY", timeoutSeconds: nil)))
            #expect(hold.outcome == .ok)
            let tooMuch = try await ledger.createTransfer(TransferRequest(id: UUID(), action: .post(debit: buyer.id, credit: escrow.id, amount: 2_001, currency: "CNY")))
            #expect(tooMuch.outcome == .exceedsCredits)
            let post = try await ledger.createTransfer(TransferRequest(id: UUID(), action: .postPending(pendingID: hold.id, amount: 1_000)))
            #expect(post.outcome == .ok)
            let again = try await ledger.createTransfer(TransferRequest(id: UUID(), action: .voidPending(pendingID: hold.id)))
            #expect(again.outcome == .pendingTransferAlreadyPosted)
            let buyerNow = try #require(try await ledger.account(buyer.id))
            #expect(buyerNow.creditsPosted == 5_000 && buyerNow.debitsPosted == 1_000 && buyerNow.debitsPending == 0)
            let page = try await ledger.transfers(ofAccount: buyer.id, limit: 2)
            #expect(page.items.map(\.id) == [post.id, hold.id])
            let rest = try await ledger.transfers(ofAccount: buyer.id, limit: 2, cursor: page.nextCursor)
            #expect(rest.items.map(\.id) == [deposit.id] && rest.nextCursor == nil)
            let verification = try await Journal(pool: pool).verify()
            #expect(verification.isIntact)
            #expect(verification.entriesChecked == 6)  // 3 accounts, 3 transfers
        }
    }
}
