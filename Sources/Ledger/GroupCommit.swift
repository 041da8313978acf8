import Foundation
import Postgres
import Synchronization

/// Group commit for single transfers: concurrent callers' transfers are applied together, as one
/// `ledger.create_transfers` call in one transaction (one WAL flush, one call's fixed cost), while
/// each caller gets exactly the outcome its transfer would have had alone.
///
/// - Nothing waits on a timer: a transfer goes at once while fewer than `maxCallsInFlight` calls
///   run; otherwise it waits for the next call, which takes everything queued (up to `maxGroup`).
///   The busier the ledger, the larger the groups.
/// - Each transfer keeps its own principal (`owner_id` of its element) and its own journal
///   attribution (the caller's `PostgresSession.settings`). The group is not atomic, and each
///   transfer in it stands `alone`, as an atomic batch of one: one transfer's refusal never
///   touches another's, and changes nothing (an expired hold it resolves is not released).
/// - A call that fails as a whole (rolled back, nothing applied) is retried transfer by transfer,
///   so an error one caller's transfer causes is that caller's alone; when the database is
///   unavailable, every caller of the call gets that error (its outcome is in doubt: a retry with
///   the same id is safe).
/// - At most `maxQueued` transfers wait; beyond that a caller is refused at once with
///   `PostgresError` `.tooManyWaiters` (a server answers 503 and `Retry-After`).
public final class GroupCommit: Sendable {
    public struct Limits: Sendable {
        /// Ledger calls running at once (each on its own pooled connection).
        public var maxCallsInFlight = 2
        /// Transfers in one call.
        public var maxGroup = 128
        /// Transfers waiting for a call.
        public var maxQueued = 4_096

        public init() {}
    }

    private struct Waiting: Sendable {
        let element: String
        let reservedCodes: [String]?
        let continuation: CheckedContinuation<TransferResult, any Error>
    }

    private struct State {
        var queue: [Waiting] = []
        var callsInFlight = 0

        /// The next group: the first waiting transfer and every later one that shares its reserved
        /// codes (those are the call's `p_reserved_codes`; the operator's transfers have none and
        /// join any group), up to `max`.
        mutating func takeGroup(max: Int) -> [Waiting] {
            let codes = queue.lazy.compactMap(\.reservedCodes).first
            var group: [Waiting] = []
            var rest: [Waiting] = []
            for waiting in queue {
                let fits = waiting.reservedCodes == nil || waiting.reservedCodes == codes
                if fits, group.count < max { group.append(waiting) } else { rest.append(waiting) }
            }
            queue = rest
            return group
        }
    }

    public let pool: PostgresPool
    public let limits: Limits
    private let state = Mutex(State())

    public init(pool: PostgresPool, limits: Limits = Limits()) {
        self.pool = pool
        self.limits = limits
    }

    /// Transfers waiting for a call, and calls running.
    public var load: (waiting: Int, callsInFlight: Int) {
        state.withLock { ($0.queue.count, $0.callsInFlight) }
    }

    /// Creates one transfer as `Ledger.createTransfer(_:principal:)` does, sharing its transaction
    /// with concurrent callers'. The journal names the caller's `PostgresSession.settings`.
    public func createTransfer(_ request: TransferRequest, principal: Principal? = nil) async throws -> TransferResult {
        let element = try Ledger.wireJSON(request, index: 0, grouped: (principal?.ownerID, JournalAttribution(PostgresSession.settings)))
        return try await withCheckedThrowingContinuation { continuation in
            let waiting = Waiting(element: element, reservedCodes: principal?.reservedCodes, continuation: continuation)
            let group: [Waiting]? = state.withLock { state in
                guard state.queue.count < limits.maxQueued else { return nil }
                state.queue.append(waiting)
                guard state.callsInFlight < limits.maxCallsInFlight else { return [] }
                state.callsInFlight += 1
                return state.takeGroup(max: limits.maxGroup)
            }
            switch group {
            case nil:
                continuation.resume(throwing: PostgresError(code: .tooManyWaiters, message: "more than \(limits.maxQueued) transfers are waiting for the ledger"))
            case let group? where !group.isEmpty:
                // The caller's session settings are not the group's: each element names its own.
                Task { await PostgresSession.$settings.withValue([:]) { await self.run(group) } }
            default:
                break
            }
        }
    }

    /// Runs `group`, then every group queued meanwhile, until the queue is empty.
    private func run(_ group: [Waiting]) async {
        var group = group
        while !group.isEmpty {
            await apply(group)
            group = state.withLock { state in
                let next = state.takeGroup(max: limits.maxGroup)
                if next.isEmpty { state.callsInFlight -= 1 }
                return next
            }
        }
    }

    /// One ledger call for `group`; each waiting caller is resumed with its own result or error.
    private func apply(_ group: [Waiting]) async {
        do {
            let results = try await call(group.map(\.element), reservedCodes: group.first { $0.reservedCodes != nil }?.reservedCodes)
            // Every caller must be answered: a short answer would leave some waiting forever.
            guard results.count == group.count else {
                throw PostgresError(code: .decoding, message: "the ledger answered \(results.count) results for \(group.count) transfers")
            }
            for (waiting, result) in zip(group, results) {
                waiting.continuation.resume(returning: TransferResult(index: 0, id: result.id, outcome: result.outcome, detail: result.detail, transfer: result.transfer))
            }
        } catch {
            guard group.count > 1, (error as? PostgresError)?.isUnavailable != true else {
                for waiting in group { waiting.continuation.resume(throwing: error) }
                return
            }
            for waiting in group { await apply([waiting]) }
        }
    }

    private func call(_ elements: [String], reservedCodes: [String]?) async throws -> [TransferResult] {
        let batch = JSONB("[" + elements.joined(separator: ",") + "]")
        return try await pool.withRetries {
            try await pool.withConnection { connection in
                try await Ledger.run(batch, atomic: false, owner: nil, reservedCodes: reservedCodes, on: connection)
            }
        }
    }
}

/// Whom a journal entry names: the actor (an organization), its API key and the request, as the
/// server sets them per request in `PostgresSession.settings`.
struct JournalAttribution: Sendable {
    let actorID: UUID?
    let keyID: UUID?
    let requestID: String?

    init?(_ settings: [String: String]) {
        actorID = settings["techbank.actor_id"].flatMap(UUID.init(uuidString:))
        keyID = settings["techbank.key_id"].flatMap(UUID.init(uuidString:))
        requestID = settings["techbank.request_id"]
        guard actorID != nil || keyID != nil || requestID != nil else { return nil }
    }
}
