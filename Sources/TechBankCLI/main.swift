import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Hummingbird
import Ledger
import Logging
import Postgres
import Server
import ServiceLifecycle
import TechBank

@main
struct TechBankCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "techbank",
        abstract: "The technology bank: a PostgreSQL-backed ledger and REST API for technology transfer.",
        subcommands: [Serve.self, Migrate.self, SeedDemo.self, Audit.self, Backup.self, Restore.self]
    )
}

/// Where the database is: an existing server (`--database-url` / `DATABASE_URL`) or the embedded
/// cluster under `--data-dir` / `TECHBANK_DATA_DIR` (default `./.techbank`). Flags win over the environment.
struct DatabaseOptions: ParsableArguments {
    @Option(help: "libpq connection string or URL of an existing PostgreSQL (env: DATABASE_URL). Unset: run an embedded cluster.")
    var databaseURL: String?

    @Option(help: "Directory of the embedded PostgreSQL cluster (env: TECHBANK_DATA_DIR; default: ./.techbank).")
    var dataDir: String?

    var resolvedDatabaseURL: String? {
        let value = databaseURL ?? ProcessInfo.processInfo.environment["DATABASE_URL"]
        return value?.isEmpty == false ? value : nil
    }

    var resolvedDataDir: String {
        dataDir ?? ProcessInfo.processInfo.environment["TECHBANK_DATA_DIR"] ?? "./.techbank"
    }

    /// Starts the embedded cluster if no URL is configured; returns the connection string and the
    /// cluster to stop afterwards (nil for an external server, or for a cluster another process
    /// runs, e.g. `audit verify` next to a running server).
    func connect(logger: Logger) async throws -> (conninfo: String, embedded: EmbeddedPostgres?) {
        if let url = resolvedDatabaseURL { return (url, nil) }
        let cluster = try EmbeddedPostgres(options: EmbeddedPostgres.Options(directory: resolvedDataDir))
        let started = try await cluster.start(logger: logger)
        return (cluster.conninfo, started ? cluster : nil)
    }

    /// Applies the schema as the connecting user (who owns the schema and creates its roles), on a
    /// pool used for nothing else; returns the version and the configuration to serve with, which
    /// works as `Schema.applicationRole`.
    func migrate(_ conninfo: String, logger: Logger) async throws -> (version: Int, application: PostgresConfiguration) {
        var configuration = PostgresConfiguration(conninfo: conninfo)
        configuration.maxConnections = 1
        let owner = PostgresPool(configuration: configuration, logger: logger)
        let result = await Result(catching: { try await Schema.migrate(owner) })
        await owner.close()
        var application = PostgresConfiguration(conninfo: conninfo)
        application.role = Schema.applicationRole
        return (try result.get(), application)
    }

    func describe() -> String {
        resolvedDatabaseURL == nil ? "embedded PostgreSQL in \(resolvedDataDir)" : "PostgreSQL at DATABASE_URL"
    }
}

