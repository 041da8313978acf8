import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
@testable import Server
import Synchronization
import TechBank
import Testing
import TestSupport

/// A receiver of webhooks on a real local port: it keeps every request and answers with the
/// status `answer` picks for it.
final class Receiver: Sendable {
    struct Received: Sendable {
        let headers: HTTPFields
        let body: Data
        var id: String { headers[HTTPField.Name("webhook-id")!] ?? "" }
        var json: JSON { JSON.parse(body) }
    }

    private let state = Mutex<[Received]>([])
    let answer: @Sendable (Received, _ earlierWithSameID: Int) -> HTTPResponse.Status
    /// How long it takes to answer.
    let delay: Duration

    init(delay: Duration = .zero, answer: @escaping @Sendable (Received, Int) -> HTTPResponse.Status = { _, _ in .noContent }) {
        self.delay = delay
        self.answer = answer
    }

    var received: [Received] { state.withLock { $0 } }

    /// Runs `body` with the receiver listening; gives it the receiver's base URL.
    func listening(_ body: @escaping @Sendable (String) async throws -> Void) async throws {
        let router = Router()
        router.post("hook") { request, _ -> Response in
            var request = request
            let data = Data(buffer: try await request.collectBody(upTo: 1 << 20))
            try await Task.sleep(for: self.delay)
            let received = Received(headers: request.headers, body: data)
            let earlier = self.state.withLock { list in
                defer { list.append(received) }
                return list.filter { $0.id == received.id }.count
            }
            return Response(status: self.answer(received, earlier))
        }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)), logger: TestDatabase.logger)
        try await app.test(.live) { client in
            try await body("http://127.0.0.1:\(try #require(client.port))")
        }
    }
}

@Suite("API: webhooks")
struct WebhookTests {
    /// The test's own check of a Standard Webhooks signature: HMAC-SHA256 of `id.timestamp.body`
    /// with the secret's bytes, base64 — computed here, not by TechBank's code.
    static func signature(_ received: Receiver.Received, secret: String) throws -> String {
        let key = try #require(Data(base64Encoded: String(secret.dropFirst("whsec_".count))))
        let id = try #require(received.headers[HTTPField.Name("webhook-id")!])
        let timestamp = try #require(received.headers[HTTPField.Name("webhook-timestamp")!])
        let mac = HMAC<SHA256>.authenticationCode(for: Data("\(id).\(timestamp).".utf8) + received.body, using: SymmetricKey(data: key))
        return "v1," + Data(mac).base64EncodedString()
    }

    static func signatures(_ received: Receiver.Received) -> [String] {
        (received.headers[HTTPField.Name("webhook-signature")!] ?? "").split(separator: " ").map(String.init)
    }

    /// Local receivers allowed, retries at once.
    static var localSettings: WebhookSettings {
        var settings = WebhookSettings()
        settings.allowPrivateNetworks = true
        settings.retrySchedule = [.zero, .zero]
        return settings
    }

    /// Runs the deliverer's passes until `done` or 10 s.
    static func deliver(_ deliverer: WebhookDeliverer, until done: () -> Bool) async {
        for _ in 0..<200 where !done() {
            for delivery in await deliverer.dueDeliveries() { await deliverer.attempt(delivery) }
            try? await Task.sleep(for: .milliseconds(50))
        }
        #expect(done(), "the deliveries did not arrive")
    }

