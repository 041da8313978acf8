import Foundation
@testable import TechBank
import Testing

/// The memory of valid keys behind `Organizations.authenticate`.
@Suite("Authentication: keys remembered")
struct CheckedKeysTests {
    static let identity = Identity(organizationID: UUID(), kind: .enterprise, subParkID: nil, keyID: UUID())
    static let hash = Data(repeating: 7, count: 32)

    @Test("a lookup that overlapped a revocation is not remembered: it may have read the key just before the revocation committed")
    func aLookupOverlappingARevocationIsNotRemembered() {
        let keys = CheckedKeys()
        let lookup = keys.lookupStarted()
        keys.forget(keyID: Self.identity.keyID)
        keys.remember(Self.identity, hash: Self.hash, lookup: lookup)
        #expect(keys.identity(hash: Self.hash) == nil)

        keys.remember(Self.identity, hash: Self.hash, lookup: keys.lookupStarted())
        #expect(keys.identity(hash: Self.hash) == Self.identity)
        keys.forget(keyID: Self.identity.keyID)
        #expect(keys.identity(hash: Self.hash) == nil, "a revoked key is forgotten at once")
    }

    @Test("at most maxEntries keys are remembered")
    func theMemoryIsBounded() {
        let keys = CheckedKeys()
        for n in 0...CheckedKeys.maxEntries {
            var hash = Data(count: 32)
            withUnsafeBytes(of: n) { hash.replaceSubrange(0..<$0.count, with: $0) }
            keys.remember(Self.identity, hash: hash, lookup: keys.lookupStarted())
        }
        #expect(keys.count <= CheckedKeys.maxEntries)
    }
}
