import Crypto
import Foundation
import HTTPTypes
import Ledger
import Postgres
import Testing
import TestSupport

/// `/v1/audit`: signed checkpoints that verify with the published key, consistency and inclusion
/// proofs that verify against them, the event listing and who sees which events, validation, and
/// the committee's remote audit run through the API.
@Suite("Audit API")
struct AuditAPITests {
    // MARK: Helpers

    /// The verifier key and the raw public key the server publishes.
    static func publicKey(_ api: API, key: String = operatorKey) async throws -> (verifierKey: String, publicKey: [UInt8]) {
        let response = try await api.call(.get, "/v1/audit/public-key", key: key)
        try #require(response.status == .ok, "\(response)")
        let text = try #require(response.json["public_key"].string)
        let raw = try #require(Data(base64Encoded: text))
        return (try #require(response.json["verifier_key"].string), Array(raw))
    }

    /// The current checkpoint, read as text/plain and verified with `verifierKey`.
    static func checkpoint(_ api: API, verifierKey: String, key: String = operatorKey) async throws -> (checkpoint: Checkpoint, note: String) {
        let response = try await api.call(.get, "/v1/audit/checkpoint", key: key)
        try #require(response.status == .ok, "\(response)")
        #expect(response.contentType?.hasPrefix("text/plain") == true, "\(response)")
        return (try CheckpointVerifier(verifierKey: verifierKey).verify(response.text), response.text)
    }

    /// Every event `key` sees with the query `parameters`, following the cursor with pages of `limit`.
    static func events(_ api: API, _ parameters: [(String, String)] = [], key: String = operatorKey, limit: Int = 200,
                       sourceLocation: SourceLocation = #_sourceLocation) async throws -> [JSON] {
        var all: [JSON] = []
        var cursor: String?
        var pages = 0
        repeat {
            var query = parameters + [("limit", "\(limit)")]
            if let cursor { query.append(("cursor", cursor)) }
            let uri = "/v1/audit/events?" + query.map { "\($0.0)=\(queryEncoded($0.1))" }.joined(separator: "&")
            let response = try await api.call(.get, uri, key: key, sourceLocation: sourceLocation)
            try #require(response.status == .ok, "\(response)", sourceLocation: sourceLocation)
            let page = response.json["data"].array
            #expect(page.count <= limit, sourceLocation: sourceLocation)
            all += page
            cursor = response.json["next_cursor"].string
            if cursor != nil { #expect(page.count == limit, "a page before the last is full", sourceLocation: sourceLocation) }
            else { #expect(response.json["next_cursor"].isNull, "\(response)", sourceLocation: sourceLocation) }
            pages += 1
            try #require(pages < 1_000, sourceLocation: sourceLocation)
        } while cursor != nil
        return all
    }

    static func seqs(_ events: [JSON]) -> [Int64] { events.compactMap { $0["seq"].int } }
    static func subjects(_ events: [JSON]) -> [String?] { events.map { $0["subject_id"].string } }
    static func first(_ events: [JSON], about subject: String) -> JSON? { events.first { $0["subject_id"].string == subject } }

    /// Expects the listing with `parameters` to be exactly the events of `all` that `predicate` selects, in pages of 2 and 200.
    static func expectFilter(_ api: API, _ all: [JSON], _ parameters: [(String, String)], nonEmpty: Bool = true,
                             sourceLocation: SourceLocation = #_sourceLocation, _ predicate: (JSON) -> Bool) async throws {
        let expected = all.filter(predicate)
        for limit in [2, 200] {
            let found = try await events(api, parameters, limit: limit, sourceLocation: sourceLocation)
            #expect(seqs(found) == seqs(expected), "\(parameters)", sourceLocation: sourceLocation)
        }
        if nonEmpty { #expect(!expected.isEmpty, "\(parameters) selects something", sourceLocation: sourceLocation) }
    }

    /// The leaf hashes the database stores, in leaf order.
    static func storedLeaves(_ api: API) async throws -> [Merkle.Hash] {
        try await api.pool.withConnection { connection in
            try await connection.query("SELECT leaf_hash FROM ledger.journal_leaves ORDER BY leaf_index")
        }.map { Array(try $0.decode(Data.self, at: 0)) }
    }

    /// Some activity: an organization with a technology and an account.
    @discardableResult
    static func activity(_ api: API, _ name: String) async throws -> (org: Org, technology: String, account: String) {
        let org = try await api.createOrganization(name, kind: "institute")
        let technology = try await api.registerTechnologyID(as: org, technologyBody("\(name) technology"))
        let account = try await api.createAccount(for: org)
        return (org, technology, account)
    }

    // MARK: Checkpoints and consistency

    @Test func theCheckpointVerifiesWithThePublishedKeyAndGrowsConsistently() async throws {
        try await withAPI { api in
            try await Self.activity(api, "Institute of Optics")
            let (verifierKey, publicKey) = try await Self.publicKey(api)
            // public_key is the key in verifier_key: name+id+base64(0x01 ‖ key), id = SHA-256(name ‖ 0x0A ‖ 0x01 ‖ key)[:4]
            #expect(publicKey.count == 32)
            let parts = verifierKey.split(separator: "+", maxSplits: 2).map(String.init)
            try #require(parts.count == 3, "\(verifierKey)")
            #expect(Data(base64Encoded: parts[2]).map(Array.init) == [0x01] + publicKey)
            #expect(parts[1] == Hex.encode(Array(SHA256.hash(data: Array(parts[0].utf8) + [0x0A, 0x01] + publicKey).prefix(4))))

            let (first, _) = try await Self.checkpoint(api, verifierKey: verifierKey)
            #expect(first.origin == parts[0])
            let leaves = try await Self.storedLeaves(api)
            let journal = try await api.pool.withConnection { try await $0.query("SELECT count(*) FROM ledger.journal")[0].decode(Int.self, at: 0) }
            #expect(first.size == leaves.count && first.size == journal && first.size > 0, "every committed entry is in the checkpoint")
            let firstRoot = try await InMemoryMerkleTree(leafHashes: leaves).root(size: first.size)
            #expect(first.root == firstRoot)

            // as JSON: size, root_hash in hex, and the same signed note
            let json = try await api.call(.get, "/v1/audit/checkpoint", headers: [.accept: "application/json"])
            try #require(json.status == .ok, "\(json)")
            #expect(json.contentType?.hasPrefix("application/json") == true, "\(json)")
            #expect(json.json["size"].int == Int64(first.size))
            #expect(json.json["root_hash"].string == Hex.encode(first.root))
            let jsonNote = try #require(json.json["note"].string)
            #expect(try CheckpointVerifier(verifierKey: verifierKey).verify(jsonNote) == first)

            // any organization may read checkpoints and the key; nobody unauthenticated
            let member = try await api.createOrganization("Member", kind: "enterprise")
            #expect(try await Self.publicKey(api, key: member.key).verifierKey == verifierKey)
            #expect(try await Self.checkpoint(api, verifierKey: verifierKey, key: member.key).checkpoint.size > first.size)
            for path in ["/v1/audit/checkpoint", "/v1/audit/public-key", "/v1/audit/events", "/v1/audit/proofs/consistency?from=0&to=1"] {
                #expect(try await api.call(.get, path, key: nil).status == .unauthorized, "\(path)")
            }

            // more activity: the new checkpoint extends the old one
            try await Self.activity(api, "Institute of Acoustics")
            let (second, _) = try await Self.checkpoint(api, verifierKey: verifierKey)
            #expect(second.size > first.size)
            for (old, oldRoot) in [(first.size, first.root), (0, Merkle.emptyRoot), (second.size, second.root)] {
                let response = try await api.call(.get, "/v1/audit/proofs/consistency?from=\(old)&to=\(second.size)")
                try #require(response.status == .ok, "\(response)")
                #expect(response.json["from"].int == Int64(old) && response.json["to"].int == Int64(second.size))
                let proof = try response.json["proof"].array.map { try #require($0.string.flatMap(Hex.decode)) }
                let hashSized = proof.allSatisfy { $0.count == 32 }
                #expect(hashSized)
                #expect(Merkle.verifyConsistency(oldSize: old, newSize: second.size, oldRoot: oldRoot, newRoot: second.root, proof: proof),
                        "\(old) → \(second.size)")
                if old == first.size {
                    #expect(!proof.isEmpty)
                    var forged = first.root
                    forged[0] ^= 1
                    #expect(!Merkle.verifyConsistency(oldSize: old, newSize: second.size, oldRoot: forged, newRoot: second.root, proof: proof))
                }
            }
            // and between two older sizes, which proves the first checkpoint's prefix of the second
            let response = try await api.call(.get, "/v1/audit/proofs/consistency?from=1&to=\(first.size)")
            let proof = try response.json["proof"].array.map { try #require($0.string.flatMap(Hex.decode)) }
            #expect(Merkle.verifyConsistency(oldSize: 1, newSize: first.size, oldRoot: leaves[0], newRoot: first.root, proof: proof))
        }
    }

    // MARK: Events and inclusion

    @Test func everyEventCarriesItsLeafAndProvesItsInclusion() async throws {
        try await withAPI { api in
            try await Self.activity(api, "Institute of Mechanics")
            let (verifierKey, _) = try await Self.publicKey(api)
            let (checkpoint, _) = try await Self.checkpoint(api, verifierKey: verifierKey)
            let listed = try await Self.events(api)
            #expect(Self.seqs(listed) == Array(0..<Int64(checkpoint.size)))
            for seq in 0..<checkpoint.size {
                let response = try await api.call(.get, "/v1/audit/events/\(seq)")
                try #require(response.status == .ok, "\(response)")
                let event = response.json
                #expect(event == listed[seq], "the single event is the listed one")
                #expect(event["seq"].int == Int64(seq))
                let canonicalText = try #require(event["canonical"].string)
                let canonical = Array(try #require(Data(base64Encoded: canonicalText)))
                let leafHash = Array(SHA256.hash(data: [0x00] + canonical))
                #expect(event["leaf_hash"].string == Hex.encode(leafHash), "leaf \(seq)")
                // the canonical bytes are the entry itself
                let fields = JSON.parse(Data(canonical))
                #expect(fields["shard"] == event["shard"] && fields["seq"] == event["shard_seq"], "\(fields)")
                #expect(fields["type"] == event["type"] && fields["subject"] == event["subject_id"], "\(fields)")
                #expect(fields["payload"] == event["payload"], "\(fields)")
                if !event["actor_id"].isNull { #expect(fields["actor"] == event["actor_id"], "\(fields)") }

                for size in Set([checkpoint.size, seq + 1]) {
                    let proof = try await api.call(.get, "/v1/audit/proofs/inclusion?seq=\(seq)&size=\(size)")
                    try #require(proof.status == .ok, "\(proof)")
                    #expect(proof.json["leaf_index"].int == Int64(seq) && proof.json["tree_size"].int == Int64(size))
                    #expect(proof.json["leaf_hash"].string == Hex.encode(leafHash))
                    let path = try proof.json["audit_path"].array.map { try #require($0.string.flatMap(Hex.decode)) }
                    if size == checkpoint.size {
                        #expect(Merkle.verifyInclusion(leafHash: leafHash, index: seq, size: size, path: path, root: checkpoint.root), "leaf \(seq)")
                        var other = leafHash
                        other[31] ^= 1
                        #expect(!Merkle.verifyInclusion(leafHash: other, index: seq, size: size, path: path, root: checkpoint.root))
                    } else {
                        // against the root of that older tree, as the consistency proof's endpoints agree
                        let root = try await AuditLog(pool: api.pool).root(size: size)
                        #expect(Merkle.verifyInclusion(leafHash: leafHash, index: seq, size: size, path: path, root: root), "leaf \(seq) of \(size)")
                    }
                }
            }
            // events not (yet) in the log, and ones that are no number
            let size = try await AuditLog(pool: api.pool).size()
            for path in ["/v1/audit/events/\(size + 5)", "/v1/audit/events/-1", "/v1/audit/events/abc", "/v1/audit/events/1.5"] {
                expectProblem(try await api.call(.get, path), .notFound, "not_found")
            }
        }
    }

    // MARK: Listing

    @Test func theListingPagesInSeqOrderAndFilters() async throws {
        try await withAPI { api in
            let optics = try await Self.activity(api, "Institute of Optics")
            let acoustics = try await Self.activity(api, "Institute of Acoustics")
            let second = try await api.registerTechnologyID(as: optics.org, technologyBody("A second optics technology"))
            try await api.moveAll(second, ["custody"])

            let all = try await Self.events(api)
            let size = try await AuditLog(pool: api.pool).size()
            #expect(Self.seqs(all) == Array(0..<Int64(size)), "every event, in seq order")
            for limit in [1, 3, 7] {
                let paged = try await Self.events(api, limit: limit)
                #expect(paged == all, "pages of \(limit): each event exactly once, in order")
            }

            try await Self.expectFilter(api, all, [("subject_id", second)]) { $0["subject_id"].string == second }
            #expect(Self.subjects(all).filter { $0 == second }.count >= 2, "registered and taken into custody")
            try await Self.expectFilter(api, all, [("subject_id", optics.org.id.uppercased())]) { $0["subject_id"].string == optics.org.id }
            try await Self.expectFilter(api, all, [("subject_id", newID())], nonEmpty: false) { _ in false }
            // the actor: who acted (recorded per request), or the actor_id in the payload
            let byOptics = { (event: JSON) in event["actor_id"].string == optics.org.id || event["payload"]["actor_id"].string == optics.org.id }
            try await Self.expectFilter(api, all, [("actor_id", optics.org.id)], byOptics)
            let actedByOptics = all.filter(byOptics)
            #expect(Self.subjects(actedByOptics).contains(optics.technology))
            #expect(!Self.subjects(actedByOptics).contains(acoustics.technology))
            try await Self.expectFilter(api, all, [("type", "organization_created")]) { $0["type"].string == "organization_created" }
            let technologyType = try #require(Self.first(all, about: second)?["type"].string)
            try await Self.expectFilter(api, all, [("type", technologyType)]) { $0["type"].string == technologyType }
            try await Self.expectFilter(api, all, [("type", technologyType), ("subject_id", second)]) {
                $0["type"].string == technologyType && $0["subject_id"].string == second
            }
            try await Self.expectFilter(api, all, [("type", "no_such_event")], nonEmpty: false) { _ in false }

            // from (inclusive) and to (exclusive), at the microsecond
            let times = all.compactMap { $0["created_at"].string }
            #expect(times.count == all.count && Set(times.map(\.count)).count == 1, "fixed-width RFC 3339 times")
            let middle = try #require(Self.first(all, about: acoustics.org.id)?["created_at"].string)
            try await Self.expectFilter(api, all, [("from", middle)]) { $0["created_at"].string! >= middle }
            try await Self.expectFilter(api, all, [("to", middle)]) { $0["created_at"].string! < middle }
            let last = try #require(times.max())
            try await Self.expectFilter(api, all, [("from", middle), ("to", last)]) { $0["created_at"].string! >= middle && $0["created_at"].string! < last }
            try await Self.expectFilter(api, all, [("from", last), ("to", middle)], nonEmpty: false) { _ in false }

            // bad filters and pages
            for (parameter, field) in [("subject_id=abc", "subject_id"), ("actor_id=1", "actor_id"), ("from=yesterday", "from"),
                                       ("to=2026-13-01T00:00:00Z", "to"), ("limit=0", "limit"), ("limit=201", "limit"), ("cursor=%21%21", "cursor"),
                                       ("type=" + String(repeating: "x", count: 101), "type")] {
                expectInvalid(try await api.call(.get, "/v1/audit/events?\(parameter)"), field)
            }
        }
    }

    // MARK: Who sees what

    @Test func theCommitteeAndOperatorSeeEverythingAnInstituteItsOwn() async throws {
        try await withAPI { api in
            let committee = try await api.createOrganization("Committee", kind: "committee")
            let optics = try await Self.activity(api, "Institute of Optics")
            let acoustics = try await Self.activity(api, "Institute of Acoustics")
            // a technology the operator registers for acoustics is acoustics' object too
            let forAcoustics = try await api.registerTechnologyID(as: nil, technologyBody("Registered for acoustics", ownerID: acoustics.org.id))

            let all = try await Self.events(api)
            #expect(try await Self.events(api, key: committee.key) == all)
            let ownedBy = [
                optics.org.id: Set([optics.org.id, optics.org.keyID, optics.technology, optics.account]),
                acoustics.org.id: Set([acoustics.org.id, acoustics.org.keyID, acoustics.technology, acoustics.account, forAcoustics]),
            ]
            for institute in [optics, acoustics] {
                let own = ownedBy[institute.org.id]!
                let expected = all.filter { $0["subject_id"].string.map(own.contains) ?? false }
                let seen = try await Self.events(api, key: institute.org.key, limit: 3)
                #expect(Self.seqs(seen) == Self.seqs(expected), "\(institute.org.id)")
                for subject in own { #expect(Self.subjects(seen).contains(subject), "sees events about \(subject)") }
                // its filters narrow its own view, never widen it
                let other = institute.org.id == optics.org.id ? acoustics : optics
                #expect(try await Self.events(api, [("subject_id", other.technology)], key: institute.org.key).isEmpty)
                #expect(Self.seqs(try await Self.events(api, [("type", "organization_created")], key: institute.org.key))
                        == Self.seqs(expected.filter { $0["type"].string == "organization_created" }))
            }

            // one event at a time: its own, yes; another's, as if it did not exist
            let (verifierKey, _) = try await Self.publicKey(api, key: optics.org.key)
            let size = try await Self.checkpoint(api, verifierKey: verifierKey, key: optics.org.key).checkpoint.size
            let own = try #require(Self.first(all, about: optics.technology)?["seq"].int)
            let foreign = try #require(Self.first(all, about: acoustics.technology)?["seq"].int)
            #expect(try await api.call(.get, "/v1/audit/events/\(own)", key: optics.org.key).status == .ok)
            let hidden = try await api.call(.get, "/v1/audit/events/\(foreign)", key: optics.org.key)
            expectProblem(hidden, .notFound, "not_found")
            let missing = try await api.call(.get, "/v1/audit/events/\(size + 100)", key: optics.org.key)
            #expect(hidden.problemShape == missing.problemShape)
            #expect(try await api.call(.get, "/v1/audit/events/\(foreign)", key: committee.key).status == .ok)
            #expect(try await api.call(.get, "/v1/audit/proofs/inclusion?seq=\(own)&size=\(size)", key: optics.org.key).status == .ok)
            expectProblem(try await api.call(.get, "/v1/audit/proofs/inclusion?seq=\(foreign)&size=\(size)", key: optics.org.key), .notFound, "not_found")
            #expect(try await api.call(.get, "/v1/audit/proofs/inclusion?seq=\(foreign)&size=\(size)", key: committee.key).status == .ok)
        }
    }

    // MARK: Validation

    @Test func proofRequestsOutsideTheTreeAre422() async throws {
        try await withAPI { api in
            try await Self.activity(api, "Institute of Optics")
            let size = try await AuditLog(pool: api.pool).sequence()
            try #require(size >= 3)
            let inclusion: [(String, String)] = [
                ("seq=0&size=0", "size"), ("seq=0&size=\(size + 1)", "size"), ("seq=0&size=\(size + 1_000_000)", "size"),
                ("seq=\(size)&size=\(size)", "seq"), ("seq=2&size=2", "seq"), ("seq=\(size + 3)&size=\(size)", "seq"),
                ("seq=abc&size=1", "seq"), ("seq=-1&size=1", "seq"), ("seq=1.5&size=3", "seq"), ("size=1", "seq"),
                ("seq=0&size=x", "size"), ("seq=0&size=-2", "size"), ("seq=0&size=2.0", "size"), ("seq=0", "size"),
                ("seq=0&size=99999999999999999999999", "size"),
            ]
            for (query, field) in inclusion {
                expectInvalid(try await api.call(.get, "/v1/audit/proofs/inclusion?\(query)"), field)
            }
            let consistency: [(String, String)] = [
                ("from=2&to=1", "from"), ("from=\(size)&to=\(size - 1)", "from"), ("from=0&to=\(size + 1)", "to"),
                ("from=\(size + 2)&to=\(size + 1)", "to"), ("from=x&to=1", "from"), ("from=1&to=y", "to"), ("from=-1&to=1", "from"),
                ("to=1", "from"), ("from=0", "to"), ("from=0.5&to=1", "from"),
            ]
            for (query, field) in consistency {
                expectInvalid(try await api.call(.get, "/v1/audit/proofs/consistency?\(query)"), field)
            }
            // the edges that are valid
            for query in ["seq=0&size=1", "seq=\(size - 1)&size=\(size)"] {
                #expect(try await api.call(.get, "/v1/audit/proofs/inclusion?\(query)").status == .ok, "\(query)")
            }
            for query in ["from=0&to=0", "from=0&to=\(size)", "from=\(size)&to=\(size)", "from=1&to=1"] {
                let response = try await api.call(.get, "/v1/audit/proofs/consistency?\(query)")
                #expect(response.status == .ok, "\(query)")
            }
        }
    }

    // MARK: The committee's remote audit

    @Test func remoteAuditThroughTheAPIPassesAndCatchesARewrite() async throws {
        try await withAPI { api in
            try await Self.activity(api, "Institute of Optics")
            let auditor = try await api.createOrganization("Committee", kind: "committee")
            let (verifierKey, _) = try await Self.publicKey(api)
            let fetch: @Sendable (String) async throws -> Data = { path in
                let response = try await api.call(.get, path, key: auditor.key)
                guard response.status == .ok else { throw RemoteAudit.Failure(description: "GET \(path) answered \(response.status.code)") }
                return response.body
            }
            let first = try await RemoteAudit.check(savedNote: nil, verifierKey: verifierKey, fetch: fetch)
            #expect(first.previous == nil && first.checkpoint.size > 0)
            try await Self.activity(api, "Institute of Acoustics")
            let second = try await RemoteAudit.check(savedNote: first.note, verifierKey: verifierKey, fetch: fetch)
            #expect(second.previous == first.checkpoint)
            #expect(second.checkpoint.size > first.checkpoint.size)
            // unchanged, it passes again; from the oldest note, too
            #expect(try await RemoteAudit.check(savedNote: second.note, verifierKey: verifierKey, fetch: fetch).checkpoint == second.checkpoint)
            #expect(try await RemoteAudit.check(savedNote: first.note, verifierKey: verifierKey, fetch: fetch).previous == first.checkpoint)
            // pinned to another key (even of the same name), the server's checkpoint does not verify
            let origin = first.checkpoint.origin
            await #expect(throws: RemoteAudit.Failure.self) {
                _ = try await RemoteAudit.check(savedNote: nil, verifierKey: CheckpointSigner(name: origin).verifierKey, fetch: fetch)
            }

            // the operator rewrites history: every stored subtree over the first leaves, which every
            // later root and proof is built from
            let changed = try await api.pool.withConnection { connection in
                try await connection.query("SET session_replication_role = replica")
                let changed = try await connection.query("UPDATE ledger.merkle_nodes SET hash = sha256(hash) WHERE index = 0").affectedRows
                try await connection.query("RESET session_replication_role")
                return changed
            }
            #expect(changed >= 4)
            try await Self.activity(api, "Institute of Forgery")
            await #expect(throws: RemoteAudit.Failure.self) {
                _ = try await RemoteAudit.check(savedNote: first.note, verifierKey: verifierKey, fetch: fetch)
            }
            await #expect(throws: RemoteAudit.Failure.self) {
                _ = try await RemoteAudit.check(savedNote: second.note, verifierKey: verifierKey, fetch: fetch)
            }
            // and `techbank audit verify` names where
            #expect(try await AuditLog(pool: api.pool).verifyTree()?.leafIndex == 0)
        }
    }
}