    @Test("an organization manages its own webhooks: the secret is shown once and stored sealed; another organization's are 404")
    func subscriptions() async throws {
        try await withAPI { api in
            let (a, b) = (try await api.createOrganization("A", kind: "broker"), try await api.createOrganization("B", kind: "broker"))
            let created = try await api.call(.post, "/v1/webhooks", key: a.key,
                                             json: ["url": "https://hooks.example.com/techbank?token=receivers-own", "event_types": ["transfer", "deal_signed"], "description": "CRM"])
            #expect(created.status == .created, "\(created)")
            let id = try #require(created.json["id"].string)
            let secret = try #require(created.json["secret"].string)
            #expect(secret.hasPrefix("whsec_") && (Data(base64Encoded: String(secret.dropFirst(6)))?.count ?? 0) >= 24)
            #expect(created.headers[.location] == "/v1/webhooks/\(id)")
            #expect(created.json["event_types"] == .array([.string("deal_signed"), .string("transfer")]))
            #expect(created.json["enabled"] == .bool(true))

            // The journal names where it points, not the query (a receiver's token may be there).
            let journaled = try await api.call(.get, "/v1/audit/events?type=webhook_created", key: a.key).json["data"].array
            #expect(journaled.count == 1 && journaled.first?["payload"]["url"] == .string("https://hooks.example.com/techbank"), "\(journaled)")
            let read = try await api.call(.get, "/v1/webhooks/\(id)", key: a.key)
            #expect(read.json["url"] == .string("https://hooks.example.com/techbank?token=receivers-own"))
            #expect(read.status == .ok && read.json["secret"] == .missing, "the secret is never shown again")
            #expect(try await api.call(.get, "/v1/webhooks", key: a.key).json["data"].array.count == 1)
            #expect(try await api.call(.get, "/v1/webhooks", key: b.key).json["data"].array.isEmpty)

            // Stored sealed: the database holds neither the text nor the bytes of the secret.
            let stored = try await api.pool.withConnection { connection in
                try await connection.query("SELECT secret FROM techbank.webhooks WHERE id = $1", [UUID(uuidString: id)!])[0].decode(Data.self, at: 0)
            }
            let bytes = try #require(Data(base64Encoded: String(secret.dropFirst(6))))
            #expect(stored.range(of: bytes) == nil && stored.range(of: Data(secret.utf8)) == nil)

            // Another organization: 404 everywhere, exactly like an id that does not exist.
            for (method, path) in [(HTTPRequest.Method.get, "/v1/webhooks/\(id)"), (.delete, "/v1/webhooks/\(id)"), (.post, "/v1/webhooks/\(id)/rotate-secret"),
                                   (.get, "/v1/webhooks/\(id)/deliveries"), (.post, "/v1/webhooks/\(id)/deliveries/\(newID())/retry")] {
                expectProblem(try await api.call(method, path, key: b.key), .notFound, "not_found")
            }
            expectProblem(try await api.call(.patch, "/v1/webhooks/\(id)", key: b.key, json: ["enabled": false], headers: [.ifMatch: "\"v1\""]),
                          .notFound, "not_found")

            // PATCH with If-Match.
            expectProblem(try await api.call(.patch, "/v1/webhooks/\(id)", key: a.key, json: ["enabled": false]), .preconditionRequired, "precondition_required")
            let etag = try #require(read.headers[.eTag])
            let patched = try await api.call(.patch, "/v1/webhooks/\(id)", key: a.key, json: ["enabled": false, "event_types": ["*"]], headers: [.ifMatch: etag])
            #expect(patched.status == .ok && patched.json["enabled"] == .bool(false) && patched.json["event_types"] == .array([.string("*")]), "\(patched)")
            expectProblem(try await api.call(.patch, "/v1/webhooks/\(id)", key: a.key, json: ["enabled": true], headers: [.ifMatch: etag]),
                          .preconditionFailed, "precondition_failed")

            let rotated = try await api.call(.post, "/v1/webhooks/\(id)/rotate-secret", key: a.key)
            #expect(rotated.status == .ok && rotated.json["secret"].string?.hasPrefix("whsec_") == true && rotated.json["secret"].string != secret)
            #expect(try await api.call(.delete, "/v1/webhooks/\(id)", key: a.key).status == .noContent)
            expectProblem(try await api.call(.get, "/v1/webhooks/\(id)", key: a.key), .notFound, "not_found")
            expectProblem(try await api.call(.delete, "/v1/webhooks/\(id)", key: a.key), .notFound, "not_found")
            #expect(try await api.call(.get, "/v1/webhooks", key: a.key).json["data"].array.isEmpty)
            let deleted = try await api.call(.get, "/v1/audit/events?type=webhook_deleted", key: a.key).json["data"].array
            #expect(deleted.count == 1 && deleted.first?["subject_id"] == .string(id), "its organization still reads that it deleted it: \(deleted)")
            let wiped = try await api.pool.withConnection { connection in
                try await connection.query("SELECT octet_length(secret) FROM techbank.webhooks WHERE id = $1", [UUID(uuidString: id)!])[0].decode(Int.self, at: 0)
            }
            #expect(wiped == 0, "a deleted webhook keeps no secret")
        }
    }

