import Foundation
import Ledger
import Postgres
import Testing
import TestSupport

/// Holds with a timeout expire: they cannot be resolved afterwards and are released exactly once.
@Suite("Hold expiry")
struct ExpiryTests {
    @Test func anExpiredHoldCannotBePostedOrVoidedBeforeOrAfterTheSweep() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let bank = Bank(pool)
            let funding = try await bank.open(), shop = try await bank.open()
            let wallet = try await bank.open(debitsMustNotExceedCredits: true)
            try await bank.post(funding, wallet, 1_000)
            let swept = try await bank.hold(wallet, shop, 300, timeout: 1)
            let releasedByPost = try await bank.hold(wallet, shop, 200, timeout: 1)
            let untimed = try await bank.hold(wallet, shop, 100)
            let postedInTime = try await bank.hold(wallet, shop, 50, timeout: 1)
            #expect([swept, releasedByPost, untimed, postedInTime].allSatisfy { $0.outcome == .ok })
            #expect(try await bank.postPending(postedInTime.id).outcome == .ok)
            #expect(try await bank.ledger.expirePending() == 0)  // nothing is due yet
            try await Task.sleep(for: .milliseconds(1_200))

            // Expired, but not yet swept: refused, and (atomic requests) nothing changes.
            let before = try await bank.fingerprint()
            let post = try await bank.postPending(swept.id)
            #expect(post.outcome == .pendingTransferExpired && post.transfer == nil)
            #expect(try await bank.void(swept.id).outcome == .pendingTransferExpired)
            #expect(try await bank.postPending(swept.id, amount: 1).outcome == .pendingTransferExpired)
            let batch = try await bank.ledger.createTransfers([.post(funding, shop, 1), .void(swept.id)], atomic: true)
            #expect(batch.map(\.outcome) == [.linkedEventFailed, .pendingTransferExpired])
            #expect(try await bank.fingerprint() == before)
            #expect(try await bank.balances(wallet) == Balances(debitsPosted: 50, creditsPosted: 1_000, debitsPending: 600))
            // an expired hold still counts until it is released
            #expect(try await bank.post(wallet, shop, 351).outcome == .exceedsCredits)

            // In an independent batch, resolving an expired hold releases it right away, once.
            let postRequest = TransferRequest.postPending(releasedByPost.id)
            let independent = try await bank.ledger.createTransfers([postRequest, .post(funding, shop, 1)], atomic: false)
            #expect(independent.map(\.outcome) == [.pendingTransferExpired, .ok])
            #expect(try await bank.balances(wallet) == Balances(debitsPosted: 50, creditsPosted: 1_000, debitsPending: 400))
            #expect(try await bank.resolutions()[releasedByPost.id] == "expired")
            let again = try await bank.ledger.createTransfers([postRequest, .void(releasedByPost.id)], atomic: false)
            #expect(again.map(\.outcome) == [.pendingTransferExpired, .pendingTransferExpired])
            #expect(try await bank.balances(wallet) == Balances(debitsPosted: 50, creditsPosted: 1_000, debitsPending: 400))
            #expect(try await bank.ledger.transfer(postRequest.id) == nil)

