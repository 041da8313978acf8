import Foundation
import Ledger
import Postgres
import Testing
import TestSupport

/// Listing an account's transfers, historical balances and per-currency totals.
@Suite("Ledger queries")
struct QueryTests {
    /// Creates 23 transfers touching `account` (on both sides, holds and resolutions, some in
    /// one batch) and some that do not; returns the ids of those touching it, oldest first.
    private func history(_ bank: Bank, account: UUID) async throws -> [UUID] {
        let other = try await bank.open(), third = try await bank.open()
        var touching: [UUID] = []
        for i in 1...6 {
            touching.append(try await bank.post(other, account, Int64(100 * i)).id)
            try await bank.post(other, third, 1)  // not the account's
            touching.append(try await bank.post(account, other, Int64(i)).id)
        }
        for _ in 1...3 {
            let hold = try await bank.hold(account, third, 10)
            touching.append(hold.id)
            touching.append(try await bank.postPending(hold.id, amount: 4).id)
        }
        let voided = try await bank.hold(third, account, 7)
        touching.append(voided.id)
        try await bank.post(third, other, 2)
        touching.append(try await bank.void(voided.id).id)
        let batch: [TransferRequest] = [.post(other, account, 1), .post(other, third, 1), .post(account, third, 1), .hold(other, account, 3)]
        let results = try await bank.ledger.createTransfers(batch, atomic: true)
        #expect(results.allSatisfy { $0.outcome == .ok })
        touching += [batch[0].id, batch[2].id, batch[3].id]
        #expect(touching.count == 23)
        return touching
    }

    @Test(arguments: [1, 5, 22, 23, 24, 200])
    func pagesListEveryTransferOnceNewestFirst(limit: Int) async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let bank = Bank(pool)
            let account = try await bank.open()
            let expected = Array(try await history(bank, account: account).reversed())
            var seen: [UUID] = []
            var cursor: Int64?
            var pages = 0
            repeat {
                let page = try await bank.ledger.transfers(ofAccount: account, limit: limit, cursor: cursor)
                pages += 1
                #expect(!page.items.isEmpty && page.items.count <= limit)
                #expect(page.items.allSatisfy { $0.debitAccountID == account || $0.creditAccountID == account })
                if page.nextCursor != nil { #expect(page.items.count == limit) }
                seen += page.items.map(\.id)
                cursor = page.nextCursor
            } while cursor != nil && pages <= 30
            #expect(seen == expected)
            #expect(pages == (expected.count + limit - 1) / limit)
            // the transfers themselves are the stored ones
            let first = try await bank.ledger.transfers(ofAccount: account, limit: 1)
            #expect(first.items.first == (try await bank.ledger.transfer(expected[0])))
        }
    }

    @Test func pagingEdgeCases() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let bank = Bank(pool)
            let account = try await bank.open()
            let empty = try await bank.ledger.transfers(ofAccount: account, limit: 10)
            #expect(empty.items.isEmpty && empty.nextCursor == nil)
            let unknown = try await bank.ledger.transfers(ofAccount: UUID(), limit: 10)
            #expect(unknown.items.isEmpty && unknown.nextCursor == nil)
            for limit in [0, -1, Ledger.maxPageSize + 1] {
                let error = await #expect(throws: LedgerError.self) { try await bank.ledger.transfers(ofAccount: account, limit: limit) }
                #expect(error?.code == .invalidRequest && error?.field == "limit")
            }
        }
    }

    @Test func balanceAtPastInstantsSumsThePostedHistoryUpToThen() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let bank = Bank(pool)
            let account = try await bank.open(), other = try await bank.open()
            #expect(try await bank.ledger.balance(of: UUID(), at: Date()) == nil)
            _ = try await history(bank, account: account)
            // every stored transfer touching the account, oldest first (seq order)
            let rows = try await bank.sql(
                "SELECT id FROM ledger.transfers WHERE debit_account_id = $1 OR credit_account_id = $1 ORDER BY seq", [account])
            var transfers: [Transfer] = []
            for row in rows { transfers.append(try #require(try await bank.ledger.transfer(try row.decode(UUID.self, at: 0)))) }
            #expect(transfers.count == 23)
            let instants = Set(transfers.map(\.createdAt)).sorted()
            #expect(instants.count == 21)  // the batch of four shares one instant
            func expected(at instant: Date) -> (debits: Int64, credits: Int64) {
                let counted = transfers.filter { $0.createdAt <= instant && ($0.kind == .posted || $0.kind == .postPending) }
                return (counted.filter { $0.debitAccountID == account }.reduce(0) { $0 + $1.amount },
                        counted.filter { $0.creditAccountID == account }.reduce(0) { $0 + $1.amount })
            }
            var probes = [instants[0].addingTimeInterval(-0.001)]
            for (index, instant) in instants.enumerated() {
                probes.append(instant)
                if index + 1 < instants.count {
                    probes.append(instant.addingTimeInterval(instants[index + 1].timeIntervalSince(instant) / 2))
                }
            }
            var previous: (debits: Int64, credits: Int64) = (-1, -1)
            var changes = 0
            for probe in probes {
                let balance = try #require(try await bank.ledger.balance(of: account, at: probe))
                let want = expected(at: probe)
                #expect(balance.accountID == account && balance.at == probe)
                #expect(balance.debitsPosted == want.debits && balance.creditsPosted == want.credits, "at \(probe)")
                if want != previous { changes += 1 }
                previous = want
            }
            #expect(changes >= 15)  // the probes really see different sums
            #expect(expected(at: probes[0]) == (0, 0))
            let now = try #require(try await bank.ledger.balance(of: account, at: Date()))
            let current = try await bank.balances(account)
            #expect(now.debitsPosted == current.debitsPosted && now.creditsPosted == current.creditsPosted)
            #expect(current.debitsPosted == 21 + 12 + 1 && current.creditsPosted == 2_100 + 1)
            // an account without posted transfers
            let zero = try #require(try await bank.ledger.balance(of: other, at: Date()))
            #expect(zero.debitsPosted == 0 && zero.creditsPosted == 0)
        }
    }

    @Test func totalsPerCurrencyBalanceAndSeparatePostedFromPending() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let bank = Bank(pool)
            #expect(try await bank.ledger.totals() == [])
            let c1 = try await bank.open("CNY"), c2 = try await bank.open("CNY"), c3 = try await bank.open("CNY")
            let u1 = try await bank.open("USD"), u2 = try await bank.open("USD")
            _ = try await bank.open("EUR")
            try await bank.post(c1, c2, 1_000)
            try await bank.post(c2, c3, 250)
            let cnyHold = try await bank.hold(c3, c1, 70)
            try await bank.hold(c1, c2, 30)
            try await bank.post(u1, u2, 9, currency: "USD")
            let usdHold = try await bank.hold(u2, u1, 4, currency: "USD")
            try await bank.postPending(cnyHold.id, amount: 20)
            try await bank.void(usdHold.id)
            try await bank.hold(u1, u2, 5, currency: "USD", timeout: 3_600)
            let totals = try await bank.ledger.totals()
            #expect(totals.map { [$0.currency, "\($0.debitsPosted)", "\($0.creditsPosted)", "\($0.debitsPending)", "\($0.creditsPending)"] } == [
                ["CNY", "1270", "1270", "30", "30"],
                ["EUR", "0", "0", "0", "0"],
                ["USD", "9", "9", "5", "5"],
            ])
            try await bank.expectSound()
        }
    }
}