    @Test("webhook URLs are https to public hosts; event types are the journal's", arguments: [
        ("http://hooks.example.com/x", "url"), ("ftp://hooks.example.com/x", "url"), ("https://127.0.0.1/x", "url"), ("https://10.1.2.3/x", "url"),
        ("https://[::1]/x", "url"), ("https://169.254.169.254/latest", "url"), ("https://[::ffff:192.168.0.1]/x", "url"),
        ("https://user:pass@hooks.example.com/x", "url"), ("not a url", "url"), ("https:///x", "url"),
    ])
    func urlsAreChecked(url: String, field: String) async throws {
        try await withAPI { api in
            let org = try await api.createOrganization("A", kind: "institute")
            let response = try await api.call(.post, "/v1/webhooks", key: org.key, json: ["url": url, "event_types": ["transfer"]])
            expectInvalid(response, field)
        }
    }

    @Test("unknown event types, or none, are refused naming the field")
    func eventTypesAreChecked() async throws {
        try await withAPI { api in
            let org = try await api.createOrganization("A", kind: "institute")
            expectInvalid(try await api.call(.post, "/v1/webhooks", key: org.key, json: ["url": "https://h.example.com/", "event_types": ["transfer", "teleport"]]),
                          "event_types[1]")
            expectInvalid(try await api.call(.post, "/v1/webhooks", key: org.key, json: ["url": "https://h.example.com/", "event_types": [String]()]), "event_types")
            expectInvalid(try await api.call(.post, "/v1/webhooks", key: org.key, json: ["url": "https://h.example.com/", "event_types": ["*", "transfer"]]),
                          "event_types[0]")
        }
    }

    @Test("the document lists exactly the event types a webhook may subscribe to")
    func documentedEventTypes() throws {
        let schemas = try #require((try OpenAPITests.document()["components"] as? [String: Any])?["schemas"] as? [String: Any])
        let documented = try #require((schemas["WebhookEventType"] as? [String: Any])?["enum"] as? [String])
        #expect(Set(documented) == JournalEventTypes.all)
    }

    @Test("a host that resolves to a loopback address is never contacted, however the URL names it")
    func privateAddressesAreRefusedAfterResolution() async throws {
        let receiver = Receiver()
        try await receiver.listening { base in
            try await TestDatabase.withPool(template: .techbank) { pool in
                var settings = Self.localSettings
                settings.allowPrivateNetworks = false
                let deliverer = WebhookDeliverer(pool: pool, settings: settings, logger: TestDatabase.logger)
                try await withAPI(on: pool, configure: { $0.webhooks = settings }) { api in
                    let org = try await api.createOrganization("A", kind: "enterprise")
                    // `localhost` is a name, so the URL is accepted; what it resolves to is checked at every delivery.
                    let port = try #require(URL(string: base)?.port)
                    let created = try await api.call(.post, "/v1/webhooks", key: org.key, json: ["url": "https://localhost:\(port)/hook", "event_types": ["*"]])
                    try #require(created.status == .created, "\(created)")
                    let id = try #require(created.json["id"].string)
                    _ = try await api.operatingAccount(of: org, holding: 10)
                    var deliveries: [JSON] = []
                    for _ in 0..<100 {
                        for delivery in await deliverer.dueDeliveries() { await deliverer.attempt(delivery) }
                        deliveries = try await api.call(.get, "/v1/webhooks/\(id)/deliveries", key: org.key).json["data"].array
                        if !deliveries.isEmpty, deliveries.allSatisfy({ $0["status"] == .string("failed") }) { break }
                        try await Task.sleep(for: .milliseconds(50))
                    }
                    #expect(!deliveries.isEmpty && deliveries.allSatisfy { $0["status"] == .string("failed") && $0["attempts"] == .int(3) }, "\(deliveries)")
                    #expect(deliveries.allSatisfy { $0["last_error"].string?.contains("loopback") == true }, "\(deliveries)")
                    #expect(receiver.received.isEmpty, "the receiver was contacted")
                }
            }
        }
    }

