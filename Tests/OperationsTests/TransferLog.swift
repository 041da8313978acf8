import Foundation
import TestSupport

/// What the writers were told about each transfer: acknowledged (201 or 200 with its fields),
/// refused (a 4xx other than a conflict), in doubt (no answer or a 5xx: it may or may not have
/// landed), or conflicting (an answer naming different fields, or 409: never acceptable here,
/// since every id is fresh and every retry resends the same body).
actor TransferLog {
    enum Verdict: Sendable, Equatable { case acknowledged, refused, inDoubt, conflicting }

    private(set) var acknowledged: [String: TransferRequest] = [:]
    private(set) var inDoubt: [String: TransferRequest] = [:]
    private(set) var refused = 0
    private(set) var conflicts: [String] = []
    /// How many requests were ever in doubt (each is retried until it has an answer).
    private(set) var everInDoubt = 0
    /// In-doubt requests whose retry answered 200 (it had landed) or 201 (it had not).
    private(set) var retryAnswers: [Int: Int] = [:]

    @discardableResult
    func record(_ request: TransferRequest, _ outcome: HTTPOutcome) -> Verdict {
        let verdict = Self.judge(request, outcome)
        switch verdict {
        case .acknowledged:
            if inDoubt.removeValue(forKey: request.id) != nil, case .answered(let status, _) = outcome { retryAnswers[status, default: 0] += 1 }
            acknowledged[request.id] = request
        case .refused:
            inDoubt[request.id] = nil
            refused += 1
        case .inDoubt:
            if inDoubt.updateValue(request, forKey: request.id) == nil { everInDoubt += 1 }
        case .conflicting:
            inDoubt[request.id] = nil
            conflicts.append("\(request.id): \(outcome.summary)")
        }
        return verdict
    }

    private static func judge(_ request: TransferRequest, _ outcome: HTTPOutcome) -> Verdict {
        guard case .answered(let status, let data) = outcome else { return .inDoubt }
        switch status {
        case 200, 201:
            let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
            return request.matches(json) ? .acknowledged : .conflicting
        case 409: return .conflicting
        case 400..<500: return .refused
        default: return .inDoubt
        }
    }

    /// Resends every in-doubt request with the same id and body until it has an answer
    /// (at most 100 tries each, 100 ms apart while the server answers 5xx or not at all).
    func retryInDoubt(client: HTTPClient, key: String) async throws {
        for request in inDoubt.values.sorted(by: { $0.id < $1.id }) {
            var verdict = Verdict.inDoubt
            for _ in 0..<100 where verdict == .inDoubt {
                verdict = record(request, await client.send("POST", "/v1/transfers", key: key, json: request.body))
                if verdict == .inDoubt { try await Task.sleep(for: .milliseconds(100)) }
            }
            guard verdict != .inDoubt else { throw HarnessError("transfer \(request.id) still had no answer after 100 retries") }
        }
    }
}
