import Logging
import ServiceLifecycle

/// The ledger's background work until graceful shutdown: releases expired holds, exactly once
/// each (the database decides which sweeper call owns a hold), and numbers newly committed
/// journal entries into the audit log's Merkle tree.
public struct LedgerSweeper: Service {
    let ledger: Ledger
    let interval: Duration
    /// The most holds one pass releases; a full pass runs again at once.
    let batchLimit: Int
    let logger: Logger

    public init(ledger: Ledger, interval: Duration = .seconds(1), batchLimit: Int = 1_000, logger: Logger) {
        self.ledger = ledger
        self.interval = interval
        self.batchLimit = batchLimit
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    let released = try await ledger.expirePending(limit: batchLimit)
                    if released > 0 { logger.info("released expired holds", metadata: ["count": "\(released)"]) }
                    try await AuditLog(pool: ledger.pool).sequence()
                    if released > 0 && released == batchLimit { continue }
                } catch is CancellationError {
                    return
                } catch {
                    logger.error("ledger sweep failed", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: interval)
            }
        }
    }
}
