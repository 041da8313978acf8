import Foundation
import HTTPTypes
import Ledger
import Postgres
@testable import Server
import Synchronization
import TechBank
import Testing

/// The audit part of `Sources/Server/openapi.json` (events, checkpoints, the public key, inclusion
/// and consistency proofs) against the server: the operations, their statuses and parameters are
/// documented, the documented examples are a genuine signed note and verifier key, and real
/// responses (both forms of the checkpoint among them) have exactly the properties their schemas
/// document, and check out as the schemas describe (leaf hashes, signatures, proofs).
@Suite("Audit: OpenAPI document")
struct AuditOpenAPITests {
    /// The names of an operation's parameters (the path item's and its own), `$ref`s resolved.
    static func parameters(_ operation: [String: Any]?, pathItem: [String: Any]? = nil) throws -> [String: [String: Any]] {
        let document = try OpenAPITests.document()
        let components = (document["components"] as? [String: Any])?["parameters"] as? [String: Any] ?? [:]
        var result: [String: [String: Any]] = [:]
        for parameter in (pathItem?["parameters"] as? [[String: Any]] ?? []) + (operation?["parameters"] as? [[String: Any]] ?? []) {
            var resolved = parameter
            if let reference = parameter["$ref"] as? String {
                let name = String(reference.dropFirst("#/components/parameters/".count))
                resolved = try #require(components[name] as? [String: Any], "\(reference) is not defined")
            }
            result[try #require(resolved["name"] as? String)] = resolved
        }
        return result
    }

    /// The `Accept` header that asks for the JSON checkpoint.
    static let acceptJSON: HTTPFields = [.accept: "application/json"]
    static let noteType = "text/plain; charset=utf-8"

    @Test func theAuditOperationsAreDocumented() throws {
        let document = try OpenAPITests.document()
        let operations = try OpenAPITests.operations(document)
        let paths = try #require(document["paths"] as? [String: Any])
        let expected: [String: (operationID: String, statuses: Set<String>, schema: String)] = [
            "GET /v1/audit/events": ("listAuditEvents", ["200", "401", "422"], "AuditEventPage"),
            "GET /v1/audit/events/{seq}": ("getAuditEvent", ["200", "401", "404", "422"], "AuditEvent"),
            "GET /v1/audit/checkpoint": ("getAuditCheckpoint", ["200", "401", "422"], "Checkpoint"),
            "GET /v1/audit/public-key": ("getAuditPublicKey", ["200", "401", "422"], "AuditPublicKey"),
            "GET /v1/audit/proofs/inclusion": ("getAuditInclusionProof", ["200", "401", "404", "422"], "InclusionProof"),
            "GET /v1/audit/proofs/consistency": ("getAuditConsistencyProof", ["200", "401", "422"], "ConsistencyProof"),
        ]
        for (name, (operationID, statuses, schema)) in expected {
            let operation = try #require(operations[name], "\(name) is not documented")
            let path = String(name.split(separator: " ")[1])
            let pathItem = paths[path] as? [String: Any]
            #expect(operation["operationId"] as? String == operationID, "\(name)")
            #expect(operation["tags"] as? [String] == ["audit"], "\(name) is tagged \(operation["tags"] ?? "-")")
            #expect(operation["requestBody"] == nil, "\(name) takes no body")
            let responses = try #require(operation["responses"] as? [String: Any])
            // Exactly these statuses: the routes answer nothing else (500 and 503 aside; 422 for NUL in any query parameter).
            #expect(Set(responses.keys) == statuses.union(["500", "503"]), "\(name) documents \(responses.keys.sorted())")
            for (status, response) in responses {
                guard let response = response as? [String: Any], let content = response["content"] as? [String: Any] else { continue }
                let headers = response["headers"] as? [String: Any] ?? [:]
                #expect(headers["Request-Id"] != nil, "\(name) \(status) must document Request-Id")
                // No ETag, Location or Idempotent-Replayed on the audit routes; Data-Age when read from a standby.
                #expect(Set(headers.keys) == (status.hasPrefix("2") ? ["Request-Id", "Data-Age"] : ["Request-Id"]), "\(name) \(status): \(headers.keys.sorted())")
                if status.hasPrefix("2") {
                    #expect((headers["Data-Age"] as? [String: Any])?["$ref"] as? String == "#/components/headers/DataAge")
                }
                if status.hasPrefix("2") {
                    let reference = ((content["application/json"] as? [String: Any])?["schema"] as? [String: Any])?["$ref"] as? String
                    #expect(reference == "#/components/schemas/\(schema)", "\(name) \(status) must answer \(schema)")
                    // The checkpoint answers its signed note unless JSON is asked for.
                    let types: Set<String> = name == "GET /v1/audit/checkpoint" ? ["application/json", Self.noteType] : ["application/json"]
                    #expect(Set(content.keys) == types, "\(name) \(status) answers \(content.keys.sorted())")
                } else {
                    #expect(Set(content.keys) == ["application/problem+json"], "\(name) \(status) must answer a problem")
                }
            }
            // Parameters: the documented ones, Request-Id everywhere, no Idempotency-Key (reads only).
            let parameters = try Self.parameters(operation, pathItem: pathItem)
            let names: Set<String> = switch name {
            case "GET /v1/audit/events": ["limit", "cursor", "subject_id", "actor_id", "type", "from", "to", "Request-Id"]
            case "GET /v1/audit/events/{seq}": ["seq", "Request-Id"]
            case "GET /v1/audit/proofs/inclusion": ["seq", "size", "Request-Id"]
            case "GET /v1/audit/proofs/consistency": ["from", "to", "Request-Id"]
            default: ["Request-Id"]
            }
            #expect(Set(parameters.keys) == names, "\(name): \(parameters.keys.sorted())")
            for (parameter, object) in parameters where parameter != "Request-Id" {
                let location = object["in"] as? String
                let required = object["required"] as? Bool ?? false
                let type = (object["schema"] as? [String: Any])?["type"] as? String
                switch (name, parameter) {
                case ("GET /v1/audit/events/{seq}", "seq"):
                    #expect(location == "path" && required && type == "integer", "\(name) \(parameter)")
                case ("GET /v1/audit/events", "subject_id"), ("GET /v1/audit/events", "actor_id"):
                    #expect(location == "query" && !required && (object["schema"] as? [String: Any])?["format"] as? String == "uuid", "\(name) \(parameter)")
                case ("GET /v1/audit/events", "from"), ("GET /v1/audit/events", "to"):
                    #expect(location == "query" && !required && (object["schema"] as? [String: Any])?["format"] as? String == "date-time", "\(name) \(parameter)")
                case ("GET /v1/audit/events", _):
                    #expect(location == "query" && !required, "\(name) \(parameter)")
                default:
                    // The proofs' sizes and indices are required integers.
                    #expect(location == "query" && required && type == "integer", "\(name) \(parameter)")
                }
            }
        }
        let listed = operations.keys.filter { $0.contains(" /v1/audit") }
        #expect(Set(listed) == Set(expected.keys), "undocumented here: \(Set(listed).symmetricDifference(expected.keys).sorted())")
        let tags = Set((document["tags"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String })
        #expect(tags.contains("audit"))
        let info = ((document["info"] as? [String: Any])?["description"] as? String) ?? ""
        for command in ["`techbank audit verify`", "`techbank audit verify-remote`"] {
            #expect(info.contains(command), "info.description must mention \(command)")
        }
    }

    @Test func theSchemasDescribeTheLog() throws {
        let schemas = try OpenAPISchemas.schemas()
        // Response schemas list every property as required: the server encodes absent values as null.
        for name in ["AuditEvent", "AuditEventPage", "Checkpoint", "AuditPublicKey", "InclusionProof", "ConsistencyProof"] {
            let schema = try #require(schemas[name], "\(name) is not documented")
            #expect(Set(schema["required"] as? [String] ?? []) == OpenAPISchemas.properties(schema), "\(name) must require every property")
        }
        let event = try #require(schemas["AuditEvent"]?["properties"] as? [String: Any])
        #expect(Set(event.keys) == ["seq", "type", "subject_id", "created_at", "payload", "canonical", "leaf_hash", "shard", "shard_seq",
                                    "actor_id", "key_id", "request_id"])
        // Exactly the fields the server may leave null are nullable.
        func nullable(_ property: Any?) -> Bool {
            guard let property = property as? [String: Any] else { return false }
            if let types = property["type"] as? [String] { return types.contains("null") }
            return (property["oneOf"] as? [[String: Any]] ?? []).contains { $0["type"] as? String == "null" }
        }
        #expect(Set(event.keys.filter { nullable(event[$0]) }) == ["subject_id", "actor_id", "key_id", "request_id"])
        let descriptions = event.mapValues { ($0 as? [String: Any])?["description"] as? String ?? "" }
        #expect(descriptions["seq"]?.contains("RFC 9162") == true && descriptions["seq"]?.contains("leaf index") == true)
        #expect(descriptions["leaf_hash"]?.contains("SHA-256(0x00 ‖") == true)
        #expect(descriptions["canonical"]?.contains("ledger.journal_canonical") == true)
        for field in ["actor_id", "key_id", "request_id"] {
            #expect(descriptions[field]?.contains("background work") == true, "\(field) must say when it is null")
        }
        // Visibility is described where events are read.
        let operations = try OpenAPITests.operations(OpenAPITests.document())
        for text in [schemas["AuditEvent"]?["description"], operations["GET /v1/audit/events"]?["description"], operations["GET /v1/audit/events/{seq}"]?["description"]] {
            let text = text as? String ?? ""
            for phrase in ["committee and the operator", "accounts", "technologies", "demands", "matches and deals", "404"] {
                #expect(text.contains(phrase), "visibility must mention \(phrase): \(text)")
            }
        }
        let checkpoint = operations["GET /v1/audit/checkpoint"]?["description"] as? String ?? ""
        for phrase in ["C2SP tlog-checkpoint", "C2SP signed-note", "Ed25519", "Accept", "application/json"] {
            #expect(checkpoint.contains(phrase), "the checkpoint's description must mention \(phrase)")
        }
        for (name, section) in [("InclusionProof", "§2.1.3"), ("ConsistencyProof", "§2.1.4")] {
            #expect((schemas[name]?["description"] as? String)?.contains("RFC 9162 \(section)") == true, "\(name) must cite RFC 9162 \(section)")
        }

        // The documented examples are a genuine signed checkpoint and the key that verifies it.
        let key = try #require((schemas["AuditPublicKey"]?["examples"] as? [[String: Any]])?.first)
        let example = try #require((schemas["Checkpoint"]?["examples"] as? [[String: Any]])?.first)
        let verifierKey = try #require(key["verifier_key"] as? String)
        let note = try #require(example["note"] as? String)
        let verified = try CheckpointVerifier(verifierKey: verifierKey).verify(note)
        #expect(verified.size == example["size"] as? Int && Hex.encode(verified.root) == example["root_hash"] as? String)
        #expect(Data(base64Encoded: key["public_key"] as? String ?? "").map(Array.init) == (try CheckpointVerifier(verifierKey: verifierKey)).publicKey)
        let content = ((((operations["GET /v1/audit/checkpoint"]?["responses"] as? [String: Any])?["200"] as? [String: Any])?["content"] as? [String: Any])?[Self.noteType]
            as? [String: Any])?["schema"] as? [String: Any]
        #expect((content?["examples"] as? [String])?.first == note, "the text/plain example is the Checkpoint example's note")

        // The patterns admit what a signer produces.
        let signer = CheckpointSigner(name: "techbank.example/journal")
        let keyProperties = schemas["AuditPublicKey"]?["properties"] as? [String: Any]
        for (field, value) in [("verifier_key", signer.verifierKey), ("public_key", Data(signer.publicKey).base64EncodedString())] {
            let pattern = try #require((keyProperties?[field] as? [String: Any])?["pattern"] as? String)
            #expect(value.range(of: pattern, options: .regularExpression) != nil, "\(field) \(value) does not match \(pattern)")
        }
    }

