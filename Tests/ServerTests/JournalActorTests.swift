import Foundation
import HTTPTypes
import Ledger
import Postgres
import Testing

@Suite("Journal: who, with which key, for which request")
struct JournalActorTests {
    /// The actor, key and request of the journal entries about `subject`, oldest first.
    static func recorded(_ api: API, subject: String) async throws -> [(type: String, actor: UUID?, key: UUID?, request: String?)] {
        let rows = try await api.pool.withConnection { connection in
            try await connection.query(
                "SELECT event_type, actor_id, key_id, request_id FROM ledger.journal WHERE subject_id = $1 ORDER BY created_at, shard, seq",
                [try #require(UUID(uuidString: subject))])
        }
        return try rows.map {
            (try $0.decode(String.self, at: 0), try $0.decode(UUID?.self, at: 1), try $0.decode(UUID?.self, at: 2), try $0.decode(String?.self, at: 3))
        }
    }

    @Test func everyEntryOfARequestCarriesItsOrganizationKeyAndRequestID() async throws {
        try await withAPI { api in
            let institute = try await api.createOrganization("Tongji University", kind: "institute")
            var headers = HTTPFields()
            headers[.tbRequestID] = "req-register-42"
            let registered = try await api.call(.post, "/v1/technologies", key: institute.key, json: technologyBody(), headers: headers)
            try #require(registered.status == .created, "\(registered)")
            let id = try #require(registered.json["id"].string)
            headers[.tbRequestID] = "req-custody-43"
            let moved = try await api.call(.post, "/v1/technologies/\(id)/custody", key: institute.key, headers: headers)
            try #require(moved.status == .ok, "\(moved)")

            let entries = try await Self.recorded(api, subject: id)
            #expect(entries.map(\.type) == ["technology_registered", "technology_custody"])
            for entry in entries {
                #expect(entry.actor == UUID(uuidString: institute.id))
                #expect(entry.key == UUID(uuidString: institute.keyID))
            }
            #expect(entries.map(\.request) == ["req-register-42", "req-custody-43"])
        }
    }

    @Test func theNextRequestOnTheSameConnectionDoesNotInheritThePreviousOne() async throws {
        try await withAPI { api in
            let first = try await api.createOrganization("Fudan University", kind: "institute")
            let second = try await api.createOrganization("Shanghai University", kind: "institute")
            // Many requests in a row reuse the pool's few connections.
            var ids: [(Org, String)] = []
            for index in 0..<12 {
                let org = index % 2 == 0 ? first : second
                ids.append((org, try await api.registerTechnologyID(as: org)))
            }
            for (org, id) in ids {
                let entries = try await Self.recorded(api, subject: id)
                #expect(entries.count == 1)
                #expect(entries.first?.actor == UUID(uuidString: org.id), "\(id)")
                #expect(entries.first?.key == UUID(uuidString: org.keyID), "\(id)")
            }
            // Work nobody requested (the pool outside a request) records no actor.
            _ = try await api.pool.withConnection { connection in
                try await connection.query("SELECT ledger.journal_append('note', NULL, '{}')")
            }
            let background = try await api.pool.withConnection { connection in
                try await connection.query("SELECT actor_id, key_id, request_id FROM ledger.journal WHERE event_type = 'note'")
            }
            #expect(try background[0].decode(UUID?.self, at: 0) == nil)
            #expect(try background[0].decode(UUID?.self, at: 1) == nil)
            #expect(try background[0].decode(String?.self, at: 2) == nil)
        }
    }

    @Test func revokingARevokedKeyChangesAndJournalsNothing() async throws {
        try await withAPI { api in
            let institute = try await api.createOrganization("Donghua University", kind: "institute")
            let first = try await api.call(.delete, "/v1/organizations/\(institute.id)/api-keys/\(institute.keyID)")
            let again = try await api.call(.delete, "/v1/organizations/\(institute.id)/api-keys/\(institute.keyID)")
            #expect(first.status.code < 300, "\(first)")
            #expect(again.status == first.status, "\(again)")
            let entries = try await Self.recorded(api, subject: institute.keyID)
            #expect(entries.filter { $0.type == "api_key_revoked" }.count == 1, "\(entries)")
        }
    }

    @Test func theActorIsPartOfTheHashedEntry() async throws {
        try await withAPI { api in
            let institute = try await api.createOrganization("ECNU", kind: "institute")
            let id = try await api.registerTechnologyID(as: institute)
            let rows = try await api.pool.withConnection { connection in
                try await connection.query(
                    """
                    SELECT convert_from(ledger.journal_canonical(shard, seq, event_type, subject_id, created_at, payload, actor_id, key_id, request_id), 'UTF8')
                      FROM ledger.journal WHERE subject_id = $1
                    """, [try #require(UUID(uuidString: id))])
            }
            let canonical = try rows[0].decode(String.self, at: 0)
            #expect(canonical.contains("\"actor\": \"\(institute.id)\""), "\(canonical)")
            #expect(canonical.contains("\"key\": \"\(institute.keyID)\""), "\(canonical)")
            // So rewriting who did it breaks the chain.
            try await api.pool.withConnection { connection in
                try await connection.query("SET session_replication_role = replica")
                try await connection.query("UPDATE ledger.journal SET actor_id = gen_random_uuid() WHERE subject_id = $1", [try #require(UUID(uuidString: id))])
                try await connection.query("SET session_replication_role = origin")
            }
            let verification = try await Journal(pool: api.pool).verify()
            #expect(!verification.isIntact)
        }
    }
}
