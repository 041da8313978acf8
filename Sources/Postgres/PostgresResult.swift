internal import CPostgres

/// The rows of one statement's result. Owns its libpq `PGresult`, which is cleared exactly once,
/// when the last reference goes away. A result is immutable, so rows may be read from any thread.
public final class PostgresResult: @unchecked Sendable, RandomAccessCollection {
    private let handle: OpaquePointer
    /// Column names, in order.
    public let columns: [String]
    let columnTypes: [PostgresType]
    private let columnIndex: [String: Int]
    /// The number of rows the command affected (INSERT/UPDATE/DELETE), or returned.
    public let affectedRows: Int

    init(taking handle: OpaquePointer) {
        self.handle = handle
        let count = Int(PQnfields(handle))
        var columns: [String] = []
        var types: [PostgresType] = []
        for i in 0..<Int32(count) {
            columns.append(String(cString: PQfname(handle, i)))
            types.append(PostgresType(oid: PQftype(handle, i)))
        }
        self.columns = columns
        self.columnTypes = types
        var index: [String: Int] = [:]
        for (i, name) in columns.enumerated() where index[name] == nil { index[name] = i }
        self.columnIndex = index
        let tuples = String(cString: PQcmdTuples(handle))
        self.affectedRows = Int(tuples) ?? Int(PQntuples(handle))
    }

    deinit { PQclear(handle) }

    public var startIndex: Int { 0 }
    public var endIndex: Int { Int(PQntuples(handle)) }
    public subscript(position: Int) -> PostgresRow { PostgresRow(result: self, row: Int32(position)) }

    func index(ofColumn name: String) throws(PostgresError) -> Int {
        guard let i = columnIndex[name] else {
            throw PostgresError(code: .decoding, message: "no column named \(name)")
        }
        return i
    }

    func decode<T: PostgresDecodable>(_: T.Type, row: Int32, column: Int) throws(PostgresError) -> T {
        guard column >= 0, column < columns.count else {
            throw PostgresError(code: .decoding, message: "no column \(column)")
        }
        let col = Int32(column)
        if PQgetisnull(handle, row, col) == 1 { return try T.postgresNull() }
        let length = Int(PQgetlength(handle, row, col))
        let bytes = UnsafeRawBufferPointer(start: PQgetvalue(handle, row, col), count: length)
        do {
            return try T(postgresBinary: bytes, type: columnTypes[column])
        } catch {
            var error = error
            error.message = "column \(columns[column]): \(error.message)"
            throw error
        }
    }
}

/// One row of a `PostgresResult`.
public struct PostgresRow: Sendable {
    let result: PostgresResult
    let row: Int32

    /// Decodes column `column` (0-based) as `T`. Decode as an optional to accept NULL.
    public func decode<T: PostgresDecodable>(_ type: T.Type = T.self, at column: Int) throws(PostgresError) -> T {
        try result.decode(type, row: row, column: column)
    }

    /// Decodes the column named `name` as `T`. Decode as an optional to accept NULL.
    public func decode<T: PostgresDecodable>(_ type: T.Type = T.self, _ name: String) throws(PostgresError) -> T {
        try result.decode(type, row: row, column: result.index(ofColumn: name))
    }
}
