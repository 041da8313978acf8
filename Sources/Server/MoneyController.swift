import Foundation
import Hummingbird
import Ledger
import TechBank

/// `/v1/deposits`, `/v1/withdrawals` (the operator records money arriving at or leaving the bank
/// under the bank's payment reference) and `/v1/organizations/{id}/balances` (the organization
/// itself, its sub-park, the committee and the operator).
struct MoneyController: Sendable {
    let money: Money
    let organizations: Organizations
    let idempotency: Idempotency
    let maxBodyBytes: Int

    struct Payment: RequestBody {
        static let knownFields: Set<String> = ["organization_id", "amount", "currency", "external_ref"]
        let organizationID: UUID
        let amount: Int64
        let currency: String
        let externalRef: String

        enum CodingKeys: String, CodingKey {
            case amount, currency
            case organizationID = "organization_id"
            case externalRef = "external_ref"
        }
    }

    struct BalancesBody: Encodable, Sendable {
        struct Totals: Encodable, Sendable {
            let debitsPosted: Int64
            let creditsPosted: Int64
            let debitsPending: Int64
            let creditsPending: Int64

            enum CodingKeys: String, CodingKey {
                case debitsPosted = "debits_posted"
                case creditsPosted = "credits_posted"
                case debitsPending = "debits_pending"
                case creditsPending = "credits_pending"
            }
        }
        let currency: String
        let accounts: [LedgerController.AccountBody]
        let total: Totals
    }

    func register(on router: some RouterMethods<AppRequestContext>) {
        for direction in [PaymentDirection.deposit, .withdrawal] {
            router.post(direction == .deposit ? "deposits" : "withdrawals") { request, context in
                try await idempotency.run(request, context: context) { request, context in try await move(request, context, direction) }
            }
        }
        router.get("organizations/:id/balances") { request, context in
            let identity = try context.requireIdentity()
            guard let organization = try await organizations.get(request.uuidParameter("id", context)),
                  identity.canSee(organizationID: organization.id, memberOf: organization.subParkID) else { throw APIError.notFound }
            let balances = try await money.balances(of: organization.id)
            return try Reply.json(PageBody(data: balances.map {
                BalancesBody(currency: $0.currency, accounts: $0.accounts.map(LedgerController.AccountBody.init),
                             total: .init(debitsPosted: $0.total.debitsPosted, creditsPosted: $0.total.creditsPosted,
                                          debitsPending: $0.total.debitsPending, creditsPending: $0.total.creditsPending))
            }, nextCursor: nil)).response
        }
    }

    @Sendable func move(_ request: Request, _ context: AppRequestContext, _ direction: PaymentDirection) async throws -> Reply {
        let identity = try context.requireIdentity()
        guard identity.kind == .operator else { throw APIError(.forbidden, code: "forbidden", "only the operator records deposits and withdrawals") }
        var request = request
        let body = try await request.decode(Payment.self, maxBytes: maxBodyBytes)
        guard (1...LedgerController.maxAmount).contains(body.amount) else { throw APIError.validation("amount", "must be 1 to 2^53 minor units") }
        guard CurrencyCode(body.currency) != nil else { throw APIError.validation("currency", "must be an ISO 4217 code such as CNY") }
        let reference = try ClientText.trimmed(body.externalRef, field: "external_ref", max: 100)
        guard let organization = try await organizations.get(body.organizationID), organization.kind != .operator else {
            throw APIError.validation("organization_id", "must name an organization other than the bank")
        }
        let transfer = try await money.move(direction, organizationID: organization.id, amount: body.amount, currency: body.currency,
                                            externalRef: reference, actor: identity.organizationID)
        return try Reply.json(LedgerController.TransferBody(transfer: transfer), status: .created)
    }
}
