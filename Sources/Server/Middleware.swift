import Foundation
import HTTPTypes
import Hummingbird
import Postgres
import Logging
import TechBank

extension HTTPField.Name {
    static let requestID = Self("Request-Id")!
    static let idempotencyKey = Self("Idempotency-Key")!
    static let idempotentReplayed = Self("Idempotent-Replayed")!
}

/// The outermost middleware: gives every request an id (echoing a sane caller-supplied
/// `Request-Id`), turns every error into problem+json, refuses bodies whose `Content-Length`
/// exceeds the route's limit before anything else (bodies without one are limited while read),
/// drops the body of every answer to HEAD, records metrics and writes one structured log line per
/// request.
struct RequestMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let maxBodyBytes: Int
    let maxBatchBodyBytes: Int
    let metrics: Metrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        var context = context
        let supplied = request.headers[.requestID]
        context.requestID = supplied.flatMap { Self.isAcceptable($0) ? $0 : nil } ?? UUID().uuidString.lowercased()
        var response: Response
        do {
            let limit = request.uri.path == "/v1/transfers/batch" ? maxBatchBodyBytes : maxBodyBytes
            if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit {
                throw APIError(.contentTooLarge, code: "body_too_large", "the request body exceeds \(limit) bytes")
            }
            response = try await next(request, context)
        } catch {
            let apiError = APIError.from(error)
            if apiError.status.code >= 500 {
                context.logger.error("request failed", metadata: ["request_id": "\(context.requestID)", "error": "\(String(reflecting: error))"])
            }
            response = try apiError.reply(requestID: context.requestID).response
        }
        // HEAD is answered like GET, without the body (also for problems).
        if request.method == .head { response = response.createHeadResponse() }
        response.headers[.requestID] = context.requestID
        let route = context.endpointPath ?? "unmatched"
        let elapsed = ContinuousClock.now - started
        metrics.recordRequest(method: request.method.rawValue, route: route, status: response.status.code, duration: elapsed)
        context.logger.info("request", metadata: [
            "request_id": "\(context.requestID)", "method": "\(request.method)", "route": "\(route)",
            "status": "\(response.status.code)", "duration_ms": "\(Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1000)",
            "organization_id": "\(context.caller.id?.uuidString.lowercased() ?? "-")",
        ])
        return response
    }

    /// Printable ASCII, 1–200 characters: safe to echo and to log.
    static func isAcceptable(_ id: String) -> Bool {
        (1...200).contains(id.utf8.count) && id.utf8.allSatisfy { (33...126).contains($0) }
    }
}

/// Establishes the caller from `Authorization: Bearer <key>`; answers 401 otherwise.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let organizations: Organizations

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // The scheme name is case-insensitive (RFC 9110 §11.1).
        guard let header = request.headers[.authorization], header.lowercased().hasPrefix("bearer ") else { throw APIError.unauthorized }
        let secret = String(header.dropFirst("bearer ".count)).trimmingCharacters(in: .whitespaces)
        guard let identity = try await organizations.authenticate(secret: secret) else { throw APIError.unauthorized }
        var context = context
        context.identity = identity
        context.caller.set(identity.organizationID)
        // Every change this request makes is journaled with who made it, with which key, and why.
        let settings = ["techbank.actor_id": identity.organizationID.uuidString.lowercased(),
                        "techbank.key_id": identity.keyID.uuidString.lowercased(), "techbank.request_id": context.requestID]
        return try await PostgresSession.$settings.withValue(settings) { try await next(request, context) }
    }
}

/// Refuses a query parameter holding U+0000, in its name or its (percent-decoded) value, with 422
/// naming it: PostgreSQL text cannot hold the character and no parameter takes it, so every
/// accessor may pass what it reads on to the database.
struct QueryNULMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let parameter = request.uri.queryParameters.first(where: { $0.key.utf8.contains(0) || $0.value.utf8.contains(0) }) {
            throw APIError.validation(String(parameter.key), "must not contain the NUL character")
        }
        return try await next(request, context)
    }
}
