import Foundation
import Ledger
import Postgres

/// An organization's webhook endpoint (never its secret).
public struct Webhook: Sendable, Equatable {
    public let id: UUID
    public let organizationID: UUID
    public let url: String
    public let eventTypes: [String]
    public let description: String?
    public let enabled: Bool
    /// Increases with every change; the HTTP layer's ETag.
    public let version: Int
    public let createdAt: Date
}

/// What a `PATCH` changes; nil leaves a field as it is.
public struct WebhookChanges: Sendable {
    public var url: String?
    public var eventTypes: [String]?
    public var enabled: Bool?

    public init(url: String? = nil, eventTypes: [String]? = nil, enabled: Bool? = nil) {
        self.url = url
        self.eventTypes = eventTypes
        self.enabled = enabled
    }
}

/// One event owed to one endpoint.
public struct WebhookDelivery: Sendable, Equatable {
    public enum Status: String, Sendable { case pending, succeeded, failed }

    /// The `webhook-id` header of every attempt.
    public let id: UUID
    public let webhookID: UUID
    public let eventSeq: Int
    public let eventType: String
    public let status: Status
    public let attempts: Int
    public let lastStatusCode: Int?
    public let lastError: String?
    public let nextAttemptAt: Date?
    public let createdAt: Date
}

/// Webhook endpoints and their deliveries. An organization sees and changes only its own: any
/// other id is absent (nil, false), exactly like one that does not exist.
public struct Webhooks: Sendable {
    public static let maxPerOrganization = 20

    public let pool: PostgresPool
    public let secrets: WebhookSecrets
    /// `http` URLs and private addresses allowed (development and tests only).
    public let allowPrivateNetworks: Bool

    public init(pool: PostgresPool, secrets: WebhookSecrets, allowPrivateNetworks: Bool) {
        self.pool = pool
        self.secrets = secrets
        self.allowPrivateNetworks = allowPrivateNetworks
    }

    /// Subscribes `organizationID` to `eventTypes` at `url`: events committed from now on.
    /// - Returns: the endpoint and its signing secret, which is never shown again.
    /// - Throws: `TechBankError.validation` (url, event_types, description), `.conflict` beyond
    ///   `maxPerOrganization` endpoints.
    public func create(for organizationID: UUID, url: String, eventTypes: [String], description: String?) async throws -> (Webhook, secret: String) {
        let url = try WebhookRules.checkedURL(url, allowPrivateNetworks: allowPrivateNetworks).absoluteString
        let types = try WebhookRules.checkedEventTypes(eventTypes)
        if let description, description.count > 500 { throw TechBankError(.validation, field: "description", "must be at most 500 characters") }
        let secret = WebhookSecrets.newSecret()
        let sealed = try secrets.seal(secret.bytes)
        // From now on: every event committed before this call is sequenced, and not owed.
        let size = try await AuditLog(pool: pool).sequence()
        let webhook = try await pool.withTransaction { connection in
            // Serializes an organization's creations, so the limit holds under concurrency.
            try await connection.query("SELECT 1 FROM techbank.organizations WHERE id = $1 FOR UPDATE", [organizationID])
            let count = try await connection.query("SELECT count(*) FROM techbank.webhooks WHERE organization_id = $1 AND deleted_at IS NULL", [organizationID])[0].decode(Int.self, at: 0)
            guard count < Self.maxPerOrganization else {
                throw TechBankError(.conflict, field: nil, "an organization may have at most \(Self.maxPerOrganization) webhooks; delete one first")
            }
            let webhook = try Self.decode(try await connection.query(
                """
                INSERT INTO techbank.webhooks (id, organization_id, url, event_types, description, secret, after_seq)
                VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING \(Self.columns)
                """,
                [UUID(), organizationID, url, types, description, sealed, Int64(size - 1)])[0])
            try await Self.journal(connection, "webhook_created", webhook)
            return webhook
        }
        return (webhook, secret.text)
    }

    public func get(_ id: UUID, of organizationID: UUID) async throws -> Webhook? {
        try await pool.withConnection { connection in
            try await connection.query("SELECT \(Self.columns) FROM techbank.webhooks WHERE id = $1 AND organization_id = $2 AND deleted_at IS NULL", [id, organizationID])
                .first.map(Self.decode)
        }
    }

