import Foundation
import Hummingbird
import Ledger
import Postgres
import TechBank

/// The ledger over HTTP: `/v1/accounts` and `/v1/transfers`. Requests are translated into the
/// money model's commands (`Money.openAccount`, `Money.transfer`), which own who may do what.
///
/// Reading: an account is visible to its owner, the owner's sub-park, the committee and the
/// operator; anything else answers 404. The credit side of a transfer may be any account (paying
/// a counterparty is normal), and its balances stay invisible to the payer.
struct LedgerController: Sendable {
    /// JSON numbers are exact integers only up to 2^53; larger amounts are refused.
    static let maxAmount: Int64 = 1 << 53

    let ledger: Ledger
    let money: Money
    let idempotency: Idempotency
    let metrics: Metrics
    let maxBodyBytes: Int
    let maxBatchBodyBytes: Int

    // MARK: Bodies

    struct CreateAccount: RequestBody {
        static let knownFields: Set<String> = ["id", "owner_id", "currency", "code", "debits_must_not_exceed_credits", "credits_must_not_exceed_debits", "metadata"]
        let id: UUID?
        let ownerID: UUID
        let currency: String
        let code: String?
        let debitsMustNotExceedCredits: Bool?
        let creditsMustNotExceedDebits: Bool?
        let metadata: JSONValue?

        enum CodingKeys: String, CodingKey {
            case id, currency, code, metadata
            case ownerID = "owner_id"
            case debitsMustNotExceedCredits = "debits_must_not_exceed_credits"
            case creditsMustNotExceedDebits = "credits_must_not_exceed_debits"
        }
    }

    struct AccountBody: Encodable, Sendable {
        let account: Account

        enum CodingKeys: String, CodingKey {
            case id, currency, code, metadata, closed
            case ownerID = "owner_id"
            case debitsMustNotExceedCredits = "debits_must_not_exceed_credits"
            case creditsMustNotExceedDebits = "credits_must_not_exceed_debits"
            case createdAt = "created_at"
            case debitsPosted = "debits_posted"
            case creditsPosted = "credits_posted"
            case debitsPending = "debits_pending"
            case creditsPending = "credits_pending"
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(account.id, forKey: .id)
            try c.encode(account.ownerID, forKey: .ownerID)
            try c.encode(account.currency, forKey: .currency)
            try c.encode(account.code, forKey: .code)
            try c.encode(account.debitsMustNotExceedCredits, forKey: .debitsMustNotExceedCredits)
            try c.encode(account.creditsMustNotExceedDebits, forKey: .creditsMustNotExceedDebits)
            try c.encode(try account.metadata.map(JSONValue.init) ?? .null, forKey: .metadata)
            try c.encode(account.closed, forKey: .closed)
            try c.encode(account.createdAt, forKey: .createdAt)
            try c.encode(account.debitsPosted, forKey: .debitsPosted)
            try c.encode(account.creditsPosted, forKey: .creditsPosted)
            try c.encode(account.debitsPending, forKey: .debitsPending)
            try c.encode(account.creditsPending, forKey: .creditsPending)
        }
    }

    struct CreateTransfer: RequestBody {
        static let knownFields: Set<String> = [
            "id", "debit_account_id", "credit_account_id", "amount", "currency", "code", "metadata", "pending",
            "timeout_seconds", "post_pending_id", "void_pending_id",
        ]
        let id: UUID
        let debitAccountID: UUID?
        let creditAccountID: UUID?
        let amount: Int64?
        let currency: String?
        let code: String?
        let metadata: JSONValue?
        let pending: Bool?
        let timeoutSeconds: Int64?
        let postPendingID: UUID?
        let voidPendingID: UUID?

        enum CodingKeys: String, CodingKey {
            case id, amount, currency, code, metadata, pending
            case debitAccountID = "debit_account_id"
            case creditAccountID = "credit_account_id"
            case timeoutSeconds = "timeout_seconds"
            case postPendingID = "post_pending_id"
            case voidPendingID = "void_pending_id"
        }
    }

    struct CreateBatch: RequestBody {
        static let knownFields: Set<String> = ["atomic", "transfers"]
        static var nestedKnownFields: [String: Set<String>] { ["transfers": CreateTransfer.knownFields] }
        let atomic: Bool
        let transfers: [CreateTransfer]
    }

    struct TransferBody: Encodable, Sendable {
        let transfer: Transfer

