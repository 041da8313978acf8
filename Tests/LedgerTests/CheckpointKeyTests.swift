import Crypto
import Foundation
import Ledger
import Testing

/// The audit signing key's file: created when missing, never written over when it cannot be read.
@Suite("Audit signing key file")
struct CheckpointKeyTests {
    private func scratchDirectory() throws -> String {
        let directory = NSTemporaryDirectory() + "techbank-key-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return directory
    }

    @Test func aMissingKeyIsCreatedPrivateAndLoadedBackTheSame() throws {
        let directory = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/nested/audit-ed25519.key"

        let created = try CheckpointSigner.loadOrCreateKey(at: file)
        let loaded = try CheckpointSigner.loadOrCreateKey(at: file)

        #expect(loaded.rawRepresentation == created.rawRepresentation)
        let permissions = try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int
        #expect(permissions == 0o600)
    }

    @Test func aKeyPathThatCannotBeReadIsAnErrorNotANewKey() throws {
        let directory = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // A directory where the key should be: reading fails, but not because nothing is there.
        let file = directory + "/audit-ed25519.key"
        try FileManager.default.createDirectory(atPath: file, withIntermediateDirectories: false)

        #expect {
            try CheckpointSigner.loadOrCreateKey(at: file)
        } throws: { error in
            guard case .keyFile(let why) = error as? CheckpointError else { return false }
            return why.contains("cannot read")
        }
        var isDirectory: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: file, isDirectory: &isDirectory) && isDirectory.boolValue)
    }

    @Test func aMalformedKeyIsAnErrorAndTheFileIsLeftAsItWas() throws {
        let directory = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/audit-ed25519.key"
        let text = "not a key\n"
        try text.write(toFile: file, atomically: true, encoding: .utf8)

        #expect {
            try CheckpointSigner.loadOrCreateKey(at: file)
        } throws: { error in
            guard case .keyFile = error as? CheckpointError else { return false }
            return true
        }
        #expect(try String(contentsOfFile: file, encoding: .utf8) == text)
    }
}
