import Foundation
import HTTPTypes
import Testing

// Helpers of the technology registry tests (Technology*.swift), on top of APITestSupport.swift.

/// Percent-encodes a query value: everything but ASCII letters, digits and `-._~`.
func queryEncoded(_ value: String) -> String {
    let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
    return value.addingPercentEncoding(withAllowedCharacters: unreserved) ?? value
}

/// `/v1/technologies?name=value&...` with every value percent-encoded.
func technologiesURI(_ parameters: [(String, String)]) -> String {
    parameters.isEmpty ? "/v1/technologies" : "/v1/technologies?" + parameters.map { "\($0.0)=\(queryEncoded($0.1))" }.joined(separator: "&")
}

/// One inventor.
func inventor(_ name: String, _ shareBP: Any) -> [String: Any] { ["name": name, "share_bp": shareBP] }

/// An IP right of a registration body.
func ipRight(_ number: String, office: String = "CN", type: String = "patent", status: String = "granted", extra: [String: Any] = [:]) -> [String: Any] {
    ["type": type, "office": office, "number": number, "status": status].merging(extra) { $1 }
}

/// A registration body that passes validation unless a test changes it.
func technologyBody(
    _ title: String = "Adaptive beamforming for 5G base stations",
    summary: String = "A low-power beamforming scheme for small cells.",
    description: String = "Confidential: tap weights and calibration procedure.",
    field: String = "information_technology", trl: Int = 4, keywords: [String] = [],
    inventors: [[String: Any]] = [inventor("Li Wei", 10_000)], ipRights: [[String: Any]]? = nil,
    ownerID: String? = nil, extra: [String: Any] = [:]
) -> [String: Any] {
    var body: [String: Any] = [
        "title": title, "summary": summary, "description": description, "field": field, "trl": trl, "keywords": keywords, "inventors": inventors,
    ]
    if let ipRights { body["ip_rights"] = ipRights }
    if let ownerID { body["owner_id"] = ownerID }
    return body.merging(extra) { $1 }
}

/// The four states a technology reaches over HTTP, and how to get there from `registered`.
let technologyPaths: [(state: String, moves: [String])] = [
    ("registered", []), ("in_custody", ["custody"]), ("listed", ["custody", "listing"]), ("withdrawn", ["withdraw"]),
]

extension API {
    /// Registers a technology as `org` (nil: the operator; then `body` must carry `owner_id`); returns the 201's body.
    @discardableResult
    func registerTechnology(as org: Org?, _ body: [String: Any] = technologyBody(), sourceLocation: SourceLocation = #_sourceLocation) async throws -> JSON {
        let response = try await call(.post, "/v1/technologies", key: org?.key ?? operatorKey, json: body, sourceLocation: sourceLocation)
        try #require(response.status == .created, "\(response)", sourceLocation: sourceLocation)
        return response.json
    }

    /// Registers a technology as `org` and returns its id.
    func registerTechnologyID(as org: Org?, _ body: [String: Any] = technologyBody(), sourceLocation: SourceLocation = #_sourceLocation) async throws -> String {
        try #require(try await registerTechnology(as: org, body, sourceLocation: sourceLocation)["id"].string, sourceLocation: sourceLocation)
    }

    /// `POST /v1/technologies/{id}/{transition}` as `key`.
    @discardableResult
    func move(_ id: String, _ transition: String, key: String = operatorKey, sourceLocation: SourceLocation = #_sourceLocation) async throws -> APIResponse {
        try await call(.post, "/v1/technologies/\(id)/\(transition)", key: key, sourceLocation: sourceLocation)
    }

    /// Applies `moves` as `key`, each of which must succeed.
    func moveAll(_ id: String, _ moves: [String], key: String = operatorKey, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        for transition in moves {
            let response = try await move(id, transition, key: key, sourceLocation: sourceLocation)
            try #require(response.status == .ok, "\(transition): \(response)", sourceLocation: sourceLocation)
        }
    }

