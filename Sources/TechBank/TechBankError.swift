/// A request TechBank refuses, with a code the HTTP layer maps to a status.
public struct TechBankError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// A field is invalid (422).
        public static let validation = Code("validation_failed")
        /// The request conflicts with the current state (409).
        public static let conflict = Code("conflict")
        /// The object's current state does not allow the move (409); the message names the state.
        public static let illegalTransition = Code("illegal_transition")
        /// The object does not exist, or the caller may not see it (404).
        public static let notFound = Code("not_found")
        /// The caller sees the object but may not do this to it (403).
        public static let forbidden = Code("forbidden")
        /// The resource changed since the caller read it (412).
        public static let preconditionFailed = Code("precondition_failed")
    }

    public let code: Code
    public let field: String?
    public let message: String

    public init(_ code: Code, field: String? = nil, _ message: String) {
        self.code = code
        self.field = field
        self.message = message
    }

    public var description: String { "\(code)" + (field.map { " (\($0))" } ?? "") + ": \(message)" }
}