func makeLogger() -> Logger {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        return handler
    }
    return Logger(label: "techbank")
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the HTTP server (starting the embedded PostgreSQL unless a database URL is given).")

    @OptionGroup var database: DatabaseOptions

    @Option(help: "Address to listen on (env: TECHBANK_HOST; default: 127.0.0.1).")
    var host: String?

    @Option(help: "libpq URL of a hot standby for read-only routes: reports, searches, sub-park activity and the audit log (env: TECHBANK_READ_DATABASE_URL; `target_session_attrs=prefer-standby` works). Unset: everything uses the primary.")
    var readDatabaseURL: String?

    @Option(help: "Port to listen on (env: TECHBANK_PORT; default: 8080).")
    var port: Int?

    @Option(help: "File of the Ed25519 key that signs audit checkpoints, created if missing (env: TECHBANK_AUDIT_KEY_FILE; default: <data dir>/audit-ed25519.key).")
    var auditKeyFile: String?

    @Option(help: "Name of the audit log: the checkpoints' origin and the key's name (env: TECHBANK_AUDIT_ORIGIN; default: techbank.example/journal).")
    var auditOrigin: String?

    func validate() throws {
        if let port, !(0...65_535).contains(port) { throw ValidationError("--port must be between 0 and 65535") }
        let environment = ProcessInfo.processInfo.environment
        if port == nil, let text = environment["TECHBANK_PORT"], Int(text).map({ (0...65_535).contains($0) }) != true {
            throw ValidationError("TECHBANK_PORT must be a port number between 0 and 65535")
        }
        if let text = environment["TECHBANK_APPROVAL_THRESHOLD"], Int64(text).map({ $0 >= 0 }) != true {
            throw ValidationError("TECHBANK_APPROVAL_THRESHOLD must be an amount in minor units (0 or more)")
        }
        if let text = environment["TECHBANK_INSTITUTE_SHARE_BP"], Int(text).map({ (0...10_000).contains($0) }) != true {
            throw ValidationError("TECHBANK_INSTITUTE_SHARE_BP must be 0 to 10000 basis points")
        }
        if let origin = auditOrigin ?? environment["TECHBANK_AUDIT_ORIGIN"],
           origin.isEmpty || origin.contains(where: { $0.isWhitespace || $0 == "+" }) || origin.utf8.contains(where: { $0 < 0x20 }) {
            throw ValidationError("the audit origin must be non-empty, without spaces or '+' (a name such as example.com/journal)")
        }
    }

    func run() async throws {
        let logger = makeLogger()
        let environment = ProcessInfo.processInfo.environment
        var server = ServerConfiguration()
        server.host = host ?? environment["TECHBANK_HOST"] ?? server.host
        server.port = port ?? environment["TECHBANK_PORT"].flatMap { Int($0) } ?? server.port
        server.dealRules.approvalThreshold = environment["TECHBANK_APPROVAL_THRESHOLD"].flatMap { Int64($0) } ?? server.dealRules.approvalThreshold
        server.dealRules.instituteShareBP = environment["TECHBANK_INSTITUTE_SHARE_BP"].flatMap { Int($0) } ?? server.dealRules.instituteShareBP
        let keyFile = auditKeyFile ?? environment["TECHBANK_AUDIT_KEY_FILE"] ?? "\(database.resolvedDataDir)/audit-ed25519.key"
        server.auditSigner = CheckpointSigner(name: auditOrigin ?? environment["TECHBANK_AUDIT_ORIGIN"] ?? server.auditSigner.name,
                                              key: try CheckpointSigner.loadOrCreateKey(at: keyFile))
        // Next to the audit key, and like it not in the database: a dump alone reveals no webhook secret.
        server.webhooks.secrets = try WebhookSecrets.loadOrCreate(
            at: environment["TECHBANK_WEBHOOK_KEY_FILE"] ?? URL(fileURLWithPath: keyFile).deletingLastPathComponent().appendingPathComponent("webhook-secrets.key").path)
        server.webhooks.allowPrivateNetworks = environment["TECHBANK_WEBHOOK_ALLOW_PRIVATE_NETWORKS"] == "true"
        if let text = environment["TECHBANK_WEBHOOK_RETRY_SECONDS"] {
            guard let schedule = WebhookSettings.retrySchedule(text) else {
                throw ValidationError("TECHBANK_WEBHOOK_RETRY_SECONDS must be 1 to 20 comma-separated delays of 1 to 86400 seconds")
            }
            server.webhooks.retrySchedule = schedule
        }

        let (conninfo, embedded) = try await database.connect(logger: logger)
        let (version, application): (Int, PostgresConfiguration)
        do {
            (version, application) = try await database.migrate(conninfo, logger: logger)
        } catch {
            await stopAfterFailure(embedded, logger: logger)
            throw error
        }
        let pool = PostgresPool(configuration: application, logger: logger)
        // Same role and limits as the primary's pool; it only reads.
        let readPool = (readDatabaseURL ?? environment["TECHBANK_READ_DATABASE_URL"]).flatMap { url -> PostgresPool? in
            guard !url.isEmpty else { return nil }
            var reads = application
            reads.conninfo = url
            return PostgresPool(configuration: reads, logger: logger)
        }
        do {
            if let generated = try await Organizations(pool: pool).bootstrapOperator(adminKey: environment["TECHBANK_ADMIN_KEY"]) {
                // Shown once: only its hash is stored.
                // Written unbuffered, so it appears before the log lines even when stdout is a file.
                FileHandle.standardOutput.write(Data("Operator API key (shown once; set TECHBANK_ADMIN_KEY to choose your own): \(generated)\n".utf8))
            }
            let databaseDescription = database.describe()
            let host = server.host
            let sweeper = LedgerSweeper(ledger: Ledger(pool: pool), logger: logger)
            let housekeeping = Housekeeping(pool: pool, logger: logger)
            let deliverer = WebhookDeliverer(pool: pool, settings: server.webhooks, logger: logger)
            let app = buildApplication(configuration: server, pool: pool, readPool: readPool, services: [sweeper, housekeeping, deliverer],
                                       logger: logger) { port in
                logger.info("TechBank listening on http://\(host):\(port)", metadata: [
                    "database": "\(databaseDescription)", "schema_version": "\(version)",
                ])
            }
            // In-flight requests get a bounded time to finish on SIGTERM/SIGINT; then the
            // remaining work is cancelled.
            var group = ServiceGroupConfiguration(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
            group.maximumGracefulShutdownDuration = .seconds(30)
            group.maximumCancellationDuration = .seconds(5)
            try await ServiceGroup(configuration: group).run()
        } catch {
            await pool.close()
            await readPool?.close()
            await stopAfterFailure(embedded, logger: logger)
            throw error
        }
        try await embedded?.stop(logger: logger)
    }
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply the pending schema migrations to the database and exit.")

    @OptionGroup var database: DatabaseOptions

    func run() async throws {
        let logger = makeLogger()
        let (conninfo, embedded) = try await database.connect(logger: logger)
        let result = await Result(catching: { try await database.migrate(conninfo, logger: logger).version })
        try await embedded?.stop(logger: logger)
        let version = try result.get()
        logger.info("schema is at version \(version)", metadata: ["database": "\(database.describe())"])
    }
}

