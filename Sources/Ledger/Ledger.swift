import Crypto
import Foundation
import Logging
import Postgres

/// The double-entry ledger: accounts, transfers, two-phase holds and the hash-chained journal,
/// over the `ledger` schema. Balance rules, idempotency and locking live in the database
/// (`ledger.create_transfers`), so every transfer batch is one statement and one round trip.
public struct Ledger: Sendable {
    /// The most transfers one batch may carry.
    public static let maxBatchSize = 8_000
    /// The largest page a listing returns.
    public static let maxPageSize = 200

    public let pool: PostgresPool

    public init(pool: PostgresPool) {
        self.pool = pool
    }

    // MARK: Accounts

    /// Opens an account, or returns the existing one if an identical account with this id exists.
    /// - Returns: the account and whether this call created it.
    /// - Throws: `LedgerError` for an unknown currency, a malformed code, both balance flags, or an
    ///   existing id with different fields.
    public func createAccount(_ new: NewAccount) async throws -> (account: Account, created: Bool) {
        try await pool.withConnection { connection in try await Self.openAccount(new, on: connection) }
    }

    /// Opens the account `new` on `connection` (inside the caller's transaction, if any), or
    /// returns the existing identical one. An existing account with this id but any other field
    /// (owner, currency, code, balance rules, metadata) is never adopted: that is an error.
    /// - Returns: the account and whether this call created it.
    @discardableResult
    public static func openAccount(_ new: NewAccount, on connection: PostgresConnection) async throws -> (account: Account, created: Bool) {
        try validate(code: new.code, field: "code")
        guard CurrencyCode(new.currency) != nil else {
            throw LedgerError(.unknownCurrency, field: "currency", "currency must be an ISO 4217 code such as CNY")
        }
        guard !(new.debitsMustNotExceedCredits && new.creditsMustNotExceedDebits) else {
            throw LedgerError(.invalidRequest, field: "credits_must_not_exceed_debits",
                              "an account cannot have both debits_must_not_exceed_credits and credits_must_not_exceed_debits")
        }
        let inserted: PostgresResult
        do {
            inserted = try await connection.query(
                """
                INSERT INTO ledger.accounts (id, currency, owner_id, code, debits_must_not_exceed_credits,
                                             credits_must_not_exceed_debits, metadata)
                VALUES ($1, $2, $3, $4, $5, $6, $7)
                ON CONFLICT (id) DO NOTHING
                RETURNING \(accountColumns)
                """,
                [new.id, new.currency, new.ownerID, new.code, new.debitsMustNotExceedCredits,
                 new.creditsMustNotExceedDebits, new.metadata])
        } catch let error as PostgresError where error.sqlState == SQLState.foreignKeyViolation {
            throw LedgerError(.unknownCurrency, field: "currency", "the ledger does not know currency \(new.currency)")
        } catch let error as PostgresError where isDataException(error) {
            throw LedgerError(.invalidRequest, field: "metadata", "metadata must be JSON the database can store (no U+0000)")
        }
        if let row = inserted.first { return (try decodeAccount(row), true) }
        let rows = try await connection.query(
            "SELECT \(accountColumns), metadata IS NOT DISTINCT FROM $2::jsonb AS same_metadata FROM ledger.accounts WHERE id = $1",
            [new.id, new.metadata])
        guard let row = rows.first else { throw LedgerError(.invalidRequest, field: "id", "the account could not be created") }
        let existing = try decodeAccount(row)
        let differences = [
            ("currency", existing.currency == new.currency), ("owner_id", existing.ownerID == new.ownerID),
            ("code", existing.code == new.code),
            ("debits_must_not_exceed_credits", existing.debitsMustNotExceedCredits == new.debitsMustNotExceedCredits),
            ("credits_must_not_exceed_debits", existing.creditsMustNotExceedDebits == new.creditsMustNotExceedDebits),
            ("metadata", try row.decode(Bool.self, "same_metadata")),
        ].filter { !$0.1 }.map(\.0)
        guard differences.isEmpty else {
            throw LedgerError(.accountExistsWithDifferentFields, field: differences.first,
                              "account \(new.id.uuidString.lowercased()) exists with different \(differences.joined(separator: ", "))")
        }
        return (existing, false)
    }

