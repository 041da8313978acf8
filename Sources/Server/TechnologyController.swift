import Foundation
import Hummingbird
import Ledger
import Postgres
import TechBank

/// `/v1/fields` and `/v1/technologies`: the registry.
///
/// An institute registers technologies for itself (the operator may register for an institute).
/// A technology is visible to its owner, the owner's sub-park, the committee and the operator, and
/// to everyone once listed; its `description` is confidential to the owner, the committee, the
/// operator and the counterparties of its deals. Only the owner or the operator changes it.
struct TechnologyController: Sendable {
    let technologies: Technologies
    /// Where searches read: the standby's store when the server has one.
    let searches: Technologies
    let deals: Deals
    let organizations: Organizations
    let idempotency: Idempotency
    let maxBodyBytes: Int

    static let dealKinds: Set<String> = ["assignment", "exclusive_licence", "sole_licence", "non_exclusive_licence"]

    // MARK: Bodies

    struct AskingTermsBody: Codable, Sendable {
        let dealKinds: [String]
        let priceMin: Int64?
        let priceMax: Int64?
        let currency: String?

        enum CodingKeys: String, CodingKey {
            case currency
            case dealKinds = "deal_kinds"
            case priceMin = "price_min"
            case priceMax = "price_max"
        }
    }

    struct IPRightBody: Codable, Sendable {
        let type: String
        let office: String
        let number: String
        let kindCode: String?
        let status: String
        let filedOn: String?
        let grantedOn: String?
        let expiresOn: String?

        enum CodingKeys: String, CodingKey {
            case type, office, number, status
            case kindCode = "kind_code"
            case filedOn = "filed_on"
            case grantedOn = "granted_on"
            case expiresOn = "expires_on"
        }
    }

    struct CreateTechnology: RequestBody {
        static let knownFields: Set<String> = ["id", "owner_id", "title", "summary", "description", "field", "keywords", "trl", "inventors", "ip_rights", "asking_terms"]
        static var nestedKnownFields: [String: Set<String>] {
            ["inventors": ["name", "share_bp"], "asking_terms": ["deal_kinds", "price_min", "price_max", "currency"], "ip_rights": ["type", "office", "number", "kind_code", "status", "filed_on", "granted_on", "expires_on"]]
        }
        let id: UUID?
        let ownerID: UUID?
        let title: String
        let summary: String
        let description: String?
        let field: String
        let keywords: [String]?
        let trl: Int
        let inventors: [Inventor]
        let ipRights: [IPRightBody]?
        let askingTerms: AskingTermsBody?

        enum CodingKeys: String, CodingKey {
            case id, title, summary, description, field, keywords, trl, inventors
            case ownerID = "owner_id"
            case ipRights = "ip_rights"
            case askingTerms = "asking_terms"
        }
    }

    struct UpdateTechnology: RequestBody {
        static let knownFields: Set<String> = ["title", "summary", "description", "keywords", "trl", "asking_terms"]
        static var nestedKnownFields: [String: Set<String>] { ["asking_terms": ["deal_kinds", "price_min", "price_max", "currency"]] }
        let title: String?
        let summary: String?
        let description: String?
        let keywords: [String]?
        let trl: Int?
        let askingTerms: AskingTermsBody?

        enum CodingKeys: String, CodingKey {
            case title, summary, description, keywords, trl
            case askingTerms = "asking_terms"
        }
    }

    struct FieldBody: Encodable, Sendable {
        let code: String
        let nameEN: String
        let nameZH: String

        enum CodingKeys: String, CodingKey {
            case code
            case nameEN = "name_en"
            case nameZH = "name_zh"
        }
    }

    struct TechnologyBody: Encodable, Sendable {
        let technology: Technology
        /// Nil when the caller may not read the confidential description.
        let description: String?

