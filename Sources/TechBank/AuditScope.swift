import Foundation
import Postgres

extension Organizations {
    /// The most subjects a party's view of the audit journal covers.
    public static let maxAuditSubjects = 20_000

    /// The journal subjects an organization's own objects are: itself, its accounts, its
    /// technologies, the demands it owns or posted, the matches and deals it is party to. Nil for
    /// the committee and the operator, who see every event.
    public func auditSubjects(of identity: Identity) async throws -> [UUID]? {
        guard !identity.readsEverything else { return nil }
        let rows = try await pool.withConnection { connection in
            try await connection.query(
                """
                SELECT $1::uuid
                UNION ALL SELECT id FROM ledger.accounts WHERE owner_id = $1
                UNION ALL SELECT id FROM techbank.technologies WHERE owner_id = $1
                UNION ALL SELECT id FROM techbank.demands WHERE $1 IN (owner_id, posted_by)
                UNION ALL SELECT id FROM techbank.matches WHERE $1 IN (broker_id, seller_id, buyer_id)
                UNION ALL SELECT id FROM techbank.deals WHERE $1 IN (seller_id, buyer_id, broker_id)
                LIMIT $2
                """,
                [identity.organizationID, Int64(Self.maxAuditSubjects)])
        }
        return try rows.map { try $0.decode(UUID.self, at: 0) }
    }
}