    /// The account with its balances, or nil.
    public func account(_ id: UUID) async throws -> Account? {
        let rows = try await pool.withConnection { connection in
            try await connection.query("SELECT \(Self.accountColumns) FROM ledger.accounts WHERE id = $1", [id])
        }
        return try rows.first.map(Self.decodeAccount)
    }

    /// The accounts `ownerID` owns, with their balances, by currency and code (at most `limit`).
    public func accounts(ownedBy ownerID: UUID, limit: Int) async throws -> [Account] {
        let rows = try await pool.withConnection { connection in
            try await connection.query(
                "SELECT \(Self.accountColumns) FROM ledger.accounts WHERE owner_id = $1 ORDER BY currency, code, created_at, id LIMIT $2",
                [ownerID, Int64(limit)])
        }
        return try rows.map(Self.decodeAccount)
    }

    /// Closes an account to new transfers (existing holds can still be posted or voided).
    /// - Returns: false if there is no such account.
    public func closeAccount(_ id: UUID) async throws -> Bool {
        try await pool.withConnection { connection in
            try await connection.query("SELECT ledger.close_account($1)", [id])[0].decode(Bool.self, at: 0)
        }
    }

    // MARK: Transfers

    /// Creates one transfer; see `createTransfers(_:atomic:principal:)`.
    public func createTransfer(_ request: TransferRequest, principal: Principal? = nil) async throws -> TransferResult {
        try await createTransfers([request], atomic: true, principal: principal)[0]
    }

    /// Creates up to `maxBatchSize` transfers in one database transaction.
    ///
    /// - atomic: all or nothing. If any fails, none is applied: the failing one reports its outcome
    ///   and every other one `linked_event_failed`.
    /// - independent: each succeeds or fails on its own.
    ///
    /// Later transfers see the effects of earlier ones in the same batch. A transfer whose id exists
    /// reports `exists` (identical fields; the stored transfer is returned) or
    /// `exists_with_different_fields`. Returns one result per request, in order.
    ///
    /// With a `principal`, the batch acts for that owner only (see `Principal`).
    public func createTransfers(_ requests: [TransferRequest], atomic: Bool, principal: Principal? = nil) async throws -> [TransferResult] {
        let batch = try Self.batch(requests)
        // One statement: the function is a transaction by itself, so no BEGIN/COMMIT round trips.
        return try await pool.withRetries {
            try await pool.withConnection { connection in
                try await Self.run(batch, atomic: atomic, owner: principal?.ownerID, reservedCodes: principal?.reservedCodes, on: connection)
            }
        }
    }

    /// Creates transfers as `createTransfers(_:atomic:)` does, but on `connection`, inside the
    /// caller's transaction: they commit or roll back together with the caller's other changes.
    public static func createTransfers(_ requests: [TransferRequest], atomic: Bool, principal: Principal? = nil,
                                       on connection: PostgresConnection) async throws -> [TransferResult] {
        try await run(try batch(requests), atomic: atomic, owner: principal?.ownerID, reservedCodes: principal?.reservedCodes, on: connection)
    }

    static func batch(_ requests: [TransferRequest]) throws -> JSONB {
        guard (1...maxBatchSize).contains(requests.count) else {
            throw LedgerError(.invalidRequest, field: "transfers", "a batch holds 1 to \(maxBatchSize) transfers")
        }
        var json = "["
        json.reserveCapacity(requests.count * 220)
        for (index, request) in requests.enumerated() {
            if index > 0 { json += "," }
            json += try wireJSON(request, index: index)
        }
        json += "]"
        return JSONB(json)
    }