struct SeedDemo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seed-demo",
        abstract: "Fill the database with a demo data set (sub-parks, institutes, 200 technologies, 50 demands) and print API keys to try it.")

    @OptionGroup var database: DatabaseOptions

    func run() async throws {
        let logger = makeLogger()
        let (conninfo, embedded) = try await database.connect(logger: logger)
        let result = await Result(catching: { () async throws -> DemoData.Summary in
            let pool = PostgresPool(configuration: try await database.migrate(conninfo, logger: logger).application, logger: logger)
            let seeded = await Result(catching: { try await DemoData.seed(pool) })
            await pool.close()
            return try seeded.get()
        })
        try await embedded?.stop(logger: logger)
        let summary: DemoData.Summary
        do {
            summary = try result.get()
        } catch let error as TechBankError {
            FileHandle.standardError.write(Data("techbank seed-demo: \(error.message)\n".utf8))
            throw ExitCode.failure
        }
        print("""
            Seeded \(summary.subParks) sub-parks, \(summary.institutes) institutes, \(summary.enterprises) enterprises, \
            \(summary.technologies) technologies (\(summary.listed) listed), \(summary.demands) open demands and \(summary.deals.count) deals (one in each state).
            API keys to try it with (shown once; send as Authorization: Bearer <key>):
            """)
        for (organization, kind, secret) in summary.keys {
            print("  \(kind.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0)) \(secret)  \(organization)")
        }
    }
}

struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check the audit journal: in the database, or a server's signed checkpoints.",
        subcommands: [AuditVerify.self, AuditVerifyRemote.self])
}

struct AuditVerify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Recompute every journal chain, leaf hash and Merkle subtree in the database (works while the server runs); exit 1 naming the first bad entry.")

    @OptionGroup var database: DatabaseOptions

    func run() async throws {
        let logger = makeLogger()
        let (conninfo, embedded) = try await database.connect(logger: logger)
        var configuration = PostgresConfiguration(conninfo: conninfo)
        configuration.role = Schema.applicationRole
        let pool = PostgresPool(configuration: configuration, logger: logger)
        let result = await Result(catching: { () async throws -> (Journal.Verification, AuditLog.TreeBreak?, Int) in
            let chains = try await Journal(pool: pool).verify()
            let audit = AuditLog(pool: pool)
            return (chains, try await audit.verifyTree(), try await audit.size())
        })
        await pool.close()
        try await embedded?.stop(logger: logger)
        let (chains, tree, size) = try result.get()
        if let broken = chains.firstBreak {
            FileHandle.standardError.write(Data("FAILED: \(broken)\n".utf8))
            throw ExitCode.failure
        }
        if let broken = tree {
            FileHandle.standardError.write(Data("FAILED: \(broken)\n".utf8))
            throw ExitCode.failure
        }
        print("OK: \(chains.entriesChecked) journal entries verify in their chains; \(size) leaves and every Merkle subtree match them.")
    }
}

