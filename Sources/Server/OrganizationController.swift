import Foundation
import Hummingbird
import TechBank

/// `/v1/organizations` and their API keys, and `/v1/sub-parks/{id}/activity`: a sub-park's view
/// of its members' registry activity.
struct OrganizationController: Sendable {
    let organizations: Organizations
    /// Where the sub-parks' activity reads: the standby's store when the server has one.
    let activities: Organizations
    let idempotency: Idempotency
    let maxBodyBytes: Int

    /// The longest period an activity report covers, in days.
    static let maxActivityDays: Int32 = 3_660

    struct OrganizationBody: Encodable, Sendable {
        let id: UUID
        let name: String
        let kind: String
        let subParkID: UUID?
        let country: String
        let createdAt: Date

        init(_ organization: Organization) {
            id = organization.id
            name = organization.name
            kind = organization.kind.rawValue
            subParkID = organization.subParkID
            country = organization.country
            createdAt = organization.createdAt
        }

        enum CodingKeys: String, CodingKey {
            case id, name, kind, country
            case subParkID = "sub_park_id"
            case createdAt = "created_at"
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(id, forKey: .id)
            try container.encode(name, forKey: .name)
            try container.encode(kind, forKey: .kind)
            try container.encode(subParkID, forKey: .subParkID)
            try container.encode(country, forKey: .country)
            try container.encode(createdAt, forKey: .createdAt)
        }
    }

    struct CreateOrganization: RequestBody {
        static let knownFields: Set<String> = ["id", "name", "kind", "sub_park_id", "country"]
        let id: UUID?
        let name: String
        let kind: String
        let subParkID: UUID?
        let country: String

        enum CodingKeys: String, CodingKey {
            case id, name, kind, country
            case subParkID = "sub_park_id"
        }
    }

    struct RenameOrganization: RequestBody {
        static let knownFields: Set<String> = ["name"]
        let name: String
    }

    struct CreateKey: RequestBody {
        static let knownFields: Set<String> = ["label"]
        let label: String?
    }

    struct KeyBody: Encodable, Sendable {
        let id: UUID
        let organizationID: UUID
        let label: String?
        let createdAt: Date
        let revokedAt: Date?
        /// The secret: present only in the response that created the key.
        let key: String?

        enum CodingKeys: String, CodingKey {
            case id, label, key
            case organizationID = "organization_id"
            case createdAt = "created_at"
            case revokedAt = "revoked_at"
        }
    }

    struct CountsBody: Encodable, Sendable {
        let total: Int
        let byField: [String: Int]
        let byStatus: [String: Int]

        enum CodingKeys: String, CodingKey {
            case total
            case byField = "by_field"
            case byStatus = "by_status"
        }
    }

    struct ActivityBody: Encodable, Sendable {
        let subParkID: UUID
        let from: String
        let to: String
        let members: Int
        let technologies: CountsBody
        let demands: CountsBody
        let matches: CountsBody

        enum CodingKeys: String, CodingKey {
            case from, to, members, technologies, demands, matches
            case subParkID = "sub_park_id"
        }
    }

    /// Registers the routes on `router`, and the sub-parks' activity on `reads` (the routes read
    /// from a standby).
    func register(on router: some RouterMethods<AppRequestContext>, reads: some RouterMethods<AppRequestContext>) {
        router.post("organizations") { request, context in
            try await idempotency.run(request, context: context) { request, context in try await create(request, context) }
        }
        router.get("me") { request, context in try await me(request, context).response }
        router.get("organizations") { request, context in try await list(request, context).response }
        router.get("organizations/:id") { request, context in try await get(request, context).response }
        router.patch("organizations/:id") { request, context in try await rename(request, context).response }
        router.post("organizations/:id/api-keys") { request, context in try await issueKey(request, context).response }
        router.get("organizations/:id/api-keys") { request, context in try await listKeys(request, context).response }
        router.delete("organizations/:id/api-keys/:key_id") { request, context in try await revokeKey(request, context) }
        reads.get("sub-parks/:id/activity") { request, context in try await activity(request, context).response }
    }

    @Sendable func create(_ request: Request, _ context: AppRequestContext) async throws -> Reply {
        guard try context.requireIdentity().kind == .operator else { throw APIError.forbidden }
        var request = request
        let body = try await request.decode(CreateOrganization.self, maxBytes: maxBodyBytes)
        let name = try ClientText.trimmed(body.name, field: "name", max: 200)
        guard let kind = OrganizationKind(rawValue: body.kind), OrganizationKind.creatable.contains(kind) else {
            throw APIError.validation("kind", "must be one of \(OrganizationKind.creatable.map(\.rawValue).joined(separator: ", "))")
        }
        guard body.country.utf8.count == 2, body.country.utf8.allSatisfy({ (65...90).contains($0) }) else {
            throw APIError.validation("country", "must be an ISO 3166-1 alpha-2 code such as CN")
        }
        if body.subParkID != nil, kind != .institute, kind != .enterprise {
            throw APIError.validation("sub_park_id", "only institutes and enterprises belong to a sub-park")
        }
        let organization = try await organizations.create(id: body.id ?? UUID(), name: name, kind: kind, subParkID: body.subParkID, country: body.country)
        var reply = try Reply.json(OrganizationBody(organization), status: .created)
        reply.headers[.location] = "/v1/organizations/\(organization.id.uuidString.lowercased())"
        reply.headers[.eTag] = Self.etag(organization)
        return reply
    }

    struct MeBody: Encodable, Sendable {
        let organization: OrganizationBody
        let keyID: UUID

