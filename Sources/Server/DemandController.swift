import Foundation
import Hummingbird
import Ledger
import Postgres
import TechBank

/// `/v1/demands`: what enterprises look for, and the listed technologies ranked for each.
///
/// An enterprise posts for itself; a broker or the operator posts on an enterprise's behalf. Open
/// demands are visible to everyone; afterwards only to the owner, the poster, the owner's sub-park,
/// the committee, the operator, and the broker and seller of a match on it. The owner, the poster and the operator change or close one.
struct DemandController: Sendable {
    let demands: Demands
    /// Where searches read: the standby's store when the server has one.
    let searches: Demands
    let matches: Matches
    let organizations: Organizations
    let idempotency: Idempotency
    let maxBodyBytes: Int

    /// The furthest a deadline may lie ahead, in days.
    static let maxDeadlineDays: Int32 = 3_660
    /// The most candidates a demand's ranking pages through.
    static let maxCandidateOffset = 1_000

    // MARK: Bodies

    struct BudgetBody: Codable, Sendable {
        let min: Int64
        let max: Int64
        let currency: String
    }

    struct CreateDemand: RequestBody {
        static let knownFields: Set<String> = ["id", "owner_id", "title", "description", "field", "keywords", "trl_min", "budget", "region", "deadline"]
        static var nestedKnownFields: [String: Set<String>] { ["budget": ["min", "max", "currency"]] }
        let id: UUID?
        let ownerID: UUID?
        let title: String
        let description: String?
        let field: String
        let keywords: [String]?
        let trlMin: Int
        let budget: BudgetBody?
        let region: String
        let deadline: String

        enum CodingKeys: String, CodingKey {
            case id, title, description, field, keywords, budget, region, deadline
            case ownerID = "owner_id"
            case trlMin = "trl_min"
        }
    }

    struct UpdateDemand: RequestBody {
        static let knownFields: Set<String> = ["title", "description", "keywords", "trl_min", "budget", "deadline"]
        static var nestedKnownFields: [String: Set<String>] { ["budget": ["min", "max", "currency"]] }
        let title: String?
        let description: String?
        let keywords: [String]?
        let trlMin: Int?
        let budget: BudgetBody?
        let deadline: String?

        enum CodingKeys: String, CodingKey {
            case title, description, keywords, budget, deadline
            case trlMin = "trl_min"
        }
    }

    struct DemandBody: Encodable, Sendable {
        let demand: Demand

        enum CodingKeys: String, CodingKey {
            case id, title, description, field, keywords, budget, region, deadline, status, version
            case ownerID = "owner_id"
            case postedBy = "posted_by"
            case trlMin = "trl_min"
            case createdAt = "created_at"
            case updatedAt = "updated_at"
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(demand.id, forKey: .id)
            try c.encode(demand.ownerID, forKey: .ownerID)
            try c.encode(demand.postedBy, forKey: .postedBy)
            try c.encode(demand.title, forKey: .title)
            try c.encode(demand.description, forKey: .description)
            try c.encode(demand.field, forKey: .field)
            try c.encode(demand.keywords, forKey: .keywords)
            try c.encode(demand.trlMin, forKey: .trlMin)
            try c.encode(demand.budget.map { BudgetBody(min: $0.min, max: $0.max, currency: $0.currency) }, forKey: .budget)
            try c.encode(demand.region, forKey: .region)
            try c.encode(demand.deadline.description, forKey: .deadline)
            try c.encode(demand.status.rawValue, forKey: .status)
            try c.encode(demand.version, forKey: .version)
            try c.encode(demand.createdAt, forKey: .createdAt)
            try c.encode(demand.updatedAt, forKey: .updatedAt)
        }
    }

    struct CandidateBody: Encodable, Sendable {
        struct ReasonBody: Encodable, Sendable {
            let factor: String
            let weight: Double
            let fit: Double
            let contribution: Double
            let detail: String
        }

        let technologyID: UUID
        let title: String
        let field: String
        let trl: Int
        let ownerID: UUID
        let score: Double
        let reasons: [ReasonBody]

