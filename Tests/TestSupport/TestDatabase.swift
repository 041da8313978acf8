import Foundation
import Logging
import NIOPosix
import Postgres
import Synchronization

/// The schema a test database starts with: a template database, migrated once per test run.
public struct TestTemplate: Sendable {
    /// Names the template database (`<name>_test_template`).
    public let name: String
    /// Applies the schema to the template.
    public let migrate: @Sendable (PostgresPool) async throws -> Void

    public init(name: String, migrate: @escaping @Sendable (PostgresPool) async throws -> Void) {
        self.name = name
        self.migrate = migrate
    }

    /// An empty database (for the Postgres client's own tests).
    public static let empty = TestTemplate(name: "empty") { _ in }
}

/// A real PostgreSQL for tests: the server at `DATABASE_URL` if set, otherwise one throwaway
/// embedded cluster per test run (started on first use, stopped and deleted when the process
/// exits). Each test gets its own database, cloned from a template that has the schema applied,
/// so tests can run in parallel without seeing each other's data. Each test target chooses its
/// schema (a `TestTemplate`), so the Postgres and Ledger tests stand without TechBank.
public enum TestDatabase {
    /// A logger that discards everything, for code under test.
    public static let logger = Logger(label: "techbank.test", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Runs `body` with a pool on a fresh database holding the current schema, then drops the database.
    public static func withPool<T: Sendable>(
        template: TestTemplate,
        maxConnections: Int = 4,
        configure: (inout PostgresConfiguration) -> Void = { _ in },
        _ body: (PostgresPool) async throws -> T
    ) async throws -> T {
        await gate.enter()
        defer { Task { await gate.leave() } }
        let server = try await shared.server()
        let templateName = try await shared.template(template, on: server)
        let name = "t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        try await server.admin { try await $0.query("CREATE DATABASE \(name) TEMPLATE \(templateName)") }
        var configuration = PostgresConfiguration(conninfo: server.conninfo)
        configuration.database = name
        configuration.maxConnections = maxConnections
        configure(&configuration)
        let pool = PostgresPool(configuration: configuration, logger: logger)
        do {
            let value = try await body(pool)
            await pool.close()
            try await server.admin { try await $0.query("DROP DATABASE \(name) WITH (FORCE)") }
            return value
        } catch {
            await pool.close()
            try? await server.admin { try await $0.query("DROP DATABASE \(name) WITH (FORCE)") }
            throw error
        }
    }

    /// The connection string of the test server (its maintenance database is `postgres`).
    public static func serverConninfo() async throws -> String {
        try await shared.server().conninfo
    }

    private static let shared = SharedServer()
    /// Swift Testing runs every test at once; at most this many hold a database (and its pool's
    /// connections), so a few hundred tests stay within the cluster's connections and the CPUs.
    static let maxConcurrentDatabases = 16
    private static let gate = Gate(slots: maxConcurrentDatabases)
}

/// A counting semaphore with a FIFO queue.
private actor Gate {
    private var free: Int
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(slots: Int) { free = slots }

    func enter() async {
        if free > 0 {
            free -= 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    func leave() {
        if waiting.isEmpty {
            free += 1
        } else {
            waiting.removeFirst().resume()
        }
    }
}

struct TestServer: Sendable {
    let conninfo: String

    func admin<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        let connection = try await PostgresConnection.connect(
            conninfo: conninfo, database: "postgres", statementTimeoutMilliseconds: 60_000, threadPool: .singleton)
        defer { connection.close() }
        return try await body(connection)
    }
}

/// The embedded cluster to stop when the test process exits.
private let clusterToDestroy = Mutex<EmbeddedPostgres?>(nil)

private actor SharedServer {
    private var setup: Task<TestServer, any Error>?
    private var templates: [String: Task<String, any Error>] = [:]

    /// The name of `template`'s database, created and migrated on first use.
    func template(_ template: TestTemplate, on server: TestServer) async throws -> String {
        if let task = templates[template.name] { return try await task.value }
        let task = Task { try await Self.createTemplate(template, on: server) }
        templates[template.name] = task
        return try await task.value
    }

    private static func createTemplate(_ template: TestTemplate, on server: TestServer) async throws -> String {
        let name = "\(template.name)_test_template"
        try await server.admin { admin throws in
            try await admin.query("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
            try await admin.query("CREATE DATABASE \(name)")
        }
        var configuration = PostgresConfiguration(conninfo: server.conninfo)
        configuration.database = name
        configuration.maxConnections = 1
        let pool = PostgresPool(configuration: configuration, logger: TestDatabase.logger)
        do {
            try await template.migrate(pool)
            await pool.close()
        } catch {
            await pool.close()
            throw error
        }
        return name
    }

    func server() async throws -> TestServer {
        if let setup { return try await setup.value }
        let task = Task { try await Self.start() }
        setup = task
        return try await task.value
    }

    private static func start() async throws -> TestServer {
        let server: TestServer
        if let url = ProcessInfo.processInfo.environment["DATABASE_URL"], !url.isEmpty {
            server = TestServer(conninfo: url)
        } else {
            var options = EmbeddedPostgres.Options(directory: NSTemporaryDirectory() + "techbank-test-\(getpid())")
            options.database = "postgres"
            options.settings = ["fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", "max_connections": "300"]
            let cluster = try EmbeddedPostgres(options: options)
            clusterToDestroy.withLock { $0 = cluster }
            atexit { clusterToDestroy.withLock { try? $0?.destroy() } }
            try await cluster.start(logger: TestDatabase.logger)
            server = TestServer(conninfo: cluster.conninfo)
        }
        return server
    }
}
