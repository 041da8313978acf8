import Foundation
import Ledger
import Postgres

/// An account a client asks to open.
public struct AccountOpening: Sendable {
    public var id: UUID
    public var ownerID: UUID
    public var currency: String
    public var code: String
    /// Must be true or absent: accounts opened by clients never go below zero.
    public var debitsMustNotExceedCredits: Bool?
    /// Must be false or absent (an account may have one balance rule, and it is the one above).
    public var creditsMustNotExceedDebits: Bool?
    public var metadata: JSONB?

    public init(id: UUID, ownerID: UUID, currency: String, code: String, debitsMustNotExceedCredits: Bool?,
                creditsMustNotExceedDebits: Bool?, metadata: JSONB?) {
        self.id = id
        self.ownerID = ownerID
        self.currency = currency
        self.code = code
        self.debitsMustNotExceedCredits = debitsMustNotExceedCredits
        self.creditsMustNotExceedDebits = creditsMustNotExceedDebits
        self.metadata = metadata
    }
}

/// The money commands a client (any organization, through the API) may give, with the money
/// model's rules applied (`MoneyModel`). What the rules decide about stored state is checked
/// first, to name the field of a refusal; the database checks it again under the account locks
/// (`Principal`), so no request racing this one can slip past.
extension Money {
    /// Opens an account for `opening.ownerID`. The operator opens for anyone, any other organization
    /// but the committee for itself; the id must be a client's (not version 8), the code not one of
    /// the bank's, and the account never goes below zero.
    /// - Throws: `TechBankError` (field named) or `LedgerError`; an id already used by an account the
    ///   caller may not see is `accountExistsWithDifferentFields` without details.
    public func openAccount(_ opening: AccountOpening, by identity: Identity) async throws -> (account: Account, created: Bool) {
        let organizations = Organizations(pool: pool)
        guard let owner = try await organizations.get(opening.ownerID), identity.canSee(organizationID: owner.id, memberOf: owner.subParkID) else {
            throw TechBankError(.validation, field: "owner_id", "no such organization")
        }
        guard MoneyModel.mayOpenAccount(for: owner.id, identity) else {
            throw TechBankError(.forbidden, field: "owner_id", "an organization may open accounts only for itself")
        }
        try Self.requireClientID(opening.id, field: "id")
        guard !MoneyModel.bankAccountCodes.contains(opening.code) else {
            throw TechBankError(.validation, field: "code", "\(MoneyModel.bankAccountCodes.sorted().joined(separator: ", ")) are the bank's account codes")
        }
        guard opening.debitsMustNotExceedCredits != false else {
            throw TechBankError(.validation, field: "debits_must_not_exceed_credits", "must be true: only the bank's settlement accounts may go below zero")
        }
        guard opening.creditsMustNotExceedDebits != true else {
            throw TechBankError(.validation, field: "credits_must_not_exceed_debits", "must be false: accounts opened through the API keep debits within credits")
        }
        let new = NewAccount(id: opening.id, currency: opening.currency, ownerID: owner.id, code: opening.code,
                             debitsMustNotExceedCredits: true, metadata: opening.metadata)
        do {
            return try await Ledger(pool: pool).createAccount(new)
        } catch let error as LedgerError where error.code == .accountExistsWithDifferentFields {
            guard let existing = try await Ledger(pool: pool).account(opening.id), try await canSee(existing, identity) else {
                throw LedgerError(.accountExistsWithDifferentFields, field: "id", "this id is already in use; choose another")
            }
            throw error
        }
    }

