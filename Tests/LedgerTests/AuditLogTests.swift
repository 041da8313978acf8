import Crypto
import Foundation
import Ledger
import Postgres
import Synchronization
import Testing
import TestSupport

/// The journal as a transparency log: `AuditLog.sequence()` numbers committed entries, the
/// database's Merkle tree and proofs match the RFC 9162 definition, `verifyTree()` and
/// `Journal.verify()` find tampering, checkpoints are C2SP signed notes, and `RemoteAudit.check`
/// catches a server that rewrote its history.
@Suite("Audit log")
struct AuditLogTests {
    // MARK: Helpers

    /// One row of `ledger.journal_leaves` with the canonical bytes of its entry (nil if the entry is gone).
    struct Leaf: Sendable {
        let index: Int
        let shard: Int16
        let seq: Int64
        let hash: Merkle.Hash
        let canonical: [UInt8]?
    }

    static func leaves(_ pool: PostgresPool) async throws -> [Leaf] {
        let rows = try await pool.withConnection { connection in
            try await connection.query(
                """
                SELECT l.leaf_index, l.shard, l.seq, l.leaf_hash,
                       ledger.journal_canonical(j.shard, j.seq, j.event_type, j.subject_id, j.created_at, j.payload,
                                                j.actor_id, j.key_id, j.request_id)
                  FROM ledger.journal_leaves l LEFT JOIN ledger.journal j ON j.shard = l.shard AND j.seq = l.seq
                 ORDER BY l.leaf_index
                """)
        }
        return try rows.map { row in
            Leaf(index: try row.decode(Int.self, at: 0), shard: try row.decode(Int16.self, at: 1), seq: try row.decode(Int64.self, at: 2),
                 hash: Array(try row.decode(Data.self, at: 3)), canonical: try row.decode(Data?.self, at: 4).map { Array($0) })
        }
    }

    /// Appends `count` entries in one transaction (so into one shard), each with a distinct payload.
    static func append(_ connection: PostgresConnection, _ count: Int, tag: String, subject: UUID? = nil) async throws {
        try await connection.query(
            """
            SELECT ledger.journal_append_many(array_agg('test_event'::text ORDER BY g), array_agg($3::uuid ORDER BY g),
                                              array_agg(jsonb_build_object('tag', $1::text, 'i', g) ORDER BY g))
              FROM generate_series(1, $2::int) g
            """,
            [tag, Int32(count), subject])
    }

    static func append(_ pool: PostgresPool, _ count: Int, tag: String) async throws {
        try await pool.withTransaction { connection in try await append(connection, count, tag: tag) }
    }

    /// Entries in exactly three shards: three connections are held throughout, and in each round
    /// each begins a transaction while the others hold theirs, so each takes a head no other
    /// holds, the same one every round; the log is sequenced between rounds (on a fourth connection).
    static func populate(_ pool: PostgresPool, rounds: Int = 3) async throws {
        try await pool.withConnection { a in
            try await pool.withConnection { b in
                try await pool.withConnection { c in
                    for round in 0..<rounds {
                        for (name, connection) in [("a", a), ("b", b), ("c", c)] {
                            try await connection.query("BEGIN")
                            if name == "b" {
                                // b's entries record who acted (the server sets these per request)
                                try await connection.query(
                                    """
                                    SELECT set_config('techbank.actor_id', $1, true), set_config('techbank.key_id', $2, true),
                                           set_config('techbank.request_id', $3, true)
                                    """,
                                    [UUID().uuidString, UUID().uuidString, "req-\(round)"])
                            }
                            try await append(connection, ["a": 2, "b": 3, "c": 1 + round][name]!, tag: "r\(round)\(name)")
                        }
                        for connection in [c, b, a] { try await connection.query("COMMIT") }
                        try await AuditLog(pool: pool).sequence()
                    }
                }
            }
        }
    }

    /// Runs statements as the superuser with every trigger (the append-only guards and the
    /// foreign keys) disabled; returns the rows each changed.
    @discardableResult
    static func tamper(_ pool: PostgresPool, _ statements: [String]) async throws -> [Int] {
        try await pool.withConnection { connection in
            try await connection.query("SET session_replication_role = replica")
            do {
                var changed: [Int] = []
                for statement in statements { changed.append(try await connection.query(statement).affectedRows) }
                try await connection.query("RESET session_replication_role")
                return changed
            } catch {
                _ = try? await connection.query("RESET session_replication_role")
                throw error
            }
        }
    }

    final class Box<Value: Sendable>: Sendable {
        let value: Mutex<Value>
        init(_ value: Value) { self.value = Mutex(value) }
        func get() -> Value { value.withLock { $0 } }
        func update(_ body: (inout Value) -> Void) { value.withLock { body(&$0) } }
    }

    // MARK: Sequencing

