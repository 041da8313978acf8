import Foundation
import Postgres

/// An ISO 4217 currency code, e.g. `CNY`. Amounts are always integer minor units of it.
public struct CurrencyCode: Hashable, Sendable, Codable, CustomStringConvertible {
    public let code: String
    /// Accepts exactly three upper-case ASCII letters; whether the ledger knows the currency is
    /// checked by the database (`ledger.currencies`).
    public init?(_ code: String) {
        guard code.utf8.count == 3, code.utf8.allSatisfy({ (65...90).contains($0) }) else { return nil }
        self.code = code
    }
    public var description: String { code }
}

/// A double-entry account with its four running balances, in minor units.
public struct Account: Sendable, Equatable {
    public let id: UUID
    public let currency: String
    /// The organization that owns the account; opaque to the ledger.
    public let ownerID: UUID
    /// The account's kind, e.g. `operating`, `escrow`, `fees`.
    public let code: String
    public let debitsMustNotExceedCredits: Bool
    public let creditsMustNotExceedDebits: Bool
    public let metadata: JSONB?
    public let closed: Bool
    public let createdAt: Date
    public let debitsPosted: Int64
    public let creditsPosted: Int64
    public let debitsPending: Int64
    public let creditsPending: Int64
}

/// What a caller supplies to open an account.
public struct NewAccount: Sendable {
    public var id: UUID
    public var currency: String
    public var ownerID: UUID
    public var code: String
    public var debitsMustNotExceedCredits: Bool
    public var creditsMustNotExceedDebits: Bool
    public var metadata: JSONB?

    public init(
        id: UUID = UUID(), currency: String, ownerID: UUID, code: String = "operating",
        debitsMustNotExceedCredits: Bool = false, creditsMustNotExceedDebits: Bool = false, metadata: JSONB? = nil
    ) {
        self.id = id
        self.currency = currency
        self.ownerID = ownerID
        self.code = code
        self.debitsMustNotExceedCredits = debitsMustNotExceedCredits
        self.creditsMustNotExceedDebits = creditsMustNotExceedDebits
        self.metadata = metadata
    }
}

/// The four kinds of transfer.
public enum TransferKind: String, Sendable, Codable, CaseIterable {
    /// Moves money now.
    case posted
    /// Reserves money (an escrow hold), optionally until a timeout.
    case pending
    /// Posts a pending transfer, fully or in part; the rest is released.
    case postPending = "post_pending"
    /// Releases a pending transfer.
    case voidPending = "void_pending"
}

/// A request to create one transfer. The id is the idempotency key.
public struct TransferRequest: Sendable, Equatable {
    public enum Action: Sendable, Equatable {
        /// Move `amount` from the debit to the credit account now.
        case post(debit: UUID, credit: UUID, amount: Int64, currency: String)
        /// Hold `amount`; released automatically after `timeoutSeconds` if given.
        case hold(debit: UUID, credit: UUID, amount: Int64, currency: String, timeoutSeconds: Int32?)
        /// Post the hold `pendingID`: all of it, or `amount` of it (the rest is released).
        case postPending(pendingID: UUID, amount: Int64?)
        /// Release the hold `pendingID`.
        case voidPending(pendingID: UUID)
    }

    public var id: UUID
    public var action: Action
    /// The transfer's reason, e.g. `escrow_fund`, `fee`. Lower-case letters, digits, `_`.
    public var code: String
    public var metadata: JSONB?

    public init(id: UUID, action: Action, code: String = "transfer", metadata: JSONB? = nil) {
        self.id = id
        self.action = action
        self.code = code
        self.metadata = metadata
    }
}

/// A stored transfer. Transfers are never changed or deleted.
public struct Transfer: Sendable, Equatable {
    public let id: UUID
    public let kind: TransferKind
    public let debitAccountID: UUID
    public let creditAccountID: UUID
    public let amount: Int64
    public let currency: String
    public let code: String
    /// For post/void: the hold it resolves.
    public let pendingID: UUID?
    public let timeoutSeconds: Int32?
    /// For holds with a timeout: when the sweeper releases it.
    public let expiresAt: Date?
    public let metadata: JSONB?
    public let createdAt: Date
}

