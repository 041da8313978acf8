internal import CPostgres
import Foundation
import Logging
import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A statement with its bound parameters.
public struct PostgresStatement: Sendable {
    public var sql: String
    public var binds: [any PostgresEncodable]

    public init(_ sql: String, _ binds: [any PostgresEncodable] = []) {
        self.sql = sql
        self.binds = binds
    }
}

/// Calls `body` with a NULL-terminated array of C strings.
private func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    let duplicates = strings.map { strdup($0) }
    defer { duplicates.forEach { free($0) } }
    let pointers: [UnsafePointer<CChar>?] = duplicates.map { UnsafePointer($0) } + [nil]
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}

/// One libpq connection.
///
/// libpq calls block, so every call that talks to the server runs on the pool's `NIOThreadPool`,
/// never on a NIO event loop or the Swift cooperative pool. A connection is used by one task at a
/// time: the pool hands it out to one lease holder, and the holder awaits each call in turn.
public final class PostgresConnection: @unchecked Sendable {
    /// The most parameters one statement may bind (the protocol's limit).
    public static let maxParameters = 65_535
    /// The most statements one session keeps prepared; later ones run unprepared.
    public static let maxPreparedStatements = 256
    /// The most statements one pipeline may carry.
    public static let maxPipelineStatements = 10_000

    private let handle: OpaquePointer
    private let cancelHandle: OpaquePointer?
    private let threadPool: NIOThreadPool
    /// Set while a cancel request may still reach the server; such a connection is not reused,
    /// because a late cancel could hit the next caller's statement.
    private let cancelInFlight = Atomic<Bool>(false)
    /// The server process id of this connection's backend.
    public let backendPID: Int32
    /// The `PostgresSession` settings of the current lease, and those the session is known to hold
    /// (nil: not known, after a failure or a rollback that may have undone them). Touched only by
    /// the current lease holder.
    private var wantedSettings: [String: String] = [:]
    private var appliedSettings: [String: String]? = [:]
    /// Statements prepared on this session, by SQL text and parameter types: parsed and planned once,
    /// as `pgbench -M prepared` does, then only bound and run. Touched only by the thread running
    /// the lease holder's current call.
    private var prepared: [PreparedKey: String] = [:]
    private var nextPreparedNumber = 0
    private struct PreparedKey: Hashable {
        let sql: String
        let types: [Oid]
    }
    /// Every custom setting this session was ever given, so that one a lease no longer carries is
    /// emptied rather than left to the next lease.
    private var settingKeys: Set<String> = []

    private init(handle: OpaquePointer, threadPool: NIOThreadPool) {
        self.handle = handle
        self.cancelHandle = PQgetCancel(handle)
        self.threadPool = threadPool
        self.backendPID = PQbackendPID(handle)
    }

    /// Makes the session's custom settings equal `settings` (settings it no longer carries become
    /// empty) before the next statement runs. No round trip of its own: when they differ from
    /// what the session holds, they travel in one pipeline with that statement, in its implicit
    /// transaction, so the statement never runs without them.
    func useSessionSettings(_ settings: [String: String]) {
        wantedSettings = settings
        settingKeys.formUnion(settings.keys)
    }

    /// Forgets what the session's settings are, so the next statement sends them again: a rollback
    /// undoes the `set_config` calls of its transaction.
    func sessionSettingsMayBeLost() {
        appliedSettings = nil
    }

    /// The `set_config` statement the next statement needs first, or nil when the session holds the
    /// wanted settings already.
    private func pendingSettingsStatement() -> PostgresStatement? {
        guard appliedSettings != wantedSettings, !settingKeys.isEmpty else { return nil }
        var binds: [any PostgresEncodable] = []
        var calls: [String] = []
        for key in settingKeys.sorted() {
            binds += [key, wantedSettings[key] ?? ""]
            calls.append("set_config($\(binds.count - 1), $\(binds.count), false)")
        }
        return PostgresStatement("SELECT " + calls.joined(separator: ", "), binds)
    }

    /// Runs `statements` in one pipeline, after `settings` (the pending settings) if any; records
    /// the settings as held only when everything succeeded.
    private func runPipelined(_ statements: [PostgresStatement], after settings: PostgresStatement?) async throws
        -> [Result<PostgresResult, PostgresError>] {
        guard let settings else { return try await run { try self.runPipeline(statements) } }
        let wanted = wantedSettings
        appliedSettings = nil
        let results = try await run { try self.runPipeline([settings] + statements) }
        if case .failure(let error) = results[0] { throw error }
        if results.allSatisfy({ if case .success = $0 { true } else { false } }) { appliedSettings = wanted }
        return Array(results.dropFirst())
    }

