import Foundation
import Testing

// Shared helpers of the OpenAPI tests: the document's component schemas read as dictionaries,
// `python3` runs, and the check that real responses validate against the documented schemas.

enum OpenAPISchemas {
    /// The component schemas of `Sources/Server/openapi.json`, by name.
    static func schemas() throws -> [String: [String: Any]] {
        let components = try #require(try OpenAPITests.document()["components"] as? [String: Any])
        let schemas = try #require(components["schemas"] as? [String: Any])
        return schemas.compactMapValues { $0 as? [String: Any] }
    }

    /// The names of a schema's `properties`.
    static func properties(_ schema: [String: Any]?) -> Set<String> {
        Set((schema?["properties"] as? [String: Any])?.keys.map { $0 } ?? [])
    }

    /// The string values of a schema's `enum`.
    static func enumeration(_ schema: Any?) -> Set<String> {
        Set(((schema as? [String: Any])?["enum"] as? [String]) ?? [])
    }
}

/// How a `python3` run ended, and what it printed (standard output and error together).
struct PythonRun {
    var reason: Process.TerminationReason
    var status: Int32
    var output: String
}

/// Runs `/usr/bin/env python3 arguments…` with no input and waits for it.
func runPython(_ arguments: [String]) throws -> PythonRun {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3"] + arguments
    let output = Pipe()
    process.standardOutput = output
    process.standardError = output
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return PythonRun(reason: process.terminationReason, status: process.terminationStatus, output: text)
}

/// Validates every sample with Python's `jsonschema` (which `openapi-spec-validator` brings along)
/// against `openapi.json`, and records a failure listing every error.
///
/// - `schema` is a component schema's name (validated against `#/components/schemas/<name>`), or a
///   JSON pointer into the document starting with `#` (such as a route's 200 schema), used as it stands.
/// - `body` is JSON; a top-level string (a signed note or CSV, encoded with `.fragmentsAllowed`) is allowed.
/// - The component schemas named in `closing` are made closed (`additionalProperties: false`) first,
///   so an undocumented property anywhere in a response fails, as a missing required one does.
///   A name that is not a component schema fails the check.
func expectResponsesMatchSchemas(
    _ samples: [(label: String, schema: String, body: Data)], closing: [String] = [], sourceLocation: SourceLocation = #_sourceLocation
) throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("openapi-samples-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let sampleObjects: [[String: Any]] = try samples.map {
        ["label": $0.label, "schema": $0.schema, "instance": try JSONSerialization.jsonObject(with: $0.body, options: [.fragmentsAllowed])]
    }
    let samplesFile = directory.appendingPathComponent("samples.json")
    try JSONSerialization.data(withJSONObject: sampleObjects).write(to: samplesFile)
    let closingList = String(decoding: try JSONSerialization.data(withJSONObject: closing), as: UTF8.self)
    let run = try runPython(["-c", responseValidationScript, OpenAPITests.documentURL.path, samplesFile.path, closingList])
    #expect(run.reason == .exit && run.status == 0, "responses do not match openapi.json:\n\(run.output)", sourceLocation: sourceLocation)
}

/// `python3 -c script openapi.json samples.json '["Closed", …]'`: exits 1 and prints one line per
/// validation error if any sample does not validate.
private let responseValidationScript = """
    import json, sys
    from jsonschema import Draft202012Validator
    doc = json.load(open(sys.argv[1]))
    for name in json.loads(sys.argv[3]):
        doc["components"]["schemas"][name]["additionalProperties"] = False
    problems = []
    for sample in json.load(open(sys.argv[2])):
        root = dict(doc)
        schema = sample["schema"]
        root["$ref"] = schema if schema.startswith("#") else "#/components/schemas/" + schema
        validator = Draft202012Validator(root, format_checker=Draft202012Validator.FORMAT_CHECKER)
        for error in validator.iter_errors(sample["instance"]):
            problems.append("%s (%s) at /%s: %s" % (sample["label"], schema, "/".join(map(str, error.absolute_path)), error.message[:300]))
    print("\\n".join(problems))
    sys.exit(1 if problems else 0)
    """
