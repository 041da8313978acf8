import Foundation
import Ledger
import Postgres

/// An in-memory model of the ledger's transfer rules, written from the documented behaviour (not
/// from the SQL): plain dictionaries, one request at a time, in batch order.
struct LedgerModel {
    struct ModelAccount {
        let currency: String
        let debitsMustNotExceedCredits: Bool
        let creditsMustNotExceedDebits: Bool
        var closed = false
        var balances = Balances()
    }

    struct StoredTransfer: Equatable, CustomStringConvertible {
        let id: UUID
        let kind: TransferKind
        let debit: UUID
        let credit: UUID
        let amount: Int64
        let currency: String
        let code: String
        let pendingID: UUID?
        let timeoutSeconds: Int32?
        let metadata: String?

        init(id: UUID, kind: TransferKind, debit: UUID, credit: UUID, amount: Int64, currency: String, code: String,
             pendingID: UUID?, timeoutSeconds: Int32?, metadata: String?) {
            self.id = id
            self.kind = kind
            self.debit = debit
            self.credit = credit
            self.amount = amount
            self.currency = currency
            self.code = code
            self.pendingID = pendingID
            self.timeoutSeconds = timeoutSeconds
            self.metadata = metadata
        }

        init(_ transfer: Transfer) {
            self.init(id: transfer.id, kind: transfer.kind, debit: transfer.debitAccountID, credit: transfer.creditAccountID,
                      amount: transfer.amount, currency: transfer.currency, code: transfer.code, pendingID: transfer.pendingID,
                      timeoutSeconds: transfer.timeoutSeconds, metadata: transfer.metadata?.text)
        }

        var description: String {
            "\(kind.rawValue) \(amount) \(currency) \(debit.uuidString.prefix(4))→\(credit.uuidString.prefix(4)) code=\(code)"
                + (pendingID.map { " pending=\($0.uuidString.prefix(8))" } ?? "") + (timeoutSeconds.map { " timeout=\($0)" } ?? "")
                + (metadata.map { " metadata=\($0)" } ?? "")
        }
    }

    enum Resolution: String { case posted, voided, expired }

    struct Expected: Equatable, CustomStringConvertible {
        let outcome: TransferOutcome
        let detail: String?
        var description: String { outcome.rawValue + (detail.map { "(\($0))" } ?? "") }
    }

    private(set) var accounts: [UUID: ModelAccount] = [:]
    private(set) var transfers: [UUID: StoredTransfer] = [:]
    private(set) var resolutions: [UUID: Resolution] = [:]
    /// Every hold ever stored, in creation order.
    private(set) var holds: [UUID] = []
    /// Every posted transfer ever stored.
    private(set) var postedIDs: [UUID] = []
    /// Holds whose timeout has certainly passed (the test only marks them after waiting).
    private(set) var expired: Set<UUID> = []
    /// How many entries the journal should hold.
    private(set) var journalEntries = 0

    mutating func openAccount(_ id: UUID, currency: String, debitsMustNotExceedCredits: Bool, creditsMustNotExceedDebits: Bool) {
        accounts[id] = ModelAccount(currency: currency, debitsMustNotExceedCredits: debitsMustNotExceedCredits,
                                    creditsMustNotExceedDebits: creditsMustNotExceedDebits)
        journalEntries += 1
    }

    mutating func close(_ id: UUID) {
        guard accounts[id]?.closed == false else { return }
        accounts[id]?.closed = true
        journalEntries += 1
    }

    mutating func markExpired(_ id: UUID) { expired.insert(id) }

    func isOpenHold(_ id: UUID) -> Bool { transfers[id]?.kind == .pending && resolutions[id] == nil }

    var openHolds: Set<UUID> { Set(holds.filter { resolutions[$0] == nil }) }

    /// What the sweeper releases: every open hold whose timeout has passed.
    mutating func expireDueHolds() -> Int {
        var released = 0
        for id in holds where expired.contains(id) && resolutions[id] == nil {
            release(id, as: .expired)
            journalEntries += 1
            released += 1
        }
        return released
    }

    /// Per currency: debits posted, credits posted, debits pending, credits pending.
    var totals: [String: [Int64]] {
        var result: [String: [Int64]] = [:]
        for account in accounts.values {
            let b = account.balances
            let current = result[account.currency] ?? [0, 0, 0, 0]
            result[account.currency] = [current[0] + b.debitsPosted, current[1] + b.creditsPosted,
                                        current[2] + b.debitsPending, current[3] + b.creditsPending]
        }
        return result
    }

