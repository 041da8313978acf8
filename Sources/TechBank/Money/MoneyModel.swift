import Crypto
import Foundation
import Ledger
import Postgres

/// The bank's money model: which accounts exist, who may open them, which may go negative, which
/// transfer codes are the bank's, and which ids only the bank may use. Every money rule that
/// depends on who is asking is decided here; the HTTP layer translates, and the database enforces
/// what is decided here (`Principal` in `ledger.create_transfers`, the account triggers in
/// `schema.sql`). The README's "Money model" section says the same in prose.
public enum MoneyModel {
    /// Transfer codes only the bank puts on transfers. A tenant's transfer may not carry one, and a
    /// hold carrying one (a deal's escrow) moves only through the bank's own operations.
    public enum BankCode: String, Sendable, CaseIterable {
        case deposit
        case withdrawal
        case escrowFund = "escrow_fund"
        case escrowRelease = "escrow_release"
        case escrowRefund = "escrow_refund"
        case brokerFee = "broker_fee"
        case subParkFee = "sub_park_fee"
        case sellerIncome = "seller_income"
        case inventorShare = "inventor_share"
    }

    /// Account codes only the accounts the bank opens carry (`AccountRole`).
    public static let bankAccountCodes: Set<String> = ["settlement", "escrow", "inventor"]

    /// The codes of the accounts that hold the bank's own money: only the bank pays into them (a
    /// tenant's payment there would belong to no deposit and no deal).
    public static let bankHeldAccountCodes: Set<String> = ["settlement", "escrow"]

    /// Whether a client may choose `id` for an account or a transfer. Ids the bank derives for
    /// itself (`derivedID`: payments, deal steps, the bank's and organizations' role accounts) are
    /// UUIDs of version 8; clients use any other version, so no client can take such an id first.
    public static func isClientID(_ id: UUID) -> Bool {
        id.uuid.6 >> 4 != 8
    }

    /// Who may move money: the operator (the bank) any account's, every other organization only
    /// its own, never with the bank's codes and never into the bank's own accounts. The committee
    /// holds no money.
    static func principal(for identity: Identity) -> Principal? {
        identity.kind == .operator ? nil
            : Principal(ownerID: identity.organizationID, reservedCodes: BankCode.allCases.map(\.rawValue) + bankHeldAccountCodes.sorted())
    }

    /// Whether `identity` may open accounts for `owner`: the operator for anyone, every other
    /// organization but the committee for itself.
    static func mayOpenAccount(for owner: UUID, _ identity: Identity) -> Bool {
        identity.kind == .operator || (owner == identity.organizationID && identity.kind != .committee)
    }
}

/// Which account plays which role. Ids are derived from the role, so an account is opened on
/// demand, exactly once, by whoever needs it first; an existing account with such an id but other
/// fields is never adopted (`Ledger.openAccount` refuses it).
enum AccountRole {
    /// An organization's own money: it can never go below zero.
    case operating(UUID)
    /// The bank's: money in transit held for deals. Never below zero.
    case escrow(bank: UUID)
    /// The bank's: the other side of deposits and withdrawals (money outside the bank). The only
    /// kind of account that may go below zero.
    case settlement(bank: UUID)

    func account(_ currency: String) -> NewAccount {
        switch self {
        case .operating(let owner):
            NewAccount(id: derivedID("account", owner.uuidString, currency, "operating"), currency: currency, ownerID: owner, code: "operating",
                       debitsMustNotExceedCredits: true)
        case .escrow(let bank):
            NewAccount(id: derivedID("account", bank.uuidString, currency, "escrow"), currency: currency, ownerID: bank, code: "escrow",
                       debitsMustNotExceedCredits: true)
        case .settlement(let bank):
            NewAccount(id: derivedID("account", bank.uuidString, currency, "settlement"), currency: currency, ownerID: bank, code: "settlement")
        }
    }

    /// The account of a technology's inventor number `index` (in the registered order), owned by
    /// the institute; its metadata names the inventor and the technology.
    static func inventorAccount(institute: UUID, technology: UUID, index: Int, name: String, currency: String) throws -> NewAccount {
        NewAccount(id: derivedID("account", institute.uuidString, currency, "inventor", technology.uuidString, String(index)), currency: currency,
                   ownerID: institute, code: "inventor", debitsMustNotExceedCredits: true,
                   metadata: try JSONB(encoding: ["inventor": name, "technology_id": technology.uuidString.lowercased()]))
    }
}

/// A UUID (version 8, RFC 9562) derived from `parts`: the same parts always give the same id.
/// Transfer ids are derived from the deal and the action, so a retried request finds its
/// transfers already made and never pays twice. Version 8 is the bank's namespace
/// (`MoneyModel.isClientID`).
func derivedID(_ parts: String...) -> UUID {
    var bytes = Array(SHA256.hash(data: Data(parts.joined(separator: "\u{1F}").utf8)).prefix(16))
    bytes[6] = (bytes[6] & 0x0F) | 0x80
    bytes[8] = (bytes[8] & 0x3F) | 0x80
    return UUID(uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                       bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]))
}
