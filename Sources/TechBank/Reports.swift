import Foundation
import Postgres

/// Who a committee report covers: everything (the committee, the operator), or one sub-park's
/// members (and, for transfers, the sub-park's own accounts).
public enum ReportScope: Sendable, Equatable {
    case everything
    case subPark(UUID)
}

extension Identity {
    /// The scope of the reports this organization may read; nil: none (403).
    public var reportScope: ReportScope? {
        if readsEverything { return .everything }
        if kind == .subPark { return .subPark(organizationID) }
        return nil
    }
}

/// A reporting period: whole UTC days from `from` through `to`, inclusive.
public struct ReportPeriod: Sendable, Equatable {
    public let from: PostgresDate
    public let to: PostgresDate

    public init(from: PostgresDate, to: PostgresDate) {
        self.from = from
        self.to = to
    }

    var start: Date { from.midnightUTC }
    var end: Date { PostgresDate(daysSince2000: to.daysSince2000 + 1).midnightUTC }
}

/// A dimension a report groups by. Each maps to a fixed SQL expression over the report's facts
/// (`f`); nothing a client sends is ever spliced into SQL. Time dimensions bucket each fact by
/// its own date (a deal's creation, signing, escrow funding, or income transfer).
public struct ReportDimension: Hashable, Sendable {
    public let name: String
    let sql: String

    static let month = ReportDimension(name: "month", sql: "to_char(f.at AT TIME ZONE 'UTC', 'YYYY-MM')")
    static let quarter = ReportDimension(name: "quarter", sql: "to_char(f.at AT TIME ZONE 'UTC', 'YYYY-\"Q\"Q')")
    static let year = ReportDimension(name: "year", sql: "to_char(f.at AT TIME ZONE 'UTC', 'YYYY')")

    /// `sub_park` (the seller's sub-park, else the buyer's; null if neither), `field` (the
    /// technology's), `institute` (the seller), `deal_kind`, `contract_category`, `currency` and
    /// the time buckets.
    public static let deal: [ReportDimension] = [
        ReportDimension(name: "sub_park", sql: "f.sub_park::text"),
        ReportDimension(name: "field", sql: "f.field"),
        ReportDimension(name: "institute", sql: "f.seller_id::text"),
        ReportDimension(name: "deal_kind", sql: "f.kind"),
        ReportDimension(name: "contract_category", sql: "f.contract_category"),
        ReportDimension(name: "currency", sql: "f.currency"),
        month, quarter, year,
    ]

    /// `currency`, `code` (the transfer's), `sub_park` (the credit account owner's sub-park, else
    /// the debit account owner's; a sub-park's own account counts as that sub-park's) and the
    /// time buckets.
    public static let transfer: [ReportDimension] = [
        ReportDimension(name: "currency", sql: "f.currency"),
        ReportDimension(name: "code", sql: "f.code"),
        ReportDimension(name: "sub_park", sql: "f.sub_park::text"),
        month, quarter, year,
    ]
}

/// A group's key: one value per dimension, in the order grouped by (nil: no value, such as a
/// deal outside any sub-park).
public typealias ReportKey = [String?]

/// One group of a deal report. Amounts are per currency (minor units), every currency of the
/// group's facts listed, zeros included.
public struct DealReportGroup: Sendable, Equatable {
    public var key: ReportKey
    /// Deals created in the period.
    public var deals = 0
    /// Deals signed in the period.
    public var signed = 0
    /// The total (upfront plus milestones) of the deals signed in the period.
    public var totalAmount: [String: Int64] = [:]
    /// Deals signed in the period by kind.
    public var licencesExecuted: [DealKind: Int] = [:]
    /// Paid to the sellers' side in the period: seller income, broker and sub-park fees.
    public var licenceIncome: [String: Int64] = [:]
    /// Still in escrow (milestones funded or disputed) of deals funded in the period.
    public var escrowOutstanding: [String: Int64] = [:]
    /// Median whole UTC days from the technology's listing to signing, of deals signed in the period.
    public var medianDaysListingToSigned: Double?
}

public struct DealReport: Sendable, Equatable {
    public let groups: [DealReportGroup]
    /// Current technologies in scope by status (a snapshot, not limited to the period).
    public let technologiesByState: [String: Int]
}

/// One group of a transfer report: settled transfers (posted, or pending and then posted).
public struct TransferReportGroup: Sendable, Equatable {
    public var key: ReportKey
    public var count = 0
    public var amount: [String: Int64] = [:]
}