    // MARK: Batches

    /// Applies a batch as `Ledger.createTransfers` documents it and returns the expected results.
    mutating func apply(_ requests: [TransferRequest], atomic: Bool) -> [Expected] {
        var scratch = self
        var results: [Expected] = []
        for (index, request) in requests.enumerated() {
            let result = scratch.evaluate(request, atomic: atomic)
            results.append(result)
            if atomic && !result.outcome.succeeded {
                return requests.indices.map { $0 == index ? result : Expected(outcome: .linkedEventFailed, detail: nil) }
            }
        }
        self = scratch
        return results
    }

    private mutating func evaluate(_ request: TransferRequest, atomic: Bool) -> Expected {
        var refusal: Expected?
        switch request.action {
        case let .post(debit, credit, amount, currency):
            refusal = refusalOfMoneyMovement(debit: debit, credit: credit, amount: amount, currency: currency)
            if refusal == nil, transfers[request.id] == nil {
                store(request, kind: .posted, debit: debit, credit: credit, amount: amount, currency: currency, pendingID: nil, timeout: nil)
                accounts[debit]!.balances.debitsPosted += amount
                accounts[credit]!.balances.creditsPosted += amount
                postedIDs.append(request.id)
                return Expected(outcome: .ok, detail: nil)
            }
        case let .hold(debit, credit, amount, currency, timeout):
            refusal = refusalOfMoneyMovement(debit: debit, credit: credit, amount: amount, currency: currency)
            if refusal == nil, transfers[request.id] == nil {
                store(request, kind: .pending, debit: debit, credit: credit, amount: amount, currency: currency, pendingID: nil, timeout: timeout)
                accounts[debit]!.balances.debitsPending += amount
                accounts[credit]!.balances.creditsPending += amount
                holds.append(request.id)
                return Expected(outcome: .ok, detail: nil)
            }
        case let .postPending(pendingID, amount):
            if let amount, amount <= 0 {
                refusal = Expected(outcome: .amountMustBePositive, detail: nil)
            } else {
                refusal = resolve(request, pendingID: pendingID, post: true, amount: amount, atomic: atomic)
                if refusal == nil { return Expected(outcome: .ok, detail: nil) }
            }
        case let .voidPending(pendingID):
            refusal = resolve(request, pendingID: pendingID, post: false, amount: nil, atomic: atomic)
            if refusal == nil { return Expected(outcome: .ok, detail: nil) }
        }
        // An existing id wins over every other outcome.
        if let stored = transfers[request.id] {
            let differences = self.differences(stored, request)
            return differences.isEmpty ? Expected(outcome: .exists, detail: nil)
                : Expected(outcome: .existsWithDifferentFields, detail: differences)
        }
        return refusal!
    }

    private func refusalOfMoneyMovement(debit: UUID, credit: UUID, amount: Int64, currency: String) -> Expected? {
        if amount <= 0 { return Expected(outcome: .amountMustBePositive, detail: nil) }
        if debit == credit { return Expected(outcome: .accountsMustBeDifferent, detail: nil) }
        guard let d = accounts[debit] else { return Expected(outcome: .accountNotFound, detail: "debit_account_id") }
        guard let c = accounts[credit] else { return Expected(outcome: .accountNotFound, detail: "credit_account_id") }
        if d.currency != currency { return Expected(outcome: .currencyMismatch, detail: "debit_account_id") }
        if c.currency != currency { return Expected(outcome: .currencyMismatch, detail: "credit_account_id") }
        if d.closed { return Expected(outcome: .accountClosed, detail: "debit_account_id") }
        if c.closed { return Expected(outcome: .accountClosed, detail: "credit_account_id") }
        let db = d.balances, cb = c.balances
        if d.debitsMustNotExceedCredits && amount > db.creditsPosted - db.debitsPosted - db.debitsPending {
            return Expected(outcome: .exceedsCredits, detail: nil)
        }
        if c.creditsMustNotExceedDebits && amount > cb.debitsPosted - cb.creditsPosted - cb.creditsPending {
            return Expected(outcome: .exceedsDebits, detail: nil)
        }
        if amount > Int64.max - db.debitsPosted - db.debitsPending { return Expected(outcome: .overflowsDebits, detail: nil) }
        if amount > Int64.max - cb.creditsPosted - cb.creditsPending { return Expected(outcome: .overflowsCredits, detail: nil) }
        return nil
    }