            // The sweep releases the one remaining expired hold, once.
            #expect(try await bank.ledger.expirePending(limit: 0) == 0)
            #expect(try await bank.ledger.expirePending(limit: -1) == 0)
            #expect(try await bank.ledger.expirePending(limit: 1) == 1)
            #expect(try await bank.ledger.expirePending() == 0)
            #expect(try await bank.balances(wallet) == Balances(debitsPosted: 50, creditsPosted: 1_000, debitsPending: 100))
            #expect(try await bank.balances(shop) == Balances(creditsPosted: 51, creditsPending: 100))
            let after = try await bank.fingerprint()
            #expect(try await bank.postPending(swept.id).outcome == .pendingTransferExpired)
            #expect(try await bank.void(swept.id).outcome == .pendingTransferExpired)
            #expect(try await bank.ledger.createTransfers([.void(swept.id)], atomic: false)[0].outcome == .pendingTransferExpired)
            #expect(try await bank.fingerprint() == after)
            #expect(try await bank.resolutions() == [swept.id: "expired", releasedByPost.id: "expired", postedInTime.id: "posted"])
            #expect(try await bank.count("SELECT count(*) FROM ledger.journal WHERE event_type = 'pending_expired'") == 2)
            // the untimed hold is still open
            #expect(try await bank.postPending(untimed.id).outcome == .ok)
            try await bank.expectSound()
        }
    }

    @Test func concurrentSweepsReleaseEachExpiredHoldExactlyOnce() async throws {
        try await TestDatabase.withPool(template: .ledger, maxConnections: 8) { pool throws in
            let bank = Bank(pool)
            let funding = try await bank.open()
            var wallets: [UUID] = [], shops: [UUID] = []
            for _ in 0..<4 {
                let wallet = try await bank.open(debitsMustNotExceedCredits: true)
                try await bank.post(funding, wallet, 1_000_000)
                wallets.append(wallet)
            }
            for _ in 0..<2 { shops.append(try await bank.open()) }
            var expiring: [UUID] = [], untimed: [TransferRequest] = [], resolvedInTime: [UUID] = []
            var expected = [UUID: Balances]()
            for batch in 0..<4 {
                let requests = (0..<30).map { i in
                    TransferRequest.hold(wallets[(batch + i) % 4], shops[i % 2], Int64(1 + i), timeout: 1)
                }
                #expect(try await bank.ledger.createTransfers(requests, atomic: true).allSatisfy { $0.outcome == .ok })
                expiring += requests.map(\.id)
            }
            for i in 0..<10 {
                let request = TransferRequest.hold(wallets[i % 4], shops[i % 2], 1_000 + Int64(i), timeout: i % 2 == 0 ? nil : 3_600)
                #expect(try await bank.ledger.createTransfer(request).outcome == .ok)
                untimed.append(request)
                expected[wallets[i % 4], default: Balances()].debitsPending += 1_000 + Int64(i)
                expected[shops[i % 2], default: Balances()].creditsPending += 1_000 + Int64(i)
            }
            for i in 0..<6 {
                let hold = try await bank.hold(wallets[i % 4], shops[i % 2], 77, timeout: 1)
                let resolution = i % 2 == 0 ? try await bank.postPending(hold.id) : try await bank.void(hold.id)
                #expect(resolution.outcome == .ok)
                resolvedInTime.append(hold.id)
                if i % 2 == 0 {
                    expected[wallets[i % 4], default: Balances()].debitsPosted += 77
                    expected[shops[i % 2], default: Balances()].creditsPosted += 77
                }
            }
            try await Task.sleep(for: .milliseconds(1_200))

            let released = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        var total = 0
                        while true {
                            let n = try await bank.ledger.expirePending(limit: 16)
                            if n == 0 { return total }
                            total += n
                        }
                    }
                }
                return try await group.reduce(0, +)
            }
            #expect(released == 120)
            #expect(try await bank.ledger.expirePending() == 0)

            let resolutions = try await bank.resolutions()
            #expect(Set(resolutions.filter { $0.value == "expired" }.keys) == Set(expiring))
            #expect(Set(resolutions.filter { $0.value != "expired" }.keys) == Set(resolvedInTime))
            let open = try await bank.sql("SELECT pending_id FROM ledger.open_holds")
            #expect(Set(try open.map { try $0.decode(UUID.self, at: 0) }) == Set(untimed.map(\.id)))
            #expect(try await bank.count("SELECT count(*) FROM ledger.journal WHERE event_type = 'pending_expired'") == 120)
            let balances = try await bank.allBalances()
            for wallet in wallets {
                var want = expected[wallet, default: Balances()]
                want.creditsPosted = 1_000_000
                #expect(balances[wallet] == want)
            }
            for shop in shops { #expect(balances[shop] == expected[shop, default: Balances()]) }
            try await bank.expectSound()
        }
    }

    @Test func sweepersReleaseHoldsOnceWhileResolutionsRaceThem() async throws {
        try await TestDatabase.withPool(template: .ledger, maxConnections: 8) { pool throws in
            let bank = Bank(pool)
            let funding = try await bank.open(), shop = try await bank.open()
            let wallet = try await bank.open(debitsMustNotExceedCredits: true)
            try await bank.post(funding, wallet, 10_000)
            let holds = (0..<40).map { i in TransferRequest.hold(wallet, shop, 10 + Int64(i), timeout: 1) }
            #expect(try await bank.ledger.createTransfers(holds, atomic: false).allSatisfy { $0.outcome == .ok })
            let created = ContinuousClock.now

            let outcomes = try await withThrowingTaskGroup(of: [UUID: TransferResult].self) { group in
                for _ in 0..<2 {
                    group.addTask {
                        let sweeper = LedgerSweeper(ledger: bank.ledger, interval: .milliseconds(20), batchLimit: 7, logger: TestDatabase.logger)
                        try await sweeper.run()
                        return [:]
                    }
                }
                // resolve every hold, starting a little before the timeout, racing the sweepers
                group.addTask {
                    try await Task.sleep(until: created + .milliseconds(900))
                    var results: [UUID: TransferResult] = [:]
                    for (i, hold) in holds.enumerated() {
                        results[hold.id] = i % 2 == 0 ? try await bank.postPending(hold.id, amount: 5) : try await bank.void(hold.id)
                    }
                    return results
                }
                var outcomes: [UUID: TransferResult] = [:]
                outcomes = try await group.next() ?? [:]
                let drained = try await eventually {
                    try await bank.count("SELECT count(*) FROM ledger.open_holds") == 0
                }
                #expect(drained)
                group.cancelAll()
                for try await more in group { outcomes.merge(more) { a, _ in a } }
                return outcomes
            }
            #expect(outcomes.count == 40)
            #expect(outcomes.values.allSatisfy { $0.outcome == .ok || $0.outcome == .pendingTransferExpired })
            let resolutions = try await bank.resolutions()
            #expect(resolutions.count == 40)
            for hold in holds {
                let outcome = outcomes[hold.id]?.outcome
                let resolution = resolutions[hold.id]
                if outcome == .ok {
                    #expect(resolution == "posted" || resolution == "voided")
                } else {
                    #expect(resolution == "expired")
                }
            }
            let posted = outcomes.values.filter { $0.outcome == .ok && $0.transfer?.kind == .postPending }.count
            let expired = resolutions.values.filter { $0 == "expired" }.count
            #expect(try await bank.count("SELECT count(*) FROM ledger.journal WHERE event_type = 'pending_expired'") == expired)
            #expect(try await bank.balances(wallet) == Balances(debitsPosted: 5 * Int64(posted), creditsPosted: 10_000))
            #expect(try await bank.balances(shop) == Balances(creditsPosted: 5 * Int64(posted)))
            try await bank.expectSound()
        }
    }

    /// A sweeper that may release no holds at all per pass (`batchLimit: 0`) must still wait for
    /// its interval between passes instead of querying the database in a tight loop.
    @Test func aSweeperWithAZeroBatchLimitDoesNotSpin() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let bank = Bank(pool)
            // the server's count of committed transactions in this database (flushed about once a second)
            func commits() async throws -> Int64 {
                try await bank.sql("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")[0].decode(Int64.self, at: 0)
            }
            let before = try await commits()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await LedgerSweeper(ledger: bank.ledger, interval: .seconds(5), batchLimit: 0, logger: TestDatabase.logger).run()
                }
                try await Task.sleep(for: .milliseconds(2_500))
                group.cancelAll()
                try await group.waitForAll()
            }
            let after = try await commits()
            #expect(after - before < 100, "\(after - before) transactions in 2.5 s")
        }
    }
}