/// A deal behind a report group.
public struct ReportDeal: Sendable, Equatable {
    public let id: UUID
    public let technologyID: UUID
    public let sellerID: UUID
    public let buyerID: UUID
    public let brokerID: UUID?
    public let subParkID: UUID?
    public let field: String
    public let status: String
    public let kind: String
    public let contractCategory: String?
    public let currency: String
    public let totalAmount: Int64
    public let createdAt: Date
    public let signedAt: Date?
    public let fundedAt: Date?
}

/// A transfer behind a report group.
public struct ReportTransfer: Sendable, Equatable {
    public let seq: Int64
    public let id: UUID
    public let kind: String
    public let debitAccountID: UUID
    public let creditAccountID: UUID
    public let amount: Int64
    public let currency: String
    public let code: String
    public let subParkID: UUID?
    public let createdAt: Date
}

/// The report would have more groups than `Reports.maxGroups`.
public struct TooManyGroups: Error, Sendable {}

/// Committee reports over deals and ledger transfers.
public struct Reports: Sendable {
    public let pool: PostgresPool

    /// The most groups a report returns; a report that would have more is refused.
    public static let maxGroups = 10_000
    /// The most rows one report statement returns (a group is one row per currency plus one).
    public static let maxRows = 50_000

    public init(pool: PostgresPool) { self.pool = pool }

    /// The memory one report statement may use to sort and hash before spilling to disk; reports
    /// are few and read-only, so they may use more than the server's 4 MB default.
    static let workMem = "16MB"