    /// How long opening a connection may take unless `conninfo` sets `connect_timeout`.
    public static let defaultConnectTimeoutSeconds = 5

    /// Opens a connection from a libpq connection string or URL and applies session settings.
    /// - Parameter database: a database name that overrides the one in `conninfo`, if any.
    /// - Parameter role: a role to take on (`SET ROLE`) for every statement, if any.
    public static func connect(
        conninfo: String, database: String? = nil, role: String? = nil, statementTimeoutMilliseconds: Int, threadPool: NIOThreadPool
    ) async throws -> PostgresConnection {
        let connection = try await threadPool.runIfActive { () throws -> PostgresConnection in
            // The first `dbname` is expanded as a whole connection string; later keywords override
            // earlier ones. `connect_timeout` comes first, so a `conninfo` that sets its own wins:
            // without one, a database host that drops packets would hold a pool thread forever.
            var keywords = ["connect_timeout", "dbname"]
            var values = [String(defaultConnectTimeoutSeconds), conninfo]
            if let database {
                keywords.append("dbname")
                values.append(database)
            }
            let opened = withCStrings(keywords) { keywordPointers in
                withCStrings(values) { valuePointers in PQconnectdbParams(keywordPointers, valuePointers, 1) }
            }
            guard let handle = opened else {
                throw PostgresError(code: .connection, message: "out of memory")
            }
            guard PQstatus(handle) == CONNECTION_OK else {
                let message = String(cString: PQerrorMessage(handle)).trimmingCharacters(in: .whitespacesAndNewlines)
                PQfinish(handle)
                throw PostgresError(code: .connection, message: message)
            }
            return PostgresConnection(handle: handle, threadPool: threadPool)
        }
        do {
            _ = try await connection.query(
                "SELECT set_config('statement_timeout', $1, false), set_config('TimeZone', 'UTC', false)",
                ["\(statementTimeoutMilliseconds)ms"])
            if let role { _ = try await connection.query("SELECT set_config('role', $1, false)", [role]) }
        } catch {
            connection.close()
            throw error
        }
        return connection
    }

    /// Closes a connection opened with `connect`. Pooled connections are closed by their pool.
    /// Must not be called while a statement runs.
    public func close() {
        if let cancelHandle { PQfreeCancel(cancelHandle) }
        PQfinish(handle)
    }

    // MARK: Statements

    /// Runs one statement with bound parameters (binary format both ways) and returns its rows.
    /// If the calling task is cancelled, the running statement is cancelled on the server.
    @discardableResult
    public func query(_ sql: String, _ binds: [any PostgresEncodable] = []) async throws -> PostgresResult {
        let statement = PostgresStatement(sql, binds)
        guard let settings = pendingSettingsStatement() else { return try await run { try self.execute(statement) } }
        return try await runPipelined([statement], after: settings)[0].get()
    }

    /// Runs `BEGIN`, `COMMIT` or `ROLLBACK` on its own, never with pending session settings: a
    /// `BEGIN` must come first in its transaction, and a `ROLLBACK` must run even in a failed one.
    func transactionControl(_ sql: String) async throws {
        _ = try await run { try self.execute(PostgresStatement(sql)) }
    }

    /// Throws unless this server takes writes: on a standby, or where transactions are read-only
    /// by default (a primary being demoted), the error is a `read_only_sql_transaction` (25006),
    /// so that a pool drops its connections to this server.
    public func requireWrites() async throws {
        guard try await query("SELECT current_setting('transaction_read_only') = 'off'")[0].decode(Bool.self, at: 0) else {
            throw PostgresError(code: .server, sqlState: SQLState.readOnlySQLTransaction, message: "the server takes no writes (a standby)")
        }
    }

    public func executeScript(_ sql: String) async throws {
        if let settings = pendingSettingsStatement() { _ = try await runPipelined([], after: settings) }
        // The script may roll back what it set, or set custom settings itself.
        defer { sessionSettingsMayBeLost() }
        try await run { () throws -> Void in
            guard let result = PQexec(self.handle, sql) else { throw self.connectionError() }
            _ = try self.check(result)
        }
    }

