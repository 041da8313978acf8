import Foundation
import Ledger
import Postgres

/// TechBank's database schema (`schema.sql`, on top of the ledger's `ledger.sql`), applied at
/// start-up. Both files are idempotent, so applying them on every start is safe; the version is
/// recorded in `schema_version`. The repository's top-level `schema.sql` is the two, joined.
public enum Schema {
    /// The role the server works as (created by `migrate`; see `PostgresConfiguration.role`): it
    /// uses TechBank's tables and the ledger as `Ledger.userRole`, and cannot UPDATE or DELETE a
    /// ledger row or change a balance except through the ledger's functions.
    public static let applicationRole = "techbank_app"

    /// The full text of TechBank's `schema.sql` (without the ledger's part).
    public static let sql: String = {
        guard let url = Bundle.module.url(forResource: "schema", withExtension: "sql"),
              let text = try? String(contentsOf: url, encoding: .utf8)
        else { preconditionFailure("schema.sql is missing from the TechBank module's resources") }
        return text
    }()

    /// The version this binary's schema declares on its first line (`-- techbank schema version: N`).
    public static let version: Int = {
        let firstLine = sql.prefix(while: { $0 != "\n" })
        guard let number = firstLine.split(separator: ":").last.flatMap({ Int($0.trimmingCharacters(in: .whitespaces)) }) else {
            preconditionFailure("schema.sql must start with '-- techbank schema version: N'")
        }
        return number
    }()

    /// The whole schema, the ledger's and TechBank's, as the repository's top-level `schema.sql` holds it.
    public static var fullSQL: String { Ledger.schemaSQL + "\n" + sql }

    /// Applies the ledger's schema and TechBank's in one transaction, serialized with other starting instances by an
    /// advisory lock. Refuses a database whose schema is newer than this binary's.
    /// - Returns: the schema version now in the database.
    @discardableResult
    public static func migrate(_ pool: PostgresPool) async throws -> Int {
        try await pool.withTransaction { connection in
            try await connection.query("SELECT pg_advisory_xact_lock($1)", [advisoryLockKey])
            // The script is idempotent: its "already exists, skipping" notices are expected, not news.
            if let current = try await installedVersion(connection), current > version {
                throw SchemaError.databaseIsNewer(database: current, binary: version)
            }
            try await Ledger.migrate(on: connection)
            try await connection.executeScript(sql)
            return version
        }
    }

    /// The version recorded in the database, or nil if the schema was never applied.
    public static func installedVersion(_ connection: PostgresConnection) async throws -> Int? {
        let table = try await connection.query("SELECT to_regclass('public.schema_version') IS NOT NULL")
        guard try table[0].decode(Bool.self, at: 0) else { return nil }
        let rows = try await connection.query("SELECT version FROM public.schema_version")
        return try rows.first?.decode(Int.self, at: 0)
    }

    /// An arbitrary constant naming TechBank's migration lock.
    private static let advisoryLockKey: Int64 = 0x7465_6368_6261_6E6B
}

/// Why the schema cannot be applied.
public enum SchemaError: Error, CustomStringConvertible {
    case databaseIsNewer(database: Int, binary: Int)

    public var description: String {
        switch self {
        case let .databaseIsNewer(database, binary):
            return "the database has schema version \(database), newer than this techbank's \(binary); upgrade techbank instead of migrating down"
        }
    }
}

/// `columns` (a comma-separated column list) with each column prefixed by the table alias `alias`.
func qualified(_ columns: String, by alias: String) -> String {
    columns.split(separator: ",").map { "\(alias)." + $0.trimmingCharacters(in: .whitespacesAndNewlines) }.joined(separator: ", ")
}
