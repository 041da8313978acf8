import Foundation
import Ledger
import Postgres

/// A delivery claimed for one attempt: where to send it and the secrets to sign it with.
public struct DueDelivery: Sendable {
    public let id: UUID
    public let webhookID: UUID
    public let url: String
    public let eventSeq: Int
    public let eventType: String
    /// This attempt's number, from 1.
    public let attempt: Int
    /// The current secret first, then the previous one while it still signs.
    public let secrets: [Data]
}

/// The journal as the webhooks' outbox: events become deliveries (`dispatch`), deliveries are
/// claimed for an attempt (`claim`) and their outcome recorded (`record`). Every step is a
/// transaction of its own, so a crash anywhere loses nothing: an undispatched event is dispatched
/// later, a claimed delivery whose attempt never reported is claimed again when its lease ends.
extension Webhooks {
    /// How long a claimed attempt may run before the delivery is claimed again.
    public static let attemptLease: Duration = .seconds(60)
    /// An endpoint whose deliveries all failed this long is disabled.
    public static let disableAfter: Duration = .seconds(5 * 24 * 3_600)

    /// Turns the events sequenced after each enabled endpoint's position, that it subscribes to
    /// and that its organization may read (`AuditScope`), into deliveries; at most `limit` events
    /// per endpoint per call.
    /// - Returns: how many deliveries were made.
    @discardableResult
    public func dispatch(limit: Int = 500) async throws -> Int {
        let log = AuditLog(pool: pool)
        let size = try await log.sequence()
        let behind = try await pool.withConnection { connection in
            try await connection.query(
                """
                SELECT w.id, w.organization_id, o.kind, o.sub_park_id, w.event_types, w.after_seq
                  FROM techbank.webhooks w JOIN techbank.organizations o ON o.id = w.organization_id
                 WHERE w.enabled AND w.after_seq < $1 ORDER BY w.after_seq LIMIT 1000
                """,
                [Int64(size - 1)])
        }
        var made = 0
        for row in behind {
            guard let kind = OrganizationKind(rawValue: try row.decode(String.self, at: 2)) else { continue }
            let (id, after) = (try row.decode(UUID.self, at: 0), try row.decode(Int.self, at: 5))
            let types = Set(try row.decode([String].self, at: 4))
            // The key id plays no part in what an organization may read.
            let reader = Identity(organizationID: try row.decode(UUID.self, at: 1), kind: kind, subParkID: try row.decode(UUID?.self, at: 3), keyID: id)
            let entries = try await AuditScope(log: log).entries(AuditLog.Filter(), visibleTo: reader, after: after, limit: limit)
            // Fewer than asked: nothing else it may read was sequenced up to `size`.
            let upTo = entries.count < limit ? max(entries.last?.leafIndex ?? after, size - 1) : entries[entries.count - 1].leafIndex
            let owed = entries.filter { types.contains("*") || types.contains($0.eventType) }
            made += try await pool.withTransaction { connection in
                // Another dispatcher may have moved this endpoint meanwhile: then this one's work is done.
                let moved = try await connection.query("SELECT after_seq <> $2 FROM techbank.webhooks WHERE id = $1 FOR UPDATE", [id, Int64(after)])
                guard let row = moved.first, try !row.decode(Bool.self, at: 0) else { return 0 }
                if !owed.isEmpty {
                    try await connection.query(
                        """
                        INSERT INTO techbank.webhook_deliveries (id, webhook_id, event_seq, event_type, next_attempt_at)
                        SELECT gen_random_uuid(), $1, u.seq, u.type, now() FROM unnest($2::int8[], $3::text[]) AS u(seq, type)
                        ON CONFLICT (webhook_id, event_seq) DO NOTHING
                        """,
                        [id, owed.map { Int64($0.leafIndex) }, owed.map(\.eventType)])
                }
                try await connection.query("UPDATE techbank.webhooks SET after_seq = $2 WHERE id = $1", [id, Int64(upTo)])
                return owed.count
            }
        }
        return made
    }

