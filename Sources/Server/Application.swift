import Foundation
import Hummingbird
import Ledger
import Logging
import Postgres
import ServiceLifecycle
import TechBank

/// Settings of the HTTP server.
public struct ServerConfiguration: Sendable {
    public var host: String = "127.0.0.1"
    public var port: Int = 8080
    /// Request bodies larger than this are refused with 413 before they are decoded.
    public var maxBodyBytes: Int = 1 << 20
    /// The body limit of `POST /v1/transfers/batch`, which carries up to 8,000 transfers (about
    /// 200 bytes each).
    public var maxBatchBodyBytes: Int = 4 << 20
    /// Committee approval threshold and the institutes' share of deal income.
    public var dealRules = DealRules()
    /// Signs the audit log's checkpoints; its name is the checkpoints' origin. Default: a new key
    /// on every start (`techbank serve` loads a persistent one).
    public var auditSigner = CheckpointSigner(name: "techbank.example/journal")
    /// Limits of `GET /v1/events/stream`.
    var eventStreams = EventStreamController.Limits()
    /// Webhooks: how secrets are sealed, where endpoints may be, how deliveries are retried.
    public var webhooks = WebhookSettings()

    public init() {}
}

/// Builds the router with every route and middleware. With a `readPool` (a hot standby), the
/// read-only routes that need not read their own writes are read from it, and their responses
/// carry `Data-Age`: the committee reports, the sub-parks' activity, the technology and demand
/// searches, and the audit log's events, checkpoints and proofs. Everything else, and everything
/// without a standby, uses `pool`.
public func buildRouter(configuration: ServerConfiguration, pool: PostgresPool, readPool: PostgresPool? = nil) -> Router<AppRequestContext> {
    let organizations = Organizations(pool: pool)
    let ledger = Ledger(pool: pool)
    let metrics = Metrics()
    let money = Money(pool: pool)
    // Reads the body to hash it, up to the largest limit; each handler then enforces its own.
    let idempotency = Idempotency(store: IdempotencyStore(pool: pool), maxBodyBytes: max(configuration.maxBodyBytes, configuration.maxBatchBodyBytes))

    // HEAD is answered wherever GET is, by the GET handler without the body.
    let router = Router(context: AppRequestContext.self, options: .autoGenerateHeadEndpoints)
    router.add(middleware: RequestMiddleware(
        maxBodyBytes: configuration.maxBodyBytes, maxBatchBodyBytes: configuration.maxBatchBodyBytes, metrics: metrics))
    HealthController(pool: pool).register(on: router)
    ConsoleController().register(on: router)
    router.get("metrics") { _, _ in
        let usage = await pool.usage()
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; version=0.0.4"
        let text = metrics.render(pool: usage, maxConnections: pool.configuration.maxConnections, groupCommit: money.singleTransfers.load)
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
    router.get("openapi.json") { _, _ in
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: OpenAPI.document)))
    }

    let v1 = router.group("v1").add(middleware: AuthMiddleware(organizations: organizations)).add(middleware: QueryNULMiddleware())
    // The read-only routes, from the standby when there is one.
    let reads = readPool.map { v1.group("").add(middleware: DataAgeMiddleware(lag: replicaLag(of: $0))) } ?? v1
    let readsFrom = readPool ?? pool
    OrganizationController(organizations: organizations, activities: Organizations(pool: readsFrom), idempotency: idempotency,
                           maxBodyBytes: configuration.maxBodyBytes).register(on: v1, reads: reads)
    LedgerController(
        ledger: ledger, money: money, idempotency: idempotency, metrics: metrics,
        maxBodyBytes: configuration.maxBodyBytes, maxBatchBodyBytes: configuration.maxBatchBodyBytes
    ).register(on: v1)
    let deals = Deals(pool: pool, rules: configuration.dealRules)
    let matches = Matches(pool: pool)
    TechnologyController(
        technologies: Technologies(pool: pool), searches: Technologies(pool: readsFrom), deals: deals, organizations: organizations,
        idempotency: idempotency, maxBodyBytes: configuration.maxBodyBytes
    ).register(on: v1, reads: reads)
    DemandController(
        demands: Demands(pool: pool), searches: Demands(pool: readsFrom), matches: matches, organizations: organizations, idempotency: idempotency,
        maxBodyBytes: configuration.maxBodyBytes
    ).register(on: v1, reads: reads)
    MatchController(matches: matches, organizations: organizations, idempotency: idempotency, maxBodyBytes: configuration.maxBodyBytes)
        .register(on: v1)
    DealController(deals: deals, matches: matches, organizations: organizations, idempotency: idempotency, maxBodyBytes: configuration.maxBodyBytes)
        .register(on: v1)
    let scope = AuditScope(log: AuditLog(pool: pool))
    EventStreamController(scope: scope, limits: configuration.eventStreams).register(on: v1)
    WebhookController(
        webhooks: Webhooks(pool: pool, secrets: configuration.webhooks.secrets, allowPrivateNetworks: configuration.webhooks.allowPrivateNetworks),
        idempotency: idempotency, maxBodyBytes: configuration.maxBodyBytes
    ).register(on: v1)
    MoneyController(money: money, organizations: organizations, idempotency: idempotency, maxBodyBytes: configuration.maxBodyBytes)
        .register(on: v1)
    let readLog = AuditLog(pool: readsFrom)
    AuditController(audit: readLog, scope: AuditScope(log: readLog), signer: configuration.auditSigner, onStandby: readPool != nil)
        .register(on: reads)
    ReportController(reports: Reports(pool: readsFrom)).register(on: reads)
    // Router middleware added after the routes wraps only the not-found responder.
    router.add(middleware: MethodNotAllowedMiddleware(routes: RouteMethods(router.routes)))
    return router
}

/// Builds the HTTP application: routes over `pool`, plus the services it runs and stops with the
/// server. On graceful shutdown the server stops accepting and finishes in-flight requests, then
/// the other services stop in reverse order (the pool last).
public func buildApplication(
    configuration: ServerConfiguration,
    pool: PostgresPool,
    readPool: PostgresPool? = nil,
    services: [any Service] = [],
    logger: Logger,
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) -> some ApplicationProtocol {
    Application(
        router: buildRouter(configuration: configuration, pool: pool, readPool: readPool),
        configuration: ApplicationConfiguration(address: .hostname(configuration.host, port: configuration.port), serverName: "techbank"),
        services: [pool] + (readPool.map { [$0] } ?? []) + services,
        onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? configuration.port) },
        logger: logger
    )
}
