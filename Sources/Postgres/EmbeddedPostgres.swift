import Foundation
import Logging
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// A private PostgreSQL cluster under one directory, run with the server binaries already installed
/// on the machine. It listens on a Unix socket in that directory (and on TCP only when asked),
/// accepts only its owner on that socket, and keeps its data between runs.
///
/// PostgreSQL refuses to run as root; when this process is root, the cluster runs as the
/// unprivileged `postgres` system user and the directory is handed to that user.
public struct EmbeddedPostgres: Sendable {
    public struct Options: Sendable {
        /// The directory holding the cluster (`data/`), its socket and its log.
        public var directory: String
        public var port: Int = 5432
        /// An address to listen on over TCP as well, e.g. `127.0.0.1`. Nil: Unix socket only.
        public var tcpHost: String?
        /// The database the application uses; created on first start.
        public var database: String = "techbank"
        /// Extra server settings (`-c name=value`), e.g. `fsync=off` for throwaway test clusters.
        public var settings: [String: String] = [:]

        public init(directory: String) { self.directory = directory }
    }

    public let options: Options
    /// The directory holding `initdb`, `pg_ctl` and `postgres`.
    public let binDirectory: String
    private let runAsUser: String?

    /// Finds the server binaries. Throws an error that names the package to install if there are none.
    public init(options: Options) throws {
        var options = options
        options.directory = URL(fileURLWithPath: options.directory).standardizedFileURL.path
        guard options.database.range(of: "^[a-z_][a-z0-9_]{0,62}$", options: .regularExpression) != nil else {
            throw EmbeddedPostgresError("database name must match [a-z_][a-z0-9_]*: \(options.database)")
        }
        self.options = options
        self.binDirectory = try Self.findBinaries()
        if geteuid() == 0 {
            guard getpwnam("postgres") != nil else {
                throw EmbeddedPostgresError(
                    "PostgreSQL refuses to run as root and there is no 'postgres' user to run it as. "
                        + "Run as an ordinary user, or install PostgreSQL's server package (apt-get install postgresql), which creates that user.")
            }
            self.runAsUser = "postgres"
        } else {
            self.runAsUser = nil
        }
    }

    /// The libpq connection string for the application database.
    public var conninfo: String { conninfo(database: options.database) }

    /// The libpq connection string for `database` on this cluster.
    public func conninfo(database: String) -> String {
        "host=\(quote(options.directory)) port=\(options.port) user=postgres dbname=\(quote(database))"
    }

