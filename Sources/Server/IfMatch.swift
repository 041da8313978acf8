/// An `If-Match` value (RFC 9110 §13.1.1): `*`, or one or more entity-tags (`"…"` or `W/"…"`, the
/// opaque part visible ASCII other than `"`) separated by commas with optional spaces or tabs. The
/// OpenAPI document's `If-Match` pattern says the same.
enum IfMatch: Equatable {
    case any
    case tags([String])

    /// nil when `value` is not of that form.
    init?(_ value: String) {
        if value == "*" {
            self = .any
            return
        }
        var tags: [String] = []
        var rest = Substring(value)
        while true {
            let weak = rest.hasPrefix("W/")
            if weak { rest = rest.dropFirst(2) }
            guard rest.first == "\"", let close = rest.dropFirst().firstIndex(of: "\"") else { return nil }
            let opaque = rest[rest.index(after: rest.startIndex)..<close]
            guard opaque.unicodeScalars.allSatisfy({ $0.value == 0x21 || (0x23...0x7E).contains($0.value) }) else { return nil }
            tags.append((weak ? "W/" : "") + rest[...close])
            rest = rest[rest.index(after: close)...].drop { $0 == " " || $0 == "\t" }
            if rest.isEmpty { break }
            guard rest.first == "," else { return nil }
            rest = rest.dropFirst().drop { $0 == " " || $0 == "\t" }
        }
        self = .tags(tags)
    }

    /// Whether the condition holds for a resource whose strong ETag is `etag`. A weak tag never
    /// matches (strong comparison, RFC 9110 §13.1.1).
    func matches(_ etag: String) -> Bool {
        switch self {
        case .any: true
        case .tags(let tags): tags.contains(etag)
        }
    }
}
