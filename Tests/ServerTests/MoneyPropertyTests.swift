import Foundation
import HTTPTypes
import Ledger
import Postgres
@testable import TechBank
import Testing
import TestSupport

/// Hostile tenants play random sequences of requests against the real HTTP app: accounts (and
/// forbidden kinds of them), transfers, holds, posts and voids of anyone's holds, atomic and
/// non-atomic batches, deposits and withdrawals, and two deals paid through escrow. Before each
/// request the test predicts its answer and its effect on every account from the ledger's rules
/// (`MoneyRun.predictTransfers` restates `Money.transfer` and `ledger.create_transfers`); after it,
/// every account in the database must be exactly as predicted, and:
///
/// 1. no response is a 5xx;
/// 2. no tenant's money (per currency: credits − debits posted, and debits and credits pending)
///    changes unless it acted, was paid by the actor, was the target of the operator's deposit or
///    withdrawal, or is a party, broker or sub-park of the deal acted on;
/// 3. per currency, the tenants' net posted money (credits − debits posted over all their
///    accounts) plus the bank's escrow account's equals the deposits minus the withdrawals made so
///    far, and the bank's settlement account nets exactly the opposite. Money in escrow is
///    pending: escrow nets zero and its pending credits are exactly the deals' funded (or
///    disputed) milestones. A tenant cannot pay into the bank's settlement or escrow accounts
///    (`code_reserved`), so nothing else reaches them;
/// 4. no account but the bank's settlement accounts can go below zero (debits posted + pending ≤
///    credits posted), and debits equal credits per currency.
///
/// Replay a failure with `TECHBANK_PROPERTY_SEED=<seed>` (printed at the start and in every
/// failure); change the length with `TECHBANK_PROPERTY_OPERATIONS=<n>`. Expiry stays exact: the
/// only holds that time out are made (with one second) before the random operations and waited
/// out; every other hold lives an hour or more.
@Suite("Money property: hostile tenants")
struct MoneyPropertyTests {
    @Test("hostile tenants playing random requests never move another tenant's money, mint money or overdraw an account")
    func hostileTenantsPlayingRandomRequests() async throws {
        let environment = ProcessInfo.processInfo.environment
        let seed = SeededGenerator.seed(from: "TECHBANK_PROPERTY_SEED")
        let operations = environment["TECHBANK_PROPERTY_OPERATIONS"].flatMap { Int($0) } ?? 1_000
        print("money property: seed \(seed), \(operations) operations (replay with TECHBANK_PROPERTY_SEED=\(seed))")
        let clock = ContinuousClock()
        let started = clock.now
        try await withAPI { api in
            var run = try await MoneyRun.start(api, seed: seed, operations: operations)
            do {
                try await run.play()
            } catch {
                Issue.record("seed \(seed) (TECHBANK_PROPERTY_SEED=\(seed)), operation \(run.index): \(error)\n\(run.trace())")
                throw error
            }
            if !run.failed {
                try await run.finish()
            }
            let elapsed = clock.now - started
            print(run.summary(elapsed: elapsed))
        }
    }
}

// MARK: Seeded randomness

/// The property test's draws, on the shared seeded generator.
extension SeededGenerator {
    /// 0 ..< n (n > 0).
    mutating func below(_ n: Int) -> Int { Int(next().multipliedFullWidth(by: UInt64(n)).high) }

    /// true `percent` times in 100.
    mutating func percent(_ percent: Int) -> Bool { below(100) < percent }

    /// A value in `range` (at most 2^62 wide).
    mutating func int(_ range: ClosedRange<Int64>) -> Int64 {
        range.lowerBound + Int64(next().multipliedFullWidth(by: UInt64(range.upperBound - range.lowerBound) + 1).high)
    }

    /// 1 … `max`, every power of two as likely as the next.
    mutating func logUniform(upTo max: Int64) -> Int64 {
        let bits = Int64(64 - max.leadingZeroBitCount)
        let top = int(0...(bits - 1))
        return Swift.min(max, int((Int64(1) << top)...((Int64(1) << (top + 1)) - 1)))
    }

    mutating func pick<T>(_ items: [T]) -> T? { items.isEmpty ? nil : items[below(items.count)] }

    /// One of `choices`, each as likely as its weight.
    mutating func weighted<T>(_ choices: [(Int, T)]) -> T {
        var roll = below(choices.reduce(0) { $0 + $1.0 })
        for (weight, choice) in choices {
            if roll < weight { return choice }
            roll -= weight
        }
        return choices[choices.count - 1].1
    }

    /// A UUID of `version` (RFC 9562 variant) drawn from the generator: ids replay with the seed.
    mutating func uuid(version: UInt8 = 4) -> UUID {
        var bytes = withUnsafeBytes(of: next().bigEndian, Array.init) + withUnsafeBytes(of: next().bigEndian, Array.init)
        bytes[6] = (bytes[6] & 0x0F) | (version << 4)
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        return UUID(uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                           bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]))
    }
}

// MARK: The ledger as the test sees it

/// The four running balances of an account (or a sum of accounts).
struct MoneyFour: Equatable, CustomStringConvertible {
    var dp: Int64 = 0
    var cp: Int64 = 0
    var dq: Int64 = 0
    var cq: Int64 = 0

    /// Credits minus debits posted: the money held.
    var net: Int64 { cp &- dp }
    /// What a debit may still take from an account that keeps debits within credits.
    var available: Int64 { cp &- dp &- dq }

    /// Sums wrap rather than trap: equal sums stay equal modulo 2^64 (no single balance can wrap, the database keeps each below 2^63).
    static func + (a: MoneyFour, b: MoneyFour) -> MoneyFour { MoneyFour(dp: a.dp &+ b.dp, cp: a.cp &+ b.cp, dq: a.dq &+ b.dq, cq: a.cq &+ b.cq) }

    /// What rule 2 compares: the money held and the pending amounts either way.
    var tenantView: [Int64] { [net, dq, cq] }
    var description: String { "net \(net) (dp \(dp) cp \(cp)) pending dq \(dq) cq \(cq)" }
}

/// One row of `ledger.accounts`.
struct MoneyAccountRow: Equatable {
    let id: UUID
    let owner: UUID
    let currency: String
    let code: String
    let debitsWithinCredits: Bool
    let creditsWithinDebits: Bool
    var balances: MoneyFour
    /// An inventor account's inventor (its metadata).
    let inventor: String?
}

/// One stored hold (a transfer of kind pending) and how it ended.
struct MoneyHoldRow: Equatable {
    let id: UUID
    let debit: UUID
    let credit: UUID
    let amount: Int64
    let currency: String
    let code: String
    let timeoutSeconds: Int32?
    /// Expired by the clock (its `expires_at` has passed), resolved or not.
    var expired: Bool
    /// posted, voided, expired, or nil while open.
    var resolution: String?
}

/// What `ledger.transfer_differences` compares, for predicting `exists` and `exists_with_different_fields`.
struct MoneyTransferFields: Equatable {
    let kind: String
    let debit: UUID?
    let credit: UUID?
    let amount: Int64?
    let currency: String?
    let code: String
    let pendingID: UUID?
    let timeoutSeconds: Int32?
}

/// Every account and every hold, read straight from the database.
struct MoneySnapshot {
    var accounts: [UUID: MoneyAccountRow] = [:]
    var holds: [UUID: MoneyHoldRow] = [:]

    static func read(_ pool: PostgresPool) async throws -> MoneySnapshot {
        try await pool.withConnection { connection in
            var snapshot = MoneySnapshot()
            for row in try await connection.query(
                """
                SELECT id, owner_id, currency, code, debits_must_not_exceed_credits, credits_must_not_exceed_debits,
                       debits_posted, credits_posted, debits_pending, credits_pending, metadata->>'inventor'
                  FROM ledger.accounts
                """) {
                let account = MoneyAccountRow(
                    id: try row.decode(UUID.self, at: 0), owner: try row.decode(UUID.self, at: 1), currency: try row.decode(String.self, at: 2),
                    code: try row.decode(String.self, at: 3), debitsWithinCredits: try row.decode(Bool.self, at: 4),
                    creditsWithinDebits: try row.decode(Bool.self, at: 5),
                    balances: MoneyFour(dp: try row.decode(Int64.self, at: 6), cp: try row.decode(Int64.self, at: 7),
                                        dq: try row.decode(Int64.self, at: 8), cq: try row.decode(Int64.self, at: 9)),
                    inventor: try row.decode(String?.self, at: 10))
                snapshot.accounts[account.id] = account
            }
            for row in try await connection.query(
                """
                SELECT t.id, t.debit_account_id, t.credit_account_id, t.amount, t.currency, t.code, t.timeout_seconds,
                       coalesce(t.expires_at <= now(), false), r.resolution
                  FROM ledger.transfers t LEFT JOIN ledger.pending_resolutions r ON r.pending_id = t.id
                 WHERE t.kind = 'pending'
                """) {
                let hold = MoneyHoldRow(
                    id: try row.decode(UUID.self, at: 0), debit: try row.decode(UUID.self, at: 1), credit: try row.decode(UUID.self, at: 2),
                    amount: try row.decode(Int64.self, at: 3), currency: try row.decode(String.self, at: 4), code: try row.decode(String.self, at: 5),
                    timeoutSeconds: try row.decode(Int32?.self, at: 6), expired: try row.decode(Bool.self, at: 7),
                    resolution: try row.decode(String?.self, at: 8))
                snapshot.holds[hold.id] = hold
            }
            return snapshot
        }
    }

    /// The sums of each owner's accounts, per currency.
    func totals() -> [UUID: [String: MoneyFour]] {
        MoneyRun.totals(accounts.values)
    }
}

// MARK: Requests

/// One transfer of a request: a posted transfer, a hold, or a hold's post or void.
enum MoneyElement: CustomStringConvertible {
    case post(id: UUID, debit: UUID, credit: UUID, amount: Int64, currency: String, code: String)
    case hold(id: UUID, debit: UUID, credit: UUID, amount: Int64, currency: String, code: String, timeoutSeconds: Int32?)
    case postPending(id: UUID, pending: UUID, amount: Int64?, code: String)
    case voidPending(id: UUID, pending: UUID, code: String)

    var id: UUID {
        switch self {
        case let .post(id, _, _, _, _, _), let .hold(id, _, _, _, _, _, _), let .postPending(id, _, _, _), let .voidPending(id, _, _): id
        }
    }

    var code: String {
        switch self {
        case let .post(_, _, _, _, _, code), let .hold(_, _, _, _, _, code, _), let .postPending(_, _, _, code), let .voidPending(_, _, code): code
        }
    }

