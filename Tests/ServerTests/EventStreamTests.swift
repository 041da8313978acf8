import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOEmbedded
@testable import Server
import Synchronization
import TechBank
import Testing
import TestSupport

/// `GET /v1/events/stream`, read as a client reads it: the response body as it is written, until
/// the client goes away.
@Suite("API: live event stream")
struct EventStreamTests {
    /// A client reading one stream: it keeps what arrives and, once told to go away, fails the
    /// server's next write, as a closed connection does.
    final class StreamClient: ResponseBodyWriter, Sendable {
        struct Gone: Error {}
        private let state = Mutex<(text: String, gone: Bool)>(("", false))

        func write(_ buffer: ByteBuffer) async throws {
            try state.withLock { state in
                guard !state.gone else { throw Gone() }
                state.text += String(buffer: buffer)
            }
        }

        func finish(_ trailingHeaders: HTTPFields?) async throws {}
        func goAway() { state.withLock { $0.gone = true } }
        var text: String { state.withLock { $0.text } }

        /// The events received so far: (id, event, data) of each.
        var events: [(id: Int, type: String, data: JSON)] {
            text.components(separatedBy: "\n\n").compactMap { block in
                var fields: [String: String] = [:]
                for line in block.split(separator: "\n") where !line.hasPrefix(":") {
                    guard let colon = line.firstIndex(of: ":") else { continue }
                    fields[String(line[..<colon])] = String(line[line.index(after: colon)...].dropFirst())
                }
                guard let id = fields["id"].flatMap(Int.init), let type = fields["event"], let data = fields["data"] else { return nil }
                return (id, type, JSON.parse(Data(data.utf8)))
            }
        }
    }

    static var fastLimits: EventStreamController.Limits {
        var limits = EventStreamController.Limits()
        limits.poll = .milliseconds(20)
        limits.heartbeat = .milliseconds(100)
        return limits
    }

    /// Opens a stream on `router` as `key`; the body is read in the background by the returned client.
    static func open(_ router: Router<AppRequestContext>, key: String?, headers: HTTPFields = [:]) async throws -> (Response, StreamClient, Task<Void, any Error>) {
        var fields = headers
        if let key { fields[.authorization] = "Bearer \(key)" }
        let request = Request(
            head: HTTPRequest(method: .get, scheme: "http", authority: "localhost", path: "/v1/events/stream", headerFields: fields),
            body: RequestBody(buffer: ByteBuffer()))
        let context = AppRequestContext(source: ApplicationRequestContextSource(channel: EmbeddedChannel(), logger: TestDatabase.logger))
        let response = try await router.buildResponder().respond(to: request, context: context)
        let client = StreamClient()
        let reading = Task { [body = response.body] in try await body.write(client) }
        return (response, client, reading)
    }

    static func until(_ what: String, _ condition: () -> Bool) async throws {
        for _ in 0..<500 where !condition() { try await Task.sleep(for: .milliseconds(20)) }
        #expect(condition(), "timed out waiting until \(what)")
    }

    static func router(_ api: API, limits: EventStreamController.Limits = fastLimits) -> Router<AppRequestContext> {
        var configuration = ServerConfiguration()
        configuration.eventStreams = limits
        return buildRouter(configuration: configuration, pool: api.pool)
    }