    /// One `ledger.create_transfers` call: the batch acts for `owner` (nil: the operator, or each
    /// element's own `owner_id`), whose transfers may not use `reservedCodes`.
    static func run(_ batch: JSONB, atomic: Bool, owner: UUID?, reservedCodes: [String]?, on connection: PostgresConnection) async throws -> [TransferResult] {
        let rows: PostgresResult
        do {
            rows = try await connection.query("SELECT * FROM ledger.create_transfers($1, $2, $3, $4)",
                                              [batch, atomic, owner, reservedCodes])
        } catch let error as PostgresError where error.sqlState == "TB003" || isDataException(error) {
            throw LedgerError(.invalidRequest, field: "transfers", "the batch is malformed or holds data the database cannot store")
        }
        return try rows.map { row in
            let outcomeText = try row.decode(String.self, "outcome")
            guard let outcome = TransferOutcome(rawValue: outcomeText) else {
                throw PostgresError(code: .decoding, message: "unknown transfer outcome \(outcomeText)")
            }
            return TransferResult(
                index: try row.decode(Int.self, "idx"), id: try row.decode(UUID.self, "id"), outcome: outcome,
                detail: try row.decode(String?.self, "detail"),
                transfer: outcome.succeeded ? try decodeTransfer(row) : nil)
        }
    }

    /// The transfer with this id, or nil.
    public func transfer(_ id: UUID) async throws -> Transfer? {
        let rows = try await pool.withConnection { connection in
            try await connection.query("SELECT \(Self.transferColumns) FROM ledger.transfers WHERE id = $1", [id])
        }
        return try rows.first.map(Self.decodeTransfer)
    }

    /// An account's transfers (either side), newest first, `limit` (1–200) at a time.
    /// - Parameter cursor: the `nextCursor` of the previous page, or nil for the first page.
    public func transfers(ofAccount accountID: UUID, limit: Int, cursor: Int64? = nil) async throws -> Page<Transfer> {
        guard (1...Self.maxPageSize).contains(limit) else {
            throw LedgerError(.invalidRequest, field: "limit", "limit must be between 1 and \(Self.maxPageSize)")
        }
        let rows = try await pool.withConnection { connection in
            try await connection.query(
                """
                SELECT \(Self.transferColumns), seq FROM (
                    (SELECT * FROM ledger.transfers WHERE debit_account_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3)
                    UNION ALL
                    (SELECT * FROM ledger.transfers WHERE credit_account_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3)
                ) AS t ORDER BY seq DESC LIMIT $3
                """,
                [accountID, cursor ?? Int64.max, Int64(limit + 1)])
        }
        let transfers = try rows.prefix(limit).map(Self.decodeTransfer)
        let nextCursor = rows.count > limit ? try rows[limit - 1].decode(Int64.self, "seq") : nil
        return Page(items: transfers, nextCursor: nextCursor)
    }

    /// The account's posted balances as of `instant`, recomputed from the transfers before it.
    /// Returns nil if there is no such account.
    public func balance(of accountID: UUID, at instant: Date) async throws -> HistoricalBalance? {
        let rows = try await pool.withConnection { connection in
            try await connection.query(
                """
                SELECT coalesce(sum(t.amount) FILTER (WHERE t.debit_account_id = a.id), 0)::int8,
                       coalesce(sum(t.amount) FILTER (WHERE t.credit_account_id = a.id), 0)::int8
                  FROM ledger.accounts a
                  LEFT JOIN ledger.transfers t
                    ON (t.debit_account_id = a.id OR t.credit_account_id = a.id)
                   AND t.kind IN ('posted', 'post_pending') AND t.created_at <= $2
                 WHERE a.id = $1
                 GROUP BY a.id
                """,
                [accountID, instant])
        }
        guard let row = rows.first else { return nil }
        return HistoricalBalance(
            accountID: accountID, at: instant, debitsPosted: try row.decode(Int64.self, at: 0),
            creditsPosted: try row.decode(Int64.self, at: 1))
    }

