import Foundation
import HTTPTypes
import Testing

@Suite("API: /metrics")
struct MetricsTests {
    @Test func metricsCountRequestsTransfersAndPoolConnections() async throws {
        try await withAPI { api in
            let org = try await api.createOrganization("Acme", kind: "enterprise")
            // The owner's operating account, funded by a deposit (not through /v1/transfers).
            let a = try await api.operatingAccount(of: org, holding: 30)
            let b = try await api.createAccount(for: org)
            #expect(try await api.transfer(a, b, 10, key: org.key).status == .created)
            #expect(try await api.transfer(a, b, 20, key: org.key).status == .created)
            #expect(try await api.transfer(a, a, 20, key: org.key).status == .unprocessableContent)
            #expect(try await api.call(.get, "/v1/accounts/\(a)", key: org.key).status == .ok)
            #expect(try await api.call(.get, "/v1/accounts/\(a)", key: nil).status == .unauthorized)
            #expect(try await api.call(.get, "/healthz", key: nil).status == .ok)

            let response = try await api.call(.get, "/metrics", key: nil)
            #expect(response.status == .ok)
            #expect(response.contentType?.hasPrefix("text/plain") == true, "\(response.contentType ?? "nil")")
            let text = response.text
            let lines = text.split(separator: "\n").map(String.init)

            func value(_ prefix: String) -> Double? {
                lines.first { $0.hasPrefix(prefix + " ") }.flatMap { Double($0.dropFirst(prefix.count + 1)) }
            }
            #expect(text.contains("techbank_http_requests_total{"))
            #expect(value(#"techbank_http_requests_total{method="POST",route="/v1/transfers",status="201"}"#) == 2, "\(text)")
            #expect(value(#"techbank_http_requests_total{method="POST",route="/v1/transfers",status="422"}"#) == 1)
            #expect(value(#"techbank_http_requests_total{method="GET",route="/healthz",status="200"}"#) == 1)
            // Routes are labelled by template, never by the concrete id.
            #expect(value(#"techbank_http_requests_total{method="GET",route="/v1/accounts/{id}",status="200"}"#) == 1)
            #expect(!text.contains(a), "an account id appears in the metrics: the route label is not the template")

            #expect(text.contains(#"techbank_http_request_duration_seconds_bucket{method="POST",route="/v1/transfers",status="201",le="+Inf"} 2"#))
            #expect(lines.contains { $0.hasPrefix("techbank_http_request_duration_seconds_bucket{") && $0.contains(#"le="0.005""#) })
            #expect(value(#"techbank_http_request_duration_seconds_count{method="POST",route="/v1/transfers",status="201"}"#) == 2)
            #expect((value(#"techbank_http_request_duration_seconds_sum{method="POST",route="/v1/transfers",status="201"}"#) ?? 0) > 0)

            #expect(value(#"techbank_ledger_transfers_total{outcome="ok"}"#) == 2, "\(text)")
            #expect(value(#"techbank_ledger_transfers_total{outcome="accounts_must_be_different"}"#) == 1)

            #expect(value(#"techbank_db_pool_connections{state="open"}"#).map { $0 >= 1 } == true)
            #expect(value(#"techbank_db_pool_connections{state="leased"}"#) != nil)
            #expect(value(#"techbank_db_pool_connections{state="max"}"#) == 4)
            #expect(value("techbank_db_pool_waiters") != nil)
            #expect(value(#"techbank_transfer_group_commit{state="waiting"}"#) == 0, "nothing waits once the transfers are answered")
            #expect(value(#"techbank_transfer_group_commit{state="calls_in_flight"}"#).map { (0...2).contains($0) } == true, "at most maxCallsInFlight")
            for family in ["techbank_http_requests_total counter", "techbank_http_request_duration_seconds histogram",
                           "techbank_ledger_transfers_total counter", "techbank_db_pool_connections gauge", "techbank_db_pool_waiters gauge",
                           "techbank_transfer_group_commit gauge"] {
                #expect(lines.contains("# TYPE \(family)"), "missing # TYPE \(family)")
            }

            // Buckets are cumulative and end at the count.
            let buckets = lines.filter { $0.hasPrefix(#"techbank_http_request_duration_seconds_bucket{method="POST",route="/v1/transfers",status="201","#) }
                .compactMap { Double($0.split(separator: " ").last ?? "") }
            #expect(buckets.count == 14 && buckets == buckets.sorted() && buckets.last == 2, "\(buckets)")
        }
    }
}
