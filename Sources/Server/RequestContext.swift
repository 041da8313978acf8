import Hummingbird
import Logging
import TechBank

/// Per-request state: who is calling, and the request id that ties the response to the log line.
public struct AppRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Set by `AuthMiddleware` on authenticated routes.
    var identity: Identity?
    var requestID: String = ""

    public init(source: Source) {
        self.coreContext = .init(source: source)
    }

    /// The caller, on routes behind `AuthMiddleware`.
    func requireIdentity() throws -> Identity {
        guard let identity else { throw APIError.unauthorized }
        return identity
    }
}
