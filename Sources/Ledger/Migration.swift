import Foundation
import Postgres

extension Ledger {
    /// The role an application takes on to use the ledger (created by `migrate`): it reads the
    /// ledger's tables and opens accounts, and changes money only through the ledger's functions.
    public static let userRole = "ledger_user"

    /// The ledger's schema as numbered steps (`Sources/Ledger/Migrations/NNNN_name.sql`: tables,
    /// guards, the journal and the transfer functions), recorded in `ledger.schema_migrations`.
    public static let migrations = SchemaMigrations.bundled(in: .module, schema: "ledger")

    /// Applies the ledger's pending steps in one transaction on its own.
    public static func migrate(_ pool: PostgresPool) async throws {
        try await pool.withTransaction { connection in try await migrate(on: connection) }
    }

    /// Applies the ledger's pending steps on `connection`, inside the caller's transaction (so an
    /// application can apply its own steps on top in the same transaction), serialized with other
    /// migrating instances by an advisory lock held until that transaction ends.
    /// - Throws: `SchemaError.databaseIsNewer` if the database has a step this binary does not know.
    public static func migrate(on connection: PostgresConnection) async throws {
        try await connection.query("SELECT pg_advisory_xact_lock($1)", [advisoryLockKey])
        try await migrations.apply(on: connection)
    }

    /// The ledger's migration lock (the one its first step takes, too).
    private static let advisoryLockKey: Int64 = 7_262_011_001
}
