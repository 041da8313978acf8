import Foundation
import Glibc
import Postgres
import Testing
import TestSupport

/// A throwaway embedded cluster of a test's own, which it may stop, kill, start again, or give a
/// hot standby.
struct ThrowawayCluster: Sendable {
    let cluster: EmbeddedPostgres
    let directory: String

    init(port: Int) throws {
        directory = NSTemporaryDirectory() + "techbank-throwaway-\(UUID().uuidString.prefix(8))"
        var options = EmbeddedPostgres.Options(directory: directory)
        options.port = port
        options.settings = ["fsync": "off"]
        cluster = try EmbeddedPostgres(options: options)
    }

    var conninfo: String { cluster.conninfo }

    func start() async throws { _ = try await cluster.start(logger: TestDatabase.logger) }
    func stop() async throws { try await cluster.stop(logger: TestDatabase.logger) }

    /// SIGKILL to the postmaster and every child of it, as a power cut leaves them.
    func kill() throws {
        let pidFile = directory + "/data/postmaster.pid"
        let line = String(decoding: try #require(FileManager.default.contents(atPath: pidFile)), as: UTF8.self).split(separator: "\n")[0]
        let postmaster = try #require(Int32(line))
        let children = (try? String(contentsOfFile: "/proc/\(postmaster)/task/\(postmaster)/children", encoding: .utf8)) ?? ""
        #expect(Glibc.kill(postmaster, SIGKILL) == 0)
        for child in children.split(separator: " ").compactMap({ Int32($0) }) { _ = Glibc.kill(child, SIGKILL) }
    }

    /// A hot standby of this running cluster, streaming from it: a base backup taken with
    /// `pg_basebackup --write-recovery-conf` into a new cluster's directory, started on `port`.
    func startStandby(port: Int) async throws -> ThrowawayCluster {
        let standby = try ThrowawayCluster(port: port)
        try FileManager.default.createDirectory(atPath: standby.directory + "/data", withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        let (status, printed) = try await ChildProcess.run([
            cluster.binDirectory + "/pg_basebackup", "--dbname=\(cluster.conninfo(database: "postgres"))", "--pgdata=\(standby.directory)/data",
            "--write-recovery-conf", "--wal-method=stream", "--checkpoint=fast", "--no-manifest",
        ])
        #expect(status == 0, "pg_basebackup failed:\n\(printed)")
        try await standby.start()
        return standby
    }

    func destroy() { try? cluster.destroy() }
}