    @Test func sequencingNumbersEveryCommittedEntryOnceFromZeroWithoutGaps() async throws {
        try await TestDatabase.withPool(template: .ledger, maxConnections: 12) { pool throws in
            let audit = AuditLog(pool: pool)
            #expect(try await audit.sequence() == 0)
            #expect(try await audit.root(size: 0) == Merkle.emptyRoot)
            let writersDone = Box(false)
            let sizesSeen = Box<[[Int]]>([[], []])
            try await withThrowingTaskGroup(of: Void.self) { group in
                // two sequencers, at once, all the time the writers write
                for sequencer in 0..<2 {
                    group.addTask {
                        while true {
                            let done = writersDone.get()
                            let size = try await audit.sequence()
                            sizesSeen.update { $0[sequencer].append(size) }
                            if done { return }
                            try await Task.sleep(for: .milliseconds(sequencer == 0 ? 1 : 3))
                        }
                    }
                }
                try await withThrowingTaskGroup(of: Void.self) { writers in
                    for writer in 0..<6 {
                        writers.addTask {
                            for transaction in 0..<20 {
                                try await pool.withTransaction { connection in
                                    try await Self.append(connection, 1 + (writer + transaction) % 4, tag: "w\(writer)t\(transaction)")
                                    if transaction % 5 == 0 { try await Task.sleep(for: .milliseconds(2)) }  // hold the head a while
                                }
                            }
                        }
                    }
                    try await writers.waitForAll()
                }
                writersDone.update { $0 = true }
                try await group.waitForAll()
            }
            for (sequencer, sizes) in sizesSeen.get().enumerated() {
                #expect(!sizes.isEmpty)
                #expect(sizes == sizes.sorted(), "sequencer \(sequencer) saw the tree shrink: \(sizes)")
            }
            let entries = try await pool.withConnection { try await $0.query("SELECT count(*) FROM ledger.journal")[0].decode(Int.self, at: 0) }
            #expect(entries == (0..<6).reduce(0) { total, writer in total + (0..<20).reduce(0) { $0 + 1 + (writer + $1) % 4 } })
            // a last call finds nothing new
            #expect(try await audit.sequence() == entries)
            #expect(try await audit.size() == entries)

            let leaves = try await Self.leaves(pool)
            #expect(leaves.map(\.index) == Array(0..<entries))
            let keys = leaves.map { "\($0.shard)/\($0.seq)" }
            #expect(Set(keys).count == entries, "an entry was numbered twice")
            let journalKeys = try await pool.withConnection { try await $0.query("SELECT shard, seq FROM ledger.journal") }
                .map { "\(try $0.decode(Int16.self, at: 0))/\(try $0.decode(Int64.self, at: 1))" }
            #expect(Set(keys) == Set(journalKeys), "every committed entry is a leaf")
            #expect(Set(leaves.map(\.shard)).count >= 2, "concurrent writers used several shards")
            for leaf in leaves {
                let canonical = try #require(leaf.canonical)
                #expect(leaf.hash == Merkle.leafHash(canonical), "leaf \(leaf.index)")
                #expect(leaf.hash == Array(SHA256.hash(data: [0x00] + canonical)), "leaf \(leaf.index)")
            }
            let tree = InMemoryMerkleTree(leafHashes: leaves.map(\.hash))
            #expect(try await audit.root(size: entries) == (try await tree.root(size: entries)))
            for size in [1, 2, 7, entries / 2, entries - 1] {
                #expect(try await audit.root(size: size) == (try await tree.root(size: size)), "size \(size)")
            }
            // what the API reads agrees with the table
            for index in [0, entries / 3, entries - 1] {
                let entry = try #require(try await audit.entry(index))
                #expect(entry.leafIndex == index && entry.leafHash == leaves[index].hash && entry.canonical == leaves[index].canonical)
                #expect(entry.shard == leaves[index].shard && entry.shardSeq == leaves[index].seq)
            }
            #expect(try await audit.entry(entries) == nil)
            #expect(try await audit.verifyTree() == nil)
            #expect(try await Journal(pool: pool).verify().isIntact)
        }
    }

