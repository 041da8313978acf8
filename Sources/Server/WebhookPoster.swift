import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import TechBank
#if canImport(Glibc)
import Glibc
#endif

/// Posts one webhook delivery. The host is resolved here and every address it resolves to is
/// checked (`NetworkAddress.isPublic`) before connecting to one of them, on every delivery, so a
/// name that later resolves elsewhere (DNS rebinding) reaches no private address. Redirects are
/// not followed: a 3xx is a failed attempt like any other non-2xx.
struct WebhookPoster: Sendable {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// `http` and private addresses allowed (development and tests).
    let allowPrivateNetworks: Bool
    /// For the whole attempt: resolving, connecting, sending and the answer's head.
    var timeout: Duration = .seconds(15)

    private static let tls: Result<NIOSSLContext, any Error> = Result { try NIOSSLContext(configuration: .makeClientConfiguration()) }

    /// Sends `body` to `url` with `headers`; returns the answer's status code.
    func post(_ url: URL, headers: [(String, String)], body: ByteBuffer) async throws -> Int {
        guard let host = url.host, let scheme = url.scheme?.lowercased(), scheme == "https" || (scheme == "http" && allowPrivateNetworks) else {
            throw Failure(description: "the URL is not one a webhook may use")
        }
        let port = url.port ?? (scheme == "https" ? 443 : 80)
        return try await withThrowingTaskGroup(of: Int.self) { group in
            group.addTask { try await exchange(host: host, port: port, tls: scheme == "https", url: url, headers: headers, body: body) }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw Failure(description: "no answer within \(timeout.components.seconds) s")
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }

    private func exchange(host: String, port: Int, tls: Bool, url: URL, headers: [(String, String)], body: ByteBuffer) async throws -> Int {
        let address = try await resolve(host, port: port)
        // Every way out completes the promise: NIO treats one left pending as a leak.
        let answer = MultiThreadedEventLoopGroup.singleton.next().makePromise(of: Int.self)
        do {
            return try await send(to: address, host: host, tls: tls, url: url, headers: headers, body: body, answer: answer)
        } catch {
            answer.fail(error)
            throw error
        }
    }

    private func send(to address: SocketAddress, host: String, tls: Bool, url: URL, headers: [(String, String)], body: ByteBuffer,
                      answer: EventLoopPromise<Int>) async throws -> Int {
        let sslContext = tls ? try Self.tls.get() : nil
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let sslContext {
                        let name = NetworkAddress(literal: host) == nil ? host : nil
                        try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: sslContext, serverHostname: name))
                    }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(StatusHandler(answer: answer))
                }
            }
            .connect(to: address).get()
        defer { channel.close(promise: nil) }
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: Self.target(of: url))
        head.headers.add(name: "Host", value: url.port.map { "\(Self.hostHeader(host)):\($0)" } ?? Self.hostHeader(host))
        head.headers.add(name: "Content-Type", value: "application/json")
        head.headers.add(name: "Content-Length", value: String(body.readableBytes))
        head.headers.add(name: "User-Agent", value: "TechBank-Webhooks/1")
        head.headers.add(name: "Connection", value: "close")
        for (name, value) in headers { head.headers.add(name: name, value: value) }
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        channel.write(HTTPClientRequestPart.body(.byteBuffer(body)), promise: nil)
        try await channel.writeAndFlush(HTTPClientRequestPart.end(nil)).get()
        return try await withTaskCancellationHandler {
            try await answer.futureResult.get()
        } onCancel: {
            answer.fail(Failure(description: "cancelled"))
        }
    }

    /// The first address `host` resolves to that a webhook may reach.
    private func resolve(_ host: String, port: Int) async throws -> SocketAddress {
        let candidates = try await NIOThreadPool.singleton.runIfActive { try Self.lookUp(host, port: port) }
        guard let allowed = candidates.first(where: { allowPrivateNetworks || $0.address.isPublic }) else {
            throw Failure(description: candidates.isEmpty ? "the host does not resolve" : "the host resolves only to loopback, private, link-local or multicast addresses")
        }
        return allowed.socket
    }

    private static func lookUp(_ host: String, port: Int) throws -> [(socket: SocketAddress, address: NetworkAddress)] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let name = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        guard getaddrinfo(name, String(port), &hints, &list) == 0, let first = list else { return [] }
        defer { freeaddrinfo(first) }
        var found: [(SocketAddress, NetworkAddress)] = []
        var next: UnsafeMutablePointer<addrinfo>? = first
        while let info = next {
            defer { next = info.pointee.ai_next }
            guard let pointer = info.pointee.ai_addr else { continue }
            switch Int32(pointer.pointee.sa_family) {
            case AF_INET:
                let raw = pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee }
                let bytes = withUnsafeBytes(of: raw.sin_addr) { Array($0) }
                if let address = NetworkAddress(bytes: bytes) { found.append((SocketAddress(raw, host: name), address)) }
            case AF_INET6:
                let raw = pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee }
                let bytes = withUnsafeBytes(of: raw.sin6_addr) { Array($0) }
                if let address = NetworkAddress(bytes: bytes) { found.append((SocketAddress(raw, host: name), address)) }
            default:
                continue
            }
        }
        return found
    }

    private static func target(of url: URL) -> String {
        let path = url.path.isEmpty ? "/" : url.path
        return url.query.map { "\(path)?\($0)" } ?? path
    }

    private static func hostHeader(_ host: String) -> String {
        host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
    }
}

/// Completes `answer` with the status code of the response's head; the body is not read.
private final class StatusHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPClientResponsePart
    let answer: EventLoopPromise<Int>

    init(answer: EventLoopPromise<Int>) { self.answer = answer }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = unwrapInboundIn(data) {
            answer.succeed(Int(head.status.code))
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        answer.fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        answer.fail(WebhookPoster.Failure(description: "the connection closed without an answer"))
    }
}
