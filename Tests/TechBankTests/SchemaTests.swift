import Postgres
import TechBank
import Testing
import TestSupport

@Suite("Schema migration")
struct SchemaTests {
    @Test func applyingTwiceIsHarmlessAndRecordsTheVersion() async throws {
        try await TestDatabase.withPool { pool throws in
            // The test database was created from a migrated template; apply again, twice.
            #expect(try await Schema.migrate(pool) == Schema.version)
            #expect(try await Schema.migrate(pool) == Schema.version)
            let version = try await pool.withConnection { try await Schema.installedVersion($0) }
            #expect(version == Schema.version)
            #expect(Schema.version >= 1)
        }
    }

    @Test func refusesADatabaseWithANewerSchema() async throws {
        try await TestDatabase.withPool { pool throws in
            try await pool.withConnection { try await $0.query("UPDATE schema_version SET version = $1", [Int32(Schema.version + 1)]) }
            await #expect(throws: SchemaError.self) { try await Schema.migrate(pool) }
            let version = try await pool.withConnection { try await Schema.installedVersion($0) }
            #expect(version == Schema.version + 1)  // left untouched
        }
    }
}
