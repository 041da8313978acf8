import Foundation
import HTTPTypes
import Postgres
import Testing

// Helpers of the demand, match and sub-park activity tests (Demand*.swift, Match*.swift,
// SubParkActivityTests.swift), on top of APITestSupport.swift and TechnologySupport.swift.

/// Today (UTC) moved by `days`, as `YYYY-MM-DD`.
func utcDate(_ days: Int) -> String {
    PostgresDate(daysSince2000: PostgresDate.today().daysSince2000 + Int32(days)).description
}

/// `path?name=value&...` with every value percent-encoded.
func marketURI(_ path: String, _ parameters: [(String, String)]) -> String {
    parameters.isEmpty ? path : path + "?" + parameters.map { "\($0.0)=\(queryEncoded($0.1))" }.joined(separator: "&")
}

/// A demand body that passes validation unless a test changes it.
func demandBody(
    _ title: String = "Lithium battery recycling line",
    description: String = "We shred 2,000 t of cells a year and want better black-mass recovery.",
    field: String = "environmental_technology", keywords: [String] = ["recycling", "lithium"], trlMin: Int = 4,
    budget: [String: Any]? = ["min": 1_000_000, "max": 5_000_000, "currency": "CNY"], region: String = "CN",
    deadline: String = utcDate(90), ownerID: String? = nil, extra: [String: Any] = [:]
) -> [String: Any] {
    var body: [String: Any] = [
        "title": title, "description": description, "field": field, "keywords": keywords, "trl_min": trlMin, "region": region, "deadline": deadline,
    ]
    if let budget { body["budget"] = budget }
    if let ownerID { body["owner_id"] = ownerID }
    return body.merging(extra) { $1 }
}

/// One entry of `ledger.journal`.
struct JournalEntry: Sendable, CustomStringConvertible {
    let event: String
    let payload: JSON
    var description: String { "\(event) \(payload)" }
}

/// A listed technology, an open demand and everyone around them.
struct Market: Sendable {
    /// The seller's sub-park.
    let park: Org
    /// An institute in `park`, owner of `technologyID`.
    let seller: Org
    /// An enterprise outside any sub-park, owner of `demandID` (which it posted itself).
    let buyer: Org
    let broker: Org
    let committee: Org
    /// An enterprise with nothing to do with either.
    let outsider: Org
    let technologyID: String
    let demandID: String
}

extension API {
    // MARK: Demands

    /// Posts a demand as `org` (nil: the operator); the answer must be 201. Returns its body.
    @discardableResult
    func postDemand(as org: Org?, _ body: [String: Any] = demandBody(), sourceLocation: SourceLocation = #_sourceLocation) async throws -> JSON {
        let response = try await call(.post, "/v1/demands", key: org?.key ?? operatorKey, json: body, sourceLocation: sourceLocation)
        try #require(response.status == .created, "\(response)", sourceLocation: sourceLocation)
        return response.json
    }

    /// Posts a demand as `org` and returns its id.
    func postDemandID(as org: Org?, _ body: [String: Any] = demandBody(), sourceLocation: SourceLocation = #_sourceLocation) async throws -> String {
        try #require(try await postDemand(as: org, body, sourceLocation: sourceLocation)["id"].string, sourceLocation: sourceLocation)
    }

    /// `GET /v1/demands/{id}` as `key`.
    func demand(_ id: String, key: String = operatorKey, sourceLocation: SourceLocation = #_sourceLocation) async throws -> APIResponse {
        try await call(.get, "/v1/demands/\(id)", key: key, sourceLocation: sourceLocation)
    }

    /// `POST /v1/demands/{id}/close` as `key`.
    @discardableResult
    func closeDemand(_ id: String, key: String = operatorKey, sourceLocation: SourceLocation = #_sourceLocation) async throws -> APIResponse {
        try await call(.post, "/v1/demands/\(id)/close", key: key, sourceLocation: sourceLocation)
    }

