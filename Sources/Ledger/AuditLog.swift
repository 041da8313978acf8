import Crypto
import Foundation
import Postgres

/// The journal as a transparency log: committed entries numbered from 0 (their leaf index), the
/// RFC 9162 Merkle tree over them, and its proofs. Entries are sealed in their shard's hash chain
/// in the same transaction as the change they record; `sequence()` then numbers them.
public struct AuditLog: Sendable {
    /// The most entries one `sequence()` call takes from each shard.
    public static let sequenceBatch = 5_000
    /// Rows `verifyTree()` reads per round trip.
    static let verifyPageSize = 5_000

    public struct Entry: Sendable, Equatable {
        public let leafIndex: Int
        public let shard: Int16
        public let shardSeq: Int64
        public let eventType: String
        public let subjectID: UUID?
        public let payload: JSONB
        public let createdAt: Date
        /// The bytes the leaf hash covers (`ledger.journal_canonical`).
        public let canonical: [UInt8]
        public let leafHash: Merkle.Hash
        /// The organization, API key and request behind the change (nil for background work).
        public let actorID: UUID?
        public let keyID: UUID?
        public let requestID: String?
    }

    public struct Filter: Sendable {
        public var subjectID: UUID?
        public var actorID: UUID?
        public var eventType: String?
        public var from: Date?
        public var to: Date?
        /// Only events about these subjects (nil: any).
        public var visibleSubjects: [UUID]?

        public init() {}
    }

    /// Where the log is not what its records say.
    public struct TreeBreak: Sendable, Equatable, CustomStringConvertible {
        public let leafIndex: Int
        public let reason: String
        public var description: String { "journal leaf \(leafIndex): \(reason)" }
    }

    public let pool: PostgresPool

    public init(pool: PostgresPool) { self.pool = pool }

    /// Numbers every committed entry not yet in the tree; returns the tree size.
    @discardableResult
    public func sequence() async throws -> Int {
        while true {
            let (before, after) = try await pool.withTransaction { connection in
                let before = try await Self.size(connection)
                let after = try await connection.query("SELECT ledger.sequence_journal($1)", [Int32(Self.sequenceBatch)])[0].decode(Int.self, at: 0)
                return (before, after)
            }
            if after - before < Self.sequenceBatch { return after }
        }
    }

    /// The number of entries in the tree.
    public func size() async throws -> Int {
        try await pool.withConnection { try await Self.size($0) }
    }

    public func root(size: Int) async throws -> Merkle.Hash { try await nodes.root(size: size) }

    public func inclusionProof(index: Int, size: Int) async throws -> [Merkle.Hash] { try await nodes.inclusionProof(index: index, size: size) }

    public func consistencyProof(oldSize: Int, newSize: Int) async throws -> [Merkle.Hash] {
        try await nodes.consistencyProof(oldSize: oldSize, newSize: newSize)
    }

    public func entry(_ leafIndex: Int) async throws -> Entry? {
        try await entries(Filter(), after: leafIndex - 1, limit: 1).first { $0.leafIndex == leafIndex }
    }

    /// Entries matching `filter` with leaf index above `after`, in leaf order.
    public func entries(_ filter: Filter, after: Int, limit: Int) async throws -> [Entry] {
        try await pool.withConnection { connection in try await Self.entries(connection, filter, after: after, limit: limit) }
    }

    static func entries(_ connection: PostgresConnection, _ filter: Filter, after: Int, limit: Int) async throws -> [Entry] {
        let rows = try await connection.query(
            """
            SELECT l.leaf_index, j.shard, j.seq, j.event_type, j.subject_id, j.payload, j.created_at,
                   ledger.journal_canonical(j.shard, j.seq, j.event_type, j.subject_id, j.created_at, j.payload, j.actor_id, j.key_id, j.request_id),
                   l.leaf_hash, j.actor_id, j.key_id, j.request_id
              FROM ledger.journal_leaves l JOIN ledger.journal j ON j.shard = l.shard AND j.seq = l.seq
             WHERE l.leaf_index > $1
               AND ($2::uuid IS NULL OR j.subject_id = $2)
               AND ($3::uuid IS NULL OR j.actor_id = $3 OR j.payload->>'actor_id' = $3::text)
               AND ($4::text IS NULL OR j.event_type = $4)
               AND ($5::timestamptz IS NULL OR j.created_at >= $5)
               AND ($6::timestamptz IS NULL OR j.created_at < $6)
               AND ($7::uuid[] IS NULL OR j.subject_id = ANY($7))
             ORDER BY l.leaf_index LIMIT $8
            """,
            [Int64(after), filter.subjectID, filter.actorID, filter.eventType, filter.from, filter.to,
             filter.visibleSubjects, Int64(limit)])
        return try rows.map {
            Entry(leafIndex: try $0.decode(Int.self, at: 0), shard: try $0.decode(Int16.self, at: 1), shardSeq: try $0.decode(Int64.self, at: 2),
                  eventType: try $0.decode(String.self, at: 3), subjectID: try $0.decode(UUID?.self, at: 4), payload: try $0.decode(JSONB.self, at: 5),
                  createdAt: try $0.decode(Date.self, at: 6), canonical: Array(try $0.decode(Data.self, at: 7)),
                  leafHash: Array(try $0.decode(Data.self, at: 8)), actorID: try $0.decode(UUID?.self, at: 9), keyID: try $0.decode(UUID?.self, at: 10),
                  requestID: try $0.decode(String?.self, at: 11))
        }
    }

