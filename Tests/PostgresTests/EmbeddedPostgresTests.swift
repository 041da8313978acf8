import Foundation
import Logging
import Postgres
import Testing
import TestSupport

@Suite("Embedded cluster")
struct EmbeddedPostgresTests {
    @Test func createsStartsStopsAndReusesItsData() async throws {
        let directory = NSTemporaryDirectory() + "techbank-embedded-\(UUID().uuidString.prefix(8))"
        var options = EmbeddedPostgres.Options(directory: directory)
        options.port = 5433
        options.settings = ["fsync": "off"]
        let cluster = try EmbeddedPostgres(options: options)
        defer { try? cluster.destroy() }

        #expect(try await cluster.start(logger: TestDatabase.logger), "this call started the cluster")
        // A second start finds it running and says so, so that its caller leaves stopping it to the first.
        #expect(try await cluster.start(logger: TestDatabase.logger) == false)
        let first = try await PostgresConnection.connect(conninfo: cluster.conninfo, statementTimeoutMilliseconds: 5_000, threadPool: .singleton)
        try await first.query("CREATE TABLE kept (value text)")
        try await first.query("INSERT INTO kept VALUES ($1)", ["still here"])
        let listens = try await first.query("SELECT current_setting('listen_addresses'), current_database()")
        #expect(try listens[0].decode(String.self, at: 0) == "")  // no TCP port unless asked
        #expect(try listens[0].decode(String.self, at: 1) == "techbank")
        first.close()
        #expect(FileManager.default.fileExists(atPath: directory + "/.s.PGSQL.5433"))

        try await cluster.stop(logger: TestDatabase.logger)
        #expect(!FileManager.default.fileExists(atPath: directory + "/.s.PGSQL.5433"))

        #expect(try await cluster.start(logger: TestDatabase.logger))
        let second = try await PostgresConnection.connect(conninfo: cluster.conninfo, statementTimeoutMilliseconds: 5_000, threadPool: .singleton)
        defer { second.close() }
        let kept = try await second.query("SELECT value FROM kept")
        #expect(try kept[0].decode(String.self, at: 0) == "still here")
    }

    @Test("a cluster whose server was killed with SIGKILL comes back on the next start, with what it committed")
    func comesBackAfterAKill() async throws {
        let directory = NSTemporaryDirectory() + "techbank-embedded-\(UUID().uuidString.prefix(8))"
        var options = EmbeddedPostgres.Options(directory: directory)
        options.port = 5434
        let cluster = try EmbeddedPostgres(options: options)
        defer { try? cluster.destroy() }
        #expect(try await cluster.start(logger: TestDatabase.logger))
        let first = try await PostgresConnection.connect(conninfo: cluster.conninfo, statementTimeoutMilliseconds: 5_000, threadPool: .singleton)
        try await first.query("CREATE TABLE kept (value text)")
        try await first.query("INSERT INTO kept VALUES ($1)", ["committed before the crash"])
        first.close()
        let pidFile = directory + "/data/postmaster.pid"
        let line = String(decoding: try #require(FileManager.default.contents(atPath: pidFile)), as: UTF8.self).split(separator: "\n")[0]
        let postmaster = try #require(Int32(line))
        #expect(kill(postmaster, SIGKILL) == 0)
        #expect(FileManager.default.fileExists(atPath: pidFile), "a killed server leaves its pid file behind")

        #expect(try await cluster.start(logger: TestDatabase.logger), "the next start starts it again")
        let second = try await PostgresConnection.connect(conninfo: cluster.conninfo, statementTimeoutMilliseconds: 5_000, threadPool: .singleton)
        defer { second.close() }
        let kept = try await second.query("SELECT value FROM kept")
        #expect(try kept[0].decode(String.self, at: 0) == "committed before the crash")
    }

    @Test("a pid file naming a live process that is not this cluster's server is stale")
    func aReusedPIDIsNotARunningServer() async throws {
        let directory = NSTemporaryDirectory() + "techbank-embedded-\(UUID().uuidString.prefix(8))"
        var options = EmbeddedPostgres.Options(directory: directory)
        options.port = 5435
        let cluster = try EmbeddedPostgres(options: options)
        defer { try? cluster.destroy() }
        #expect(try await cluster.start(logger: TestDatabase.logger))
        try await cluster.stop(logger: TestDatabase.logger)
        // As after a power cut, when the old pid now belongs to another process (here: this test).
        let pidFile = directory + "/data/postmaster.pid"
        #expect(FileManager.default.createFile(atPath: pidFile, contents: Data("\(getpid())\n\(directory)/data\n".utf8)))
        #expect(try await cluster.start(logger: TestDatabase.logger))
        let connection = try await PostgresConnection.connect(conninfo: cluster.conninfo, statementTimeoutMilliseconds: 5_000, threadPool: .singleton)
        connection.close()
    }

    @Test("a server killed a moment ago, still alive for a while, is waited out and then started anew, not taken for running")
    func aDyingServerIsNotReused() async throws {
        let directory = NSTemporaryDirectory() + "techbank-embedded-\(UUID().uuidString.prefix(8))"
        var options = EmbeddedPostgres.Options(directory: directory)
        options.port = 5437
        let cluster = try EmbeddedPostgres(options: options)
        defer { try? cluster.destroy() }
        #expect(try await cluster.start(logger: TestDatabase.logger))
        try await cluster.stop(logger: TestDatabase.logger)
        // As right after a SIGKILL: postmaster.pid names a `postgres` process working in the data
        // directory that still lives for a moment, but no longer answers.
        // A link, not a copy: a copy is written through a descriptor that a process forked at that
        // moment by a concurrent test may still hold, and running it then fails with ETXTBSY.
        let dying = directory + "/postgres"
        try FileManager.default.createSymbolicLink(atPath: dying, withDestinationPath: "/bin/sleep")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: dying)
        process.arguments = ["2"]
        process.currentDirectoryURL = URL(fileURLWithPath: directory + "/data")
        try process.run()
        #expect(FileManager.default.createFile(atPath: directory + "/data/postmaster.pid",
                                               contents: Data("\(process.processIdentifier)\n\(directory)/data\n".utf8)))
        #expect(try await cluster.start(logger: TestDatabase.logger), "started by this call once the old one was gone")
        #expect(!process.isRunning)
        let connection = try await PostgresConnection.connect(conninfo: cluster.conninfo, statementTimeoutMilliseconds: 5_000, threadPool: .singleton)
        connection.close()
    }

    @Test("a socket lock file naming a process that is not this cluster's server does not block the next start")
    func aStaleSocketLockIsRemoved() async throws {
        let directory = NSTemporaryDirectory() + "techbank-embedded-\(UUID().uuidString.prefix(8))"
        var options = EmbeddedPostgres.Options(directory: directory)
        options.port = 5436
        let cluster = try EmbeddedPostgres(options: options)
        defer { try? cluster.destroy() }
        #expect(try await cluster.start(logger: TestDatabase.logger))
        try await cluster.stop(logger: TestDatabase.logger)
        // As after a SIGKILL, when the old server's pid is a zombie or now names another process
        // (here: this test), which PostgreSQL's own check takes for a running server.
        let lockFile = directory + "/.s.PGSQL.5436.lock"
        #expect(FileManager.default.createFile(atPath: lockFile, contents: Data("\(getpid())\n\(directory)/data\n".utf8)))
        #expect(try await cluster.start(logger: TestDatabase.logger))
        let connection = try await PostgresConnection.connect(conninfo: cluster.conninfo, statementTimeoutMilliseconds: 5_000, threadPool: .singleton)
        connection.close()
    }
}