    /// A demand's status as the operator reads it.
    func demandStatus(_ id: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> String? {
        try await demand(id, sourceLocation: sourceLocation).json["status"].string
    }

    /// Every item of a cursor-paged listing as `key`, following cursors with pages of `limit`.
    /// Checks that no page is larger than `limit` and that the last one has a null `next_cursor`.
    func listAll(_ path: String, _ parameters: [(String, String)] = [], key: String = operatorKey, limit: Int = 200,
                 sourceLocation: SourceLocation = #_sourceLocation) async throws -> [JSON] {
        var items: [JSON] = []
        var cursor: String?
        for _ in 0..<200 {
            var query = parameters + [("limit", String(limit))]
            if let cursor { query.append(("cursor", cursor)) }
            let response = try await call(.get, marketURI(path, query), key: key, sourceLocation: sourceLocation)
            try #require(response.status == .ok, "\(response)", sourceLocation: sourceLocation)
            let page = response.json["data"].array
            #expect(page.count <= limit, "a page larger than the limit: \(response)", sourceLocation: sourceLocation)
            items += page
            guard let next = response.json["next_cursor"].string else {
                #expect(response.json["next_cursor"].isNull, "next_cursor must be null on the last page: \(response)", sourceLocation: sourceLocation)
                return items
            }
            #expect(page.count == limit, "a page before the last one is not full: \(response)", sourceLocation: sourceLocation)
            cursor = next
        }
        Issue.record("paging did not end", sourceLocation: sourceLocation)
        return items
    }

    /// The ids of the demands a search returns as `key`, in order.
    func demandIDs(_ parameters: [(String, String)] = [], key: String = operatorKey, limit: Int = 200,
                   sourceLocation: SourceLocation = #_sourceLocation) async throws -> [String] {
        try await listAll("/v1/demands", parameters, key: key, limit: limit, sourceLocation: sourceLocation).compactMap { $0["id"].string }
    }

    // MARK: Technologies

    /// Registers a technology as `lab` and takes it to `listed`; returns its id.
    func listedTechnologyID(as lab: Org, _ title: String, field: String = "environmental_technology",
                            sourceLocation: SourceLocation = #_sourceLocation) async throws -> String {
        let id = try await registerTechnologyID(as: lab, technologyBody(title, field: field), sourceLocation: sourceLocation)
        try await moveAll(id, ["custody", "listing"], key: lab.key, sourceLocation: sourceLocation)
        return id
    }

    // MARK: Matches

    /// `POST /v1/matches` as `org`.
    func proposeMatch(as org: Org?, technologyID: String, demandID: String, note: String? = nil, extra: [String: Any] = [:],
                      sourceLocation: SourceLocation = #_sourceLocation) async throws -> APIResponse {
        var body: [String: Any] = ["technology_id": technologyID, "demand_id": demandID]
        if let note { body["note"] = note }
        return try await call(.post, "/v1/matches", key: org?.key ?? operatorKey, json: body.merging(extra) { $1 }, sourceLocation: sourceLocation)
    }

    /// Proposes a match as `broker`, which must succeed; returns its id.
    func proposeMatchID(as broker: Org, technologyID: String, demandID: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> String {
        let response = try await proposeMatch(as: broker, technologyID: technologyID, demandID: demandID, sourceLocation: sourceLocation)
        try #require(response.status == .created, "\(response)", sourceLocation: sourceLocation)
        return try #require(response.json["id"].string, sourceLocation: sourceLocation)
    }

    /// `POST /v1/matches/{id}/{accept|decline}` as `key`.
    @discardableResult
    func decide(_ matchID: String, _ decision: String, key: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> APIResponse {
        try await call(.post, "/v1/matches/\(matchID)/\(decision)", key: key, sourceLocation: sourceLocation)
    }

    /// Decides as `key`, which must succeed; returns the match.
    @discardableResult
    func decideOK(_ matchID: String, _ decision: String, key: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> JSON {
        let response = try await decide(matchID, decision, key: key, sourceLocation: sourceLocation)
        try #require(response.status == .ok, "\(response)", sourceLocation: sourceLocation)
        return response.json
    }

    /// The ids of the matches `key` lists, in order.
    func matchIDs(_ parameters: [(String, String)] = [], key: String = operatorKey, limit: Int = 200,
                  sourceLocation: SourceLocation = #_sourceLocation) async throws -> [String] {
        try await listAll("/v1/matches", parameters, key: key, limit: limit, sourceLocation: sourceLocation).compactMap { $0["id"].string }
    }

    /// A listed technology of an institute in a sub-park and an open demand an enterprise posted.
    func market(field: String = "environmental_technology", sourceLocation: SourceLocation = #_sourceLocation) async throws -> Market {
        let park = try await createOrganization("Lingang Park", kind: "sub_park", sourceLocation: sourceLocation)
        let seller = try await createOrganization("SJTU Battery Lab", kind: "institute", subParkID: park.id, sourceLocation: sourceLocation)
        let buyer = try await createOrganization("Green Cells Ltd", kind: "enterprise", sourceLocation: sourceLocation)
        let broker = try await createOrganization("Bridge Brokers", kind: "broker", sourceLocation: sourceLocation)
        let committee = try await createOrganization("Committee", kind: "committee", sourceLocation: sourceLocation)
        let outsider = try await createOrganization("Unrelated Co", kind: "enterprise", sourceLocation: sourceLocation)
        let technologyID = try await listedTechnologyID(as: seller, "Hydrometallurgical black-mass leaching", field: field, sourceLocation: sourceLocation)
        let demandID = try await postDemandID(as: buyer, demandBody(field: field), sourceLocation: sourceLocation)
        return Market(park: park, seller: seller, buyer: buyer, broker: broker, committee: committee, outsider: outsider,
                      technologyID: technologyID, demandID: demandID)
    }

    // MARK: The journal

    /// The journal entries about `subject`, oldest first.
    func journal(of subject: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> [JournalEntry] {
        let id = try #require(UUID(uuidString: subject), sourceLocation: sourceLocation)
        let rows = try await pool.withConnection { connection in
            try await connection.query(
                "SELECT event_type, payload::text FROM ledger.journal WHERE subject_id = $1 ORDER BY created_at, shard, seq", [id])
        }
        return try rows.map { JournalEntry(event: try $0.decode(String.self, at: 0), payload: JSON.parse(Data(try $0.decode(String.self, at: 1).utf8))) }
    }

    /// The event types of the journal entries about `subject`, oldest first.
    func journalEvents(of subject: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> [String] {
        try await journal(of: subject, sourceLocation: sourceLocation).map(\.event)
    }

    // MARK: Sub-park activity

    /// `GET /v1/sub-parks/{id}/activity` as `key`.
    func activity(_ subParkID: String, _ parameters: [(String, String)] = [], key: String? = operatorKey,
                  sourceLocation: SourceLocation = #_sourceLocation) async throws -> APIResponse {
        try await call(.get, marketURI("/v1/sub-parks/\(subParkID)/activity", parameters), key: key, sourceLocation: sourceLocation)
    }
}

/// `{"total": n, "by_field": {...}, "by_status": {...}}` as the activity report writes it.
func activityCounts(_ total: Int, byField: [String: Int] = [:], byStatus: [String: Int] = [:]) -> JSON {
    .object([
        "total": .int(Int64(total)),
        "by_field": .object(byField.mapValues { .int(Int64($0)) }),
        "by_status": .object(byStatus.mapValues { .int(Int64($0)) }),
    ])
}
