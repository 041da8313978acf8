import Foundation
import Ledger
import Postgres
import Testing
import TestSupport

/// The transfer id is the idempotency key: a replay never moves money twice, not even when the
/// replays race each other.
@Suite("Idempotency")
struct IdempotencyTests {
    @Test func replaysOfEveryKindReturnTheStoredTransfer() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let bank = Bank(pool)
            let funding = try await bank.open(), shop = try await bank.open()
            let wallet = try await bank.open(debitsMustNotExceedCredits: true)
            let requests: [TransferRequest] = [
                TransferRequest(id: UUID(), action: .post(debit: funding, credit: wallet, amount: 1_000, currency: "CNY"),
                                code: "deposit", metadata: JSONB(#"{"ref": "abc", "n": [1, 2]}"#)),
                .hold(wallet, shop, 600, timeout: 3_600),
                .hold(wallet, shop, 300),
            ]
            var first: [TransferResult] = []
            for request in requests { first.append(try await bank.ledger.createTransfer(request)) }
            let post = TransferRequest.postPending(requests[1].id, amount: 250)
            let void = TransferRequest.void(requests[2].id)
            first.append(try await bank.ledger.createTransfer(post))
            first.append(try await bank.ledger.createTransfer(void))
            #expect(first.map(\.outcome) == [.ok, .ok, .ok, .ok, .ok])
            let balances = try await bank.allBalances()
            let journal = try await bank.count("SELECT count(*) FROM ledger.journal")

            // Replays come back as `exists` with the stored transfer, one by one and as a batch,
            // even now that the wallet could not afford them any more and the holds are resolved.
            #expect(try await bank.ledger.closeAccount(shop))
            for (request, original) in zip(requests + [post, void], first) {
                let replay = try await bank.ledger.createTransfer(request)
                #expect(replay.outcome == .exists && replay.detail == nil)
                #expect(replay.transfer == original.transfer)
            }
            let batchReplay = try await bank.ledger.createTransfers(requests + [post, void], atomic: true)
            #expect(batchReplay.map(\.outcome) == Array(repeating: .exists, count: 5))
            #expect(batchReplay.map(\.transfer) == first.map(\.transfer))
            #expect(try await bank.allBalances() == balances)
            #expect(try await bank.count("SELECT count(*) FROM ledger.journal") == journal + 1)  // + account_closed
            #expect(try await bank.count("SELECT count(*) FROM ledger.transfers") == 5)
        }
    }

    enum RacedRequest: String, CaseIterable, Sendable { case post, hold, postPending, voidPending }

    @Test(arguments: RacedRequest.allCases)
    func sixteenConcurrentSubmissionsOfOneIdStoreItOnce(_ kind: RacedRequest) async throws {
        try await TestDatabase.withPool(template: .ledger, maxConnections: 16) { pool throws in
            let bank = Bank(pool)
            let funding = try await bank.open(), shop = try await bank.open()
            let wallet = try await bank.open(debitsMustNotExceedCredits: true)
            try await bank.post(funding, wallet, 1_000)
            let hold = try await bank.hold(wallet, shop, 800)
            let id = UUID()
            let request: TransferRequest = switch kind {
            case .post: .post(wallet, shop, 150, id: id)
            case .hold: .hold(wallet, shop, 150, timeout: 600, id: id)
            case .postPending: .postPending(hold.id, amount: 500, id: id)
            case .voidPending: .void(hold.id, id: id)
            }
            let results = try await withThrowingTaskGroup(of: TransferResult.self) { group in
                for _ in 0..<16 { group.addTask { try await bank.ledger.createTransfer(request) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(results.count(where: { $0.outcome == .ok }) == 1)
            #expect(results.count(where: { $0.outcome == .exists }) == 15)
            let stored = try #require(try await bank.ledger.transfer(id))
            #expect(results.allSatisfy { $0.transfer == stored })
            #expect(try await bank.count("SELECT count(*) FROM ledger.transfers WHERE id = $1", [id]) == 1)
            #expect(try await bank.count("SELECT count(*) FROM ledger.journal WHERE subject_id = $1", [id]) == 1)
            let expected: Balances = switch kind {
            case .post: Balances(debitsPosted: 150, creditsPosted: 1_000, debitsPending: 800)
            case .hold: Balances(creditsPosted: 1_000, debitsPending: 950)
            case .postPending: Balances(debitsPosted: 500, creditsPosted: 1_000)
            case .voidPending: Balances(creditsPosted: 1_000)
            }
            #expect(try await bank.balances(wallet) == expected)
            try await bank.expectSound()
        }
    }

    @Test func concurrentResolutionsOfOneHoldUnderDifferentIdsResolveItOnce() async throws {
        try await TestDatabase.withPool(template: .ledger, maxConnections: 16) { pool throws in
            let bank = Bank(pool)
            let a = try await bank.open(), b = try await bank.open()
            let hold = try await bank.hold(a, b, 1_000)
            let results = try await withThrowingTaskGroup(of: TransferResult.self) { group in
                for i in 0..<16 {
                    group.addTask { i % 2 == 0 ? try await bank.postPending(hold.id, amount: 100 + Int64(i)) : try await bank.void(hold.id) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let winners = results.filter { $0.outcome == .ok }
            #expect(winners.count == 1)
            let winner = try #require(winners.first?.transfer)
            let loserOutcome: TransferOutcome = winner.kind == .postPending ? .pendingTransferAlreadyPosted : .pendingTransferAlreadyVoided
            #expect(results.filter { $0.outcome != .ok }.allSatisfy { $0.outcome == loserOutcome })
            let posted = winner.kind == .postPending ? winner.amount : 0
            #expect(try await bank.balances(a) == Balances(debitsPosted: posted))
            #expect(try await bank.balances(b) == Balances(creditsPosted: posted))
            #expect(try await bank.resolutions() == [hold.id: winner.kind == .postPending ? "posted" : "voided"])
            try await bank.expectSound()
        }
    }
}
