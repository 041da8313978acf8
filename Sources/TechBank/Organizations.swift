import Crypto
import Foundation
import Ledger
import Postgres

/// What an organization is on the platform; it decides what it may see and do.
public enum OrganizationKind: String, Sendable, Codable, CaseIterable {
    /// The platform itself: onboards organizations and issues credentials. Exactly one exists.
    case `operator`
    case institute
    case enterprise
    case broker
    case subPark = "sub_park"
    /// The managing committee: reads everything, writes only approvals and audits.
    case committee

    /// The kinds `POST /v1/organizations` can create.
    public static let creatable: [OrganizationKind] = [.institute, .enterprise, .broker, .subPark, .committee]
}

public struct Organization: Sendable, Equatable {
    public let id: UUID
    public let name: String
    public let kind: OrganizationKind
    /// The sub-park an institute or enterprise belongs to.
    public let subParkID: UUID?
    /// ISO 3166-1 alpha-2.
    public let country: String
    /// Increases with every change; the HTTP layer's ETag.
    public let version: Int
    public let createdAt: Date
}

/// An API key as listed: never its secret.
public struct APIKey: Sendable, Equatable {
    public let id: UUID
    public let organizationID: UUID
    public let label: String?
    public let createdAt: Date
    public let revokedAt: Date?
}

/// The organization a request acts as, established from its API key.
public struct Identity: Sendable, Equatable {
    public let organizationID: UUID
    public let kind: OrganizationKind
    public let subParkID: UUID?
    public let keyID: UUID

    public init(organizationID: UUID, kind: OrganizationKind, subParkID: UUID?, keyID: UUID) {
        self.organizationID = organizationID
        self.kind = kind
        self.subParkID = subParkID
        self.keyID = keyID
    }

    /// The operator and the committee read everything.
    public var readsEverything: Bool { kind == .operator || kind == .committee }

    /// Whether this identity may see data belonging to `organizationID` (a member of `subParkID`):
    /// its own, its members' if it is a sub-park, or anything if it reads everything.
    public func canSee(organizationID other: UUID, memberOf subParkID: UUID?) -> Bool {
        readsEverything || other == organizationID || (kind == .subPark && subParkID == organizationID)
    }
}

/// Organizations and their credentials.
public struct Organizations: Sendable {
    /// Prefix of every API key secret.
    public static let keyPrefix = "tbk_"
    /// The fixed id of the key that `TECHBANK_ADMIN_KEY` sets.
    public static let adminKeyID = UUID(uuidString: "00000000-0000-0000-0000-00000000a001")!

    public let pool: PostgresPool
    /// Keys recently found valid (`authenticate`); share one `Organizations` across a server so
    /// that its revocations reach its cache.
    let checkedKeys = CheckedKeys()

    public init(pool: PostgresPool) { self.pool = pool }

    /// The sub-park `organizationID` belongs to, as far as `identity`'s view depends on it: only a
    /// sub-park sees objects for their owner's membership, so for anyone else this is nil, without a query.
    public func subPark(of organizationID: UUID, seenBy identity: Identity) async throws -> UUID? {
        guard identity.kind == .subPark else { return nil }
        return try await get(organizationID)?.subParkID
    }

    /// Creates an organization.
    /// - Throws: `TechBankError` if the sub-park does not exist or is not a sub-park, or if a sub-park
    ///   is given for a kind that has none.
    public func create(id: UUID = UUID(), name: String, kind: OrganizationKind, subParkID: UUID?, country: String) async throws -> Organization {
        do {
            return try await pool.withTransaction { connection in
                let rows = try await connection.query(
                    """
                    INSERT INTO techbank.organizations (id, name, kind, sub_park_id, country) VALUES ($1, $2, $3, $4, $5)
                    RETURNING \(Self.columns)
                    """,
                    [id, name, kind.rawValue, subParkID, country])
                let organization = try Self.decode(rows[0])
                try await connection.query(
                    "SELECT ledger.journal_append('organization_created', $1, jsonb_build_object('name', $2::text, 'kind', $3::text, 'sub_park_id', $4::uuid, 'country', $5::text))",
                    [id, name, kind.rawValue, subParkID, country])
                return organization
            }
        } catch let error as PostgresError where error.sqlState == "TB010" || error.constraint == "organizations_sub_park_id_fkey" {
            throw TechBankError(.validation, field: "sub_park_id", "no sub-park with this id")
        } catch let error as PostgresError where error.sqlState == SQLState.uniqueViolation && error.constraint == "organizations_pkey" {
            throw TechBankError(.conflict, field: "id", "an organization with this id exists")
        }
    }

