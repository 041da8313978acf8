import Foundation
import HTTPTypes
import Ledger
import Postgres
import Testing

// Helpers of the deal tests (Deal*.swift) and the money/escrow tests, on top of
// APITestSupport.swift, TechnologySupport.swift and MarketSupport.swift.

/// A deal's parties and everyone around them.
struct DealFixture: Sendable {
    /// The seller's sub-park.
    let park: Org
    /// An institute in `park` (country CN), owner of `technologyID`.
    let seller: Org
    /// An enterprise (CN) outside any sub-park, owner of `demandID`.
    let buyer: Org
    let broker: Org
    let committee: Org
    /// An institute with nothing to do with any deal.
    let outsider: Org
    /// A listed technology of `seller`, with the inventors in `DealFixture.inventors` and (if the
    /// fixture was made with `patent: true`) a granted CN patent.
    let technologyID: String
    /// An open demand of `buyer` in the technology's field.
    let demandID: String

    /// The inventors of the fixture's technology: two, 60 % and 40 %.
    static var inventors: [[String: Any]] { [inventor("Li Wei", 6_000), inventor("Wang Fang", 4_000)] }

    /// Keys of the seller and buyer (the two who sign).
    var signers: [Org] { [seller, buyer] }
}

/// One milestone of a deal body.
func dealMilestone(_ name: String, _ amount: Int, dueOn: String = utcDate(120), evidenceRequired: Bool = false) -> [String: Any] {
    ["name": name, "amount": amount, "due_on": dueOn, "evidence_required": evidenceRequired]
}

/// The default milestones: two, 2_000_000 and 3_000_000 minor units.
var defaultDealMilestones: [[String: Any]] {
    [dealMilestone("Prototype delivered", 2_000_000, dueOn: utcDate(120)), dealMilestone("Production line accepted", 3_000_000, dueOn: utcDate(240))]
}

/// A deal body that passes validation unless a test changes it: a domestic non-exclusive licence
/// in CN for a year from 30 days ahead, 1_000_000 upfront plus the default milestones (6_000_000 in
/// all, far below the approval threshold), no royalty, no fees. `technologyID`/`buyerID`/
/// `brokerID`/`matchID` are included when given; `overrides` replace (or add) top-level fields
/// and `without` removes them.
func dealBody(
    technologyID: String? = nil, buyerID: String? = nil, brokerID: String? = nil, matchID: String? = nil,
    kind: String = "non_exclusive_licence", fieldOfUse: String = "Battery recycling plants", territories: [String] = ["CN"],
    startsOn: String = utcDate(30), endsOn: String? = utcDate(395), currency: String = "CNY", upfront: Int = 1_000_000,
    milestones: [[String: Any]] = defaultDealMilestones, royaltyBP: Int = 0, brokerFeeBP: Int = 0, subParkFeeBP: Int = 0,
    contractCategory: String = "licence", overrides: [String: Any] = [:], without: Set<String> = []
) -> [String: Any] {
    var term: [String: Any] = ["starts_on": startsOn]
    if let endsOn { term["ends_on"] = endsOn }
    var body: [String: Any] = [
        "kind": kind, "field_of_use": fieldOfUse, "territories": territories, "term": term, "currency": currency, "upfront": upfront,
        "milestones": milestones, "royalty_bp": royaltyBP, "broker_fee_bp": brokerFeeBP, "sub_park_fee_bp": subParkFeeBP,
        "contract_category": contractCategory,
    ]
    if let technologyID { body["technology_id"] = technologyID }
    if let buyerID { body["buyer_id"] = buyerID }
    if let brokerID { body["broker_id"] = brokerID }
    if let matchID { body["match_id"] = matchID }
    body.merge(overrides) { $1 }
    for field in without { body[field] = nil }
    return body
}

/// The `If-Match` header for a deal at `version`.
func ifMatch(_ version: Int64) -> HTTPFields { [.ifMatch: "\"v\(version)\""] }

extension API {
    // MARK: Organizations and fixtures

