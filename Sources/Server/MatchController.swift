import Foundation
import Hummingbird
import Postgres
import TechBank

/// `/v1/matches`: brokers introduce a listed technology to an open demand; the technology's owner
/// and the demand's owner each accept or decline. Brokers see the matches they made, parties the
/// matches about their objects, sub-parks their members', the committee and the operator all.
struct MatchController: Sendable {
    let matches: Matches
    let organizations: Organizations
    let idempotency: Idempotency
    let maxBodyBytes: Int

    // MARK: Bodies

    struct CreateMatch: RequestBody {
        static let knownFields: Set<String> = ["id", "technology_id", "demand_id", "note"]
        let id: UUID?
        let technologyID: UUID
        let demandID: UUID
        let note: String?

        enum CodingKeys: String, CodingKey {
            case id, note
            case technologyID = "technology_id"
            case demandID = "demand_id"
        }
    }

    struct MatchBody: Encodable, Sendable {
        let match: Match

        enum CodingKeys: String, CodingKey {
            case id, note, status, version
            case brokerID = "broker_id"
            case technologyID = "technology_id"
            case demandID = "demand_id"
            case sellerID = "seller_id"
            case buyerID = "buyer_id"
            case sellerDecision = "seller_decision"
            case buyerDecision = "buyer_decision"
            case createdAt = "created_at"
            case updatedAt = "updated_at"
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(match.id, forKey: .id)
            try c.encode(match.brokerID, forKey: .brokerID)
            try c.encode(match.technologyID, forKey: .technologyID)
            try c.encode(match.demandID, forKey: .demandID)
            try c.encode(match.sellerID, forKey: .sellerID)
            try c.encode(match.buyerID, forKey: .buyerID)
            try c.encode(match.note, forKey: .note)
            try c.encode(match.sellerDecision, forKey: .sellerDecision)
            try c.encode(match.buyerDecision, forKey: .buyerDecision)
            try c.encode(match.status.rawValue, forKey: .status)
            try c.encode(match.version, forKey: .version)
            try c.encode(match.createdAt, forKey: .createdAt)
            try c.encode(match.updatedAt, forKey: .updatedAt)
        }
    }

    // MARK: Routes

    func register(on router: some RouterMethods<AppRequestContext>) {
        router.post("matches") { request, context in
            try await idempotency.run(request, context: context) { request, context in try await create(request, context) }
        }
        router.get("matches") { request, context in try await list(request, context).response }
        router.get("matches/:id") { request, context in try Reply.json(MatchBody(match: try await visible(request, context).0)).response }
        for decision in MatchDecision.allCases {
            router.post("matches/:id/\(decision.rawValue)") { request, context in try await decide(request, context, decision).response }
        }
    }

    @Sendable func create(_ request: Request, _ context: AppRequestContext) async throws -> Reply {
        let identity = try context.requireIdentity()
        guard identity.kind == .broker else { throw APIError(.forbidden, code: "forbidden", "only brokers propose matches") }
        var request = request
        let body = try await request.decode(CreateMatch.self, maxBytes: maxBodyBytes)
        let note = body.note?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        guard note.unicodeScalars.count <= 2_000 else { throw APIError.validation("note", "must be at most 2000 characters") }
        let match = try await matches.propose(id: body.id ?? UUID(), broker: identity.organizationID, technologyID: body.technologyID,
                                              demandID: body.demandID, note: note)
        var reply = try Reply.json(MatchBody(match: match), status: .created)
        reply.headers[.location] = "/v1/matches/\(match.id.uuidString.lowercased())"
        return reply
    }

    func list(_ request: Request, _ context: AppRequestContext) async throws -> Reply {
        let identity = try context.requireIdentity()
        let (limit, cursorText) = try request.page()
        var query = MatchQuery()
        query.status = try request.enumQuery(MatchStatus.self, "status")
        query.technologyID = try request.uuidQuery("technology_id")
        query.demandID = try request.uuidQuery("demand_id")
        let page = try await matches.list(query, visibleTo: identity, limit: limit, after: try cursorText.map(TimeCursor.decode))
        return try Reply.json(PageBody(data: page.items.map(MatchBody.init),
                                       nextCursor: page.next.map(TimeCursor.encode)))
    }

    func decide(_ request: Request, _ context: AppRequestContext, _ decision: MatchDecision) async throws -> Reply {
        let (match, identity) = try await visible(request, context)
        guard [match.sellerID, match.buyerID].contains(identity.organizationID) else {
            throw APIError(.forbidden, code: "forbidden", "only the technology's owner and the demand's owner decide on a match")
        }
        guard let decided = try await matches.decide(match.id, decision, by: identity.organizationID) else { throw APIError.notFound }
        return try Reply.json(MatchBody(match: decided))
    }

    /// The match named by `:id` if the caller may see it; 404 otherwise.
    func visible(_ request: Request, _ context: AppRequestContext) async throws -> (Match, Identity) {
        let identity = try context.requireIdentity()
        guard let match = try await matches.get(request.uuidParameter("id", context)) else { throw APIError.notFound }
        let sellerSubPark = try await organizations.subPark(of: match.sellerID, seenBy: identity)
        let buyerSubPark = try await organizations.subPark(of: match.buyerID, seenBy: identity)
        guard identity.canSee(match, sellerSubParkID: sellerSubPark, buyerSubParkID: buyerSubPark) else { throw APIError.notFound }
        return (match, identity)
    }
}
