import Logging
import NIOPosix
import ServiceLifecycle

/// Settings of a `PostgresPool`. Every resource has a limit.
public struct PostgresConfiguration: Sendable {
    /// A libpq connection string or URL. May carry a password: never log it.
    public var conninfo: String
    /// A database name that overrides the one in `conninfo`, if set.
    public var database: String?
    /// A role every connection takes on right after connecting (`SET ROLE`), so that all its
    /// statements run with that role's privileges only; nil keeps the connecting user's.
    public var role: String?
    /// The most connections the pool opens.
    public var maxConnections: Int = 8
    /// The most callers that may wait for a connection at once; more are refused at once.
    public var maxWaiters: Int = 1_000
    /// How long a caller waits for a connection before `PostgresError.Code.leaseTimeout`.
    public var leaseTimeout: Duration = .seconds(10)
    /// The server's `statement_timeout` for every statement on the pool's connections.
    public var statementTimeoutMilliseconds: Int = 30_000
    /// How many times `withTransaction` runs its closure again after a serialization failure or
    /// deadlock, before the error reaches the caller.
    public var maxTransactionRetries: Int = 5

    public init(conninfo: String) { self.conninfo = conninfo }
}

/// How `withTransaction` begins its transaction.
public enum IsolationLevel: String, Sendable {
    case readCommitted = "READ COMMITTED"
    case repeatableRead = "REPEATABLE READ"
    case serializable = "SERIALIZABLE"
}

/// A bounded pool of `PostgresConnection`s, with closure-scoped leases and transactions.
///
/// Blocking libpq calls run on a dedicated `NIOThreadPool` sized to the pool, so a query holds a
/// pool thread, never an event loop or cooperative thread. Broken connections are closed and
/// replaced rather than handed out again. As a `Service`, it closes its connections on graceful
/// shutdown.
public final class PostgresPool: Service, Sendable {
    public let configuration: PostgresConfiguration
    private let threadPool: NIOThreadPool
    private let state: PoolState
    private let logger: Logger

    public init(configuration: PostgresConfiguration, logger: Logger) {
        precondition(configuration.maxConnections > 0, "a pool needs at least one connection")
        self.configuration = configuration
        self.threadPool = NIOThreadPool(numberOfThreads: configuration.maxConnections)
        self.threadPool.start()
        self.state = PoolState(maxConnections: configuration.maxConnections, maxWaiters: configuration.maxWaiters)
        self.logger = logger
    }

    /// Leases a connection for the duration of `body`; it goes back to the pool afterwards (or is
    /// closed, if it broke or was left inside a transaction). The connection carries the task's
    /// `PostgresSession.settings`.
    @discardableResult
    public func withConnection<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        let connection = try await lease()
        connection.useSessionSettings(PostgresSession.settings)
        do {
            let value = try await body(connection)
            await state.release(connection)
            return value
        } catch {
            // A connection to a server that cannot serve (a standby after a failover, one shutting
            // down) is not kept, nor are the idle ones to the same server: the next leases open new
            // ones, to wherever `conninfo` now leads (with several hosts, the new primary).
            await state.release(connection, serverGone: (error as? PostgresError)?.isServerGone == true)
            throw error
        }
    }

    /// Runs `body` inside a transaction: committed when `body` returns, rolled back when it throws.
    /// On a serialization failure or deadlock the whole closure runs again (see `withRetries`);
    /// so `body` must have no effects outside the database.
    @discardableResult
    public func withTransaction<T: Sendable>(
        isolation: IsolationLevel = .readCommitted, _ body: (PostgresConnection) async throws -> T
    ) async throws -> T {
        try await withRetries {
            try await withConnection { connection in
                try await connection.transactionControl("BEGIN ISOLATION LEVEL \(isolation.rawValue)")
                do {
                    let value = try await body(connection)
                    try await connection.transactionControl("COMMIT")
                    return value
                } catch {
                    // Not cancellable: if the task was cancelled, the rollback must still run. It
                    // undoes the session settings sent with this transaction's first statement.
                    _ = try? await Task { try await connection.transactionControl("ROLLBACK") }.value
                    connection.sessionSettingsMayBeLost()
                    throw error
                }
            }
        }
    }

    /// Runs `body` again, with a short jittered back-off, when it fails with a serialization
    /// failure or deadlock, at most `maxTransactionRetries` times. For work that is a transaction
    /// by itself: a `withTransaction`, or one statement in autocommit mode (a single call of a
    /// function that does all its work in one statement needs no BEGIN/COMMIT round trips).
    public func withRetries<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        var attempt = 0
        while true {
            do {
                return try await body()
            } catch let error as PostgresError where error.isRetryableTransactionFailure && attempt < configuration.maxTransactionRetries {
                attempt += 1
                logger.debug("retrying transaction", metadata: ["sqlstate": "\(error.sqlState ?? "")", "attempt": "\(attempt)"])
                let backoffMilliseconds = Int.random(in: 1...(5 << min(attempt, 6)))
                try await Task.sleep(for: .milliseconds(backoffMilliseconds))
            }
        }
    }

    /// Connections currently open and currently leased, for metrics.
    public func usage() async -> (open: Int, leased: Int, waiting: Int) {
        await state.usage()
    }

    /// Runs until graceful shutdown, then closes the pool.
    public func run() async throws {
        try? await gracefulShutdown()
        await close()
    }

    /// Closes idle connections, fails waiting callers, and refuses new leases. Leased connections are
    /// closed as they come back.
    public func close() async {
        await state.close()
        try? await threadPool.shutdownGracefully()
    }

    private func lease() async throws -> PostgresConnection {
        while true {
            switch try await state.acquire(timeout: configuration.leaseTimeout) {
            case .connection(let connection):
                return connection
            case .openSlot:
                do {
                    let connection = try await PostgresConnection.connect(
                        conninfo: configuration.conninfo,
                        database: configuration.database,
                        role: configuration.role,
                        statementTimeoutMilliseconds: configuration.statementTimeoutMilliseconds,
                        threadPool: threadPool)
                    try await state.opened(connection)
                    return connection
                } catch let error as PostgresError where error.code == .poolClosed {
                    throw error
                } catch {
                    await state.openFailed()
                    logger.error("cannot open a database connection", metadata: ["error": "\(error)"])
                    throw error
                }
            }
        }
    }
}

