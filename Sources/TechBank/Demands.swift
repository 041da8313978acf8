import Foundation
import Postgres

/// Where a demand is: open → matched (a match on it was accepted) → closed by its owner, or
/// expired once its deadline has passed.
public enum DemandStatus: String, Sendable, Codable, CaseIterable {
    case open
    case matched
    case closed
    case expired
}

/// A budget range in minor units of one currency.
public struct Budget: Sendable, Equatable {
    public let min: Int64
    public let max: Int64
    public let currency: String

    public init(min: Int64, max: Int64, currency: String) {
        self.min = min
        self.max = max
        self.currency = currency
    }
}

/// What an enterprise is looking for.
public struct Demand: Sendable, Equatable {
    public let id: UUID
    public let ownerID: UUID
    public let postedBy: UUID
    public let title: String
    public let description: String
    public let field: String
    public let keywords: [String]
    public let trlMin: Int
    public let budget: Budget?
    /// ISO 3166-1 alpha-2, or an ISO 3166-2 subdivision such as CN-SH.
    public let region: String
    public let deadline: PostgresDate
    public let status: DemandStatus
    public let version: Int
    public let createdAt: Date
    public let updatedAt: Date
}

public struct NewDemand: Sendable {
    public var id = UUID()
    public var ownerID: UUID
    public var title: String
    public var description: String
    public var field: String
    public var keywords: [String]
    public var trlMin: Int
    public var budget: Budget?
    public var region: String
    public var deadline: PostgresDate

    public init(ownerID: UUID, title: String, description: String, field: String, keywords: [String], trlMin: Int,
                budget: Budget?, region: String, deadline: PostgresDate) {
        self.ownerID = ownerID
        self.title = title
        self.description = description
        self.field = field
        self.keywords = keywords
        self.trlMin = trlMin
        self.budget = budget
        self.region = region
        self.deadline = deadline
    }
}

/// A change to an open demand (nil: unchanged).
public struct DemandChanges: Sendable {
    public var title: String?
    public var description: String?
    public var keywords: [String]?
    public var trlMin: Int?
    public var budget: Budget?
    public var deadline: PostgresDate?

    public init() {}
}

public struct DemandQuery: Sendable {
    public var text: String?
    public var field: String?
    public var status: DemandStatus?
    public var ownerID: UUID?
    public var subParkID: UUID?

    public init() {}
}

/// A listed technology ranked for a demand. `score` is exactly the sum of the factors'
/// contributions, each `weight × fit` rounded to four decimals.
public struct Candidate: Sendable, Equatable {
    public let technologyID: UUID
    public let title: String
    public let field: String
    public let trl: Int
    public let ownerID: UUID
    public let score: Double
    public let reasons: [Reason]

    /// One factor of the score: `fit` in [0, 1], weighted by `weight`.
    public struct Reason: Sendable, Equatable {
        public let factor: CandidateFactor
        public let weight: Double
        public let fit: Double
        /// `weight × fit`, rounded to four decimals.
        public let contribution: Double
        public let detail: String
    }
}

/// The factors of the candidate ranking and their weights, which sum to 1. README.md documents
/// how each fit is computed; `Demands.candidates` computes them in one SQL query.
public enum CandidateFactor: String, Sendable, CaseIterable {
    case field
    case text
    case trl
    case budget
    case region

    public var weight: Double {
        switch self {
        case .field: 0.30
        case .text: 0.30
        case .trl: 0.20
        case .budget: 0.15
        case .region: 0.05
        }
    }
}

extension Identity {
    /// Who may read a demand: while open, everyone; afterwards its owner, whoever posted it, the
    /// owner's sub-park, the committee and the operator.
    public func canSee(_ demand: Demand, ownerSubParkID: UUID?) -> Bool {
        demand.status == .open || demand.postedBy == organizationID || canSee(organizationID: demand.ownerID, memberOf: ownerSubParkID)
    }

    /// Who may change or close a demand: its owner, whoever posted it, and the operator.
    public func canChange(_ demand: Demand) -> Bool {
        kind == .operator || demand.ownerID == organizationID || demand.postedBy == organizationID
    }
}

/// Demands and their candidate technologies.
public struct Demands: Sendable {
    /// The most results a listing skips through (offset cursors beyond it are refused).
    public static let maxOffset = 10_000

    public let pool: PostgresPool

    public init(pool: PostgresPool) { self.pool = pool }