        init(_ candidate: Candidate) {
            technologyID = candidate.technologyID
            title = candidate.title
            field = candidate.field
            trl = candidate.trl
            ownerID = candidate.ownerID
            score = candidate.score
            reasons = candidate.reasons.map {
                ReasonBody(factor: $0.factor.rawValue, weight: $0.weight, fit: $0.fit, contribution: $0.contribution, detail: $0.detail)
            }
        }

        enum CodingKeys: String, CodingKey {
            case title, field, trl, score, reasons
            case technologyID = "technology_id"
            case ownerID = "owner_id"
        }
    }

    // MARK: Routes

    /// Registers the routes on `router`, and the search on `reads` (the routes read from a standby).
    func register(on router: some RouterMethods<AppRequestContext>, reads: some RouterMethods<AppRequestContext>) {
        router.post("demands") { request, context in
            try await idempotency.run(request, context: context) { request, context in try await create(request, context) }
        }
        reads.get("demands") { request, context in try await search(request, context).response }
        router.get("demands/:id") { request, context in
            let (demand, _) = try await visible(request, context)
            return try reply(demand).response
        }
        router.patch("demands/:id") { request, context in try await update(request, context).response }
        router.post("demands/:id/close") { request, context in
            let (demand, identity) = try await changeable(request, context)
            guard let closed = try await demands.close(demand.id, actor: identity.organizationID) else { throw APIError.notFound }
            return try reply(closed).response
        }
        router.get("demands/:id/candidates") { request, context in try await candidates(request, context).response }
    }

    @Sendable func create(_ request: Request, _ context: AppRequestContext) async throws -> Reply {
        let identity = try context.requireIdentity()
        var request = request
        let body = try await request.decode(CreateDemand.self, maxBytes: maxBodyBytes)
        let ownerID: UUID
        switch identity.kind {
        case .enterprise:
            if let requested = body.ownerID, requested != identity.organizationID {
                throw APIError(.forbidden, code: "forbidden", "an enterprise posts demands only for itself")
            }
            ownerID = identity.organizationID
        case .broker, .operator:
            guard let requested = body.ownerID else { throw APIError.validation("owner_id", "is required when posting for an enterprise") }
            guard let owner = try await organizations.get(requested), owner.kind == .enterprise else {
                throw APIError.validation("owner_id", "must be an enterprise")
            }
            ownerID = owner.id
        default:
            throw APIError(.forbidden, code: "forbidden", "only enterprises (or a broker or the operator for them) post demands")
        }
        let title = try ClientText.trimmed(body.title, field: "title", max: 300)
        let description = try Self.description(body.description ?? "")
        guard (1...9).contains(body.trlMin) else { throw APIError.validation("trl_min", "must be 1 to 9") }
        guard body.region.range(of: "^[A-Z]{2}(-[A-Z0-9]{1,3})?$", options: .regularExpression) != nil else {
            throw APIError.validation("region", "must be an ISO 3166 code such as CN or CN-SH")
        }
        var new = NewDemand(ownerID: ownerID, title: title, description: description, field: body.field,
                            keywords: try ClientText.keywords(body.keywords ?? []), trlMin: body.trlMin, budget: try Self.budget(body.budget),
                            region: body.region, deadline: try Self.deadline(body.deadline))
        if let id = body.id { new.id = id }
        let demand = try await demands.post(new, actor: identity.organizationID)
        var reply = try reply(demand, status: .created)
        reply.headers[.location] = "/v1/demands/\(demand.id.uuidString.lowercased())"
        return reply
    }

    func search(_ request: Request, _ context: AppRequestContext) async throws -> Reply {
        let identity = try context.requireIdentity()
        let (limit, cursor) = try request.page()
        var query = DemandQuery()
        query.text = try request.searchText()
        query.field = try request.codeQuery("field")
        query.status = try request.enumQuery(DemandStatus.self, "status")
        query.ownerID = try request.uuidQuery("owner_id")
        query.subParkID = try request.uuidQuery("sub_park_id")
        let page = try await searches.search(query, visibleTo: identity, limit: limit, offset: try Cursor.offset(cursor, max: Demands.maxOffset))
        return try Reply.json(PageBody(data: page.items.map(DemandBody.init), nextCursor: Cursor.next(offset: page.nextOffset, max: Demands.maxOffset)))
    }

