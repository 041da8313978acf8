import Foundation
import Ledger
import Postgres

/// TechBank's database schema: the ledger's numbered steps (`Ledger.migrations`), then TechBank's
/// (`Sources/TechBank/Migrations/NNNN_name.sql`, recorded in `public.schema_migrations`), applied at
/// start-up. The repository's top-level `schema.sql` is the whole result, readable in one file.
public enum Schema {
    /// The role the server works as (created by `migrate`; see `PostgresConfiguration.role`): it
    /// uses TechBank's tables and the ledger as `Ledger.userRole`, and cannot UPDATE or DELETE a
    /// ledger row or change a balance except through the ledger's functions.
    public static let applicationRole = "techbank_app"

    /// TechBank's own steps, on top of the ledger's.
    public static let migrations = SchemaMigrations.bundled(in: .module, schema: "public")

    /// The schema version this binary expects: the number of TechBank's newest step.
    public static var version: Int { migrations.latest }

    /// Applies the ledger's pending steps, then TechBank's, all in one transaction (the database
    /// is at the old schema or the new one, never between), serialized with other starting
    /// instances by an advisory lock.
    /// - Returns: the schema version now in the database.
    /// - Throws: `SchemaError.databaseIsNewer` if the database has a step, the ledger's or
    ///   TechBank's, newer than this binary knows; the database is left untouched.
    @discardableResult
    public static func migrate(_ pool: PostgresPool) async throws -> Int {
        try await pool.withTransaction { connection in
            try await connection.query("SELECT pg_advisory_xact_lock($1)", [advisoryLockKey])
            try await Ledger.migrate(on: connection)
            try await migrations.apply(on: connection)
            return version
        }
    }

    /// Whether the database holds exactly this binary's schema: the ledger's newest step and
    /// TechBank's newest step, no more and no fewer.
    public static func isCurrent(_ connection: PostgresConnection) async throws -> Bool {
        let ledger = try await Ledger.migrations.appliedVersion(on: connection)
        let techbank = try await migrations.appliedVersion(on: connection)
        return ledger == Ledger.migrations.latest && techbank == version
    }

    /// An arbitrary constant naming TechBank's migration lock.
    private static let advisoryLockKey: Int64 = 0x7465_6368_6261_6E6B
}

/// `columns` (a comma-separated column list) with each column prefixed by the table alias `alias`.
func qualified(_ columns: String, by alias: String) -> String {
    columns.split(separator: ",").map { "\(alias)." + $0.trimmingCharacters(in: .whitespacesAndNewlines) }.joined(separator: ", ")
}
