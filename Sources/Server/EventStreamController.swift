import Foundation
import HTTPTypes
import Hummingbird
import Ledger
import ServiceLifecycle
import Synchronization
import TechBank

/// `GET /v1/events/stream`: the journal events the caller may read (the rule of
/// `GET /v1/audit/events`, `AuditScope`), pushed as Server-Sent Events as they are sequenced:
/// `id: <seq>`, `event: <type>`, `data: <the event as GET /v1/audit/events/{seq} shows it>`.
///
/// A stream starts after the newest event, or after `Last-Event-ID` (a `seq`) to resume without a
/// gap. A comment line every `heartbeat` keeps idle connections open. Limits: `maxPerOrganization`
/// streams per organization and `maxStreams` in all (429 beyond), each open at most `maxDuration`
/// (then it ends and the client resumes with `Last-Event-ID`); a stream ends when the server shuts
/// down gracefully.
extension HTTPField.Name {
    static let lastEventID = Self("Last-Event-ID")!
}

struct EventStreamController: Sendable {
    struct Limits: Sendable {
        var maxPerOrganization = 4
        var maxStreams = 256
        var maxDuration: Duration = .seconds(3_600)
        var heartbeat: Duration = .seconds(15)
        /// How often a stream looks for new events (one query per `poll` for all streams, one per
        /// stream only when there are new events).
        var poll: Duration = .milliseconds(250)
        /// Events read at once.
        var page = 100
    }

    let scope: AuditScope
    /// The number of sequenced journal events (sequencing what was committed first), shared by
    /// every stream and read at most once per `limits.poll`.
    let head: Recent<Int>
    let limits: Limits
    private let open = OpenStreams()

    init(scope: AuditScope, limits: Limits = Limits()) {
        self.scope = scope
        let log = scope.log
        self.head = Recent(maxAge: limits.poll) { try await log.sequence() }
        self.limits = limits
    }

    func register(on router: some RouterMethods<AppRequestContext>) {
        router.get("events/stream") { request, context in try await stream(request, context) }
    }

    func stream(_ request: Request, _ context: AppRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        guard Self.acceptsEventStream(request.headers[.accept]) else {
            throw APIError(.notAcceptable, code: "not_acceptable", "this resource is text/event-stream; send Accept: text/event-stream")
        }
        let resumeAfter = try request.headers[.lastEventID].map { text in
            guard let seq = Int(text), seq >= 0 else {
                throw APIError.badRequest("Last-Event-ID", "must be the seq (a non-negative integer) of an event this stream sent")
            }
            return seq
        }
        guard let slot = open.take(for: identity.organizationID, limits: limits) else {
            var error = APIError(.tooManyRequests, code: "too_many_streams",
                                 "at most \(limits.maxPerOrganization) event streams per organization (\(limits.maxStreams) in all) may be open; close one first")
            error.headers[.retryAfter] = "15"
            throw error
        }
        let after: Int
        if let resumeAfter { after = resumeAfter } else { after = try await head.value() - 1 }
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-store"
        let (scope, head, limits) = (scope, head, limits)
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            _ = slot  // held, and so counted, as long as the stream runs
            try await Self.run(after: after, identity: identity, scope: scope, head: head, limits: limits, writer: &writer)
        })
    }

    /// Writes events until the client goes away, the stream's time is up or the server shuts down.
    static func run(after start: Int, identity: Identity, scope: AuditScope, head: Recent<Int>, limits: Limits,
                    writer: inout any ResponseBodyWriter) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + limits.maxDuration
        var after = start
        try await writer.write(ByteBuffer(string: ": events after \(after)\n\n"))
        var lastWrite = clock.now
        while clock.now < deadline, !Task.isShuttingDownGracefully {
            let size = try await head.value()
            if size - 1 > after {
                let entries = try await scope.entries(AuditLog.Filter(), visibleTo: identity, after: after, limit: limits.page)
                var text = ""
                for entry in entries {
                    let data = String(decoding: try Reply.json(AuditController.EventBody(entry: entry)).body, as: UTF8.self)
                    text += "id: \(entry.leafIndex)\nevent: \(entry.eventType)\ndata: \(data)\n\n"
                }
                // Fewer than a page: nothing else the caller may read was sequenced up to `size`.
                after = entries.count < limits.page ? max(entries.last?.leafIndex ?? after, size - 1) : entries[entries.count - 1].leafIndex
                if !text.isEmpty {
                    try await writer.write(ByteBuffer(string: text))
                    lastWrite = clock.now
                }
                if entries.count == limits.page { continue }
            }
            if clock.now - lastWrite >= limits.heartbeat {
                try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                lastWrite = clock.now
            }
            try await Task.sleep(for: limits.poll)
        }
        try await writer.finish(nil)
    }

    /// Whether `Accept` (absent: anything) allows `text/event-stream`.
    static func acceptsEventStream(_ accept: String?) -> Bool {
        accept.map { AcceptHeader.quality($0, of: ["text/event-stream", "text/*", "*/*"]) > 0 } ?? true
    }
}

/// The open streams, by organization. A `Slot` counts as long as it lives: it is released when
/// the response holding it is gone, however the stream ended (or if it never started).
final class OpenStreams: Sendable {
    final class Slot: Sendable {
        let organizationID: UUID
        let streams: OpenStreams

        init(_ organizationID: UUID, _ streams: OpenStreams) {
            self.organizationID = organizationID
            self.streams = streams
        }

        deinit { streams.counts.remove(organizationID) }
    }

    fileprivate let counts = CountsByID()

    func take(for organizationID: UUID, limits: EventStreamController.Limits) -> Slot? {
        let taken = counts.add(organizationID) { total, ofID in total < limits.maxStreams && ofID < limits.maxPerOrganization }
        return taken ? Slot(organizationID, self) : nil
    }
}

/// How many of something each id holds (streams, attempts), counted under one lock.
final class CountsByID: Sendable {
    private let counts = Mutex<[UUID: Int]>([:])

    /// Counts one more for `id` if `allowed(total, id's count)`; returns whether it did.
    @discardableResult
    func add(_ id: UUID, if allowed: (_ total: Int, _ ofID: Int) -> Bool = { _, _ in true }) -> Bool {
        counts.withLock { counts in
            guard allowed(counts.values.reduce(0, +), counts[id, default: 0]) else { return false }
            counts[id, default: 0] += 1
            return true
        }
    }

    func remove(_ id: UUID) {
        counts.withLock { counts in
            counts[id, default: 1] -= 1
            if counts[id] == 0 { counts[id] = nil }
        }
    }

    /// The total, and the ids holding at least `limit`.
    func snapshot(atLeast limit: Int) -> (total: Int, full: [UUID]) {
        counts.withLock { counts in (counts.values.reduce(0, +), counts.filter { $0.value >= limit }.map(\.key)) }
    }
}