    /// The organization's endpoints by creation, `limit` at a time after `cursor`.
    public func list(of organizationID: UUID, limit: Int, after cursor: (Date, UUID)?) async throws -> (items: [Webhook], next: (Date, UUID)?) {
        let rows = try await pool.withConnection { connection in
            try await connection.query(
                """
                SELECT \(Self.columns) FROM techbank.webhooks
                 WHERE organization_id = $1 AND deleted_at IS NULL AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3))
                 ORDER BY created_at, id LIMIT $4
                """,
                [organizationID, cursor?.0, cursor?.1, Int64(limit + 1)])
        }
        let items = try rows.prefix(limit).map(Self.decode)
        return (items, rows.count > limit ? items.last.map { ($0.createdAt, $0.id) } : nil)
    }

    /// Applies `changes` if the endpoint is still at `expectedVersion`. Enabling a disabled
    /// endpoint starts it afresh: it is no longer counted as failing.
    /// - Returns: nil if there is no such endpoint of this organization.
    /// - Throws: `.preconditionFailed` when the version moved; `.validation` as `create`.
    public func update(_ id: UUID, of organizationID: UUID, expectedVersion: Int, _ changes: WebhookChanges) async throws -> Webhook? {
        let url = try changes.url.map { try WebhookRules.checkedURL($0, allowPrivateNetworks: allowPrivateNetworks).absoluteString }
        let types = try changes.eventTypes.map(WebhookRules.checkedEventTypes)
        return try await pool.withTransaction { connection in
            let rows = try await connection.query("SELECT version FROM techbank.webhooks WHERE id = $1 AND organization_id = $2 AND deleted_at IS NULL FOR UPDATE", [id, organizationID])
            guard let row = rows.first else { return nil }
            guard try row.decode(Int.self, at: 0) == expectedVersion else {
                throw TechBankError(.preconditionFailed, field: "If-Match", "the webhook changed since that version; read it again")
            }
            let webhook = try Self.decode(try await connection.query(
                """
                UPDATE techbank.webhooks SET url = coalesce($2, url), event_types = coalesce($3, event_types),
                       enabled = coalesce($4, enabled), failing_since = CASE WHEN $4 THEN NULL ELSE failing_since END,
                       version = version + 1
                 WHERE id = $1 RETURNING \(Self.columns)
                """,
                [id, url, types, changes.enabled])[0])
            try await Self.journal(connection, "webhook_updated", webhook)
            return webhook
        }
    }

    /// Deletes the endpoint: its secrets and what it was owed are gone, and it is never seen or
    /// sent to again. Its row stays, empty of secrets, so that its organization can still read
    /// its journal events (`AuditScope` finds them through it). Returns false if there is no such endpoint.
    public func delete(_ id: UUID, of organizationID: UUID) async throws -> Bool {
        try await pool.withTransaction { connection in
            let rows = try await connection.query(
                """
                UPDATE techbank.webhooks SET deleted_at = now(), enabled = false, secret = ''::bytea, previous_secret = NULL,
                       previous_until = NULL, version = version + 1
                 WHERE id = $1 AND organization_id = $2 AND deleted_at IS NULL RETURNING \(Self.columns)
                """,
                [id, organizationID])
            guard let row = rows.first else { return false }
            try await connection.query("DELETE FROM techbank.webhook_deliveries WHERE webhook_id = $1", [id])
            try await Self.journal(connection, "webhook_deleted", try Self.decode(row))
            return true
        }
    }

    /// A new signing secret; the previous one keeps signing beside it for 24 hours.
    /// - Returns: the new secret (shown once), or nil if there is no such endpoint.
    public func rotateSecret(_ id: UUID, of organizationID: UUID) async throws -> String? {
        let secret = WebhookSecrets.newSecret()
        let sealed = try secrets.seal(secret.bytes)
        let rotated = try await pool.withTransaction { connection in
            let rows = try await connection.query(
                """
                UPDATE techbank.webhooks SET previous_secret = secret, previous_until = now() + interval '24 hours', secret = $3,
                       version = version + 1
                 WHERE id = $1 AND organization_id = $2 AND deleted_at IS NULL RETURNING \(Self.columns)
                """,
                [id, organizationID, sealed])
            guard let row = rows.first else { return false }
            try await Self.journal(connection, "webhook_secret_rotated", try Self.decode(row))
            return true
        }
        return rotated ? secret.text : nil
    }

    /// The endpoint's deliveries, newest first, `limit` at a time after `cursor`.
    /// - Returns: nil if there is no such endpoint of this organization.
    public func deliveries(of id: UUID, organizationID: UUID, limit: Int, after cursor: (Date, UUID)?) async throws
        -> (items: [WebhookDelivery], next: (Date, UUID)?)? {
        guard try await get(id, of: organizationID) != nil else { return nil }
        let rows = try await pool.withConnection { connection in
            try await connection.query(
                """
                SELECT \(Self.deliveryColumns) FROM techbank.webhook_deliveries
                 WHERE webhook_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
                 ORDER BY created_at DESC, id DESC LIMIT $4
                """,
                [id, cursor?.0, cursor?.1, Int64(limit + 1)])
        }
        let items = try rows.prefix(limit).map(Self.decodeDelivery)
        return (items, rows.count > limit ? items.last.map { ($0.createdAt, $0.id) } : nil)
    }