    @Test("deliveries owed while the receiver is down survive a new deliverer (a restart) and arrive once it is up; a failed one can be sent again")
    func deliveriesSurviveAnOutage() async throws {
        let receiver = Receiver()
        try await receiver.listening { base in
            try await TestDatabase.withPool(template: .techbank) { pool in
                let settings = Self.localSettings
                try await withAPI(on: pool, configure: { $0.webhooks = settings }) { api in
                    let org = try await api.createOrganization("A", kind: "institute")
                    // Nothing listens on port 9 (discard): every attempt fails, and after the schedule the deliveries have failed.
                    let created = try await api.call(.post, "/v1/webhooks", key: org.key,
                                                     json: ["url": "http://127.0.0.1:9/hook", "event_types": ["deposit"]])
                    try #require(created.status == .created, "\(created)")
                    let id = try #require(created.json["id"].string)
                    for amount in [10, 20, 30] { _ = try await api.operatingAccount(of: org, holding: amount) }
                    let first = WebhookDeliverer(pool: pool, settings: settings, logger: TestDatabase.logger)
                    var listed: [JSON] = []
                    for _ in 0..<100 {
                        for delivery in await first.dueDeliveries() { await first.attempt(delivery) }
                        listed = try await api.call(.get, "/v1/webhooks/\(id)/deliveries", key: org.key).json["data"].array
                        if listed.count == 3, listed.allSatisfy({ $0["status"] == .string("failed") }) { break }
                        try await Task.sleep(for: .milliseconds(50))
                    }
                    #expect(listed.count == 3 && listed.allSatisfy { $0["status"] == .string("failed") && $0["last_status_code"] == .null }, "\(listed)")
                    // Another organization deleting this webhook's id deletes nothing of it.
                    let intruder = try await api.createOrganization("Intruder", kind: "institute")
                    expectProblem(try await api.call(.delete, "/v1/webhooks/\(id)", key: intruder.key), .notFound, "not_found")
                    #expect(try await api.call(.get, "/v1/webhooks/\(id)/deliveries", key: org.key).json["data"].array.count == 3)

                    // The receiver is back (at its new address); a new deliverer, as after a restart.
                    let etag = try #require(try await api.call(.get, "/v1/webhooks/\(id)", key: org.key).headers[.eTag])
                    #expect(try await api.call(.patch, "/v1/webhooks/\(id)", key: org.key, json: ["url": base + "/hook"], headers: [.ifMatch: etag]).status == .ok)
                    for delivery in listed {
                        let retried = try await api.call(.post, "/v1/webhooks/\(id)/deliveries/\(try #require(delivery["id"].string))/retry", key: org.key)
                        #expect(retried.status == .ok && retried.json["status"] == .string("pending") && retried.json["attempts"] == .int(0), "\(retried)")
                    }
                    expectProblem(try await api.call(.post, "/v1/webhooks/\(id)/deliveries/\(try #require(listed[0]["id"].string))/retry", key: org.key),
                                  .conflict, "conflict")
                    let second = WebhookDeliverer(pool: pool, settings: settings, logger: TestDatabase.logger)
                    await Self.deliver(second) { receiver.received.count >= 3 }
                    #expect(Set(receiver.received.map(\.id)) == Set(listed.compactMap { $0["id"].string }), "the same deliveries, by their webhook-id")
                    #expect(receiver.received.map { $0.json["data"]["payload"]["amount"].int ?? 0 }.sorted() == [10, 20, 30])
                }
            }
        }
    }

