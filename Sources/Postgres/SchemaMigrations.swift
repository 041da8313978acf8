import Foundation

/// One numbered step of a schema's history, read from a file `NNNN_name.sql`.
public struct Migration: Sendable, Equatable {
    /// The step's number: steps are applied in this order, each exactly once.
    public let version: Int
    /// What the step is for, from its file name (`0002_freeze_schema_version.sql`: `freeze_schema_version`).
    public let name: String
    /// The step's script: trusted, fixed SQL shipped with the binary.
    public let sql: String

    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }
}

/// A module's numbered migrations and the table that records which of them a database holds,
/// `<schema>.schema_migrations`. The steps are numbered 1, 2, 3 … without gaps; they are applied in
/// order, inside the caller's transaction, and each is recorded in that same transaction, so a
/// step is applied exactly once.
public struct SchemaMigrations: Sendable {
    /// The PostgreSQL schema whose `schema_migrations` table records the applied steps.
    public let schema: String
    /// Every step, ordered by number.
    public let steps: [Migration]

    /// The number of the newest step (the schema this binary expects).
    public var latest: Int { steps.last?.version ?? 0 }

    /// The recording table, schema-qualified.
    var table: String { "\(schema).schema_migrations" }

    /// `steps`, ordered. Throws `SchemaError.invalidMigrations` if the numbers are not exactly 1…n
    /// (a gap or a duplicate is a programming error) or `schema` is not a plain identifier.
    public init(schema: String, steps: [Migration]) throws(SchemaError) {
        guard schema.range(of: "^[a-z_][a-z0-9_]{0,62}$", options: .regularExpression) != nil else {
            throw .invalidMigrations("schema name must match [a-z_][a-z0-9_]*: \(schema)")
        }
        let ordered = steps.sorted { $0.version < $1.version }
        for (index, step) in ordered.enumerated() where step.version != index + 1 {
            let duplicate = index > 0 && ordered[index - 1].version == step.version
            let problem = duplicate ? "two steps are numbered \(step.version)" : "step \(index + 1) is missing (found \(step.version))"
            throw .invalidMigrations("\(schema) migrations: \(problem); steps are numbered 1, 2, 3 … without gaps")
        }
        self.schema = schema
        self.steps = ordered
    }

    /// The steps in `directory`, every file of which must be named `NNNN_name.sql`.
    public init(schema: String, directory: URL) throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        let steps = try files.map { file throws(SchemaError) in
            guard let match = file.wholeMatch(of: /([0-9]{4})_([a-z0-9_]+)\.sql/), let version = Int(match.1) else {
                throw .invalidMigrations("\(schema) migrations: \(file) is not named NNNN_name.sql")
            }
            return (version, String(match.2), file)
        }.map { version, name, file in
            Migration(version: version, name: name, sql: try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8))
        }
        try self.init(schema: schema, steps: steps)
    }

    /// The steps a module ships in its `Migrations` resource folder. A module without valid steps
    /// is a build defect, so this traps rather than throws.
    public static func bundled(in bundle: Bundle, schema: String) -> SchemaMigrations {
        guard let directory = bundle.url(forResource: "Migrations", withExtension: nil) else {
            preconditionFailure("Migrations is missing from the resources of \(bundle.bundlePath)")
        }
        do {
            return try SchemaMigrations(schema: schema, directory: directory)
        } catch {
            preconditionFailure("the \(schema) migrations in \(bundle.bundlePath): \(error)")
        }
    }

    /// Applies the steps the database does not have yet, in order, on `connection` inside the
    /// caller's transaction, recording each. A database without the recording table (new, or made
    /// by a release before numbered migrations) gets it first, then every step: step 1 is
    /// idempotent, so it also brings such a database's schema up to step 1.
    /// - Returns: the numbers of the steps applied now.
    /// - Throws: `SchemaError.databaseIsNewer` if the database has a step this binary does not know.
    @discardableResult
    public func apply(on connection: PostgresConnection) async throws -> [Int] {
        // Step 1 is idempotent: its "already exists, skipping" notices are expected, not news.
        try await connection.query("SET LOCAL client_min_messages = warning")
        try await connection.executeScript("""
            CREATE SCHEMA IF NOT EXISTS \(schema);
            CREATE TABLE IF NOT EXISTS \(table) (
                version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());
            """)
        let applied = try await connection.query("SELECT version FROM \(table)").map { row throws(PostgresError) in
            try row.decode(Int.self, at: 0)
        }
        if let newest = applied.max(), newest > latest {
            throw SchemaError.databaseIsNewer(schema: schema, database: newest, binary: latest)
        }
        let pending = steps.filter { !applied.contains($0.version) }
        for step in pending {
            try await connection.executeScript(step.sql)
            try await connection.query("INSERT INTO \(table) (version, name) VALUES ($1, $2)", [Int32(step.version), step.name])
        }
        return pending.map(\.version)
    }

    /// The number of the newest step the database has, or nil if it has none (or no recording table).
    public func appliedVersion(on connection: PostgresConnection) async throws -> Int? {
        let exists = try await connection.query("SELECT to_regclass($1) IS NOT NULL", [table])
        guard try exists[0].decode(Bool.self, at: 0) else { return nil }
        return try await connection.query("SELECT max(version) FROM \(table)")[0].decode(Int?.self, at: 0)
    }
}

/// Why a schema cannot be migrated.
public enum SchemaError: Error, CustomStringConvertible {
    /// The database has a step newer than this binary's newest: the binary is older than the data.
    case databaseIsNewer(schema: String, database: Int, binary: Int)
    /// A module's migration files are misnamed or misnumbered (a programming error).
    case invalidMigrations(String)

    public var description: String {
        switch self {
        case let .databaseIsNewer(schema, database, binary):
            "the database's \(schema).schema_migrations has step \(database), newer than this binary's \(binary); upgrade the binary instead of migrating down"
        case let .invalidMigrations(problem):
            problem
        }
    }
}