    /// The amount sent, if any.
    var amount: Int64? {
        switch self {
        case let .post(_, _, _, amount, _, _), let .hold(_, _, _, amount, _, _, _): amount
        case let .postPending(_, _, amount, _): amount
        case .voidPending: nil
        }
    }

    /// The request body.
    var body: [String: Any] {
        var body: [String: Any] = ["id": id.uuidString.lowercased()]
        switch self {
        case let .post(_, debit, credit, amount, currency, _), let .hold(_, debit, credit, amount, currency, _, _):
            body["debit_account_id"] = debit.uuidString.lowercased()
            body["credit_account_id"] = credit.uuidString.lowercased()
            body["amount"] = amount
            body["currency"] = currency
            if case let .hold(_, _, _, _, _, _, timeout) = self {
                body["pending"] = true
                if let timeout { body["timeout_seconds"] = Int(timeout) }
            }
        case let .postPending(_, pending, amount, _):
            body["post_pending_id"] = pending.uuidString.lowercased()
            if let amount { body["amount"] = amount }
        case let .voidPending(_, pending, _):
            body["void_pending_id"] = pending.uuidString.lowercased()
        }
        if code != "transfer" { body["code"] = code }
        return body
    }

    var description: String {
        let short = { (id: UUID) in String(id.uuidString.lowercased().prefix(8)) }
        let code = code == "transfer" ? "" : " code \(code)"
        return switch self {
        case let .post(id, debit, credit, amount, currency, _): "post \(short(id)) \(short(debit))→\(short(credit)) \(amount) \(currency)\(code)"
        case let .hold(id, debit, credit, amount, currency, _, timeout):
            "hold \(short(id)) \(short(debit))→\(short(credit)) \(amount) \(currency)\(timeout.map { " timeout \($0)s" } ?? "")\(code)"
        case let .postPending(id, pending, amount, _): "post-pending \(short(id)) of \(short(pending))\(amount.map { " amount \($0)" } ?? "")\(code)"
        case let .voidPending(id, pending, _): "void-pending \(short(id)) of \(short(pending))\(code)"
        }
    }
}

/// Who sends a request.
enum MoneyActor: Equatable {
    case tenant(Int)
    case committee
    case bank
}

/// A deal action.
enum MoneyDealAction {
    case fund
    case release(Int)
    case dispute(Int)
    case resolve(Int, refund: Bool)
    case terminate

    var path: String {
        switch self {
        case .fund: "escrow"
        case .release(let number): "milestones/\(number)/release"
        case .dispute(let number): "milestones/\(number)/dispute"
        case .resolve(let number, _): "milestones/\(number)/resolve"
        case .terminate: "cancel"
        }
    }

    var body: [String: Any]? {
        switch self {
        case .fund, .release, .terminate: nil
        case .dispute: ["reason": "The delivery does not meet the acceptance criteria."]
        case .resolve(_, let refund): ["decision": refund ? "refund" : "release", "reason": "Decided on the evidence."]
        }
    }

    /// The kind counted in the summary.
    var kind: String {
        switch self {
        case .fund: "deal: fund escrow"
        case .release: "deal: release milestone"
        case .dispute: "deal: dispute milestone"
        case .resolve: "deal: committee resolves"
        case .terminate: "deal: terminate"
        }
    }
}

/// One random operation.
enum MoneyOperation {
    case openAccount(MoneyActor, body: [String: Any], opens: MoneyAccountRow?)
    /// `batch` nil: one `POST /v1/transfers`; else `POST /v1/transfers/batch` with `atomic: batch`.
    case transfers(MoneyActor, [MoneyElement], batch: Bool?)
    case payment(MoneyActor, deposit: Bool, organization: String, tenant: Int?, amount: Int64, currency: String, reference: String)
    case deal(MoneyActor, deal: Int, MoneyDealAction)
}

/// An operation as the generator made it: whether it is meant as an attack or a mistake, and what it is.
struct MoneyPlan {
    let operation: MoneyOperation
    var hostile: Bool
    var note: String
}

/// A deal of the run and what the test expects of it.
struct MoneyDeal {
    let id: String
    let uuid: UUID
    let buyer: Int
    let seller: Int
    let park: Int
    let broker: Int?
    let brokerBP: Int64
    let parkBP: Int64
    let upfront: Int64
    let milestones: [Int64]
    var status = "signed"
    var milestoneStatus: [String]

    var total: Int64 { upfront + milestones.reduce(0, +) }
    /// The tenants whose money the deal moves.
    var parties: Set<Int> { Set([buyer, seller, park] + (broker.map { [$0] } ?? [])) }

    /// How a payment to the seller's side is split: `floor(amount × bp / 10000)` to the broker and
    /// the sub-park, the rest to the seller (who keeps it, its inventors' accounts included).
    func split(_ amount: Int64) -> [(Int, Int64)] {
        let brokerFee = broker == nil ? 0 : amount * brokerBP / 10_000
        let parkFee = amount * parkBP / 10_000
        return [(seller, amount - brokerFee - parkFee), (park, parkFee)] + (broker.map { [($0, brokerFee)] } ?? [])
    }
}

// MARK: Prediction

/// What one request should answer and leave behind.
struct MoneyExpectation {
    /// Statuses the response may have.
    var statuses: Set<Int>
    /// The problem code of a refusal, when it is certain.
    var problemCode: String?
    /// For a batch past the checks before the ledger: every element's outcome.
    var outcomes: [String]?
    /// Every account and hold as they must be afterwards.
    var accounts: [UUID: MoneyAccountRow]
    var holds: [UUID: MoneyHoldRow]
    /// Owners paid by a deal step: their accounts in `splitCurrency` are checked by their totals
    /// (each gains `splitNet`), not one by one, and may be opened by the step.
    var splitOwners: Set<UUID> = []
    var splitCurrency = "CNY"
    var splitNet: [UUID: Int64] = [:]
    /// Transfers this request stores (for predicting later id clashes).
    var stored: [UUID: MoneyTransferFields] = [:]
    var storedIDs: [UUID] = []
    /// Holds this request makes, in the order it makes them.
    var newHolds: [UUID] = []
    /// Deposits and withdrawals the request makes, per currency.
    var deposited: [String: Int64] = [:]
    var withdrawn: [String: Int64] = [:]
    /// Whether the request was meant as an attack or a mistake (counted in the summary).
    var hostile: Bool
    /// A one-line account of what was sent and predicted.
    var note = ""

    var summary: String {
        if let outcomes { return "200 \(outcomes.joined(separator: ","))" }
        return statuses.sorted().map(String.init).joined(separator: "/") + (problemCode.map { " \($0)" } ?? "")
    }
}

// MARK: The run

/// One run: the tenants, the generator, the prediction and the checks.
struct MoneyRun {
    let api: API
    let seed: UInt64
    let operations: Int
    var rng: SeededGenerator
    /// The tenants holding money: two enterprises, two institutes, a broker and a sub-park.
    let tenants: [(name: String, org: Org, id: UUID)]
    let committee: Org
    let bank: UUID
    var deals: [MoneyDeal]

    /// Accounts and holds in the order they appeared (never by id: ids of server-made objects differ between runs).
    var accountOrder: [UUID] = []
    var holdOrder: [UUID] = []
    /// Every transfer a tenant stored, by id, and their ids in the order they were made.
    var stored: [UUID: MoneyTransferFields] = [:]
    var storedIDs: [UUID] = []
    var usedReferences: [String] = []
    var hugeDeposits = 0

    /// The database as of the last check.
    var current = MoneySnapshot()
    /// The model: each tenant's money per currency (net posted, pending debits, pending credits), from
    /// deposits, withdrawals, its own transfers and the transfers paid to it, and its deals.
    var model: [Int: [String: MoneyFour]] = [:]
    var deposited: [String: Int64] = [:]
    var withdrawn: [String: Int64] = [:]

    var index = 0
    var failed = false
    var log: [String] = []
    var counts: [String: (sent: Int, hostile: Int, refused: Int)] = [:]
    var refusedElements = 0
    /// Batches that passed the checks before the ledger (answered 200 with one outcome per element).
    var batchesPastChecks = 0
    var outcomesSeen: [String: Int] = [:]

    static let tenantCodes = ["transfer", "transfer", "transfer", "invoice", "payroll", "licence_fee"]
    static let maxAmount: Int64 = 1 << 53

    // MARK: Setting up

