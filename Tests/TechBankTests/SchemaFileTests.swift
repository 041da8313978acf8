import Foundation
import Ledger
import Postgres
import TechBank
import Testing
import TestSupport

@Suite("The top-level schema.sql")
struct SchemaFileTests {
    /// The repository's `schema.sql`.
    static func schemaFile() throws -> String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return try String(contentsOf: root.appendingPathComponent("schema.sql"), encoding: .utf8)
    }

    /// What a database holds besides its schema: the recorded steps and the frozen legacy version
    /// (without when) and the reference rows (currencies, fields, journal heads).
    static func contents(_ pool: PostgresPool) async throws -> [String] {
        let steps = try await pool.withConnection { connection throws in
            try await connection.query("""
                SELECT 'ledger ' || version || ' ' || name FROM ledger.schema_migrations
                UNION ALL SELECT 'public ' || version || ' ' || name FROM public.schema_migrations
                UNION ALL SELECT 'schema_version ' || version FROM public.schema_version ORDER BY 1
                """).map { row in try row.decode(String.self, at: 0) }
        }
        return try await steps + TestDatabase.dataDump(of: pool, excludingTables: ["*.schema_migrations", "public.schema_version"])
    }

    @Test("schema.sql and the migrations build the same schema: tables, functions, triggers, privileges, reference rows")
    func schemaFileIsWhatTheMigrationsBuild() async throws {
        let sql = try Self.schemaFile()
        try await TestDatabase.withPool(template: .empty) { fromFile throws in
            try await Self.apply(sql, to: fromFile)
            try await TestDatabase.withPool(template: .empty) { migrated throws in
                try await Schema.migrate(migrated)
                let file = try await TestDatabase.schemaDump(of: fromFile)
                let steps = try await TestDatabase.schemaDump(of: migrated)
                #expect(file.count > 1_000)
                let schemaDifference = Self.difference(file, steps)
                #expect(schemaDifference.isEmpty, "schema.sql (-) and the migrations (+) build different schemas:\n\(schemaDifference)")
                let (fileRows, stepRows) = (try await Self.contents(fromFile), try await Self.contents(migrated))
                #expect(fileRows.count > 100)
                let rowDifference = Self.difference(fileRows, stepRows)
                #expect(rowDifference.isEmpty, "schema.sql (-) and the migrations (+) insert different rows:\n\(rowDifference)")
            }
        }
    }

    @Test func aDatabaseBuiltFromSchemaFileIsCurrentAndNeedsNoStep() async throws {
        let sql = try Self.schemaFile()
        try await TestDatabase.withPool(template: .empty) { pool throws in
            try await Self.apply(sql, to: pool)
            #expect(try await pool.withConnection { try await Schema.isCurrent($0) })
            try await pool.withTransaction { connection throws in
                #expect(try await Ledger.migrations.apply(on: connection).isEmpty)
                #expect(try await Schema.migrations.apply(on: connection).isEmpty)
            }
        }
    }

    /// Runs `schema.sql` on `pool`'s database, as `psql -1 -f schema.sql` would.
    static func apply(_ sql: String, to pool: PostgresPool) async throws {
        try await pool.withTransaction { connection in
            // Its IF NOT EXISTS clauses skip what the template's roles already have: not news.
            try await connection.query("SET LOCAL client_min_messages = warning")
            try await connection.executeScript(sql)
        }
    }

    /// The lines only one side has, marked `-` (schema.sql) or `+` (migrations).
    static func difference(_ file: [String], _ steps: [String]) -> String {
        steps.difference(from: file).map { change in
            switch change {
            case let .remove(_, line, _): "- \(line)"
            case let .insert(_, line, _): "+ \(line)"
            }
        }.joined(separator: "\n")
    }
}