    /// Posted and pending totals over all accounts, per currency.
    public func totals() async throws -> [CurrencyTotals] {
        let rows = try await pool.withConnection { connection in
            try await connection.query(
                """
                SELECT currency, sum(debits_posted)::int8, sum(credits_posted)::int8,
                       sum(debits_pending)::int8, sum(credits_pending)::int8
                  FROM ledger.accounts GROUP BY currency ORDER BY currency
                """)
        }
        return try rows.map { row in
            CurrencyTotals(
                currency: try row.decode(String.self, at: 0), debitsPosted: try row.decode(Int64.self, at: 1),
                creditsPosted: try row.decode(Int64.self, at: 2), debitsPending: try row.decode(Int64.self, at: 3),
                creditsPending: try row.decode(Int64.self, at: 4))
        }
    }

    /// Releases up to `limit` holds whose timeout has passed, each exactly once.
    /// - Returns: how many were released.
    public func expirePending(limit: Int = 1_000) async throws -> Int {
        try await pool.withRetries {
            try await pool.withConnection { connection in
                try await connection.query("SELECT ledger.expire_pending($1)", [Int32(clamping: limit)])[0].decode(Int.self, at: 0)
            }
        }
    }

    // MARK: Encoding and decoding

    static let accountColumns = """
        id, currency, owner_id, code, debits_must_not_exceed_credits, credits_must_not_exceed_debits, metadata,
        closed, created_at, debits_posted, credits_posted, debits_pending, credits_pending
        """

    static let transferColumns = """
        id, kind, debit_account_id, credit_account_id, amount, currency, code, pending_id, timeout_seconds,
        expires_at, metadata, created_at
        """

    static func decodeAccount(_ row: PostgresRow) throws -> Account {
        Account(
            id: try row.decode(UUID.self, "id"), currency: try row.decode(String.self, "currency"),
            ownerID: try row.decode(UUID.self, "owner_id"), code: try row.decode(String.self, "code"),
            debitsMustNotExceedCredits: try row.decode(Bool.self, "debits_must_not_exceed_credits"),
            creditsMustNotExceedDebits: try row.decode(Bool.self, "credits_must_not_exceed_debits"),
            metadata: try row.decode(JSONB?.self, "metadata"), closed: try row.decode(Bool.self, "closed"),
            createdAt: try row.decode(Date.self, "created_at"), debitsPosted: try row.decode(Int64.self, "debits_posted"),
            creditsPosted: try row.decode(Int64.self, "credits_posted"), debitsPending: try row.decode(Int64.self, "debits_pending"),
            creditsPending: try row.decode(Int64.self, "credits_pending"))
    }

    static func decodeTransfer(_ row: PostgresRow) throws -> Transfer {
        let kindText = try row.decode(String.self, "kind")
        guard let kind = TransferKind(rawValue: kindText) else {
            throw PostgresError(code: .decoding, message: "unknown transfer kind \(kindText)")
        }
        return Transfer(
            id: try row.decode(UUID.self, "id"), kind: kind, debitAccountID: try row.decode(UUID.self, "debit_account_id"),
            creditAccountID: try row.decode(UUID.self, "credit_account_id"), amount: try row.decode(Int64.self, "amount"),
            currency: try row.decode(String.self, "currency"), code: try row.decode(String.self, "code"),
            pendingID: try row.decode(UUID?.self, "pending_id"), timeoutSeconds: try row.decode(Int32?.self, "timeout_seconds"),
            expiresAt: try row.decode(Date?.self, "expires_at"), metadata: try row.decode(JSONB?.self, "metadata"),
            createdAt: try row.decode(Date.self, "created_at"))
    }