    public func get(_ id: UUID) async throws -> Organization? {
        let rows = try await pool.withConnection { connection in
            try await connection.query("SELECT \(Self.columns) FROM techbank.organizations WHERE id = $1", [id])
        }
        return try rows.first.map(Self.decode)
    }

    /// Organizations `identity` may see, filtered, in id order, `limit` at a time after `cursor`.
    public func list(visibleTo identity: Identity, kind: OrganizationKind?, subParkID: UUID?, limit: Int, after cursor: UUID?) async throws -> (items: [Organization], next: UUID?) {
        let rows = try await pool.withConnection { connection in
            try await connection.query(
                """
                SELECT \(Self.columns) FROM techbank.organizations
                 WHERE ($1 OR id = $2 OR sub_park_id = $2)
                   AND ($3::text IS NULL OR kind = $3) AND ($4::uuid IS NULL OR sub_park_id = $4)
                   AND id > $5
                 ORDER BY id LIMIT $6
                """,
                [identity.readsEverything, identity.organizationID, kind?.rawValue, subParkID,
                 cursor ?? UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)), Int64(limit + 1)])
        }
        let items = try rows.prefix(limit).map(Self.decode)
        return (items, rows.count > limit ? items.last?.id : nil)
    }

    /// Renames an organization if its version is still `expectedVersion`.
    /// - Returns: the updated organization, or nil if it does not exist.
    /// - Throws: `TechBankError.Code.preconditionFailed` if the version moved on.
    public func rename(_ id: UUID, to name: String, expectedVersion: Int) async throws -> Organization? {
        try await pool.withTransaction { connection in
            let rows = try await connection.query(
                "UPDATE techbank.organizations SET name = $2, version = version + 1 WHERE id = $1 AND version = $3 RETURNING \(Self.columns)",
                [id, name, Int32(clamping: expectedVersion)])
            guard let row = rows.first else {
                let exists = try await connection.query("SELECT 1 FROM techbank.organizations WHERE id = $1", [id])
                if exists.isEmpty { return nil }
                throw TechBankError(.preconditionFailed, "the organization has changed; fetch it again")
            }
            try await connection.query(
                "SELECT ledger.journal_append('organization_renamed', $1, jsonb_build_object('name', $2::text))", [id, name])
            return try Self.decode(row)
        }
    }

    // MARK: API keys

    /// Issues a new key for an organization. The secret is returned once and only its hash stored.
    public func issueKey(for organizationID: UUID, label: String?) async throws -> (key: APIKey, secret: String) {
        let secret = Self.newSecret()
        let key = try await pool.withTransaction { connection in
            let rows = try await connection.query(
                """
                INSERT INTO techbank.api_keys (id, organization_id, key_hash, label) VALUES ($1, $2, $3, $4)
                RETURNING id, organization_id, label, created_at, revoked_at
                """,
                [UUID(), organizationID, Self.hash(secret), label])
            let key = try Self.decodeKey(rows[0])
            try await connection.query(
                "SELECT ledger.journal_append('api_key_issued', $1, jsonb_build_object('organization_id', $2::uuid, 'label', $3::text))",
                [key.id, organizationID, label])
            return key
        }
        return (key, secret)
    }

    public func keys(of organizationID: UUID, limit: Int, after cursor: (Date, UUID)?) async throws -> (items: [APIKey], next: (Date, UUID)?) {
        let rows = try await pool.withConnection { connection in
            try await connection.query(
                """
                SELECT id, organization_id, label, created_at, revoked_at FROM techbank.api_keys
                 WHERE organization_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3))
                 ORDER BY created_at, id LIMIT $4
                """,
                [organizationID, cursor?.0, cursor?.1, Int64(limit + 1)])
        }
        let items = try rows.prefix(limit).map(Self.decodeKey)
        return (items, rows.count > limit ? items.last.map { ($0.createdAt, $0.id) } : nil)
    }

    /// Revokes a key of an organization. Returns false if the organization has no such key.
    public func revokeKey(_ keyID: UUID, of organizationID: UUID) async throws -> Bool {
        defer { checkedKeys.forget(keyID: keyID) }  // once committed, or not: either way not trusted from memory
        return try await pool.withTransaction { connection in
            let rows = try await connection.query(
                "SELECT revoked_at IS NOT NULL FROM techbank.api_keys WHERE id = $1 AND organization_id = $2 FOR UPDATE", [keyID, organizationID])
            guard let row = rows.first else { return false }
            // Revoking a revoked key changes nothing, so it journals nothing.
            guard try !row.decode(Bool.self, at: 0) else { return true }
            try await connection.query("UPDATE techbank.api_keys SET revoked_at = now() WHERE id = $1", [keyID])
            try await connection.query(
                "SELECT ledger.journal_append('api_key_revoked', $1, jsonb_build_object('organization_id', $2::uuid))", [keyID, organizationID])
            return true
        }
    }

    /// The identity a presented secret belongs to, or nil for an unknown or revoked key.
    ///
    /// A key found valid is trusted without asking the database again for `CheckedKeys.trustedFor`
    /// (one second): a key revoked through this `Organizations` is refused at once, one revoked
    /// elsewhere (another server) within that second. Unknown keys are never remembered.
    public func authenticate(secret: String) async throws -> Identity? {
        guard secret.hasPrefix(Self.keyPrefix), secret.utf8.count <= 200 else { return nil }
        let hash = Self.hash(secret)
        if let identity = checkedKeys.identity(hash: hash) { return identity }
        let lookup = checkedKeys.lookupStarted()
        let rows = try await pool.withConnection { connection in
            try await connection.query(
                """
                SELECT k.id, o.id, o.kind, o.sub_park_id FROM techbank.api_keys k
                  JOIN techbank.organizations o ON o.id = k.organization_id
                 WHERE k.key_hash = $1 AND k.revoked_at IS NULL
                """,
                [hash])
        }
        guard let row = rows.first, let kind = OrganizationKind(rawValue: try row.decode(String.self, at: 2)) else { return nil }
        let identity = Identity(organizationID: try row.decode(UUID.self, at: 1), kind: kind, subParkID: try row.decode(UUID?.self, at: 3), keyID: try row.decode(UUID.self, at: 0))
        checkedKeys.remember(identity, hash: hash, lookup: lookup)
        return identity
    }

    /// Makes sure the operator organization exists and has an admin key. With `adminKey`, the
    /// admin key is set to it (created or replaced). Without, a key is generated only if the
    /// operator has none yet.
    /// - Returns: a newly generated secret, to be shown once, or nil.
    public func bootstrapOperator(adminKey: String?) async throws -> String? {
        if let adminKey, !adminKey.hasPrefix(Self.keyPrefix) || adminKey.utf8.count < 24 {
            throw TechBankError(.validation, field: "TECHBANK_ADMIN_KEY", "must start with \(Self.keyPrefix) and be at least 24 characters long")
        }
        return try await pool.withTransaction { connection in
            try await connection.query(
                """
                INSERT INTO techbank.organizations (id, name, kind, country) VALUES ($1, 'TechBank operator', 'operator', 'CN')
                ON CONFLICT DO NOTHING
                """,
                [UUID()])
            let operatorID = try await connection.query("SELECT id FROM techbank.organizations WHERE kind = 'operator'")[0].decode(UUID.self, at: 0)
            let secret: String
            if let adminKey {
                secret = adminKey
            } else {
                let active = try await connection.query(
                    "SELECT 1 FROM techbank.api_keys WHERE organization_id = $1 AND revoked_at IS NULL", [operatorID])
                guard active.isEmpty else { return nil }
                secret = Self.newSecret()
            }
            try await connection.query(
                """
                INSERT INTO techbank.api_keys (id, organization_id, key_hash, label) VALUES ($1, $2, $3, 'admin')
                ON CONFLICT (id) DO UPDATE SET key_hash = EXCLUDED.key_hash, revoked_at = NULL
                """,
                [Self.adminKeyID, operatorID, Self.hash(secret)])
            return adminKey == nil ? secret : nil
        }
    }

    // MARK: Internals

    static let columns = "id, name, kind, sub_park_id, country, version, created_at"

    static func decode(_ row: PostgresRow) throws -> Organization {
        let kindText = try row.decode(String.self, "kind")
        guard let kind = OrganizationKind(rawValue: kindText) else {
            throw PostgresError(code: .decoding, message: "unknown organization kind \(kindText)")
        }
        return Organization(
            id: try row.decode(UUID.self, "id"), name: try row.decode(String.self, "name"), kind: kind,
            subParkID: try row.decode(UUID?.self, "sub_park_id"), country: try row.decode(String.self, "country"),
            version: try row.decode(Int.self, "version"), createdAt: try row.decode(Date.self, "created_at"))
    }

    static func decodeKey(_ row: PostgresRow) throws -> APIKey {
        APIKey(
            id: try row.decode(UUID.self, at: 0), organizationID: try row.decode(UUID.self, at: 1),
            label: try row.decode(String?.self, at: 2), createdAt: try row.decode(Date.self, at: 3),
            revokedAt: try row.decode(Date?.self, at: 4))
    }

    static func newSecret() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return keyPrefix + Hex.encode(bytes)
    }

    static func hash(_ secret: String) -> Data {
        Data(SHA256.hash(data: Data(secret.utf8)))
    }
}