    /// Recomputes every leaf hash from its journal entry and every stored subtree from the leaves;
    /// returns the first leaf whose records disagree, or nil. Reads one snapshot, so that entries
    /// sequenced meanwhile (the server running) are not taken for a break.
    public func verifyTree() async throws -> TreeBreak? {
        try await pool.withTransaction(isolation: .repeatableRead) { connection in try await Self.verifyTree(connection) }
    }

    static func verifyTree(_ connection: PostgresConnection) async throws -> TreeBreak? {
        var tree = InMemoryMerkleTree()
        var after = -1
        while true {
            let page = try await entries(connection, Filter(), after: after, limit: Self.verifyPageSize)
            for entry in page {
                guard entry.leafIndex == tree.size else { return TreeBreak(leafIndex: tree.size, reason: "leaf missing") }
                guard Merkle.leafHash(entry.canonical) == entry.leafHash else {
                    return TreeBreak(leafIndex: entry.leafIndex, reason: "stored leaf hash does not match the entry (shard \(entry.shard), entry \(entry.shardSeq))")
                }
                tree.append(entry.leafHash)
                after = entry.leafIndex
            }
            if page.count < Self.verifyPageSize { break }
        }
        guard tree.size == (try await size(connection)) else { return TreeBreak(leafIndex: tree.size, reason: "leaf missing or its entry deleted") }
        // Every stored node must equal the recomputed one, and none may be missing; read in pages.
        // The next node expected, in the rows' (level, index) order: any the rows skip is missing.
        var next = (level: 0, index: 0)
        func firstExpected() -> (level: Int, index: Int)? {
            while next.level < tree.levels.count, next.index >= tree.levels[next.level].count { next = (next.level + 1, 0) }
            return next.level < tree.levels.count ? next : nil
        }
        func missing(_ node: (level: Int, index: Int)) -> TreeBreak {
            TreeBreak(leafIndex: node.index << node.level, reason: "the stored subtree at level \(node.level), index \(node.index) is missing")
        }
        var position: (level: Int16, index: Int64) = (-1, 0)
        while true {
            let page = try await connection.query(
                "SELECT level, index, hash FROM ledger.merkle_nodes WHERE (level, index) > ($1, $2) ORDER BY level, index LIMIT $3",
                [position.level, position.index, Int64(Self.verifyPageSize)])
            for row in page {
                let level = try row.decode(Int.self, at: 0)
                let index = try row.decode(Int.self, at: 1)
                let firstLeaf = index << level
                if let expected = firstExpected(), (expected.level, expected.index) < (level, index) { return missing(expected) }
                guard level < tree.levels.count, index < tree.levels[level].count else {
                    return TreeBreak(leafIndex: firstLeaf, reason: "a stored subtree (level \(level), index \(index)) covers leaves that do not exist")
                }
                guard Array(try row.decode(Data.self, at: 2)) == tree.levels[level][index] else {
                    return TreeBreak(leafIndex: firstLeaf, reason: "the stored subtree at level \(level), index \(index) does not match its leaves")
                }
                next = (level, index + 1)
                position = (Int16(level), Int64(index))
            }
            if page.count < Self.verifyPageSize { break }
        }
        if let expected = firstExpected() { return missing(expected) }
        return nil
    }

    // MARK: Internals

    var nodes: DatabaseNodes { DatabaseNodes(pool: pool) }

    static func size(_ connection: PostgresConnection) async throws -> Int {
        try await connection.query("SELECT coalesce(max(leaf_index) + 1, 0) FROM ledger.journal_leaves")[0].decode(Int.self, at: 0)
    }

    struct DatabaseNodes: MerkleNodeStore {
        let pool: PostgresPool

        func node(level: Int, index: Int) async throws -> Merkle.Hash {
            let rows = try await pool.withConnection { connection in
                try await connection.query("SELECT hash FROM ledger.merkle_nodes WHERE level = $1 AND index = $2", [Int16(level), Int64(index)])
            }
            guard let row = rows.first else {
                throw PostgresError(code: .decoding, message: "Merkle node \(level)/\(index) is missing")
            }
            return Array(try row.decode(Data.self, at: 0))
        }
    }
}