    /// Runs statements in libpq pipeline mode: all are sent before any result is read, so they cost
    /// one round trip. Outside an explicit transaction the server runs them as one implicit
    /// transaction: an error rolls back the ones before it, and the ones after it are not run
    /// (their results are errors too). Returns one result per statement, in order.
    public func pipeline(_ statements: [PostgresStatement]) async throws -> [Result<PostgresResult, PostgresError>] {
        guard statements.count <= Self.maxPipelineStatements else {
            throw PostgresError(code: .invalidRequest, message: "a pipeline takes at most \(Self.maxPipelineStatements) statements")
        }
        if statements.isEmpty { return [] }
        return try await runPipelined(statements, after: pendingSettingsStatement())
    }

    /// Whether the connection can go back to the pool: open, idle, not in a transaction, and with no
    /// cancel request possibly still on its way.
    var isReusable: Bool {
        PQstatus(handle) == CONNECTION_OK && PQtransactionStatus(handle) == PQTRANS_IDLE
            && !cancelInFlight.load(ordering: .acquiring)
    }

    /// A cheap check, without a round trip, that an idle connection is still usable. An idle
    /// connection has nothing to read; if its socket is readable the server has sent something
    /// unsolicited (typically the FATAL message of a terminated backend, then end-of-file).
    func isAliveWhileIdle() -> Bool {
        guard PQstatus(handle) == CONNECTION_OK else { return false }
        var descriptor = pollfd(fd: PQsocket(handle), events: Int16(POLLIN), revents: 0)
        return poll(&descriptor, 1, 0) == 0
    }

    // MARK: Blocking internals (run on the thread pool)

