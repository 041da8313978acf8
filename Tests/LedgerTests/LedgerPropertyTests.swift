import Foundation
import Ledger
import Postgres
import Testing
import TestSupport

/// Thousands of random operations against the database and against `LedgerModel`; after every
/// step the two must agree exactly, and the ledger's invariants must hold.
///
/// Replay a failure with `LEDGER_PROPERTY_SEED=<seed>` (printed in every failure); run longer
/// with `LEDGER_PROPERTY_STEPS=<n>` (under an hour: holds other than the one-second ones time out
/// after an hour or more, and the model treats them as never expiring).
///
/// Expiry stays exact: holds with a one-second timeout are created in waves, are never referenced
/// and `expirePending` is never called while a wave may or may not have expired; once a wave
/// has certainly expired, the model treats its holds as expired.
@Suite("Ledger property")
struct LedgerPropertyTests {
    @Test func randomOperationsAgreeWithTheModel() async throws {
        let environment = ProcessInfo.processInfo.environment
        let seed = SeededGenerator.seed(from: "LEDGER_PROPERTY_SEED")
        let steps = environment["LEDGER_PROPERTY_STEPS"].flatMap { Int($0) } ?? 2_500
        print("ledger property test: seed \(seed), \(steps) steps (replay with LEDGER_PROPERTY_SEED=\(seed))")
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            var run = PropertyRun(bank: Bank(pool), seed: seed, steps: steps)
            do {
                try await run.run()
            } catch {
                Issue.record("seed \(seed) (LEDGER_PROPERTY_SEED=\(seed)), step \(run.step): \(error)")
                throw error
            }
            if !run.failed {
                #expect(run.operations >= 2_000 || steps < 2_000, "seed \(seed): only \(run.operations) operations")
                let expectedOutcomes: Set<TransferOutcome> = [
                    .ok, .exists, .existsWithDifferentFields, .amountMustBePositive, .accountsMustBeDifferent, .accountNotFound,
                    .currencyMismatch, .accountClosed, .exceedsCredits, .exceedsDebits, .pendingTransferNotFound,
                    .pendingTransferAlreadyPosted, .pendingTransferAlreadyVoided, .pendingTransferExpired,
                    .amountExceedsPending, .linkedEventFailed,
                ]
                if steps >= 2_000 {
                    let missing = expectedOutcomes.subtracting(run.outcomesSeen.keys)
                    #expect(missing.isEmpty, "seed \(seed): the run never produced \(missing.map(\.rawValue).sorted())")
                }
                print("ledger property test: seed \(seed): \(run.operations) operations, \(run.expiredReleased) holds expired, outcomes "
                      + run.outcomesSeen.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key.rawValue)=\($0.value)" }.joined(separator: " "))
            }
        }
    }
}

/// One run of the property test: the generator, the model, and the checks.
struct PropertyRun {
    let bank: Bank
    let seed: UInt64
    let steps: Int
    var rng: SeededGenerator
    var model = LedgerModel()
    var step = 0
    var operations = 0
    var expiredReleased = 0
    var failed = false
    var outcomesSeen: [TransferOutcome: Int] = [:]

    private let currencies = ["CNY", "USD"]
    private var accountsByCurrency: [String: [UUID]] = [:]
    private var fundingAccounts: Set<UUID> = []
    private var labels: [UUID: String] = [:]
    private var unknownAccounts: [UUID] = []
    /// Requests sent so far (not the short-timeout ones), to replay.
    private var history: [TransferRequest] = []
    /// Holds with a one-second timeout whose expiry is not certain yet: never referenced until then.
    private var wave: (ids: Set<UUID>, matureStep: Int, deadline: ContinuousClock.Instant)?
    private var closedAccounts = 0

