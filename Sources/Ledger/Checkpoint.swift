import Crypto
import Foundation

/// A C2SP tlog-checkpoint (origin, tree size, base64 root hash), signed as a C2SP signed note
/// with Ed25519, so that anyone holding the verifier key can check it with standard tooling.
public struct Checkpoint: Sendable, Equatable {
    public let origin: String
    public let size: Int
    public let root: Merkle.Hash

    public init(origin: String, size: Int, root: Merkle.Hash) {
        self.origin = origin
        self.size = size
        self.root = root
    }

    /// The note text: three lines, each ending in a newline.
    public var text: String { "\(origin)\n\(size)\n\(Data(root).base64EncodedString())\n" }
}

public enum CheckpointError: Error, Sendable, Equatable, CustomStringConvertible {
    case malformedKey(String)
    case malformedNote(String)
    case badSignature
    /// The audit signing key's file cannot be read, created or parsed.
    case keyFile(String)
    public var description: String {
        switch self {
        case .malformedKey(let why): "malformed verifier key: \(why)"
        case .malformedNote(let why): "malformed checkpoint: \(why)"
        case .badSignature: "no valid signature by the expected key"
        case .keyFile(let why): "audit signing key: \(why)"
        }
    }
}

/// Signs checkpoints with the log's Ed25519 key; the key's name is the checkpoint's origin.
public struct CheckpointSigner: Sendable {
    public let name: String
    /// The private key's raw 32 bytes (the key type itself is not Sendable).
    let keyBytes: Data
    public let publicKey: [UInt8]

    /// A signer with a new key (for tests and throwaway servers).
    public init(name: String) { self.init(name: name, key: Curve25519.Signing.PrivateKey()) }

    public init(name: String, key: Curve25519.Signing.PrivateKey) {
        self.name = name
        self.keyBytes = key.rawRepresentation
        self.publicKey = Array(key.publicKey.rawRepresentation)
    }

    /// `<name>+<key id, 8 hex digits>+<base64(0x01 ‖ public key)>`.
    public var verifierKey: String {
        "\(name)+\(Hex.encode(NoteKey.id(name: name, publicKey: publicKey)))+\(Data([0x01] + publicKey).base64EncodedString())"
    }

    /// The signed note of a checkpoint of `size` entries with root `root`.
    public func sign(size: Int, root: Merkle.Hash) throws -> String {
        let text = Checkpoint(origin: name, size: size, root: root).text
        let signature = try Curve25519.Signing.PrivateKey(rawRepresentation: keyBytes).signature(for: Data(text.utf8))
        let blob = NoteKey.id(name: name, publicKey: publicKey) + Array(signature)
        return text + "\n— \(name) \(Data(blob).base64EncodedString())\n"
    }

    /// The key in `file` (base64 of its 32 raw bytes), created with mode 0600 if the file does not
    /// exist. Any other failure to read it (permissions, a directory, an I/O error) is an error:
    /// writing a new key over an unreadable one would silently break every checkpoint saved by
    /// a committee member.
    public static func loadOrCreateKey(at file: String) throws -> Curve25519.Signing.PrivateKey {
        let contents: Data
        do {
            contents = try Data(contentsOf: URL(fileURLWithPath: file))
        } catch CocoaError.fileReadNoSuchFile {
            return try createKey(at: file)
        } catch {
            throw CheckpointError.keyFile("cannot read \(file): \(error.localizedDescription)")
        }
        guard let raw = Data(base64Encoded: String(decoding: contents, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)),
              let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw) else {
            throw CheckpointError.keyFile("\(file) does not hold a base64 Ed25519 private key")
        }
        return key
    }

    /// Writes a new key to `file`, which must not exist (O_EXCL: never over another key), and syncs it.
    private static func createKey(at file: String) throws -> Curve25519.Signing.PrivateKey {
        let key = Curve25519.Signing.PrivateKey()
        let directory = (file as NSString).deletingLastPathComponent
        if !directory.isEmpty { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        let descriptor = open(file, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard descriptor >= 0 else { throw CheckpointError.keyFile("cannot create \(file): \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        let bytes = Array((key.rawRepresentation.base64EncodedString() + "\n").utf8)
        guard write(descriptor, bytes, bytes.count) == bytes.count, fsync(descriptor) == 0 else {
            throw CheckpointError.keyFile("cannot write \(file): \(String(cString: strerror(errno)))")
        }
        return key
    }
}

/// Checks signed checkpoints against a verifier key.
public struct CheckpointVerifier: Sendable {
    public let name: String
    public let publicKey: [UInt8]
    let keyID: [UInt8]

    /// Parses `<name>+<key id hex>+<base64(0x01 ‖ public key)>`. The base64 may itself hold '+'
    /// (the name and the id cannot), so only the first two separate parts.
    public init(verifierKey: String) throws {
        let parts = verifierKey.split(separator: "+", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty else { throw CheckpointError.malformedKey("expected name+id+key") }
        guard let raw = Data(base64Encoded: String(parts[2])), raw.count == 33, raw.first == 0x01 else {
            throw CheckpointError.malformedKey("expected an Ed25519 key (type 0x01, 32 bytes)")
        }
        name = String(parts[0])
        publicKey = Array(raw.dropFirst())
        keyID = NoteKey.id(name: name, publicKey: publicKey)
        guard parts[1].lowercased() == Hex.encode(keyID) else {
            throw CheckpointError.malformedKey("the key id does not match the key")
        }
    }

    /// The checkpoint in `note` if this key signed it.
    public func verify(_ note: String) throws -> Checkpoint {
        guard let split = note.range(of: "\n\n", options: .backwards) else { throw CheckpointError.malformedNote("no signature block") }
        let text = String(note[..<split.lowerBound]) + "\n"
        let signatures = note[split.upperBound...].split(separator: "\n")
        let key = try Curve25519.Signing.PublicKey(rawRepresentation: publicKey)
        var verified = false
        for line in signatures {
            let fields = line.split(separator: " ")
            guard fields.count == 3, fields[0] == "—" else { throw CheckpointError.malformedNote("bad signature line") }
            guard fields[1] == name, let blob = Data(base64Encoded: String(fields[2])), blob.count == 68, Array(blob.prefix(4)) == keyID else { continue }
            guard key.isValidSignature(blob.dropFirst(4), for: Data(text.utf8)) else { throw CheckpointError.badSignature }
            verified = true
        }
        guard verified else { throw CheckpointError.badSignature }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count >= 4, lines[0] == name, let size = Int(lines[1]), size >= 0,
              let root = Data(base64Encoded: String(lines[2])), root.count == 32 else {
            throw CheckpointError.malformedNote("expected origin, size and root lines")
        }
        return Checkpoint(origin: String(lines[0]), size: size, root: Array(root))
    }
}

enum NoteKey {
    /// SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[:4], the Ed25519 key id of C2SP signed-note.
    static func id(name: String, publicKey: [UInt8]) -> [UInt8] {
        Array(SHA256.hash(data: Array(name.utf8) + [0x0A, 0x01] + publicKey).prefix(4))
    }
}
