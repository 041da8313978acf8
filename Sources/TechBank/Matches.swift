import Foundation
import Postgres

/// A match is proposed by a broker; it is accepted once both parties accept and declined as soon
/// as either declines.
public enum MatchStatus: String, Sendable, Codable, CaseIterable {
    case proposed
    case accepted
    case declined
}

public enum MatchDecision: String, Sendable, Codable, CaseIterable {
    case accept
    case decline

    var recorded: String { self == .accept ? "accepted" : "declined" }
}

/// A broker's introduction of a listed technology to an open demand.
public struct Match: Sendable, Equatable {
    public let id: UUID
    public let brokerID: UUID
    public let technologyID: UUID
    public let demandID: UUID
    /// The technology's owner.
    public let sellerID: UUID
    /// The demand's owner.
    public let buyerID: UUID
    public let note: String
    /// `accepted`, `declined`, or nil while undecided.
    public let sellerDecision: String?
    public let buyerDecision: String?
    public let status: MatchStatus
    public let version: Int
    public let createdAt: Date
    public let updatedAt: Date
}

public struct MatchQuery: Sendable {
    public var status: MatchStatus?
    public var technologyID: UUID?
    public var demandID: UUID?

    public init() {}
}

extension Identity {
    /// Who may read a match: the broker who made it, the two parties, their sub-parks, the
    /// committee and the operator.
    public func canSee(_ match: Match, sellerSubParkID: UUID?, buyerSubParkID: UUID?) -> Bool {
        match.brokerID == organizationID || canSee(organizationID: match.sellerID, memberOf: sellerSubParkID)
            || canSee(organizationID: match.buyerID, memberOf: buyerSubParkID)
    }
}

/// Broker matches between listed technologies and open demands.
public struct Matches: Sendable {
    public let pool: PostgresPool

    public init(pool: PostgresPool) { self.pool = pool }

    /// Proposes a match of a listed technology with an open demand.
    /// - Throws: `.validation` for a technology that is not listed or a demand that is not open
    ///   (naming the field), `.conflict` for a live match of the same pair or a reused id.
    public func propose(id: UUID = UUID(), broker: UUID, technologyID: UUID, demandID: UUID, note: String) async throws -> Match {
        do {
            try await pool.withTransaction { connection in
                // Shared locks: the technology and the demand cannot change state under the new match.
                let technology = try await connection.query("SELECT status, owner_id FROM techbank.technologies WHERE id = $1 FOR SHARE", [technologyID])
                let demand = try await connection.query("SELECT status, owner_id FROM techbank.demands WHERE id = $1 FOR SHARE", [demandID])
                guard let technology = technology.first, try technology.decode(String.self, at: 0) == TechnologyStatus.listed.rawValue else {
                    throw TechBankError(.validation, field: "technology_id", "must name a listed technology")
                }
                guard let demand = demand.first, try demand.decode(String.self, at: 0) == DemandStatus.open.rawValue else {
                    throw TechBankError(.validation, field: "demand_id", "must name an open demand")
                }
                try await connection.query(
                    """
                    INSERT INTO techbank.matches (id, broker_id, technology_id, demand_id, seller_id, buyer_id, note)
                    VALUES ($1, $2, $3, $4, $5, $6, $7)
                    """,
                    [id, broker, technologyID, demandID, try technology.decode(UUID.self, at: 1), try demand.decode(UUID.self, at: 1), note])
                try await Self.journal(connection, id, "proposed", actor: broker)
            }
        } catch let error as PostgresError where error.constraint == "matches_one_live" {
            throw TechBankError(.conflict, field: "technology_id", "this technology and demand already have a live match")
        } catch let error as PostgresError where error.constraint == "matches_pkey" {
            throw TechBankError(.conflict, field: "id", "a match with this id exists")
        }
        guard let match = try await get(id) else { throw TechBankError(.conflict, field: "id", "the match vanished") }
        return match
    }

    public func get(_ id: UUID) async throws -> Match? {
        try await pool.withConnection { connection in
            try await connection.query("SELECT \(Self.columns) FROM techbank.matches WHERE id = $1", [id]).first.map(Self.decode)
        }
    }

