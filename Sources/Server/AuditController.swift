import Foundation
import Hummingbird
import Ledger
import TechBank

/// `/v1/audit`: the journal as a transparency log. Events are numbered from 0 (their leaf index
/// in the RFC 9162 Merkle tree); the committee and the operator read every event, other
/// organizations the events about their own objects. Checkpoints are C2SP signed notes that anyone
/// can check with the verifier key; proofs follow RFC 9162 §2.1.3 and §2.1.4.
struct AuditController: Sendable {
    let audit: AuditLog
    let scope: AuditScope
    let signer: CheckpointSigner
    /// Whether `audit` reads a standby, which cannot number events: it serves the log as far as
    /// it has replayed it (the primary numbers committed events every 250 ms, see `Webhooks`).
    var onStandby = false

    /// The log's size for this request: on the primary, after numbering every committed event.
    func currentSize() async throws -> Int {
        onStandby ? try await audit.size() : try await audit.sequence()
    }

    struct EventBody: Encodable, Sendable {
        let entry: AuditLog.Entry

        enum CodingKeys: String, CodingKey {
            case seq, type, payload, canonical
            case subjectID = "subject_id"
            case createdAt = "created_at"
            case leafHash = "leaf_hash"
            case shard
            case shardSeq = "shard_seq"
            case actorID = "actor_id"
            case keyID = "key_id"
            case requestID = "request_id"
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(entry.leafIndex, forKey: .seq)
            try c.encode(entry.eventType, forKey: .type)
            try c.encode(entry.subjectID, forKey: .subjectID)
            try c.encode(entry.createdAt, forKey: .createdAt)
            try c.encode(try JSONValue(entry.payload), forKey: .payload)
            try c.encode(Data(entry.canonical).base64EncodedString(), forKey: .canonical)
            try c.encode(Hex.encode(entry.leafHash), forKey: .leafHash)
            try c.encode(entry.shard, forKey: .shard)
            try c.encode(entry.shardSeq, forKey: .shardSeq)
            try c.encode(entry.actorID, forKey: .actorID)
            try c.encode(entry.keyID, forKey: .keyID)
            try c.encode(entry.requestID, forKey: .requestID)
        }
    }

    struct CheckpointBody: Encodable, Sendable {
        let size: Int
        let rootHash: String
        let note: String

        enum CodingKeys: String, CodingKey {
            case size, note
            case rootHash = "root_hash"
        }
    }

    struct PublicKeyBody: Encodable, Sendable {
        let publicKey: String
        let verifierKey: String

        enum CodingKeys: String, CodingKey {
            case publicKey = "public_key"
            case verifierKey = "verifier_key"
        }
    }

    struct InclusionBody: Encodable, Sendable {
        let leafIndex: Int
        let treeSize: Int
        let leafHash: String
        let auditPath: [String]

        enum CodingKeys: String, CodingKey {
            case leafIndex = "leaf_index"
            case treeSize = "tree_size"
            case leafHash = "leaf_hash"
            case auditPath = "audit_path"
        }
    }

    struct ConsistencyBody: Encodable, Sendable {
        let from: Int
        let to: Int
        let proof: [String]
    }

    func register(on router: some RouterMethods<AppRequestContext>) {
        router.get("audit/events") { request, context in try await list(request, context).response }
        router.get("audit/events/:seq") { request, context in
            let identity = try context.requireIdentity()
            guard let seq = context.parameters.get("seq").flatMap(Int.init), seq >= 0 else { throw APIError.notFound }
            _ = try await currentSize()
            guard let entry = try await audit.entry(seq), try await scope.mayRead(entry, identity) else { throw APIError.notFound }
            return try Reply.json(EventBody(entry: entry)).response
        }
        router.get("audit/checkpoint") { request, context in
            _ = try context.requireIdentity()
            let size = try await currentSize()
            let root = try await audit.root(size: size)
            let note = try signer.sign(size: size, root: root)
            if Self.prefersJSON(request.headers[.accept]) {
                return try Reply.json(CheckpointBody(size: size, rootHash: Hex.encode(root), note: note)).response
            }
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; charset=utf-8"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: note)))
        }
        router.get("audit/public-key") { _, context in
            _ = try context.requireIdentity()
            return try Reply.json(PublicKeyBody(publicKey: Data(signer.publicKey).base64EncodedString(), verifierKey: signer.verifierKey)).response
        }
        router.get("audit/proofs/inclusion") { request, context in
            let identity = try context.requireIdentity()
            let size = try await currentSize()
            let seq = try Self.integer(request, "seq")
            let treeSize = try Self.integer(request, "size")
            guard treeSize >= 1, treeSize <= size else { throw APIError.validation("size", "must be 1 to the current tree size \(size)") }
            guard seq < treeSize else { throw APIError.validation("seq", "must be below size") }
            guard let entry = try await audit.entry(seq), try await scope.mayRead(entry, identity) else { throw APIError.notFound }
            let path = try await audit.inclusionProof(index: seq, size: treeSize)
            return try Reply.json(InclusionBody(leafIndex: seq, treeSize: treeSize, leafHash: Hex.encode(entry.leafHash), auditPath: path.map(Hex.encode))).response
        }
        router.get("audit/proofs/consistency") { request, context in
            _ = try context.requireIdentity()
            let size = try await currentSize()
            let from = try Self.integer(request, "from")
            let to = try Self.integer(request, "to")
            guard to <= size else { throw APIError.validation("to", "must be at most the current tree size \(size)") }
            guard from <= to else { throw APIError.validation("from", "must not be above to") }
            let proof = try await audit.consistencyProof(oldSize: from, newSize: to)
            return try Reply.json(ConsistencyBody(from: from, to: to, proof: proof.map(Hex.encode))).response
        }
    }

    func list(_ request: Request, _ context: AppRequestContext) async throws -> Reply {
        let identity = try context.requireIdentity()
        let (limit, cursor) = try request.page()
        var filter = AuditLog.Filter()
        filter.subjectID = try request.uuidQuery("subject_id")
        filter.actorID = try request.uuidQuery("actor_id")
        if let type = request.uri.queryParameters["type"] {
            guard (1...100).contains(type.unicodeScalars.count) else { throw APIError.validation("type", "must be 1 to 100 characters") }
            filter.eventType = String(type)
        }
        filter.from = try request.timeQuery("from")
        filter.to = try request.timeQuery("to")
        let after = try cursor.map { text -> Int in
            guard let value = Int(try Cursor.decode(text)), value >= 0 else { throw Cursor.invalid }
            return value
        } ?? -1
        _ = try await currentSize()
        let entries = try await scope.entries(filter, visibleTo: identity, after: after, limit: limit + 1)
        let page = Array(entries.prefix(limit))
        return try Reply.json(PageBody(data: page.map(EventBody.init),
                                       nextCursor: entries.count > limit ? page.last.map { Cursor.encode(String($0.leafIndex)) } : nil))
    }

    /// Whether `Accept` ranks `application/json` above `text/plain` (the default).
    static func prefersJSON(_ accept: String?) -> Bool {
        guard let accept else { return false }
        let json = AcceptHeader.quality(accept, of: ["application/json"])
        return json > 0 && json > AcceptHeader.quality(accept, of: ["text/plain", "text/*", "*/*"])
    }

    static func integer(_ request: Request, _ name: String) throws -> Int {
        guard let text = request.uri.queryParameters[Substring(name)] else { throw APIError.validation(name, "is required") }
        guard let value = Int(String(text)), value >= 0 else { throw APIError.validation(name, "must be a non-negative integer") }
        return value
    }
}

