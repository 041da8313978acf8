import Foundation
import Logging
import NIOPosix
import Postgres
import Synchronization
import TechBank

/// A real PostgreSQL for tests: the server at `DATABASE_URL` if set, otherwise one throwaway
/// embedded cluster per test run (started on first use, stopped and deleted when the process
/// exits). Each test gets its own database, cloned from a template that has the schema applied,
/// so tests can run in parallel without seeing each other's data.
public enum TestDatabase {
    /// A logger that discards everything, for code under test.
    public static let logger = Logger(label: "techbank.test", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Runs `body` with a pool on a fresh database holding the current schema, then drops the database.
    public static func withPool<T: Sendable>(
        maxConnections: Int = 4,
        configure: (inout PostgresConfiguration) -> Void = { _ in },
        _ body: (PostgresPool) async throws -> T
    ) async throws -> T {
        await gate.enter()
        defer { Task { await gate.leave() } }
        let server = try await shared.server()
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

    static let templateName = "techbank_test_template"
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
        let template = TestDatabase.templateName
        try await server.admin { admin throws in
            try await admin.query("DROP DATABASE IF EXISTS \(template) WITH (FORCE)")
            try await admin.query("CREATE DATABASE \(template)")
        }
        var configuration = PostgresConfiguration(conninfo: server.conninfo)
        configuration.database = template
        configuration.maxConnections = 1
        let pool = PostgresPool(configuration: configuration, logger: TestDatabase.logger)
        do {
            try await Schema.migrate(pool)
            await pool.close()
        } catch {
            await pool.close()
            throw error
        }
        return server
    }
}
