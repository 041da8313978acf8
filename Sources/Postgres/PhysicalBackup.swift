import Foundation
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// A physical base backup of a whole PostgreSQL cluster in one gzip-compressed tar file, taken
/// with `pg_basebackup` while the server runs: every database, role, grant and row, with the
/// write-ahead log needed to make it consistent (`-X fetch`). `EmbeddedPostgres.restore(from:)`
/// turns such a file into a new embedded cluster.
public enum PhysicalBackup {
    /// What a finished backup holds.
    public struct Summary: Sendable {
        /// The backup file.
        public let file: String
        public let sizeBytes: Int64
        public let durationSeconds: Double
        /// The write-ahead log position the restored cluster is consistent at (`0/3000100`).
        public let consistentAtLSN: String
        /// When the backup finished: it holds every transaction committed before it began.
        public let finishedAt: Date
    }

    /// Backs up the cluster `conninfo` reaches (any database on it; the user needs the REPLICATION
    /// privilege) into `file`. The data goes to a temporary directory next to `file` and is renamed
    /// into place only when complete, so a failed backup never leaves a partial `file`.
    /// The blocking work runs off the cooperative pool.
    public static func take(conninfo: String, to file: String, overwrite: Bool) async throws -> Summary {
        try await NIOThreadPool.singleton.runIfActive { try takeBlocking(conninfo: conninfo, to: file, overwrite: overwrite) }
    }

    private static func takeBlocking(conninfo: String, to file: String, overwrite: Bool) throws -> Summary {
        let target = URL(fileURLWithPath: file).standardizedFileURL
        try checkTarget(file, overwrite: overwrite)
        let scratch = target.deletingLastPathComponent().appendingPathComponent(".\(target.lastPathComponent).partial-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        defer { removeScratch(scratch) }
        let started = Date()
        let (exitCode, output) = try spawnAndWait([
            try EmbeddedPostgres.findBinaries() + "/pg_basebackup", "--dbname=\(conninfo)", "--pgdata=\(scratch.path)",
            "--format=tar", "--gzip", "--wal-method=fetch", "--checkpoint=fast", "--no-manifest", "--verbose",
            "--label=techbank backup \(ISO8601DateFormatter().string(from: started))",
        ])
        guard exitCode == 0 else {
            throw EmbeddedPostgresError("pg_basebackup failed (exit \(exitCode)):\n\(lastLines(output))")
        }
        guard let lsn = endPosition(in: output) else {
            throw EmbeddedPostgresError("pg_basebackup did not report where the backup ends:\n\(lastLines(output))")
        }
        let archive = scratch.appendingPathComponent("base.tar.gz")
        // rename(2) replaces an existing file atomically (only reached with `overwrite`).
        guard rename(archive.path, target.path) == 0 else {
            throw EmbeddedPostgresError("cannot move the backup to \(target.path): \(String(cString: strerror(errno)))")
        }
        let size = try FileManager.default.attributesOfItem(atPath: target.path)[.size] as? Int64 ?? 0
        return Summary(file: target.path, sizeBytes: size, durationSeconds: Date().timeIntervalSince(started),
                       consistentAtLSN: lsn, finishedAt: Date())
    }

    /// Refuses a target that is a directory, sits in a missing directory, or exists (unless
    /// `overwrite`): the checks `take` starts with, to run before connecting.
    public static func checkTarget(_ file: String, overwrite: Bool) throws {
        let target = URL(fileURLWithPath: file).standardizedFileURL
        var isDirectory: ObjCBool = false
        let parent = target.deletingLastPathComponent().path
        guard FileManager.default.fileExists(atPath: parent, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw EmbeddedPostgresError("cannot write the backup: the directory \(parent) does not exist")
        }
        guard FileManager.default.fileExists(atPath: target.path, isDirectory: &isDirectory) else { return }
        if isDirectory.boolValue { throw EmbeddedPostgresError("\(target.path) is a directory; give the backup a file name") }
        if !overwrite { throw EmbeddedPostgresError("\(target.path) already exists; pass --force to replace it") }
    }

    /// The position `pg_basebackup --verbose` reports as the end of the write-ahead log the backup needs.
    static func endPosition(in output: String) -> String? {
        let marker = "write-ahead log end point: "
        guard let line = output.split(separator: "\n").last(where: { $0.contains(marker) }),
              let range = line.range(of: marker) else { return nil }
        return line[range.upperBound...].split(separator: " ").first.map(String.init)
    }

    private static func removeScratch(_ scratch: URL) {
        do {
            try FileManager.default.removeItem(at: scratch)
        } catch {
            FileHandle.standardError.write(Data("warning: could not remove \(scratch.path): \(error)\n".utf8))
        }
    }
}

func lastLines(_ text: String, _ count: Int = 8) -> String {
    text.split(separator: "\n").suffix(count).joined(separator: "\n")
}
