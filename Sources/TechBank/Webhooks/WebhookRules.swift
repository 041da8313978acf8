import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The journal's event types, as webhooks subscribe to them. A test fails when the journal records
/// a type missing here.
public enum JournalEventTypes {
    public static let all: Set<String> = [
        "account_created", "account_closed", "transfer", "pending_expired",
        "organization_created", "organization_renamed", "api_key_issued", "api_key_revoked",
        "deposit", "withdrawal",
        "technology_registered", "technology_updated", "technology_custody", "technology_listing", "technology_withdraw",
        "technology_verified", "verification_recorded",
        "demand_posted", "demand_updated", "demand_closed", "demand_matched",
        "match_proposed", "match_accepted", "match_declined",
        "deal_created", "deal_amended", "deal_proposed", "deal_approved", "deal_rejected", "deal_signed", "deal_funded",
        "deal_milestone_released", "deal_milestone_disputed", "deal_dispute_released", "deal_dispute_refunded", "deal_cancelled",
        "deal_royalty_reported",
        "webhook_created", "webhook_updated", "webhook_deleted", "webhook_secret_rotated", "webhook_delivery_retried", "webhook_disabled",
    ]
}

/// Where a webhook may send: `https` URLs of public hosts. With `allowPrivateNetworks`
/// (development and tests) `http` too, and any address.
public enum WebhookRules {
    public static let maxURLLength = 2_000

    /// The URL, checked: absolute, `https` (or `http` when private networks are allowed), with a
    /// host, without user or password, and, when the host is an address, a public one.
    /// - Throws: `TechBankError.validation` naming `url`.
    public static func checkedURL(_ text: String, allowPrivateNetworks: Bool) throws -> URL {
        func refuse(_ why: String) -> TechBankError { TechBankError(.validation, field: "url", why) }
        guard (1...maxURLLength).contains(text.utf8.count), let components = URLComponents(string: text), let url = components.url else {
            throw refuse("must be an absolute URL of at most \(maxURLLength) bytes")
        }
        let schemes = allowPrivateNetworks ? ["https", "http"] : ["https"]
        guard let scheme = components.scheme?.lowercased(), schemes.contains(scheme) else {
            throw refuse(allowPrivateNetworks ? "must be an https or http URL" : "must be an https URL")
        }
        guard let host = components.host, !host.isEmpty else { throw refuse("must name a host") }
        guard components.user == nil, components.password == nil else { throw refuse("must not carry a user or password") }
        if let port = components.port, !(1...65_535).contains(port) { throw refuse("has no valid port") }
        if !allowPrivateNetworks, let address = NetworkAddress(literal: host), !address.isPublic {
            throw refuse("must not point to a loopback, private, link-local or multicast address")
        }
        return url
    }

    /// The event types, checked: `["*"]`, or 1 to 100 known types (`JournalEventTypes`).
    /// - Throws: `TechBankError.validation` naming the first unknown one.
    public static func checkedEventTypes(_ types: [String]) throws -> [String] {
        if types == ["*"] { return types }
        guard (1...100).contains(types.count) else {
            throw TechBankError(.validation, field: "event_types", "must list 1 to 100 event types, or be [\"*\"]")
        }
        for (index, type) in types.enumerated() where !JournalEventTypes.all.contains(type) {
            throw TechBankError(.validation, field: "event_types[\(index)]", "is not a journal event type (or \"*\" alone for all)")
        }
        return Array(Set(types)).sorted()
    }
}

