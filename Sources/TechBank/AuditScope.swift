import Foundation
import Postgres

extension Organizations {
    /// The most subjects a party's view of the audit journal covers.
    public static let maxAuditSubjects = 20_000

    /// The journal subjects an organization's own objects are: itself, its API keys, its accounts
    /// and their transfers, its technologies, the demands it owns or posted, the matches and deals
    /// it is party to; for a sub-park, its members' too. Nil for the committee and the operator,
    /// who see every event.
    public func auditSubjects(of identity: Identity) async throws -> [UUID]? {
        guard !identity.readsEverything else { return nil }
        let rows = try await pool.withConnection { connection in
            try await connection.query(
                """
                WITH orgs AS (SELECT $1::uuid AS id UNION SELECT id FROM techbank.organizations WHERE $3 AND sub_park_id = $1)
                SELECT id FROM orgs
                UNION ALL SELECT id FROM techbank.api_keys WHERE organization_id IN (SELECT id FROM orgs)
                UNION ALL SELECT id FROM ledger.accounts WHERE owner_id IN (SELECT id FROM orgs)
                UNION ALL SELECT t.id FROM ledger.transfers t JOIN ledger.accounts a ON a.id = t.debit_account_id WHERE a.owner_id IN (SELECT id FROM orgs)
                UNION ALL SELECT t.id FROM ledger.transfers t JOIN ledger.accounts a ON a.id = t.credit_account_id WHERE a.owner_id IN (SELECT id FROM orgs)
                UNION ALL SELECT id FROM techbank.technologies WHERE owner_id IN (SELECT id FROM orgs)
                UNION ALL SELECT id FROM techbank.demands WHERE owner_id IN (SELECT id FROM orgs) OR posted_by IN (SELECT id FROM orgs)
                UNION ALL SELECT id FROM techbank.matches WHERE broker_id IN (SELECT id FROM orgs) OR seller_id IN (SELECT id FROM orgs) OR buyer_id IN (SELECT id FROM orgs)
                UNION ALL SELECT id FROM techbank.deals WHERE seller_id IN (SELECT id FROM orgs) OR buyer_id IN (SELECT id FROM orgs) OR broker_id IN (SELECT id FROM orgs)
                LIMIT $2
                """,
                [identity.organizationID, Int64(Self.maxAuditSubjects), identity.kind == .subPark])
        }
        return try rows.map { try $0.decode(UUID.self, at: 0) }
    }
}