    /// Creates an organization in `country` as the operator and issues it a key.
    func createOrganization(_ name: String, kind: String, country: String, subParkID: String? = nil,
                            sourceLocation: SourceLocation = #_sourceLocation) async throws -> Org {
        var body: [String: Any] = ["name": name, "kind": kind, "country": country]
        if let subParkID { body["sub_park_id"] = subParkID }
        let created = try await call(.post, "/v1/organizations", json: body, sourceLocation: sourceLocation)
        try #require(created.status == .created, "\(created)", sourceLocation: sourceLocation)
        let id = try #require(created.json["id"].string, sourceLocation: sourceLocation)
        let key = try await call(.post, "/v1/organizations/\(id)/api-keys", json: ["label": "\(name) key"], sourceLocation: sourceLocation)
        try #require(key.status == .created, "\(key)", sourceLocation: sourceLocation)
        return Org(id: id, key: try #require(key.json["key"].string), keyID: try #require(key.json["id"].string))
    }

    /// Registers a technology of `seller` with the fixture's inventors (and a granted CN patent
    /// numbered `patentNumber`, if given) and lists it; returns its id.
    func listedDealTechnology(as seller: Org, _ title: String, patentNumber: String? = nil, field: String = "environmental_technology",
                              sourceLocation: SourceLocation = #_sourceLocation) async throws -> String {
        let body = technologyBody(title, description: "Confidential: leaching temperatures and reagent ratios.", field: field,
                                  inventors: DealFixture.inventors, ipRights: patentNumber.map { [ipRight($0)] })
        let id = try await registerTechnologyID(as: seller, body, sourceLocation: sourceLocation)
        try await moveAll(id, ["custody", "listing"], key: seller.key, sourceLocation: sourceLocation)
        return id
    }

    /// Everyone a deal needs: a seller institute in a sub-park with a listed technology (with a
    /// patent if `patent`), a buyer enterprise with an open demand, a broker, the committee and an
    /// unrelated institute. All in CN.
    func dealFixture(patent: Bool = false, sourceLocation: SourceLocation = #_sourceLocation) async throws -> DealFixture {
        let park = try await createOrganization("Zhangjiang Park", kind: "sub_park", sourceLocation: sourceLocation)
        let seller = try await createOrganization("Fudan Materials Lab", kind: "institute", subParkID: park.id, sourceLocation: sourceLocation)
        let buyer = try await createOrganization("Shanghai Cells Co", kind: "enterprise", sourceLocation: sourceLocation)
        let broker = try await createOrganization("Pudong Tech Brokers", kind: "broker", sourceLocation: sourceLocation)
        let committee = try await createOrganization("Deal Committee", kind: "committee", sourceLocation: sourceLocation)
        let outsider = try await createOrganization("Unrelated Institute", kind: "institute", sourceLocation: sourceLocation)
        let technologyID = try await listedDealTechnology(as: seller, "Black-mass leaching at low temperature",
                                                          patentNumber: patent ? "CN 2022 1 0123456.7" : nil, sourceLocation: sourceLocation)
        let demandID = try await postDemandID(as: buyer, demandBody(field: "environmental_technology"), sourceLocation: sourceLocation)
        return DealFixture(park: park, seller: seller, buyer: buyer, broker: broker, committee: committee, outsider: outsider,
                           technologyID: technologyID, demandID: demandID)
    }

    // MARK: Creating deals

    /// `POST /v1/deals` as `org`.
    func createDeal(as org: Org, _ body: [String: Any], headers: HTTPFields = [:], sourceLocation: SourceLocation = #_sourceLocation) async throws -> APIResponse {
        try await call(.post, "/v1/deals", key: org.key, json: body, headers: headers, sourceLocation: sourceLocation)
    }

    /// Creates a deal as `org`, which must succeed (201); returns the deal.
    @discardableResult
    func createDealOK(as org: Org, _ body: [String: Any], sourceLocation: SourceLocation = #_sourceLocation) async throws -> JSON {
        let response = try await createDeal(as: org, body, sourceLocation: sourceLocation)
        try #require(response.status == .created, "\(response)", sourceLocation: sourceLocation)
        return response.json
    }

    /// Creates a draft deal as the fixture's seller for its technology and buyer (or `buyer`);
    /// `body` is the terms (default `dealBody()`), technology and buyer are filled in. Returns its id.
    func sellerDealID(_ f: DealFixture, buyer: Org? = nil, technologyID: String? = nil, _ body: [String: Any] = dealBody(),
                      sourceLocation: SourceLocation = #_sourceLocation) async throws -> String {
        var body = body
        body["technology_id"] = body["technology_id"] ?? technologyID ?? f.technologyID
        body["buyer_id"] = body["buyer_id"] ?? (buyer ?? f.buyer).id
        return try #require(try await createDealOK(as: f.seller, body, sourceLocation: sourceLocation)["id"].string, sourceLocation: sourceLocation)
    }

    /// A match the fixture's broker proposed for the technology (or `technologyID`) and a fresh
    /// demand of the buyer (or `buyer`), accepted by both sides; returns its id.
    func acceptedMatchID(_ f: DealFixture, buyer: Org? = nil, technologyID: String? = nil,
                         sourceLocation: SourceLocation = #_sourceLocation) async throws -> String {
        let buyer = buyer ?? f.buyer
        let demandID = try await postDemandID(as: buyer, demandBody("Demand \(newID().prefix(8))", field: "environmental_technology"),
                                              sourceLocation: sourceLocation)
        let matchID = try await proposeMatchID(as: f.broker, technologyID: technologyID ?? f.technologyID, demandID: demandID, sourceLocation: sourceLocation)
        try await decideOK(matchID, "accept", key: f.seller.key, sourceLocation: sourceLocation)
        let accepted = try await decideOK(matchID, "accept", key: buyer.key, sourceLocation: sourceLocation)
        try #require(accepted["status"].string == "accepted", "\(accepted)", sourceLocation: sourceLocation)
        return matchID
    }

    /// Creates a draft deal as the fixture's broker for a fresh accepted match; `body` is the
    /// terms (default: `dealBody` with a 500 bp broker fee). Returns its id.
    func brokerDealID(_ f: DealFixture, buyer: Org? = nil, _ body: [String: Any] = dealBody(brokerFeeBP: 500),
                      sourceLocation: SourceLocation = #_sourceLocation) async throws -> String {
        let matchID = try await acceptedMatchID(f, buyer: buyer, sourceLocation: sourceLocation)
        var body = body
        body["match_id"] = matchID
        return try #require(try await createDealOK(as: f.broker, body, sourceLocation: sourceLocation)["id"].string, sourceLocation: sourceLocation)
    }

    // MARK: Reading deals

    /// `GET /v1/deals/{id}` as `key`.
    func deal(_ id: String, key: String = operatorKey, sourceLocation: SourceLocation = #_sourceLocation) async throws -> APIResponse {
        try await call(.get, "/v1/deals/\(id)", key: key, sourceLocation: sourceLocation)
    }

    /// A deal as the operator reads it (which must succeed).
    func dealJSON(_ id: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> JSON {
        let response = try await deal(id, sourceLocation: sourceLocation)
        try #require(response.status == .ok, "\(response)", sourceLocation: sourceLocation)
        return response.json
    }

    /// A deal's status as the operator reads it.
    func dealStatus(_ id: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> String? {
        try await deal(id, sourceLocation: sourceLocation).json["status"].string
    }

    // MARK: Acting on deals

    /// `POST /v1/deals/{id}/{action}` as `key` (`propose`, `sign`, `escrow`, `cancel`, …).
    @discardableResult
    func dealAction(_ id: String, _ action: String, key: String, json: [String: Any]? = nil, headers: HTTPFields = [:],
                    sourceLocation: SourceLocation = #_sourceLocation) async throws -> APIResponse {
        try await call(.post, "/v1/deals/\(id)/\(action)", key: key, json: json, headers: headers, sourceLocation: sourceLocation)
    }

    /// Does `action` as `key`, which must succeed (200); returns the deal.
    @discardableResult
    func dealActionOK(_ id: String, _ action: String, key: String, json: [String: Any]? = nil,
                      sourceLocation: SourceLocation = #_sourceLocation) async throws -> JSON {
        let response = try await dealAction(id, action, key: key, json: json, sourceLocation: sourceLocation)
        try #require(response.status == .ok, "\(action): \(response)", sourceLocation: sourceLocation)
        return response.json
    }

    /// Proposes as `by` (default: the seller), which must succeed; returns the deal (proposed or approval_required).
    @discardableResult
    func proposeDeal(_ id: String, _ f: DealFixture, by: Org? = nil, sourceLocation: SourceLocation = #_sourceLocation) async throws -> JSON {
        try await dealActionOK(id, "propose", key: (by ?? f.seller).key, sourceLocation: sourceLocation)
    }

    /// `POST /v1/deals/{id}/approvals` as `key` with `decision` (approve/reject) and `reason`.
    @discardableResult
    func decideDeal(_ id: String, _ decision: String, reason: String = "Reviewed by the committee.", key: String,
                    sourceLocation: SourceLocation = #_sourceLocation) async throws -> APIResponse {
        try await dealAction(id, "approvals", key: key, json: ["decision": decision, "reason": reason], sourceLocation: sourceLocation)
    }

    /// The committee approves, which must succeed; returns the deal.
    @discardableResult
    func approveDeal(_ id: String, _ f: DealFixture, reason: String = "Within policy.", sourceLocation: SourceLocation = #_sourceLocation) async throws -> JSON {
        let response = try await decideDeal(id, "approve", reason: reason, key: f.committee.key, sourceLocation: sourceLocation)
        try #require(response.status == .ok, "\(response)", sourceLocation: sourceLocation)
        return response.json
    }

    /// Signs as the seller, then as the buyer (or `buyer`); both must succeed. Returns the deal after the second signature.
    @discardableResult
    func signBoth(_ id: String, _ f: DealFixture, buyer: Org? = nil, sourceLocation: SourceLocation = #_sourceLocation) async throws -> JSON {
        try await dealActionOK(id, "sign", key: f.seller.key, sourceLocation: sourceLocation)
        return try await dealActionOK(id, "sign", key: (buyer ?? f.buyer).key, sourceLocation: sourceLocation)
    }

    /// Proposes as the seller, approves as the committee if a rule requires it, and signs by both;
    /// the deal must end signed. Returns it.
    @discardableResult
    func proposeAndSign(_ id: String, _ f: DealFixture, buyer: Org? = nil, sourceLocation: SourceLocation = #_sourceLocation) async throws -> JSON {
        let proposed = try await proposeDeal(id, f, sourceLocation: sourceLocation)
        if proposed["status"].string == "approval_required" { try await approveDeal(id, f, sourceLocation: sourceLocation) }
        let signed = try await signBoth(id, f, buyer: buyer, sourceLocation: sourceLocation)
        try #require(signed["status"].string == "signed", "\(signed)", sourceLocation: sourceLocation)
        return signed
    }

    /// Creates a deal as the seller with `body` and takes it to signed; returns its id.
    func signedDealID(_ f: DealFixture, buyer: Org? = nil, _ body: [String: Any] = dealBody(), sourceLocation: SourceLocation = #_sourceLocation) async throws -> String {
        let id = try await sellerDealID(f, buyer: buyer, body, sourceLocation: sourceLocation)
        try await proposeAndSign(id, f, buyer: buyer, sourceLocation: sourceLocation)
        return id
    }

    /// `POST /v1/deposits` as the operator: `amount` of `currency` arrives for `org`.
    @discardableResult
    func deposit(_ org: Org, _ amount: Int, currency: String = "CNY", externalRef: String = "BANK-\(newID())",
                 sourceLocation: SourceLocation = #_sourceLocation) async throws -> APIResponse {
        try await call(.post, "/v1/deposits", json: ["organization_id": org.id, "amount": amount, "currency": currency, "external_ref": externalRef],
                       sourceLocation: sourceLocation)
    }

    /// Deposits, which must succeed (201).
    func depositOK(_ org: Org, _ amount: Int, currency: String = "CNY", sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let response = try await deposit(org, amount, currency: currency, sourceLocation: sourceLocation)
        try #require(response.status == .created, "\(response)", sourceLocation: sourceLocation)
    }

    /// `POST /v1/deals/{id}/escrow` as `key`.
    @discardableResult
    func escrow(_ id: String, key: String, headers: HTTPFields = [:], sourceLocation: SourceLocation = #_sourceLocation) async throws -> APIResponse {
        try await dealAction(id, "escrow", key: key, headers: headers, sourceLocation: sourceLocation)
    }

    /// Deposits the deal's total for the buyer (or `buyer`) and funds escrow as it, which must
    /// succeed; returns the deal (active, or completed if nothing is left to release).
    @discardableResult
    func fundDeal(_ id: String, _ f: DealFixture, buyer: Org? = nil, sourceLocation: SourceLocation = #_sourceLocation) async throws -> JSON {
        let buyer = buyer ?? f.buyer
        let total = try #require(try await dealJSON(id, sourceLocation: sourceLocation)["total_amount"].int, sourceLocation: sourceLocation)
        if total > 0 { try await depositOK(buyer, Int(total), sourceLocation: sourceLocation) }
        let response = try await escrow(id, key: buyer.key, sourceLocation: sourceLocation)
        try #require(response.status == .ok, "\(response)", sourceLocation: sourceLocation)
        return response.json
    }

    /// `POST /v1/deals/{id}/milestones/{number}/release` as `key`.
    @discardableResult
    func release(_ id: String, milestone number: Int, key: String, headers: HTTPFields = [:],
                 sourceLocation: SourceLocation = #_sourceLocation) async throws -> APIResponse {
        try await dealAction(id, "milestones/\(number)/release", key: key, headers: headers, sourceLocation: sourceLocation)
    }

    /// Releases milestone `number` as `key`, which must succeed; returns the deal.
    @discardableResult
    func releaseOK(_ id: String, milestone number: Int, key: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> JSON {
        let response = try await release(id, milestone: number, key: key, sourceLocation: sourceLocation)
        try #require(response.status == .ok, "\(response)", sourceLocation: sourceLocation)
        return response.json
    }

    // MARK: Invariants

    /// Checks the ledger at the end of a test: for every currency, the debits and credits of
    /// `ledger.accounts` balance (posted and pending), no account breaks its balance rule, and the
    /// hash-chained journal verifies entry by entry.
    func expectLedgerInvariants(sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let rows = try await pool.withConnection { connection in
            try await connection.query(
                """
                SELECT currency, sum(debits_posted)::text, sum(credits_posted)::text, sum(debits_pending)::text, sum(credits_pending)::text
                  FROM ledger.accounts GROUP BY currency ORDER BY currency
                """)
        }
        for row in rows {
            let currency = try row.decode(String.self, at: 0)
            let sums = try (1...4).map { try row.decode(String.self, at: $0) }
            #expect(sums[0] == sums[1], "\(currency): debits posted \(sums[0]) ≠ credits posted \(sums[1])", sourceLocation: sourceLocation)
            #expect(sums[2] == sums[3], "\(currency): debits pending \(sums[2]) ≠ credits pending \(sums[3])", sourceLocation: sourceLocation)
        }
        let broken = try await pool.withConnection { connection in
            try await connection.query(
                """
                SELECT count(*)::bigint FROM ledger.accounts
                 WHERE (debits_must_not_exceed_credits AND debits_posted + debits_pending > credits_posted)
                    OR (credits_must_not_exceed_debits AND credits_posted + credits_pending > debits_posted)
                """)
        }[0].decode(Int64.self, at: 0)
        #expect(broken == 0, "\(broken) accounts break their balance rule", sourceLocation: sourceLocation)
        let verification = try await Journal(pool: pool).verify()
        #expect(verification.isIntact, "journal: \(String(describing: verification.firstBreak))", sourceLocation: sourceLocation)
        let entries = try await pool.withConnection { connection in
            try await connection.query("SELECT count(*)::bigint FROM ledger.journal")
        }[0].decode(Int64.self, at: 0)
        #expect(Int64(verification.entriesChecked) == entries, "journal entries checked \(verification.entriesChecked) of \(entries)",
                sourceLocation: sourceLocation)
    }
}
