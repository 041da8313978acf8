// swift-tools-version:6.1
import PackageDescription

/// What the benchmarks in bench/ build on; the ledger's stands without TechBank.
let benchDependencies: [Target.Dependency] = [
    "Ledger",
    "Postgres",
    .product(name: "ArgumentParser", package: "swift-argument-parser"),
    .product(name: "Logging", package: "swift-log"),
]

let package = Package(
    name: "techbank",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "techbank", targets: ["TechBankCLI"]),
        .library(name: "Postgres", targets: ["Postgres"]),
        .library(name: "Ledger", targets: ["Ledger"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.5.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.27.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CPostgres",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        .target(
            name: "Postgres",
            dependencies: [
                "CPostgres",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "Ledger",
            dependencies: [
                "Postgres",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.copy("Migrations")]
        ),
        .target(
            name: "TechBank",
            dependencies: [
                "Ledger",
                "Postgres",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.copy("Migrations")]
        ),
        .target(
            name: "Server",
            dependencies: [
                "TechBank",
                "Ledger",
                "Postgres",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            resources: [.copy("openapi.json"), .copy("Console")]
        ),
        .executableTarget(
            name: "TechBankCLI",
            dependencies: [
                "Server",
                "Ledger",
                "TechBank",
                "Postgres",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(name: "LedgerBench", dependencies: benchDependencies, path: "bench/LedgerBench"),
        .executableTarget(name: "ReportBench", dependencies: benchDependencies + ["TechBank"], path: "bench/ReportBench"),
        .target(
            name: "TestSupport",
            dependencies: ["Postgres"],
            path: "Tests/TestSupport"
        ),
        .target(
            name: "TechBankTestSupport",
            dependencies: ["TechBank", "TestSupport"],
            path: "Tests/TechBankTestSupport"
        ),
        .testTarget(name: "PostgresTests", dependencies: ["Postgres", "TestSupport"]),
        .testTarget(name: "LedgerTests", dependencies: ["Ledger", "Postgres", "TestSupport"]),
        .testTarget(
            name: "TechBankTests",
            dependencies: ["TechBank", "Ledger", "Postgres", "TestSupport", "TechBankTestSupport", .product(name: "Crypto", package: "swift-crypto")]
        ),
        // Runs the real `techbank` executable (built by `swift test` with every product).
        .testTarget(name: "OperationsTests", dependencies: ["Postgres", "TestSupport"]),
        .testTarget(
            name: "ServerTests",
            dependencies: [
                "Server",
                "TestSupport",
                "TechBankTestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]
        ),
    ]
)