        enum CodingKeys: String, CodingKey {
            case id, title, summary, description, field, keywords, trl, inventors, status, version
            case ownerID = "owner_id"
            case trlVerified = "trl_verified"
            case ipRights = "ip_rights"
            case askingTerms = "asking_terms"
            case createdAt = "created_at"
            case updatedAt = "updated_at"
        }

        struct RightBody: Encodable, Sendable {
            let right: IPRight
            enum CodingKeys: String, CodingKey {
                case id, type, office, number, status
                case normalizedNumber = "normalized_number"
                case kindCode = "kind_code"
                case filedOn = "filed_on"
                case grantedOn = "granted_on"
                case expiresOn = "expires_on"
            }
            func encode(to encoder: any Encoder) throws {
                var c = encoder.container(keyedBy: CodingKeys.self)
                try c.encode(right.id, forKey: .id)
                try c.encode(right.type, forKey: .type)
                try c.encode(right.office, forKey: .office)
                try c.encode(right.number, forKey: .number)
                try c.encode(right.normalizedNumber, forKey: .normalizedNumber)
                try c.encode(right.kindCode, forKey: .kindCode)
                try c.encode(right.status, forKey: .status)
                try c.encode(right.filedOn?.description, forKey: .filedOn)
                try c.encode(right.grantedOn?.description, forKey: .grantedOn)
                try c.encode(right.expiresOn?.description, forKey: .expiresOn)
            }
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(technology.id, forKey: .id)
            try c.encode(technology.ownerID, forKey: .ownerID)
            try c.encode(technology.title, forKey: .title)
            try c.encode(technology.summary, forKey: .summary)
            try c.encode(description, forKey: .description)
            try c.encode(technology.field, forKey: .field)
            try c.encode(technology.keywords, forKey: .keywords)
            try c.encode(technology.trl, forKey: .trl)
            try c.encode(technology.trlVerified, forKey: .trlVerified)
            try c.encode(technology.inventors, forKey: .inventors)
            try c.encode(technology.ipRights.map(RightBody.init), forKey: .ipRights)
            try c.encode(try technology.askingTerms.map(JSONValue.init) ?? .null, forKey: .askingTerms)
            try c.encode(technology.status.rawValue, forKey: .status)
            try c.encode(technology.version, forKey: .version)
            try c.encode(technology.createdAt, forKey: .createdAt)
            try c.encode(technology.updatedAt, forKey: .updatedAt)
        }
    }

    struct HistoryBody: Encodable, Sendable {
        let version: Int
        let event: String
        let actorID: UUID
        let changedAt: Date
        let changes: JSONValue

        enum CodingKeys: String, CodingKey {
            case version, event, changes
            case actorID = "actor_id"
            case changedAt = "changed_at"
        }
    }

    struct CreateVerification: RequestBody {
        static let knownFields: Set<String> = ["claim", "method", "result", "trl_evidenced", "report_sha256"]
        let claim: String
        let method: String
        let result: String
        let trlEvidenced: Int
        let reportSHA256: String?

        enum CodingKeys: String, CodingKey {
            case claim, method, result
            case trlEvidenced = "trl_evidenced"
            case reportSHA256 = "report_sha256"
        }
    }

    struct VerificationBody: Encodable, Sendable {
        let id: UUID
        let technologyID: UUID
        let verifierID: UUID
        let claim: String
        let method: String
        let result: String
        let trlEvidenced: Int
        let reportSHA256: String?
        let createdAt: Date

        init(_ verification: Verification) {
            id = verification.id
            technologyID = verification.technologyID
            verifierID = verification.verifierID
            claim = verification.claim
            method = verification.method
            result = verification.confirmed ? "confirmed" : "not_confirmed"
            trlEvidenced = verification.trlEvidenced
            reportSHA256 = verification.reportSHA256
            createdAt = verification.createdAt
        }

