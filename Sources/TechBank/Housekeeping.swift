import Foundation
import Logging
import Postgres
import ServiceLifecycle

/// Periodic upkeep until graceful shutdown: deletes old `Idempotency-Key` records and finished
/// webhook deliveries, and expires demands whose deadline has passed.
public struct Housekeeping: Service {
    let store: IdempotencyStore
    let demands: Demands
    let interval: Duration
    let logger: Logger

    public init(pool: PostgresPool, interval: Duration = .seconds(300), logger: Logger) {
        self.store = IdempotencyStore(pool: pool)
        self.demands = Demands(pool: pool)
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await runOnce()
                try? await Task.sleep(for: interval)
            }
        }
    }

    /// One round of every upkeep task; a failing task is logged and tried again next round.
    public func runOnce(today: PostgresDate = .today()) async {
        do {
            let deleted = try await store.purge()
            if deleted > 0 { logger.info("purged idempotency records", metadata: ["count": "\(deleted)"]) }
        } catch {
            logger.error("idempotency purge failed", metadata: ["error": "\(error)"])
        }
        do {
            let deleted = try await Webhooks.purgeDeliveries(pool: store.pool)
            if deleted > 0 { logger.info("purged webhook deliveries", metadata: ["count": "\(deleted)"]) }
        } catch {
            logger.error("webhook delivery purge failed", metadata: ["error": "\(error)"])
        }
        do {
            let expired = try await demands.expire(before: today)
            if expired > 0 { logger.info("expired demands", metadata: ["count": "\(expired)"]) }
        } catch {
            logger.error("demand expiry failed", metadata: ["error": "\(error)"])
        }
    }
}
