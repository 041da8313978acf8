import Foundation
import HTTPTypes
import Hummingbird
import Postgres

/// How far behind the primary the read pool's server is, for `Data-Age`: nil on a primary (the
/// read pool may fall back to one), 0 on a standby that has replayed all it received, else the
/// seconds since the last transaction it replayed committed. Measured at most every 250 ms.
func replicaLag(of pool: PostgresPool) -> Recent<Double?> {
    Recent(maxAge: .milliseconds(250)) {
        try await pool.withConnection { connection in
            try await connection.query(
                """
                SELECT CASE WHEN NOT pg_is_in_recovery() THEN NULL
                            WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
                            ELSE greatest(0, extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()))::float8 END
                """)[0].decode(Double?.self, at: 0)
        }
    }
}

/// Adds `Data-Age` (whole seconds, rounded up) to every response of the routes served from a
/// standby: how old the data may be.
struct DataAgeMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let lag: Recent<Double?>

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response = try await next(request, context)
        if let seconds = try? await lag.value() {  // nil: a primary, or not measured
            response.headers[.dataAge] = String(Int(seconds.rounded(.up)))
        }
        return response
    }
}

extension HTTPField.Name {
    static let dataAge = Self("Data-Age")!
}