    /// Records `party`'s decision. When the match becomes accepted, its demand (if still open)
    /// becomes matched in the same transaction.
    /// - Throws: `.illegalTransition` if that party has decided already or the match is declined.
    public func decide(_ id: UUID, _ decision: MatchDecision, by party: UUID) async throws -> Match? {
        let decided = try await pool.withTransaction { connection -> Bool in
            let rows = try await connection.query(
                "SELECT seller_id, buyer_id, seller_decision, buyer_decision, status, demand_id FROM techbank.matches WHERE id = $1 FOR UPDATE", [id])
            guard let row = rows.first else { return false }
            let status = try row.decode(String.self, at: 4)
            let column: String
            let previous: String?
            if try row.decode(UUID.self, at: 0) == party {
                column = "seller_decision"
                previous = try row.decode(String?.self, at: 2)
            } else if try row.decode(UUID.self, at: 1) == party {
                column = "buyer_decision"
                previous = try row.decode(String?.self, at: 3)
            } else {
                return false
            }
            guard previous == nil, status == MatchStatus.proposed.rawValue else {
                throw TechBankError(.illegalTransition, field: "status",
                                    "cannot \(decision.rawValue) a match that is \(status)" + (previous.map { " (you have \($0) it)" } ?? ""))
            }
            if decision == .accept {
                // Accepting needs the demand still open and the technology still on the market.
                let current = try await connection.query(
                    """
                    SELECT d.status, t.status FROM techbank.matches m JOIN techbank.demands d ON d.id = m.demand_id
                      JOIN techbank.technologies t ON t.id = m.technology_id WHERE m.id = $1 FOR SHARE OF d, t
                    """, [id])[0]
                let demandStatus = try current.decode(String.self, at: 0)
                let technologyStatus = try current.decode(String.self, at: 1)
                guard demandStatus == DemandStatus.open.rawValue else {
                    throw TechBankError(.illegalTransition, field: "status", "cannot accept: the demand is \(demandStatus)")
                }
                guard technologyStatus == TechnologyStatus.listed.rawValue || technologyStatus == TechnologyStatus.licensed.rawValue else {
                    throw TechBankError(.illegalTransition, field: "status", "cannot accept: the technology is \(technologyStatus)")
                }
            }
            let newStatus = try await connection.query(
                """
                UPDATE techbank.matches SET \(column) = $2,
                       status = CASE WHEN $2 = 'declined' THEN 'declined'
                                     WHEN coalesce(\(column == "seller_decision" ? "buyer_decision" : "seller_decision"), '') = 'accepted' THEN 'accepted'
                                     ELSE 'proposed' END,
                       version = version + 1, updated_at = now()
                 WHERE id = $1 RETURNING status
                """,
                [id, decision.recorded])[0].decode(String.self, at: 0)
            try await Self.journal(connection, id, decision.recorded, actor: party)
            if newStatus == MatchStatus.accepted.rawValue {
                let demandID = try row.decode(UUID.self, at: 5)
                let moved = try await connection.query(
                    "UPDATE techbank.demands SET status = 'matched', version = version + 1, updated_at = now() WHERE id = $1 AND status = 'open' RETURNING id",
                    [demandID])
                if !moved.isEmpty { try await Demands.journal(connection, demandID, "matched", actor: party) }
            }
            return true
        }
        return decided ? try await get(id) : nil
    }

    /// Whether `organizationID` made, or offered its technology in, a match on the demand.
    public func involves(_ organizationID: UUID, demandID: UUID) async throws -> Bool {
        try await pool.withConnection { connection in
            !(try await connection.query(
                "SELECT 1 FROM techbank.matches WHERE demand_id = $1 AND $2 IN (broker_id, seller_id) LIMIT 1", [demandID, organizationID])).isEmpty
        }
    }

    /// Matches `identity` may see, newest first; `after` is the last match of the previous page.
    public func list(_ query: MatchQuery, visibleTo identity: Identity, limit: Int, after cursor: (Date, UUID)?) async throws -> (items: [Match], next: (Date, UUID)?) {
        let rows = try await pool.withConnection { connection in
            try await connection.query(
                """
                SELECT \(qualified(Self.columns, by: "m"))
                  FROM techbank.matches m
                  JOIN techbank.organizations s ON s.id = m.seller_id
                  JOIN techbank.organizations b ON b.id = m.buyer_id
                 WHERE ($1 OR $2 IN (m.broker_id, m.seller_id, m.buyer_id) OR $2 IN (s.sub_park_id, b.sub_park_id))
                   AND ($3::text IS NULL OR m.status = $3)
                   AND ($4::uuid IS NULL OR m.technology_id = $4)
                   AND ($5::uuid IS NULL OR m.demand_id = $5)
                   AND ($6::timestamptz IS NULL OR (m.created_at, m.id) < ($6, $7))
                 ORDER BY m.created_at DESC, m.id DESC
                 LIMIT $8
                """,
                [identity.readsEverything, identity.organizationID, query.status?.rawValue, query.technologyID, query.demandID,
                 cursor?.0, cursor?.1, Int64(limit + 1)])
        }
        let items = try rows.prefix(limit).map(Self.decode)
        return (items, rows.count > limit ? items.last.map { ($0.createdAt, $0.id) } : nil)
    }

    // MARK: Internals

    static let columns = """
        id, broker_id, technology_id, demand_id, seller_id, buyer_id, note, seller_decision, buyer_decision, status, version, created_at, updated_at
        """

    static func journal(_ connection: PostgresConnection, _ id: UUID, _ event: String, actor: UUID) async throws {
        try await connection.query(
            """
            SELECT ledger.journal_append('match_' || $2, id, jsonb_build_object(
                       'actor_id', $3::uuid, 'version', version, 'status', status, 'broker_id', broker_id, 'technology_id', technology_id,
                       'demand_id', demand_id, 'seller_decision', seller_decision, 'buyer_decision', buyer_decision))
              FROM techbank.matches WHERE id = $1
            """,
            [id, event, actor])
    }

    static func decode(_ row: PostgresRow) throws -> Match {
        let statusText = try row.decode(String.self, "status")
        guard let status = MatchStatus(rawValue: statusText) else {
            throw PostgresError(code: .decoding, message: "unknown match status \(statusText)")
        }
        return Match(
            id: try row.decode(UUID.self, "id"), brokerID: try row.decode(UUID.self, "broker_id"),
            technologyID: try row.decode(UUID.self, "technology_id"), demandID: try row.decode(UUID.self, "demand_id"),
            sellerID: try row.decode(UUID.self, "seller_id"), buyerID: try row.decode(UUID.self, "buyer_id"), note: try row.decode(String.self, "note"),
            sellerDecision: try row.decode(String?.self, "seller_decision"), buyerDecision: try row.decode(String?.self, "buyer_decision"),
            status: status, version: try row.decode(Int.self, "version"), createdAt: try row.decode(Date.self, "created_at"),
            updatedAt: try row.decode(Date.self, "updated_at"))
    }
}
