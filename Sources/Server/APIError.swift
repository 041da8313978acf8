import Foundation
import Hummingbird
import Ledger
import Postgres
import TechBank

/// An error answered as RFC 9457 `application/problem+json`: `type`, `title`, `status`,
/// `detail`, plus `code` and, for validation failures, `errors: [{field, message}]`.
/// Its text is written for API clients: it never carries SQL, stack traces or server internals.
struct APIError: Error, Sendable {
    struct FieldError: Codable, Sendable, Equatable {
        let field: String
        let message: String
    }

    let status: HTTPResponse.Status
    let code: String
    let detail: String
    var errors: [FieldError] = []
    /// For `ip_right_taken`: the technology holding the right, when the caller may see it.
    var holderTechnologyID: UUID?
    /// For `exclusivity_conflict`: the deal whose rights conflict, when the caller may see it.
    var conflictingDealID: UUID?
    /// Header fields the problem response carries, such as `WWW-Authenticate` or `Allow`.
    var headers = HTTPFields()

    init(_ status: HTTPResponse.Status, code: String, _ detail: String, errors: [FieldError] = [], holderTechnologyID: UUID? = nil) {
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors
        self.holderTechnologyID = holderTechnologyID
    }

    static func validation(_ field: String, _ message: String) -> APIError {
        APIError(.unprocessableContent, code: "validation_failed", "\(field): \(message)", errors: [FieldError(field: field, message: message)])
    }

    static func badRequest(_ field: String, _ message: String) -> APIError {
        APIError(.badRequest, code: "invalid_request", "\(field): \(message)", errors: [FieldError(field: field, message: message)])
    }

    static let unauthorized: APIError = {
        var error = APIError(.unauthorized, code: "unauthorized", "a valid API key is required: Authorization: Bearer tbk_…")
        error.headers[.wwwAuthenticate] = "Bearer"
        return error
    }()
    static let forbidden = APIError(.forbidden, code: "forbidden", "this organization may not do that")
    static let notFound = APIError(.notFound, code: "not_found", "no such resource")

    /// The database cannot serve now (see `PostgresError.isUnavailable`); the request may be sent
    /// again, with the same `Idempotency-Key` or transfer id, after `Retry-After` seconds.
    static let unavailable: APIError = {
        var error = APIError(.serviceUnavailable, code: "unavailable", "the service is busy or the database is unreachable; retry later")
        error.headers[.retryAfter] = String(retryAfterSeconds)
        return error
    }()

    /// What a 503 asks the client to wait before trying again.
    static let retryAfterSeconds = 1

    /// A body that is not JSON (RFC 9110 §15.5.16).
    static let unsupportedMediaType = APIError(
        .unsupportedMediaType, code: "unsupported_media_type", "the request body must be JSON, sent as Content-Type: application/json")

    /// `method` on a path that declares only `allowed` (RFC 9110 §15.5.6).
    static func methodNotAllowed(_ method: HTTPRequest.Method, allowed: [HTTPRequest.Method]) -> APIError {
        let list = allowed.map(\.rawValue).joined(separator: ", ")
        var error = APIError(.methodNotAllowed, code: "method_not_allowed", "this path does not take \(method.rawValue); it takes \(list)")
        error.headers[.allow] = list
        return error
    }

    /// The response body.
    struct Problem: Codable, Sendable {
        let type: String
        let title: String
        let status: Int
        let detail: String
        let code: String
        let errors: [FieldError]?
        let requestID: String?
        let holderTechnologyID: String?
        let conflictingDealID: String?

        enum CodingKeys: String, CodingKey {
            case type, title, status, detail, code, errors
            case requestID = "request_id"
            case holderTechnologyID = "holder_technology_id"
            case conflictingDealID = "conflicting_deal_id"
        }
    }

    func reply(requestID: String) throws -> Reply {
        let problem = Problem(
            type: "https://techbank.example/problems/\(code.replacingOccurrences(of: "_", with: "-"))",
            title: status.reasonPhrase, status: status.code, detail: detail, code: code,
            errors: errors.isEmpty ? nil : errors, requestID: requestID,
            holderTechnologyID: holderTechnologyID?.uuidString.lowercased(), conflictingDealID: conflictingDealID?.uuidString.lowercased())
        var reply = try Reply.json(problem, status: status, contentType: "application/problem+json")
        reply.headers.append(contentsOf: headers)
        return reply
    }

    /// Maps any error to what the client may see. Unknown errors become a bare 500 (or 503 when the
    /// database is unreachable); their details go to the log only.
    static func from(_ error: any Error) -> APIError {
        switch error {
        case let error as APIError:
            return error
        case let error as LedgerError:
            switch error.code {
            case .accountExistsWithDifferentFields:
                return APIError(.conflict, code: error.code.rawValue, error.message, errors: error.field.map { [FieldError(field: $0, message: error.message)] } ?? [])
            case .invalidRequest:
                return APIError(.unprocessableContent, code: "validation_failed", (error.field.map { "\($0): " } ?? "") + error.message,
                                errors: error.field.map { [FieldError(field: $0, message: error.message)] } ?? [])
            default:
                return APIError(.unprocessableContent, code: error.code.rawValue, error.message,
                                errors: error.field.map { [FieldError(field: $0, message: error.message)] } ?? [])
            }
        case let error as TechBankError:
            let status: HTTPResponse.Status = switch error.code {
            case .conflict, .illegalTransition: .conflict
            case .preconditionFailed: .preconditionFailed
            case .notFound: .notFound
            case .forbidden: .forbidden
            default: .unprocessableContent
            }
            return APIError(status, code: error.code.rawValue, error.message, errors: error.field.map { [FieldError(field: $0, message: error.message)] } ?? [])
        case let error as PaymentRefused:
            return APIError(.unprocessableContent, code: error.outcome.rawValue,
                            "the ledger refused the payment: \(error.outcome.rawValue)" + (error.detail.map { " (\($0))" } ?? ""))
        case is DealNotFound:
            return .notFound
        case let error as HTTPError:
            switch error.status {
            case .contentTooLarge:
                return APIError(.contentTooLarge, code: "body_too_large", "the request body exceeds the limit")
            case .notFound:
                return .notFound
            default:
                return APIError(error.status, code: "http_error", error.status.reasonPhrase)
            }
        case let error as any HTTPResponseError where error.status == .contentTooLarge:
            // A body without Content-Length (chunked) that outgrows `collectBody(upTo:)`: NIOTooManyBytesError.
            return APIError(.contentTooLarge, code: "body_too_large", "the request body exceeds the limit")
        case let error as PostgresError where error.isUnavailable:
            return .unavailable
        default:
            return APIError(.internalServerError, code: "internal_error", "an internal error occurred; it has been logged")
        }
    }
}