    private func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try Task.checkCancellation()
        return try await withTaskCancellationHandler {
            do {
                let value = try await threadPool.runIfActive(body)
                return value
            } catch let error as PostgresError where error.sqlState == SQLState.queryCanceled {
                // The cancel request arrived and was consumed: the connection is clean again.
                cancelInFlight.store(false, ordering: .releasing)
                if Task.isCancelled { throw CancellationError() }
                throw error
            }
        } onCancel: {
            self.sendCancel()
        }
    }

    private func sendCancel() {
        guard let cancelHandle else { return }
        cancelInFlight.store(true, ordering: .releasing)
        var buffer = [CChar](repeating: 0, count: 256)
        _ = PQcancel(cancelHandle, &buffer, Int32(buffer.count))
    }

    private func execute(_ statement: PostgresStatement) throws -> PostgresResult {
        let key = Self.preparedKey(statement)
        let name = try prepare(key)
        let result = try withParameters(statement) { count, types, values, lengths, formats in
            if let name { PQexecPrepared(handle, name, count, values, lengths, formats, 1) }
            else { PQexecParams(handle, statement.sql, count, types, values, lengths, formats, 1) }
        }
        guard let result else { throw connectionError() }
        do {
            return try check(result)
        } catch let error as PostgresError where error.sqlState == SQLState.featureNotSupported && name != nil {
            // "cached plan must not change result type": a table changed under the prepared
            // statement; the next call prepares it afresh, under a new name.
            prepared[key] = nil
            throw error
        }
    }

    private static func preparedKey(_ statement: PostgresStatement) -> PreparedKey {
        PreparedKey(sql: statement.sql, types: statement.binds.map { type(of: $0).postgresType.oid })
    }

    /// The name `key` is prepared under, preparing it now (one round trip, once per session) while
    /// the session has room; nil: run it unprepared.
    private func prepare(_ key: PreparedKey) throws -> String? {
        if let name = prepared[key] { return name }
        guard prepared.count < Self.maxPreparedStatements, key.types.count <= Self.maxParameters else { return nil }
        let name = "tb_\(nextPreparedNumber)"
        guard let result = PQprepare(handle, name, key.sql, Int32(key.types.count), key.types) else { throw connectionError() }
        _ = try check(result)
        nextPreparedNumber += 1
        prepared[key] = name
        return name
    }

    /// Calls `body` with libpq's parameter arrays for `statement`, all in binary format.
    private func withParameters<R>(
        _ statement: PostgresStatement,
        _ body: (Int32, UnsafePointer<Oid>?, UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<Int32>?, UnsafePointer<Int32>?) -> R
    ) throws -> R {
        let binds = statement.binds
        guard binds.count <= Self.maxParameters else {
            throw PostgresError(code: .invalidRequest, message: "a statement binds at most \(Self.maxParameters) parameters")
        }
        var types: [Oid] = []
        var offsets: [Int?] = []
        var lengths: [Int32] = []
        var buffer: [UInt8] = []
        for bind in binds {
            types.append(type(of: bind).postgresType.oid)
            if let bytes = bind.postgresBinary() {
                offsets.append(buffer.count)
                lengths.append(Int32(bytes.count))
                buffer.append(contentsOf: bytes)
            } else {
                offsets.append(nil)
                lengths.append(0)
            }
        }
        buffer.append(0)  // so that an empty value still has a non-NULL pointer
        let formats = [Int32](repeating: 1, count: binds.count)
        return buffer.withUnsafeBytes { raw in
            let base = raw.baseAddress!
            let values: [UnsafePointer<CChar>?] = offsets.map { offset in
                offset.map { (base + $0).assumingMemoryBound(to: CChar.self) }
            }
            return body(Int32(binds.count), types, values, lengths, formats)
        }
    }

    private func check(_ result: OpaquePointer) throws -> PostgresResult {
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return PostgresResult(taking: result)
        default:
            let error = serverError(result)
            PQclear(result)
            throw error
        }
    }

    private func serverError(_ result: OpaquePointer) -> PostgresError {
        func field(_ code: Character) -> String? {
            guard let value = PQresultErrorField(result, Int32(code.asciiValue!)) else { return nil }
            return String(cString: value)
        }
        guard let sqlState = field("C") else {
            // No SQLSTATE: the failure was on the client side of the wire (typically a lost connection).
            let message = String(cString: PQresultErrorMessage(result)).trimmingCharacters(in: .whitespacesAndNewlines)
            return PostgresError(code: .connection, message: message.isEmpty ? connectionError().message : message)
        }
        return PostgresError(
            code: .server, sqlState: sqlState, message: field("M") ?? "", detail: field("D"),
            constraint: field("n"), table: field("t"), column: field("c"))
    }

    private func connectionError() -> PostgresError {
        let message = String(cString: PQerrorMessage(handle)).trimmingCharacters(in: .whitespacesAndNewlines)
        return PostgresError(code: .connection, message: message.isEmpty ? "connection lost" : message)
    }

    /// Sends every statement, then a sync, in non-blocking mode, and reads results as they arrive,
    /// flushing and reading in turn so that neither side can stall on a full socket buffer.
    private func runPipeline(_ statements: [PostgresStatement]) throws -> [Result<PostgresResult, PostgresError>] {
        guard PQsetnonblocking(handle, 1) == 0 else { throw connectionError() }
        defer { PQsetnonblocking(handle, 0) }
        guard PQenterPipelineMode(handle) == 1 else { throw connectionError() }
        for statement in statements {
            // A pipeline uses statements prepared earlier; preparing here would cost a round trip.
            let name = prepared[Self.preparedKey(statement)]
            let sent = try withParameters(statement) { count, types, values, lengths, formats in
                if let name { PQsendQueryPrepared(handle, name, count, values, lengths, formats, 1) }
                else { PQsendQueryParams(handle, statement.sql, count, types, values, lengths, formats, 1) }
            }
            guard sent == 1 else { throw connectionError() }
        }
        guard PQpipelineSync(handle) == 1 else { throw connectionError() }

        var results: [Result<PostgresResult, PostgresError>] = []
        results.reserveCapacity(statements.count)
        var current: Result<PostgresResult, PostgresError>?
        var synced = false
        while !synced {
            let flush = PQflush(handle)
            guard flush >= 0 else { throw connectionError() }
            var descriptor = pollfd(fd: PQsocket(handle), events: Int16(POLLIN) | (flush == 1 ? Int16(POLLOUT) : 0), revents: 0)
            guard poll(&descriptor, 1, -1) >= 0 || errno == EINTR else { throw connectionError() }
            guard descriptor.revents & Int16(POLLIN) != 0 else { continue }
            guard PQconsumeInput(handle) == 1 else { throw connectionError() }
            while !synced, PQisBusy(handle) == 0 {
                guard let result = PQgetResult(handle) else {
                    // The end of one statement's results.
                    if let finished = current { results.append(finished) }
                    current = nil
                    continue
                }
                switch PQresultStatus(result) {
                case PGRES_PIPELINE_SYNC:
                    PQclear(result)
                    synced = true
                case PGRES_PIPELINE_ABORTED:
                    PQclear(result)
                    current = .failure(PostgresError(code: .server, message: "not run: an earlier statement in the pipeline failed"))
                default:
                    do { current = .success(try check(result)) } catch let error as PostgresError { current = .failure(error) }
                }
            }
        }
        guard PQexitPipelineMode(handle) == 1 else { throw connectionError() }
        assert(results.count == statements.count, "one result per pipelined statement")
        return results
    }
}