    /// Posts or voids a hold; nil when it succeeded.
    private mutating func resolve(_ request: TransferRequest, pendingID: UUID, post: Bool, amount: Int64?, atomic: Bool) -> Expected? {
        guard let hold = transfers[pendingID], hold.kind == .pending else {
            return Expected(outcome: .pendingTransferNotFound, detail: nil)
        }
        switch resolutions[pendingID] {
        case .posted: return Expected(outcome: .pendingTransferAlreadyPosted, detail: nil)
        case .voided: return Expected(outcome: .pendingTransferAlreadyVoided, detail: nil)
        case .expired: return Expected(outcome: .pendingTransferExpired, detail: nil)
        case nil: break
        }
        if expired.contains(pendingID) {
            // An independent batch releases the expired hold on the spot (unless the id is taken).
            if !atomic && transfers[request.id] == nil {
                release(pendingID, as: .expired)
                journalEntries += 1
            }
            return Expected(outcome: .pendingTransferExpired, detail: nil)
        }
        let posted = post ? (amount ?? hold.amount) : hold.amount
        if posted > hold.amount { return Expected(outcome: .amountExceedsPending, detail: nil) }
        guard transfers[request.id] == nil else { return Expected(outcome: .exists, detail: nil) }  // replaced by the caller
        store(request, kind: post ? .postPending : .voidPending, debit: hold.debit, credit: hold.credit, amount: posted,
              currency: hold.currency, pendingID: pendingID, timeout: nil)
        release(pendingID, as: post ? .posted : .voided)
        if post {
            accounts[hold.debit]!.balances.debitsPosted += posted
            accounts[hold.credit]!.balances.creditsPosted += posted
        }
        return nil
    }

    private mutating func release(_ holdID: UUID, as resolution: Resolution) {
        let hold = transfers[holdID]!
        resolutions[holdID] = resolution
        accounts[hold.debit]!.balances.debitsPending -= hold.amount
        accounts[hold.credit]!.balances.creditsPending -= hold.amount
    }

    private mutating func store(_ request: TransferRequest, kind: TransferKind, debit: UUID, credit: UUID, amount: Int64,
                                currency: String, pendingID: UUID?, timeout: Int32?) {
        transfers[request.id] = StoredTransfer(
            id: request.id, kind: kind, debit: debit, credit: credit, amount: amount, currency: currency, code: request.code,
            pendingID: pendingID, timeoutSeconds: timeout, metadata: request.metadata?.text)
        journalEntries += 1
    }

    /// The sorted, comma-separated names of the fields in which `request` differs from `stored`.
    /// A post/void request carries no accounts or currency; a post without amount means the
    /// whole hold; a void's amount is not compared.
    private func differences(_ stored: StoredTransfer, _ request: TransferRequest) -> String {
        let kind: TransferKind
        var debit: UUID?, credit: UUID?, amount: Int64?, currency: String?, pendingID: UUID?, timeout: Int32?
        switch request.action {
        case let .post(d, c, a, cur): (kind, debit, credit, amount, currency) = (.posted, d, c, a, cur)
        case let .hold(d, c, a, cur, t): (kind, debit, credit, amount, currency, timeout) = (.pending, d, c, a, cur, t)
        case let .postPending(p, a): (kind, pendingID, amount) = (.postPending, p, a)
        case let .voidPending(p): (kind, pendingID) = (.voidPending, p)
        }
        var fields: [String] = []
        if kind != .voidPending {
            let wanted = amount ?? pendingID.flatMap { transfers[$0] }.flatMap { $0.kind == .pending ? $0.amount : nil }
            if stored.amount != wanted { fields.append("amount") }
        }
        if stored.code != request.code { fields.append("code") }
        let moves = kind == .posted || kind == .pending
        if moves && stored.credit != credit { fields.append("credit_account_id") }
        if moves && stored.currency != currency { fields.append("currency") }
        if moves && stored.debit != debit { fields.append("debit_account_id") }
        if stored.kind != kind { fields.append("kind") }
        if stored.metadata != request.metadata?.text { fields.append("metadata") }
        if stored.pendingID != pendingID { fields.append("pending_id") }
        if stored.timeoutSeconds != timeout { fields.append("timeout_seconds") }
        return fields.joined(separator: ",")
    }
}