        enum CodingKeys: String, CodingKey {
            case organization
            case keyID = "key_id"
        }
    }

    /// Who the key belongs to: its organization and the key's id.
    func me(_ request: Request, _ context: AppRequestContext) async throws -> Reply {
        let identity = try context.requireIdentity()
        guard let organization = try await organizations.get(identity.organizationID) else { throw APIError.unauthorized }
        return try Reply.json(MeBody(organization: OrganizationBody(organization), keyID: identity.keyID))
    }

    func get(_ request: Request, _ context: AppRequestContext) async throws -> Reply {
        let organization = try await visibleOrganization(request, context)
        var reply = try Reply.json(OrganizationBody(organization))
        reply.headers[.eTag] = Self.etag(organization)
        return reply
    }

    func list(_ request: Request, _ context: AppRequestContext) async throws -> Reply {
        let identity = try context.requireIdentity()
        let (limit, cursorText) = try request.page()
        let kind = try request.enumQuery(OrganizationKind.self, "kind")
        let subParkID = try request.uuidQuery("sub_park_id")
        let cursor = try cursorText.map { text in
            guard let id = UUID(uuidString: try Cursor.decode(text)) else { throw Cursor.invalid }
            return id
        }
        let page = try await organizations.list(visibleTo: identity, kind: kind, subParkID: subParkID, limit: limit, after: cursor)
        return try Reply.json(PageBody(data: page.items.map(OrganizationBody.init), nextCursor: page.next.map { Cursor.encode($0.uuidString) }))
    }

    func rename(_ request: Request, _ context: AppRequestContext) async throws -> Reply {
        let organization = try await visibleOrganization(request, context)
        guard try context.requireIdentity().kind == .operator else { throw APIError.forbidden }
        var request = request
        let body = try await request.decode(RenameOrganization.self, maxBytes: maxBodyBytes)
        let name = try ClientText.trimmed(body.name, field: "name", max: 200)
        try request.requireIfMatch(Self.etag(organization))
        guard let updated = try await organizations.rename(organization.id, to: name, expectedVersion: organization.version) else {
            throw APIError.notFound
        }
        var reply = try Reply.json(OrganizationBody(updated))
        reply.headers[.eTag] = Self.etag(updated)
        return reply
    }

    func issueKey(_ request: Request, _ context: AppRequestContext) async throws -> Reply {
        let organization = try await operatorOnly(request, context)
        var request = request
        let body = try await request.decode(CreateKey.self, maxBytes: maxBodyBytes)
        if let label = body.label, label.unicodeScalars.count > 200 { throw APIError.validation("label", "must be at most 200 characters") }
        let (key, secret) = try await organizations.issueKey(for: organization.id, label: body.label)
        return try Reply.json(KeyBody(id: key.id, organizationID: key.organizationID, label: key.label, createdAt: key.createdAt, revokedAt: nil, key: secret), status: .created)
    }

    func listKeys(_ request: Request, _ context: AppRequestContext) async throws -> Reply {
        let organization = try await operatorOnly(request, context)
        let (limit, cursor) = try request.page()
        let page = try await organizations.keys(of: organization.id, limit: limit, after: try cursor.map(TimeCursor.decode))
        return try Reply.json(PageBody(data: page.items.map {
            KeyBody(id: $0.id, organizationID: $0.organizationID, label: $0.label, createdAt: $0.createdAt, revokedAt: $0.revokedAt, key: nil)
        }, nextCursor: page.next.map(TimeCursor.encode)))
    }

    func revokeKey(_ request: Request, _ context: AppRequestContext) async throws -> Response {
        let organization = try await operatorOnly(request, context)
        let keyID = try request.uuidParameter("key_id", context)
        guard try await organizations.revokeKey(keyID, of: organization.id) else { throw APIError.notFound }
        return Response(status: .noContent)
    }

    /// The organization named by `:id`, if the caller may see it; 404 otherwise.
    func visibleOrganization(_ request: Request, _ context: AppRequestContext) async throws -> Organization {
        let identity = try context.requireIdentity()
        let id = try request.uuidParameter("id", context)
        guard let organization = try await organizations.get(id),
              identity.canSee(organizationID: organization.id, memberOf: organization.subParkID)
        else { throw APIError.notFound }
        return organization
    }

    /// For operator-only routes under an organization: 404 if the caller cannot see it, 403 if it can.
    func operatorOnly(_ request: Request, _ context: AppRequestContext) async throws -> Organization {
        let organization = try await visibleOrganization(request, context)
        guard try context.requireIdentity().kind == .operator else { throw APIError.forbidden }
        return organization
    }

    static func etag(_ organization: Organization) -> String { versionETag(organization.version) }

    func activity(_ request: Request, _ context: AppRequestContext) async throws -> Reply {
        let identity = try context.requireIdentity()
        let id = try request.uuidParameter("id", context)
        guard identity.readsEverything || identity.organizationID == id, let subPark = try await activities.get(id), subPark.kind == .subPark else {
            throw APIError.notFound
        }
        let (from, to) = try request.period(maxDays: Self.maxActivityDays)
        let activity = try await activities.activity(ofSubPark: id, from: from, through: to)
        func counts(_ counts: SubParkActivity.Counts) -> CountsBody { CountsBody(total: counts.total, byField: counts.byField, byStatus: counts.byStatus) }
        return try Reply.json(ActivityBody(subParkID: id, from: from.description, to: to.description, members: activity.members,
                                           technologies: counts(activity.technologies), demands: counts(activity.demands),
                                           matches: counts(activity.matches)))
    }

}