    /// Steps a wave of short holds waits before it counts as expired (and at least its timeout).
    private static let waveSteps = 250
    private static let metadataChoices: [JSONB?] = [nil, nil, nil, nil, nil, nil, nil, nil, JSONB(#"{"k": 1}"#), JSONB(#"{"note": "x"}"#)]
    private static let codes = ["transfer", "transfer", "transfer", "fee", "escrow_fund"]

    init(bank: Bank, seed: UInt64, steps: Int) {
        self.bank = bank
        self.seed = seed
        self.steps = steps
        self.rng = SeededGenerator(seed: seed)
    }

    // MARK: Running

    mutating func run() async throws {
        try await openAccounts()
        for current in 0..<steps {
            step = current
            if let wave, step >= wave.matureStep {
                try await Task.sleep(until: wave.deadline)
                for id in wave.ids { model.markExpired(id) }
                self.wave = nil
            }
            try await randomStep()
            if failed { return }
            try await checkInvariants(full: step % 25 == 24, journal: step % 500 == 499)
            if failed { return }
        }
        step = steps
        if let wave {
            try await Task.sleep(until: wave.deadline)
            for id in wave.ids { model.markExpired(id) }
            self.wave = nil
        }
        try await expire()
        if failed { return }
        try await checkInvariants(full: true, journal: true)
    }

    private mutating func openAccounts() async throws {
        for currency in currencies {
            let kinds: [(code: String, dnec: Bool, cned: Bool)] = [
                ("funding", false, false), ("ops", false, false), ("wallet", true, false), ("wallet", true, false), ("liability", false, true),
            ]
            for (n, kind) in kinds.enumerated() {
                let id = newID()
                let (account, created) = try await bank.ledger.createAccount(NewAccount(
                    id: id, currency: currency, ownerID: bank.owner, code: kind.code,
                    debitsMustNotExceedCredits: kind.dnec, creditsMustNotExceedDebits: kind.cned))
                #expect(created && account.id == id, "seed \(seed)")
                model.openAccount(id, currency: currency, debitsMustNotExceedCredits: kind.dnec, creditsMustNotExceedDebits: kind.cned)
                accountsByCurrency[currency, default: []].append(id)
                labels[id] = "\(currency).\(kind.code)\(n)"
                if kind.code == "funding" { fundingAccounts.insert(id) }
            }
        }
        unknownAccounts = [newID(), newID()]
        for (n, id) in unknownAccounts.enumerated() { labels[id] = "unknown\(n)" }
    }

    private mutating func randomStep() async throws {
        if closedAccounts == 0 && step >= steps * 3 / 4 { return try await closeAccount() }
        if closedAccounts == 1 && step > steps * 3 / 4 && rng.chance(0.002) { return try await closeAccount() }
        if wave == nil && rng.chance(0.012) { return try await shortHoldWave() }
        if wave == nil && rng.chance(0.02) { return try await expire() }
        let roll = Double.random(in: 0..<1, using: &rng)
        if roll < 0.27 {
            try await submit([moneyRequest(hold: false)], atomic: rng.chance(0.75))
        } else if roll < 0.43 {
            try await submit([moneyRequest(hold: true)], atomic: rng.chance(0.75))
        } else if roll < 0.56 {
            try await submit([resolutionRequest(post: true)], atomic: rng.chance(0.75))
        } else if roll < 0.64 {
            try await submit([resolutionRequest(post: false)], atomic: rng.chance(0.75))
        } else if roll < 0.73 {
            try await submit([replay()], atomic: rng.chance(0.5))
        } else if roll < 0.87 {
            try await submit(batch(), atomic: true)
        } else {
            try await submit(batch(), atomic: false)
        }
    }

    // MARK: Operations

    private mutating func submit(_ requests: [TransferRequest], atomic: Bool, remember: Bool = true) async throws {
        let expected = model.apply(requests, atomic: atomic)
        let results = requests.count == 1 && atomic
            ? [try await bank.ledger.createTransfer(requests[0])]
            : try await bank.ledger.createTransfers(requests, atomic: atomic)
        operations += requests.count
        if remember {
            history += requests
            if history.count > 600 { history.removeFirst(history.count - 600) }
        }
        var problems: [String] = []
        if results.count != requests.count { problems.append("\(results.count) results for \(requests.count) requests") }
        for (index, (result, want)) in zip(results, expected).enumerated() {
            outcomesSeen[result.outcome, default: 0] += 1
            let got = LedgerModel.Expected(outcome: result.outcome, detail: result.detail)
            if result.index != index || result.id != requests[index].id { problems.append("#\(index): wrong index or id") }
            if got != want { problems.append("#\(index) \(describe(requests[index])): got \(got), model says \(want)") }
            if result.outcome.succeeded {
                let stored = model.transfers[result.id]
                if result.transfer.map(LedgerModel.StoredTransfer.init) != stored {
                    problems.append("#\(index): returned transfer \(String(describing: result.transfer.map(LedgerModel.StoredTransfer.init))), model has \(String(describing: stored))")
                }
            } else if result.transfer != nil {
                problems.append("#\(index): a failed request returned a transfer")
            }
        }
        if !problems.isEmpty {
            fail("\(atomic ? "atomic" : "independent") batch of \(requests.count)", problems)
        }
    }

    /// One to four holds with a one-second timeout; they count as expired only once that is certain.
    private mutating func shortHoldWave() async throws {
        let requests = (0..<Int.random(in: 1...4, using: &rng)).map { _ in
            let currency = currencies.randomElement(using: &rng)!
            let (debit, credit) = pair(currency)
            return TransferRequest(id: newID(), action: .hold(debit: debit, credit: credit, amount: Int64.random(in: 1...200, using: &rng),
                                                              currency: currency, timeoutSeconds: 1))
        }
        try await submit(requests, atomic: false, remember: false)
        let created = requests.map(\.id).filter { model.isOpenHold($0) }
        if !created.isEmpty {
            wave = (Set(created), step + Self.waveSteps, ContinuousClock.now + .milliseconds(1_100))
        }
    }

    private mutating func expire() async throws {
        let expected = model.expireDueHolds()
        let released = try await bank.ledger.expirePending()
        operations += 1
        expiredReleased += released
        if released != expected { fail("expirePending", ["released \(released), model says \(expected)"]) }
    }

    private mutating func closeAccount() async throws {
        let candidates = model.accounts.keys.filter { !fundingAccounts.contains($0) && model.accounts[$0]?.closed == false }
            .sorted { labels[$0]! < labels[$1]! }
        guard let id = candidates.randomElement(using: &rng) else { return }
        model.close(id)
        closedAccounts += 1
        operations += 1
        if try await bank.ledger.closeAccount(id) != true { fail("close \(labels[id]!)", ["closeAccount returned false"]) }
    }

    // MARK: Generators

    private mutating func newID() -> UUID {
        let a = rng.next(), b = rng.next()
        var bytes = [UInt8](repeating: 0, count: 16)
        for i in 0..<8 { bytes[i] = UInt8(truncatingIfNeeded: a >> (8 * i)); bytes[8 + i] = UInt8(truncatingIfNeeded: b >> (8 * i)) }
        bytes[6] = (bytes[6] & 0x0F) | 0x40
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        return UUID(uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                           bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]))
    }

