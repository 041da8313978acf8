import Foundation
import HTTPTypes
import Hummingbird
import Postgres
import TechBank

/// `/v1/reports/deals` and `/v1/reports/transfers`: the committee's reports. The committee and
/// the operator see everything; a sub-park sees its members' deals (seller or buyer a member) and
/// transfers (an account owned by a member or by the sub-park); anyone else gets 403.
///
/// Parameters: `from`, `to` (YYYY-MM-DD, UTC, inclusive; default the 365 days ending today; at
/// most 3660 days), `group_by` (comma-separated, at most 3 dimensions), `drill` (a group key such
/// as `field:biomedicine,year:2026`, an empty value meaning null: the deals or transfers behind
/// that group, paged with `limit` and `cursor`).
///
/// Amounts are always objects keyed by currency (`{"CNY": 123}`), also when grouping by
/// currency, so that figures in different currencies are never added together. With
/// `Accept: text/csv` the same numbers come as RFC 4180 CSV: one column per dimension, nested
/// figures flattened (`licences_executed_exclusive`, `total_amount_CNY`, one amount column per
/// currency in the report, 0 where a group has none), one row per group.
struct ReportController: Sendable {
    let reports: Reports

    /// The longest period a report covers, in days.
    static let maxDays: Int32 = 3_660
    /// The most dimensions a report groups by.
    static let maxDimensions = 3

    static let nextCursorHeader = HTTPField.Name("Next-Cursor")!

    func register(on router: some RouterMethods<AppRequestContext>) {
        router.get("reports/deals") { request, context in try await deals(request, context).response }
        router.get("reports/transfers") { request, context in try await transfers(request, context).response }
    }

    // MARK: Deals

    func deals(_ request: Request, _ context: AppRequestContext) async throws -> Reply {
        let (scope, period) = try Self.scopeAndPeriod(request, context)
        let groupBy = try Self.dimensions(request, from: ReportDimension.deal)
        let csv = Self.wantsCSV(request)
        // The page is checked with or without `drill`, which alone pages.
        let (limit, cursorText) = try request.page()
        if let drill = try Self.drill(request, from: ReportDimension.deal) {
            let cursor = try cursorText.map { text in
                guard let id = UUID(uuidString: try Cursor.decode(text)) else { throw Cursor.invalid }
                return id
            }
            let page = try await reports.dealsBehind(scope: scope, period: period, key: drill, limit: limit, after: cursor)
            let next = page.next.map { Cursor.encode($0.uuidString.lowercased()) }
            let columns = ["id", "technology_id", "seller_id", "buyer_id", "broker_id", "sub_park_id", "field", "status", "kind",
                           "contract_category", "currency", "total_amount", "created_at", "signed_at", "funded_at"]
            let rows: [[JSONValue]] = page.items.map { deal in
                [Self.id(deal.id), Self.id(deal.technologyID), Self.id(deal.sellerID), Self.id(deal.buyerID), Self.id(deal.brokerID),
                 Self.id(deal.subParkID), .string(deal.field), .string(deal.status), .string(deal.kind), deal.contractCategory.map(JSONValue.string) ?? .null,
                 .string(deal.currency), .integer(deal.totalAmount), Self.time(deal.createdAt), Self.time(deal.signedAt), Self.time(deal.fundedAt)]
            }
            return try Self.drillReply(period: period, drill: drill, columns: columns, rows: rows, next: next, csv: csv)
        }
        let report: DealReport
        do {
            report = try await reports.deals(scope: scope, period: period, groupBy: groupBy)
        } catch is TooManyGroups {
            throw Self.tooManyGroups
        }
        let kinds: [(String, DealKind)] = [("exclusive", .exclusiveLicence), ("sole", .soleLicence), ("non_exclusive", .nonExclusiveLicence),
                                           ("assignment", .assignment)]
        if csv {
            let currencies = Set(report.groups.flatMap { Array($0.totalAmount.keys) + Array($0.licenceIncome.keys) + Array($0.escrowOutstanding.keys) }).sorted()
            let header = groupBy.map(\.name) + ["deals", "signed"] + currencies.map { "total_amount_\($0)" }
                + kinds.map { "licences_executed_\($0.0)" } + currencies.map { "licence_income_\($0)" }
                + currencies.map { "escrow_outstanding_\($0)" } + ["median_days_listing_to_signed"]
            let rows: [[JSONValue]] = report.groups.map { group in
                group.key.map { $0.map(JSONValue.string) ?? .null } + [.integer(Int64(group.deals)), .integer(Int64(group.signed))]
                    + currencies.map { .integer(group.totalAmount[$0] ?? 0) }
                    + kinds.map { .integer(Int64(group.licencesExecuted[$0.1] ?? 0)) }
                    + currencies.map { .integer(group.licenceIncome[$0] ?? 0) }
                    + currencies.map { .integer(group.escrowOutstanding[$0] ?? 0) }
                    + [group.medianDaysListingToSigned.map(JSONValue.number) ?? .null]
            }
            return Self.csvReply(header: header, rows: rows)
        }
        let groups: [JSONValue] = report.groups.map { group in
            .object([
                "key": Self.key(groupBy, group.key),
                "deals": .integer(Int64(group.deals)),
                "signed": .integer(Int64(group.signed)),
                "total_amount": Self.amounts(group.totalAmount),
                "licences_executed": .object(Dictionary(uniqueKeysWithValues: kinds.map { ($0.0, .integer(Int64(group.licencesExecuted[$0.1] ?? 0))) })),
                "licence_income": Self.amounts(group.licenceIncome),
                "escrow_outstanding": Self.amounts(group.escrowOutstanding),
                "median_days_listing_to_signed": group.medianDaysListingToSigned.map(JSONValue.number) ?? .null,
            ])
        }
        return try Reply.json(JSONValue.object([
            "from": .string(period.from.description), "to": .string(period.to.description),
            "group_by": .array(groupBy.map { .string($0.name) }), "groups": .array(groups),
            "technologies_by_state": .object(report.technologiesByState.mapValues { .integer(Int64($0)) }),
        ]))
    }

