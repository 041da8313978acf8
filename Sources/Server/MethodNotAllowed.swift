import HTTPTypes
import Hummingbird

/// The methods each routed path declares, read from the router once every route is on it, so the
/// router stays the one list of routes. HEAD is declared wherever GET is: the router answers it
/// (`RouterOptions.autoGenerateHeadEndpoints`).
struct RouteMethods: Sendable {
    private let routes: [(path: RouterPath, methods: [HTTPRequest.Method])]

    /// The table of `routes`, as `Router.routes` lists them (GET without its generated HEAD).
    init(_ routes: [Router<AppRequestContext>.RouteDescription]) {
        var byPath: [String: (path: RouterPath, methods: Set<HTTPRequest.Method>)] = [:]
        for route in routes {
            byPath[route.path.description, default: (route.path, [])].methods.insert(route.method)
            if route.method == .get { byPath[route.path.description]?.methods.insert(.head) }
        }
        self.routes = byPath.values.map { ($0.path, $0.methods.sorted { $0.rawValue < $1.rawValue }) }
    }

    /// The methods of the route whose path matches `path`; nil if none does. As in Hummingbird's
    /// trie, a literal segment outranks a parameter, the leftmost difference deciding.
    func allowed(at path: String) -> [HTTPRequest.Method]? {
        let segments = path.split(separator: "/")
        func literals(_ route: RouterPath) -> [Int] { zip(route, segments).map { $0 == $1 ? 1 : 0 } }
        return routes
            .filter { $0.path.count == segments.count && zip($0.path, segments).allSatisfy { $0 ~= $1 } }
            .max { literals($0.path).lexicographicallyPrecedes(literals($1.path)) }?
            .methods
    }
}

/// Answers 405 with `Allow` (RFC 9110 §15.5.6) when a routed path is requested with a method it
/// does not declare; any other unmatched request goes on to the router's 404.
///
/// Added to the router after every route, it wraps only the not-found responder, so it runs
/// before authentication, as the 404 for an unknown path does. That tells an unauthenticated
/// caller nothing new: the answer depends only on the route table, which `GET /openapi.json`
/// publishes without a key (and which a 401 for a declared method, against a 404 or 405 for
/// another, reveals as well), never on stored data or on who asks. Authenticating first would
/// only answer 401 where the request can never succeed with any key.
struct MethodNotAllowedMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let routes: RouteMethods

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let allowed = routes.allowed(at: request.uri.path), !allowed.contains(request.method) else {
            return try await next(request, context)
        }
        throw APIError.methodNotAllowed(request.method, allowed: allowed)
    }
}