    /// Runs a report's queries in one read-only snapshot, with `workMem`.
    func read<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await pool.withTransaction(isolation: .repeatableRead) { connection in
            try await connection.query("SET LOCAL work_mem = '\(Self.workMem)'")
            try await connection.query("SET TRANSACTION READ ONLY")
            return try await body(connection)
        }
    }

    // MARK: Deals

    /// Ledger codes of money paid to the sellers' side of a deal (see `Deals.incomeRequests`).
    static let incomeCodes = ["seller_income", "broker_fee", "sub_park_fee"]

    /// The deals in scope (`$1`: everything; `$2`: the sub-park) and one row per fact in the
    /// period `[$3, $4)`: `created`, `signed`, `income` (a transfer) and `escrow` (still held).
    /// `scoped` is inlined into each branch so that each can use its own index (created_at,
    /// signed_at, funded_at); the income transfers (by code and created_at) are read once and
    /// then joined to their deals by id.
    /// Income counts only transfers written by the deal itself: debited from the bank's escrow
    /// or the buyer (royalties), credited to the seller, the broker or the seller's sub-park, in
    /// the deal's currency, with the deal's id in their metadata (compared as text, so a
    /// malformed id in someone's metadata matches nothing and costs no cast).
    static let dealFacts = """
        WITH scoped AS NOT MATERIALIZED (
            SELECT d.id, d.technology_id, d.seller_id, d.buyer_id, d.broker_id, d.status, d.kind, d.currency, d.total_amount,
                   d.created_at, d.signed_at, d.funded_at, d.terms->>'contract_category' AS contract_category, t.field,
                   coalesce(s.sub_park_id, b.sub_park_id) AS sub_park, s.sub_park_id AS seller_park
              FROM techbank.deals d
              JOIN techbank.technologies t ON t.id = d.technology_id
              JOIN techbank.organizations s ON s.id = d.seller_id
              JOIN techbank.organizations b ON b.id = d.buyer_id
             WHERE ($1 OR $2::uuid IN (s.sub_park_id, b.sub_park_id))
        ), income AS MATERIALIZED (
            -- Summed per deal, payer and UTC day: every time bucket is whole days, and a deal paid
            -- many times a day is one fact, not many.
            SELECT tr.metadata->>'deal_id' AS deal_id, date_trunc('day', tr.created_at, 'UTC') AS at,
                   sum(tr.amount)::bigint AS amount, da.owner_id AS payer, ca.owner_id AS payee, tr.currency
              FROM ledger.transfers tr JOIN ledger.accounts da ON da.id = tr.debit_account_id
              JOIN ledger.accounts ca ON ca.id = tr.credit_account_id
             WHERE tr.code IN ('seller_income', 'broker_fee', 'sub_park_fee') AND tr.kind = 'posted'
               AND tr.created_at >= $3 AND tr.created_at < $4
             GROUP BY 1, 2, 4, 5, 6
        ), facts AS (
            SELECT d.*, 'created' AS fact, d.created_at AS at, 0::bigint AS amount, NULL::integer AS days
              FROM scoped d WHERE d.created_at >= $3 AND d.created_at < $4
            UNION ALL
            SELECT d.*, 'signed', d.signed_at, d.total_amount,
                   (SELECT (d.signed_at AT TIME ZONE 'UTC')::date - (max(h.changed_at) AT TIME ZONE 'UTC')::date
                      FROM techbank.technology_history h
                     WHERE h.technology_id = d.technology_id AND h.event = 'listing' AND h.changed_at <= d.signed_at)
              FROM scoped d WHERE d.signed_at >= $3 AND d.signed_at < $4
            UNION ALL
            SELECT d.*, 'income', i.at, i.amount, NULL
              FROM income i JOIN scoped d ON d.id::text = i.deal_id
             WHERE (i.payer = d.buyer_id OR i.payer = (SELECT o.id FROM techbank.organizations o WHERE o.kind = 'operator'))
               AND i.payee IN (d.seller_id, d.broker_id, d.seller_park) AND i.currency = d.currency
            UNION ALL
            SELECT d.*, 'escrow', d.funded_at, m.amount, NULL
              FROM scoped d
             CROSS JOIN LATERAL (SELECT sum(amount)::bigint AS amount FROM techbank.deal_milestones
                                  WHERE deal_id = d.id AND status IN ('funded', 'disputed')) m
             WHERE d.funded_at >= $3 AND d.funded_at < $4 AND m.amount IS NOT NULL
        )
        """

    static func scopeBinds(_ scope: ReportScope, _ period: ReportPeriod) -> [any PostgresEncodable] {
        switch scope {
        case .everything: [true, UUID?.none, period.start, period.end]
        case .subPark(let id): [false, id, period.start, period.end]
        }
    }

    /// The deal report grouped by `dimensions` (from `ReportDimension.deal`).
    /// - Throws: `TooManyGroups` beyond `maxGroups`.
    public func deals(scope: ReportScope, period: ReportPeriod, groupBy dimensions: [ReportDimension]) async throws -> DealReport {
        // Without currency among the dimensions, amounts still split by currency: one grouping
        // set per (dimensions, currency) for the amounts, one per dimensions for counts and the median.
        let split = !dimensions.map(\.name).contains("currency")
        let keys = dimensions.map(\.sql)
        let grouping = split ? "GROUPING SETS ((\((keys + ["f.currency"]).joined(separator: ", "))), (\(keys.joined(separator: ", "))))"
                             : keys.isEmpty ? "()" : keys.joined(separator: ", ")
        let keyColumns = keys.map { "\($0)," }.joined(separator: " ")
        let order = (keys.map { "\($0) NULLS LAST" } + (split ? ["GROUPING(f.currency)", "f.currency"] : [])).joined(separator: ", ")
        let sql = """
            \(Self.dealFacts)
            SELECT \(keyColumns) \(split ? "GROUPING(f.currency)" : "0")::int, f.currency,
                   count(*) FILTER (WHERE f.fact = 'created'), count(*) FILTER (WHERE f.fact = 'signed'),
                   coalesce(sum(f.amount) FILTER (WHERE f.fact = 'signed'), 0)::bigint,
                   count(*) FILTER (WHERE f.fact = 'signed' AND f.kind = 'exclusive_licence'),
                   count(*) FILTER (WHERE f.fact = 'signed' AND f.kind = 'sole_licence'),
                   count(*) FILTER (WHERE f.fact = 'signed' AND f.kind = 'non_exclusive_licence'),
                   count(*) FILTER (WHERE f.fact = 'signed' AND f.kind = 'assignment'),
                   coalesce(sum(f.amount) FILTER (WHERE f.fact = 'income'), 0)::bigint,
                   coalesce(sum(f.amount) FILTER (WHERE f.fact = 'escrow'), 0)::bigint,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY f.days) FILTER (WHERE f.fact = 'signed' AND f.days IS NOT NULL)
              FROM facts f
             GROUP BY \(grouping)
            HAVING count(*) > 0
             ORDER BY \(order.isEmpty ? "1" : order)
             LIMIT $5
            """
        let scopeBinds = Self.scopeBinds(scope, period)
        let (rows, states) = try await read { connection in
            let rows = try await connection.query(sql, scopeBinds + [Int64(Self.maxRows + 1)])
            let states = try await connection.query(
                """
                SELECT t.status, count(*) FROM techbank.technologies t JOIN techbank.organizations o ON o.id = t.owner_id
                 WHERE ($1 OR o.sub_park_id = $2) GROUP BY t.status
                """, Array(scopeBinds.prefix(2)))
            return (rows, states)
        }
        guard rows.count <= Self.maxRows else { throw TooManyGroups() }
        var groups: [DealReportGroup] = []
        var index: [ReportKey: Int] = [:]
        let n = dimensions.count
        for row in rows {
            let key = try (0..<n).map { try row.decode(String?.self, at: $0) }
            let perCurrency = try row.decode(Int32.self, at: n) == 0
            let currency = try row.decode(String?.self, at: n + 1) ?? ""
            let position: Int
            if let existing = index[key] {
                position = existing
            } else {
                guard groups.count < Self.maxGroups else { throw TooManyGroups() }
                position = groups.count
                index[key] = position
                groups.append(DealReportGroup(key: key))
            }
            if !split || !perCurrency {
                groups[position].deals = try row.decode(Int.self, at: n + 2)
                groups[position].signed = try row.decode(Int.self, at: n + 3)
                for (offset, kind) in [DealKind.exclusiveLicence, .soleLicence, .nonExclusiveLicence, .assignment].enumerated() {
                    groups[position].licencesExecuted[kind] = try row.decode(Int.self, at: n + 5 + offset)
                }
                groups[position].medianDaysListingToSigned = try row.decode(Double?.self, at: n + 11)
            }
            if !split || perCurrency {
                groups[position].totalAmount[currency] = try row.decode(Int64.self, at: n + 4)
                groups[position].licenceIncome[currency] = try row.decode(Int64.self, at: n + 9)
                groups[position].escrowOutstanding[currency] = try row.decode(Int64.self, at: n + 10)
            }
        }
        var technologiesByState: [String: Int] = [:]
        for row in states { technologiesByState[try row.decode(String.self, at: 0)] = try row.decode(Int.self, at: 1) }
        return DealReport(groups: groups, technologiesByState: technologiesByState)
    }

    /// The deals behind the group `key` (dimension and value, nil for no value): those with at
    /// least one fact in the period that falls into the group, by id, after `cursor`.
    public func dealsBehind(scope: ReportScope, period: ReportPeriod, key: [(ReportDimension, String?)], limit: Int,
                            after cursor: UUID?) async throws -> (items: [ReportDeal], next: UUID?) {
        let conditions = key.enumerated().map { "\($1.0.sql) IS NOT DISTINCT FROM $\($0 + 7)::text" }
        let sql = """
            \(Self.dealFacts)
            SELECT d.id, d.technology_id, d.seller_id, d.buyer_id, d.broker_id, d.sub_park, d.field, d.status, d.kind, d.contract_category,
                   d.currency, d.total_amount, d.created_at, d.signed_at, d.funded_at
              FROM scoped d
             WHERE d.id IN (SELECT f.id FROM facts f WHERE \((["true"] + conditions).joined(separator: " AND ")))
               AND ($5::uuid IS NULL OR d.id > $5)
             ORDER BY d.id LIMIT $6
            """
        let binds: [any PostgresEncodable] = Self.scopeBinds(scope, period) + [cursor, Int64(limit + 1)] + key.map(\.1)
        let rows = try await read { connection in try await connection.query(sql, binds) }
        let items = try rows.prefix(limit).map {
            ReportDeal(id: try $0.decode(UUID.self, at: 0), technologyID: try $0.decode(UUID.self, at: 1), sellerID: try $0.decode(UUID.self, at: 2),
                       buyerID: try $0.decode(UUID.self, at: 3), brokerID: try $0.decode(UUID?.self, at: 4), subParkID: try $0.decode(UUID?.self, at: 5),
                       field: try $0.decode(String.self, at: 6), status: try $0.decode(String.self, at: 7), kind: try $0.decode(String.self, at: 8),
                       contractCategory: try $0.decode(String?.self, at: 9), currency: try $0.decode(String.self, at: 10),
                       totalAmount: try $0.decode(Int64.self, at: 11), createdAt: try $0.decode(Date.self, at: 12),
                       signedAt: try $0.decode(Date?.self, at: 13), fundedAt: try $0.decode(Date?.self, at: 14))
        }
        return (items, rows.count > limit ? items.last?.id : nil)
    }

    // MARK: Transfers

    /// Settled transfers (`posted` and `post_pending`; holds and voids move no money) in the
    /// period, in scope: for a sub-park, those with an account owned by a member or by itself.
    static let transferFacts = """
        WITH facts AS (
            SELECT tr.seq, tr.id, tr.kind, tr.debit_account_id, tr.credit_account_id, tr.amount, tr.currency, tr.code, tr.created_at AS at,
                   coalesce(CASE WHEN co.kind = 'sub_park' THEN co.id ELSE co.sub_park_id END,
                            CASE WHEN dw.kind = 'sub_park' THEN dw.id ELSE dw.sub_park_id END) AS sub_park
              FROM ledger.transfers tr
              JOIN ledger.accounts ca ON ca.id = tr.credit_account_id
              JOIN ledger.accounts da ON da.id = tr.debit_account_id
              LEFT JOIN techbank.organizations co ON co.id = ca.owner_id
              LEFT JOIN techbank.organizations dw ON dw.id = da.owner_id
             WHERE tr.kind IN ('posted', 'post_pending') AND tr.created_at >= $3 AND tr.created_at < $4
               AND ($1 OR $2::uuid IN (co.sub_park_id, dw.sub_park_id, ca.owner_id, da.owner_id))
        )
        """

    /// The transfer report grouped by `dimensions` (from `ReportDimension.transfer`).
    public func transfers(scope: ReportScope, period: ReportPeriod, groupBy dimensions: [ReportDimension]) async throws -> [TransferReportGroup] {
        let split = !dimensions.map(\.name).contains("currency")
        let keys = dimensions.map(\.sql) + (split ? ["f.currency"] : [])
        let n = dimensions.count
        let sql = """
            \(Self.transferFacts)
            SELECT \(dimensions.map { "\($0.sql), " }.joined())f.currency, count(*), sum(f.amount)::bigint
              FROM facts f
             GROUP BY \(keys.joined(separator: ", "))
             ORDER BY \(keys.map { "\($0) NULLS LAST" }.joined(separator: ", "))
             LIMIT $5
            """
        let binds = Self.scopeBinds(scope, period) + [Int64(Self.maxRows + 1)]
        let rows = try await read { connection in try await connection.query(sql, binds) }
        guard rows.count <= Self.maxRows else { throw TooManyGroups() }
        var groups: [TransferReportGroup] = []
        var index: [ReportKey: Int] = [:]
        for row in rows {
            let key = try (0..<n).map { try row.decode(String?.self, at: $0) }
            let currency = try row.decode(String.self, at: n)
            let position: Int
            if let existing = index[key] {
                position = existing
            } else {
                guard groups.count < Self.maxGroups else { throw TooManyGroups() }
                position = groups.count
                index[key] = position
                groups.append(TransferReportGroup(key: key))
            }
            groups[position].count += try row.decode(Int.self, at: n + 1)
            groups[position].amount[currency, default: 0] += try row.decode(Int64.self, at: n + 2)
        }
        return groups
    }

    /// The transfers behind the group `key`, in ledger order, after the sequence number `cursor`.
    public func transfersBehind(scope: ReportScope, period: ReportPeriod, key: [(ReportDimension, String?)], limit: Int,
                                after cursor: Int64?) async throws -> (items: [ReportTransfer], next: Int64?) {
        let conditions = key.enumerated().map { "\($1.0.sql) IS NOT DISTINCT FROM $\($0 + 7)::text" }
        let sql = """
            \(Self.transferFacts)
            SELECT f.seq, f.id, f.kind, f.debit_account_id, f.credit_account_id, f.amount, f.currency, f.code, f.sub_park, f.at
              FROM facts f
             WHERE \((["true"] + conditions).joined(separator: " AND ")) AND ($5::bigint IS NULL OR f.seq > $5)
             ORDER BY f.seq LIMIT $6
            """
        let binds: [any PostgresEncodable] = Self.scopeBinds(scope, period) + [cursor, Int64(limit + 1)] + key.map(\.1)
        let rows = try await read { connection in try await connection.query(sql, binds) }
        let items = try rows.prefix(limit).map {
            ReportTransfer(seq: try $0.decode(Int64.self, at: 0), id: try $0.decode(UUID.self, at: 1), kind: try $0.decode(String.self, at: 2),
                           debitAccountID: try $0.decode(UUID.self, at: 3), creditAccountID: try $0.decode(UUID.self, at: 4),
                           amount: try $0.decode(Int64.self, at: 5), currency: try $0.decode(String.self, at: 6), code: try $0.decode(String.self, at: 7),
                           subParkID: try $0.decode(UUID?.self, at: 8), createdAt: try $0.decode(Date.self, at: 9))
        }
        return (items, rows.count > limit ? items.last?.seq : nil)
    }
}
