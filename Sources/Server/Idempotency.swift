import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import TechBank

/// `Idempotency-Key` for POSTs that create things or move money: the same key with the same
/// request replays the first response (status and body); with a different request → 422; while
/// the first is still running → 409. Keys are per organization.
struct Idempotency: Sendable {
    let store: IdempotencyStore
    let maxBodyBytes: Int

    func run(
        _ request: Request, context: AppRequestContext,
        _ handler: @Sendable (Request, AppRequestContext) async throws -> Reply
    ) async throws -> Response {
        guard let key = request.headers[.idempotencyKey] else { return try await handler(request, context).response }
        guard (1...255).contains(key.utf8.count), key.utf8.allSatisfy({ (32...126).contains($0) }) else {
            throw APIError.badRequest("Idempotency-Key", "must be 1 to 255 printable ASCII characters")
        }
        let identity = try context.requireIdentity()
        var request = request
        let body = try await request.collectBody(upTo: maxBodyBytes)
        // Before the key is claimed, so that a 415 is not stored and replayed to the corrected retry.
        try request.requireJSONBody(isEmpty: body.readableBytes == 0)
        var hasher = SHA256()
        hasher.update(data: Data("\(request.method.rawValue) \(request.uri.path)\n".utf8))
        hasher.update(data: Data(buffer: body))
        let requestHash = Data(hasher.finalize())

        switch try await store.claim(organizationID: identity.organizationID, key: key, requestHash: requestHash) {
        case .replay(let stored):
            var headers = HTTPFields()
            for (name, value) in stored.headers.sorted(by: { $0.key < $1.key }) {
                if let field = HTTPField.Name(name) { headers[field] = value }
            }
            headers[.idempotentReplayed] = "true"
            return Response(status: .init(code: stored.status), headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: stored.body)))
        case .mismatch:
            throw APIError(.unprocessableContent, code: "idempotency_key_reused", "this Idempotency-Key was used with a different request")
        case .inProgress:
            throw APIError(.conflict, code: "idempotency_key_in_progress", "a request with this Idempotency-Key is still being processed; retry later")
        case .claimed:
            break
        }

        let reply: Reply
        do {
            reply = try await handler(request, context)
        } catch {
            let apiError = APIError.from(error)
            guard apiError.status.code < 500 else {
                do {
                    try await store.release(organizationID: identity.organizationID, key: key)
                } catch let releaseError {
                    // The key stays claimed until it expires: retries get `idempotency_key_in_progress`.
                    context.logger.error("cannot release an Idempotency-Key after a failed request", metadata: ["error": "\(releaseError)"])
                }
                throw error
            }
            reply = try apiError.reply(requestID: context.requestID)
        }
        // The replay repeats the first response's status, body and describing headers; the body
        // (including a problem's request_id) is byte-identical, the Request-Id header is the new request's.
        let kept = reply.headers.filter { [.contentType, .location, .eTag].contains($0.name) }
        let headers = Dictionary(kept.map { ($0.name.canonicalName, $0.value) }, uniquingKeysWith: { first, _ in first })
        try await store.complete(organizationID: identity.organizationID, key: key, response: .init(status: reply.status.code, headers: headers, body: reply.body))
        return reply.response
    }
}