        enum CodingKeys: String, CodingKey {
            case id, kind, amount, currency, code, metadata
            case debitAccountID = "debit_account_id"
            case creditAccountID = "credit_account_id"
            case pendingID = "pending_id"
            case timeoutSeconds = "timeout_seconds"
            case expiresAt = "expires_at"
            case createdAt = "created_at"
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(transfer.id, forKey: .id)
            try c.encode(transfer.kind.rawValue, forKey: .kind)
            try c.encode(transfer.debitAccountID, forKey: .debitAccountID)
            try c.encode(transfer.creditAccountID, forKey: .creditAccountID)
            try c.encode(transfer.amount, forKey: .amount)
            try c.encode(transfer.currency, forKey: .currency)
            try c.encode(transfer.code, forKey: .code)
            try c.encode(transfer.pendingID, forKey: .pendingID)
            try c.encode(transfer.timeoutSeconds, forKey: .timeoutSeconds)
            try c.encode(transfer.expiresAt, forKey: .expiresAt)
            try c.encode(try transfer.metadata.map(JSONValue.init) ?? .null, forKey: .metadata)
            try c.encode(transfer.createdAt, forKey: .createdAt)
        }
    }

    struct ResultBody: Encodable, Sendable {
        let index: Int
        let id: UUID
        let outcome: String
        let detail: String?
        let transfer: TransferBody?
    }

    struct BatchBody: Encodable, Sendable {
        let atomic: Bool
        let results: [ResultBody]
    }

    struct BalanceBody: Encodable, Sendable {
        let accountID: UUID
        let currency: String
        let at: Date
        let debitsPosted: Int64
        let creditsPosted: Int64

        enum CodingKeys: String, CodingKey {
            case currency, at
            case accountID = "account_id"
            case debitsPosted = "debits_posted"
            case creditsPosted = "credits_posted"
        }
    }

    // MARK: Routes

    func register(on router: some RouterMethods<AppRequestContext>) {
        router.post("accounts") { request, context in
            try await idempotency.run(request, context: context) { request, context in try await createAccount(request, context) }
        }
        router.get("accounts/:id") { request, context in
            try Reply.json(AccountBody(account: try await visibleAccount(request.uuidParameter("id", context), context))).response
        }
        router.get("accounts/:id/transfers") { request, context in try await accountTransfers(request, context).response }
        router.get("accounts/:id/balance") { request, context in try await balance(request, context).response }
        router.post("transfers") { request, context in
            try await idempotency.run(request, context: context) { request, context in try await createTransfer(request, context) }
        }
        router.post("transfers/batch") { request, context in
            try await idempotency.run(request, context: context) { request, context in try await createBatch(request, context) }
        }
        router.get("transfers/:id") { request, context in try await getTransfer(request, context).response }
    }

    @Sendable func createAccount(_ request: Request, _ context: AppRequestContext) async throws -> Reply {
        let identity = try context.requireIdentity()
        var request = request
        let body = try await request.decode(CreateAccount.self, maxBytes: maxBodyBytes)
        let (account, created) = try await money.openAccount(AccountOpening(
            id: body.id ?? UUID(), ownerID: body.ownerID, currency: body.currency, code: body.code ?? "operating",
            debitsMustNotExceedCredits: body.debitsMustNotExceedCredits, creditsMustNotExceedDebits: body.creditsMustNotExceedDebits,
            metadata: try Self.metadataJSONB(body.metadata, field: "metadata")), by: identity)
        var reply = try Reply.json(AccountBody(account: account), status: created ? .created : .ok)
        reply.headers[.location] = "/v1/accounts/\(account.id.uuidString.lowercased())"
        return reply
    }

    func accountTransfers(_ request: Request, _ context: AppRequestContext) async throws -> Reply {
        let account = try await visibleAccount(request.uuidParameter("id", context), context)
        let (limit, cursorText) = try request.page()
        let cursor = try cursorText.map { text in
            guard let seq = Int64(try Cursor.decode(text)), seq > 0 else { throw APIError.validation("cursor", "is not a cursor this API returned") }
            return seq
        }
        let page = try await ledger.transfers(ofAccount: account.id, limit: limit, cursor: cursor)
        return try Reply.json(PageBody(data: page.items.map(TransferBody.init), nextCursor: page.nextCursor.map { Cursor.encode(String($0)) }))
    }

