import Foundation
import Hummingbird

/// A response held in memory: what handlers return, and what `Idempotency` stores and replays.
struct Reply: Sendable {
    var status: HTTPResponse.Status
    var body: Data
    var headers: HTTPFields

    /// A JSON reply with `value` as its body.
    static func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok, contentType: String = "application/json") throws -> Reply {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(RFC3339.format(date))
        }
        var headers = HTTPFields()
        headers[.contentType] = contentType
        return Reply(status: status, body: try encoder.encode(value), headers: headers)
    }

    var response: Response {
        Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }
}
