import Hummingbird
import Logging
import Postgres
import ServiceLifecycle
import TechBank

/// Settings of the HTTP server.
public struct ServerConfiguration: Sendable {
    public var host: String = "127.0.0.1"
    public var port: Int = 8080

    public init() {}
}

/// Builds the HTTP application: routes over `pool`, plus the services it runs and stops with the
/// server (the pool is shut down after the server, in reverse start order).
public func buildApplication(
    configuration: ServerConfiguration,
    pool: PostgresPool,
    services: [any Service] = [],
    logger: Logger,
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) -> some ApplicationProtocol {
    let router = Router()
    HealthController(pool: pool).register(on: router)
    return Application(
        router: router,
        configuration: ApplicationConfiguration(address: .hostname(configuration.host, port: configuration.port), serverName: "techbank"),
        services: [pool] + services,
        onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? configuration.port) },
        logger: logger
    )
}