    /// Posts a demand for `new.ownerID`, posted by `actor`.
    /// - Throws: `TechBankError` `.validation` for an unknown field, `.conflict` for a reused id.
    public func post(_ new: NewDemand, actor: UUID) async throws -> Demand {
        do {
            try await pool.withTransaction { connection in
                try await connection.query(
                    """
                    INSERT INTO techbank.demands (id, owner_id, posted_by, title, description, field, keywords, trl_min,
                                                  budget_min, budget_max, budget_currency, region, deadline, search_text)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
                    """,
                    [new.id, new.ownerID, actor, new.title, new.description, new.field, new.keywords, Int16(new.trlMin),
                     new.budget?.min, new.budget?.max, new.budget?.currency, new.region, new.deadline,
                     Self.searchText(new.title, new.keywords)])
                try await Self.journal(connection, new.id, "posted", actor: actor)
            }
        } catch let error as PostgresError where error.constraint == "demands_field_fkey" {
            throw TechBankError(.validation, field: "field", "not a field of the taxonomy (GET /v1/fields)")
        } catch let error as PostgresError where error.constraint == "demands_pkey" {
            throw TechBankError(.conflict, field: "id", "a demand with this id exists")
        }
        guard let demand = try await get(new.id) else { throw TechBankError(.conflict, field: "id", "the demand vanished") }
        return demand
    }

    public func get(_ id: UUID) async throws -> Demand? {
        try await pool.withConnection { connection in
            try await connection.query("SELECT \(Self.columns) FROM techbank.demands WHERE id = $1", [id]).first.map(Self.decode)
        }
    }

    /// Demands `identity` may see that match `query`: by relevance when searching text, else
    /// newest first.
    public func search(_ query: DemandQuery, visibleTo identity: Identity, limit: Int, offset: Int) async throws -> (items: [Demand], nextOffset: Int?) {
        let text = query.text?.trimmingCharacters(in: .whitespacesAndNewlines)
        let rows = try await pool.withConnection { connection in
            try await connection.query(
                """
                SELECT \(qualified(Self.columns, by: "d"))
                  FROM techbank.demands d JOIN techbank.organizations o ON o.id = d.owner_id
                 WHERE ($1 OR d.owner_id = $2 OR d.posted_by = $2 OR o.sub_park_id = $2 OR d.status = 'open')
                   AND ($3::text IS NULL OR d.search_text ILIKE $10 OR $3 <% d.search_text)
                   AND ($4::text IS NULL OR d.field = $4)
                   AND ($5::text IS NULL OR d.status = $5)
                   AND ($6::uuid IS NULL OR d.owner_id = $6)
                   AND ($7::uuid IS NULL OR o.sub_park_id = $7)
                 ORDER BY CASE WHEN $3::text IS NULL THEN 0
                               ELSE (d.search_text ILIKE $10)::int + word_similarity($3, d.search_text) END DESC,
                          d.created_at DESC, d.id
                 LIMIT $8 OFFSET $9
                """,
                [identity.readsEverything, identity.organizationID, text?.isEmpty == false ? text : nil, query.field, query.status?.rawValue,
                 query.ownerID, query.subParkID, Int64(limit + 1), Int64(offset), Technologies.likePattern(text)])
        }
        return (try rows.prefix(limit).map(Self.decode), rows.count > limit ? offset + limit : nil)
    }

    /// Applies `changes` to an open demand still at `expectedVersion`.
    /// - Throws: `.preconditionFailed` if it moved on, `.illegalTransition` if it is no longer open.
    public func update(_ id: UUID, _ changes: DemandChanges, expectedVersion: Int, actor: UUID) async throws -> Demand? {
        let updated = try await pool.withTransaction { connection -> Bool in
            let rows = try await connection.query("SELECT version, status, title, keywords FROM techbank.demands WHERE id = $1 FOR UPDATE", [id])
            guard let row = rows.first else { return false }
            guard try row.decode(Int.self, at: 0) == expectedVersion else {
                throw TechBankError(.preconditionFailed, "the demand has changed; fetch it again")
            }
            let status = try row.decode(String.self, at: 1)
            guard status == DemandStatus.open.rawValue else {
                throw TechBankError(.illegalTransition, field: "status", "cannot change a demand that is \(status)")
            }
            let title = try changes.title ?? row.decode(String.self, at: 2)
            let keywords = try changes.keywords ?? row.decode([String].self, at: 3)
            try await connection.query(
                """
                UPDATE techbank.demands
                   SET title = $2, description = coalesce($3, description), keywords = $4, trl_min = coalesce($5, trl_min),
                       budget_min = CASE WHEN $6 THEN $7 ELSE budget_min END, budget_max = CASE WHEN $6 THEN $8 ELSE budget_max END,
                       budget_currency = CASE WHEN $6 THEN $9 ELSE budget_currency END, deadline = coalesce($10, deadline),
                       search_text = $11, version = version + 1, updated_at = now()
                 WHERE id = $1
                """,
                [id, title, changes.description, keywords, changes.trlMin.map { Int16($0) }, changes.budget != nil,
                 changes.budget?.min, changes.budget?.max, changes.budget?.currency, changes.deadline, Self.searchText(title, keywords)])
            try await Self.journal(connection, id, "updated", actor: actor)
            return true
        }
        return updated ? try await get(id) : nil
    }

