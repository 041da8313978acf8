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
                try await pool.withConnection { try await $0.query("UPDATE schema_version SET version = version + 1") }
                try await client.execute(uri: "/readyz", method: .get) { response in
                    #expect(response.status == .serviceUnavailable)
                }
            }
        }
    }
}