        enum CodingKeys: String, CodingKey {
            case id, claim, method, result
            case technologyID = "technology_id"
            case verifierID = "verifier_id"
            case trlEvidenced = "trl_evidenced"
            case reportSHA256 = "report_sha256"
            case createdAt = "created_at"
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(id, forKey: .id)
            try c.encode(technologyID, forKey: .technologyID)
            try c.encode(verifierID, forKey: .verifierID)
            try c.encode(claim, forKey: .claim)
            try c.encode(method, forKey: .method)
            try c.encode(result, forKey: .result)
            try c.encode(trlEvidenced, forKey: .trlEvidenced)
            try c.encode(reportSHA256, forKey: .reportSHA256)
            try c.encode(createdAt, forKey: .createdAt)
        }
    }

    // MARK: Routes

    /// Registers the routes on `router`, and the search on `reads` (the routes read from a standby).
    func register(on router: some RouterMethods<AppRequestContext>, reads: some RouterMethods<AppRequestContext>) {
        router.get("fields") { _, _ in
            try Reply.json(PageBody(data: try await technologies.fields().map { FieldBody(code: $0.code, nameEN: $0.nameEN, nameZH: $0.nameZH) }, nextCursor: nil)).response
        }
        router.post("technologies") { request, context in
            try await idempotency.run(request, context: context) { request, context in try await create(request, context) }
        }
        reads.get("technologies") { request, context in try await search(request, context).response }
        router.get("technologies/:id") { request, context in
            let (technology, identity) = try await visible(request, context)
            return try await reply(technology, identity).response
        }
        router.patch("technologies/:id") { request, context in try await update(request, context).response }
        router.get("technologies/:id/history") { request, context in try await history(request, context).response }
        router.post("technologies/:id/verifications") { request, context in try await verify(request, context).response }
        router.get("technologies/:id/verifications") { request, context in try await listVerifications(request, context).response }
        for transition in TechnologyTransition.allCases {
            router.post("technologies/:id/\(transition.rawValue)") { request, context in
                try await move(request, context, transition).response
            }
        }
    }

    @Sendable func create(_ request: Request, _ context: AppRequestContext) async throws -> Reply {
        let identity = try context.requireIdentity()
        var request = request
        let body = try await request.decode(CreateTechnology.self, maxBytes: maxBodyBytes)
        let ownerID: UUID
        switch identity.kind {
        case .operator:
            guard let requested = body.ownerID else { throw APIError.validation("owner_id", "is required when the operator registers for an institute") }
            guard let owner = try await organizations.get(requested), owner.kind == .institute else {
                throw APIError.validation("owner_id", "must be an institute")
            }
            ownerID = owner.id
        case .institute:
            if let requested = body.ownerID, requested != identity.organizationID {
                throw APIError(.forbidden, code: "forbidden", "an institute registers technologies only for itself")
            }
            ownerID = identity.organizationID
        default:
            throw APIError(.forbidden, code: "forbidden", "only institutes (or the operator for them) register technologies")
        }
        let title = try ClientText.trimmed(body.title, field: "title", max: 300)
        let summary = try ClientText.trimmed(body.summary, field: "summary", max: 5_000)
        let description = body.description ?? ""
        guard description.unicodeScalars.count <= 100_000 else { throw APIError.validation("description", "must be at most 100000 characters") }
        guard (1...9).contains(body.trl) else { throw APIError.validation("trl", "must be 1 to 9") }
        let keywords = try ClientText.keywords(body.keywords ?? [])
        let rights = try (body.ipRights ?? []).enumerated().map { try Self.right($1, field: "ip_rights[\($0)]") }
        guard rights.count <= 50 else { throw APIError.validation("ip_rights", "list at most 50 rights") }
        var new = NewTechnology(ownerID: ownerID, title: title, summary: summary, description: description, field: body.field,
                                keywords: keywords, trl: body.trl, inventors: body.inventors, ipRights: rights,
                                askingTerms: try Self.askingTerms(body.askingTerms))
        if let id = body.id { new.id = id }
        let technology: Technology
        do {
            technology = try await technologies.register(new, actor: identity.organizationID)
        } catch let taken as IPRightTaken {
            throw try await conflict(taken, identity)
        }
        var reply = try await reply(technology, identity, status: .created)
        reply.headers[.location] = "/v1/technologies/\(technology.id.uuidString.lowercased())"
        return reply
    }