    @Test func oneCallSequencesMoreThanOneBatch() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let audit = AuditLog(pool: pool)
            let big = 2 * AuditLog.sequenceBatch + 7
            // one shard with more than two batches, two small ones beside it
            try await pool.withTransaction { a in
                try await Self.append(a, big, tag: "bulk")
                try await pool.withTransaction { b in
                    try await Self.append(b, 3, tag: "small b")
                    try await pool.withTransaction { c in try await Self.append(c, AuditLog.sequenceBatch, tag: "exactly one batch") }
                }
            }
            let total = big + 3 + AuditLog.sequenceBatch
            #expect(try await audit.sequence() == total)
            #expect(try await audit.size() == total)
            let leaves = try await Self.leaves(pool)
            #expect(leaves.map(\.index) == Array(0..<total))
            #expect(Set(leaves.map { "\($0.shard)/\($0.seq)" }).count == total)
            #expect(Set(leaves.map(\.shard)).count == 3)
            #expect(try await audit.verifyTree() == nil)
            #expect(try await audit.root(size: total) == (try await InMemoryMerkleTree(leafHashes: leaves.map(\.hash)).root(size: total)))
            // and a further entry continues the numbering
            try await Self.append(pool, 1, tag: "after")
            #expect(try await audit.sequence() == total + 1)
            #expect(try await Self.leaves(pool).last?.index == total)
        }
    }

    /// `techbank audit verify` runs next to a live server: verification while entries are
    /// appended and sequenced must not report a break that is not there.
    @Test func verificationWhileTheLogGrowsFindsNoFalseBreak() async throws {
        try await TestDatabase.withPool(template: .ledger, maxConnections: 10) { pool throws in
            let audit = AuditLog(pool: pool)
            try await Self.append(pool, 50, tag: "before")
            try await audit.sequence()
            let writersDone = Box(false)
            let treeBreaks = Box<[String]>([])
            let chainBreaks = Box<[String]>([])
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    while !writersDone.get() {
                        try await audit.sequence()
                        try await Task.sleep(for: .milliseconds(1))
                    }
                }
                group.addTask {
                    while !writersDone.get() {
                        if let broken = try await audit.verifyTree() { treeBreaks.update { $0.append("\(broken)") } }
                    }
                }
                group.addTask {
                    while !writersDone.get() {
                        if let broken = try await Journal(pool: pool).verify().firstBreak { chainBreaks.update { $0.append("\(broken)") } }
                    }
                }
                try await withThrowingTaskGroup(of: Void.self) { writers in
                    for writer in 0..<4 {
                        writers.addTask {
                            for transaction in 0..<60 { try await Self.append(pool, 1 + transaction % 3, tag: "w\(writer)t\(transaction)") }
                        }
                    }
                    try await writers.waitForAll()
                }
                writersDone.update { $0 = true }
                try await group.waitForAll()
            }
            #expect(treeBreaks.get().isEmpty, "\(treeBreaks.get().prefix(3)) of \(treeBreaks.get().count)")
            // Journal.verify() reads its pages and the heads in one snapshot, so entries appended
            // meanwhile are never mistaken for a chain that does not end at its head.
            #expect(chainBreaks.get().isEmpty, "\(chainBreaks.get().prefix(3)) of \(chainBreaks.get().count)")
            try await audit.sequence()
            #expect(try await audit.verifyTree() == nil)
            #expect(try await Journal(pool: pool).verify().isIntact)
        }
    }

    // MARK: Proofs

    @Test func proofsFromTheDatabaseEqualTheDefinitionAndVerify() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let audit = AuditLog(pool: pool)
            var checked = 0
            for target in [1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 31, 33] {
                while try await audit.size() < target {
                    try await Self.append(pool, 1, tag: "p\(checked)")
                    checked += 1
                    try await audit.sequence()
                }
                let size = try await audit.size()
                #expect(size == target)
                let tree = InMemoryMerkleTree(leafHashes: try await Self.leaves(pool).map(\.hash))
                #expect(tree.size == size)
                let root = try await audit.root(size: size)
                #expect(root == (try await tree.root(size: size)), "size \(size)")
                for index in 0..<size {
                    let path = try await audit.inclusionProof(index: index, size: size)
                    #expect(path == (try await tree.inclusionProof(index: index, size: size)), "leaf \(index) of \(size)")
                    #expect(Merkle.verifyInclusion(leafHash: tree.levels[0][index], index: index, size: size, path: path, root: root),
                            "leaf \(index) of \(size)")
                    // the proof is for this leaf only
                    let other = tree.levels[0][(index + 1) % size]
                    if size > 1 {
                        #expect(!Merkle.verifyInclusion(leafHash: other, index: index, size: size, path: path, root: root))
                    }
                }
                for old in 0...size {
                    let oldRoot = try await audit.root(size: old)
                    #expect(oldRoot == (try await tree.root(size: old)))
                    let proof = try await audit.consistencyProof(oldSize: old, newSize: size)
                    #expect(proof == (try await tree.consistencyProof(oldSize: old, newSize: size)), "\(old) → \(size)")
                    #expect(Merkle.verifyConsistency(oldSize: old, newSize: size, oldRoot: oldRoot, newRoot: root, proof: proof), "\(old) → \(size)")
                    if old > 0 && old < size {
                        var forgedOld = oldRoot
                        forgedOld[0] ^= 1
                        #expect(!Merkle.verifyConsistency(oldSize: old, newSize: size, oldRoot: forgedOld, newRoot: root, proof: proof))
                    }
                }
            }
        }
    }

    // MARK: Tampering

    enum Tampering: String, CaseIterable, Sendable {
        case editAJournalPayload, editAJournalActor, deleteAJournalRow, insertAJournalRowPastTheHead, insertAJournalRowIntoAnEmptyShard,
             swapTheSeqOfTwoJournalRows, editAStoredLeafHash, deleteALeafInTheMiddle, deleteTheLastLeaf, editALevelZeroNode,
             editAMerkleNode, deleteAMerkleNode, deleteALevelZeroNode, insertAMerkleNodeBeyondTheTree
    }

    @Test func anUntamperedLogVerifies() async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let audit = AuditLog(pool: pool)
            #expect(try await audit.verifyTree() == nil)
            try await Self.populate(pool)
            #expect(try await audit.verifyTree() == nil)
            let verification = try await Journal(pool: pool).verify()
            #expect(verification.isIntact && verification.firstBreak == nil)
            #expect(verification.entriesChecked == (try await audit.size()))
            // unsequenced entries are not yet in the tree, and that is no break
            try await Self.append(pool, 4, tag: "unsequenced")
            #expect(try await audit.verifyTree() == nil)
            #expect(try await Journal(pool: pool).verify().isIntact)
        }
    }

    @Test(arguments: Tampering.allCases)
    func tamperingIsFoundAtTheRightEntryOrLeaf(_ tampering: Tampering) async throws {
        try await TestDatabase.withPool(template: .ledger) { pool throws in
            let audit = AuditLog(pool: pool)
            try await Self.populate(pool)
            #expect(try await audit.verifyTree() == nil)
            #expect(try await Journal(pool: pool).verify().isIntact)
            let before = try await Self.leaves(pool)
            let size = before.count
            // the shard with the most entries; within it entries 2 and 3
            var perShard: [Int16: Int64] = [:]
            for leaf in before { perShard[leaf.shard] = max(perShard[leaf.shard] ?? 0, leaf.seq) }
            let (shard, last) = try #require(perShard.max { $0.value < $1.value })
            #expect(last == 9 && perShard.count == 3, "\(perShard)")
            let leafOf = { (seq: Int64) in before.first { $0.shard == shard && $0.seq == seq }!.index }
            let emptyShard = try #require((Int16(0)..<16).first { perShard[$0] == nil })

            var statements: [String] = []
            var expectedRows: [Int]
            var journalBreak: (shard: Int16, seq: Int64)?  // nil: the chains still verify
            var treeBreak: Int?  // nil: the tree still verifies
            switch tampering {
            case .editAJournalPayload:
                statements = ["UPDATE ledger.journal SET payload = payload || '{\"i\": 99}' WHERE shard = \(shard) AND seq = 2"]
                expectedRows = [1]
                journalBreak = (shard, 2)
                treeBreak = leafOf(2)
            case .editAJournalActor:
                statements = ["UPDATE ledger.journal SET actor_id = gen_random_uuid() WHERE shard = \(shard) AND seq = 2 AND actor_id IS NOT NULL"]
                expectedRows = [1]
                journalBreak = (shard, 2)
                treeBreak = leafOf(2)
            case .deleteAJournalRow:
                statements = ["DELETE FROM ledger.journal WHERE shard = \(shard) AND seq = 2"]
                expectedRows = [1]
                journalBreak = (shard, 2)
                treeBreak = leafOf(2)
            case .insertAJournalRowPastTheHead:
                statements = [
                    """
                    INSERT INTO ledger.journal (shard, seq, event_type, subject_id, payload, created_at, prev_hash, hash)
                    SELECT shard, seq + 1, 'note', NULL, '{"forged": true}', created_at, hash,
                           sha256(hash || ledger.journal_canonical(shard, seq + 1, 'note', NULL, created_at, '{"forged": true}', NULL, NULL, NULL))
                      FROM ledger.journal WHERE shard = \(shard) AND seq = \(last)
                    """,
                ]
                expectedRows = [1]
                journalBreak = (shard, last + 1)
                treeBreak = nil  // not sequenced: the tree has nothing to compare it with
            case .insertAJournalRowIntoAnEmptyShard:
                statements = [
                    """
                    INSERT INTO ledger.journal (shard, seq, event_type, subject_id, payload, created_at, prev_hash, hash)
                    VALUES (\(emptyShard), 1, 'note', NULL, '{"forged": true}', now(), decode(repeat('00', 32), 'hex'),
                            sha256(decode(repeat('00', 32), 'hex')
                                   || ledger.journal_canonical(\(emptyShard)::int2, 1, 'note', NULL, now(), '{"forged": true}', NULL, NULL, NULL)))
                    """,
                ]
                expectedRows = [1]
                journalBreak = (emptyShard, 1)
                treeBreak = nil
            case .swapTheSeqOfTwoJournalRows:
                statements = [
                    "UPDATE ledger.journal SET seq = 1000000 WHERE shard = \(shard) AND seq = 2",
                    "UPDATE ledger.journal SET seq = 2 WHERE shard = \(shard) AND seq = 3",
                    "UPDATE ledger.journal SET seq = 3 WHERE shard = \(shard) AND seq = 1000000",
                ]
                expectedRows = [1, 1, 1]
                journalBreak = (shard, 2)
                treeBreak = min(leafOf(2), leafOf(3))
            case .editAStoredLeafHash:
                let leaf = size / 2
                statements = ["UPDATE ledger.journal_leaves SET leaf_hash = sha256(leaf_hash) WHERE leaf_index = \(leaf)"]
                expectedRows = [1]
                treeBreak = leaf
            case .deleteALeafInTheMiddle:
                let leaf = size / 2
                statements = ["DELETE FROM ledger.journal_leaves WHERE leaf_index = \(leaf)"]
                expectedRows = [1]
                treeBreak = leaf
            case .deleteTheLastLeaf:
                statements = ["DELETE FROM ledger.journal_leaves WHERE leaf_index = \(size - 1)"]
                expectedRows = [1]
                treeBreak = size - 1
            case .editALevelZeroNode:
                let leaf = size / 2
                statements = ["UPDATE ledger.merkle_nodes SET hash = sha256(hash) WHERE level = 0 AND index = \(leaf)"]
                expectedRows = [1]
                treeBreak = leaf
            case .editAMerkleNode:
                // level 2, index 1: the subtree of leaves 4 to 7
                statements = ["UPDATE ledger.merkle_nodes SET hash = sha256(hash) WHERE level = 2 AND index = 1"]
                expectedRows = [1]
                treeBreak = 4
            case .deleteAMerkleNode:
                // level 1, index 3: the subtree of leaves 6 and 7
                statements = ["DELETE FROM ledger.merkle_nodes WHERE level = 1 AND index = 3"]
                expectedRows = [1]
                treeBreak = 6
            case .deleteALevelZeroNode:
                let leaf = size - 2
                statements = ["DELETE FROM ledger.merkle_nodes WHERE level = 0 AND index = \(leaf)"]
                expectedRows = [1]
                treeBreak = leaf
            case .insertAMerkleNodeBeyondTheTree:
                statements = ["INSERT INTO ledger.merkle_nodes (level, index, hash) VALUES (0, \(size), sha256('\\x00'::bytea))"]
                expectedRows = [1]
                treeBreak = size
            }
            #expect(size >= 12, "the tree must cover the nodes the cases name: \(size)")
            #expect(try await Self.tamper(pool, statements) == expectedRows)

            let verification = try await Journal(pool: pool).verify()
            if let journalBreak {
                let found = try #require(verification.firstBreak, "\(tampering) went unnoticed by Journal.verify")
                #expect(found.shard == journalBreak.shard && found.seq == journalBreak.seq, "\(found)")
            } else {
                #expect(verification.isIntact, "\(String(describing: verification.firstBreak))")
            }
            let broken = try await audit.verifyTree()
            if let treeBreak {
                let found = try #require(broken, "\(tampering) went unnoticed by verifyTree")
                #expect(found.leafIndex == treeBreak, "\(found)")
                #expect(found.description.hasPrefix("journal leaf \(treeBreak): "), "\(found)")
            } else {
                #expect(broken == nil, "\(String(describing: broken))")
            }
            #expect(journalBreak != nil || treeBreak != nil)
            if tampering == .insertAJournalRowPastTheHead {
                // once the forged entry is sequenced, the chains still give it away
                #expect(try await audit.sequence() == size + 1)
                #expect(try await Journal(pool: pool).verify().firstBreak?.seq == last + 1)
            }
        }
    }

    // MARK: Checkpoints

    static let origin = "techbank.test/journal"
    static var fixedKey: Curve25519.Signing.PrivateKey { try! Curve25519.Signing.PrivateKey(rawRepresentation: Data((0..<32).map { UInt8($0 * 7 + 1) })) }
    static let root: Merkle.Hash = Array(SHA256.hash(data: Data("a root".utf8)))

    /// The note with its signature line's blob transformed.
    static func withBlob(_ note: String, _ change: (inout [UInt8]) -> Void) throws -> String {
        let parts = note.components(separatedBy: "\n\n")
        try #require(parts.count == 2)
        let fields = parts[1].dropLast().split(separator: " ")
        try #require(fields.count == 3)
        var blob = Array(try #require(Data(base64Encoded: String(fields[2]))))
        change(&blob)
        return parts[0] + "\n\n" + "\(fields[0]) \(fields[1]) \(Data(blob).base64EncodedString())\n"
    }

    @Test func aSignedCheckpointHasTheC2SPFormatAndVerifies() throws {
        let signer = CheckpointSigner(name: Self.origin, key: Self.fixedKey)
        let publicKey = Array(Self.fixedKey.publicKey.rawRepresentation)
        #expect(signer.publicKey == publicKey)
        // key id = SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[:4], computed here independently
        let keyID = Array(SHA256.hash(data: Data(Self.origin.utf8) + Data([0x0A, 0x01]) + Data(publicKey)).prefix(4))
        #expect(signer.verifierKey == "\(Self.origin)+\(Hex.encode(keyID))+\(Data([0x01] + publicKey).base64EncodedString())")

        let note = try signer.sign(size: 42, root: Self.root)
        let text = "\(Self.origin)\n42\n\(Data(Self.root).base64EncodedString())\n"
        #expect(note.hasPrefix(text + "\n— \(Self.origin) "))
        #expect(note.hasSuffix("\n") && note.split(separator: "\n", omittingEmptySubsequences: false).count == 6)
        let line = note.dropFirst(text.count + 1).dropLast()
        let fields = line.split(separator: " ")
        try #require(fields.count == 3)
        let blob = Array(try #require(Data(base64Encoded: String(fields[2]))))
        #expect(blob.count == 68)
        #expect(Array(blob.prefix(4)) == keyID)
        #expect(Self.fixedKey.publicKey.isValidSignature(Data(blob.dropFirst(4)), for: Data(text.utf8)), "an Ed25519 signature of the text")

        let verifier = try CheckpointVerifier(verifierKey: signer.verifierKey)
        #expect(verifier.name == Self.origin && verifier.publicKey == publicKey)
        let checkpoint = try verifier.verify(note)
        #expect(checkpoint == Checkpoint(origin: Self.origin, size: 42, root: Self.root))
        #expect(checkpoint.text == text)
        // the empty tree, and a fresh key, too
        let fresh = CheckpointSigner(name: "another.example/log")
        let empty = try CheckpointVerifier(verifierKey: fresh.verifierKey).verify(try fresh.sign(size: 0, root: Merkle.emptyRoot))
        #expect(empty.size == 0 && empty.root == Merkle.emptyRoot && empty.origin == "another.example/log")
        // a co-signature by an unknown key is ignored (signed notes may carry several)
        let other = CheckpointSigner(name: "witness.example", key: Curve25519.Signing.PrivateKey())
        let cosigned = note + (try other.sign(size: 42, root: Self.root)).components(separatedBy: "\n\n")[1]
        #expect(try verifier.verify(cosigned) == checkpoint)
    }

    @Test func alteredCheckpointsAndForeignSignaturesAreRejected() throws {
        let signer = CheckpointSigner(name: Self.origin, key: Self.fixedKey)
        let verifier = try CheckpointVerifier(verifierKey: signer.verifierKey)
        let note = try signer.sign(size: 42, root: Self.root)
        func rejected(_ forged: String, _ comment: Comment) {
            #expect(throws: CheckpointError.badSignature, comment) { _ = try verifier.verify(forged) }
        }
        rejected(note.replacingOccurrences(of: "\n42\n", with: "\n43\n"), "a changed size")
        rejected(note.replacingOccurrences(of: "\n42\n", with: "\n042\n"), "a reformatted size")
        var otherRoot = Self.root
        otherRoot[31] ^= 0x80
        rejected(note.replacingOccurrences(of: Data(Self.root).base64EncodedString(), with: Data(otherRoot).base64EncodedString()), "a changed root")
        rejected(note.replacingOccurrences(of: Self.origin + "\n42", with: "techbank.evil/journal\n42"), "a changed origin line")
        for index in [4, 5, 40, 67] {
            rejected(try Self.withBlob(note) { $0[index] ^= 0x01 }, "signature byte \(index) changed")
        }
        // another key under the same name: its key id differs, so no signature by ours remains
        let impostor = CheckpointSigner(name: Self.origin, key: Curve25519.Signing.PrivateKey())
        #expect(impostor.verifierKey != signer.verifierKey)
        rejected(try impostor.sign(size: 42, root: Self.root), "signed by another key of the same name")
        // … even when it claims our key id
        let keyID = Array(SHA256.hash(data: Data(Self.origin.utf8) + Data([0x0A, 0x01]) + Data(signer.publicKey)).prefix(4))
        rejected(try Self.withBlob(try impostor.sign(size: 42, root: Self.root)) { $0.replaceSubrange(0..<4, with: keyID) },
                 "signed by another key under our key id")
        // a signature by the right key, but under another name
        let renamed = CheckpointSigner(name: "techbank.other/journal", key: Self.fixedKey)
        #expect(throws: (any Error).self) { _ = try verifier.verify(try renamed.sign(size: 42, root: Self.root)) }
        // no signature at all, or a malformed signature line
        #expect(throws: (any Error).self) { _ = try verifier.verify(Checkpoint(origin: Self.origin, size: 42, root: Self.root).text) }
        #expect(throws: (any Error).self) { _ = try verifier.verify(note.replacingOccurrences(of: "— ", with: "- ")) }
    }

    @Test func malformedVerifierKeysAreRejected() throws {
        let signer = CheckpointSigner(name: Self.origin, key: Self.fixedKey)
        let parts = signer.verifierKey.split(separator: "+", maxSplits: 2).map(String.init)
        try #require(parts.count == 3)
        let raw = [UInt8](Data(base64Encoded: parts[2])!)
        var wrongID = Array(parts[1])
        wrongID[0] = wrongID[0] == "0" ? "1" : "0"
        let malformed: [(String, String)] = [
            ("wrong key id", "\(parts[0])+\(String(wrongID))+\(parts[2])"),
            ("the key id of another name", "techbank.other/journal+\(parts[1])+\(parts[2])"),
            ("31-byte key", "\(parts[0])+\(parts[1])+\(Data(raw.dropLast()).base64EncodedString())"),
            ("33-byte key", "\(parts[0])+\(parts[1])+\(Data(raw + [0]).base64EncodedString())"),
            ("no type byte", "\(parts[0])+\(parts[1])+\(Data(raw.dropFirst()).base64EncodedString())"),
            ("wrong type byte", "\(parts[0])+\(parts[1])+\(Data([0x02] + raw.dropFirst()).base64EncodedString())"),
            ("not base64", "\(parts[0])+\(parts[1])+!!!"),
            ("two parts", "\(parts[0])+\(parts[2])"),
            ("four parts", "\(parts[0])+\(parts[1])+\(parts[2])+x"),
            ("no name", "+\(parts[1])+\(parts[2])"),
            ("empty", ""),
        ]
        for (why, key) in malformed {
            #expect(throws: CheckpointError.self, "\(why)") { _ = try CheckpointVerifier(verifierKey: key) }
            do {
                _ = try CheckpointVerifier(verifierKey: key)
            } catch let error as CheckpointError {
                if case .malformedKey = error {} else { Issue.record("\(why): \(error)") }
            }
        }
        // the well-formed key (its id in upper case, too) parses
        _ = try CheckpointVerifier(verifierKey: signer.verifierKey)
        _ = try CheckpointVerifier(verifierKey: "\(parts[0])+\(parts[1].uppercased())+\(parts[2])")
    }

    /// Standard base64 has '+' among its digits; the verifier key's third part may hold some (as in
    /// Go's golang.org/x/mod/sumdb/note, which splits off only the name and the id).
    @Test func verifierKeysWhoseBase64HoldsAPlusParse() throws {
        var found = 0
        for seed in 0..<200 {
            let key = try Curve25519.Signing.PrivateKey(rawRepresentation: Data(SHA256.hash(data: Data("seed \(seed)".utf8))))
            let signer = CheckpointSigner(name: Self.origin, key: key)
            guard signer.verifierKey.split(separator: "+").count > 3 else { continue }
            found += 1
            let verifier = try CheckpointVerifier(verifierKey: signer.verifierKey)
            #expect(verifier.publicKey == signer.publicKey)
            #expect(try verifier.verify(try signer.sign(size: 3, root: Self.root)).size == 3)
        }
        #expect(found > 10)
    }

    // MARK: Remote audit

    /// A server, in memory, that serves a signed checkpoint of `tree` and its consistency proofs.
    final class FakeServer: Sendable {
        let signer: CheckpointSigner
        let tree: InMemoryMerkleTree
        let requests = Mutex<[String]>([])

        init(signer: CheckpointSigner, leaves: [Merkle.Hash]) {
            self.signer = signer
            self.tree = InMemoryMerkleTree(leafHashes: leaves)
        }

        var note: String {
            get async throws { try signer.sign(size: tree.size, root: try await tree.root(size: tree.size)) }
        }

        var fetch: @Sendable (String) async throws -> Data {
            { path in
                self.requests.withLock { $0.append(path) }
                if path == "/v1/audit/checkpoint" { return Data(try await self.note.utf8) }
                let components = try #require(URLComponents(string: path))
                try #require(components.path == "/v1/audit/proofs/consistency", "unexpected request \(path)")
                let query = Dictionary(uniqueKeysWithValues: (components.queryItems ?? []).map { ($0.name, $0.value ?? "") })
                let from = try #require(query["from"].flatMap { Int($0) }), to = try #require(query["to"].flatMap { Int($0) })
                try #require(from <= to && to <= self.tree.size, "\(path)")
                let proof = try await self.tree.consistencyProof(oldSize: from, newSize: to)
                return try JSONSerialization.data(withJSONObject: ["from": from, "to": to, "proof": proof.map { Hex.encode($0) }])
            }
        }
    }

    static func leafHashes(_ count: Int, forging index: Int? = nil) -> [Merkle.Hash] {
        (0..<count).map { Merkle.leafHash(Array("entry \($0)\($0 == index ? " (rewritten)" : "")".utf8)) }
    }

    @Test func remoteAuditAcceptsAConsistentlyGrownLog() async throws {
        let signer = CheckpointSigner(name: Self.origin, key: Self.fixedKey)
        for (old, new) in [(0, 5), (1, 2), (10, 23), (16, 17), (7, 7), (3, 64)] {
            let saved = try await FakeServer(signer: signer, leaves: Self.leafHashes(old)).note
            let server = FakeServer(signer: signer, leaves: Self.leafHashes(new))
            let outcome = try await RemoteAudit.check(savedNote: saved, verifierKey: signer.verifierKey, fetch: server.fetch)
            #expect(outcome.checkpoint == Checkpoint(origin: Self.origin, size: new, root: try await server.tree.root(size: new)), "\(old) → \(new)")
            #expect(outcome.note == (try await server.note))
            #expect(outcome.previous == (try CheckpointVerifier(verifierKey: signer.verifierKey).verify(saved)))
            #expect(server.requests.withLock { $0 } == ["/v1/audit/checkpoint", "/v1/audit/proofs/consistency?from=\(old)&to=\(new)"])
        }
    }

    @Test func remoteAuditWithoutASavedNoteReturnsTheCheckpoint() async throws {
        let signer = CheckpointSigner(name: Self.origin, key: Self.fixedKey)
        let server = FakeServer(signer: signer, leaves: Self.leafHashes(9))
        let outcome = try await RemoteAudit.check(savedNote: nil, verifierKey: signer.verifierKey, fetch: server.fetch)
        let root = try await server.tree.root(size: 9)
        #expect(outcome.checkpoint.size == 9 && outcome.checkpoint.root == root)
        #expect(outcome.previous == nil)
        #expect(outcome.note == (try await server.note))
        #expect(server.requests.withLock { $0 } == ["/v1/audit/checkpoint"])
        // even then, the signature is checked
        let impostor = FakeServer(signer: CheckpointSigner(name: Self.origin), leaves: Self.leafHashes(9))
        await #expect(throws: RemoteAudit.Failure.self) {
            _ = try await RemoteAudit.check(savedNote: nil, verifierKey: signer.verifierKey, fetch: impostor.fetch)
        }
    }

    @Test func remoteAuditCatchesARewrittenShrunkOrForeignLog() async throws {
        let signer = CheckpointSigner(name: Self.origin, key: Self.fixedKey)
        let saved = try await FakeServer(signer: signer, leaves: Self.leafHashes(10)).note
        let failing: [(String, FakeServer)] = [
            // the right key signed a tree in which an early entry was rewritten, and serves its honest-looking proof
            ("rewrote entry 3 and grew", FakeServer(signer: signer, leaves: Self.leafHashes(20, forging: 3))),
            ("rewrote entry 0 and grew", FakeServer(signer: signer, leaves: Self.leafHashes(11, forging: 0))),
            ("rewrote the last saved entry and grew", FakeServer(signer: signer, leaves: Self.leafHashes(16, forging: 9))),
            ("rewrote entry 5 and did not grow", FakeServer(signer: signer, leaves: Self.leafHashes(10, forging: 5))),
            ("shrank", FakeServer(signer: signer, leaves: Self.leafHashes(6))),
            ("emptied", FakeServer(signer: signer, leaves: [])),
            ("signed by another key of the same name", FakeServer(signer: CheckpointSigner(name: Self.origin), leaves: Self.leafHashes(20))),
        ]
        for (why, server) in failing {
            await #expect(throws: RemoteAudit.Failure.self, "\(why)") {
                _ = try await RemoteAudit.check(savedNote: saved, verifierKey: signer.verifierKey, fetch: server.fetch)
            }
        }
        // a saved note that this key did not sign
        let honest = FakeServer(signer: signer, leaves: Self.leafHashes(20))
        let foreignSaved = try await FakeServer(signer: CheckpointSigner(name: Self.origin), leaves: Self.leafHashes(10)).note
        await #expect(throws: RemoteAudit.Failure.self) {
            _ = try await RemoteAudit.check(savedNote: foreignSaved, verifierKey: signer.verifierKey, fetch: honest.fetch)
        }
        // a proof that does not fit: the honest proof under a forged root, and garbage
        let forged = FakeServer(signer: signer, leaves: Self.leafHashes(20, forging: 2))
        let mixed: @Sendable (String) async throws -> Data = { path in
            path == "/v1/audit/checkpoint" ? try await forged.fetch(path) : try await honest.fetch(path)
        }
        await #expect(throws: RemoteAudit.Failure.self) {
            _ = try await RemoteAudit.check(savedNote: saved, verifierKey: signer.verifierKey, fetch: mixed)
        }
        let garbage: @Sendable (String) async throws -> Data = { path in
            path == "/v1/audit/checkpoint" ? try await honest.fetch(path) : Data(#"{"from": 10, "to": 20, "proof": ["zz"]}"#.utf8)
        }
        await #expect(throws: RemoteAudit.Failure.self) {
            _ = try await RemoteAudit.check(savedNote: saved, verifierKey: signer.verifierKey, fetch: garbage)
        }
        // and the honest server passes
        let outcome = try await RemoteAudit.check(savedNote: saved, verifierKey: signer.verifierKey, fetch: honest.fetch)
        #expect(outcome.previous?.size == 10 && outcome.checkpoint.size == 20)
    }
}