    /// Real responses of every audit operation have exactly the properties the schemas document
    /// and validate against them (with Python's `jsonschema`); events, signatures and proofs check out.
    @Test func realResponsesMatchTheSchemas() async throws {
        let collected = Mutex<[(label: String, schema: String, body: Data)]>([])
        try await withAPI { api in
            let lab = try await api.createOrganization("Fudan Lab", kind: "institute")
            let committee = try await api.createOrganization("Transfer Committee", kind: "committee")
            let stranger = try await api.createOrganization("Other Works", kind: "enterprise")

            var record: [(String, String, APIResponse)] = []
            func expectStatus(_ response: APIResponse, _ status: Int, sourceLocation: SourceLocation = #_sourceLocation) throws {
                try #require(response.status.code == status, "\(response)", sourceLocation: sourceLocation)
            }

            // The key, and a checkpoint before the technology is registered.
            let key = try await api.call(.get, "/v1/audit/public-key", key: stranger.key)
            try expectStatus(key, 200)
            record.append(("public key", "AuditPublicKey", key))
            let verifier = try CheckpointVerifier(verifierKey: try #require(key.json["verifier_key"].string))
            #expect(Data(base64Encoded: key.json["public_key"].string ?? "").map(Array.init) == verifier.publicKey, "\(key)")
            let before = try await api.call(.get, "/v1/audit/checkpoint", key: lab.key, headers: Self.acceptJSON)
            try expectStatus(before, 200)
            record.append(("checkpoint before, JSON", "Checkpoint", before))
            let old = try verifier.verify(try #require(before.json["note"].string))

            // A technology registered by an institute is an event with its actor, key and request.
            let registered = try await api.call(.post, "/v1/technologies", key: lab.key, json: technologyBody(), headers: [.tbRequestID: "register-1"])
            try expectStatus(registered, 201)
            let technology = try #require(registered.json["id"].string)
            // Background work (no request behind it) about no object in particular.
            try await Journal(pool: api.pool).append(eventType: "background_note", subjectID: nil, payload: JSONB(#"{"note": "no request"}"#))

            let events = try await api.call(.get, "/v1/audit/events", key: lab.key)
            try expectStatus(events, 200)
            record.append(("events, as the institute", "AuditEventPage", events))
            #expect(events.json["next_cursor"].isNull, "\(events)")
            // The institute sees the events about itself, its API key and its technology, not others'.
            let subjects = Set(events.json["data"].array.map { $0["subject_id"].string ?? "null" })
            #expect(subjects.isSuperset(of: [lab.id, lab.keyID, technology]) && subjects.isDisjoint(with: [stranger.id, committee.id, "null"]), "\(events)")
            let event = try #require(events.json["data"].array.first { $0["type"].string == "technology_registered" }, "\(events)")
            #expect(event["actor_id"].string == lab.id && event["key_id"].string == lab.keyID && event["request_id"].string == "register-1", "\(event)")
            let seq = try #require(event["seq"].int)
            let canonical = try #require(Data(base64Encoded: event["canonical"].string ?? ""), "\(event)")
            #expect(Hex.encode(Merkle.leafHash(Array(canonical))) == event["leaf_hash"].string, "leaf hash = SHA-256(0x00 ‖ canonical): \(event)")
            #expect(JSON.parse(canonical)["type"].string == "technology_registered", "canonical: \(String(decoding: canonical, as: UTF8.self))")

            // The operator's view: every event, work without a request among them, pages and filters.
            let all = try await api.call(.get, "/v1/audit/events?limit=200", key: committee.key)
            try expectStatus(all, 200)
            record.append(("events, as the committee", "AuditEventPage", all))
            let seqs = all.json["data"].array.compactMap { $0["seq"].int }
            #expect(seqs == Array(0..<Int64(seqs.count)), "numbered from 0 without gaps: \(seqs)")
            let background = try #require(all.json["data"].array.first { $0["type"].string == "background_note" }, "\(all)")
            #expect(background["subject_id"].isNull && background["actor_id"].isNull && background["key_id"].isNull && background["request_id"].isNull, "\(background)")
            let first = try await api.call(.get, "/v1/audit/events?limit=2", key: operatorKey)
            let cursor = try #require(first.json["next_cursor"].string, "\(first)")
            record.append(("events, first page", "AuditEventPage", first))
            let next = try await api.call(.get, "/v1/audit/events?limit=2&cursor=\(cursor)", key: operatorKey)
            #expect(next.json["data"][0]["seq"].int == 2, "\(next)")
            record.append(("events, next page", "AuditEventPage", next))
            let createdAt = try #require(event["created_at"].string)
            let filtered = try await api.call(.get, "/v1/audit/events?subject_id=\(technology)&actor_id=\(lab.id)&type=technology_registered&from=\(createdAt)&to=2100-01-01T00:00:00Z",
                                              key: operatorKey)
            #expect(filtered.json["data"].array.compactMap { $0["seq"].int } == [seq], "\(filtered)")
            record.append(("events, filtered", "AuditEventPage", filtered))
            record.append(("events, none before 2000", "AuditEventPage", try await api.call(.get, "/v1/audit/events?to=2000-01-01T00:00:00%2B08:00", key: operatorKey)))

            let one = try await api.call(.get, "/v1/audit/events/\(seq)", key: lab.key)
            try expectStatus(one, 200)
            #expect(one.json == event, "\(one)")
            record.append(("one event", "AuditEvent", one))
            record.append(("an event of background work", "AuditEvent", try await api.call(.get, "/v1/audit/events/\(try #require(background["seq"].int))", key: committee.key)))

            // The checkpoint, as a signed note and as JSON; the same tree, the same note.
            let text = try await api.call(.get, "/v1/audit/checkpoint", key: stranger.key)
            try expectStatus(text, 200)
            #expect(text.contentType == Self.noteType, "\(text)")
            let current = try verifier.verify(text.text)
            #expect(current.origin == "techbank.example/journal" && current.size == seqs.count, "\(text)")
            record.append(("checkpoint, signed note", Self.notePointer, text))
            let json = try await api.call(.get, "/v1/audit/checkpoint", key: stranger.key, headers: Self.acceptJSON)
            try expectStatus(json, 200)
            #expect(json.contentType == "application/json" && json.json["note"].string == text.text, "\(json)")
            #expect(json.json["size"].int == Int64(current.size) && json.json["root_hash"].string == Hex.encode(current.root), "\(json)")
            record.append(("checkpoint, JSON", "Checkpoint", json))

            // Proofs against the checkpoints.
            let inclusion = try await api.call(.get, "/v1/audit/proofs/inclusion?seq=\(seq)&size=\(current.size)", key: lab.key)
            try expectStatus(inclusion, 200)
            let path = try inclusion.json["audit_path"].array.map { try #require(Self.bytes($0.string), "\(inclusion)") }
            #expect(Merkle.verifyInclusion(leafHash: try #require(Self.bytes(inclusion.json["leaf_hash"].string)), index: Int(seq), size: current.size,
                                           path: path, root: current.root), "\(inclusion)")
            #expect(inclusion.json["leaf_hash"] == event["leaf_hash"] && inclusion.json["leaf_index"].int == seq, "\(inclusion)")
            record.append(("inclusion proof", "InclusionProof", inclusion))
            record.append(("inclusion proof, tree of one", "InclusionProof", try await api.call(.get, "/v1/audit/proofs/inclusion?seq=0&size=1", key: operatorKey)))
            let consistency = try await api.call(.get, "/v1/audit/proofs/consistency?from=\(old.size)&to=\(current.size)", key: stranger.key)
            try expectStatus(consistency, 200)
            let proof = try consistency.json["proof"].array.map { try #require(Self.bytes($0.string), "\(consistency)") }
            #expect(old.size < current.size && Merkle.verifyConsistency(oldSize: old.size, newSize: current.size, oldRoot: old.root, newRoot: current.root,
                                                                         proof: proof), "\(consistency)")
            record.append(("consistency proof", "ConsistencyProof", consistency))
            let empty = try await api.call(.get, "/v1/audit/proofs/consistency?from=\(current.size)&to=\(current.size)", key: stranger.key)
            #expect(empty.json["proof"] == .array([]), "\(empty)")
            record.append(("consistency proof, same size", "ConsistencyProof", empty))

            // Problems.
            expectProblem(try await api.call(.get, "/v1/audit/events", key: nil), .unauthorized, "unauthorized")
            record.append(("401", "Problem", try await api.call(.get, "/v1/audit/checkpoint", key: nil)))
            let hidden = try await api.call(.get, "/v1/audit/events/\(seq)", key: stranger.key)
            let missing = try await api.call(.get, "/v1/audit/events/999999", key: stranger.key)
            expectProblem(hidden, .notFound, "not_found")
            #expect(hidden.problemShape == missing.problemShape, "another's event and no event answer alike: \(hidden) / \(missing)")
            record.append(("404 another's event", "Problem", hidden))
            record.append(("404 no such event", "Problem", missing))
            record.append(("404 seq not a number", "Problem", try await api.call(.get, "/v1/audit/events/first", key: operatorKey)))
            let strangerProof = try await api.call(.get, "/v1/audit/proofs/inclusion?seq=\(seq)&size=\(current.size)", key: stranger.key)
            expectProblem(strangerProof, .notFound, "not_found")
            record.append(("404 proof of another's event", "Problem", strangerProof))
            let invalid: [(String, String)] = [
                ("/v1/audit/events?subject_id=nope", "subject_id"), ("/v1/audit/events?actor_id=1", "actor_id"),
                ("/v1/audit/events?type=" + String(repeating: "x", count: 101), "type"), ("/v1/audit/events?from=yesterday", "from"),
                ("/v1/audit/events?to=2026-13-01T00:00:00Z", "to"), ("/v1/audit/events?limit=0", "limit"), ("/v1/audit/events?cursor=bm9wZQ", "cursor"),
                ("/v1/audit/proofs/inclusion?size=1", "seq"), ("/v1/audit/proofs/inclusion?seq=0&size=0", "size"),
                ("/v1/audit/proofs/inclusion?seq=0&size=\(current.size + 1)", "size"), ("/v1/audit/proofs/inclusion?seq=5&size=5", "seq"),
                ("/v1/audit/proofs/inclusion?seq=-1&size=5", "seq"), ("/v1/audit/proofs/consistency?to=1", "from"),
                ("/v1/audit/proofs/consistency?from=0&to=\(current.size + 1)", "to"), ("/v1/audit/proofs/consistency?from=3&to=2", "from"),
                ("/v1/audit/proofs/consistency?from=1&to=two", "to"),
            ]
            for (uri, field) in invalid {
                let response = try await api.call(.get, uri, key: lab.key)
                expectInvalid(response, field)
                record.append(("422 \(uri)", "Problem", response))
            }

            let schemas = try OpenAPISchemas.schemas()
            for (label, schema, response) in record {
                #expect(response.status.code < 500, "\(label): \(response)")
                if schema == "Problem" {
                    #expect((400..<500).contains(response.status.code), "\(label): \(response)")
                    #expect(response.contentType == "application/problem+json", "\(label): \(response)")
                } else {
                    #expect((200..<300).contains(response.status.code), "\(label): \(response)")
                    if schema != Self.notePointer {
                        #expect(response.contentType == "application/json", "\(label): \(response)")
                        #expect(response.json.keys == OpenAPISchemas.properties(schemas[schema]), "\(label): the response's properties differ from \(schema)'s: \(response)")
                    }
                }
                // The signed note is validated as the JSON string it is.
                let body = schema == Self.notePointer ? try JSONSerialization.data(withJSONObject: response.text, options: [.fragmentsAllowed]) : response.body
                collected.withLock { $0.append((label, schema, body)) }
            }
        }
        let samples = collected.withLock { $0 }
        #expect(samples.count == 37)
        // The response schemas and problems are closed; the checkpoint's text/plain body is validated
        // against its schema (named by `notePointer`) as it stands.
        try expectResponsesMatchSchemas(samples, closing: [
            "AuditEvent", "AuditEventPage", "Checkpoint", "AuditPublicKey", "InclusionProof", "ConsistencyProof", "Problem", "FieldError",
        ])
    }

    /// The schema of the checkpoint's `text/plain` body, as a JSON pointer into the document.
    static let notePointer = "#/paths/~1v1~1audit~1checkpoint/get/responses/200/content/text~1plain; charset=utf-8/schema"

    /// The bytes of a lower-case hex string.
    static func bytes(_ text: String?) -> [UInt8]? {
        guard let text, text.count % 2 == 0, text.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else { return nil }
        var result: [UInt8] = []
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            guard let byte = UInt8(text[index..<next], radix: 16) else { return nil }
            result.append(byte)
            index = next
        }
        return result
    }
}