    func search(_ request: Request, _ context: AppRequestContext) async throws -> Reply {
        let identity = try context.requireIdentity()
        let (limit, cursorText) = try request.page()
        let parameters = request.uri.queryParameters
        var query = TechnologyQuery()
        query.text = try request.searchText()
        query.field = try request.codeQuery("field")
        func trl(_ name: String) throws -> Int? {
            guard let text = parameters[Substring(name)] else { return nil }
            guard let value = Int(String(text)), (1...9).contains(value) else { throw APIError.validation(name, "must be 1 to 9") }
            return value
        }
        query.trlMin = try trl("trl_min")
        query.trlMax = try trl("trl_max")
        query.status = try request.enumQuery(TechnologyStatus.self, "status")
        query.subParkID = try request.uuidQuery("sub_park_id")
        query.ownerID = try request.uuidQuery("owner_id")
        let offset = try Cursor.offset(cursorText, max: Technologies.maxSearchOffset)
        let page = try await searches.search(query, visibleTo: identity, limit: limit, offset: offset)
        let next = Cursor.next(offset: page.nextOffset, max: Technologies.maxSearchOffset)
        let descriptions = try await confidentialDescriptions(page.items, identity)
        return try Reply.json(PageBody(data: zip(page.items, descriptions).map { TechnologyBody(technology: $0, description: $1) }, nextCursor: next))
    }

    func update(_ request: Request, _ context: AppRequestContext) async throws -> Reply {
        let (technology, identity) = try await owned(request, context)
        var request = request
        let body = try await request.decode(UpdateTechnology.self, maxBytes: maxBodyBytes)
        var changes = TechnologyChanges()
        changes.title = try body.title.map { try ClientText.trimmed($0, field: "title", max: 300) }
        changes.summary = try body.summary.map { try ClientText.trimmed($0, field: "summary", max: 5_000) }
        if let description = body.description {
            guard description.unicodeScalars.count <= 100_000 else { throw APIError.validation("description", "must be at most 100000 characters") }
            changes.description = description
        }
        changes.keywords = try body.keywords.map(ClientText.keywords)
        if let trl = body.trl {
            guard (1...9).contains(trl) else { throw APIError.validation("trl", "must be 1 to 9") }
            changes.trl = trl
        }
        changes.askingTerms = try Self.askingTerms(body.askingTerms)
        try request.requireIfMatch(Self.etag(technology))
        guard let updated = try await technologies.update(technology.id, changes, expectedVersion: technology.version, actor: identity.organizationID) else {
            throw APIError.notFound
        }
        return try await reply(updated, identity)
    }

    func move(_ request: Request, _ context: AppRequestContext, _ transition: TechnologyTransition) async throws -> Reply {
        let (technology, identity) = try await owned(request, context)
        guard let moved = try await technologies.transition(technology.id, transition, actor: identity.organizationID) else { throw APIError.notFound }
        return try await reply(moved, identity)
    }

    func history(_ request: Request, _ context: AppRequestContext) async throws -> Reply {
        let (technology, _) = try await visible(request, context)
        let entries = try await technologies.history(technology.id)
        return try Reply.json(PageBody(data: try entries.map {
            HistoryBody(version: $0.version, event: $0.event, actorID: $0.actorID, changedAt: $0.changedAt, changes: try JSONValue($0.changes))
        }, nextCursor: nil))
    }