    @Test("an endpoint whose deliveries have all failed for 5 days is disabled, and that is journaled")
    func aLongFailingEndpointIsDisabled() async throws {
        try await TestDatabase.withPool(template: .techbank) { pool in
            let settings = Self.localSettings
            let deliverer = WebhookDeliverer(pool: pool, settings: settings, logger: TestDatabase.logger)
            try await withAPI(on: pool, configure: { $0.webhooks = settings }) { api in
                let org = try await api.createOrganization("A", kind: "institute")
                let created = try await api.call(.post, "/v1/webhooks", key: org.key, json: ["url": "http://127.0.0.1:9/hook", "event_types": ["deposit"]])
                let id = try #require(created.json["id"].string)
                _ = try await api.operatingAccount(of: org, holding: 10)
                // Failing since just under, then just over, five days.
                for (days, stillEnabled) in [(4.9, true), (5.1, false)] {
                    try await pool.withConnection { connection in
                        try await connection.query("UPDATE techbank.webhooks SET failing_since = now() - make_interval(secs => $2) WHERE id = $1",
                                                   [UUID(uuidString: id)!, days * 86_400])
                        try await connection.query("UPDATE techbank.webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = now()")
                    }
                    var due: [DueDelivery] = []
                    for _ in 0..<50 where due.isEmpty {
                        due = await deliverer.dueDeliveries()
                        if due.isEmpty { try await Task.sleep(for: .milliseconds(50)) }
                    }
                    try #require(!due.isEmpty)
                    for delivery in due { await deliverer.attempt(delivery) }
                    #expect(try await api.call(.get, "/v1/webhooks/\(id)", key: org.key).json["enabled"] == .bool(stillEnabled), "after \(days) days")
                }
                let events = try await api.call(.get, "/v1/audit/events?type=webhook_disabled", key: org.key).json["data"].array
                #expect(events.count == 1 && events.first?["subject_id"] == .string(id), "the organization reads that its webhook was disabled: \(events)")
                #expect(await deliverer.dueDeliveries().isEmpty, "a disabled endpoint gets no attempts")
            }
        }
    }

