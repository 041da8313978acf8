import Foundation
import Hummingbird
import TechBank

/// `/v1/webhooks`: an organization's endpoints for events (Standard Webhooks 1.0) and what they
/// were sent. Every organization manages its own; another's is 404 everywhere.
struct WebhookController: Sendable {
    let webhooks: Webhooks
    let idempotency: Idempotency
    let maxBodyBytes: Int

    struct CreateWebhook: RequestBody {
        static let knownFields: Set<String> = ["url", "event_types", "description"]
        let url: String
        let eventTypes: [String]
        let description: String?

        enum CodingKeys: String, CodingKey {
            case url, description
            case eventTypes = "event_types"
        }
    }

    struct UpdateWebhook: RequestBody {
        static let knownFields: Set<String> = ["url", "event_types", "enabled"]
        let url: String?
        let eventTypes: [String]?
        let enabled: Bool?

        enum CodingKeys: String, CodingKey {
            case url, enabled
            case eventTypes = "event_types"
        }
    }

    struct WebhookBody: Encodable, Sendable {
        let webhook: Webhook
        /// Only in the answers that make one.
        let secret: String?

        enum CodingKeys: String, CodingKey {
            case id, url, description, enabled, secret
            case organizationID = "organization_id"
            case eventTypes = "event_types"
            case createdAt = "created_at"
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(webhook.id, forKey: .id)
            try c.encode(webhook.organizationID, forKey: .organizationID)
            try c.encode(webhook.url, forKey: .url)
            try c.encode(webhook.eventTypes, forKey: .eventTypes)
            try c.encode(webhook.description, forKey: .description)
            try c.encode(webhook.enabled, forKey: .enabled)
            try c.encode(webhook.createdAt, forKey: .createdAt)
            try c.encodeIfPresent(secret, forKey: .secret)
        }
    }

    struct SecretBody: Encodable, Sendable {
        let secret: String
    }

    struct DeliveryBody: Encodable, Sendable {
        let delivery: WebhookDelivery

        enum CodingKeys: String, CodingKey {
            case id, status, attempts
            case eventSeq = "event_seq"
            case eventType = "event_type"
            case lastStatusCode = "last_status_code"
            case lastError = "last_error"
            case nextAttemptAt = "next_attempt_at"
            case createdAt = "created_at"
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(delivery.id, forKey: .id)
            try c.encode(delivery.eventSeq, forKey: .eventSeq)
            try c.encode(delivery.eventType, forKey: .eventType)
            try c.encode(delivery.status.rawValue, forKey: .status)
            try c.encode(delivery.attempts, forKey: .attempts)
            try c.encode(delivery.lastStatusCode, forKey: .lastStatusCode)
            try c.encode(delivery.lastError, forKey: .lastError)
            try c.encode(delivery.nextAttemptAt, forKey: .nextAttemptAt)
            try c.encode(delivery.createdAt, forKey: .createdAt)
        }
    }

    func register(on router: some RouterMethods<AppRequestContext>) {
        router.post("webhooks") { request, context in
            try await idempotency.run(request, context: context) { request, context in try await create(request, context) }
        }
        router.get("webhooks") { request, context in try await list(request, context).response }
        router.get("webhooks/:id") { request, context in
            let webhook = try await own(request, context)
            var reply = try Reply.json(WebhookBody(webhook: webhook, secret: nil))
            reply.headers[.eTag] = versionETag(webhook.version)
            return reply.response
        }
        router.patch("webhooks/:id") { request, context in try await update(request, context).response }
        router.delete("webhooks/:id") { request, context in
            let identity = try context.requireIdentity()
            guard try await webhooks.delete(try request.uuidParameter("id", context), of: identity.organizationID) else { throw APIError.notFound }
            return Response(status: .noContent)
        }
        router.post("webhooks/:id/rotate-secret") { request, context in
            let identity = try context.requireIdentity()
            guard let secret = try await webhooks.rotateSecret(try request.uuidParameter("id", context), of: identity.organizationID) else { throw APIError.notFound }
            return try Reply.json(SecretBody(secret: secret)).response
        }
        router.get("webhooks/:id/deliveries") { request, context in try await deliveries(request, context).response }
        router.post("webhooks/:id/deliveries/:delivery_id/retry") { request, context in
            let identity = try context.requireIdentity()
            guard let delivery = try await webhooks.retry(try request.uuidParameter("delivery_id", context), of: try request.uuidParameter("id", context),
                                                          organizationID: identity.organizationID) else { throw APIError.notFound }
            return try Reply.json(DeliveryBody(delivery: delivery)).response
        }
    }

    @Sendable func create(_ request: Request, _ context: AppRequestContext) async throws -> Reply {
        let identity = try context.requireIdentity()
        var request = request
        let body = try await request.decode(CreateWebhook.self, maxBytes: maxBodyBytes)
        let description = try body.description.map { try ClientText.trimmed($0, field: "description", max: 500) }
        let (webhook, secret) = try await webhooks.create(for: identity.organizationID, url: body.url, eventTypes: body.eventTypes, description: description)
        var reply = try Reply.json(WebhookBody(webhook: webhook, secret: secret), status: .created)
        reply.headers[.location] = "/v1/webhooks/\(webhook.id.uuidString.lowercased())"
        reply.headers[.eTag] = versionETag(webhook.version)
        return reply
    }

    func list(_ request: Request, _ context: AppRequestContext) async throws -> Reply {
        let identity = try context.requireIdentity()
        let (limit, cursor) = try request.page()
        let page = try await webhooks.list(of: identity.organizationID, limit: limit, after: try cursor.map(TimeCursor.decode))
        return try Reply.json(PageBody(data: page.items.map { WebhookBody(webhook: $0, secret: nil) }, nextCursor: page.next.map(TimeCursor.encode)))
    }

    func update(_ request: Request, _ context: AppRequestContext) async throws -> Reply {
        let webhook = try await own(request, context)
        var request = request
        let body = try await request.decode(UpdateWebhook.self, maxBytes: maxBodyBytes)
        try request.requireIfMatch(versionETag(webhook.version))
        guard let updated = try await webhooks.update(webhook.id, of: webhook.organizationID, expectedVersion: webhook.version,
                                                      WebhookChanges(url: body.url, eventTypes: body.eventTypes, enabled: body.enabled)) else {
            throw APIError.notFound
        }
        var reply = try Reply.json(WebhookBody(webhook: updated, secret: nil))
        reply.headers[.eTag] = versionETag(updated.version)
        return reply
    }

    func deliveries(_ request: Request, _ context: AppRequestContext) async throws -> Reply {
        let identity = try context.requireIdentity()
        let (limit, cursor) = try request.page()
        guard let page = try await webhooks.deliveries(of: try request.uuidParameter("id", context), organizationID: identity.organizationID,
                                                       limit: limit, after: try cursor.map(TimeCursor.decode)) else { throw APIError.notFound }
        return try Reply.json(PageBody(data: page.items.map(DeliveryBody.init), nextCursor: page.next.map(TimeCursor.encode)))
    }

    /// The caller's own endpoint named in the path; 404 otherwise.
    func own(_ request: Request, _ context: AppRequestContext) async throws -> Webhook {
        let identity = try context.requireIdentity()
        guard let webhook = try await webhooks.get(try request.uuidParameter("id", context), of: identity.organizationID) else { throw APIError.notFound }
        return webhook
    }
}
