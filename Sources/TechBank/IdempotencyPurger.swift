import Logging
import ServiceLifecycle

/// Deletes old `Idempotency-Key` records once an hour until graceful shutdown.
public struct IdempotencyPurger: Service {
    let store: IdempotencyStore
    let interval: Duration
    let logger: Logger

    public init(store: IdempotencyStore, interval: Duration = .seconds(3_600), logger: Logger) {
        self.store = store
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    let deleted = try await store.purge()
                    if deleted > 0 { logger.info("purged idempotency records", metadata: ["count": "\(deleted)"]) }
                } catch {
                    logger.error("idempotency purge failed", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: interval)
            }
        }
    }
}