    static func start(_ api: API, seed: UInt64, operations: Int) async throws -> MoneyRun {
        let f = try await api.dealFixture()
        let second = try await api.createOrganization("Hangzhou Motors", kind: "enterprise")
        let bank = try #require(UUID(uuidString: try await api.operatorID()))
        let tenants: [(String, Org)] = [
            ("enterprise A", f.buyer), ("enterprise B", second), ("institute", f.seller), ("broker", f.broker),
            ("outsider institute", f.outsider), ("sub-park", f.park),
        ]
        // Deal 0: the institute sells to enterprise A, 1 % to the sub-park. Deal 1: the broker's
        // match sells to enterprise B, 5 % to the broker and 2 % to the sub-park.
        let firstTerms = dealBody(upfront: 100_000, milestones: [dealMilestone("Samples", 250_000), dealMilestone("Pilot line", 350_000),
                                                                  dealMilestone("Handover", 400_000), dealMilestone("Training", 150_000),
                                                                  dealMilestone("Warranty", 75_003)], subParkFeeBP: 100)
        let secondTerms = dealBody(upfront: 50_000, milestones: [dealMilestone("Design", 120_000), dealMilestone("Prototype", 180_000),
                                                                  dealMilestone("Tooling", 200_000), dealMilestone("Acceptance", 90_001)],
                                   brokerFeeBP: 500, subParkFeeBP: 200)
        let secondDeal = try await api.brokerDealID(f, buyer: second, secondTerms)
        try await api.proposeAndSign(secondDeal, f, buyer: second)
        // Signing licenses the technology, so the first deal is on another one of the institute's.
        let otherTechnology = try await api.listedDealTechnology(as: f.seller, "Closed-loop cathode relithiation")
        let first = try await api.sellerDealID(f, technologyID: otherTechnology, firstTerms)
        try await api.proposeAndSign(first, f)
        let deals = [
            MoneyDeal(id: first, uuid: try #require(UUID(uuidString: first)), buyer: 0, seller: 2, park: 5, broker: nil, brokerBP: 0, parkBP: 100,
                      upfront: 100_000, milestones: [250_000, 350_000, 400_000, 150_000, 75_003], milestoneStatus: Array(repeating: "scheduled", count: 5)),
            MoneyDeal(id: secondDeal, uuid: try #require(UUID(uuidString: secondDeal)), buyer: 1, seller: 2, park: 5, broker: 3, brokerBP: 500,
                      parkBP: 200, upfront: 50_000, milestones: [120_000, 180_000, 200_000, 90_001],
                      milestoneStatus: Array(repeating: "scheduled", count: 4)),
        ]
        var run = MoneyRun(api: api, seed: seed, operations: operations, rng: SeededGenerator(seed: seed),
                           tenants: try tenants.map { (name: $0.0, org: $0.1, id: try #require(UUID(uuidString: $0.1.id))) }, committee: f.committee, bank: bank,
                           deals: deals)
        run.current = try await MoneySnapshot.read(api.pool)
        run.check(run.current.accounts.isEmpty && run.current.holds.isEmpty, "the ledger is not empty before the run")
        return run
    }

    /// The owner's tenant index (nil for the bank or anyone else).
    func tenantIndex(_ owner: UUID) -> Int? { tenants.firstIndex { $0.id == owner } }

    func ownerName(_ owner: UUID) -> String { tenantIndex(owner).map { tenants[$0].name } ?? (owner == bank ? "bank" : "stranger \(owner)") }

    func actorName(_ actor: MoneyActor) -> String {
        switch actor {
        case .tenant(let index): tenants[index].name
        case .committee: "committee"
        case .bank: "operator"
        }
    }

    func key(_ actor: MoneyActor) -> String {
        switch actor {
        case .tenant(let index): tenants[index].org.key
        case .committee: committee.key
        case .bank: operatorKey
        }
    }

    /// The organization an actor acts as (the principal the ledger checks against).
    func actorID(_ actor: MoneyActor) -> UUID? {
        switch actor {
        case .tenant(let index): tenants[index].id
        case .committee: UUID(uuidString: committee.id)
        case .bank: nil
        }
    }

    func operating(_ tenant: Int, _ currency: String) -> UUID { AccountRole.operating(tenants[tenant].id).account(currency).id }
    func settlement(_ currency: String) -> UUID { AccountRole.settlement(bank: bank).account(currency).id }
    func escrow(_ currency: String) -> UUID { AccountRole.escrow(bank: bank).account(currency).id }

    // MARK: Playing

    mutating func play() async throws {
        // Every tenant gets money, an account of its own and a one-second hold that then expires.
        for tenant in tenants.indices {
            try await step(deposit(to: tenant, amount: rng.int(500_000...5_000_000), currency: "CNY", hostileChance: 0))
            if failed { return }
        }
        for tenant in tenants.indices {
            try await step(openAccount(.tenant(tenant), hostile: false))
            if failed { return }
        }
        for tenant in tenants.indices {
            let mine = accounts(of: tenant, currency: "CNY")
            guard let debit = rng.pick(mine.filter { current.accounts[$0]!.balances.available > 0 }) ?? mine.first,
                  let credit = rng.pick(accountOrder.filter { $0 != debit && current.accounts[$0]?.currency == "CNY" && current.accounts[$0]?.code != "settlement" })
            else { continue }
            let amount = rng.int(1...max(1, current.accounts[debit]!.balances.available / 10))
            let hold = MoneyElement.hold(id: rng.uuid(), debit: debit, credit: credit, amount: amount, currency: "CNY", code: "transfer", timeoutSeconds: 1)
            try await step(MoneyPlan(operation: .transfers(.tenant(tenant), [hold], batch: nil), hostile: false, note: "\(hold) (to expire)"))
            if failed { return }
        }
        try await Task.sleep(for: .milliseconds(1_500))
        current = try await MoneySnapshot.read(api.pool)
        check(current.holds.values.allSatisfy { $0.timeoutSeconds != 1 || $0.expired }, "one-second holds have not expired after 1.5 s")
        let setUp = index
        while index < setUp + operations, !failed {
            try await step(randomOperation())
        }
    }

    /// Runs one operation: predicts it, sends it, and checks the answer and the whole ledger.
    mutating func step(_ plan: MoneyPlan) async throws {
        let operation = plan.operation
        let pre = current
        var expectation = predict(operation, pre)
        expectation.hostile = plan.hostile
        expectation.note = "\(actorName(Self.actor(operation))): \(plan.hostile ? "[hostile] " : "")\(plan.note) → predicted \(expectation.summary)"
        let kind = Self.kind(operation)
        log.append("#\(index) \(expectation.note)")
        var refused = false
        switch operation {
        case let .openAccount(actor, body, _):
            let response = try await api.call(.post, "/v1/accounts", key: key(actor), json: body)
            refused = checkResponse(response, expectation)
        case let .transfers(actor, elements, batch):
            if let atomic = batch {
                let response = try await api.call(.post, "/v1/transfers/batch", key: key(actor), json: ["atomic": atomic, "transfers": elements.map(\.body)])
                refused = checkResponse(response, expectation)
                if response.status == .ok {
                    batchesPastChecks += 1
                    let outcomes = response.json["results"].array.map { $0["outcome"].string ?? "?" }
                    for outcome in outcomes { outcomesSeen[outcome, default: 0] += 1 }
                    refusedElements += outcomes.filter { $0 != "ok" && $0 != "exists" }.count
                    refused = refused || outcomes.contains { $0 != "ok" && $0 != "exists" }
                    if let predicted = expectation.outcomes {
                        check(outcomes == predicted, "batch outcomes \(outcomes), predicted \(predicted): \(response)")
                    }
                }
            } else {
                let response = try await api.call(.post, "/v1/transfers", key: key(actor), json: elements[0].body)
                refused = checkResponse(response, expectation)
                outcomesSeen[response.status.code < 300 ? (response.status == .created ? "ok" : "exists") : (response.code ?? "?"), default: 0] += 1
            }
        case let .payment(actor, deposit, organization, _, amount, currency, reference):
            let response = try await api.call(.post, deposit ? "/v1/deposits" : "/v1/withdrawals", key: key(actor), json: [
                "organization_id": organization, "amount": amount, "currency": currency, "external_ref": reference,
            ])
            refused = checkResponse(response, expectation)
            if response.status == .created { usedReferences.append(reference) }
        case let .deal(actor, deal, action):
            let response = try await api.call(.post, "/v1/deals/\(deals[deal].id)/\(action.path)", key: key(actor), json: action.body)
            refused = checkResponse(response, expectation)
            if response.status == .ok { applyDeal(deal, action) }
        }
        var count = counts[kind] ?? (0, 0, 0)
        count.sent += 1
        if expectation.hostile { count.hostile += 1 }
        if refused { count.refused += 1 }
        counts[kind] = count
        let post = try await MoneySnapshot.read(api.pool)
        checkLedger(pre: pre, post: post, expectation, operation)
        current = post
        index += 1
    }

    /// The kind of an operation, as the summary counts it.
    static func kind(_ operation: MoneyOperation) -> String {
        switch operation {
        case .openAccount: "open account"
        case let .transfers(_, elements, batch):
            switch batch {
            case true?: "atomic batch"
            case false?: "non-atomic batch"
            case nil:
                switch elements[0] {
                case .post: "transfer"
                case .hold: "hold"
                case .postPending: "post hold"
                case .voidPending: "void hold"
                }
            }
        case let .payment(actor, deposit, _, _, _, _, _): actor == .bank ? (deposit ? "deposit" : "withdrawal") : "payment by a non-operator"
        case let .deal(_, _, action): action.kind
        }
    }

    static func actor(_ operation: MoneyOperation) -> MoneyActor {
        switch operation {
        case let .openAccount(actor, _, _), let .transfers(actor, _, _), let .payment(actor, _, _, _, _, _, _), let .deal(actor, _, _): actor
        }
    }

    /// Records a failure, with the seed to replay it, and stops the run.
    mutating func fail(_ message: String, sourceLocation: SourceLocation = #_sourceLocation) {
        Issue.record("seed \(seed) (replay with TECHBANK_PROPERTY_SEED=\(seed)), operation #\(index): \(message)\n\(trace())", sourceLocation: sourceLocation)
        failed = true
    }

    mutating func check(_ condition: Bool, _ message: String, sourceLocation: SourceLocation = #_sourceLocation) {
        if !condition { fail(message, sourceLocation: sourceLocation) }
    }

    /// The operations leading to the current one.
    func trace() -> String {
        "last operations (seed \(seed)):\n" + log.suffix(25).joined(separator: "\n")
    }

    /// Checks the answer against the prediction; returns whether the request was refused.
    mutating func checkResponse(_ response: APIResponse, _ expectation: MoneyExpectation) -> Bool {
        check(response.status.code < 500, "5xx answer: \(response)")
        check(expectation.statuses.contains(response.status.code),
              "answered \(response.status.code), predicted \(expectation.statuses.sorted()) — \(expectation.note): \(response)")
        if let code = expectation.problemCode, response.status.code >= 400 {
            check(response.code == code, "refused with \(response.code ?? "no code"), predicted \(code) — \(expectation.note): \(response)")
        }
        return response.status.code >= 400
    }

    // MARK: Checking the whole ledger

    /// Checks every account and hold against the prediction, then rules 2 to 4 and the model.
    /// Runs after a wrong answer too, to show what the request did.
    mutating func checkLedger(pre: MoneySnapshot, post: MoneySnapshot, _ expectation: MoneyExpectation, _ operation: MoneyOperation) {
        // Every account as predicted (the deal's payees by their totals), no account from nowhere.
        for account in post.accounts.values {
            if expectation.splitOwners.contains(account.owner) && account.currency == expectation.splitCurrency {
                guard expectation.accounts[account.id] == nil else { continue }
                check(["operating", "inventor"].contains(account.code) && account.debitsWithinCredits,
                      "a deal opened \(account.code) account \(account.id) for \(ownerName(account.owner))")
                continue
            }
            guard let expected = expectation.accounts[account.id] else {
                fail("account \(account.id) of \(ownerName(account.owner)) (\(account.code), \(account.currency), \(account.balances)) appeared — \(expectation.note)")
                return
            }
            if account != expected {
                fail("account \(account.id) of \(ownerName(account.owner)) (\(account.code)): \(account.balances), predicted \(expected.balances) — \(expectation.note)")
            }
        }
        for id in expectation.accounts.keys where post.accounts[id] == nil {
            fail("account \(id) predicted but missing — \(expectation.note)")
        }
        // Every hold as predicted.
        for hold in post.holds.values {
            guard let expected = expectation.holds[hold.id] else {
                fail("hold \(hold.id) (\(hold.amount) from \(ownerName(pre.accounts[hold.debit]?.owner ?? post.accounts[hold.debit]?.owner ?? bank))) appeared — \(expectation.note)")
                return
            }
            if !(hold.resolution == expected.resolution && hold.amount == expected.amount && hold.debit == expected.debit && hold.credit == expected.credit) { fail(
                  "hold \(hold.id): \(hold.resolution ?? "open"), predicted \(expected.resolution ?? "open") — \(expectation.note)") }
        }
        check(expectation.holds.keys.allSatisfy { post.holds[$0] != nil }, "a predicted hold is missing — \(expectation.note)")

        // Rule 2, on its own (not from the prediction): the money of a tenant that neither acted,
        // nor is the payee of the actor's own money or holds, nor the target of the operator's
        // payment, nor a party of the deal acted on, did not change.
        let preTotals = pre.totals()
        let postTotals = post.totals()
        var involved: Set<Int> = []
        switch operation {
        case .openAccount(.tenant(let index), _, _):
            involved.insert(index)
        case let .transfers(actor, elements, _):
            guard case .tenant(let index) = actor else { break }
            involved.insert(index)
            for element in elements {
                switch element {
                case let .post(_, debit, credit, _, _, _), let .hold(_, debit, credit, _, _, _, _):
                    if pre.accounts[debit]?.owner == tenants[index].id, let payee = pre.accounts[credit].flatMap({ tenantIndex($0.owner) }) { involved.insert(payee) }
                case let .postPending(_, pending, _, _), let .voidPending(_, pending, _):
                    // A hold of its own: stored, or declared (on its own account) earlier in the request.
                    let declared = elements.lazy.compactMap { if case let .hold(id, debit, credit, _, _, _, _) = $0, id == pending { (debit, credit) } else { nil } }.first
                    guard let (debit, credit) = pre.holds[pending].map({ ($0.debit, $0.credit) }) ?? declared, pre.accounts[debit]?.owner == tenants[index].id else { continue }
                    if let payee = pre.accounts[credit].flatMap({ tenantIndex($0.owner) }) { involved.insert(payee) }
                }
            }
        case let .payment(_, _, _, tenant, _, _, _):
            if let tenant { involved.insert(tenant) }
        case let .deal(actor, deal, _):
            if case .tenant(let index) = actor { involved.insert(index) }
            involved.formUnion(deals[deal].parties)
        default:
            break
        }
        let expectedTotals = Self.totals(expectation.accounts.values.filter { !(expectation.splitOwners.contains($0.owner) && $0.currency == expectation.splitCurrency) })
        for tenant in tenants.indices where !involved.contains(tenant) {
            let owner = tenants[tenant].id
            for currency in Set((preTotals[owner] ?? [:]).keys).union((postTotals[owner] ?? [:]).keys) {
                let before = preTotals[owner]?[currency] ?? MoneyFour()
                let after = postTotals[owner]?[currency] ?? MoneyFour()
                check(before.tenantView == after.tenantView,
                      "\(tenants[tenant].name), not involved, changed in \(currency): \(before) → \(after) — \(expectation.note)")
            }
        }

        // The model: each tenant's money follows from its deposits, withdrawals, transfers and deals.
        for (currency, amount) in expectation.deposited { deposited[currency, default: 0] += amount }
        for (currency, amount) in expectation.withdrawn { withdrawn[currency, default: 0] += amount }
        for tenant in tenants.indices {
            let owner = tenants[tenant].id
            for (currency, after) in expectedTotals[owner] ?? [:] {
                let before = preTotals[owner]?[currency] ?? MoneyFour()
                model[tenant, default: [:]][currency, default: MoneyFour()] = (model[tenant]?[currency] ?? MoneyFour())
                    + MoneyFour(dp: 0, cp: after.net - before.net, dq: after.dq - before.dq, cq: after.cq - before.cq)
            }
            if expectation.splitOwners.contains(owner) {
                let before = preTotals[owner]?[expectation.splitCurrency] ?? MoneyFour()
                let after = postTotals[owner]?[expectation.splitCurrency] ?? MoneyFour()
                let paid = expectation.splitNet[owner] ?? 0
                check(after.net - before.net == paid && after.dq == before.dq && after.cq == before.cq,
                      "\(tenants[tenant].name) was paid \(after.net - before.net) by the deal (pending \(before.dq)/\(before.cq) → \(after.dq)/\(after.cq)), predicted \(paid) — \(expectation.note)")
                model[tenant, default: [:]][expectation.splitCurrency, default: MoneyFour()].cp += paid
            }
            for currency in Set((model[tenant] ?? [:]).keys).union((postTotals[owner] ?? [:]).keys) {
                let modelled = model[tenant]?[currency] ?? MoneyFour()
                let observed = postTotals[owner]?[currency] ?? MoneyFour()
                check(modelled.tenantView == observed.tenantView,
                      "\(tenants[tenant].name) holds \(observed) in \(currency); the model says net \(modelled.net), pending dq \(modelled.dq) cq \(modelled.cq) — \(expectation.note)")
            }
        }

        // Rule 3: tenants' money plus escrow's is what came in minus what went out, and settlement
        // mirrors it; escrow's own money is only what tenants paid into it, the rest is pending:
        // the deals' funded milestones (and tenants' holds in its favour).
        for currency in Set(post.accounts.values.map(\.currency)) {
            let tenantsNet = post.accounts.values.filter { $0.currency == currency && tenantIndex($0.owner) != nil }.reduce(Int64(0)) { $0 + $1.balances.net }
            let escrowAccount = post.accounts[escrow(currency)]?.balances ?? MoneyFour()
            let settlementAccount = post.accounts[settlement(currency)]?.balances ?? MoneyFour()
            let inflow = (deposited[currency] ?? 0) - (withdrawn[currency] ?? 0)
            check(tenantsNet + escrowAccount.net == inflow,
                  "\(currency): tenants hold \(tenantsNet) and escrow \(escrowAccount.net), but deposits − withdrawals = \(inflow) — \(expectation.note)")
            check(settlementAccount.net == -inflow, "\(currency): settlement nets \(settlementAccount.net), expected \(-inflow) — \(expectation.note)")
            check(escrowAccount.net == 0, "\(currency): escrow nets \(escrowAccount.net), but holds no money of its own — \(expectation.note)")
            let openHolds = post.holds.values.filter { $0.resolution == nil && $0.credit == escrow(currency) }
            let escrowHolds = openHolds.filter { $0.code == MoneyModel.BankCode.escrowFund.rawValue }.reduce(Int64(0)) { $0 + $1.amount }
            check(escrowAccount.cq == openHolds.reduce(Int64(0)) { $0 + $1.amount } && escrowAccount.dq == 0,
                  "\(currency): escrow has \(escrowAccount.cq) pending credits, \(escrowAccount.dq) pending debits; the open holds in its favour are \(openHolds.map(\.amount)) — \(expectation.note)")
            let held = deals.reduce(Int64(0)) { sum, deal in
                sum + zip(deal.milestones, deal.milestoneStatus).filter { ["funded", "disputed"].contains($0.1) }.reduce(0) { $0 + $1.0 }
            }
            check(escrowHolds == (currency == "CNY" ? held : 0),
                  "\(currency): escrow holds \(escrowHolds) for deals, the deals' funded milestones are \(held) — \(expectation.note)")
            let all = post.accounts.values.filter { $0.currency == currency }.reduce(MoneyFour()) { $0 + $1.balances }
            check(all.dp == all.cp && all.dq == all.cq, "\(currency): debits and credits differ: \(all) — \(expectation.note)")
            let strangers = post.accounts.values.filter { $0.currency == currency && tenantIndex($0.owner) == nil && $0.owner != bank }
            check(strangers.isEmpty, "accounts owned by neither a tenant nor the bank: \(strangers.map(\.id)) — \(expectation.note)")
        }
        // Rule 4: nothing but the bank's settlement accounts below zero.
        for account in post.accounts.values {
            let isSettlement = account.owner == bank && account.code == "settlement"
            if !isSettlement && !(account.debitsWithinCredits && !account.creditsWithinDebits) {
                fail("account \(account.id) of \(ownerName(account.owner)) (\(account.code)) may go below zero — \(expectation.note)")
            }
            if !isSettlement && account.balances.dp + account.balances.dq > account.balances.cp {
                fail("account \(account.id) of \(ownerName(account.owner)) (\(account.code)) is overdrawn: \(account.balances) — \(expectation.note)")
            }
        }
        guard !failed else { return }

        // Remember what appeared, in an order that replays with the seed.
        let known = Set(accountOrder)
        let fresh = post.accounts.values.filter { !known.contains($0.id) }.sorted { a, b in
            (tenantIndex(a.owner) ?? -1, a.currency, a.code, a.inventor ?? "") < (tenantIndex(b.owner) ?? -1, b.currency, b.code, b.inventor ?? "")
        }
        accountOrder += fresh.map(\.id)
        let knownHolds = Set(holdOrder)
        holdOrder += expectation.newHolds.filter { !knownHolds.contains($0) }
        storedIDs += expectation.storedIDs.filter { stored[$0] == nil }
        stored.merge(expectation.stored) { $1 }
    }

    static func totals(_ accounts: some Sequence<MoneyAccountRow>) -> [UUID: [String: MoneyFour]] {
        var totals: [UUID: [String: MoneyFour]] = [:]
        for account in accounts { totals[account.owner, default: [:]][account.currency] = (totals[account.owner]?[account.currency] ?? MoneyFour()) + account.balances }
        return totals
    }
}

// MARK: Predicting

extension MoneyRun {
    static let refusals: Set<Int> = [403, 404, 409, 422]
    /// The codes a tenant may neither use nor credit an account of, nor resolve a hold of.
    static let reservedCodes = Set(MoneyModel.BankCode.allCases.map(\.rawValue)).union(MoneyModel.bankHeldAccountCodes)

    /// What `operation` must answer and leave behind, from the state before it.
    func predict(_ operation: MoneyOperation, _ pre: MoneySnapshot) -> MoneyExpectation {
        var e = MoneyExpectation(statuses: Self.refusals, accounts: pre.accounts, holds: pre.holds, hostile: false)
        switch operation {
        case let .openAccount(_, _, opens):
            guard let opens else { break }
            if let existing = pre.accounts[opens.id] {
                e.statuses = existing == opens ? [200] : [409]
            } else {
                e.statuses = [201]
                e.accounts[opens.id] = opens
            }
        case let .transfers(actor, elements, batch):
            predictTransfers(actor, elements, atomic: batch ?? true, single: batch == nil, pre, &e)
        case let .payment(actor, deposit, _, tenant, amount, currency, reference):
            guard actor == .bank else { e.statuses = [403]; e.problemCode = "forbidden"; break }
            guard (1...Self.maxAmount).contains(amount), let tenant else { e.statuses = [422]; e.problemCode = "validation_failed"; break }
            guard !usedReferences.contains(reference) else { e.statuses = [409]; e.problemCode = "conflict"; break }
            let account = operating(tenant, currency)
            let available = pre.accounts[account]?.balances.available ?? 0
            guard deposit || amount <= available else { e.statuses = [422]; e.problemCode = "exceeds_credits"; break }
            e.statuses = [201]
            openOnDemand(&e, account, owner: tenants[tenant].id, currency: currency, code: "operating", withinCredits: true)
            openOnDemand(&e, settlement(currency), owner: bank, currency: currency, code: "settlement", withinCredits: false)
            if deposit {
                e.accounts[account]!.balances.cp += amount
                e.accounts[settlement(currency)]!.balances.dp += amount
                e.deposited[currency] = amount
            } else {
                e.accounts[account]!.balances.dp += amount
                e.accounts[settlement(currency)]!.balances.cp += amount
                e.withdrawn[currency] = amount
            }
        case let .deal(actor, index, action):
            predictDeal(actor, deals[index], action, pre, &e)
        }
        return e
    }

    /// Adds the zero account the bank opens on demand, unless it exists.
    func openOnDemand(_ e: inout MoneyExpectation, _ id: UUID, owner: UUID, currency: String, code: String, withinCredits: Bool) {
        guard e.accounts[id] == nil else { return }
        e.accounts[id] = MoneyAccountRow(id: id, owner: owner, currency: currency, code: code, debitsWithinCredits: withinCredits,
                                         creditsWithinDebits: false, balances: MoneyFour(), inventor: nil)
    }

    /// `Money.transfer` and `ledger.create_transfers`, restated: the checks before the ledger
    /// refuse the whole request; then every element in order against the balances so far, an
    /// atomic batch rolled back at its first failure.
    func predictTransfers(_ actor: MoneyActor, _ elements: [MoneyElement], atomic: Bool, single: Bool, _ pre: MoneySnapshot, _ e: inout MoneyExpectation) {
        let principal = actorID(actor)
        // The controller: amounts of 1 to 2^53.
        guard elements.allSatisfy({ $0.amount.map { (1...Self.maxAmount).contains($0) } ?? true }) else {
            e.statuses = [422]; e.problemCode = "validation_failed"; return
        }
        // Money.transfer: client ids, no bank codes, money only out of the caller's accounts, holds only its own and not the bank's.
        var checked: Set<UUID> = []
        for (position, element) in elements.enumerated() {
            var passes = MoneyModel.isClientID(element.id) && (principal == nil || !Self.reservedCodes.contains(element.code))
            switch element {
            case let .post(_, debit, _, _, _, _), let .hold(_, debit, _, _, _, _, _):
                if passes, checked.insert(debit).inserted { passes = pre.accounts[debit].map { principal == nil || $0.owner == principal } ?? false }
            case let .postPending(_, pending, _, _), let .voidPending(_, pending, _):
                if let hold = pre.holds[pending] {
                    passes = passes && pre.accounts[hold.debit].map { principal == nil || $0.owner == principal } ?? false
                    passes = passes && (principal == nil || !Self.reservedCodes.contains(hold.code))
                } else {
                    passes = passes && elements[..<position].contains { if case let .hold(id, _, _, _, _, _, _) = $0 { id == pending } else { false } }
                }
            }
            guard passes else { e.statuses = [403, 404, 422]; return }
        }
        // The ledger.
        let before = (e.accounts, e.holds)
        var stored = self.stored
        var madeHere: Set<UUID> = []
        var outcomes: [String] = []
        for element in elements {
            var outcome: String
            var fields: MoneyTransferFields
            switch element {
            case let .post(id, debit, credit, amount, currency, code), let .hold(id, debit, credit, amount, currency, code, _):
                var timeout: Int32?
                var kind = "posted"
                if case let .hold(_, _, _, _, _, _, seconds) = element { kind = "pending"; timeout = seconds }
                fields = MoneyTransferFields(kind: kind, debit: debit, credit: credit, amount: amount, currency: currency, code: code, pendingID: nil, timeoutSeconds: timeout)
                let d = e.accounts[debit], c = e.accounts[credit]
                if principal != nil && Self.reservedCodes.contains(code) { outcome = "code_reserved" }
                else if debit == credit { outcome = "accounts_must_be_different" }
                else if d == nil || (principal != nil && d!.owner != principal) { outcome = "account_not_found" }
                else if c == nil { outcome = "account_not_found" }
                else if principal != nil && Self.reservedCodes.contains(c!.code) { outcome = "code_reserved" }
                else if d!.currency != currency || c!.currency != currency { outcome = "currency_mismatch" }
                else if d!.debitsWithinCredits && amount > d!.balances.available { outcome = "exceeds_credits" }
                else if c!.creditsWithinDebits && amount > c!.balances.dp - c!.balances.cp - c!.balances.cq { outcome = "exceeds_debits" }
                else if amount > Int64.max - d!.balances.dp - d!.balances.dq { outcome = "overflows_debits" }
                else if amount > Int64.max - c!.balances.cp - c!.balances.cq { outcome = "overflows_credits" }
                else if stored[id] != nil { outcome = "exists" }
                else {
                    outcome = "ok"
                    if kind == "posted" {
                        e.accounts[debit]!.balances.dp += amount
                        e.accounts[credit]!.balances.cp += amount
                    } else {
                        e.accounts[debit]!.balances.dq += amount
                        e.accounts[credit]!.balances.cq += amount
                        e.holds[id] = MoneyHoldRow(id: id, debit: debit, credit: credit, amount: amount, currency: currency, code: code,
                                                   timeoutSeconds: timeout, expired: false, resolution: nil)
                        madeHere.insert(id)
                    }
                }
            case let .postPending(id, pending, _, code), let .voidPending(id, pending, code):
                var requested: Int64?
                var kind = "void_pending"
                if case let .postPending(_, _, amount, _) = element { kind = "post_pending"; requested = amount }
                fields = MoneyTransferFields(kind: kind, debit: nil, credit: nil, amount: requested, currency: nil, code: code, pendingID: pending, timeoutSeconds: nil)
                // Found: stored before this call, or made by an earlier element of this one.
                let hold = (pre.holds[pending] != nil || madeHere.contains(pending)) ? e.holds[pending] : nil
                if principal != nil && Self.reservedCodes.contains(code) { outcome = "code_reserved" }
                else if hold == nil || (principal != nil && e.accounts[hold!.debit]?.owner != principal) { outcome = "pending_transfer_not_found" }
                else if principal != nil && Self.reservedCodes.contains(hold!.code) { outcome = "code_reserved" }
                else if let resolution = hold!.resolution {
                    outcome = ["posted": "pending_transfer_already_posted", "voided": "pending_transfer_already_voided"][resolution] ?? "pending_transfer_expired"
                } else if hold!.expired {
                    outcome = "pending_transfer_expired"
                    if !atomic && stored[id] == nil {
                        // Released now, as the sweeper would.
                        e.holds[pending]!.resolution = "expired"
                        e.accounts[hold!.debit]!.balances.dq -= hold!.amount
                        e.accounts[hold!.credit]!.balances.cq -= hold!.amount
                    }
                } else if kind == "post_pending" && (requested ?? hold!.amount) > hold!.amount { outcome = "amount_exceeds_pending" }
                else if stored[id] != nil { outcome = "exists" }
                else {
                    outcome = "ok"
                    let amount = kind == "post_pending" ? (requested ?? hold!.amount) : hold!.amount
                    fields = MoneyTransferFields(kind: kind, debit: hold!.debit, credit: hold!.credit, amount: amount, currency: hold!.currency, code: code,
                                                 pendingID: pending, timeoutSeconds: nil)
                    e.accounts[hold!.debit]!.balances.dq -= hold!.amount
                    e.accounts[hold!.credit]!.balances.cq -= hold!.amount
                    if kind == "post_pending" {
                        e.accounts[hold!.debit]!.balances.dp += amount
                        e.accounts[hold!.credit]!.balances.cp += amount
                    }
                    e.holds[pending]!.resolution = kind == "post_pending" ? "posted" : "voided"
                }
            }
            // An id in use wins over every other outcome.
            if outcome == "exists" || (outcome != "ok" && stored[element.id] != nil) {
                outcome = stored[element.id] == fields ? "exists" : "exists_with_different_fields"
            }
            if outcome == "ok" {
                stored[element.id] = fields
                e.stored[element.id] = fields
                e.storedIDs.append(element.id)
                if case .hold = element { e.newHolds.append(element.id) }
            }
            outcomes.append(outcome)
            if atomic && outcome != "ok" && outcome != "exists" {
                (e.accounts, e.holds) = before
                e.stored = [:]
                e.storedIDs = []
                e.newHolds = []
                let failing = outcomes.count - 1
                outcomes = elements.indices.map { $0 == failing ? outcome : "linked_event_failed" }
                break
            }
        }
        if single {
            switch outcomes[0] {
            case "ok": e.statuses = [201]
            case "exists": e.statuses = [200]
            case "exists_with_different_fields": e.statuses = [409]; e.problemCode = "exists_with_different_fields"
            default: e.statuses = [422]; e.problemCode = outcomes[0]
            }
        } else {
            e.statuses = [200]
            e.outcomes = outcomes
        }
    }

    /// The deal's rules: who may take each step and when, and the money each step moves.
    func predictDeal(_ actor: MoneyActor, _ deal: MoneyDeal, _ action: MoneyDealAction, _ pre: MoneySnapshot, _ e: inout MoneyExpectation) {
        let buyerAccount = operating(deal.buyer, "CNY")
        let escrowAccount = escrow("CNY")
        let live = ["active", "disputed"].contains(deal.status)
        func milestone(_ number: Int) -> String? { deal.milestoneStatus.indices.contains(number - 1) ? deal.milestoneStatus[number - 1] : nil }
        var allowed: Bool
        switch action {
        case .fund:
            allowed = actor == .tenant(deal.buyer) && deal.status == "signed" && (pre.accounts[buyerAccount]?.balances.available ?? 0) >= deal.total
        case .release(let number):
            allowed = actor == .tenant(deal.buyer) && live && milestone(number) == "funded"
        case .dispute(let number):
            allowed = (actor == .tenant(deal.buyer) || actor == .tenant(deal.seller)) && live && milestone(number) == "funded"
        case .resolve(let number, _):
            allowed = actor == .committee && milestone(number) == "disputed"
        case .terminate:
            allowed = actor == .committee && ["signed", "active", "disputed"].contains(deal.status)
        }
        guard allowed else { return }
        e.statuses = [200]
        func payOut(_ part: String, _ amount: Int64) {
            e.accounts[buyerAccount]!.balances.dq -= amount
            e.accounts[buyerAccount]!.balances.dp += amount
            e.accounts[escrowAccount]!.balances.cq -= amount
            e.accounts[escrowAccount]!.balances.cp += amount
            e.accounts[escrowAccount]!.balances.dp += amount
            e.holds[Deals.holdID(deal.uuid, part)]!.resolution = "posted"
            for (tenant, share) in deal.split(amount) {
                e.splitOwners.insert(tenants[tenant].id)
                e.splitNet[tenants[tenant].id, default: 0] += share
            }
        }
        func refund(_ number: Int) {
            let amount = deal.milestones[number - 1]
            e.accounts[buyerAccount]!.balances.dq -= amount
            e.accounts[escrowAccount]!.balances.cq -= amount
            e.holds[Deals.holdID(deal.uuid, "m\(number)")]!.resolution = "voided"
        }
        switch action {
        case .fund:
            openOnDemand(&e, escrowAccount, owner: bank, currency: "CNY", code: "escrow", withinCredits: true)
            let parts = (deal.upfront > 0 ? [("upfront", deal.upfront)] : []) + deal.milestones.enumerated().map { ("m\($0.offset + 1)", $0.element) }
            for (part, amount) in parts {
                let id = Deals.holdID(deal.uuid, part)
                e.accounts[buyerAccount]!.balances.dq += amount
                e.accounts[escrowAccount]!.balances.cq += amount
                e.holds[id] = MoneyHoldRow(id: id, debit: buyerAccount, credit: escrowAccount, amount: amount, currency: "CNY",
                                           code: MoneyModel.BankCode.escrowFund.rawValue, timeoutSeconds: nil, expired: false, resolution: nil)
                e.newHolds.append(id)
            }
            if deal.upfront > 0 { payOut("upfront", deal.upfront) }
        case .release(let number):
            payOut("m\(number)", deal.milestones[number - 1])
        case .dispute:
            break
        case .resolve(let number, let refunds):
            if refunds { refund(number) } else { payOut("m\(number)", deal.milestones[number - 1]) }
        case .terminate:
            for (offset, status) in deal.milestoneStatus.enumerated() where ["funded", "disputed"].contains(status) { refund(offset + 1) }
        }
    }

    /// The deal's state after `action` succeeded.
    mutating func applyDeal(_ index: Int, _ action: MoneyDealAction) {
        var deal = deals[index]
        switch action {
        case .fund:
            deal.status = "active"
            deal.milestoneStatus = deal.milestoneStatus.map { _ in "funded" }
        case .release(let number):
            deal.milestoneStatus[number - 1] = "released"
        case .dispute(let number):
            deal.milestoneStatus[number - 1] = "disputed"
            deal.status = "disputed"
        case .resolve(let number, let refund):
            deal.milestoneStatus[number - 1] = refund ? "refunded" : "released"
            if deal.status == "disputed" && !deal.milestoneStatus.contains("disputed") { deal.status = "active" }
        case .terminate:
            deal.milestoneStatus = deal.milestoneStatus.map { ["funded", "disputed"].contains($0) ? "refunded" : $0 }
            deal.status = "terminated"
        }
        if deal.status == "active" && !deal.milestoneStatus.contains(where: { ["scheduled", "funded", "disputed"].contains($0) }) { deal.status = "completed" }
        deals[index] = deal
    }
}

// MARK: Generating

extension MoneyRun {
    /// The accounts of `tenant` (in `currency`, if given), in the order they appeared.
    func accounts(of tenant: Int, currency: String? = nil) -> [UUID] {
        accountOrder.filter { id in current.accounts[id].map { $0.owner == tenants[tenant].id && (currency == nil || $0.currency == currency) } ?? false }
    }

    func available(_ account: UUID) -> Int64 { current.accounts[account]?.balances.available ?? 0 }

    func describe(_ account: UUID) -> String {
        guard let row = current.accounts[account] else { return "nonexistent \(account.uuidString.prefix(8).lowercased())" }
        return "\(ownerName(row.owner))'s \(row.code) \(row.currency) \(account.uuidString.prefix(8).lowercased()) (available \(row.balances.available))"
    }

    mutating func randomActor() -> MoneyActor { rng.percent(7) ? .committee : .tenant(rng.below(tenants.count)) }

    mutating func randomOperation() -> MoneyPlan {
        switch rng.weighted([(6, 0), (20, 1), (9, 2), (9, 3), (6, 4), (8, 5), (8, 6), (8, 7), (5, 8), (3, 9), (9, 10)]) {
        case 0: return openAccount(randomActor(), hostile: rng.percent(45))
        case 1, 2:
            let actor = randomActor()
            let (element, hostile, note) = transferElement(actor, pending: rng.percent(35), hostileChance: 35)
            return MoneyPlan(operation: .transfers(actor, [element], batch: nil), hostile: hostile, note: note)
        case 3, 4:
            let actor = randomActor()
            let (element, hostile, note) = resolutionElement(actor, void: rng.percent(40), hostileChance: 40)
            return MoneyPlan(operation: .transfers(actor, [element], batch: nil), hostile: hostile, note: note)
        case 5, 6: return batch(randomActor(), atomic: rng.percent(50))
        case 7:
            let tenant = rng.below(tenants.count)
            return deposit(to: tenant, amount: depositAmount(), currency: rng.percent(85) ? "CNY" : "USD")
        case 8: return withdrawal()
        case 9: return paymentByNonOperator()
        default: return dealOperation()
        }
    }

    /// An amount for a debit from an account holding `available`: mostly within it, sometimes
    /// all of it, sometimes more than it (hostile), sometimes anything up to 2^53 or beyond.
    /// `tame`: within the balance 90 times in 100 (for batches, where one refusal is enough to
    /// undo an atomic one).
    mutating func amount(available: Int64, tame: Bool = false) -> (Int64, hostile: Bool) {
        if tame {
            let amount: Int64 = switch rng.below(100) {
            case 0..<80: rng.int(1...max(1, min(available, Self.maxAmount)))
            case 80..<90: max(1, min(available, Self.maxAmount))
            default: min(Self.maxAmount, available + rng.int(1...1_000))
            }
            return (amount, amount > available)
        }
        let amount: Int64 = switch rng.below(100) {
        case 0..<45: rng.int(1...max(1, min(available, Self.maxAmount)))
        case 45..<55: max(1, available)
        case 55..<70: min(Self.maxAmount, available + rng.logUniform(upTo: 1_000_000))
        case 70..<88: rng.logUniform(upTo: Self.maxAmount)
        case 88..<95: Self.maxAmount
        default: Self.maxAmount + rng.int(1...1_000)
        }
        return (amount, amount > available)
    }

    mutating func depositAmount() -> Int64 {
        switch rng.below(100) {
        case 0..<55: return rng.int(1...2_000_000)
        case 55..<80: return rng.int(1...200_000_000)
        case 80..<93: return rng.logUniform(upTo: 1 << 40)
        default:
            guard hugeDeposits < 6 else { return rng.int(1...1_000) }
            hugeDeposits += 1
            return Self.maxAmount
        }
    }

    mutating func newID() -> UUID { rng.uuid(version: rng.percent(50) ? 4 : 7) }

    // MARK: Accounts

    mutating func openAccount(_ actor: MoneyActor, hostile: Bool) -> MoneyPlan {
        guard case .tenant(let tenant) = actor else {
            let owner = rng.percent(50) ? committee.id : tenants[rng.below(tenants.count)].org.id
            return MoneyPlan(operation: .openAccount(actor, body: ["id": newID().uuidString.lowercased(), "owner_id": owner, "currency": "CNY"], opens: nil),
                             hostile: true, note: "open an account for \(owner == committee.id ? "itself" : "a tenant")")
        }
        let owner = tenants[tenant].id
        let currency = rng.percent(80) ? "CNY" : "USD"
        let code = rng.pick(["operating", "operating", "savings", "payroll", "reserve"])!
        var body: [String: Any] = ["id": newID().uuidString.lowercased(), "owner_id": owner.uuidString.lowercased(), "currency": currency]
        if code != "operating" || rng.percent(30) { body["code"] = code }
        guard hostile else {
            let id = UUID(uuidString: body["id"] as! String)!
            accountOrder.append(id)
            return MoneyPlan(operation: .openAccount(actor, body: body, opens: MoneyAccountRow(
                id: id, owner: owner, currency: currency, code: code, debitsWithinCredits: true, creditsWithinDebits: false, balances: MoneyFour(), inventor: nil)),
                             hostile: false, note: "open \(code) \(currency) account \(id.uuidString.prefix(8).lowercased())")
        }
        switch rng.below(8) {
        case 0:
            body["id"] = rng.uuid(version: 8).uuidString.lowercased()
            return MoneyPlan(operation: .openAccount(actor, body: body, opens: nil), hostile: true, note: "open an account with a version-8 id")
        case 1:
            body["code"] = rng.pick(MoneyModel.bankAccountCodes.sorted())!
            return MoneyPlan(operation: .openAccount(actor, body: body, opens: nil), hostile: true, note: "open an account with the bank's code \(body["code"]!)")
        case 2:
            body["debits_must_not_exceed_credits"] = false
            return MoneyPlan(operation: .openAccount(actor, body: body, opens: nil), hostile: true, note: "open an account that may go below zero")
        case 3:
            body["credits_must_not_exceed_debits"] = true
            return MoneyPlan(operation: .openAccount(actor, body: body, opens: nil), hostile: true, note: "open an account with credits_must_not_exceed_debits")
        case 4:
            let victim = (tenant + 1 + rng.below(tenants.count - 1)) % tenants.count
            body["owner_id"] = tenants[victim].org.id
            return MoneyPlan(operation: .openAccount(actor, body: body, opens: nil), hostile: true, note: "open an account for \(tenants[victim].name)")
        case 5, 6:
            // Squat an account id of another tenant's (or the bank's).
            let others = accountOrder.filter { current.accounts[$0]?.owner != owner }
            guard let victim = rng.pick(others) else { return openAccount(actor, hostile: false) }
            body["id"] = victim.uuidString.lowercased()
            return MoneyPlan(operation: .openAccount(actor, body: body, opens: nil), hostile: true, note: "open an account with the id of \(describe(victim))")
        default:
            // Open again one of its own, exactly as before: answered 200, nothing changes.
            let mine = accounts(of: tenant).filter { MoneyModel.isClientID($0) && current.accounts[$0]?.code != "inventor" }
            guard let again = rng.pick(mine), let row = current.accounts[again] else { return openAccount(actor, hostile: false) }
            var body: [String: Any] = ["id": again.uuidString.lowercased(), "owner_id": owner.uuidString.lowercased(), "currency": row.currency]
            if row.code != "operating" { body["code"] = row.code }
            return MoneyPlan(operation: .openAccount(actor, body: body, opens: row), hostile: false, note: "open \(describe(again)) again")
        }
    }

    // MARK: Transfers

    /// A posted transfer or a hold as `actor`: its own money to anyone, or (hostile) another's
    /// money, the bank's, the bank's codes, reserved or used ids, mismatched currencies.
    mutating func transferElement(_ actor: MoneyActor, pending: Bool, hostileChance: Int, tame: Bool = false) -> (MoneyElement, Bool, String) {
        let tenant: Int? = if case .tenant(let index) = actor { index } else { nil }
        let mine = tenant.map { accounts(of: $0) } ?? []
        if !pending && rng.percent(4) {
            // Send one of its own transfers again, exactly: answered as existing, nothing moves.
            let own = storedIDs.filter { stored[$0]?.kind == "posted" && stored[$0]?.debit.flatMap { current.accounts[$0]?.owner } == actorID(actor) }
            if let id = rng.pick(own), let fields = stored[id], let debit = fields.debit, let credit = fields.credit, let amount = fields.amount, let currency = fields.currency {
                let element = MoneyElement.post(id: id, debit: debit, credit: credit, amount: amount, currency: currency, code: fields.code)
                return (element, false, "send again exactly: \(element)")
            }
        }
        var hostile = mine.isEmpty || rng.percent(hostileChance)
        let funded = mine.filter { available($0) > 0 }
        var debit = (rng.percent(85) ? rng.pick(funded) : nil) ?? rng.pick(mine) ?? rng.pick(accountOrder)!
        var id = newID()
        var code = rng.pick(Self.tenantCodes)!
        var note = ""
        func payee(_ currency: String) -> UUID? {
            let candidates = accountOrder.filter { $0 != debit && current.accounts[$0]?.currency == currency && current.accounts[$0]?.owner != bank }
            let others = candidates.filter { current.accounts[$0]?.owner != current.accounts[debit]?.owner }
            return (rng.percent(65) ? rng.pick(others) : nil) ?? rng.pick(candidates)
        }
        var credit = payee(current.accounts[debit]!.currency) ?? settlement("CNY")
        var currency = current.accounts[debit]!.currency
        var (amount, over) = self.amount(available: available(debit), tame: tame)
        if hostile {
            switch rng.below(100) {
            case 0..<30:
                // Someone else's money, into an account of the actor's (or anyone's).
                let theirs = accountOrder.filter { current.accounts[$0].map { $0.owner != actorID(actor) && $0.owner != bank } ?? false }
                debit = (rng.percent(80) ? rng.pick(theirs.filter { available($0) > 0 }) : nil) ?? rng.pick(theirs) ?? debit
                currency = current.accounts[debit]!.currency
                credit = rng.pick(mine.filter { current.accounts[$0]?.currency == currency }) ?? payee(currency) ?? credit
                (amount, _) = self.amount(available: available(debit))
                note = "take \(describe(debit))'s money: "
            case 30..<40:
                debit = rng.percent(50) ? settlement("CNY") : escrow("CNY")
                currency = "CNY"
                credit = rng.pick(mine.filter { current.accounts[$0]?.currency == currency }) ?? payee(currency) ?? credit
                amount = rng.int(1...1_000_000)
                note = "take the bank's money: "
            case 40..<52:
                code = rng.pick(Self.reservedCodes.sorted())!
                note = "the bank's code: "
            case 52..<60:
                id = rng.uuid(version: 8)
                note = "a version-8 id: "
            case 60..<70:
                if let used = rng.pick(storedIDs) { id = used; note = "a used id: " } else { note = "over the balance: " }
            case 70..<78:
                if rng.percent(50) { currency = currency == "CNY" ? "USD" : "CNY" } else if let other = rng.pick(accountOrder.filter { current.accounts[$0]?.currency != currency }) { credit = other }
                note = "mismatched currencies: "
            case 78..<83:
                credit = debit
                note = "to the same account: "
            case 83..<86:
                credit = rng.uuid()
                note = "to no account: "
            case 86..<88:
                credit = rng.percent(50) ? settlement(currency) : escrow(currency)
                note = "into the bank's own account: "
            case 88..<95:
                amount = Self.maxAmount + rng.int(1...(1 << 20))
                note = "more than 2^53: "
            default:
                amount = available(debit) + rng.int(1...1_000)
                note = "just over the balance: "
            }
        } else if over {
            hostile = true
            note = "more than it holds: "
        }
        let timeout: Int32? = pending && rng.percent(50) ? Int32(rng.int(3_600...86_400)) : nil
        let element: MoneyElement = pending
            ? .hold(id: id, debit: debit, credit: credit, amount: amount, currency: currency, code: code, timeoutSeconds: timeout)
            : .post(id: id, debit: debit, credit: credit, amount: amount, currency: currency, code: code)
        return (element, hostile, note + "\(element) from \(describe(debit)) to \(describe(credit))")
    }

    /// A post or void of a hold: mostly the actor's own open holds, else (hostile) another
    /// tenant's, a deal's escrow hold, one already resolved or expired, or one that does not exist.
    mutating func resolutionElement(_ actor: MoneyActor, void: Bool, hostileChance: Int) -> (MoneyElement, Bool, String) {
        let principal = actorID(actor)
        func ownerOf(_ hold: UUID) -> UUID? { current.holds[hold].flatMap { current.accounts[$0.debit]?.owner } }
        let open = holdOrder.filter { ownerOf($0) == principal && current.holds[$0]?.resolution == nil && current.holds[$0]?.expired == false }
        var hostile = open.isEmpty || rng.percent(hostileChance)
        var pending: UUID
        var note = ""
        if !hostile {
            pending = rng.pick(open)!
        } else {
            switch rng.below(100) {
            case 0..<45:
                let theirs = holdOrder.filter { ownerOf($0) != principal && current.holds[$0]?.code != MoneyModel.BankCode.escrowFund.rawValue }
                pending = rng.pick(theirs) ?? rng.uuid()
                note = "another tenant's hold: "
            case 45..<70:
                pending = rng.pick(holdOrder.filter { current.holds[$0]?.code == MoneyModel.BankCode.escrowFund.rawValue }) ?? rng.uuid()
                note = "a deal's escrow hold: "
            case 70..<85:
                pending = rng.pick(holdOrder.filter { ownerOf($0) == principal && (current.holds[$0]?.resolution != nil || current.holds[$0]?.expired == true) })
                    ?? rng.pick(holdOrder) ?? rng.uuid()
                note = "a resolved or expired hold: "
            default:
                pending = rng.pick(storedIDs.filter { current.holds[$0] == nil }) ?? rng.uuid()
                note = "no such hold: "
            }
        }
        let held = current.holds[pending]?.amount ?? 1
        var code = rng.pick(Self.tenantCodes)!
        if rng.percent(5) {
            code = rng.pick(Self.reservedCodes.sorted())!
            hostile = true
            note += "the bank's code: "
        }
        let element: MoneyElement
        if void {
            element = .voidPending(id: newID(), pending: pending, code: code)
        } else {
            var amount: Int64? = nil
            switch rng.below(100) {
            case 0..<55: break
            case 55..<85: amount = rng.int(1...max(1, held))
            default:
                amount = held + rng.int(1...1_000)
                hostile = true
                note += "more than held: "
            }
            element = .postPending(id: newID(), pending: pending, amount: amount, code: code)
        }
        let hold = current.holds[pending]
        return (element, hostile, note + "\(element)" + (hold.map { " (\($0.amount) from \(describe($0.debit)) to \(describe($0.credit)), \($0.resolution ?? ($0.expired ? "expired" : "open")))" } ?? ""))
    }

    /// A batch: random elements, or one of the patterns that once gave money away (redeclaring
    /// another tenant's hold or transfer id as the actor's own hold, then posting it), or a hold
    /// made and resolved in the same batch.
    mutating func batch(_ actor: MoneyActor, atomic: Bool) -> MoneyPlan {
        let principal = actorID(actor)
        let tenant: Int? = if case .tenant(let index) = actor { index } else { nil }
        let mine = tenant.map { accounts(of: $0) } ?? []
        var elements: [MoneyElement] = []
        var hostile = false
        var notes: [String] = []
        func ownHold(_ id: UUID) -> MoneyElement? {
            guard let debit = rng.pick(mine.filter { available($0) > 0 }) ?? rng.pick(mine), let row = current.accounts[debit] else { return nil }
            let credit = rng.pick(accountOrder.filter { $0 != debit && current.accounts[$0]?.currency == row.currency && current.accounts[$0]?.owner != bank }) ?? debit
            return .hold(id: id, debit: debit, credit: credit, amount: rng.int(1...max(1, min(row.balances.available, Self.maxAmount))), currency: row.currency, code: "transfer",
                         timeoutSeconds: rng.percent(50) ? 7_200 : nil)
        }
        switch rng.below(100) {
        case 0..<15:
            let theirs = holdOrder.filter { current.holds[$0].flatMap { current.accounts[$0.debit]?.owner } != principal }
            if let target = rng.pick(theirs), let decoy = ownHold(target) {
                elements = [decoy, rng.percent(60) ? .postPending(id: newID(), pending: target, amount: nil, code: "transfer") : .voidPending(id: newID(), pending: target, code: "transfer")]
                hostile = true
                notes.append("redeclare \(describe(current.holds[target]!.debit))'s hold \(target.uuidString.prefix(8).lowercased()) as its own, then resolve it")
            }
        case 15..<25:
            let theirs = storedIDs.filter { stored[$0]?.kind == "posted" && stored[$0]?.debit.flatMap { current.accounts[$0]?.owner } != principal }
            if let target = rng.pick(theirs), let decoy = ownHold(target) {
                elements = [decoy, .postPending(id: newID(), pending: target, amount: nil, code: "transfer")]
                hostile = true
                notes.append("redeclare another tenant's transfer \(target.uuidString.prefix(8).lowercased()) as its own hold, then post it")
            }
        case 25..<45:
            let id = newID()
            if let hold = ownHold(id), case let .hold(_, _, _, amount, _, _, _) = hold {
                elements = [hold, rng.percent(60) ? .postPending(id: newID(), pending: id, amount: rng.percent(50) ? nil : rng.int(1...amount), code: "transfer")
                                                  : .voidPending(id: newID(), pending: id, code: "transfer")]
                notes.append("make a hold and resolve it in the same batch")
            }
        default:
            break
        }
        let extra = elements.isEmpty ? 2 + rng.below(5) : rng.below(3)
        for _ in 0..<extra {
            let declared = elements.compactMap { if case let .hold(id, _, _, _, _, _, _) = $0 { id } else { nil } }
            let ownOpen = holdOrder.contains { id in
                current.holds[id].map { $0.resolution == nil && !$0.expired && current.accounts[$0.debit]?.owner == principal } ?? false
            }
            let roll = rng.below(100)
            let (element, isHostile, note): (MoneyElement, Bool, String)
            if roll >= 75, let pending = rng.pick(declared), rng.percent(50) {
                element = rng.percent(60) ? .postPending(id: newID(), pending: pending, amount: nil, code: "transfer") : .voidPending(id: newID(), pending: pending, code: "transfer")
                (isHostile, note) = (false, "resolve a hold made earlier in the batch")
            } else if roll >= 75 && ownOpen {
                (element, isHostile, note) = resolutionElement(actor, void: rng.percent(40), hostileChance: 6)
            } else {
                (element, isHostile, note) = transferElement(actor, pending: roll >= 55 && roll < 75, hostileChance: 6, tame: true)
            }
            elements.append(element)
            hostile = hostile || isHostile
            notes.append(note)
        }
        return MoneyPlan(operation: .transfers(actor, elements, batch: atomic), hostile: hostile,
                         note: "\(atomic ? "atomic" : "non-atomic") batch [" + notes.joined(separator: "; ") + "]: " + elements.map(\.description).joined(separator: " | "))
    }

    // MARK: Deposits and withdrawals

    mutating func reference() -> String { "PROP-\(seed)-\(index)-\(rng.below(1_000_000))" }

    mutating func deposit(to tenant: Int, amount: Int64, currency: String, hostileChance: Int = 10) -> MoneyPlan {
        var amount = amount
        var reference = reference()
        var organization = tenants[tenant].org.id
        var target: Int? = tenant
        var note = ""
        if rng.percent(hostileChance) {
            switch rng.below(3) {
            case 0:
                if let used = rng.pick(usedReferences) { reference = used; note = "a used payment reference: " }
            case 1:
                amount = rng.percent(50) ? 0 : Self.maxAmount + 1
                note = "an impossible amount: "
            default:
                organization = bank.uuidString.lowercased()
                target = nil
                note = "for the bank itself: "
            }
        }
        return MoneyPlan(operation: .payment(.bank, deposit: true, organization: organization, tenant: target, amount: amount, currency: currency, reference: reference),
                         hostile: !note.isEmpty, note: note + "deposit \(amount) \(currency) for \(target.map { tenants[$0].name } ?? "the bank")")
    }

    mutating func withdrawal() -> MoneyPlan {
        let tenant = rng.below(tenants.count)
        let currency = rng.percent(85) ? "CNY" : "USD"
        let held = available(operating(tenant, currency))
        let amount: Int64 = switch rng.below(100) {
        case 0..<50: rng.int(1...max(1, held))
        case 50..<70: max(1, held)
        default: held + rng.logUniform(upTo: 1_000_000)
        }
        return MoneyPlan(operation: .payment(.bank, deposit: false, organization: tenants[tenant].org.id, tenant: tenant, amount: amount, currency: currency,
                                             reference: reference()),
                         hostile: amount > held, note: "withdraw \(amount) \(currency) for \(tenants[tenant].name) (operating available \(held))")
    }

    mutating func paymentByNonOperator() -> MoneyPlan {
        let actor: MoneyActor = rng.percent(20) ? .committee : .tenant(rng.below(tenants.count))
        let tenant = rng.below(tenants.count)
        let deposit = rng.percent(60)
        let amount = rng.int(1...10_000_000)
        return MoneyPlan(operation: .payment(actor, deposit: deposit, organization: tenants[tenant].org.id, tenant: tenant, amount: amount, currency: "CNY",
                                             reference: reference()),
                         hostile: true, note: "\(deposit ? "deposit" : "withdraw") \(amount) CNY for \(tenants[tenant].name) without being the operator")
    }

    // MARK: Deals

    mutating func dealOperation() -> MoneyPlan {
        let index = rng.below(deals.count)
        let deal = deals[index]
        let buyer = MoneyActor.tenant(deal.buyer)
        let outsiders: [MoneyActor] = tenants.indices.filter { $0 != deal.buyer }.map { .tenant($0) } + [.committee]
        func plan(_ actor: MoneyActor, _ action: MoneyDealAction, hostile: Bool) -> MoneyPlan {
            MoneyPlan(operation: .deal(actor, deal: index, action), hostile: hostile,
                      note: "deal \(index) (\(deal.status), milestones \(deal.milestoneStatus.joined(separator: ","))): \(action.kind) \(action.path)")
        }
        func milestone(_ status: String) -> Int {
            let matching = deal.milestoneStatus.indices.filter { deal.milestoneStatus[$0] == status }.map { $0 + 1 }
            return (rng.percent(85) ? rng.pick(matching) : nil) ?? rng.below(deal.milestones.count + 2)
        }
        switch deal.status {
        case "signed":
            let held = available(operating(deal.buyer, "CNY"))
            if held < deal.total && rng.percent(55) {
                var plan = self.deposit(to: deal.buyer, amount: deal.total - held + rng.int(0...100_000), currency: "CNY", hostileChance: 0)
                plan.note += " (to fund deal \(index))"
                return plan
            }
            return rng.percent(75) ? plan(buyer, .fund, hostile: held < deal.total) : plan(rng.pick(outsiders)!, .fund, hostile: true)
        case "active", "disputed":
            let party = [MoneyActor.tenant(deal.buyer), .tenant(deal.seller)]
            // Terminating once the deal has settled a milestone leaves the releases something to do first.
            let late = deal.milestoneStatus.contains { $0 == "released" || $0 == "refunded" }
            switch rng.weighted([(30, 0), (10, 1), (12, 2), (4, 3), (14, 4), (5, 5), (4, 6), (late ? 3 : 0, 7), (4, 8)]) {
            case 0: return plan(buyer, .release(milestone("funded")), hostile: false)
            case 1: return plan(rng.pick(outsiders)!, .release(milestone("funded")), hostile: true)
            case 2: return plan(rng.pick(party)!, .dispute(milestone("funded")), hostile: false)
            case 3: return plan(rng.pick(outsiders.filter { $0 != .tenant(deal.seller) })!, .dispute(milestone("funded")), hostile: true)
            case 4: return plan(.committee, .resolve(milestone("disputed"), refund: rng.percent(50)), hostile: false)
            case 5: return plan(rng.pick(party)!, .resolve(milestone("disputed"), refund: rng.percent(50)), hostile: true)
            case 6: return plan(buyer, .fund, hostile: true)
            case 7: return plan(.committee, .terminate, hostile: false)
            default: return plan(rng.pick(party + [.tenant(3)])!, .terminate, hostile: true)
            }
        default:
            let actions: [MoneyDealAction] = [.fund, .release(milestone("funded")), .dispute(1), .resolve(1, refund: true), .terminate]
            return plan(rng.pick([buyer, .committee, .tenant(deal.seller)])!, rng.pick(actions)!, hostile: true)
        }
    }
}

// MARK: Finishing

extension MoneyRun {
    /// The end of the run: the balances endpoint agrees with the database, the journal verifies,
    /// and the ledger's own invariants hold.
    mutating func finish() async throws {
        let totals = current.totals()
        for tenant in tenants {
            let response = try await api.call(.get, "/v1/organizations/\(tenant.org.id)/balances")
            check(response.status == .ok, "balances of \(tenant.name): \(response)")
            var served: [String: MoneyFour] = [:]
            for entry in response.json["data"].array {
                let total = entry["total"]
                served[entry["currency"].string ?? "?"] = MoneyFour(dp: total["debits_posted"].int ?? -1, cp: total["credits_posted"].int ?? -1,
                                                                    dq: total["debits_pending"].int ?? -1, cq: total["credits_pending"].int ?? -1)
            }
            check(served == (totals[tenant.id] ?? [:]), "balances of \(tenant.name): served \(served), the database has \(totals[tenant.id] ?? [:])")
        }
        let verification = try await Journal(pool: api.pool).verify()
        check(verification.isIntact, "journal: \(String(describing: verification.firstBreak))")
        try await api.expectLedgerInvariants()
        let sent = counts.values.reduce(0) { $0 + $1.sent }
        check(sent >= operations, "only \(sent) operations ran")
        check(counts.values.reduce(0) { $0 + $1.hostile } > 0 && counts.values.reduce(0) { $0 + $1.refused } > 0, "no hostile request was refused")
    }

    func summary(elapsed: Duration) -> String {
        let sent = counts.values.reduce(0) { $0 + $1.sent }
        let hostile = counts.values.reduce(0) { $0 + $1.hostile }
        let refused = counts.values.reduce(0) { $0 + $1.refused }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        var lines = [
            "money property: seed \(seed) (TECHBANK_PROPERTY_SEED=\(seed)): \(sent) operations in \(String(format: "%.1f", seconds)) s, "
                + "\(tenants.count) tenants (\(tenants.map(\.name).joined(separator: ", "))) plus the committee and the operator; "
                + "\(hostile) hostile, \(refused) refused (\(batchesPastChecks) batches reached the ledger, \(refusedElements) of their elements refused)\(failed ? "; FAILED" : "")",
        ]
        for (kind, count) in counts.sorted(by: { $0.key < $1.key }) {
            lines.append("  \(kind.padding(toLength: 26, withPad: " ", startingAt: 0)) \(count.sent) sent, \(count.hostile) hostile, \(count.refused) refused")
        }
        lines.append("  outcomes: " + outcomesSeen.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
        lines.append("  deals: " + deals.enumerated().map { "\($0.offset) \($0.element.status) [\($0.element.milestoneStatus.joined(separator: ","))]" }.joined(separator: "; "))
        return lines.joined(separator: "\n")
    }
}
