import Crypto
import Foundation
import Ledger
import Logging
import NIOCore
import Postgres
import ServiceLifecycle
import Synchronization
import TechBank

/// Webhook settings of a server.
public struct WebhookSettings: Sendable {
    /// Seals the endpoints' signing secrets (`techbank serve` keeps the key in a file next to the
    /// audit key); by default a key of this process's own.
    public var secrets = WebhookSecrets.ephemeral()
    /// `http` URLs and private addresses allowed (`TECHBANK_WEBHOOK_ALLOW_PRIVATE_NETWORKS`).
    public var allowPrivateNetworks = false
    /// Delays before each retry of a failed attempt; after the last, the delivery has failed.
    public var retrySchedule: [Duration] = [5, 300, 1_800, 7_200, 18_000, 36_000, 36_000].map { .seconds($0) }
    /// Attempts running at once, in all and per endpoint.
    public var maxConcurrent = 16
    public var maxConcurrentPerEndpoint = 4
    /// How often the outbox is looked at.
    public var poll: Duration = .milliseconds(250)

    public init() {}

    /// Parses `TECHBANK_WEBHOOK_RETRY_SECONDS`: 1 to 20 comma-separated delays of 1 to 86,400 s.
    public static func retrySchedule(_ text: String) -> [Duration]? {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard (1...20).contains(parts.count), parts.allSatisfy({ $0.map { (1...86_400).contains($0) } ?? false }) else { return nil }
        return parts.compactMap { $0 }.map { .seconds($0) }
    }
}

/// Delivers what the webhooks are owed: dispatches new journal events into deliveries, claims
/// the due ones and posts each, signed per Standard Webhooks 1.0, with bounded concurrency (one
/// slow endpoint holds at most `maxConcurrentPerEndpoint` of the `maxConcurrent` slots).
public struct WebhookDeliverer: Service {
    let webhooks: Webhooks
    let audit: AuditLog
    let settings: WebhookSettings
    let logger: Logger
    /// Attempts running, per endpoint.
    private let inFlight = CountsByID()

    public init(pool: PostgresPool, settings: WebhookSettings, logger: Logger) {
        self.webhooks = Webhooks(pool: pool, secrets: settings.secrets, allowPrivateNetworks: settings.allowPrivateNetworks)
        self.audit = AuditLog(pool: pool)
        self.settings = settings
        self.logger = logger
    }

    public func run() async throws {
        let clock = ContinuousClock()
        var dispatched = clock.now - settings.poll
        await withDiscardingTaskGroup { group in
            while !Task.isCancelled, !Task.isShuttingDownGracefully {
                // New events are looked for every `poll`; due deliveries as soon as a slot frees.
                let dispatch = clock.now - dispatched >= settings.poll
                if dispatch { dispatched = clock.now }
                let due = await dueDeliveries(dispatching: dispatch)
                for delivery in due {
                    group.addTask { await attempt(delivery) }
                }
                let busy = due.count > 0 || inFlight.snapshot(atLeast: settings.maxConcurrentPerEndpoint).total > 0
                try? await Task.sleep(for: busy ? .milliseconds(5) : settings.poll)
            }
        }
    }

    /// One pass: dispatch new events (if `dispatching`), then claim what fits in the free slots.
    /// For tests, which drive it.
    func dueDeliveries(dispatching: Bool = true) async -> [DueDelivery] {
        do {
            if dispatching { try await webhooks.dispatch() }
            let (running, full) = inFlight.snapshot(atLeast: settings.maxConcurrentPerEndpoint)
            let due = try await webhooks.claim(limit: max(0, settings.maxConcurrent - running), perEndpoint: settings.maxConcurrentPerEndpoint, excluding: full)
            for delivery in due { inFlight.add(delivery.webhookID) }
            return due
        } catch {
            logger.error("webhook outbox", metadata: ["error": "\(error)"])
            return []
        }
    }

    /// Posts `delivery` once and records what came of it.
    func attempt(_ delivery: DueDelivery) async {
        defer { inFlight.remove(delivery.webhookID) }
        var status: Int?
        var failure: String?
        do {
            guard let entry = try await audit.entry(delivery.eventSeq), let url = URL(string: delivery.url) else {
                throw WebhookPoster.Failure(description: "the event or the URL is gone")
            }
            let body = try Reply.json(WebhookPayload(entry: entry)).body
            let timestamp = Int(Date().timeIntervalSince1970)
            let headers = [
                ("webhook-id", delivery.id.uuidString.lowercased()),
                ("webhook-timestamp", String(timestamp)),
                ("webhook-signature", Self.signatures(id: delivery.id.uuidString.lowercased(), timestamp: timestamp, body: body, secrets: delivery.secrets)),
            ]
            status = try await WebhookPoster(allowPrivateNetworks: settings.allowPrivateNetworks).post(url, headers: headers, body: ByteBuffer(bytes: body))
            if let status, !(200...299).contains(status) { failure = "answered \(status)" }
        } catch {
            failure = "\(error)"
        }
        do {
            try await webhooks.record(delivery, statusCode: status, error: failure, retrySchedule: settings.retrySchedule)
        } catch {
            // The attempt's lease runs out and the delivery is claimed again: at least once.
            logger.error("cannot record a webhook attempt", metadata: ["delivery": "\(delivery.id)", "error": "\(error)"])
        }
    }

    /// `webhook-signature`: `v1,` and the base64 HMAC-SHA256 of `id.timestamp.body` with each secret.
    static func signatures(id: String, timestamp: Int, body: Data, secrets: [Data]) -> String {
        let signed = Data("\(id).\(timestamp).".utf8) + body
        return secrets.map { secret in
            "v1," + Data(HMAC<SHA256>.authenticationCode(for: signed, using: SymmetricKey(data: secret))).base64EncodedString()
        }.joined(separator: " ")
    }
}

/// What a delivery's body holds: the event's type, its time, and the event as
/// `GET /v1/audit/events/{seq}` shows it.
struct WebhookPayload: Encodable, Sendable {
    let entry: AuditLog.Entry

    enum CodingKeys: String, CodingKey { case type, timestamp, data }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(entry.eventType, forKey: .type)
        try c.encode(entry.createdAt, forKey: .timestamp)
        try c.encode(AuditController.EventBody(entry: entry), forKey: .data)
    }
}
