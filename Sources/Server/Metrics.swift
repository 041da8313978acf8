import Foundation
import Postgres
import Synchronization

/// Prometheus metrics: request counts and latency histograms by route and status, and ledger
/// transfers by outcome. Rendered in the text exposition format at `GET /metrics`.
final class Metrics: Sendable {
    /// Latency histogram bucket bounds, in seconds.
    static let bucketBoundsSeconds: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    private struct RequestKey: Hashable { let method: String; let route: String; let status: Int }
    private struct Histogram { var buckets: [UInt64]; var count: UInt64 = 0; var sumSeconds: Double = 0 }
    private struct State {
        var requests: [RequestKey: Histogram] = [:]
        var transferOutcomes: [String: UInt64] = [:]
    }

    private let state = Mutex(State())

    func recordRequest(method: String, route: String, status: Int, duration: Duration) {
        let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        state.withLock { state in
            let key = RequestKey(method: method, route: route, status: status)
            var histogram = state.requests[key] ?? Histogram(buckets: Array(repeating: 0, count: Self.bucketBoundsSeconds.count))
            for (index, bound) in Self.bucketBoundsSeconds.enumerated() where seconds <= bound { histogram.buckets[index] += 1 }
            histogram.count += 1
            histogram.sumSeconds += seconds
            state.requests[key] = histogram
        }
    }

    func recordTransferOutcome(_ outcome: String) {
        state.withLock { $0.transferOutcomes[outcome, default: 0] += 1 }
    }

    func render(pool: (open: Int, leased: Int, waiting: Int), maxConnections: Int, groupCommit: (waiting: Int, callsInFlight: Int)) -> String {
        let snapshot = state.withLock { $0 }
        var out = "# HELP techbank_http_requests_total HTTP requests by method, route and status.\n# TYPE techbank_http_requests_total counter\n"
        let keys = snapshot.requests.keys.sorted { ($0.route, $0.method, $0.status) < ($1.route, $1.method, $1.status) }
        for key in keys {
            out += "techbank_http_requests_total{\(labels(key))} \(snapshot.requests[key]!.count)\n"
        }
        out += "# HELP techbank_http_request_duration_seconds HTTP request latency.\n# TYPE techbank_http_request_duration_seconds histogram\n"
        for key in keys {
            let histogram = snapshot.requests[key]!
            for (index, bound) in Self.bucketBoundsSeconds.enumerated() {
                out += "techbank_http_request_duration_seconds_bucket{\(labels(key)),le=\"\(bound)\"} \(histogram.buckets[index])\n"
            }
            out += "techbank_http_request_duration_seconds_bucket{\(labels(key)),le=\"+Inf\"} \(histogram.count)\n"
            out += "techbank_http_request_duration_seconds_sum{\(labels(key))} \(histogram.sumSeconds)\n"
            out += "techbank_http_request_duration_seconds_count{\(labels(key))} \(histogram.count)\n"
        }
        out += "# HELP techbank_ledger_transfers_total Transfer requests by ledger outcome.\n# TYPE techbank_ledger_transfers_total counter\n"
        for (outcome, count) in snapshot.transferOutcomes.sorted(by: { $0.key < $1.key }) {
            out += "techbank_ledger_transfers_total{outcome=\"\(outcome)\"} \(count)\n"
        }
        out += "# HELP techbank_db_pool_connections Database pool connections by state.\n# TYPE techbank_db_pool_connections gauge\n"
        out += "techbank_db_pool_connections{state=\"open\"} \(pool.open)\n"
        out += "techbank_db_pool_connections{state=\"leased\"} \(pool.leased)\n"
        out += "techbank_db_pool_connections{state=\"max\"} \(maxConnections)\n"
        out += "# HELP techbank_db_pool_waiters Callers waiting for a database connection.\n# TYPE techbank_db_pool_waiters gauge\n"
        out += "techbank_db_pool_waiters \(pool.waiting)\n"
        out += "# HELP techbank_transfer_group_commit Single transfers waiting for a shared ledger call, and such calls running.\n# TYPE techbank_transfer_group_commit gauge\n"
        out += "techbank_transfer_group_commit{state=\"waiting\"} \(groupCommit.waiting)\n"
        out += "techbank_transfer_group_commit{state=\"calls_in_flight\"} \(groupCommit.callsInFlight)\n"
        return out
    }

    private func labels(_ key: RequestKey) -> String {
        "method=\"\(key.method)\",route=\"\(escape(key.route))\",status=\"\(key.status)\""
    }

    private func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }
}
