import Foundation
import Postgres
import Testing
import TestSupport

@Suite("Server errors")
struct ErrorTests {
    @Test func sqlStatesAndConstraintNamesAreReported() async throws {
        try await TestDatabase.withPool(template: .empty) { pool throws in
            try await pool.withConnection { connection throws in
                try await connection.query("CREATE TABLE parent (id int PRIMARY KEY, n int CONSTRAINT n_positive CHECK (n > 0))")
                try await connection.query("CREATE TABLE child (parent_id int CONSTRAINT child_parent_fk REFERENCES parent)")
                try await connection.query("INSERT INTO parent VALUES (1, 1)")

                let duplicate = await #expect(throws: PostgresError.self) { try await connection.query("INSERT INTO parent VALUES (1, 1)") }
                #expect(duplicate?.sqlState == SQLState.uniqueViolation)
                #expect(duplicate?.constraint == "parent_pkey")
                #expect(duplicate?.table == "parent")
                #expect(duplicate?.detail?.isEmpty == false)

                let check = await #expect(throws: PostgresError.self) { try await connection.query("INSERT INTO parent VALUES (2, $1)", [Int32(-5)]) }
                #expect(check?.sqlState == SQLState.checkViolation)
                #expect(check?.constraint == "n_positive")

                let foreign = await #expect(throws: PostgresError.self) { try await connection.query("INSERT INTO child VALUES (99)") }
                #expect(foreign?.sqlState == SQLState.foreignKeyViolation)
                #expect(foreign?.constraint == "child_parent_fk")

                let syntax = await #expect(throws: PostgresError.self) { try await connection.query("SELEC 1") }
                #expect(syntax?.sqlState == "42601")
                // The connection is still usable after errors outside a transaction.
                #expect(try await connection.query("SELECT 1::int4")[0].decode(Int32.self, at: 0) == 1)
            }
        }
    }

    @Test func descriptionNeverContainsSQLOrParameterValues() async throws {
        try await TestDatabase.withPool(template: .empty) { pool throws in
            try await pool.withConnection { connection throws in
                let secret = "secret-value-\(UUID())"
                let error = await #expect(throws: PostgresError.self) {
                    try await connection.query("SELECT $1::text::uuid AS leaked_column_name", [secret])
                }
                let description = try #require(error).description
                #expect(error?.sqlState == SQLState.invalidTextRepresentation)
                #expect(!description.contains(secret))
                #expect(!description.contains("SELECT"))
                #expect(!description.contains("leaked_column_name"))
                #expect(description.contains("22P02"))
                // The raw server message stays available for diagnostics.
                #expect(error?.message.contains("uuid") == true)
            }
        }
    }
}
