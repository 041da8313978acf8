import Crypto
import Foundation
import Ledger
import Testing

@Suite("Merkle tree (RFC 9162 §2.1)")
struct MerkleTests {
    /// The eight leaves of the RFC 6962 / Certificate Transparency test vectors.
    static let vectorLeaves: [[UInt8]] = [[], [0x00], [0x10], [0x20, 0x21], [0x30, 0x31], [0x40, 0x41, 0x42, 0x43],
                                          Array(0x50...0x57), Array(0x60...0x6f)]
    /// Their published roots for sizes 1 to 8.
    static let vectorRoots = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d", "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77", "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4", "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c", "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]

    /// The RFC's definition, recursively, as the reference.
    static func referenceRoot(_ leaves: ArraySlice<Merkle.Hash>) -> Merkle.Hash {
        if leaves.isEmpty { return Merkle.emptyRoot }
        if leaves.count == 1 { return leaves.first! }
        var k = 1
        while k * 2 < leaves.count { k *= 2 }
        let start = leaves.startIndex
        return Merkle.nodeHash(referenceRoot(leaves[start..<start + k]), referenceRoot(leaves[(start + k)...]))
    }

    static func leaves(_ count: Int) -> [Merkle.Hash] { (0..<count).map { Merkle.leafHash(Array("entry \($0)".utf8)) } }

    @Test func rootsMatchThePublishedTestVectors() async throws {
        var tree = InMemoryMerkleTree()
        #expect(Hex.encode(try await tree.root(size: 0)) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        for (index, leaf) in Self.vectorLeaves.enumerated() {
            tree.append(Merkle.leafHash(leaf))
            #expect(Hex.encode(try await tree.root(size: index + 1)) == Self.vectorRoots[index], "size \(index + 1)")
        }
    }

    @Test func rootsOfEveryPrefixMatchTheDefinition() async throws {
        let leaves = Self.leaves(70)
        let tree = InMemoryMerkleTree(leafHashes: leaves)
        for size in 0...70 {
            #expect(try await tree.root(size: size) == Self.referenceRoot(leaves[0..<size]), "size \(size)")
        }
    }

    @Test func everyInclusionProofVerifiesAndEveryForgeryFails() async throws {
        let leaves = Self.leaves(33)
        let tree = InMemoryMerkleTree(leafHashes: leaves)
        for size in 1...33 {
            let root = try await tree.root(size: size)
            for index in 0..<size {
                let path = try await tree.inclusionProof(index: index, size: size)
                #expect(Merkle.verifyInclusion(leafHash: leaves[index], index: index, size: size, path: path, root: root), "\(index) of \(size)")
                // Forgeries: another leaf, another index, another root, a flipped bit, a path too short or too long.
                #expect(!Merkle.verifyInclusion(leafHash: leaves[(index + 1) % 33], index: index, size: size, path: path, root: root))
                if size > 1 {
                    #expect(!Merkle.verifyInclusion(leafHash: leaves[index], index: (index + 1) % size, size: size, path: path, root: root))
                    var flipped = path
                    flipped[index % path.count][0] ^= 1
                    #expect(!Merkle.verifyInclusion(leafHash: leaves[index], index: index, size: size, path: flipped, root: root))
                    #expect(!Merkle.verifyInclusion(leafHash: leaves[index], index: index, size: size, path: Array(path.dropLast()), root: root))
                }
                #expect(!Merkle.verifyInclusion(leafHash: leaves[index], index: index, size: size, path: path + [root], root: root))
                #expect(!Merkle.verifyInclusion(leafHash: leaves[index], index: index, size: size, path: path, root: Merkle.leafHash([0x42])))
                #expect(!Merkle.verifyInclusion(leafHash: leaves[index], index: size, size: size, path: path, root: root))
            }
        }
    }

    @Test func everyConsistencyProofVerifiesAndEveryForgeryFails() async throws {
        let leaves = Self.leaves(40)
        let tree = InMemoryMerkleTree(leafHashes: leaves)
        for newSize in 1...40 {
            let newRoot = try await tree.root(size: newSize)
            for oldSize in 1...newSize {
                let oldRoot = try await tree.root(size: oldSize)
                let proof = try await tree.consistencyProof(oldSize: oldSize, newSize: newSize)
                #expect(Merkle.verifyConsistency(oldSize: oldSize, newSize: newSize, oldRoot: oldRoot, newRoot: newRoot, proof: proof),
                        "\(oldSize) → \(newSize)")
                guard oldSize < newSize else { continue }
                // A rewritten old tree (another root), a wrong new root, a flipped bit, a dropped node.
                #expect(!Merkle.verifyConsistency(oldSize: oldSize, newSize: newSize, oldRoot: Merkle.leafHash([1]), newRoot: newRoot, proof: proof))
                #expect(!Merkle.verifyConsistency(oldSize: oldSize, newSize: newSize, oldRoot: oldRoot, newRoot: Merkle.leafHash([2]), proof: proof))
                if !proof.isEmpty {
                    var flipped = proof
                    flipped[proof.count - 1][31] ^= 0x80
                    #expect(!Merkle.verifyConsistency(oldSize: oldSize, newSize: newSize, oldRoot: oldRoot, newRoot: newRoot, proof: flipped))
                    #expect(!Merkle.verifyConsistency(oldSize: oldSize, newSize: newSize, oldRoot: oldRoot, newRoot: newRoot, proof: Array(proof.dropLast())))
                }
            }
        }
    }

    @Test func aChangedLeafChangesTheRootAndBreaksConsistency() async throws {
        var leaves = Self.leaves(20)
        let honest = InMemoryMerkleTree(leafHashes: leaves)
        let oldRoot = try await honest.root(size: 12)
        leaves[5] = Merkle.leafHash(Array("rewritten".utf8))
        let forged = InMemoryMerkleTree(leafHashes: leaves)
        let forgedNewRoot = try await forged.root(size: 20)
        #expect(try await forged.root(size: 12) != oldRoot)
        let proof = try await forged.consistencyProof(oldSize: 12, newSize: 20)
        #expect(!Merkle.verifyConsistency(oldSize: 12, newSize: 20, oldRoot: oldRoot, newRoot: forgedNewRoot, proof: proof))
    }
}