    /// Sends a failed delivery again (its attempts start over).
    /// - Returns: the delivery, or nil if the endpoint or the delivery is not the organization's.
    /// - Throws: `.conflict` if the delivery has not failed.
    public func retry(_ deliveryID: UUID, of id: UUID, organizationID: UUID) async throws -> WebhookDelivery? {
        try await pool.withTransaction { connection in
            let rows = try await connection.query(
                """
                SELECT d.status FROM techbank.webhook_deliveries d JOIN techbank.webhooks w ON w.id = d.webhook_id
                 WHERE d.id = $1 AND d.webhook_id = $2 AND w.organization_id = $3 FOR UPDATE OF d
                """,
                [deliveryID, id, organizationID])
            guard let row = rows.first else { return nil }
            guard try row.decode(String.self, at: 0) == WebhookDelivery.Status.failed.rawValue else {
                throw TechBankError(.conflict, field: nil, "only a failed delivery can be sent again")
            }
            let delivery = try Self.decodeDelivery(try await connection.query(
                """
                UPDATE techbank.webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = now()
                 WHERE id = $1 RETURNING \(Self.deliveryColumns)
                """,
                [deliveryID])[0])
            try await connection.query(
                "SELECT ledger.journal_append('webhook_delivery_retried', $1, jsonb_build_object('delivery_id', $2::uuid, 'event_seq', $3::int8))",
                [id, deliveryID, Int64(delivery.eventSeq)])
            return delivery
        }
    }

    /// Journals `event` about `webhook`: what it is subscribed to, never its secret, and of its URL
    /// only where it points (a query may carry the receiver's own token).
    static func journal(_ connection: PostgresConnection, _ event: String, _ webhook: Webhook) async throws {
        var place = URLComponents(string: webhook.url)
        place?.query = nil
        place?.fragment = nil
        try await connection.query(
            "SELECT ledger.journal_append($1, $2, jsonb_build_object('organization_id', $3::uuid, 'url', $4::text, 'event_types', $5::text[], 'enabled', $6::boolean, 'version', $7::int))",
            [event, webhook.id, webhook.organizationID, place?.string ?? "", webhook.eventTypes, webhook.enabled, Int32(webhook.version)])
    }

    /// Deletes deliveries that succeeded or failed more than `retentionDays` ago (at least 7).
    /// - Returns: how many were deleted.
    @discardableResult
    public static func purgeDeliveries(pool: PostgresPool, retentionDays: Int = 30) async throws -> Int {
        precondition(retentionDays >= 7, "webhook deliveries are kept at least a week")
        return try await pool.withConnection { connection in
            try await connection.query(
                "DELETE FROM techbank.webhook_deliveries WHERE status <> 'pending' AND created_at < now() - make_interval(days => $1)",
                [Int32(retentionDays)]).affectedRows
        }
    }

    static let columns = "id, organization_id, url, event_types, description, enabled, version, created_at"
    static let deliveryColumns = "id, webhook_id, event_seq, event_type, status, attempts, last_status_code, last_error, next_attempt_at, created_at"

    static func decode(_ row: PostgresRow) throws -> Webhook {
        Webhook(id: try row.decode(UUID.self, at: 0), organizationID: try row.decode(UUID.self, at: 1), url: try row.decode(String.self, at: 2),
                eventTypes: try row.decode([String].self, at: 3), description: try row.decode(String?.self, at: 4),
                enabled: try row.decode(Bool.self, at: 5), version: try row.decode(Int.self, at: 6), createdAt: try row.decode(Date.self, at: 7))
    }

    static func decodeDelivery(_ row: PostgresRow) throws -> WebhookDelivery {
        let status = try row.decode(String.self, at: 4)
        return WebhookDelivery(
            id: try row.decode(UUID.self, at: 0), webhookID: try row.decode(UUID.self, at: 1), eventSeq: try row.decode(Int.self, at: 2),
            eventType: try row.decode(String.self, at: 3), status: WebhookDelivery.Status(rawValue: status) ?? .failed,
            attempts: try row.decode(Int.self, at: 5), lastStatusCode: try row.decode(Int?.self, at: 6), lastError: try row.decode(String?.self, at: 7),
            nextAttemptAt: try row.decode(Date?.self, at: 8), createdAt: try row.decode(Date.self, at: 9))
    }
}