/// The outcome of one transfer request: a closed list of codes, stable in the API.
public enum TransferOutcome: String, Sendable, Codable, CaseIterable {
    case ok
    /// The id exists with identical fields; the stored transfer is returned (a replay).
    case exists
    /// The id exists with different fields; `detail` names them.
    case existsWithDifferentFields = "exists_with_different_fields"
    case amountMustBePositive = "amount_must_be_positive"
    case accountsMustBeDifferent = "accounts_must_be_different"
    case accountNotFound = "account_not_found"
    case currencyMismatch = "currency_mismatch"
    case accountClosed = "account_closed"
    /// A debit would take `debits_posted + debits_pending` above `credits_posted` on an account
    /// flagged `debits_must_not_exceed_credits`.
    case exceedsCredits = "exceeds_credits"
    /// The mirror rule on an account flagged `credits_must_not_exceed_debits`.
    case exceedsDebits = "exceeds_debits"
    case overflowsDebits = "overflows_debits"
    case overflowsCredits = "overflows_credits"
    case pendingTransferNotFound = "pending_transfer_not_found"
    case pendingTransferAlreadyPosted = "pending_transfer_already_posted"
    case pendingTransferAlreadyVoided = "pending_transfer_already_voided"
    case pendingTransferExpired = "pending_transfer_expired"
    case amountExceedsPending = "amount_exceeds_pending"
    /// The transfer carries one of the principal's reserved codes (`detail` = `code`), credits an
    /// account whose code is one (`credit_account_id`), or resolves a hold that carries one
    /// (`pending_id`).
    case codeReserved = "code_reserved"
    /// In an atomic batch: this transfer was fine but another one failed, so none was applied.
    case linkedEventFailed = "linked_event_failed"

    /// Whether the transfer is stored (newly, or from an identical earlier request).
    public var succeeded: Bool { self == .ok || self == .exists }
}

/// On whose behalf a batch is made, checked by the database under the account locks. Without a
/// principal a batch may move any account's money (the ledger's operator).
public struct Principal: Sendable, Equatable {
    /// Money may leave only accounts this owner holds, and only its holds may be posted or voided;
    /// another owner's account or hold answers `account_not_found` / `pending_transfer_not_found`.
    public let ownerID: UUID
    /// Codes the principal may not put on a transfer, nor credit an account of, nor resolve a hold
    /// of (`code_reserved`).
    public let reservedCodes: [String]

    public init(ownerID: UUID, reservedCodes: [String]) {
        self.ownerID = ownerID
        self.reservedCodes = reservedCodes
    }
}

/// The result for one request of a batch.
public struct TransferResult: Sendable, Equatable {
    public let index: Int
    public let id: UUID
    public let outcome: TransferOutcome
    /// More about a failure: which fields differ, which account is missing.
    public let detail: String?
    /// The stored transfer, for `ok` and `exists`.
    public let transfer: Transfer?
}

/// A page of results and the cursor for the next one.
public struct Page<Item: Sendable>: Sendable {
    public let items: [Item]
    /// Pass back to get the next page; nil on the last page.
    public let nextCursor: Int64?
}

/// Posted and pending totals of all accounts in one currency. In a sound ledger debits equal
/// credits, posted and pending separately.
public struct CurrencyTotals: Sendable, Equatable {
    public let currency: String
    public let debitsPosted: Int64
    public let creditsPosted: Int64
    public let debitsPending: Int64
    public let creditsPending: Int64
}

/// An account's posted balance at a past instant, recomputed from the transfer history.
public struct HistoricalBalance: Sendable, Equatable {
    public let accountID: UUID
    public let at: Date
    public let debitsPosted: Int64
    public let creditsPosted: Int64
}