    /// Closes an open or matched demand.
    /// - Throws: `.illegalTransition` naming the current state otherwise.
    public func close(_ id: UUID, actor: UUID) async throws -> Demand? {
        let closed = try await pool.withTransaction { connection -> Bool in
            let rows = try await connection.query("SELECT status FROM techbank.demands WHERE id = $1 FOR UPDATE", [id])
            guard let row = rows.first else { return false }
            let status = try row.decode(String.self, at: 0)
            guard [DemandStatus.open.rawValue, DemandStatus.matched.rawValue].contains(status) else {
                throw TechBankError(.illegalTransition, field: "status", "cannot close a demand that is \(status)")
            }
            try await connection.query(
                "UPDATE techbank.demands SET status = 'closed', version = version + 1, updated_at = now() WHERE id = $1", [id])
            try await Self.journal(connection, id, "closed", actor: actor)
            return true
        }
        return closed ? try await get(id) : nil
    }

    /// Marks open and matched demands whose deadline is before `today` as expired, at most
    /// `limit` of them; returns how many.
    @discardableResult
    public func expire(before today: PostgresDate, limit: Int = 1_000) async throws -> Int {
        try await pool.withTransaction { connection in
            // One statement expires them and journals each with its own deadline (not the cut-off date).
            try await connection.query(
                """
                WITH expired AS (
                    UPDATE techbank.demands SET status = 'expired', version = version + 1, updated_at = now()
                     WHERE id IN (SELECT id FROM techbank.demands WHERE status IN ('open', 'matched') AND deadline < $1
                                   ORDER BY deadline LIMIT $2 FOR UPDATE SKIP LOCKED)
                    RETURNING id, deadline
                )
                SELECT count(*), ledger.journal_append_many(array_agg('demand_expired'::text ORDER BY deadline, id), array_agg(id ORDER BY deadline, id),
                                                            array_agg(jsonb_build_object('deadline', deadline) ORDER BY deadline, id))
                  FROM expired
                """,
                [today, Int64(limit)])[0].decode(Int.self, at: 0)
        }
    }

    /// Listed technologies ranked for `demand`, best first (ties: most recently registered first). See
    /// `CandidateFactor` for the weights and README.md for each factor's fit.
    public func candidates(for demand: Demand, limit: Int, offset: Int) async throws -> (items: [Candidate], nextOffset: Int?) {
        let weights = CandidateFactor.allCases.map(\.weight)
        let rows = try await pool.withConnection { connection in
            try await connection.query(
                """
                WITH fits AS (
                    SELECT t.id, t.title, t.field, t.trl, t.owner_id, t.created_at,
                           (t.field = $2)::int::float8 AS field_fit,
                           CASE WHEN cardinality($3::text[]) = 0 THEN word_similarity($4, t.search_text)::float8
                                ELSE 0.5 * (SELECT count(*) FROM unnest($3::text[]) k
                                             WHERE lower(k) IN (SELECT lower(tk) FROM unnest(t.keywords) tk))::float8 / cardinality($3::text[])
                                   + 0.5 * word_similarity($4, t.search_text)::float8 END AS text_fit,
                           greatest(0, 1 - 0.25 * greatest(0, $5 - t.trl))::float8 AS trl_fit,
                           CASE WHEN $6::text IS NULL OR t.asking_terms->>'currency' IS NULL THEN 0.5
                                WHEN t.asking_terms->>'currency' <> $6 THEN 0
                                WHEN coalesce((t.asking_terms->>'price_min')::bigint, 0) <= $8
                                 AND coalesce((t.asking_terms->>'price_max')::bigint, $8) >= $7 THEN 1
                                ELSE 0 END::float8 AS budget_fit,
                           (o.country = left($9, 2))::int::float8 AS region_fit,
                           o.country
                      FROM techbank.technologies t JOIN techbank.organizations o ON o.id = t.owner_id
                     WHERE t.status = 'listed' AND t.owner_id <> $1
                )
                , contributions AS (
                    SELECT *, round(($10 * field_fit)::numeric, 4) AS field_c, round(($11 * text_fit)::numeric, 4) AS text_c,
                           round(($12 * trl_fit)::numeric, 4) AS trl_c, round(($13 * budget_fit)::numeric, 4) AS budget_c,
                           round(($14 * region_fit)::numeric, 4) AS region_c
                      FROM fits
                )
                SELECT id, title, field, trl, owner_id, country, field_fit, text_fit, trl_fit, budget_fit, region_fit,
                       (field_c + text_c + trl_c + budget_c + region_c)::float8 AS score,
                       field_c::float8, text_c::float8, trl_c::float8, budget_c::float8, region_c::float8
                  FROM contributions
                 ORDER BY score DESC, created_at DESC, id
                 LIMIT $15 OFFSET $16
                """,
                [demand.ownerID, demand.field, demand.keywords, Self.searchText(demand.title, demand.keywords), Int16(demand.trlMin),
                 demand.budget?.currency, demand.budget?.min, demand.budget?.max, demand.region]
                    + weights.map { $0 as any PostgresEncodable } + [Int64(limit + 1), Int64(offset)])
        }
        let items = try rows.prefix(limit).map { row in
            let fits = try (6...10).map { try row.decode(Double.self, at: $0) }
            let contributions = try (12...16).map { try row.decode(Double.self, at: $0) }
            let trl = try row.decode(Int.self, at: 3)
            let field = try row.decode(String.self, at: 2)
            let country = try row.decode(String.self, at: 5)
            let reasons = CandidateFactor.allCases.enumerated().map { index, factor in
                let fit = fits[index]
                return Candidate.Reason(factor: factor, weight: factor.weight, fit: (fit * 10_000).rounded() / 10_000, contribution: contributions[index],
                                 detail: Self.detail(factor, fit: fit, demand: demand, field: field, trl: trl, country: country))
            }
            return Candidate(technologyID: try row.decode(UUID.self, at: 0), title: try row.decode(String.self, at: 1), field: field, trl: trl,
                             ownerID: try row.decode(UUID.self, at: 4), score: try row.decode(Double.self, at: 11), reasons: reasons)
        }
        return (items, rows.count > limit ? offset + limit : nil)
    }

