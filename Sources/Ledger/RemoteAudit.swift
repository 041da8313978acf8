import Foundation

/// What a committee member runs against a server they do not trust: fetch the current signed
/// checkpoint, check its signature, and prove with the server's consistency proof that the
/// checkpoint saved earlier describes a prefix of today's log, so nothing written before it
/// changed.
public enum RemoteAudit {
    public struct Outcome: Sendable {
        /// Today's checkpoint and its signed note.
        public let checkpoint: Checkpoint
        public let note: String
        /// The saved checkpoint it was proven consistent with.
        public let previous: Checkpoint?
    }

    public struct Failure: Error, Sendable, CustomStringConvertible {
        public let description: String
        public init(description: String) { self.description = description }
    }

    struct ConsistencyBody: Decodable {
        let from: Int
        let to: Int
        let proof: [String]
    }

    /// Checks the server's checkpoint against `verifierKey` and, if `savedNote` is given, that it
    /// is consistent with that earlier checkpoint. `fetch` GETs a path of the server's API.
    public static func check(savedNote: String?, verifierKey: String,
                             fetch: @Sendable (String) async throws -> Data) async throws -> Outcome {
        let verifier = try CheckpointVerifier(verifierKey: verifierKey)
        let note = String(decoding: try await fetch("/v1/audit/checkpoint"), as: UTF8.self)
        let current: Checkpoint
        do {
            current = try verifier.verify(note)
        } catch {
            throw Failure(description: "the server's checkpoint does not verify: \(error)")
        }
        guard let savedNote else { return Outcome(checkpoint: current, note: note, previous: nil) }
        let saved: Checkpoint
        do {
            saved = try verifier.verify(savedNote)
        } catch {
            throw Failure(description: "the saved checkpoint does not verify with this key: \(error)")
        }
        guard saved.size <= current.size else {
            throw Failure(description: "the log shrank: the saved checkpoint has \(saved.size) entries, the server's \(current.size)")
        }
        let body = try await fetch("/v1/audit/proofs/consistency?from=\(saved.size)&to=\(current.size)")
        guard let proof = try? JSONDecoder().decode(ConsistencyBody.self, from: body), proof.from == saved.size, proof.to == current.size else {
            throw Failure(description: "the server's consistency proof is malformed")
        }
        var hashes: [Merkle.Hash] = []
        for text in proof.proof {
            guard let hash = Hex.decode(text), hash.count == 32 else { throw Failure(description: "the server's consistency proof is malformed") }
            hashes.append(hash)
        }
        guard Merkle.verifyConsistency(oldSize: saved.size, newSize: current.size, oldRoot: saved.root, newRoot: current.root, proof: hashes) else {
            throw Failure(description: "the log is NOT consistent with the saved checkpoint: entries among the first \(saved.size) were changed")
        }
        return Outcome(checkpoint: current, note: note, previous: saved)
    }
}
