import Foundation
import Logging
import NIOPosix

extension EmbeddedPostgres {
    /// Builds this cluster from a `PhysicalBackup` file, starts it once, which replays the
    /// write-ahead log in the backup up to its end (recovery from the backup label), checks that it
    /// left recovery, and stops it: the next `start` serves the data as it was when the backup
    /// finished. Refuses a directory that already holds a cluster. The port, socket directory and
    /// settings are this instance's options, as for any start: none of them is kept in the backup.
    public func restore(from file: String, logger: Logger) async throws {
        try await NIOThreadPool.singleton.runIfActive { try self.unpack(file, logger: logger) }
        try await start(logger: logger)
        let recovered: Bool
        do {
            recovered = try await leftRecovery()
        } catch {
            try await stop(logger: logger)
            throw error
        }
        try await stop(logger: logger)
        guard recovered else {
            throw EmbeddedPostgresError("the restored cluster in \(options.directory) did not leave recovery; see its postgres.log")
        }
        logger.info("restored embedded PostgreSQL", metadata: ["directory": "\(options.directory)", "from": "\(file)"])
    }

    private func leftRecovery() async throws -> Bool {
        let admin = try await PostgresConnection.connect(
            conninfo: conninfo(database: "postgres"), statementTimeoutMilliseconds: 60_000, threadPool: .singleton)
        defer { admin.close() }
        return try await admin.query("SELECT pg_is_in_recovery()")[0].decode(Bool.self, at: 0) == false
    }

    /// Extracts the backup into a new data directory; removes what it created if that fails.
    private func unpack(_ file: String, logger: Logger) throws {
        let fileManager = FileManager.default
        var isDirectory: ObjCBool = false
        guard fileManager.fileExists(atPath: file, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw EmbeddedPostgresError("no backup file at \(file)")
        }
        guard !fileManager.fileExists(atPath: dataDirectory) else {
            throw EmbeddedPostgresError("\(options.directory) already holds a cluster; restore into a new directory")
        }
        let createdDirectory = !fileManager.fileExists(atPath: options.directory)
        try fileManager.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        do {
            let (exitCode, output) = try spawnAndWait(["/usr/bin/env", "tar", "--extract", "--gzip", "--no-same-owner",
                                                       "--file=\(file)", "--directory=\(dataDirectory)"])
            guard exitCode == 0 else {
                throw EmbeddedPostgresError("\(file) is not a readable backup (tar exit \(exitCode)):\n\(lastLines(output))")
            }
            for required in ["PG_VERSION", "backup_label"] where !fileManager.fileExists(atPath: dataDirectory + "/" + required) {
                throw EmbeddedPostgresError("\(file) is not a PostgreSQL base backup (it has no \(required))")
            }
        } catch {
            try fileManager.removeItem(atPath: createdDirectory ? options.directory : dataDirectory)
            throw error
        }
        logger.info("unpacked backup", metadata: ["from": "\(file)", "directory": "\(options.directory)"])
    }
}