struct AuditVerifyRemote: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify-remote",
        abstract: "Fetch a server's signed checkpoint, check its signature, and prove it consistent with a checkpoint saved earlier (saved there if the file is new).")

    @Option(help: "The server's base URL, e.g. http://127.0.0.1:8080.")
    var url: String

    @Option(help: "File of the checkpoint saved earlier; written with the server's checkpoint if it does not exist.")
    var checkpoint: String

    @Option(help: "The log's verifier key (name+id+key). Unset: the server's, which only proves the server is consistent with itself.")
    var verifierKey: String?

    @Option(help: "An API key (env: TECHBANK_API_KEY).")
    var apiKey: String?

    @Flag(help: "Replace the saved checkpoint with the server's once it is proven consistent.")
    var update = false

    func run() async throws {
        guard let key = apiKey ?? ProcessInfo.processInfo.environment["TECHBANK_API_KEY"] else {
            throw ValidationError("an API key is required: --api-key or TECHBANK_API_KEY")
        }
        guard let base = URL(string: url.hasSuffix("/") ? String(url.dropLast()) : url), base.scheme != nil else {
            throw ValidationError("--url must be a URL such as http://127.0.0.1:8080")
        }
        let fetch: @Sendable (String) async throws -> Data = { path in
            var request = URLRequest(url: URL(string: base.absoluteString + path)!)
            request.setValue("Bearer \(key)", forHTTPHeaderField: "Authorization")
            request.timeoutInterval = 30
            let (data, response) = try await URLSession.shared.data(for: request)
            guard let status = (response as? HTTPURLResponse)?.statusCode, status == 200 else {
                throw RemoteAudit.Failure(description: "GET \(path) answered \((response as? HTTPURLResponse)?.statusCode ?? 0): \(String(decoding: data.prefix(300), as: UTF8.self))")
            }
            return data
        }
        let pinned: String
        if let verifierKey {
            pinned = verifierKey
        } else {
            struct PublicKey: Decodable { let verifier_key: String }
            pinned = try JSONDecoder().decode(PublicKey.self, from: try await fetch("/v1/audit/public-key")).verifier_key
            FileHandle.standardError.write(Data("warning: using the server's own key \(pinned); pass --verifier-key to pin it\n".utf8))
        }
        let saved = try? String(contentsOfFile: checkpoint, encoding: .utf8)
        let outcome: RemoteAudit.Outcome
        do {
            outcome = try await RemoteAudit.check(savedNote: saved, verifierKey: pinned, fetch: fetch)
        } catch let failure as RemoteAudit.Failure {
            FileHandle.standardError.write(Data("FAILED: \(failure)\n".utf8))
            throw ExitCode.failure
        }
        if let previous = outcome.previous {
            print("OK: the log grew from \(previous.size) to \(outcome.checkpoint.size) entries and is consistent with \(checkpoint).")
            if update { try outcome.note.write(toFile: checkpoint, atomically: true, encoding: .utf8) }
        } else {
            try outcome.note.write(toFile: checkpoint, atomically: true, encoding: .utf8)
            print("Saved the server's checkpoint (\(outcome.checkpoint.size) entries) to \(checkpoint); run again later to prove nothing before it changed.")
        }
    }
}

/// Stops the embedded cluster on the way out of a failed command; the command's own error is the
/// one that is reported, so a failure to stop is logged rather than thrown.
func stopAfterFailure(_ embedded: EmbeddedPostgres?, logger: Logger) async {
    do {
        try await embedded?.stop(logger: logger)
    } catch {
        logger.error("cannot stop the embedded PostgreSQL", metadata: ["error": "\(error)"])
    }
}

struct Backup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Take a physical backup (pg_basebackup) of the whole cluster into one file, while the server runs or not.",
        discussion: """
            Every database, role, grant and row, consistent at the moment the backup ends. The audit \
            signing key (<data dir>/audit-ed25519.key) is not in the database and not in the backup: \
            keep a copy of it in your secret store. The connecting user needs the REPLICATION privilege \
            (the embedded cluster's superuser has it).
            """)

    @OptionGroup var database: DatabaseOptions

    @Option(help: "The file to write (a gzip-compressed tar of the cluster).")
    var to: String

    @Flag(help: "Replace the file if it exists.")
    var force = false

    func run() async throws {
        let logger = makeLogger()
        try PhysicalBackup.checkTarget(to, overwrite: force)
        let (conninfo, embedded) = try await database.connect(logger: logger)
        let result = await Result(catching: { try await PhysicalBackup.take(conninfo: conninfo, to: to, overwrite: force) })
        try await embedded?.stop(logger: logger)
        let summary = try result.get()
        print("""
            Backed up \(database.describe()) to \(summary.file): \(summary.sizeBytes) bytes in \
            \(String(format: "%.1f", summary.durationSeconds)) s, consistent at WAL position \(summary.consistentAtLSN) \
            (\(ISO8601DateFormatter().string(from: summary.finishedAt))).
            """)
    }
}

struct Restore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Build a new embedded cluster in --data-dir from a `techbank backup` file; then `techbank serve --data-dir` runs on it.")

    @Option(help: "The backup file.")
    var from: String

    @Option(help: "A new directory for the embedded cluster (refused if it already holds one).")
    var dataDir: String

    func run() async throws {
        let logger = makeLogger()
        let cluster = try EmbeddedPostgres(options: EmbeddedPostgres.Options(directory: dataDir))
        try await cluster.restore(from: from, logger: logger)
        print("Restored \(from) into \(cluster.options.directory); start it with: techbank serve --data-dir \(dataDir)")
        if !FileManager.default.fileExists(atPath: cluster.options.directory + "/audit-ed25519.key") {
            print("""
                The audit signing key is not part of a backup: copy your saved audit-ed25519.key into \
                \(cluster.options.directory)/ before serving, or the server creates a new key and its \
                checkpoints will no longer verify against the old verifier key.
                """)
        }
    }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
