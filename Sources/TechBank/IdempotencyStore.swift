import Foundation
import Postgres

/// Stored first responses for `Idempotency-Key`, scoped per organization.
public struct IdempotencyStore: Sendable {
    /// A response as stored and replayed.
    public struct StoredResponse: Sendable, Equatable {
        public let status: Int
        /// The headers that describe the response (content type, location, ETag), by name.
        public let headers: [String: String]
        public let body: Data

        public init(status: Int, headers: [String: String], body: Data) {
            self.status = status
            self.headers = headers
            self.body = body
        }
    }

    public enum Claim: Sendable, Equatable {
        /// This request owns the key: run it, then `complete` or `release`.
        case claimed
        /// The key's first request finished: answer with its response.
        case replay(StoredResponse)
        /// The key's first request is still running.
        case inProgress
        /// The key was used with a different request.
        case mismatch
    }

    /// A claim left unfinished this long (its request crashed) may be taken over by an identical request.
    static let abandonedAfterSeconds = 60

    public let pool: PostgresPool

    public init(pool: PostgresPool) { self.pool = pool }

    public func claim(organizationID: UUID, key: String, requestHash: Data) async throws -> Claim {
        try await pool.withConnection { connection in
            let claimed = try await connection.query(
                """
                INSERT INTO techbank.idempotency_keys (organization_id, key, request_hash) VALUES ($1, $2, $3)
                ON CONFLICT (organization_id, key) DO UPDATE SET created_at = now()
                 WHERE idempotency_keys.status IS NULL AND idempotency_keys.request_hash = EXCLUDED.request_hash
                   AND idempotency_keys.created_at < now() - make_interval(secs => $4)
                RETURNING 1
                """,
                [organizationID, key, requestHash, Int64(Self.abandonedAfterSeconds)])
            if !claimed.isEmpty { return .claimed }
            let rows = try await connection.query(
                "SELECT request_hash, status, headers, body FROM techbank.idempotency_keys WHERE organization_id = $1 AND key = $2",
                [organizationID, key])
            guard let row = rows.first else { return .inProgress }  // released meanwhile; the caller may retry
            guard try row.decode(Data.self, at: 0) == requestHash else { return .mismatch }
            guard let status = try row.decode(Int32?.self, at: 1) else { return .inProgress }
            let headers = try row.decode(JSONB?.self, at: 2).map { try $0.decode([String: String].self) } ?? [:]
            return .replay(StoredResponse(status: Int(status), headers: headers, body: try row.decode(Data?.self, at: 3) ?? Data()))
        }
    }

    public func complete(organizationID: UUID, key: String, response: StoredResponse) async throws {
        try await pool.withConnection { connection in
            try await connection.query(
                "UPDATE techbank.idempotency_keys SET status = $3, headers = $4, body = $5 WHERE organization_id = $1 AND key = $2",
                [organizationID, key, Int32(response.status), try JSONB(encoding: response.headers), response.body])
        }
    }

    /// Forgets a claim whose request failed without a definite answer, so it can be retried.
    public func release(organizationID: UUID, key: String) async throws {
        try await pool.withConnection { connection in
            try await connection.query(
                "DELETE FROM techbank.idempotency_keys WHERE organization_id = $1 AND key = $2 AND status IS NULL", [organizationID, key])
        }
    }
}

extension IdempotencyStore {
    /// Deletes finished records older than `retentionHours` (at least 24: clients may retry for a day).
    /// - Returns: how many were deleted.
    @discardableResult
    public func purge(retentionHours: Int = 48) async throws -> Int {
        precondition(retentionHours >= 24, "Idempotency-Key records are kept at least 24 hours")
        return try await pool.withConnection { connection in
            try await connection.query(
                "DELETE FROM techbank.idempotency_keys WHERE created_at < now() - make_interval(hours => $1)",
                [Int32(retentionHours)]).affectedRows
        }
    }
}
