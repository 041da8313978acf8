import Postgres
import Testing
import TestSupport

/// A session prepares each statement once (by SQL text and parameter types) and then only binds
/// and runs it; these tests pin one connection (a pool of one) so every call reuses its session.
@Suite("Prepared statements")
struct PreparedStatementTests {
    static func preparedCount(_ connection: PostgresConnection) async throws -> Int64 {
        try await connection.query("SELECT count(*) FROM pg_prepared_statements")[0].decode(Int64.self, at: 0)
    }

    @Test func aStatementIsPreparedOncePerSessionAndTypes() async throws {
        try await TestDatabase.withPool(template: .empty, maxConnections: 1) { pool throws in
            try await pool.withConnection { connection throws in
                let before = try await Self.preparedCount(connection)
                for n in 1...5 {
                    #expect(try await connection.query("SELECT $1::int8 + 1", [Int64(n)])[0].decode(Int64.self, at: 0) == Int64(n) + 1)
                }
                // The same text with a parameter of another type is another statement.
                #expect(try await connection.query("SELECT $1::int8 + 1", [Int32(7)])[0].decode(Int64.self, at: 0) == 8)
                #expect(try await Self.preparedCount(connection) - before == 2, "one `SELECT $1::int8 + 1` per parameter type (the count was prepared before it counted)")
            }
        }
    }

    /// A table whose columns change under a prepared `SELECT *` fails that one call; the next one
    /// prepares the statement afresh and sees the new columns.
    @Test func aStatementWhoseResultChangedIsPreparedAgain() async throws {
        try await TestDatabase.withPool(template: .empty, maxConnections: 1) { pool throws in
            try await pool.withConnection { connection throws in
                try await connection.query("CREATE TABLE t (a int)")
                try await connection.query("INSERT INTO t VALUES (1)")
                #expect(try await connection.query("SELECT * FROM t").columns == ["a"])
                try await connection.query("ALTER TABLE t ADD COLUMN b int")
                let error = await #expect(throws: PostgresError.self) { try await connection.query("SELECT * FROM t") }
                #expect(error?.sqlState == SQLState.featureNotSupported, "\(String(describing: error))")
                #expect(try await connection.query("SELECT * FROM t").columns == ["a", "b"])
            }
        }
    }

    @Test func beyondTheLimitStatementsRunUnprepared() async throws {
        try await TestDatabase.withPool(template: .empty, maxConnections: 1) { pool throws in
            try await pool.withConnection { connection throws in
                for n in 0..<(PostgresConnection.maxPreparedStatements + 20) {
                    #expect(try await connection.query("SELECT \(n)::int8")[0].decode(Int64.self, at: 0) == Int64(n))
                }
                #expect(try await Self.preparedCount(connection) <= Int64(PostgresConnection.maxPreparedStatements))
                #expect(try await connection.query("SELECT 5::int8")[0].decode(Int64.self, at: 0) == 5, "a prepared one still runs")
            }
        }
    }
}
