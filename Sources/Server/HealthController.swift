import Hummingbird
import Postgres
import TechBank

/// `GET /healthz` (the process is up) and `GET /readyz` (the database answers and holds the
/// schema this binary expects).
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

    func register(on router: Router<some RequestContext>) {
        router.get("healthz") { _, _ in
            try Reply.json(Health(status: "ok", schemaVersion: Schema.version)).response
        }
        router.get("readyz") { _, _ -> Response in
            let current = try? await pool.withConnection { try await Schema.isCurrent($0) }
            guard current == true else {
                return try Reply.json(Health(status: "unavailable", schemaVersion: Schema.version), status: .serviceUnavailable).response
            }
            return try Reply.json(Health(status: "ok", schemaVersion: Schema.version)).response
        }
    }
}
