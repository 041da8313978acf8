import Foundation
import Ledger
import Postgres
import Testing
import TestSupport

/// Many tasks hammering a few hot accounts: no error escapes, and the ledger ends up exactly where
/// the outcomes it reported say it should be.
@Suite("Ledger under concurrency")
struct ConcurrencyTests {
    /// What the tasks submitted and got back, shared between them.
    /// One `createTransfers` call: what was sent, what came back, and when (in call order).
    struct Call: Sendable {
        let requests: [TransferRequest]
        let results: [TransferResult]
        let atomic: Bool
        /// Calls started after this tick saw every call that ended at or before it.
        let started: Int
        let ended: Int
    }

    /// What the tasks submitted and got back, shared between them.
    actor Recorder {
        private(set) var calls: [Call] = []
        private var tick = 0
        private var submitted: [TransferRequest] = []
        private var holds: [(id: UUID, amount: Int64)] = []

        func start() -> Int {
            tick += 1
            return tick
        }

        func record(_ requests: [TransferRequest], _ results: [TransferResult], atomic: Bool, started: Int) {
            tick += 1
            calls.append(Call(requests: requests, results: results, atomic: atomic, started: started, ended: tick))
            for (request, result) in zip(requests, results) {
                submitted.append(request)
                if result.outcome == .ok, case let .hold(_, _, amount, _, _) = request.action { holds.append((request.id, amount)) }
            }
        }

        func randomHold(_ pick: Double) -> (id: UUID, amount: Int64)? {
            holds.isEmpty ? nil : holds[min(holds.count - 1, Int(pick * Double(holds.count)))]
        }

        func randomSubmitted(_ pick: Double) -> TransferRequest? {
            submitted.isEmpty ? nil : submitted[min(submitted.count - 1, Int(pick * Double(submitted.count)))]
        }
    }

    @Test func sixteenTasksOnFiveHotAccounts() async throws {
        let seed = SeededGenerator.seed(from: "LEDGER_CONCURRENCY_SEED")
        try await TestDatabase.withPool(template: .ledger, maxConnections: 12) { pool throws in
            try await Self.hammer(Bank(pool), seed: seed)
        }
    }