    private mutating func pair(_ currency: String) -> (UUID, UUID) {
        let accounts = accountsByCurrency[currency]!
        let roll = Double.random(in: 0..<1, using: &rng)
        // accounts: funding, ops, wallet, wallet, liability; wallets are debited often enough to hit their rule
        let debit = roll < 0.2 ? accounts[0] : roll < 0.45 ? accounts[2 + Int.random(in: 0...1, using: &rng)] : accounts.randomElement(using: &rng)!
        var credit = accounts.randomElement(using: &rng)!
        while credit == debit { credit = accounts.randomElement(using: &rng)! }
        return (debit, credit)
    }

    private mutating func amount() -> Int64 {
        let roll = Double.random(in: 0..<1, using: &rng)
        if roll < 0.7 { return Int64.random(in: 1...300, using: &rng) }
        if roll < 0.92 { return Int64.random(in: 301...3_000, using: &rng) }
        return Int64.random(in: 3_001...20_000, using: &rng)
    }

    private mutating func decorate(_ request: TransferRequest) -> TransferRequest {
        var request = request
        request.code = Self.codes.randomElement(using: &rng)!
        request.metadata = Self.metadataChoices.randomElement(using: &rng)!
        return request
    }

    /// A posted transfer or a hold, sometimes malformed in one way.
    private mutating func moneyRequest(hold: Bool) -> TransferRequest {
        let currency = currencies.randomElement(using: &rng)!
        let other = currency == "CNY" ? "USD" : "CNY"
        var (debit, credit) = pair(currency)
        var amount = amount()
        var requestCurrency = currency
        // Now and then exactly the room a flagged account has left, or one more.
        if rng.chance(0.12), let d = model.accounts[debit], let c = model.accounts[credit] {
            let room: Int64? = d.debitsMustNotExceedCredits
                ? d.balances.creditsPosted - d.balances.debitsPosted - d.balances.debitsPending
                : c.creditsMustNotExceedDebits ? c.balances.debitsPosted - c.balances.creditsPosted - c.balances.creditsPending : nil
            if let room { amount = max(1, room + (rng.chance(0.5) ? 0 : 1)) }
        }
        if rng.chance(0.15) {
            switch Int.random(in: 0..<8, using: &rng) {
            case 0: amount = 0
            case 1: amount = -Int64.random(in: 1...1_000, using: &rng)
            case 2: credit = debit
            case 3: debit = unknownAccounts.randomElement(using: &rng)!
            case 4: credit = unknownAccounts.randomElement(using: &rng)!
            case 5: requestCurrency = other
            case 6: requestCurrency = "ZZZ"
            default: credit = accountsByCurrency[other]!.randomElement(using: &rng)!
            }
        }
        let action: TransferRequest.Action = hold
            ? .hold(debit: debit, credit: credit, amount: amount, currency: requestCurrency,
                    timeoutSeconds: rng.chance(0.5) ? nil : Int32.random(in: 3_600...86_400, using: &rng))
            : .post(debit: debit, credit: credit, amount: amount, currency: requestCurrency)
        return decorate(TransferRequest(id: newID(), action: action))
    }

