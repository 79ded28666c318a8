import BenchSupport
import Foundation
import Glibc

// Host B lives in its own process: a plugin keeps one config per process,
// and host B's config says host_id 2 and its daemon is another one. The
// parent sends one command per line and gets back the time the operation
// took over there, so the pipe's cost is never counted.
//   acquire IMPL COUNT STATE|-    ->  ok MICROS
//   release IMPL COUNT            ->  ok MICROS
//   anything failed               ->  err MESSAGE

func hostBMain(_ args: [String]) -> Never {
    guard args.count == 2 else { fail("--host-b CONFIG LEASE_DIR") }
    let host: BenchHost
    do {
        host = try BenchHost(
            config: args[0], leaseDir: args[1], binDir: binDir,
            libvirtPluginDir: libvirtPluginDir)
    } catch { fail("host B: \(error)") }
    reply("ready")
    while let line = readLine() {
        let words = line.split(separator: " ", maxSplits: 3).map(String.init)
        guard words.count >= 3, let count = Int(words[2]) else { break }
        do {
            switch words[0] {
            case "acquire":
                let state = words.count == 4 && words[3] != "-" ? words[3] : nil
                reply("ok \(try host.acquire(words[1], disks: disks(count), state: state))")
            case "release":
                reply("ok \(try host.release(words[1], disks: disks(count)).micros)")
            default:
                reply("err unknown command \(words[0])")
            }
        } catch {
            reply("err \(error)")
        }
    }
    host.stop()
    exit(0)
}

private func reply(_ line: String) {
    FileHandle.standardOutput.write(Data((line.replacingOccurrences(of: "\n", with: " ") + "\n").utf8))
}

/// The parent's side of host B.
final class HostBProxy {
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private var buffer: [UInt8] = []

    init(config: String, leaseDir: String, environment: [String: String]) throws {
        process.executableURL = URL(fileURLWithPath: selfPath)
        process.arguments = ["--host-b", config, leaseDir]
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        let first = try readLine()
        guard first == "ready" else { throw BenchFailure("host B did not start: \(first)") }
    }

    func acquire(_ impl: String, count: Int, state: String?) throws -> Double {
        try call("acquire \(impl) \(count) \(state ?? "-")")
    }

    func release(_ impl: String, count: Int) throws {
        _ = try call("release \(impl) \(count)")
    }

    func stop() {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }

    private func call(_ command: String) throws -> Double {
        input.fileHandleForWriting.write(Data((command + "\n").utf8))
        let answer = try readLine()
        guard answer.hasPrefix("ok "), let micros = Double(answer.dropFirst(3)) else {
            throw BenchFailure("host B: \(command): \(answer)")
        }
        return micros
    }

    private func readLine() throws -> String {
        let fd = output.fileHandleForReading.fileDescriptor
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[..<newline], as: UTF8.self)
                buffer.removeSubrange(...newline)
                return line
            }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = read(fd, &chunk, chunk.count)
            guard n > 0 else { throw BenchFailure("host B exited (see its errors above)") }
            buffer += chunk[..<n]
        }
    }
}