    func balance(_ request: Request, _ context: AppRequestContext) async throws -> Reply {
        let account = try await visibleAccount(request.uuidParameter("id", context), context)
        let instant = try request.timeQuery("at") ?? Date()
        guard let balance = try await ledger.balance(of: account.id, at: instant) else { throw APIError.notFound }
        return try Reply.json(BalanceBody(accountID: account.id, currency: account.currency, at: instant,
                                          debitsPosted: balance.debitsPosted, creditsPosted: balance.creditsPosted))
    }

    @Sendable func createTransfer(_ request: Request, _ context: AppRequestContext) async throws -> Reply {
        let identity = try context.requireIdentity()
        var request = request
        let body = try await request.decode(CreateTransfer.self, maxBytes: maxBodyBytes)
        let result = try await money.transfer([try Self.transferRequest(body, field: "")], atomic: true, by: identity, field: { _ in "" })[0]
        metrics.recordTransferOutcome(result.outcome.rawValue)
        switch result.outcome {
        case .ok, .exists:
            guard let transfer = result.transfer else { throw APIError.notFound }
            var reply = try Reply.json(TransferBody(transfer: transfer), status: result.outcome == .ok ? .created : .ok)
            reply.headers[.location] = "/v1/transfers/\(transfer.id.uuidString.lowercased())"
            return reply
        case .existsWithDifferentFields where !(try await canSee(transferID: result.id, identity)):
            throw Self.idInUse
        case .existsWithDifferentFields:
            throw APIError(.conflict, code: result.outcome.rawValue, "transfer \(result.id.uuidString.lowercased()) exists with different fields: \(result.detail ?? "")",
                           errors: (result.detail ?? "").split(separator: ",").map { APIError.FieldError(field: String($0), message: "differs from the stored transfer") })
        default:
            throw APIError(.unprocessableContent, code: result.outcome.rawValue, "the transfer was refused: \(result.outcome.rawValue)" + (result.detail.map { " (\($0))" } ?? ""))
        }
    }

    @Sendable func createBatch(_ request: Request, _ context: AppRequestContext) async throws -> Reply {
        let identity = try context.requireIdentity()
        var request = request
        let body = try await request.decode(CreateBatch.self, maxBytes: maxBatchBodyBytes)
        guard (1...Ledger.maxBatchSize).contains(body.transfers.count) else {
            throw APIError.validation("transfers", "must hold 1 to \(Ledger.maxBatchSize) transfers")
        }
        let requests = try body.transfers.enumerated().map { index, transfer in
            try Self.transferRequest(transfer, field: "transfers[\(index)].")
        }
        let results = try await money.transfer(requests, atomic: body.atomic, by: identity, field: { "transfers[\($0)]." })
        var bodies: [ResultBody] = []
        for result in results {
            metrics.recordTransferOutcome(result.outcome.rawValue)
            // Which fields differ from a transfer the caller may not see is not the caller's to know.
            var hideDetail = false
            if result.outcome == .existsWithDifferentFields { hideDetail = !(try await canSee(transferID: result.id, identity)) }
            bodies.append(ResultBody(index: result.index, id: result.id, outcome: result.outcome.rawValue,
                                     detail: hideDetail ? nil : result.detail, transfer: result.transfer.map(TransferBody.init)))
        }
        return try Reply.json(BatchBody(atomic: body.atomic, results: bodies))
    }

    func getTransfer(_ request: Request, _ context: AppRequestContext) async throws -> Reply {
        let identity = try context.requireIdentity()
        guard let transfer = try await ledger.transfer(request.uuidParameter("id", context)), try await canSee(transfer: transfer, identity) else {
            throw APIError.notFound
        }
        return try Reply.json(TransferBody(transfer: transfer))
    }

    // MARK: Rules

    /// The answer when a caller reuses the id of an object it may not see: nothing about that object.
    static let idInUse = APIError(.conflict, code: "exists_with_different_fields", "this id is already in use; choose another")