    @Test("housekeeping deletes deliveries finished more than 30 days ago, and keeps pending and recent ones")
    func finishedDeliveriesArePurged() async throws {
        try await withAPI { api in
            let org = try await api.createOrganization("A", kind: "broker")
            let id = try #require(try await api.call(.post, "/v1/webhooks", key: org.key,
                                                    json: ["url": "https://h.example.com/", "event_types": ["*"]]).json["id"].string)
            try await api.pool.withConnection { connection in
                for (seq, status, days) in [(1, "succeeded", 40), (2, "failed", 40), (3, "pending", 40), (4, "succeeded", 3)] {
                    try await connection.query(
                        """
                        INSERT INTO techbank.webhook_deliveries (id, webhook_id, event_seq, event_type, status, next_attempt_at, created_at)
                        VALUES (gen_random_uuid(), $1, $2, 'transfer', $3, CASE WHEN $3 = 'pending' THEN now() END, now() - make_interval(days => $4))
                        """,
                        [UUID(uuidString: id)!, Int64(seq), status, Int32(days)])
                }
            }
            await Housekeeping(pool: api.pool, logger: TestDatabase.logger).runOnce()
            let kept = try await api.call(.get, "/v1/webhooks/\(id)/deliveries", key: org.key).json["data"].array.compactMap { $0["event_seq"].int }
            #expect(kept.sorted() == [3, 4])
        }
    }

    @Test("a slow endpoint does not hold up another's deliveries")
    func aSlowEndpointDoesNotDelayAnother() async throws {
        let slow = Receiver(delay: .seconds(3))
        let fast = Receiver()
        try await slow.listening { slowBase in
            try await fast.listening { fastBase in
                try await TestDatabase.withPool(template: .techbank) { pool in
                    let settings = Self.localSettings
                    try await withAPI(on: pool, configure: { $0.webhooks = settings }) { api in
                        let (a, b) = (try await api.createOrganization("Slow", kind: "institute"), try await api.createOrganization("Fast", kind: "institute"))
                        for (org, base) in [(a, slowBase), (b, fastBase)] {
                            let created = try await api.call(.post, "/v1/webhooks", key: org.key, json: ["url": base + "/hook", "event_types": ["deposit"]])
                            try #require(created.status == .created)
                        }
                        for _ in 0..<6 { _ = try await api.operatingAccount(of: a, holding: 10) }
                        for _ in 0..<6 { _ = try await api.operatingAccount(of: b, holding: 10) }
                        let running = Task { try await WebhookDeliverer(pool: pool, settings: settings, logger: TestDatabase.logger).run() }
                        for _ in 0..<200 where fast.received.count < 6 { try await Task.sleep(for: .milliseconds(20)) }
                        #expect(fast.received.count == 6, "the fast endpoint got all its deliveries")
                        #expect(slow.received.isEmpty, "while the slow one had not answered its first")
                        running.cancel()
                        _ = await running.result
                    }
                }
            }
        }
    }

    @Test("deliveries are signed per Standard Webhooks, carry the event as the audit log shows it, only the organization's own, and are retried with the same id")
    func deliveriesAreSignedScopedAndRetried() async throws {
        // The first attempt of every delivery fails with 503; the retry succeeds.
        let receiver = Receiver { _, earlier in earlier == 0 ? .serviceUnavailable : .noContent }
        try await receiver.listening { base in
            try await TestDatabase.withPool(template: .techbank) { pool in
                let settings = Self.localSettings
                let deliverer = WebhookDeliverer(pool: pool, settings: settings, logger: TestDatabase.logger)
                try await withAPI(on: pool, configure: { $0.webhooks = settings }) { api in
                    let (a, b) = (try await api.createOrganization("A", kind: "enterprise"), try await api.createOrganization("B", kind: "enterprise"))
                    let created = try await api.call(.post, "/v1/webhooks", key: a.key, json: ["url": base + "/hook", "event_types": ["transfer", "deposit"]])
                    try #require(created.status == .created, "\(created)")
                    let (id, secret) = (try #require(created.json["id"].string), try #require(created.json["secret"].string))

                    _ = try await api.operatingAccount(of: a, holding: 300)
                    _ = try await api.operatingAccount(of: b, holding: 400)
                    // A's deposit makes a transfer and a deposit event; B's, none A may read.
                    await Self.deliver(deliverer) { receiver.received.filter { $0.headers[HTTPField.Name("webhook-id")!] != nil }.count >= 4 }
                    let received = receiver.received
                    #expect(received.count == 4, "two events, each tried twice")
                    #expect(Set(received.map(\.id)).count == 2, "a retry has the same webhook-id")
                    for delivery in received {
                        #expect(Self.signatures(delivery) == [try Self.signature(delivery, secret: secret)])
                        #expect(delivery.headers[.contentType] == "application/json")
                        let json = delivery.json
                        let seq = try #require(json["data"]["seq"].int)
                        let asAuditLogShowsIt = try await api.call(.get, "/v1/audit/events/\(seq)", key: a.key)
                        #expect(asAuditLogShowsIt.status == .ok && asAuditLogShowsIt.json == json["data"], "A may read it, and it is the same")
                        #expect(json["type"] == json["data"]["type"] && ["transfer", "deposit"].contains(json["type"].string ?? ""))
                        #expect(json["timestamp"] == json["data"]["created_at"])
                    }
                    let listed = try await api.call(.get, "/v1/webhooks/\(id)/deliveries", key: a.key).json["data"].array
                    #expect(listed.count == 2)
                    #expect(listed.allSatisfy { $0["status"] == .string("succeeded") && $0["attempts"] == .int(2) && $0["last_status_code"] == .int(204) })
                    #expect(Set(listed.compactMap { $0["id"].string }) == Set(received.map(\.id)))

                    // After a rotation both secrets sign, the new one first.
                    let rotated = try #require(try await api.call(.post, "/v1/webhooks/\(id)/rotate-secret", key: a.key).json["secret"].string)
                    _ = try await api.operatingAccount(of: a, holding: 5)
                    await Self.deliver(deliverer) { receiver.received.count >= 8 }
                    let latest = try #require(receiver.received.last)
                    #expect(Self.signatures(latest) == [try Self.signature(latest, secret: rotated), try Self.signature(latest, secret: secret)])
                }
            }
        }
    }
}
