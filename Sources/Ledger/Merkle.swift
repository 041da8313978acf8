import Crypto
import Foundation

/// The Merkle tree of RFC 9162 §2.1 over the journal's leaves: a leaf hash is
/// SHA-256(0x00 ‖ entry), an interior node SHA-256(0x01 ‖ left ‖ right), and a tree of n leaves
/// splits at the largest power of two below n.
public enum Merkle {
    public typealias Hash = [UInt8]

    public static func leafHash(_ entry: [UInt8]) -> Hash { Array(SHA256.hash(data: [0x00] + entry)) }
    public static func nodeHash(_ left: Hash, _ right: Hash) -> Hash { Array(SHA256.hash(data: [0x01] + left + right)) }
    /// The root of the empty tree: SHA-256 of nothing.
    public static let emptyRoot: Hash = Array(SHA256.hash(data: [UInt8]()))

    /// The largest power of two strictly below `n` (n ≥ 2).
    static func split(_ n: Int) -> Int {
        var k = 1
        while k << 1 < n { k <<= 1 }
        return k
    }

    // MARK: Verification (RFC 9162 §2.1.3.2 and §2.1.4.2): needs nothing but the proof.

    /// Whether `path` proves that the leaf `leafHash` is entry `index` of the tree of `size`
    /// leaves whose root is `root`.
    public static func verifyInclusion(leafHash: Hash, index: Int, size: Int, path: [Hash], root: Hash) -> Bool {
        guard index >= 0, index < size else { return false }
        var fn = index
        var sn = size - 1
        var r = leafHash
        for p in path {
            guard sn != 0 else { return false }
            if fn & 1 == 1 || fn == sn {
                r = nodeHash(p, r)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 {
                        fn >>= 1
                        sn >>= 1
                    }
                }
            } else {
                r = nodeHash(r, p)
            }
            fn >>= 1
            sn >>= 1
        }
        return sn == 0 && r == root
    }

    /// Whether `proof` shows that the tree of `oldSize` leaves with root `oldRoot` is a prefix of
    /// the tree of `newSize` leaves with root `newRoot`.
    public static func verifyConsistency(oldSize: Int, newSize: Int, oldRoot: Hash, newRoot: Hash, proof: [Hash]) -> Bool {
        guard oldSize >= 0, oldSize <= newSize else { return false }
        if oldSize == newSize { return proof.isEmpty && oldRoot == newRoot }
        if oldSize == 0 { return proof.isEmpty }
        var path = proof
        if oldSize & (oldSize - 1) == 0 { path.insert(oldRoot, at: 0) }  // a power of two: the old root is the first node
        guard !path.isEmpty else { return false }
        var fn = oldSize - 1
        var sn = newSize - 1
        while fn & 1 == 1 {
            fn >>= 1
            sn >>= 1
        }
        var fr = path[0]
        var sr = path[0]
        for c in path.dropFirst() {
            guard sn != 0 else { return false }
            if fn & 1 == 1 || fn == sn {
                fr = nodeHash(c, fr)
                sr = nodeHash(c, sr)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 {
                        fn >>= 1
                        sn >>= 1
                    }
                }
            } else {
                sr = nodeHash(sr, c)
            }
            fn >>= 1
            sn >>= 1
        }
        return fr == oldRoot && sr == newRoot && sn == 0
    }
}

/// Where the tree's complete subtrees are stored: the node at `level` and `index` is the hash of
/// leaves `[index × 2^level, (index + 1) × 2^level)`.
public protocol MerkleNodeStore: Sendable {
    func node(level: Int, index: Int) async throws -> Merkle.Hash
}

extension MerkleNodeStore {
    /// MTH of leaves `[start, end)`. Every left part of the RFC's recursion is a complete,
    /// aligned subtree, so this reads O(log n) stored nodes.
    public func hash(_ start: Int, _ end: Int) async throws -> Merkle.Hash {
        let n = end - start
        if n == 0 { return Merkle.emptyRoot }
        if n & (n - 1) == 0, start % n == 0 { return try await node(level: n.trailingZeroBitCount, index: start / n) }
        let k = Merkle.split(n)
        return Merkle.nodeHash(try await hash(start, start + k), try await hash(start + k, end))
    }

    public func root(size: Int) async throws -> Merkle.Hash { try await hash(0, size) }

    /// The audit path of leaf `index` in the tree of `size` leaves (RFC 9162 §2.1.3.1).
    public func inclusionProof(index: Int, size: Int) async throws -> [Merkle.Hash] {
        precondition(index >= 0 && index < size)
        return try await path(index, 0, size)
    }

    private func path(_ m: Int, _ start: Int, _ end: Int) async throws -> [Merkle.Hash] {
        let n = end - start
        if n <= 1 { return [] }
        let k = Merkle.split(n)
        if m < k { return try await path(m, start, start + k) + [try await hash(start + k, end)] }
        return try await path(m - k, start + k, end) + [try await hash(start, start + k)]
    }

    /// The consistency proof between the trees of `oldSize` and `newSize` leaves (RFC 9162 §2.1.4.1).
    public func consistencyProof(oldSize: Int, newSize: Int) async throws -> [Merkle.Hash] {
        precondition(0 <= oldSize && oldSize <= newSize)
        guard oldSize > 0, oldSize < newSize else { return [] }
        return try await subproof(oldSize, 0, newSize, true)
    }

    private func subproof(_ m: Int, _ start: Int, _ end: Int, _ complete: Bool) async throws -> [Merkle.Hash] {
        let n = end - start
        if m == n { return complete ? [] : [try await hash(start, end)] }
        let k = Merkle.split(n)
        if m <= k { return try await subproof(m, start, start + k, complete) + [try await hash(start + k, end)] }
        return try await subproof(m - k, start + k, end, false) + [try await hash(start, start + k)]
    }
}

/// The complete subtrees of a list of leaf hashes, in memory: for tests and for verifying a
/// journal read in full.
public struct InMemoryMerkleTree: MerkleNodeStore {
    /// `levels[l][i]`: the node at level `l`, index `i`.
    public private(set) var levels: [[Merkle.Hash]] = [[]]

    public init(leafHashes: [Merkle.Hash] = []) {
        for leaf in leafHashes { append(leaf) }
    }

    public var size: Int { levels[0].count }

    /// Appends a leaf and every complete subtree it closes.
    public mutating func append(_ leafHash: Merkle.Hash) {
        levels[0].append(leafHash)
        var level = 0
        var index = levels[0].count - 1
        while index & 1 == 1 {
            let parent = Merkle.nodeHash(levels[level][index - 1], levels[level][index])
            level += 1
            if levels.count == level { levels.append([]) }
            levels[level].append(parent)
            index >>= 1
        }
    }

    public func node(level: Int, index: Int) async throws -> Merkle.Hash { levels[level][index] }
}
