import Foundation
import TestSupport
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// What one request got: an answer with its status and body, or none (the connection failed,
/// was cut, or timed out), in which case the request may or may not have taken effect.
enum HTTPOutcome: Sendable {
    case answered(Int, Data)
    case noAnswer(String)
}

/// A small JSON client over URLSession for one server, with its own connections (so none survive
/// a restart of the server).
struct HTTPClient: Sendable {
    let baseURL: String
    private let session: URLSession

    init(baseURL: String) {
        self.baseURL = baseURL
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpMaximumConnectionsPerHost = 32
        configuration.timeoutIntervalForRequest = 30
        session = URLSession(configuration: configuration)
    }

    /// Sends a request as `key` (nil: no Authorization), `json` serialized with sorted keys.
    func send(_ method: String, _ path: String, key: String? = nil, json: [String: any Sendable]? = nil) async -> HTTPOutcome {
        guard let url = URL(string: baseURL + path) else { return .noAnswer("bad URL \(baseURL + path)") }
        var request = URLRequest(url: url)
        request.httpMethod = method
        if let key { request.setValue("Bearer \(key)", forHTTPHeaderField: "Authorization") }
        if let json {
            do {
                request.httpBody = try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])
            } catch {
                return .noAnswer("cannot encode the body: \(error)")
            }
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        do {
            let (data, response) = try await session.data(for: request)
            guard let status = (response as? HTTPURLResponse)?.statusCode else { return .noAnswer("not an HTTP response") }
            return .answered(status, data)
        } catch {
            return .noAnswer("\(error)")
        }
    }

    /// Sends a request that must answer `expected`; returns the JSON object it answered.
    func require(_ expected: Int, _ method: String, _ path: String, key: String?, json: [String: any Sendable]? = nil) async throws -> [String: Any] {
        let outcome = await send(method, path, key: key, json: json)
        guard case .answered(expected, let data) = outcome else {
            throw HarnessError("\(method) \(path) should answer \(expected): \(outcome.summary)")
        }
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw HarnessError("\(method) \(path) answered \(expected) without a JSON object")
        }
        return object
    }

    /// Ends the session's connections.
    func close() { session.invalidateAndCancel() }
}

extension HTTPOutcome {
    var summary: String {
        switch self {
        case .answered(let status, let data): "\(status) \(String(decoding: data.prefix(500), as: UTF8.self))"
        case .noAnswer(let reason): "no answer: \(reason)"
        }
    }
}