/// The pool's bookkeeping: idle connections, open count, and the FIFO queue of waiters.
private actor PoolState {
    enum Grant: Sendable {
        case connection(PostgresConnection)
        /// Below the limit: the caller opens a new connection, already counted as open.
        case openSlot
    }

    private let maxConnections: Int
    private let maxWaiters: Int
    private var idle: [PostgresConnection] = []
    private var openCount = 0
    private var leasedCount = 0
    private var waiters: [(id: UInt64, continuation: CheckedContinuation<Grant, any Error>)] = []
    private var nextWaiterID: UInt64 = 0
    private var closed = false

    init(maxConnections: Int, maxWaiters: Int) {
        self.maxConnections = maxConnections
        self.maxWaiters = maxWaiters
    }

    func usage() -> (open: Int, leased: Int, waiting: Int) { (openCount, leasedCount, waiters.count) }

    func acquire(timeout: Duration) async throws -> Grant {
        guard !closed else { throw PostgresError(code: .poolClosed, message: "the connection pool is closed") }
        if let grant = immediateGrant() { return grant }
        guard waiters.count < maxWaiters else {
            throw PostgresError(code: .tooManyWaiters, message: "too many callers are waiting for a database connection")
        }
        let id = nextWaiterID
        nextWaiterID += 1
        let timer = Task { [weak self] in
            try await Task.sleep(for: timeout)
            await self?.fail(waiter: id, with: PostgresError(code: .leaseTimeout, message: "no database connection became free in time"))
        }
        defer { timer.cancel() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                waiters.append((id, continuation))
            }
        } onCancel: {
            Task { await self.fail(waiter: id, with: CancellationError()) }
        }
    }

    /// An idle live connection, or a slot to open one, if either is available now.
    private func immediateGrant() -> Grant? {
        while let connection = idle.popLast() {
            if connection.isAliveWhileIdle() {
                leasedCount += 1
                return .connection(connection)
            }
            connection.close()
            openCount -= 1
        }
        if openCount < maxConnections {
            openCount += 1
            leasedCount += 1
            return .openSlot
        }
        return nil
    }

    private func fail(waiter id: UInt64, with error: any Error) {
        guard let index = waiters.firstIndex(where: { $0.id == id }) else { return }
        waiters.remove(at: index).continuation.resume(throwing: error)
    }

    func opened(_ connection: PostgresConnection) throws {
        guard closed else { return }
        connection.close()
        openCount -= 1
        leasedCount -= 1
        throw PostgresError(code: .poolClosed, message: "the connection pool is closed")
    }

    func openFailed() {
        openCount -= 1
        leasedCount -= 1
        serveWaiter()
    }

    /// Takes a leased connection back. When its server is gone, the idle connections are closed
    /// with it: they reached the same server.
    func release(_ connection: PostgresConnection, serverGone: Bool = false) {
        leasedCount -= 1
        if connection.isReusable, !serverGone, !closed {
            idle.append(connection)
        } else {
            connection.close()
            openCount -= 1
        }
        if serverGone { closeIdle() }
        serveWaiter()
    }

    private func closeIdle() {
        for connection in idle { connection.close() }
        openCount -= idle.count
        idle.removeAll()
    }

    private func serveWaiter() {
        guard !waiters.isEmpty, let grant = immediateGrant() else { return }
        waiters.removeFirst().continuation.resume(returning: grant)
    }

    func close() {
        closed = true
        closeIdle()
        for waiter in waiters {
            waiter.continuation.resume(throwing: PostgresError(code: .poolClosed, message: "the connection pool is closed"))
        }
        waiters.removeAll()
    }
}

/// Session settings that follow a task into every connection it leases: who acts, with which key,
/// for which request, so that the database records them with every change (the journal reads
/// them with `current_setting`). Keys are PostgreSQL custom settings such as `techbank.actor_id`.
public enum PostgresSession {
    @TaskLocal public static var settings: [String: String] = [:]
}