    /// Holds that may be referenced: every stored one except a wave whose expiry is uncertain.
    private func referableHolds(openOnly: Bool) -> [UUID] {
        model.holds.filter { !(wave?.ids.contains($0) ?? false) && (!openOnly || model.isOpenHold($0)) }
    }

    private mutating func resolutionAmount(of hold: UUID?) -> Int64? {
        let full = hold.flatMap { model.transfers[$0]?.amount } ?? 100
        let roll = Double.random(in: 0..<1, using: &rng)
        if roll < 0.35 { return nil }
        if roll < 0.70 { return Int64.random(in: 1...full, using: &rng) }
        if roll < 0.80 { return full }
        if roll < 0.90 { return full + Int64.random(in: 1...100, using: &rng) }
        return rng.chance(0.5) ? 0 : -Int64.random(in: 1...100, using: &rng)
    }

    /// A post or void of a hold: mostly an open one, sometimes a resolved, expired or unknown one.
    private mutating func resolutionRequest(post: Bool) -> TransferRequest {
        let roll = Double.random(in: 0..<1, using: &rng)
        var target: UUID?
        if roll < 0.70 {
            target = referableHolds(openOnly: true).randomElement(using: &rng)
        } else if roll < 0.82 {
            target = referableHolds(openOnly: false).randomElement(using: &rng)
        } else if roll < 0.90 {
            target = model.expired.sorted { $0.uuidString < $1.uuidString }.randomElement(using: &rng)
        } else if roll < 0.95 {
            target = model.postedIDs.randomElement(using: &rng)
        }
        let pendingID = target ?? newID()
        let action: TransferRequest.Action = post
            ? .postPending(pendingID: pendingID, amount: resolutionAmount(of: target))
            : .voidPending(pendingID: pendingID)
        return decorate(TransferRequest(id: newID(), action: action))
    }