    // MARK: Transfers

    func transfers(_ request: Request, _ context: AppRequestContext) async throws -> Reply {
        let (scope, period) = try Self.scopeAndPeriod(request, context)
        let groupBy = try Self.dimensions(request, from: ReportDimension.transfer)
        let csv = Self.wantsCSV(request)
        // The page is checked with or without `drill`, which alone pages.
        let (limit, cursorText) = try request.page()
        if let drill = try Self.drill(request, from: ReportDimension.transfer) {
            let cursor = try cursorText.map { text in
                guard let seq = Int64(try Cursor.decode(text)), seq >= 0 else { throw Cursor.invalid }
                return seq
            }
            let page = try await reports.transfersBehind(scope: scope, period: period, key: drill, limit: limit, after: cursor)
            let next = page.next.map { Cursor.encode(String($0)) }
            let columns = ["id", "kind", "debit_account_id", "credit_account_id", "amount", "currency", "code", "sub_park_id", "created_at"]
            let rows: [[JSONValue]] = page.items.map { transfer in
                [Self.id(transfer.id), .string(transfer.kind), Self.id(transfer.debitAccountID), Self.id(transfer.creditAccountID),
                 .integer(transfer.amount), .string(transfer.currency), .string(transfer.code), Self.id(transfer.subParkID), Self.time(transfer.createdAt)]
            }
            return try Self.drillReply(period: period, drill: drill, columns: columns, rows: rows, next: next, csv: csv)
        }
        let groups: [TransferReportGroup]
        do {
            groups = try await reports.transfers(scope: scope, period: period, groupBy: groupBy)
        } catch is TooManyGroups {
            throw Self.tooManyGroups
        }
        if csv {
            let currencies = Set(groups.flatMap(\.amount.keys)).sorted()
            let header = groupBy.map(\.name) + ["count"] + currencies.map { "amount_\($0)" }
            let rows: [[JSONValue]] = groups.map { group in
                group.key.map { $0.map(JSONValue.string) ?? .null } + [.integer(Int64(group.count))] + currencies.map { .integer(group.amount[$0] ?? 0) }
            }
            return Self.csvReply(header: header, rows: rows)
        }
        return try Reply.json(JSONValue.object([
            "from": .string(period.from.description), "to": .string(period.to.description),
            "group_by": .array(groupBy.map { .string($0.name) }),
            "groups": .array(groups.map { .object(["key": Self.key(groupBy, $0.key), "count": .integer(Int64($0.count)), "amount": Self.amounts($0.amount)]) }),
        ]))
    }

    // MARK: Parameters

    static let tooManyGroups = APIError.validation(
        "group_by", "the report would have more than \(Reports.maxGroups) groups, or more than \(Reports.maxRows) rows counting one per group and currency; "
            + "group by fewer dimensions or shorten the period")

    /// Who may read reports (403 for anyone but the committee, the operator and sub-parks), and the period.
    static func scopeAndPeriod(_ request: Request, _ context: AppRequestContext) throws -> (ReportScope, ReportPeriod) {
        let identity = try context.requireIdentity()
        guard let scope = identity.reportScope else {
            throw APIError(.forbidden, code: "forbidden", "only the committee, the operator and sub-parks read reports")
        }
        let (from, to) = try request.period(maxDays: maxDays)
        return (scope, ReportPeriod(from: from, to: to))
    }

    /// `group_by`: distinct names from `allowed`, comma-separated, at most `maxDimensions`.
    static func dimensions(_ request: Request, from allowed: [ReportDimension]) throws -> [ReportDimension] {
        guard let text = request.uri.queryParameters["group_by"], !text.isEmpty else { return [] }
        // Split on scalars: a combining mark after a comma must not hide it (Character would).
        let names = text.unicodeScalars.split(separator: ",", omittingEmptySubsequences: false).map { String(Substring($0)) }
        guard names.count <= maxDimensions else { throw APIError.validation("group_by", "names at most \(maxDimensions) dimensions") }
        var dimensions: [ReportDimension] = []
        for name in names {
            guard let dimension = allowed.first(where: { $0.name == name }) else {
                throw APIError.validation("group_by", "must list dimensions among \(allowed.map(\.name).joined(separator: ", "))")
            }
            guard !dimensions.contains(dimension) else { throw APIError.validation("group_by", "names \(name) twice") }
            dimensions.append(dimension)
        }
        return dimensions
    }

