// Runs on a Mac (swift test) after build-xcframework.sh; Linux CI checks the generated
// surface instead (check-surface.sh).
import XCTest
@testable import Tether

final class TetherTests: XCTestCase {
    func testErr1CodesAreTheSpecOnes() {
        XCTAssertTrue(errorCodes().contains("invalid_channel"))
    }

    /// `errorCodes()` is the engine's list (tether::ErrorCode::ALL) through the FFI.
    func testErr1TheLayerNamesExactlyTheEngineErrorCodes() {
        XCTAssertEqual(ErrorCode.allCases.map(\.rawValue), errorCodes())
        XCTAssertEqual(ErrorCode(rawValue: "send_timeout"), .sendTimeout)
    }

    /// `causeNames()` is the engine's list (tether::Cause::KINDS); Linux checks every generated
    /// case against it in check-surface.sh.
    func testState2TheNewCausesKeepTheirSpecNames() {
        XCTAssertTrue(causeNames().contains("ready"))
        XCTAssertEqual(Cause.ready.stableName(), "ready")
        XCTAssertEqual(Cause.sendTimeout.stableName(), "send_timeout")
    }

    func testErr1ABadEndpointThrowsBadRequest() {
        XCTAssertThrowsError(try TetherClient(endpoint: "ftp://example.com/x")) { error in
            XCTAssertEqual((error as? TetherError)?.code, "bad_request")
        }
    }

    func testWire8AnInvalidChannelIsRefused() async throws {
        let client = try TetherClient(endpoint: "http://127.0.0.1:9/tether")
        do {
            try await client.subscribe("not a channel!")
            XCTFail("subscribe should throw")
        } catch let error as TetherError {
            XCTAssertEqual(error.code, "invalid_channel")
            XCTAssertEqual(error.errorCode, .invalidChannel)
        }
        XCTAssertEqual(client.state, .idle)
    }

    func testConn3CloseEndsInClosedAndTheStreamSeesIt() async throws {
        let client = try TetherClient(endpoint: "http://127.0.0.1:9/tether",
                                      policy: PolicyOverrides(floorMs: 5, baseMs: 20, capMs: 100))
        let events = client.events()
        try await client.connect()
        try await client.close()
        var last: State?
        for await e in events {
            if case let .stateChanged(_, to, _) = e.event { last = to; if to == .closed { break } }
        }
        XCTAssertEqual(last, .closed)
    }
}