    /// One element of `ledger.create_transfers`' input. A group commit's element (`grouped`) stands
    /// alone (its refusal changes nothing), acts for `owner` if given, and is journaled with
    /// `attribution` if given (else with the session's settings). Every interpolated value is a
    /// UUID, an integer, a validated code or currency, or JSON the server parses as such.
    static func wireJSON(_ request: TransferRequest, index: Int,
                         grouped: (owner: UUID?, attribution: JournalAttribution?)? = nil) throws -> String {
        try validate(code: request.code, field: "transfers[\(index)].code")
        var fields = [#""id":"\#(request.id.uuidString)""#, #""code":"\#(request.code)""#]
        if grouped != nil { fields.append(#""alone":true"#) }
        if let owner = grouped?.owner { fields.append(#""owner_id":"\#(owner.uuidString)""#) }
        if let attribution = grouped?.attribution {
            fields.append(#""actor_id":\#(attribution.actorID.map { "\"\($0.uuidString)\"" } ?? "null")"#)
            fields.append(#""key_id":\#(attribution.keyID.map { "\"\($0.uuidString)\"" } ?? "null")"#)
            fields.append(#""request_id":\#(attribution.requestID.map(jsonString) ?? "null")"#)
        }
        if let metadata = request.metadata {
            // Pasted into the batch as is, so it must be exactly one JSON value: text such as
            // `{}, "amount": 1` would otherwise add fields to the transfer.
            guard (try? JSONSerialization.jsonObject(with: Data(metadata.text.utf8), options: [.fragmentsAllowed])) != nil else {
                throw LedgerError(.invalidRequest, field: "transfers[\(index)].metadata", "metadata must be one JSON value")
            }
            fields.append(#""metadata":\#(metadata.text)"#)
        }
        func money(_ debit: UUID, _ credit: UUID, _ amount: Int64, _ currency: String) throws {
            guard CurrencyCode(currency) != nil else {
                throw LedgerError(.unknownCurrency, field: "transfers[\(index)].currency", "currency must be an ISO 4217 code such as CNY")
            }
            fields += [#""debit_account_id":"\#(debit.uuidString)""#, #""credit_account_id":"\#(credit.uuidString)""#,
                       #""amount":\#(amount)"#, #""currency":"\#(currency)""#]
        }
        switch request.action {
        case let .post(debit, credit, amount, currency):
            fields.append(#""kind":"posted""#)
            try money(debit, credit, amount, currency)
        case let .hold(debit, credit, amount, currency, timeoutSeconds):
            fields.append(#""kind":"pending""#)
            try money(debit, credit, amount, currency)
            if let timeoutSeconds {
                guard timeoutSeconds > 0 else {
                    throw LedgerError(.invalidRequest, field: "transfers[\(index)].timeout_seconds", "timeout_seconds must be positive")
                }
                fields.append(#""timeout_seconds":\#(timeoutSeconds)"#)
            }
        case let .postPending(pendingID, amount):
            fields += [#""kind":"post_pending""#, #""pending_id":"\#(pendingID.uuidString)""#]
            if let amount { fields.append(#""amount":\#(amount)"#) }
        case let .voidPending(pendingID):
            fields += [#""kind":"void_pending""#, #""pending_id":"\#(pendingID.uuidString)""#]
        }
        return "{" + fields.joined(separator: ",") + "}"
    }

    /// `text` as a JSON string literal.
    static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// Whether `code` is a valid account kind or transfer reason: a lower-case identifier of at
    /// most 63 characters (letters, digits, `_`, starting with a letter).
    public static func isValidCode(_ code: String) -> Bool {
        let bytes = Array(code.utf8)
        return (1...63).contains(bytes.count) && (97...122).contains(bytes[0])
            && bytes.allSatisfy({ (97...122).contains($0) || (48...57).contains($0) || $0 == 95 })
    }

    static func validate(code: String, field: String) throws {
        guard isValidCode(code) else {
            throw LedgerError(.invalidRequest, field: field, "must be 1 to 63 lower-case letters, digits or '_', starting with a letter")
        }
    }

    /// SQLSTATE class 22 (data exception): input the database cannot take, such as U+0000 in jsonb.
    static func isDataException(_ error: PostgresError) -> Bool {
        error.sqlState?.hasPrefix("22") == true
    }
}