    // MARK: Internals

    static let columns = """
        id, owner_id, posted_by, title, description, field, keywords, trl_min, budget_min, budget_max, budget_currency, region, deadline, \
        status, version, created_at, updated_at
        """

    static func searchText(_ title: String, _ keywords: [String]) -> String {
        ([title] + keywords).joined(separator: " ")
    }

    static func detail(_ factor: CandidateFactor, fit: Double, demand: Demand, field: String, trl: Int, country: String) -> String {
        switch factor {
        case .field:
            return fit > 0 ? "same field (\(field))" : "different field (\(field), demand wants \(demand.field))"
        case .text:
            return "keyword and text similarity \(String(format: "%.2f", fit))"
        case .trl:
            return trl >= demand.trlMin ? "TRL \(trl) meets the minimum \(demand.trlMin)" : "TRL \(trl) is below the minimum \(demand.trlMin)"
        case .budget:
            switch fit {
            case 1: return "asking price overlaps the budget"
            case 0: return "asking price outside the budget or in another currency"
            default: return "no budget or no asking price to compare"
            }
        case .region:
            return fit > 0 ? "owner is in \(country), within the demand's region \(demand.region)" : "owner is in \(country), outside \(demand.region)"
        }
    }

    static func journal(_ connection: PostgresConnection, _ id: UUID, _ event: String, actor: UUID) async throws {
        try await connection.query(
            """
            SELECT ledger.journal_append('demand_' || $2, id, jsonb_build_object(
                       'actor_id', $3::uuid, 'version', version, 'status', status, 'title', title, 'field', field, 'keywords', keywords,
                       'trl_min', trl_min, 'budget_min', budget_min, 'budget_max', budget_max, 'budget_currency', budget_currency,
                       'region', region, 'deadline', deadline))
              FROM techbank.demands WHERE id = $1
            """,
            [id, event, actor])
    }

    static func decode(_ row: PostgresRow) throws -> Demand {
        let statusText = try row.decode(String.self, "status")
        guard let status = DemandStatus(rawValue: statusText) else {
            throw PostgresError(code: .decoding, message: "unknown demand status \(statusText)")
        }
        var budget: Budget?
        if let currency = try row.decode(String?.self, "budget_currency") {
            budget = Budget(min: try row.decode(Int64.self, "budget_min"), max: try row.decode(Int64.self, "budget_max"), currency: currency)
        }
        return Demand(
            id: try row.decode(UUID.self, "id"), ownerID: try row.decode(UUID.self, "owner_id"), postedBy: try row.decode(UUID.self, "posted_by"),
            title: try row.decode(String.self, "title"), description: try row.decode(String.self, "description"),
            field: try row.decode(String.self, "field"), keywords: try row.decode([String].self, "keywords"),
            trlMin: try row.decode(Int.self, "trl_min"), budget: budget, region: try row.decode(String.self, "region"),
            deadline: try row.decode(PostgresDate.self, "deadline"), status: status, version: try row.decode(Int.self, "version"),
            createdAt: try row.decode(Date.self, "created_at"), updatedAt: try row.decode(Date.self, "updated_at"))
    }
}