    /// Claims up to `limit` due deliveries of enabled endpoints not in `busy`, at most
    /// `perEndpoint` of each, for one attempt each.
    public func claim(limit: Int, perEndpoint: Int, excluding busy: [UUID]) async throws -> [DueDelivery] {
        guard limit > 0 else { return [] }
        let rows = try await pool.withConnection { connection in
            try await connection.query(
                """
                WITH due AS (
                    SELECT d.id FROM techbank.webhook_deliveries d JOIN techbank.webhooks w ON w.id = d.webhook_id
                     WHERE d.status = 'pending' AND d.next_attempt_at <= now() AND w.enabled AND NOT (d.webhook_id = ANY ($3))
                     ORDER BY d.next_attempt_at LIMIT $1 * 4 FOR UPDATE OF d SKIP LOCKED
                ), ranked AS (
                    SELECT d.id, row_number() OVER (PARTITION BY d.webhook_id ORDER BY d.next_attempt_at, d.event_seq) AS n
                      FROM techbank.webhook_deliveries d WHERE d.id IN (SELECT id FROM due)
                )
                UPDATE techbank.webhook_deliveries d
                   SET attempts = d.attempts + 1, next_attempt_at = now() + make_interval(secs => $4)
                  FROM techbank.webhooks w
                 WHERE w.id = d.webhook_id AND d.id IN (SELECT id FROM ranked WHERE n <= $2 LIMIT $1)
                RETURNING d.id, d.webhook_id, w.url, d.event_seq, d.event_type, d.attempts, w.secret,
                          CASE WHEN w.previous_until > now() THEN w.previous_secret END
                """,
                [Int64(limit), Int64(perEndpoint), busy, Double(Self.attemptLease.components.seconds)])
        }
        return try rows.map { row in
            let sealed = [try row.decode(Data.self, at: 6)] + [try row.decode(Data?.self, at: 7)].compactMap { $0 }
            return DueDelivery(
                id: try row.decode(UUID.self, at: 0), webhookID: try row.decode(UUID.self, at: 1), url: try row.decode(String.self, at: 2),
                eventSeq: try row.decode(Int.self, at: 3), eventType: try row.decode(String.self, at: 4), attempt: try row.decode(Int.self, at: 5),
                secrets: try sealed.map(secrets.open))
        }
    }

    /// Records the outcome of `delivery`'s attempt: `statusCode` (nil: no answer) and `error`.
    /// A 2xx succeeds; anything else is tried again after `retrySchedule[attempt - 1]`, or fails
    /// once the schedule is used up. An endpoint failing every delivery for `disableAfter` is
    /// disabled, and that is journaled.
    public func record(_ delivery: DueDelivery, statusCode: Int?, error: String?, retrySchedule: [Duration]) async throws {
        let succeeded = statusCode.map { (200...299).contains($0) } ?? false
        let retryAfter = succeeded || delivery.attempt > retrySchedule.count ? nil : retrySchedule[delivery.attempt - 1]
        try await pool.withTransaction { connection in
            try await connection.query(
                """
                UPDATE techbank.webhook_deliveries
                   SET status = $2, last_status_code = $3, last_error = left($4, 500),
                       next_attempt_at = CASE WHEN $5::float8 IS NULL THEN NULL ELSE now() + make_interval(secs => $5) END
                 WHERE id = $1 AND attempts = $6
                """,
                [delivery.id, succeeded ? "succeeded" : (retryAfter == nil ? "failed" : "pending"), statusCode.map(Int32.init(clamping:)), error,
                 retryAfter.map { Double($0.components.seconds) }, Int32(clamping: delivery.attempt)])
            if succeeded {
                try await connection.query("UPDATE techbank.webhooks SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL", [delivery.webhookID])
                return
            }
            try await connection.query("UPDATE techbank.webhooks SET failing_since = coalesce(failing_since, now()) WHERE id = $1", [delivery.webhookID])
            let disabled = try await connection.query(
                """
                UPDATE techbank.webhooks SET enabled = false, version = version + 1
                 WHERE id = $1 AND enabled AND failing_since <= now() - make_interval(secs => $2)
                RETURNING organization_id, failing_since
                """,
                [delivery.webhookID, Double(Self.disableAfter.components.seconds)])
            if let row = disabled.first {
                try await connection.query(
                    "SELECT ledger.journal_append('webhook_disabled', $1, jsonb_build_object('organization_id', $2::uuid, 'failing_since', $3::timestamptz))",
                    [delivery.webhookID, try row.decode(UUID.self, at: 0), try row.decode(Date.self, at: 1)])
            }
        }
    }
}