    /// An earlier request again: identical (a replay) or with one field changed.
    private mutating func replay() -> TransferRequest {
        guard var request = history.randomElement(using: &rng) else { return moneyRequest(hold: false) }
        if rng.chance(0.7) { return request }
        switch Int.random(in: 0..<3, using: &rng) {
        case 0: request.code = request.code == "transfer" ? "fee" : "transfer"
        case 1: request.metadata = request.metadata == nil ? JSONB(#"{"k": 1}"#) : nil
        default:
            switch request.action {
            case let .post(d, c, a, cur): request.action = .post(debit: d, credit: c, amount: a + 1, currency: cur)
            case let .hold(d, c, a, cur, t): request.action = .hold(debit: d, credit: c, amount: a + 1, currency: cur, timeoutSeconds: t == nil ? 86_400 : nil)
            case let .postPending(p, a): request.action = .postPending(pendingID: p, amount: a.map { $0 + 1 } ?? 1)
            case let .voidPending(p): request.action = .postPending(pendingID: p, amount: nil)
            }
        }
        return request
    }

    /// Two to eight requests, some referring to holds or ids earlier in the same batch.
    private mutating func batch() -> [TransferRequest] {
        var requests: [TransferRequest] = []
        for _ in 0..<Int.random(in: 2...8, using: &rng) {
            let roll = Double.random(in: 0..<1, using: &rng)
            let holdsInBatch = requests.filter { if case .hold = $0.action { true } else { false } }
            if roll < 0.28 {
                requests.append(moneyRequest(hold: false))
            } else if roll < 0.48 {
                requests.append(moneyRequest(hold: true))
            } else if roll < 0.58 {
                requests.append(resolutionRequest(post: true))
            } else if roll < 0.65 {
                requests.append(resolutionRequest(post: false))
            } else if roll < 0.80, let hold = holdsInBatch.randomElement(using: &rng) {
                let action: TransferRequest.Action = rng.chance(0.6)
                    ? .postPending(pendingID: hold.id, amount: resolutionAmount(of: nil))
                    : .voidPending(pendingID: hold.id)
                requests.append(decorate(TransferRequest(id: newID(), action: action)))
            } else if roll < 0.92, let earlier = requests.randomElement(using: &rng) {
                var duplicate = earlier
                if rng.chance(0.4) { duplicate.code = duplicate.code == "fee" ? "transfer" : "fee" }
                requests.append(duplicate)
            } else {
                requests.append(replay())
            }
        }
        return requests
    }

    // MARK: Checks

    private mutating func checkInvariants(full: Bool, journal: Bool) async throws {
        var problems: [String] = []
        let balances = try await bank.allBalances()
        for (id, account) in model.accounts {
            guard let actual = balances[id] else { problems.append("\(labels[id]!) missing"); continue }
            if actual != account.balances { problems.append("\(labels[id]!): balances \(actual), model \(account.balances)") }
            if account.debitsMustNotExceedCredits && actual.debitsPosted + actual.debitsPending > actual.creditsPosted {
                problems.append("\(labels[id]!) breaks debits_must_not_exceed_credits: \(actual)")
            }
            if account.creditsMustNotExceedDebits && actual.creditsPosted + actual.creditsPending > actual.debitsPosted {
                problems.append("\(labels[id]!) breaks credits_must_not_exceed_debits: \(actual)")
            }
        }
        let modelTotals = model.totals
        let totals = try await bank.ledger.totals()
        if Set(totals.map(\.currency)) != Set(modelTotals.keys) { problems.append("totals for \(totals.map(\.currency))") }
        for total in totals {
            if total.debitsPosted != total.creditsPosted || total.debitsPending != total.creditsPending {
                problems.append("\(total.currency) does not balance: \(total)")
            }
            let actual = [total.debitsPosted, total.creditsPosted, total.debitsPending, total.creditsPending]
            if actual != modelTotals[total.currency] {
                problems.append("\(total.currency) totals \(actual), model \(String(describing: modelTotals[total.currency]))")
            }
        }
        // every step: as many stored transfers and resolved holds as the model has
        let counts = try await bank.sql("SELECT (SELECT count(*) FROM ledger.transfers), (SELECT count(*) FROM ledger.pending_resolutions)")[0]
        let (transferCount, resolutionCount) = (try counts.decode(Int.self, at: 0), try counts.decode(Int.self, at: 1))
        if transferCount != model.transfers.count { problems.append("\(transferCount) stored transfers, model \(model.transfers.count)") }
        if resolutionCount != model.resolutions.count { problems.append("\(resolutionCount) resolved holds, model \(model.resolutions.count)") }
        if full {
            let resolutions = try await bank.resolutions()
            let expected = model.resolutions.mapValues(\.rawValue)
            if resolutions != expected {
                let wrong = Set(resolutions.keys).union(expected.keys).filter { resolutions[$0] != expected[$0] }
                problems.append("resolutions differ for \(wrong.count) holds, e.g. \(wrong.prefix(3).map { "\($0): db \(String(describing: resolutions[$0])) model \(String(describing: expected[$0]))" })")
            }
            let open = Set(try await bank.sql("SELECT pending_id FROM ledger.open_holds").map { try $0.decode(UUID.self, at: 0) })
            if open != model.openHolds { problems.append("open holds: \(open.count) in db, \(model.openHolds.count) in model") }
            // each hold resolved at most once: one resolution row, at most one post/void, none if expired
            let twice = try await bank.count(
                """
                SELECT (SELECT count(*) FROM (SELECT pending_id FROM ledger.transfers WHERE pending_id IS NOT NULL
                                              GROUP BY pending_id HAVING count(*) > 1) x)
                     + (SELECT count(*) FROM ledger.pending_resolutions r
                         WHERE (r.resolution = 'expired') = EXISTS (SELECT 1 FROM ledger.transfers t WHERE t.pending_id = r.pending_id))
                     + (SELECT count(*) FROM (SELECT subject_id FROM ledger.journal WHERE event_type = 'pending_expired'
                                              GROUP BY subject_id HAVING count(*) > 1) y)
                """)
            if twice != 0 { problems.append("\(twice) holds resolved more than once or inconsistently") }
        }
        if journal {
            let verification = try await bank.journal.verify()
            if !verification.isIntact { problems.append("journal: \(verification.firstBreak!)") }
            if verification.entriesChecked != model.journalEntries {
                problems.append("journal has \(verification.entriesChecked) entries, model \(model.journalEntries)")
            }
        }
        if !problems.isEmpty { fail("invariants", problems) }
    }

    private mutating func fail(_ what: String, _ problems: [String]) {
        failed = true
        Issue.record(Comment(rawValue: "seed \(seed) (replay with LEDGER_PROPERTY_SEED=\(seed)), step \(step), \(what):\n  "
                             + problems.joined(separator: "\n  ")))
    }

    private func describe(_ request: TransferRequest) -> String {
        let name = { (id: UUID) in self.labels[id] ?? (self.model.transfers[id] != nil ? "t:\(id.uuidString.prefix(8))" : "?\(id.uuidString.prefix(8))") }
        let body: String = switch request.action {
        case let .post(d, c, a, cur): "post \(a) \(cur) \(name(d))→\(name(c))"
        case let .hold(d, c, a, cur, t): "hold \(a) \(cur) \(name(d))→\(name(c)) timeout=\(t.map(String.init) ?? "none")"
        case let .postPending(p, a): "postPending \(name(p)) amount=\(a.map(String.init) ?? "all")"
        case let .voidPending(p): "void \(name(p))"
        }
        return "[\(request.id.uuidString.prefix(8)) \(body) code=\(request.code)\(request.metadata.map { " metadata=\($0.text)" } ?? "")]"
    }
}