    @Test("a stream pushes the caller's events as they are committed, never another organization's, and resumes after Last-Event-ID without a gap")
    func pushesOwnEventsAndResumes() async throws {
        try await withAPI { api in
            let router = Self.router(api)
            let (a, b) = (try await api.createOrganization("A", kind: "enterprise"), try await api.createOrganization("B", kind: "enterprise"))
            let (response, stream, reading) = try await Self.open(router, key: a.key, headers: [.accept: "text/event-stream"])
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "text/event-stream")
            #expect(response.headers[.cacheControl] == "no-store")
            try await Self.until("the stream is open") { stream.text.hasPrefix(": events after") }

            let accountOfA = try await api.operatingAccount(of: a, holding: 500)
            _ = try await api.operatingAccount(of: b, holding: 700)
            let paid = try await api.createAccount(for: a)
            #expect(try await api.transfer(accountOfA, paid, 120, key: a.key).status == .created)
            try await Self.until("A's four events arrived") { stream.events.count >= 4 }
            // The client stays until the stream has caught up with what A may read: an event
            // sequenced a poll later than the others may still be on its way.
            var listedAfterStart: [JSON] = []
            for _ in 0..<250 {
                let listed = try await api.call(.get, "/v1/audit/events?limit=200", key: a.key).json["data"].array
                listedAfterStart = listed.filter { ($0["seq"].int ?? -1) >= Int64(stream.events[0].id) }
                if stream.events.count >= listedAfterStart.count { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            stream.goAway()
            try? await reading.value

            let events = stream.events
            #expect(events.map(\.type).contains("transfer"))
            #expect(events.map(\.id) == events.map(\.id).sorted() && Set(events.map(\.id)).count == events.count, "in order, each once")
            #expect(events.map { Int64($0.id) } == listedAfterStart.map { $0["seq"].int ?? -1 }, "exactly what A may read, as GET /v1/audit/events lists it")
            for event in events {
                #expect(event.data["seq"].int == Int64(event.id) && event.data["type"].string == event.type)
                let single = try await api.call(.get, "/v1/audit/events/\(event.id)", key: a.key)
                #expect(single.json == event.data, "the data is the event as GET /v1/audit/events/{seq} shows it")
            }
            let seenByOperator = try await api.call(.get, "/v1/audit/events?limit=200").json["data"].array.map { $0["seq"].int ?? -1 }
            #expect(Set(seenByOperator).isSuperset(of: events.map { Int64($0.id) }))
            #expect(seenByOperator.filter { $0 >= Int64(events[0].id) }.count > events.count, "B's events were committed meanwhile and not sent to A")

            // Resuming after the first event replays the rest, then goes on live.
            let (_, resumed, resumedReading) = try await Self.open(router, key: a.key, headers: [.lastEventID: String(events[0].id)])
            try await Self.until("the rest is replayed") { resumed.events.count >= events.count - 1 }
            #expect(try await api.transfer(accountOfA, paid, 1, key: a.key).status == .created)
            try await Self.until("the new transfer arrives") { resumed.events.count >= events.count }
            resumed.goAway()
            try? await resumedReading.value
            #expect(Array(resumed.events.map(\.id).prefix(events.count - 1)) == Array(events.map(\.id).dropFirst()))
        }
    }

    @Test("streams are limited per organization; a stream whose client went away frees its place")
    func streamsAreLimited() async throws {
        try await withAPI { api in
            var limits = Self.fastLimits
            limits.maxPerOrganization = 2
            let router = Self.router(api, limits: limits)
            let org = try await api.createOrganization("A", kind: "broker")
            var open: [(StreamClient, Task<Void, any Error>)] = []
            for _ in 0..<2 {
                let (response, client, reading) = try await Self.open(router, key: org.key)
                #expect(response.status == .ok)
                open.append((client, reading))
            }
            let (refused, _, _) = try await Self.open(router, key: org.key)
            #expect(refused.status == .tooManyRequests)
            #expect(refused.headers[.retryAfter] != nil)
            // Another organization is not held back by this one's streams.
            let other = try await api.createOrganization("B", kind: "broker")
            let (otherResponse, otherClient, otherReading) = try await Self.open(router, key: other.key)
            #expect(otherResponse.status == .ok)
            otherClient.goAway()
            try? await otherReading.value

            let (client, reading) = open.removeFirst()
            client.goAway()
            try? await reading.value
            var again: Response?
            for _ in 0..<50 {
                let (response, client, reading) = try await Self.open(router, key: org.key)
                if response.status == .ok { again = response; client.goAway(); try? await reading.value; break }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(again?.status == .ok)
            for (client, reading) in open { client.goAway(); try? await reading.value }
        }
    }

    @Test("a stream needs a key, an Accept that allows text/event-stream, and a Last-Event-ID that is a seq")
    func refusals() async throws {
        try await withAPI { api in
            let router = Self.router(api)
            let org = try await api.createOrganization("A", kind: "institute")
            #expect(try await Self.open(router, key: nil).0.status == .unauthorized)
            #expect(try await Self.open(router, key: org.key, headers: [.accept: "application/json"]).0.status == .notAcceptable)
            for bad in ["-1", "x", "1.5", ""] {
                #expect(try await Self.open(router, key: org.key, headers: [.lastEventID: bad]).0.status == .badRequest, "\(bad)")
            }
        }
    }
}
