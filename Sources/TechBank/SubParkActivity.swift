import Foundation
import Postgres

/// What a sub-park's members did over a period: the technologies and demands they created and the
/// matches made about their objects, counted by field and by current status.
public struct SubParkActivity: Sendable, Equatable {
    public struct Counts: Sendable, Equatable {
        public let total: Int
        /// For matches, the field of the matched technology.
        public let byField: [String: Int]
        public let byStatus: [String: Int]
    }

    public let subParkID: UUID
    public let members: Int
    public let technologies: Counts
    public let demands: Counts
    public let matches: Counts
}

extension Organizations {
    /// The activity of `subParkID`'s members for objects created from the start of `from` to the
    /// end of `through` (UTC days).
    public func activity(ofSubPark subParkID: UUID, from: PostgresDate, through: PostgresDate) async throws -> SubParkActivity {
        try await pool.withConnection { connection in
            let members = try await connection.query("SELECT count(*) FROM techbank.organizations WHERE sub_park_id = $1", [subParkID])[0]
                .decode(Int.self, at: 0)
            // One row per (kind, field, status); a match is counted once even when both parties are members.
            let rows = try await connection.query(
                """
                SELECT 'technologies', t.field, t.status, count(*)
                  FROM techbank.technologies t JOIN techbank.organizations o ON o.id = t.owner_id
                 WHERE o.sub_park_id = $1 AND t.created_at >= $2 AND t.created_at < $3
                 GROUP BY t.field, t.status
                UNION ALL
                SELECT 'demands', d.field, d.status, count(*)
                  FROM techbank.demands d JOIN techbank.organizations o ON o.id = d.owner_id
                 WHERE o.sub_park_id = $1 AND d.created_at >= $2 AND d.created_at < $3
                 GROUP BY d.field, d.status
                UNION ALL
                SELECT 'matches', t.field, m.status, count(*)
                  FROM techbank.matches m JOIN techbank.technologies t ON t.id = m.technology_id
                 WHERE m.created_at >= $2 AND m.created_at < $3
                   AND EXISTS (SELECT 1 FROM techbank.organizations o WHERE o.id IN (m.seller_id, m.buyer_id) AND o.sub_park_id = $1)
                 GROUP BY t.field, m.status
                """,
                [subParkID, from.midnightUTC, PostgresDate(daysSince2000: through.daysSince2000 + 1).midnightUTC])
            var totals: [String: Int] = [:]
            var byField: [String: [String: Int]] = [:]
            var byStatus: [String: [String: Int]] = [:]
            for row in rows {
                let kind = try row.decode(String.self, at: 0)
                let count = try row.decode(Int.self, at: 3)
                totals[kind, default: 0] += count
                byField[kind, default: [:]][try row.decode(String.self, at: 1), default: 0] += count
                byStatus[kind, default: [:]][try row.decode(String.self, at: 2), default: 0] += count
            }
            func counts(_ kind: String) -> SubParkActivity.Counts {
                .init(total: totals[kind] ?? 0, byField: byField[kind] ?? [:], byStatus: byStatus[kind] ?? [:])
            }
            return SubParkActivity(subParkID: subParkID, members: members, technologies: counts("technologies"), demands: counts("demands"),
                                   matches: counts("matches"))
        }
    }
}