    /// A technology as the operator (or `key`) reads it.
    func technology(_ id: String, key: String = operatorKey, sourceLocation: SourceLocation = #_sourceLocation) async throws -> APIResponse {
        try await call(.get, "/v1/technologies/\(id)", key: key, sourceLocation: sourceLocation)
    }

    /// A technology's history entries as `key` reads them (which must be allowed).
    func technologyHistory(_ id: String, key: String = operatorKey, sourceLocation: SourceLocation = #_sourceLocation) async throws -> [JSON] {
        let response = try await call(.get, "/v1/technologies/\(id)/history", key: key, sourceLocation: sourceLocation)
        try #require(response.status == .ok, "\(response)", sourceLocation: sourceLocation)
        #expect(response.json["next_cursor"].isNull, "\(response)", sourceLocation: sourceLocation)
        return response.json["data"].array
    }

    /// Every technology a search returns as `key`, following cursors; the page size is `limit`.
    func searchAll(_ parameters: [(String, String)] = [], key: String = operatorKey, limit: Int = 200,
                   sourceLocation: SourceLocation = #_sourceLocation) async throws -> [JSON] {
        var items: [JSON] = []
        var cursor: String?
        for _ in 0..<100 {
            var query = parameters + [("limit", String(limit))]
            if let cursor { query.append(("cursor", cursor)) }
            let response = try await call(.get, technologiesURI(query), key: key, sourceLocation: sourceLocation)
            try #require(response.status == .ok, "\(response)", sourceLocation: sourceLocation)
            items += response.json["data"].array
            guard let next = response.json["next_cursor"].string else {
                #expect(response.json["next_cursor"].isNull, "next_cursor must be null on the last page: \(response)", sourceLocation: sourceLocation)
                return items
            }
            cursor = next
        }
        Issue.record("paging did not end", sourceLocation: sourceLocation)
        return items
    }

    /// The ids a search returns as `key`, in order.
    func searchIDs(_ parameters: [(String, String)] = [], key: String = operatorKey, sourceLocation: SourceLocation = #_sourceLocation) async throws -> [String] {
        try await searchAll(parameters, key: key, sourceLocation: sourceLocation).compactMap { $0["id"].string }
    }

    /// The operator's organization id.
    func operatorID(sourceLocation: SourceLocation = #_sourceLocation) async throws -> String {
        let response = try await call(.get, "/v1/organizations?kind=operator", sourceLocation: sourceLocation)
        try #require(response.status == .ok, "\(response)", sourceLocation: sourceLocation)
        return try #require(response.json["data"][0]["id"].string, "\(response)", sourceLocation: sourceLocation)
    }
}

/// Expects 409 `illegal_transition` naming `status`, whose detail names the current `state`.
func expectIllegalTransition(_ response: APIResponse, state: String, sourceLocation: SourceLocation = #_sourceLocation) {
    expectProblem(response, .conflict, "illegal_transition", fields: ["status"], sourceLocation: sourceLocation)
    let detail = response.json["detail"].string ?? ""
    #expect(detail.hasSuffix("is \(state)") || detail.contains("is \(state) "), "the detail must name the current state \(state): \(response)",
            sourceLocation: sourceLocation)
}

/// Expects 409 `ip_right_taken` naming `field`, with `holder_technology_id` equal to `holder` (nil: absent).
func expectRightTaken(_ response: APIResponse, field: String, holder: String?, sourceLocation: SourceLocation = #_sourceLocation) {
    expectProblem(response, .conflict, "ip_right_taken", fields: [field], sourceLocation: sourceLocation)
    if let holder {
        #expect(response.json["holder_technology_id"].string == holder, "\(response)", sourceLocation: sourceLocation)
    } else {
        #expect(response.json["holder_technology_id"] == .missing, "the holder must not be named: \(response)", sourceLocation: sourceLocation)
    }
}
