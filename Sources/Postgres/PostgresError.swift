/// An error from the PostgreSQL client: a server error (with its SQLSTATE and diagnostic fields), a
/// connection failure, or a pool condition.
///
/// `description` is safe to show to end users and to log: it names the kind of failure, the
/// SQLSTATE and the constraint, but never the SQL text, the server's message (which can quote
/// parameter values) or any parameter. The raw server fields stay available for diagnostics.
public struct PostgresError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is. An extensible set of codes, like postgres-nio's `PSQLError.Code`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The server reported an error; see `sqlState`.
        public static let server = Code("server")
        /// The connection could not be opened, or it broke while in use.
        public static let connection = Code("connection")
        /// No connection became free within the pool's lease timeout.
        public static let leaseTimeout = Code("lease_timeout")
        /// The pool's queue of waiting callers is full.
        public static let tooManyWaiters = Code("too_many_waiters")
        /// The pool has been shut down.
        public static let poolClosed = Code("pool_closed")
        /// A column could not be decoded as the requested Swift type.
        public static let decoding = Code("decoding")
        /// The client refused a request before sending it (too many parameters, statements …).
        public static let invalidRequest = Code("invalid_request")
    }

    public var code: Code
    /// The five-character SQLSTATE for server errors, e.g. `23505`.
    public var sqlState: String?
    /// The server's primary message, or the client's own explanation. May quote values: log it at
    /// debug level only, never return it to a client.
    public var message: String
    /// The server's DETAIL field, if any. May quote values, like `message`.
    public var detail: String?
    /// The name of the violated constraint, if the server reported one.
    public var constraint: String?
    /// The table the error concerns, if the server reported one.
    public var table: String?
    /// The column the error concerns, if the server reported one.
    public var column: String?

    public init(
        code: Code, sqlState: String? = nil, message: String, detail: String? = nil,
        constraint: String? = nil, table: String? = nil, column: String? = nil
    ) {
        self.code = code
        self.sqlState = sqlState
        self.message = message
        self.detail = detail
        self.constraint = constraint
        self.table = table
        self.column = column
    }

    public var description: String {
        var text = "PostgreSQL \(code)"
        if let sqlState {
            text += " \(sqlState)"
            if let name = SQLState.names[sqlState] { text += " (\(name))" }
        }
        if let constraint { text += " on constraint \(constraint)" }
        if sqlState == nil, code != .server { text += ": \(message)" }
        return text
    }

    /// The database cannot serve now but may when asked again: it is unreachable, shutting down
    /// or starting, out of connections, a standby (after a failover), or the pool is saturated or
    /// closing. A server answers such failures "try again later" (503), never as the request's fault.
    public var isUnavailable: Bool {
        switch code {
        case .connection, .leaseTimeout, .tooManyWaiters, .poolClosed: return true
        default: break
        }
        guard let sqlState else { return false }
        return sqlState.hasPrefix("08") || SQLState.unavailable.contains(sqlState)
    }

    /// The server this connection reached cannot serve this pool any more: the connection broke,
    /// the server is shutting down or crashing, or it is a read-only standby (a primary demoted by
    /// a failover). Other connections to the same server are likely no better.
    public var isServerGone: Bool {
        if code == .connection { return true }
        guard let sqlState else { return false }
        return sqlState.hasPrefix("08") || SQLState.serverGone.contains(sqlState)
    }

    /// A serialization failure or deadlock: the whole transaction may simply be run again.
    public var isRetryableTransactionFailure: Bool {
        sqlState == SQLState.serializationFailure || sqlState == SQLState.deadlockDetected
    }
}

/// SQLSTATE codes the application maps to behaviour.
public enum SQLState {
    public static let uniqueViolation = "23505"
    public static let foreignKeyViolation = "23503"
    public static let checkViolation = "23514"
    public static let notNullViolation = "23502"
    public static let exclusionViolation = "23P01"
    public static let serializationFailure = "40001"
    public static let deadlockDetected = "40P01"
    public static let queryCanceled = "57014"
    public static let adminShutdown = "57P01"
    public static let numericValueOutOfRange = "22003"
    public static let invalidTextRepresentation = "22P02"
    public static let undefinedTable = "42P01"
    public static let readOnlySQLTransaction = "25006"
    public static let featureNotSupported = "0A000"
    /// Besides class 08 (connection exception): the server is shutting down, crashing or starting,
    /// has no connection slot left, or is a read-only standby.
    static let unavailable: Set<String> = serverGone.union(["57P03", "53300"])
    /// Besides class 08: the server is shutting down or crashing, or is a read-only standby.
    static let serverGone: Set<String> = [adminShutdown, "57P02", readOnlySQLTransaction]

    static let names: [String: String] = [
        uniqueViolation: "unique_violation",
        foreignKeyViolation: "foreign_key_violation",
        checkViolation: "check_violation",
        notNullViolation: "not_null_violation",
        exclusionViolation: "exclusion_violation",
        serializationFailure: "serialization_failure",
        deadlockDetected: "deadlock_detected",
        queryCanceled: "query_canceled",
        adminShutdown: "admin_shutdown",
        numericValueOutOfRange: "numeric_value_out_of_range",
        invalidTextRepresentation: "invalid_text_representation",
        undefinedTable: "undefined_table",
        "42601": "syntax_error",
        "42703": "undefined_column",
        "42883": "undefined_function",
        "22001": "string_data_right_truncation",
        "22007": "invalid_datetime_format",
        "22008": "datetime_field_overflow",
        "22012": "division_by_zero",
        "22P05": "untranslatable_character",
        readOnlySQLTransaction: "read_only_sql_transaction",
        "57P02": "crash_shutdown",
        "25P02": "in_failed_sql_transaction",
        "53300": "too_many_connections",
        "55P03": "lock_not_available",
        "57P03": "cannot_connect_now",
    ]
}
