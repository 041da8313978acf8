import Crypto
import Foundation
import Postgres

/// The hash-chained journal. It is sharded (16 chains) so that concurrent writers do not all
/// queue behind one lock; within a shard, entry n stores
/// `hash = SHA-256(hash(n-1) ‖ canonical bytes of entry n)` (32 zero bytes before the first),
/// where the canonical bytes (`ledger.journal_canonical`) cover every field, metadata included.
public struct Journal: Sendable {
    /// Where the chain breaks.
    public struct Break: Sendable, Equatable, CustomStringConvertible {
        public let shard: Int16
        /// The first entry that does not verify (for a chain that does not end at its recorded head:
        /// the first entry missing or past the head, or the last entry if it was rewritten).
        public let seq: Int64
        public let reason: String
        public var description: String { "journal shard \(shard) breaks at entry \(seq): \(reason)" }
    }

    /// The outcome of `verify()`.
    public struct Verification: Sendable, Equatable {
        public let entriesChecked: Int
        /// The first broken entry in (shard, seq) order, or nil if every chain verifies.
        public let firstBreak: Break?
        public var isIntact: Bool { firstBreak == nil }
    }

    /// Entries read per round trip while verifying.
    static let verifyPageSize = 5_000

    public let pool: PostgresPool

    public init(pool: PostgresPool) { self.pool = pool }

    /// Appends one business event in its own transaction. To journal a change atomically with the
    /// change, call `ledger.journal_append` in the change's transaction instead.
    public func append(eventType: String, subjectID: UUID?, payload: JSONB) async throws {
        try await pool.withTransaction { connection in
            try await connection.query("SELECT ledger.journal_append($1, $2, $3)", [eventType, subjectID, payload])
        }
    }

    /// Replays every chain from its first entry, recomputing each hash from the stored fields, and
    /// checks each chain's end against its head. Detects a changed byte in any entry, a deleted,
    /// inserted or reordered entry, and a truncated chain.
    public func verify() async throws -> Verification {
        // One snapshot for the pages and the heads, so that entries appended meanwhile (the server
        // may be running) are neither half seen nor mistaken for a broken chain.
        try await pool.withTransaction(isolation: .repeatableRead) { connection in try await Self.verify(connection) }
    }

    static func verify(_ connection: PostgresConnection) async throws -> Verification {
        var checked = 0
        var after: (shard: Int16, seq: Int64) = (-1, 0)
        var previous: (shard: Int16, seq: Int64, hash: [UInt8]) = (-1, 0, [])
        var tails: [Int16: (seq: Int64, hash: [UInt8])] = [:]
        while true {
            let rows = try await connection.query(
                """
                SELECT shard, seq, prev_hash, hash,
                       ledger.journal_canonical(shard, seq, event_type, subject_id, created_at, payload, actor_id, key_id, request_id)
                  FROM ledger.journal WHERE (shard, seq) > ($1, $2) ORDER BY shard, seq LIMIT $3
                """,
                [after.shard, after.seq, Int64(Self.verifyPageSize)])
            for row in rows {
                let shard = try row.decode(Int16.self, at: 0)
                let seq = try row.decode(Int64.self, at: 1)
                let prevHash = Array(try row.decode(Data.self, at: 2))
                let hash = Array(try row.decode(Data.self, at: 3))
                let canonical = try row.decode(Data.self, at: 4)
                let expectedPrevious: (shard: Int16, seq: Int64, hash: [UInt8]) = previous.shard == shard ? previous : (shard, 0, [UInt8](repeating: 0, count: 32))
                if seq != expectedPrevious.seq + 1 {
                    return Verification(entriesChecked: checked, firstBreak: Break(shard: shard, seq: expectedPrevious.seq + 1, reason: "entry missing or out of order"))
                }
                if prevHash != expectedPrevious.hash {
                    return Verification(entriesChecked: checked, firstBreak: Break(shard: shard, seq: seq, reason: "previous hash does not match"))
                }
                var hasher = SHA256()
                hasher.update(data: prevHash)
                hasher.update(data: canonical)
                if Array(hasher.finalize()) != hash {
                    return Verification(entriesChecked: checked, firstBreak: Break(shard: shard, seq: seq, reason: "hash does not match contents"))
                }
                checked += 1
                previous = (shard, seq, hash)
                tails[shard] = (seq, hash)
                after = (shard, seq)
            }
            if rows.count < Self.verifyPageSize { break }
        }
        let heads = try await connection.query("SELECT shard, seq, hash FROM ledger.journal_heads ORDER BY shard")
        for head in heads {
            let shard = try head.decode(Int16.self, at: 0)
            let seq = try head.decode(Int64.self, at: 1)
            let hash = Array(try head.decode(Data.self, at: 2))
            let tail = tails[shard] ?? (0, [UInt8](repeating: 0, count: 32))
            if tail.seq != seq || tail.hash != hash {
                // the last entry if it was rewritten, else the first one missing or past the head
                let first = tail.seq == seq ? seq : min(tail.seq, seq) + 1
                return Verification(entriesChecked: checked, firstBreak: Break(shard: shard, seq: first, reason: "chain does not end at its recorded head"))
            }
        }
        return Verification(entriesChecked: checked, firstBreak: nil)
    }
}
