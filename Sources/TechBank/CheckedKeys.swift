import Foundation
import Synchronization

/// API keys recently found valid in the database, by the SHA-256 of their secret, so that a busy
/// caller's requests do not each ask again. An entry is trusted for `trustedFor` after its lookup;
/// `forget` drops a revoked key at once, and a lookup that overlapped a `forget` is not remembered
/// (it may have read the key just before the revocation committed). At most `maxEntries` are kept.
final class CheckedKeys: Sendable {
    static let trustedFor: Duration = .seconds(1)
    static let maxEntries = 10_000

    /// A lookup's place in the order of revocations.
    struct Lookup { fileprivate let revocations: Int }

    private struct State {
        var entries: [Data: (identity: Identity, checkedAt: ContinuousClock.Instant)] = [:]
        var revocations = 0
    }

    private let state = Mutex(State())

    func identity(hash: Data) -> Identity? {
        state.withLock { state in
            guard let entry = state.entries[hash] else { return nil }
            guard ContinuousClock.now - entry.checkedAt < Self.trustedFor else {
                state.entries[hash] = nil
                return nil
            }
            return entry.identity
        }
    }

    var count: Int { state.withLock { $0.entries.count } }

    func lookupStarted() -> Lookup {
        state.withLock { Lookup(revocations: $0.revocations) }
    }

    func remember(_ identity: Identity, hash: Data, lookup: Lookup) {
        let now = ContinuousClock.now
        state.withLock { state in
            guard state.revocations == lookup.revocations else { return }
            if state.entries.count >= Self.maxEntries {
                state.entries = state.entries.filter { now - $0.value.checkedAt < Self.trustedFor }
                if state.entries.count >= Self.maxEntries { state.entries.removeAll() }
            }
            state.entries[hash] = (identity, now)
        }
    }

    func forget(keyID: UUID) {
        state.withLock { state in
            state.revocations += 1
            state.entries = state.entries.filter { $0.value.identity.keyID != keyID }
        }
    }
}