    /// Turns a request body into a ledger request, naming the field of the first problem.
    static func transferRequest(_ body: CreateTransfer, field prefix: String) throws -> TransferRequest {
        let metadata = try metadataJSONB(body.metadata, field: prefix + "metadata")
        let code = body.code ?? "transfer"
        guard Ledger.isValidCode(code) else {
            throw APIError.validation(prefix + "code", "must be 1 to 63 lower-case letters, digits or '_', starting with a letter")
        }
        if let currency = body.currency, CurrencyCode(currency) == nil {
            throw APIError.validation(prefix + "currency", "must be an ISO 4217 code such as CNY")
        }
        /// The amount if sent, validated: 1 to 2^53 minor units.
        func amount() throws -> Int64? {
            guard let amount = body.amount else { return nil }
            guard amount > 0 else { throw APIError.validation(prefix + "amount", "must be a positive integer number of minor units") }
            guard amount <= maxAmount else { throw APIError.validation(prefix + "amount", "must be at most 2^53") }
            return amount
        }
        func forbid(_ names: [(String, Bool)], because reason: String) throws {
            if let present = names.first(where: { $0.1 }) { throw APIError.validation(prefix + present.0, reason) }
        }
        if let pendingID = body.postPendingID {
            try forbid([("void_pending_id", body.voidPendingID != nil), ("pending", body.pending != nil), ("debit_account_id", body.debitAccountID != nil),
                        ("credit_account_id", body.creditAccountID != nil), ("currency", body.currency != nil), ("timeout_seconds", body.timeoutSeconds != nil)],
                       because: "must not be sent with post_pending_id: the hold decides it")
            return TransferRequest(id: body.id, action: .postPending(pendingID: pendingID, amount: try amount()), code: code, metadata: metadata)
        }
        if let pendingID = body.voidPendingID {
            try forbid([("pending", body.pending != nil), ("debit_account_id", body.debitAccountID != nil), ("credit_account_id", body.creditAccountID != nil),
                        ("currency", body.currency != nil), ("timeout_seconds", body.timeoutSeconds != nil), ("amount", body.amount != nil)],
                       because: "must not be sent with void_pending_id: the hold decides it")
            return TransferRequest(id: body.id, action: .voidPending(pendingID: pendingID), code: code, metadata: metadata)
        }
        guard let debit = body.debitAccountID else { throw APIError.validation(prefix + "debit_account_id", "is required") }
        guard let credit = body.creditAccountID else { throw APIError.validation(prefix + "credit_account_id", "is required") }
        guard let currency = body.currency else { throw APIError.validation(prefix + "currency", "is required") }
        guard let value = try amount() else { throw APIError.validation(prefix + "amount", "is required") }
        if body.pending == true {
            var timeout: Int32?
            if let seconds = body.timeoutSeconds {
                guard seconds > 0, let exact = Int32(exactly: seconds) else {
                    throw APIError.validation(prefix + "timeout_seconds", "must be a positive number of seconds, at most \(Int32.max)")
                }
                timeout = exact
            }
            return TransferRequest(id: body.id, action: .hold(debit: debit, credit: credit, amount: value, currency: currency, timeoutSeconds: timeout), code: code, metadata: metadata)
        }
        try forbid([("timeout_seconds", body.timeoutSeconds != nil)], because: "applies only to pending transfers")
        return TransferRequest(id: body.id, action: .post(debit: debit, credit: credit, amount: value, currency: currency), code: code, metadata: metadata)
    }

    /// Free-form metadata must be a JSON object (or absent/null).
    static func metadataJSONB(_ value: JSONValue?, field: String) throws -> JSONB? {
        switch value {
        case nil, .null?: return nil
        case .object?: return try value?.jsonb
        default: throw APIError.validation(field, "must be a JSON object")
        }
    }

    /// Whether the caller may see the stored transfer with this id (either side's account).
    func canSee(transferID: UUID, _ identity: Identity) async throws -> Bool {
        guard let transfer = try await ledger.transfer(transferID) else { return false }
        return try await canSee(transfer: transfer, identity)
    }

    func canSee(transfer: Transfer, _ identity: Identity) async throws -> Bool {
        if try await canSee(accountID: transfer.debitAccountID, identity) { return true }
        return try await canSee(accountID: transfer.creditAccountID, identity)
    }

    /// The account, if the caller may see it; 404 otherwise.
    func visibleAccount(_ id: UUID, _ context: AppRequestContext) async throws -> Account {
        let identity = try context.requireIdentity()
        guard let account = try await ledger.account(id), try await canSee(account: account, identity) else { throw APIError.notFound }
        return account
    }

    func canSee(accountID: UUID, _ identity: Identity) async throws -> Bool {
        guard let account = try await ledger.account(accountID) else { return false }
        return try await canSee(account: account, identity)
    }

    func canSee(account: Account, _ identity: Identity) async throws -> Bool {
        try await money.canSee(account, identity)
    }
}
