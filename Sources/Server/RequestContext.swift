import Foundation
import Hummingbird
import Logging
import Synchronization
import TechBank

/// The organization a request turned out to act as, filled in by `AuthMiddleware` and read by the
/// outer `RequestMiddleware` for its log line (middleware receive copies of the context).
final class Caller: Sendable {
    private let organizationID = Mutex<UUID?>(nil)
    func set(_ id: UUID) { organizationID.withLock { $0 = id } }
    var id: UUID? { organizationID.withLock { $0 } }
}

/// Per-request state: who is calling, and the request id that ties the response to the log line.
public struct AppRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Set by `AuthMiddleware` on authenticated routes.
    var identity: Identity?
    var requestID: String = ""
    /// Shared by every copy of this request's context.
    let caller = Caller()

    public init(source: Source) {
        self.coreContext = .init(source: source)
    }

    /// The caller, on routes behind `AuthMiddleware`.
    func requireIdentity() throws -> Identity {
        guard let identity else { throw APIError.unauthorized }
        return identity
    }
}
