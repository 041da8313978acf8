import Foundation
import Postgres

extension TestDatabase {
    /// The schema of `pool`'s database as `pg_dump --schema-only --no-owner` prints it, privileges
    /// included, without the lines that differ between two dumps of the same schema.
    public static func schemaDump(of pool: PostgresPool) async throws -> [String] {
        normalized(try await pgDump(pool, ["--schema-only", "--no-owner"]))
    }

    /// The rows of `pool`'s database as `pg_dump --data-only` prints them, but for the tables
    /// matching the `excludingTables` patterns (pg_dump's `--exclude-table-data`).
    public static func dataDump(of pool: PostgresPool, excludingTables: [String]) async throws -> [String] {
        normalized(try await pgDump(pool, ["--data-only"] + excludingTables.map { "--exclude-table-data=\($0)" }))
    }

    /// `dump`'s lines without comments, `SET`s, the per-run `\restrict` key and blank lines.
    private static func normalized(_ dump: String) -> [String] {
        dump.split(separator: "\n").map(String.init).filter { line in
            !(line.isEmpty || line.hasPrefix("--") || line.hasPrefix("SET ") || line.hasPrefix("SELECT pg_catalog.set_config(")
                || line.hasPrefix("\\restrict") || line.hasPrefix("\\unrestrict"))
        }
    }

    /// Runs `pg_dump` (from the PostgreSQL installation whose server the tests start) on `pool`'s
    /// database and returns what it prints; throws with its error output if it fails.
    private static func pgDump(_ pool: PostgresPool, _ arguments: [String]) async throws -> String {
        let binDirectory = try EmbeddedPostgres(options: EmbeddedPostgres.Options(directory: NSTemporaryDirectory())).binDirectory
        let conninfo = try connectionString(pool.configuration)
        return try await Task.detached {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: binDirectory + "/pg_dump")
            process.arguments = arguments + ["--dbname=\(conninfo)"]
            let output = Pipe()
            let errors = Pipe()
            process.standardOutput = output
            process.standardError = errors
            try process.run()
            // Read before waiting: a dump larger than the pipe's buffer would otherwise block pg_dump.
            let printed = output.fileHandleForReading.readDataToEndOfFile()
            let complaint = errors.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else {
                throw SchemaDumpError(description: "pg_dump failed: " + String(decoding: complaint, as: UTF8.self))
            }
            return String(decoding: printed, as: UTF8.self)
        }.value
    }

    /// One libpq connection string for `configuration`'s server and database.
    private static func connectionString(_ configuration: PostgresConfiguration) throws -> String {
        guard let database = configuration.database else { return configuration.conninfo }
        guard configuration.conninfo.contains("://") else {
            return configuration.conninfo + " dbname='\(database)'"  // later keywords override earlier ones
        }
        guard var url = URLComponents(string: configuration.conninfo) else {
            throw SchemaDumpError(description: "DATABASE_URL is not a URL")
        }
        url.path = "/" + database
        guard let string = url.string else { throw SchemaDumpError(description: "DATABASE_URL with database \(database) is not a URL") }
        return string
    }
}

/// Why a database could not be dumped.
struct SchemaDumpError: Error, CustomStringConvertible {
    let description: String
}
