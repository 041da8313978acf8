import Hummingbird
import Postgres
import TechBank

/// `GET /healthz` (the process is up) and `GET /readyz` (the database answers, takes writes, and
/// holds the schema this binary expects). While a failover is under way, `/readyz` answers 503
/// until the pool reaches the new primary.
struct HealthController {
    let pool: PostgresPool

    struct Health: Encodable {
        let status: String
        let schemaVersion: Int

        enum CodingKeys: String, CodingKey {
            case status
            case schemaVersion = "schema_version"
        }
    }

    private func unavailable() throws -> Response {
        var reply = try Reply.json(Health(status: "unavailable", schemaVersion: Schema.version), status: .serviceUnavailable)
        reply.headers[.retryAfter] = String(APIError.retryAfterSeconds)
        return reply.response
    }

    func register(on router: Router<some RequestContext>) {
        router.get("healthz") { _, _ in
            try Reply.json(Health(status: "ok", schemaVersion: Schema.version)).response
        }
        router.get("readyz") { _, context -> Response in
            let current: Bool
            do {
                current = try await pool.withConnection { connection in
                    try await connection.requireWrites()
                    return try await Schema.isCurrent(connection)
                }
            } catch {
                context.logger.warning("not ready: the database does not answer or takes no writes", metadata: ["error": "\(error)"])
                return try unavailable()
            }
            guard current else {
                context.logger.warning("not ready: the database's schema is not this binary's", metadata: ["expected": "\(Schema.version)"])
                return try unavailable()
            }
            return try Reply.json(Health(status: "ok", schemaVersion: Schema.version)).response
        }
    }
}