    @Sendable func verify(_ request: Request, _ context: AppRequestContext) async throws -> Reply {
        let (technology, identity) = try await visible(request, context)
        guard identity.kind == .operator || (identity.kind == .institute && technology.ownerID != identity.organizationID) else {
            throw APIError(.forbidden, code: "forbidden", "verifications come from accredited labs: an institute other than the owner, or the operator")
        }
        var request = request
        let body = try await request.decode(CreateVerification.self, maxBytes: maxBodyBytes)
        let claim = try ClientText.trimmed(body.claim, field: "claim", max: 2_000)
        let method = try ClientText.trimmed(body.method, field: "method", max: 2_000)
        guard ["confirmed", "not_confirmed"].contains(body.result) else { throw APIError.validation("result", "must be confirmed or not_confirmed") }
        guard (1...9).contains(body.trlEvidenced) else { throw APIError.validation("trl_evidenced", "must be 1 to 9") }
        if let digest = body.reportSHA256, digest.range(of: "^[0-9a-f]{64}$", options: .regularExpression) == nil {
            throw APIError.validation("report_sha256", "must be 64 lower-case hex digits")
        }
        guard let verification = try await technologies.verify(
            technology.id, verifier: identity.organizationID, claim: claim, method: method, confirmed: body.result == "confirmed",
            trlEvidenced: body.trlEvidenced, reportSHA256: body.reportSHA256)
        else { throw APIError.notFound }
        return try Reply.json(VerificationBody(verification), status: .created)
    }

    func listVerifications(_ request: Request, _ context: AppRequestContext) async throws -> Reply {
        let (technology, _) = try await visible(request, context)
        return try Reply.json(PageBody(data: try await technologies.verifications(of: technology.id).map(VerificationBody.init), nextCursor: nil))
    }

    // MARK: Rules

    /// The technology named by `:id` if the caller may see it (or is a counterparty of a deal on
    /// it); 404 otherwise.
    func visible(_ request: Request, _ context: AppRequestContext) async throws -> (Technology, Identity) {
        let identity = try context.requireIdentity()
        guard let technology = try await technologies.get(request.uuidParameter("id", context)) else { throw APIError.notFound }
        let subParkID = try await organizations.subPark(of: technology.ownerID, seenBy: identity)
        if !identity.canSee(technology, ownerSubParkID: subParkID) {
            guard try await deals.counterpartyTechnologies(of: identity.organizationID, among: [technology.id]).contains(technology.id) else {
                throw APIError.notFound
            }
        }
        return (technology, identity)
    }

    /// The technology, if the caller owns it (or is the operator): 404 if invisible, 403 if visible only.
    func owned(_ request: Request, _ context: AppRequestContext) async throws -> (Technology, Identity) {
        let (technology, identity) = try await visible(request, context)
        guard identity.kind == .operator || technology.ownerID == identity.organizationID else {
            throw APIError(.forbidden, code: "forbidden", "only the owner changes a technology")
        }
        return (technology, identity)
    }

    /// Each technology's description if the caller may read it (nil otherwise): the owner, the
    /// committee, the operator, and the buyer or broker of a proposed (or later) deal on it. One
    /// query for the whole list, and none if the caller reads them all anyway.
    func confidentialDescriptions(_ technologies: [Technology], _ identity: Identity) async throws -> [String?] {
        let others = technologies.filter { !identity.canReadConfidential($0) }.map(\.id)
        let counterparty = try await deals.counterpartyTechnologies(of: identity.organizationID, among: others)
        return technologies.map { identity.canReadConfidential($0) || counterparty.contains($0.id) ? $0.description : nil }
    }

    func reply(_ technology: Technology, _ identity: Identity, status: HTTPResponse.Status = .ok) async throws -> Reply {
        var reply = try Reply.json(TechnologyBody(technology: technology, description: try await confidentialDescriptions([technology], identity)[0]), status: status)
        reply.headers[.eTag] = Self.etag(technology)
        return reply
    }

