import Foundation
import Hummingbird
import HummingbirdTesting
import Postgres
import Server
import TechBank
import Testing
import TechBankTestSupport
import TestSupport

@Suite("Health endpoints")
struct HealthTests {
    @Test func healthzAndReadyzReportTheSchemaVersion() async throws {
        try await TestDatabase.withPool(template: .techbank) { pool throws in
            let app = buildApplication(configuration: ServerConfiguration(), pool: pool, logger: TestDatabase.logger)
            try await app.test(.router) { client in
                try await client.execute(uri: "/healthz", method: .get) { response in
                    #expect(response.status == .ok)
                    #expect(response.headers[.contentType]?.hasPrefix("application/json") == true)
                    let body = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                    #expect(body?["status"] as? String == "ok")
                    #expect(body?["schema_version"] as? Int == Schema.version)
                }
                try await client.execute(uri: "/readyz", method: .get) { response in
                    #expect(response.status == .ok)
                }
                // Not ready while the database holds a step this binary does not know, or lacks one of its own.
                try await pool.withConnection { try await $0.query("INSERT INTO public.schema_migrations (version, name) VALUES ($1, 'future')", [Int32(Schema.version + 1)]) }
                try await client.execute(uri: "/readyz", method: .get) { response in
                    #expect(response.status == .serviceUnavailable)
                }
                try await pool.withConnection { try await $0.query("DELETE FROM public.schema_migrations WHERE version = $1", [Int32(Schema.version + 1)]) }
                try await client.execute(uri: "/readyz", method: .get) { response in
                    #expect(response.status == .ok)
                }
                try await pool.withConnection { try await $0.query("DELETE FROM ledger.schema_migrations WHERE version = (SELECT max(version) FROM ledger.schema_migrations)") }
                try await client.execute(uri: "/readyz", method: .get) { response in
                    #expect(response.status == .serviceUnavailable)
                }
            }
        }
    }
}
