import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A program started with `posix_spawn` (`argv[0]` is a path: no `PATH` search), its output (stdout and stderr) going to a file, so that
/// no pipe can fill up or be inherited by the PostgreSQL server it may start.
public struct ChildProcess: Sendable {
    public let pid: pid_t
    public let outputPath: String

    /// Starts `argv` with this process's environment plus `environment`.
    public static func launch(_ argv: [String], environment: [String: String] = [:], outputPath: String) throws -> ChildProcess {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var merged = ProcessInfo.processInfo.environment
        merged.merge(environment) { _, new in new }
        let arguments = argv.map { strdup($0) } + [nil]
        let variables = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (arguments + variables).forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, argv[0], &actions, nil, arguments, variables)
        guard spawned == 0 else { throw HarnessError("cannot run \(argv[0]): \(String(cString: strerror(spawned)))") }
        return ChildProcess(pid: pid, outputPath: outputPath)
    }

    /// Runs `argv` to completion; returns its exit code (128 + signal if killed) and output.
    public static func run(_ argv: [String], environment: [String: String] = [:]) async throws -> (exitCode: Int32, output: String) {
        let outputPath = NSTemporaryDirectory() + "techbank-ops-\(UUID().uuidString).out"
        defer { removeIfPresent(outputPath) }
        let child = try launch(argv, environment: environment, outputPath: outputPath)
        let exitCode = try await child.waitForExit(limitSeconds: 300)
        return (exitCode, child.output)
    }

    public var output: String { String(decoding: FileManager.default.contents(atPath: outputPath) ?? Data(), as: UTF8.self) }

    /// The exit code if the program has ended (and is now reaped), nil while it runs.
    public func exitCodeIfEnded() throws -> Int32? {
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        if result == 0 { return nil }
        guard result == pid else { throw HarnessError("waitpid(\(pid)): \(String(cString: strerror(errno)))") }
        return status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    /// Waits for the program to end, polling; kills it if it runs past `limitSeconds`.
    public func waitForExit(limitSeconds: Int) async throws -> Int32 {
        for _ in 0..<(limitSeconds * 20) {
            if let code = try exitCodeIfEnded() { return code }
            try await Task.sleep(for: .milliseconds(50))
        }
        killAndReap()
        throw HarnessError("\(pid) still ran after \(limitSeconds) s and was killed; output:\n\(output.suffix(2_000))")
    }

    /// SIGKILL, then reap, so no zombie is left behind.
    public func killAndReap() {
        kill(pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
    }
}

/// A failure of the test harness itself (a process that would not start, a server never ready).
public struct HarnessError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

public func removeIfPresent(_ path: String) {
    guard FileManager.default.fileExists(atPath: path) else { return }
    do { try FileManager.default.removeItem(atPath: path) } catch { print("warning: could not remove \(path): \(error)") }
}