    /// 16 tasks × 130 requests on five hot accounts, then the checks.
    static func hammer(_ bank: Bank, seed: UInt64) async throws {
        do {
            let funding = try await bank.open(code: "funding"), merchant = try await bank.open(code: "merchant")
            let wallet1 = try await bank.open(code: "wallet", debitsMustNotExceedCredits: true)
            let wallet2 = try await bank.open(code: "wallet", debitsMustNotExceedCredits: true)
            let liability = try await bank.open(code: "liability", creditsMustNotExceedDebits: true)
            let hot = [funding, merchant, wallet1, wallet2, liability]
            let recorder = Recorder()
            let setup: [TransferRequest] = [.post(funding, wallet1, 3_000), .post(funding, wallet2, 3_000), .post(liability, merchant, 10_000)]
            let setupStart = await recorder.start()
            await recorder.record(setup, try await bank.ledger.createTransfers(setup, atomic: true), atomic: true, started: setupStart)

            let tasks = 16, operationsPerTask = 130
            try await withThrowingTaskGroup(of: Void.self) { group in
                for task in 0..<tasks {
                    group.addTask {
                        var rng = SeededGenerator(seed: seed &+ UInt64(task) &* 0x9E37_79B9)
                        func account() -> UUID { hot.randomElement(using: &rng)! }
                        func pair() -> (UUID, UUID) {
                            let debit = account()
                            var credit = account()
                            while credit == debit { credit = account() }
                            return (debit, credit)
                        }
                        func fresh(hold: Bool) -> TransferRequest {
                            let (debit, credit) = pair()
                            let amount = Int64.random(in: 1...400, using: &rng)
                            return hold ? .hold(debit, credit, amount, timeout: rng.chance(0.5) ? nil : 3_600) : .post(debit, credit, amount)
                        }
                        var done = 0
                        while done < operationsPerTask {
                            let roll = Double.random(in: 0..<1, using: &rng)
                            let pick = Double.random(in: 0..<1, using: &rng)
                            var requests: [TransferRequest]
                            var atomic = true
                            if roll < 0.33 {
                                requests = [fresh(hold: false)]
                            } else if roll < 0.53 {
                                requests = [fresh(hold: true)]
                            } else if roll < 0.68, let hold = await recorder.randomHold(pick) {
                                requests = [.postPending(hold.id, amount: rng.chance(0.5) ? nil : Int64.random(in: 1...hold.amount, using: &rng))]
                            } else if roll < 0.78, let hold = await recorder.randomHold(pick) {
                                requests = [.void(hold.id)]
                            } else if roll < 0.90, let earlier = await recorder.randomSubmitted(pick) {
                                requests = [earlier]  // a duplicate id, possibly racing the original
                            } else {
                                requests = (0..<Int.random(in: 2...3, using: &rng)).map { _ in fresh(hold: rng.chance(0.4)) }
                                atomic = rng.chance(0.5)
                            }
                            let started = await recorder.start()
                            let results = try await bank.ledger.createTransfers(requests, atomic: atomic)
                            await recorder.record(requests, results, atomic: atomic, started: started)
                            done += requests.count
                        }
                    }
                }
                try await group.waitForAll()
            }

            let calls = await recorder.calls
            let outcomes = calls.flatMap { call in zip(call.requests, call.results).map { (request: $0, result: $1) } }
            #expect(outcomes.count >= tasks * operationsPerTask, "seed \(seed)")
            let allowed: Set<TransferOutcome> = [.ok, .exists, .exceedsCredits, .exceedsDebits, .pendingTransferAlreadyPosted,
                                                 .pendingTransferAlreadyVoided, .linkedEventFailed]
            let unexpected = outcomes.filter { !allowed.contains($0.result.outcome) }
            #expect(unexpected.isEmpty, "seed \(seed): \(unexpected.prefix(5).map { "\($0.request.action) → \($0.result.outcome)" })")

            // An atomic call applied all of its requests or none: then exactly one failed, the rest are linked.
            for call in calls where call.atomic && !call.results.allSatisfy(\.outcome.succeeded) {
                let failures = call.results.filter { $0.outcome != .linkedEventFailed }
                #expect(failures.count == 1 && !failures[0].outcome.succeeded,
                        "seed \(seed): atomic batch → \(call.results.map(\.outcome.rawValue))")
            }

            // Every id succeeded at most once; every later submission of it, and every replay, returned that transfer.
            var stored: [UUID: Transfer] = [:]
            var storedBy: [UUID: Int] = [:]  // the tick at which the successful call ended
            for call in calls {
                for (request, result) in zip(call.requests, call.results) where result.outcome == .ok {
                    #expect(stored[request.id] == nil, "seed \(seed): id \(request.id) was ok twice")
                    stored[request.id] = result.transfer
                    storedBy[request.id] = call.ended
                }
            }
            for (request, result) in outcomes where result.outcome == .exists {
                #expect(stored[request.id] != nil && result.transfer == stored[request.id], "seed \(seed)")
            }
            for call in calls {
                for (request, result) in zip(call.requests, call.results) {
                    if let ended = storedBy[request.id], call.started > ended {
                        #expect(result.outcome == .exists, "seed \(seed): \(request.action) submitted again after it was stored → \(result.outcome)")
                    }
                }
            }
            let storedIDs = Set(try await bank.sql("SELECT id FROM ledger.transfers").map { try $0.decode(UUID.self, at: 0) })
            #expect(storedIDs == Set(stored.keys), "seed \(seed)")

            // The balances the reported successes imply; each hold resolved at most once.
            var expected: [UUID: Balances] = [:]
            var resolved: [UUID: String] = [:]
            for transfer in stored.values {
                switch transfer.kind {
                case .posted:
                    expected[transfer.debitAccountID, default: Balances()].debitsPosted += transfer.amount
                    expected[transfer.creditAccountID, default: Balances()].creditsPosted += transfer.amount
                case .pending:
                    expected[transfer.debitAccountID, default: Balances()].debitsPending += transfer.amount
                    expected[transfer.creditAccountID, default: Balances()].creditsPending += transfer.amount
                case .postPending, .voidPending:
                    let hold = try #require(transfer.pendingID.flatMap { stored[$0] }, "seed \(seed)")
                    #expect(resolved[hold.id] == nil, "seed \(seed): hold \(hold.id) resolved twice")
                    resolved[hold.id] = transfer.kind == .postPending ? "posted" : "voided"
                    #expect(transfer.amount <= hold.amount && transfer.debitAccountID == hold.debitAccountID
                            && transfer.creditAccountID == hold.creditAccountID, "seed \(seed)")
                    expected[hold.debitAccountID, default: Balances()].debitsPending -= hold.amount
                    expected[hold.creditAccountID, default: Balances()].creditsPending -= hold.amount
                    if transfer.kind == .postPending {
                        expected[transfer.debitAccountID, default: Balances()].debitsPosted += transfer.amount
                        expected[transfer.creditAccountID, default: Balances()].creditsPosted += transfer.amount
                    }
                }
            }
            let balances = try await bank.allBalances()
            for account in hot {
                #expect(balances[account] == expected[account, default: Balances()], "seed \(seed): account \(account)")
            }
            #expect(try await bank.resolutions() == resolved, "seed \(seed)")
            try await bank.expectSound("seed \(seed)")
            #expect(try await bank.count("SELECT count(*) FROM ledger.journal") == hot.count + stored.count, "seed \(seed)")
            let counts = Dictionary(grouping: outcomes, by: \.result.outcome).mapValues(\.count)
            print("ledger concurrency test: seed \(seed): " + counts.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key.rawValue)=\($0.value)" }.joined(separator: " "))
        } catch {
            Issue.record("seed \(seed) (LEDGER_CONCURRENCY_SEED=\(seed)): \(error)")
            throw error
        }
    }
}
