import Foundation
import Postgres
import Testing
import TestSupport

@Suite("Pipeline mode")
struct PipelineTests {
    @Test func manyStatementsInOneRoundTrip() async throws {
        try await TestDatabase.withPool(template: .empty) { pool throws in
            try await pool.withConnection { connection throws in
                try await connection.query("CREATE TABLE items (n int8 PRIMARY KEY, label text)")
                let statements = (0..<2_000).map { PostgresStatement("INSERT INTO items VALUES ($1, $2)", [Int64($0), "标签 \($0)"]) }
                let results = try await connection.pipeline(statements)
                #expect(results.count == 2_000)
                #expect(results.allSatisfy { if case .success(let r) = $0 { r.affectedRows == 1 } else { false } })
                let reads = try await connection.pipeline((0..<3).map { PostgresStatement("SELECT label FROM items WHERE n = $1", [Int64($0)]) })
                #expect(try reads.map { try $0.get()[0].decode(String.self, at: 0) } == ["标签 0", "标签 1", "标签 2"])
            }
        }
    }

    @Test func errorInTheMiddleAbortsTheRestAndRollsBack() async throws {
        try await TestDatabase.withPool(template: .empty) { pool throws in
            try await pool.withConnection { connection throws in
                try await connection.query("CREATE TABLE items (n int8 PRIMARY KEY)")
                let results = try await connection.pipeline([
                    PostgresStatement("INSERT INTO items VALUES (1)"),
                    PostgresStatement("SELECT 1 / $1::int4", [Int32(0)]),
                    PostgresStatement("INSERT INTO items VALUES (3)"),
                ])
                #expect(results.count == 3)
                guard case .success = results[0] else { Issue.record("first statement should succeed"); return }
                guard case .failure(let error) = results[1] else { Issue.record("second statement should fail"); return }
                #expect(error.sqlState == "22012")
                guard case .failure = results[2] else { Issue.record("third statement should not run"); return }
                // The pipeline was one implicit transaction: the first insert was rolled back too.
                let count = try await connection.query("SELECT count(*)::int8 FROM items")[0].decode(Int64.self, at: 0)
                #expect(count == 0)
                // The connection left pipeline mode and works normally.
                let again = try await connection.pipeline([PostgresStatement("INSERT INTO items VALUES (4)")])
                #expect(throws: Never.self) { try again[0].get() }
            }
        }
    }

    @Test func limitsAreEnforcedBeforeSending() async throws {
        try await TestDatabase.withPool(template: .empty) { pool throws in
            try await pool.withConnection { connection throws in
                let tooMany = Array(repeating: PostgresStatement("SELECT 1"), count: PostgresConnection.maxPipelineStatements + 1)
                let error = await #expect(throws: PostgresError.self) { try await connection.pipeline(tooMany) }
                #expect(error?.code == .invalidRequest)
                #expect(try await connection.pipeline([]).isEmpty)
            }
        }
    }
}