/// An IPv4 or IPv6 address, to tell public addresses from the ones a webhook must never reach.
public struct NetworkAddress: Sendable, Equatable {
    /// 4 or 16 bytes.
    public let bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    /// The address a URL's host names literally (`192.0.2.1`, `[2001:db8::1]`), if it is one.
    public init?(literal host: String) {
        let text = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            self.init(bytes: withUnsafeBytes(of: &v4) { Array($0) })
        } else if inet_pton(AF_INET6, text, &v6) == 1 {
            self.init(bytes: withUnsafeBytes(of: &v6) { Array($0) })
        } else {
            return nil
        }
    }

    /// Not loopback, private, shared (CGNAT), link-local, multicast, unspecified, broadcast,
    /// reserved or documentation space; an IPv4-mapped or NAT64 IPv6 address is judged by its IPv4.
    public var isPublic: Bool {
        if bytes.count == 4 { return Self.isPublicV4(bytes) }
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF { return Self.isPublicV4(Array(bytes[12...])) }
        if bytes[0..<12] == [0x00, 0x64, 0xFF, 0x9B, 0, 0, 0, 0, 0, 0, 0, 0] { return Self.isPublicV4(Array(bytes[12...])) }
        if bytes.allSatisfy({ $0 == 0 }) { return false }                                   // ::
        if bytes[0..<15].allSatisfy({ $0 == 0 }) && bytes[15] == 1 { return false }         // ::1
        if bytes[0] & 0xFE == 0xFC { return false }                                          // fc00::/7 unique local
        if bytes[0] == 0xFE && bytes[1] & 0xC0 == 0x80 { return false }                      // fe80::/10 link-local
        if bytes[0] == 0xFE && bytes[1] & 0xC0 == 0xC0 { return false }                      // fec0::/10 site-local
        if bytes[0] == 0xFF { return false }                                                 // multicast
        if bytes[0] == 0x20 && bytes[1] == 0x01 && bytes[2] == 0x0D && bytes[3] == 0xB8 { return false }  // 2001:db8::/32
        return true
    }

    private static func isPublicV4(_ b: [UInt8]) -> Bool {
        switch (b[0], b[1]) {
        case (0, _), (10, _), (127, _): return false
        case (100, 64...127): return false              // shared address space (CGNAT)
        case (169, 254): return false                   // link-local
        case (172, 16...31): return false
        case (192, 168): return false
        case (192, 0) where b[2] == 0 || b[2] == 2: return false  // IETF protocol assignments, TEST-NET-1
        case (198, 18...19): return false               // benchmarking
        case (198, 51) where b[2] == 100: return false  // TEST-NET-2
        case (203, 0) where b[2] == 113: return false   // TEST-NET-3
        case (224...255, _): return false               // multicast, reserved, broadcast
        default: return true
        }
    }
}

/// The signing secrets of webhooks: made here, sealed with AES-256-GCM under a key kept outside
/// the database (a file next to the audit key), so that a dump of the database alone does not
/// reveal them.
public struct WebhookSecrets: Sendable {
    /// The AES-256 key's bytes.
    let keyBytes: Data

    public init(key: SymmetricKey) { self.keyBytes = key.withUnsafeBytes { Data($0) } }

    var key: SymmetricKey { SymmetricKey(data: keyBytes) }

    /// A key of its own for this process (tests, and servers whose secrets need not outlive it).
    public static func ephemeral() -> WebhookSecrets { WebhookSecrets(key: SymmetricKey(size: .bits256)) }

    /// The key in `file` (32 bytes), created with mode 0600 if missing.
    /// - Throws: if the file cannot be read or created, or holds anything but 32 bytes.
    public static func loadOrCreate(at file: String) throws -> WebhookSecrets {
        if let data = FileManager.default.contents(atPath: file) {
            guard data.count == 32 else { throw TechBankError(.validation, field: "webhook key file", "\(file) must hold exactly 32 bytes") }
            return WebhookSecrets(key: SymmetricKey(data: data))
        }
        if FileManager.default.fileExists(atPath: file) {
            throw TechBankError(.validation, field: "webhook key file", "\(file) exists but cannot be read")
        }
        let key = SymmetricKey(size: .bits256)
        let data = key.withUnsafeBytes { Data($0) }
        guard FileManager.default.createFile(atPath: file, contents: data, attributes: [.posixPermissions: 0o600]) else {
            throw TechBankError(.validation, field: "webhook key file", "cannot create \(file)")
        }
        return WebhookSecrets(key: key)
    }

    /// A new secret: its text (`whsec_` and the base64 of 32 random bytes), shown once, and its bytes.
    static func newSecret() -> (text: String, bytes: Data) {
        let bytes = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }
        return ("whsec_" + bytes.base64EncodedString(), bytes)
    }

    func seal(_ secret: Data) throws -> Data {
        guard let combined = try AES.GCM.seal(secret, using: key).combined else {
            throw TechBankError(.validation, field: "secret", "cannot be sealed")
        }
        return combined
    }

    func open(_ sealed: Data) throws -> Data {
        try AES.GCM.open(AES.GCM.SealedBox(combined: sealed), using: key)
    }
}