    /// 409 for an IP right another technology holds, naming it only if the caller may see it.
    func conflict(_ taken: IPRightTaken, _ identity: Identity) async throws -> APIError {
        let field = "ip_rights[\(taken.index)]"
        guard let holderID = taken.holderID else {
            return APIError(.conflict, code: "ip_right_taken", "\(field): the same right is listed twice", errors: [.init(field: field, message: "listed twice")])
        }
        var visibleHolder: UUID?
        if let holder = try await technologies.get(holderID) {
            let subParkID = try await organizations.subPark(of: holder.ownerID, seenBy: identity)
            if identity.canSee(holder, ownerSubParkID: subParkID) { visibleHolder = holder.id }
        }
        let detail = visibleHolder.map { "\(field): this right belongs to technology \($0.uuidString.lowercased())" }
            ?? "\(field): this right belongs to another technology"
        return APIError(.conflict, code: "ip_right_taken", detail, errors: [.init(field: field, message: "already registered")],
                        holderTechnologyID: visibleHolder)
    }

    static func etag(_ technology: Technology) -> String { versionETag(technology.version) }

    static func right(_ body: IPRightBody, field: String) throws -> IPRight {
        guard IPRight.types.contains(body.type) else { throw APIError.validation("\(field).type", "must be one of \(IPRight.types.joined(separator: ", "))") }
        guard body.office.utf8.count == 2, body.office.utf8.allSatisfy({ (65...90).contains($0) }) else {
            throw APIError.validation("\(field).office", "must be a WIPO ST.3 code such as CN")
        }
        let normalized = IPRight.normalize(number: body.number, office: body.office)
        guard (1...64).contains(body.number.unicodeScalars.count), (1...64).contains(normalized.count), normalized.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == ".") }) else {
            throw APIError.validation("\(field).number", "must be a right number such as CN 2020 1 0123456.7")
        }
        if let kind = body.kindCode, kind.range(of: "^[A-Z][0-9]?$", options: .regularExpression) == nil {
            throw APIError.validation("\(field).kind_code", "must be a WIPO ST.16 kind code such as A, B1 or U")
        }
        guard IPRight.statuses.contains(body.status) else { throw APIError.validation("\(field).status", "must be one of \(IPRight.statuses.joined(separator: ", "))") }
        func date(_ text: String?, _ name: String) throws -> PostgresDate? {
            guard let text else { return nil }
            guard let date = PostgresDate(iso8601: text) else { throw APIError.validation("\(field).\(name)", "must be a date such as 2020-03-31") }
            return date
        }
        let filed = try date(body.filedOn, "filed_on")
        let granted = try date(body.grantedOn, "granted_on")
        let expires = try date(body.expiresOn, "expires_on")
        if let filed, let granted, granted < filed { throw APIError.validation("\(field).granted_on", "must not be before filed_on") }
        if let filed, let expires, expires < filed { throw APIError.validation("\(field).expires_on", "must not be before filed_on") }
        return IPRight(type: body.type, office: body.office, number: body.number, kindCode: body.kindCode, status: body.status,
                       filedOn: filed, grantedOn: granted, expiresOn: expires)
    }

    static func askingTerms(_ body: AskingTermsBody?) throws -> JSONB? {
        guard let body else { return nil }
        for (index, kind) in body.dealKinds.enumerated() where !dealKinds.contains(kind) {
            throw APIError.validation("asking_terms.deal_kinds[\(index)]", "must be one of \(dealKinds.sorted().joined(separator: ", "))")
        }
        if body.priceMin != nil || body.priceMax != nil {
            guard let currency = body.currency, CurrencyCode(currency) != nil else {
                throw APIError.validation("asking_terms.currency", "must be an ISO 4217 code when a price is given")
            }
        }
        for (name, value) in [("price_min", body.priceMin), ("price_max", body.priceMax)] {
            if let value, !(0...LedgerController.maxAmount).contains(value) {
                throw APIError.validation("asking_terms.\(name)", "must be 0 to 2^53 minor units")
            }
        }
        if let low = body.priceMin, let high = body.priceMax, low > high {
            throw APIError.validation("asking_terms.price_max", "must not be below price_min")
        }
        return try JSONB(encoding: body)
    }
}
