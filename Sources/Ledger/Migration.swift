import Foundation
import Postgres

extension Ledger {
    /// The role an application takes on to use the ledger (created by `migrate`): it reads the
    /// ledger's tables and opens accounts, and changes money only through the ledger's functions.
    public static let userRole = "ledger_user"

    /// The ledger's schema (`ledger.sql`): tables, guards, the journal and the transfer functions.
    /// The script is idempotent, so applying it on every start is safe.
    public static let schemaSQL: String = {
        guard let url = Bundle.module.url(forResource: "ledger", withExtension: "sql"),
              let text = try? String(contentsOf: url, encoding: .utf8)
        else { preconditionFailure("ledger.sql is missing from the Ledger module's resources") }
        return text
    }()

    /// Applies the ledger's schema in one transaction on its own.
    public static func migrate(_ pool: PostgresPool) async throws {
        try await pool.withTransaction { connection in try await migrate(on: connection) }
    }

    /// Applies the ledger's schema on `connection`, inside the caller's transaction (so an
    /// application can install its own schema on top in the same transaction).
    public static func migrate(on connection: PostgresConnection) async throws {
        // The script is idempotent: its "already exists, skipping" notices are expected, not news.
        try await connection.query("SET LOCAL client_min_messages = warning")
        try await connection.executeScript(schemaSQL)
    }
}
