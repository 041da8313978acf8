import Synchronization

/// A value read from the database at most once per `maxAge`, however many ask: concurrent askers
/// share one read, and a failed read is not kept. For figures every request or stream wants
/// (the journal's head, a standby's lag) that need not be fresher than `maxAge`.
final class Recent<Value: Sendable>: Sendable {
    let maxAge: Duration
    private let read: @Sendable () async throws -> Value
    private let state = Mutex<(value: Value?, readAt: ContinuousClock.Instant?, reading: Task<Value, any Error>?)>((nil, nil, nil))

    init(maxAge: Duration, read: @escaping @Sendable () async throws -> Value) {
        self.maxAge = maxAge
        self.read = read
    }

    private enum Step {
        case cached(Value)
        case wait(Task<Value, any Error>)
    }

    func value() async throws -> Value {
        let step: Step = state.withLock { state in
            if let readAt = state.readAt, ContinuousClock.now - readAt < maxAge, let value = state.value { return .cached(value) }
            if let reading = state.reading { return .wait(reading) }
            let read = read
            let reading = Task { try await read() }
            state.reading = reading
            return .wait(reading)
        }
        switch step {
        case .cached(let value):
            return value
        case .wait(let reading):
            let result = await reading.result
            state.withLock { state in
                guard state.reading == reading else { return }
                state.reading = nil
                if case .success(let value) = result { (state.value, state.readAt) = (value, .now) }
            }
            return try result.get()
        }
    }
}
