import Crypto
import Foundation
import Ledger
import Postgres

/// How every amount is split: basis points of minor units, rounded down; what rounding leaves
/// over goes to the seller (or, among inventors, stays with the institute). The parts always sum
/// to the whole.
public enum Split {
    /// `floor(amount × bp / 10000)`, exact for every amount up to Int64.max.
    public static func part(of amount: Int64, bp: Int) -> Int64 {
        precondition(amount >= 0 && (0...10_000).contains(bp))
        let product = amount.multipliedFullWidth(by: Int64(bp))
        return Int64(10_000).dividingFullWidth(product).quotient
    }

    /// Seller income `amount` split into the broker's fee, the sub-park's fee and the seller's rest.
    public static func fees(of amount: Int64, brokerBP: Int, subParkBP: Int) -> (broker: Int64, subPark: Int64, seller: Int64) {
        let broker = part(of: amount, bp: brokerBP)
        let subPark = part(of: amount, bp: subParkBP)
        return (broker, subPark, amount - broker - subPark)
    }

    /// The seller's share split between the institute, which keeps `instituteBP` first, and the
    /// inventors by their shares; the rounding remainder stays with the institute.
    public static func inventors(of amount: Int64, instituteBP: Int, shares: [Int]) -> (institute: Int64, inventors: [Int64]) {
        let pool = amount - part(of: amount, bp: instituteBP)
        let parts = shares.map { part(of: pool, bp: $0) }
        return (amount - parts.reduce(0, +), parts)
    }
}

/// A ledger batch refused: the first failing transfer's outcome.
public struct PaymentRefused: Error, Sendable, Equatable {
    public let outcome: TransferOutcome
    public let detail: String?
}

/// An organization's accounts in one currency with their totals.
public struct CurrencyBalances: Sendable, Equatable {
    public let currency: String
    public let accounts: [Account]
    public let total: Totals

    /// Sums of the accounts' balances; a sum beyond Int64.max saturates.
    public struct Totals: Sendable, Equatable {
        public let debitsPosted: Int64
        public let creditsPosted: Int64
        public let debitsPending: Int64
        public let creditsPending: Int64
    }
}

/// Deposits, withdrawals and balances: the bank's side of organizations' money.
public struct Money: Sendable {
    /// The most accounts a balances listing shows.
    public static let maxAccountsListed = 1_000

    public let pool: PostgresPool
    /// Where clients' single transfers go: concurrent ones share a ledger call.
    public let singleTransfers: GroupCommit

    /// - Parameter singleTransfers: share one across every `Money` of a server, so that all its
    ///   clients' single transfers are grouped together; by default this `Money` has its own.
    public init(pool: PostgresPool, singleTransfers: GroupCommit? = nil) {
        self.pool = pool
        self.singleTransfers = singleTransfers ?? GroupCommit(pool: pool)
    }

    /// Credits `organizationID`'s operating account from the bank's settlement account (a
    /// payment received under `externalRef`), or the reverse for a withdrawal.
    /// - Throws: `.conflict` if `externalRef` was used before; `.validation` (currency) for a
    ///   currency the ledger does not know; `PaymentRefused` for a withdrawal beyond the available balance.
    public func move(_ direction: PaymentDirection, organizationID: UUID, amount: Int64, currency: String, externalRef: String, actor: UUID) async throws -> Transfer {
        do {
            return try await pool.withTransaction { connection in
                let bank = try await Self.bankID(connection)
                let operating = AccountRole.operating(organizationID).account(currency)
                let settlement = AccountRole.settlement(bank: bank).account(currency)
                try await Ledger.openAccount(operating, on: connection)
                try await Ledger.openAccount(settlement, on: connection)
                let transferID = derivedID("payment", externalRef)
                let inserted = try await connection.query(
                    """
                    INSERT INTO techbank.payments (external_ref, direction, organization_id, transfer_id, amount, currency, created_by)
                    VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (external_ref) DO NOTHING RETURNING 1
                    """,
                    [externalRef, direction.rawValue, organizationID, transferID, amount, currency, actor])
                guard !inserted.isEmpty else {
                    throw TechBankError(.conflict, field: "external_ref", "this payment reference has been used")
                }
                let (debit, credit) = direction == .deposit ? (settlement.id, operating.id) : (operating.id, settlement.id)
                let results = try await Self.pay(
                    [TransferRequest(id: transferID, action: .post(debit: debit, credit: credit, amount: amount, currency: currency), code: direction.code.rawValue,
                                     metadata: try JSONB(encoding: ["external_ref": externalRef]))],
                    on: connection)
                try await connection.query(
                    "SELECT ledger.journal_append($1, $2, jsonb_build_object('actor_id', $3::uuid, 'amount', $4::bigint, 'currency', $5::text, 'external_ref', $6::text, 'transfer_id', $7::uuid))",
                    [direction.rawValue, organizationID, actor, amount, currency, externalRef, transferID])
                guard let transfer = results.first?.transfer else { throw PaymentRefused(outcome: .accountNotFound, detail: nil) }
                return transfer
            }
        } catch let error as LedgerError where error.code == .unknownCurrency {
            throw TechBankError(.validation, field: "currency", "the ledger does not know this currency")
        }
    }

    /// Every account `organizationID` owns, by currency, with totals.
    public func balances(of organizationID: UUID) async throws -> [CurrencyBalances] {
        let accounts = try await Ledger(pool: pool).accounts(ownedBy: organizationID, limit: Self.maxAccountsListed)
        return Dictionary(grouping: accounts, by: \.currency).sorted { $0.key < $1.key }.map { currency, accounts in
            CurrencyBalances(currency: currency, accounts: accounts, total: Self.total(accounts))
        }
    }

    static func total(_ accounts: [Account]) -> CurrencyBalances.Totals {
        var sums: [Int64] = [0, 0, 0, 0]
        for account in accounts {
            for (index, value) in [account.debitsPosted, account.creditsPosted, account.debitsPending, account.creditsPending].enumerated() {
                let (sum, overflow) = sums[index].addingReportingOverflow(value)
                sums[index] = overflow ? .max : sum
            }
        }
        return CurrencyBalances.Totals(debitsPosted: sums[0], creditsPosted: sums[1], debitsPending: sums[2], creditsPending: sums[3])
    }

    // MARK: Shared with deals

    /// The operator: the bank that owns escrow and settlement accounts.
    static func bankID(_ connection: PostgresConnection) async throws -> UUID {
        let rows = try await connection.query("SELECT id FROM techbank.organizations WHERE kind = 'operator'")
        guard let row = rows.first else { throw TechBankError(.conflict, "the bank (operator organization) does not exist yet") }
        return try row.decode(UUID.self, at: 0)
    }

    /// Runs `requests` as one atomic ledger batch in the caller's transaction.
    /// - Throws: `PaymentRefused` with the first failure's outcome; the caller's transaction then
    ///   rolls back as a whole.
    @discardableResult
    static func pay(_ requests: [TransferRequest], on connection: PostgresConnection) async throws -> [TransferResult] {
        guard !requests.isEmpty else { return [] }
        let results = try await Ledger.createTransfers(requests, atomic: true, on: connection)
        if let failure = results.first(where: { !$0.outcome.succeeded && $0.outcome != .linkedEventFailed }) {
            throw PaymentRefused(outcome: failure.outcome, detail: failure.detail)
        }
        return results
    }
}

public enum PaymentDirection: String, Sendable {
    case deposit
    case withdrawal

    /// The bank's code on the payment's transfer.
    var code: MoneyModel.BankCode { self == .deposit ? .deposit : .withdrawal }
}