    /// Creates the cluster if the directory has none, starts it unless it is already running, and
    /// creates the application database if missing. Blocking work runs off the cooperative pool.
    /// - Returns: whether this call started the cluster (false: another process runs it, and
    ///   stopping it is that process's business).
    @discardableResult
    public func start(logger: Logger) async throws -> Bool {
        let started = try await NIOThreadPool.singleton.runIfActive { try self.startBlocking(logger: logger) }
        let admin = try await PostgresConnection.connect(
            conninfo: conninfo(database: "postgres"), statementTimeoutMilliseconds: 60_000, threadPool: .singleton)
        defer { admin.close() }
        let exists = try await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [options.database])
        if exists.isEmpty {
            // The name was validated in init; identifiers cannot be bound as parameters.
            try await admin.query("CREATE DATABASE \(options.database)")
            logger.info("created database", metadata: ["database": "\(options.database)"])
        }
        return started
    }

    /// Stops the cluster (fast shutdown: open sessions are ended, data is flushed).
    public func stop(logger: Logger) async throws {
        try await NIOThreadPool.singleton.runIfActive {
            _ = try self.run(self.binary("pg_ctl"), ["-D", self.dataDirectory, "-m", "fast", "-w", "-t", "60", "stop"])
        }
        logger.info("embedded PostgreSQL stopped", metadata: ["directory": "\(options.directory)"])
    }

    /// Stops the cluster and deletes its directory. For throwaway clusters (tests).
    public func destroy() throws {
        _ = try? run(binary("pg_ctl"), ["-D", dataDirectory, "-m", "immediate", "-w", "-t", "60", "stop"])
        try FileManager.default.removeItem(atPath: options.directory)
    }

    // MARK: Internals

    var dataDirectory: String { options.directory + "/data" }
    private var logFile: String { options.directory + "/postgres.log" }
    func binary(_ name: String) -> String { binDirectory + "/" + name }

    private func startBlocking(logger: Logger) throws -> Bool {
        let fileManager = FileManager.default
        try fileManager.createDirectory(atPath: options.directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        if let runAsUser {
            _ = try run("/bin/chown", ["-R", "\(runAsUser):", options.directory], asServerUser: false)
        }
        if !fileManager.fileExists(atPath: dataDirectory + "/PG_VERSION") {
            logger.info("creating embedded PostgreSQL cluster", metadata: ["directory": "\(options.directory)"])
            _ = try run(binary("initdb"), ["-D", dataDirectory, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8"])
        }
        // A server killed a moment ago can still look alive for a while: it must also answer.
        if try postmasterIsRunning(logger: logger), try waitUntilAcceptingConnections(logger: logger) {
            logger.info("embedded PostgreSQL already running; reusing it", metadata: ["directory": "\(options.directory)"])
            return false
        }
        try removeStaleSocketLock(logger: logger)
        var serverOptions = [
            "-c listen_addresses=\(quote(options.tcpHost ?? ""))",
            "-c unix_socket_directories=\(quote(options.directory))",
            "-c unix_socket_permissions=0700",
            "-p \(options.port)",
        ]
        for (name, value) in options.settings.sorted(by: { $0.key < $1.key }) {
            serverOptions.append("-c \(name)=\(quote(value))")
        }
        // After a crash the old server's children may hold its shared memory for a moment
        // ("pre-existing shared memory block is still in use"): they exit once they notice.
        for attempt in 1... {
            do {
                try run(binary("pg_ctl"), ["-D", dataDirectory, "-l", logFile, "-w", "-t", "60", "-o", serverOptions.joined(separator: " "), "start"])
                break
            } catch let error as EmbeddedPostgresError where attempt < Self.startAttempts {
                // A server that outlived pg_ctl's wait (a crash recovery on a busy disk) is still
                // coming up: wait for it instead of starting a second one over it.
                if try postmasterIsRunning(logger: logger) { break }
                logger.warning("embedded PostgreSQL did not start; retrying", metadata: ["attempt": "\(attempt)", "error": "\(error)"])
                sleep(1)
            }
        }
        guard try waitUntilAcceptingConnections(logger: logger) else { throw EmbeddedPostgresError("the embedded PostgreSQL exited while starting; see \(logFile)") }
        logger.info("embedded PostgreSQL started", metadata: ["directory": "\(options.directory)", "port": "\(options.port)"])
        return true
    }

    /// Waits (at most 120 s) until the server accepts connections on its socket: `pg_isready`
    /// answers 0 then, 1 while it starts up or recovers, 2 while nothing answers.
    /// - Returns: true once it accepts connections; false if the server `postmaster.pid` names is
    ///   gone meanwhile (the stale file is then removed).
    private func waitUntilAcceptingConnections(logger: Logger) throws -> Bool {
        let deadline = Date().addingTimeInterval(120)
        while true {
            let arguments = ["-h", options.directory, "-p", String(options.port), "-U", "postgres", "-t", "5"]
            let (exitCode, output) = try run(binary("pg_isready"), arguments, allowedExitCodes: [0, 1, 2])
            if exitCode == 0 { return true }
            guard try postmasterIsRunning(logger: logger) else { return false }
            guard Date() < deadline else {
                throw EmbeddedPostgresError("the embedded PostgreSQL did not accept connections within 120 s (\(output)); see \(logFile)")
            }
            usleep(200_000)
        }
    }

    /// How many times `start` tries `pg_ctl start` before giving up.
    private static let startAttempts = 10

    /// Whether the server that `postmaster.pid` names is alive. A SIGKILL or a power cut leaves
    /// the file behind, and its pid may then be a zombie nobody reaps or belong to an unrelated
    /// process: `pg_ctl status` and the server's own lock-file check would take either for a
    /// running server and never start. Such a stale file is removed.
    private func postmasterIsRunning(logger: Logger) throws -> Bool {
        let pidFile = dataDirectory + "/postmaster.pid"
        guard let contents = FileManager.default.contents(atPath: pidFile) else { return false }
        let firstLine = String(decoding: contents, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
        if let pid = Int32(firstLine.trimmingCharacters(in: .whitespaces)), pid > 0, isLivePostmaster(pid) { return true }
        logger.warning("removing a stale postmaster.pid (its server is gone)", metadata: ["pid": "\(firstLine)", "directory": "\(options.directory)"])
        try FileManager.default.removeItem(atPath: pidFile)
        return false
    }

    /// The socket's lock file (in this cluster's private socket directory) names the server that
    /// made it; after a SIGKILL that pid can be a zombie not yet reaped or another process, which
    /// PostgreSQL takes for a live server ("lock file already exists"). With no server running
    /// here, such a file is removed.
    private func removeStaleSocketLock(logger: Logger) throws {
        let lockFile = options.directory + "/.s.PGSQL.\(options.port).lock"
        guard let contents = FileManager.default.contents(atPath: lockFile) else { return }
        let firstLine = String(decoding: contents, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
        if let pid = Int32(firstLine.trimmingCharacters(in: .whitespaces)), pid > 0, isLivePostmaster(pid) { return }
        logger.warning("removing a stale socket lock file (its server is gone)", metadata: ["pid": "\(firstLine)", "file": "\(lockFile)"])
        try FileManager.default.removeItem(atPath: lockFile)
    }

    /// Whether `pid` is a running (not zombie) `postgres` process working in this cluster's data
    /// directory (a postmaster's working directory is its data directory).
    private func isLivePostmaster(_ pid: Int32) -> Bool {
        guard let stat = FileManager.default.contents(atPath: "/proc/\(pid)/stat").map({ String(decoding: $0, as: UTF8.self) }),
              let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")") else { return false }
        let command = stat[stat.index(after: open)..<close]
        let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first
        guard command == "postgres", let state, state != "Z", state != "X" else { return false }
        guard let directory = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/cwd") else {
            return true  // not ours to inspect (another user's process): trust the lock file
        }
        let ours = URL(fileURLWithPath: dataDirectory).resolvingSymlinksInPath().path
        return URL(fileURLWithPath: directory).resolvingSymlinksInPath().path == ours
    }

    static func findBinaries() throws -> String {
        let fileManager = FileManager.default
        var candidates: [String] = []
        if let bindir = try? spawnAndWait(["/usr/bin/env", "pg_config", "--bindir"]), bindir.exitCode == 0 {
            candidates.append(bindir.output.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        let versions = (try? fileManager.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        for version in versions.sorted(by: { (Int($0) ?? 0) > (Int($1) ?? 0) }) {
            candidates.append("/usr/lib/postgresql/\(version)/bin")
        }
        for directory in candidates
        where fileManager.isExecutableFile(atPath: directory + "/initdb") && fileManager.isExecutableFile(atPath: directory + "/pg_ctl") {
            return directory
        }
        throw EmbeddedPostgresError(
            "PostgreSQL server binaries (initdb, pg_ctl) were not found in `pg_config --bindir` or /usr/lib/postgresql/*/bin. "
                + "Install them with: apt-get install postgresql   (or set DATABASE_URL to use an existing server)")
    }

    /// Runs a server binary, as the server user when this process is root.
    @discardableResult
    private func run(
        _ executable: String, _ arguments: [String], asServerUser: Bool = true, allowedExitCodes: Set<Int32> = [0]
    ) throws -> (exitCode: Int32, output: String) {
        var argv = [executable] + arguments
        if asServerUser, let runAsUser { argv = ["/usr/sbin/runuser", "-u", runAsUser, "--"] + argv }
        let (exitCode, text) = try spawnAndWait(argv)
        guard allowedExitCodes.contains(exitCode) else {
            let tail = text.split(separator: "\n").suffix(5).joined(separator: "\n")
            throw EmbeddedPostgresError(
                "\((executable as NSString).lastPathComponent) failed (exit \(exitCode)); see \(logFile)\n\(tail)")
        }
        return (exitCode, text)
    }

    private func quote(_ value: String) -> String {
        "'" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
    }
}

/// Runs a program to completion with `posix_spawn` and `waitpid`, its output (stdout and stderr)
/// going to a temporary file. Not a pipe: the server that `pg_ctl start` leaves running could
/// inherit one and keep it open. Not Foundation's `Process`, whose exit detection was seen to miss
/// a child's exit on Linux and wait forever.
func spawnAndWait(_ argv: [String]) throws -> (exitCode: Int32, output: String) {
    let outputPath = NSTemporaryDirectory() + "techbank-\(UUID().uuidString).out"
    defer { try? FileManager.default.removeItem(atPath: outputPath) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    let arguments = argv.map { strdup($0) } + [nil]
    defer { arguments.forEach { free($0) } }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, argv[0], &actions, nil, arguments, environ)
    guard spawned == 0 else {
        throw EmbeddedPostgresError("cannot run \(argv[0]): \(String(cString: strerror(spawned)))")
    }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) == -1 {
        guard errno == EINTR else { throw EmbeddedPostgresError("cannot wait for \(argv[0]): \(String(cString: strerror(errno)))") }
    }
    let exited = status & 0x7f == 0
    let output = String(decoding: FileManager.default.contents(atPath: outputPath) ?? Data(), as: UTF8.self)
    return (exited ? (status >> 8) & 0xff : 128 + (status & 0x7f), output)
}

/// A failure to find, create, start or stop the embedded cluster, with a message meant for the
/// person running the command.
public struct EmbeddedPostgresError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