    /// `drill`: `name:value` pairs, comma-separated, names distinct and from `allowed`; an empty
    /// value stands for null (as an empty CSV cell does).
    static func drill(_ request: Request, from allowed: [ReportDimension]) throws -> [(ReportDimension, String?)]? {
        guard let text = request.uri.queryParameters["drill"].map(String.init) else { return nil }
        guard !text.isEmpty, text.unicodeScalars.count <= 1_000 else {
            throw APIError.validation("drill", "must be a group key such as field:biomedicine,year:2026")
        }
        var key: [(ReportDimension, String?)] = []
        // Split on scalars: a value starting with a combining mark must not hide the colon (Character would).
        for pair in text.unicodeScalars.split(separator: ",", omittingEmptySubsequences: false) {
            guard let colon = pair.firstIndex(of: ":") else {
                throw APIError.validation("drill", "must be a group key such as field:biomedicine,year:2026")
            }
            let name = String(Substring(pair[..<colon]))
            let value = String(Substring(pair[pair.index(after: colon)...]))
            guard let dimension = allowed.first(where: { $0.name == name }) else {
                throw APIError.validation("drill", "must name dimensions among \(allowed.map(\.name).joined(separator: ", "))")
            }
            guard !key.contains(where: { $0.0 == dimension }) else { throw APIError.validation("drill", "names \(name) twice") }
            key.append((dimension, value.isEmpty ? nil : value))
        }
        guard key.count <= maxDimensions else { throw APIError.validation("drill", "names at most \(maxDimensions) dimensions") }
        return key
    }

    /// Whether the client asked for CSV (`Accept` lists `text/csv`).
    static func wantsCSV(_ request: Request) -> Bool {
        guard let accept = request.headers[.accept] else { return false }
        return accept.split(separator: ",").contains { range in
            let parts = range.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            let quality = parts.dropFirst().first { $0.hasPrefix("q=") }.flatMap { Double($0.dropFirst(2)) } ?? 1
            return parts.first == "text/csv" && quality > 0
        }
    }

    // MARK: Rendering

    static func id(_ id: UUID?) -> JSONValue { id.map { .string($0.uuidString.lowercased()) } ?? .null }
    static func time(_ date: Date?) -> JSONValue { date.map { .string(RFC3339.format($0)) } ?? .null }
    static func amounts(_ amounts: [String: Int64]) -> JSONValue { .object(amounts.mapValues(JSONValue.integer)) }
    static func key(_ dimensions: [ReportDimension], _ values: ReportKey) -> JSONValue {
        .object(Dictionary(uniqueKeysWithValues: zip(dimensions.map(\.name), values.map { $0.map(JSONValue.string) ?? .null })))
    }

    /// The rows behind a group: JSON `{from, to, drill, data, next_cursor}` or CSV; either way the
    /// next page's cursor is also in the `Next-Cursor` header (absent on the last page).
    static func drillReply(period: ReportPeriod, drill: [(ReportDimension, String?)], columns: [String], rows: [[JSONValue]], next: String?,
                           csv: Bool) throws -> Reply {
        var reply: Reply
        if csv {
            reply = csvReply(header: columns, rows: rows)
        } else {
            reply = try Reply.json(JSONValue.object([
                "from": .string(period.from.description), "to": .string(period.to.description),
                "drill": .object(Dictionary(uniqueKeysWithValues: drill.map { ($0.0.name, $0.1.map(JSONValue.string) ?? .null) })),
                "data": .array(rows.map { .object(Dictionary(uniqueKeysWithValues: zip(columns, $0))) }),
                "next_cursor": next.map(JSONValue.string) ?? .null,
            ]))
        }
        if let next { reply.headers[nextCursorHeader] = next }
        return reply
    }

    /// RFC 4180: CRLF line ends; a field with a comma, quote, CR or LF is quoted, quotes doubled;
    /// null is an empty field.
    static func csvReply(header: [String], rows: [[JSONValue]]) -> Reply {
        func field(_ value: JSONValue) -> String {
            let text: String = switch value {
            case .null: ""
            case .string(let text): text
            case .integer(let number): String(number)
            case .number(let number): number == number.rounded() && abs(number) < 1e15 ? String(Int64(number)) : String(number)
            case .bool(let flag): flag ? "true" : "false"
            case .array, .object: ""
            }
            guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\r" || $0 == "\n" || $0 == "\r\n" }) else { return text }
            return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
        var text = header.map { field(.string($0)) }.joined(separator: ",") + "\r\n"
        for row in rows { text += row.map(field).joined(separator: ",") + "\r\n" }
        var headers = HTTPFields()
        headers[.contentType] = "text/csv; charset=utf-8"
        return Reply(status: .ok, body: Data(text.utf8), headers: headers)
    }
}
