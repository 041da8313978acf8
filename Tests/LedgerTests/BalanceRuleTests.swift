import Foundation
import Ledger
import Postgres
import Testing
import TestSupport

/// The balance rules count pending amounts; posting part of a hold releases the rest.
@Suite("Balance rules and holds")
struct BalanceRuleTests {
    @Test func debitsMustNotExceedCreditsCountsPendingDebits() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let bank = Bank(pool)
            let funding = try await bank.open(), escrow = try await bank.open()
            let buyer = try await bank.open(debitsMustNotExceedCredits: true)
            try await bank.post(funding, buyer, 5_000)
            var holds: [TransferResult] = []
            for _ in 1...5 { holds.append(try await bank.hold(buyer, escrow, 1_000)) }
            #expect(holds.allSatisfy { $0.outcome == .ok })
            let sixth = try await bank.hold(buyer, escrow, 1_000)
            #expect(sixth.outcome == .exceedsCredits)
            #expect(try await bank.hold(buyer, escrow, 1).outcome == .exceedsCredits)
            #expect(try await bank.post(buyer, escrow, 1).outcome == .exceedsCredits)
            #expect(try await bank.balances(buyer) == Balances(creditsPosted: 5_000, debitsPending: 5_000))
            // posting a hold keeps the money spent; voiding one frees it again
            #expect(try await bank.postPending(holds[0].id).outcome == .ok)
            #expect(try await bank.hold(buyer, escrow, 1_000).outcome == .exceedsCredits)
            #expect(try await bank.void(holds[1].id).outcome == .ok)
            #expect(try await bank.hold(buyer, escrow, 1_001).outcome == .exceedsCredits)
            #expect(try await bank.hold(buyer, escrow, 1_000).outcome == .ok)
            #expect(try await bank.balances(buyer) == Balances(debitsPosted: 1_000, creditsPosted: 5_000, debitsPending: 4_000))
            try await bank.expectSound()
        }
    }

    @Test func creditsMustNotExceedDebitsCountsPendingCredits() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let bank = Bank(pool)
            let source = try await bank.open(), sink = try await bank.open()
            let liability = try await bank.open(creditsMustNotExceedDebits: true)
            try await bank.post(liability, sink, 5_000)
            var holds: [TransferResult] = []
            for _ in 1...5 { holds.append(try await bank.hold(source, liability, 1_000)) }
            #expect(holds.allSatisfy { $0.outcome == .ok })
            #expect(try await bank.hold(source, liability, 1_000).outcome == .exceedsDebits)
            #expect(try await bank.hold(source, liability, 1).outcome == .exceedsDebits)
            #expect(try await bank.post(source, liability, 1).outcome == .exceedsDebits)
            #expect(try await bank.balances(liability) == Balances(debitsPosted: 5_000, creditsPending: 5_000))
            #expect(try await bank.void(holds[4].id).outcome == .ok)
            #expect(try await bank.post(source, liability, 1_000).outcome == .ok)
            #expect(try await bank.post(source, liability, 1).outcome == .exceedsDebits)
            try await bank.expectSound()
        }
    }

    @Test func postingPartOfAHoldReleasesTheRest() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let bank = Bank(pool)
            let funding = try await bank.open(), escrow = try await bank.open()
            let buyer = try await bank.open(debitsMustNotExceedCredits: true)
            try await bank.post(funding, buyer, 1_000)
            let hold = try await bank.hold(buyer, escrow, 1_000, timeout: 3_600)
            #expect(try await bank.post(buyer, escrow, 1).outcome == .exceedsCredits)
            let post = try await bank.postPending(hold.id, amount: 400)
            #expect(post.outcome == .ok)
            let transfer = try #require(post.transfer)
            #expect(transfer.kind == .postPending && transfer.amount == 400 && transfer.pendingID == hold.id)
            #expect(transfer.debitAccountID == buyer && transfer.creditAccountID == escrow && transfer.currency == "CNY")
            #expect(try await bank.balances(buyer) == Balances(debitsPosted: 400, creditsPosted: 1_000))
            #expect(try await bank.balances(escrow) == Balances(creditsPosted: 400))
            #expect(try await bank.resolutions() == [hold.id: "posted"])
            #expect(try await bank.count("SELECT count(*) FROM ledger.open_holds") == 0)
            // the released 600 can be spent again, but not a unit more
            #expect(try await bank.post(buyer, escrow, 601).outcome == .exceedsCredits)
            #expect(try await bank.post(buyer, escrow, 600).outcome == .ok)
            // and the rest of the hold cannot be posted later
            #expect(try await bank.postPending(hold.id, amount: 600).outcome == .pendingTransferAlreadyPosted)
            #expect(try await bank.balances(buyer) == Balances(debitsPosted: 1_000, creditsPosted: 1_000))
            try await bank.expectSound()
        }
    }
}