    func update(_ request: Request, _ context: AppRequestContext) async throws -> Reply {
        let (demand, identity) = try await changeable(request, context)
        var request = request
        let body = try await request.decode(UpdateDemand.self, maxBytes: maxBodyBytes)
        var changes = DemandChanges()
        changes.title = try body.title.map { try ClientText.trimmed($0, field: "title", max: 300) }
        changes.description = try body.description.map(Self.description)
        changes.keywords = try body.keywords.map(ClientText.keywords)
        if let trlMin = body.trlMin {
            guard (1...9).contains(trlMin) else { throw APIError.validation("trl_min", "must be 1 to 9") }
            changes.trlMin = trlMin
        }
        changes.budget = try Self.budget(body.budget)
        changes.deadline = try body.deadline.map(Self.deadline)
        try request.requireIfMatch(versionETag(demand.version))
        guard let updated = try await demands.update(demand.id, changes, expectedVersion: demand.version, actor: identity.organizationID) else {
            throw APIError.notFound
        }
        return try reply(updated)
    }

    func candidates(_ request: Request, _ context: AppRequestContext) async throws -> Reply {
        let (demand, _) = try await visible(request, context)
        let (limit, cursor) = try request.page()
        let page = try await demands.candidates(for: demand, limit: limit, offset: try Cursor.offset(cursor, max: Self.maxCandidateOffset))
        return try Reply.json(PageBody(data: page.items.map(CandidateBody.init), nextCursor: Cursor.next(offset: page.nextOffset, max: Self.maxCandidateOffset)))
    }

    // MARK: Rules

    /// The demand named by `:id` if the caller may see it (or brokered or offered a technology
    /// in a match on it); 404 otherwise.
    func visible(_ request: Request, _ context: AppRequestContext) async throws -> (Demand, Identity) {
        let identity = try context.requireIdentity()
        guard let demand = try await demands.get(request.uuidParameter("id", context)) else { throw APIError.notFound }
        let subParkID = try await organizations.subPark(of: demand.ownerID, seenBy: identity)
        if !identity.canSee(demand, ownerSubParkID: subParkID) {
            guard try await matches.involves(identity.organizationID, demandID: demand.id) else { throw APIError.notFound }
        }
        return (demand, identity)
    }

    /// The demand, if the caller may change it: 404 if invisible, 403 if visible only.
    func changeable(_ request: Request, _ context: AppRequestContext) async throws -> (Demand, Identity) {
        let (demand, identity) = try await visible(request, context)
        guard identity.canChange(demand) else {
            throw APIError(.forbidden, code: "forbidden", "only the demand's owner or whoever posted it changes it")
        }
        return (demand, identity)
    }

    func reply(_ demand: Demand, status: HTTPResponse.Status = .ok) throws -> Reply {
        var reply = try Reply.json(DemandBody(demand: demand), status: status)
        reply.headers[.eTag] = versionETag(demand.version)
        return reply
    }

    static func description(_ text: String) throws -> String {
        guard text.unicodeScalars.count <= 20_000 else { throw APIError.validation("description", "must be at most 20000 characters") }
        return text
    }

    static func budget(_ body: BudgetBody?) throws -> Budget? {
        guard let body else { return nil }
        guard CurrencyCode(body.currency) != nil else { throw APIError.validation("budget.currency", "must be an ISO 4217 code such as CNY") }
        for (name, value) in [("min", body.min), ("max", body.max)] where !(0...LedgerController.maxAmount).contains(value) {
            throw APIError.validation("budget.\(name)", "must be 0 to 2^53 minor units")
        }
        guard body.min <= body.max else { throw APIError.validation("budget.max", "must not be below budget.min") }
        return Budget(min: body.min, max: body.max, currency: body.currency)
    }

    /// A deadline from today (UTC) to about ten years ahead.
    static func deadline(_ text: String) throws -> PostgresDate {
        guard let date = PostgresDate(iso8601: text) else { throw APIError.validation("deadline", "must be a date such as 2027-06-30") }
        let today = PostgresDate.today()
        guard date >= today else { throw APIError.validation("deadline", "must not be in the past (today is \(today) UTC)") }
        guard date.daysSince2000 - today.daysSince2000 <= maxDeadlineDays else {
            throw APIError.validation("deadline", "must be at most \(maxDeadlineDays) days ahead")
        }
        return date
    }
}