    /// Creates `requests` for `identity` as one batch (`atomic`: all or nothing). Ids must be a
    /// client's; a tenant's transfers may not carry the bank's codes; money leaves only accounts
    /// the caller owns (the operator: any), and a hold is posted or voided only by its debit
    /// account's owner and never by a tenant when the hold is the bank's (a deal's escrow).
    /// - Parameter field: the field prefix of request `i` in errors (`transfers[i].` or empty).
    /// - Throws: `TechBankError` naming the field: `.validation`, `.notFound` for an account or
    ///   hold the caller may not see (exactly like a missing one), `.forbidden` for one it sees
    ///   but may not move.
    ///
    /// The database enforces the same rules (`Principal`); the lookups here only name a refusal's
    /// field and status. So a single transfer goes to the ledger first (with concurrent callers'
    /// single transfers, `GroupCommit`), and is looked up only when it did not come back new (`ok`):
    /// then it was refused, or replayed (`exists`, which the ledger reports before whose the
    /// accounts are), and nothing was recorded. A batch looks up first, since some of its transfers
    /// could land beside one the lookups would refuse.
    public func transfer(_ requests: [TransferRequest], atomic: Bool, by identity: Identity, field: (Int) -> String) async throws -> [TransferResult] {
        let principal = MoneyModel.principal(for: identity)
        guard atomic, requests.count == 1 else {
            try await check(requests, lookups: true, principal: principal, identity, field: field)
            return try await Ledger(pool: pool).createTransfers(requests, atomic: atomic, principal: principal)
        }
        try await check(requests, lookups: false, principal: principal, identity, field: field)
        let result = try await singleTransfers.createTransfer(requests[0], principal: principal)
        if result.outcome != .ok { try await check(requests, lookups: true, principal: principal, identity, field: field) }
        return [result]
    }

    /// Throws the first refusal of `requests` in order: ids must be a client's and a tenant's codes
    /// not the bank's; with `lookups`, each debit account and hold must also be the caller's to move.
    private func check(_ requests: [TransferRequest], lookups: Bool, principal: Principal?, _ identity: Identity,
                       field: (Int) -> String) async throws {
        var checkedDebits: Set<UUID> = []
        for (index, request) in requests.enumerated() {
            let prefix = field(index)
            try Self.requireClientID(request.id, field: prefix + "id")
            if let principal, principal.reservedCodes.contains(request.code) {
                throw TechBankError(.validation, field: prefix + "code", "'\(request.code)' is one of the bank's codes; choose another")
            }
            guard lookups else { continue }
            switch request.action {
            case let .post(debit, _, _, _), let .hold(debit, _, _, _, _):
                guard checkedDebits.insert(debit).inserted else { continue }
                try await requireMovable(debit, field: prefix + "debit_account_id", what: "account", identity)
            case let .postPending(pendingID, _), let .voidPending(pendingID):
                let holdField = prefix + (request.action == .voidPending(pendingID: pendingID) ? "void_pending_id" : "post_pending_id")
                try await requireResolvable(pendingID, field: holdField, before: requests[..<index], principal: principal, identity)
            }
        }
    }

    /// A hold may be resolved by whoever may move its debit account's money, unless it is the
    /// bank's and the caller a tenant. A hold not stored yet must be made earlier in this batch;
    /// the database then checks whose it is when it is resolved.
    private func requireResolvable(_ pendingID: UUID, field: String, before earlier: ArraySlice<TransferRequest>, principal: Principal?,
                                   _ identity: Identity) async throws {
        guard let hold = try await Ledger(pool: pool).transfer(pendingID), hold.kind == .pending else {
            let madeEarlier = earlier.contains { if case .hold = $0.action { $0.id == pendingID } else { false } }
            guard madeEarlier else { throw TechBankError(.notFound, field: field, "no such hold") }
            return
        }
        try await requireMovable(hold.debitAccountID, field: field, what: "hold", identity)
        if let principal, principal.reservedCodes.contains(hold.code) {
            throw TechBankError(.forbidden, field: field, "this hold is the bank's ('\(hold.code)', a deal's escrow); it moves only through the deal")
        }
    }

    /// The account exists, the caller sees it and owns it (or is the operator).
    private func requireMovable(_ accountID: UUID, field: String, what: String, _ identity: Identity) async throws {
        guard let account = try await Ledger(pool: pool).account(accountID), try await canSee(account, identity) else {
            throw TechBankError(.notFound, field: field, "no such \(what)")
        }
        guard identity.kind == .operator || account.ownerID == identity.organizationID else {
            throw TechBankError(.forbidden, field: field, "only the account's owner may move money out of it")
        }
    }

    /// Whether `identity` may see `account`: its owner's data (see `Identity.canSee`).
    public func canSee(_ account: Account, _ identity: Identity) async throws -> Bool {
        let subPark = try await Organizations(pool: pool).subPark(of: account.ownerID, seenBy: identity)
        return identity.canSee(organizationID: account.ownerID, memberOf: subPark)
    }

    private static func requireClientID(_ id: UUID, field: String) throws {
        guard MoneyModel.isClientID(id) else {
            throw TechBankError(.validation, field: field, "UUIDs of version 8 are reserved for ids the bank derives; use another version, such as 4 or 7")
        }
    }
}
