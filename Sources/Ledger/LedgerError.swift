/// A request the ledger refuses as a whole (as opposed to a transfer outcome, which is reported
/// per transfer in `TransferResult`).
public struct LedgerError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The request is malformed; `field` and `message` say how.
        public static let invalidRequest = Code("invalid_request")
        /// The currency is not an ISO 4217 currency the ledger knows.
        public static let unknownCurrency = Code("unknown_currency")
        /// An account with this id exists with different fields.
        public static let accountExistsWithDifferentFields = Code("exists_with_different_fields")
    }

    public let code: Code
    /// The request field at fault, in the API's snake_case, if one is.
    public let field: String?
    public let message: String

    public init(_ code: Code, field: String? = nil, _ message: String) {
        self.code = code
        self.field = field
        self.message = message
    }

    public var description: String {
        "\(code)" + (field.map { " (\($0))" } ?? "") + ": \(message)"
    }
}
