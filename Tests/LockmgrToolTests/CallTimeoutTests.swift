import Foundation
import Harness
import Testing

/// A plugin call that never returns (the probe plugin with PROBE_HANG)
/// must not hang lockmgr: after the configured call timeout it says which
/// plugin call was stuck and where the limit came from, and exits 69.
@Suite struct CallTimeoutTests {
    let uuid = "0c6f4f1e-3b52-4a2e-9d55-7a1c7f0e9b21"
    /// Time allowed beyond the limit for lockmgr to start, load the
    /// plugin and exit: generous, the point is "gives up", not "how fast".
    let slack: TimeInterval = 8

    struct Run {
        var result: CommandResult
        var seconds: TimeInterval
    }

    func lockmgr(
        _ args: [String], hang: String?, environment: [String: String] = [:],
        configDir: String = TempDir.make("timeout"), timeout: TimeInterval = 60
    ) throws -> Run {
        var env = environment
        if let hang { env["PROBE_HANG"] = hang }
        let start = Date()
        let result = Command.run(
            [
                BuildProducts.lockmgr, args[0], "--plugin-dir", try ProbePlugin.pluginDir,
                "--config-dir", configDir, "--plugin", "probe",
            ] + args.dropFirst(),
            environment: env, timeout: timeout)
        return Run(result: result, seconds: Date().timeIntervalSince(start))
    }

    var object: [String] { ["--uuid", uuid, "--name", "vm1", "--disk", "/d"] }

    @Test(arguments: [
        ("init", "drvInit", ["info"]),
        ("new", "drvNew", ["acquire"]),
        ("add", "drvAddResource", ["acquire"]),
        ("acquire", "drvAcquire", ["acquire"]),
        ("release", "drvRelease", ["release", "--pid", "1"]),
        ("inquire", "drvInquire", ["inquire", "--pid", "1"]),
    ])
    func aStuckCallEndsLockmgrAfterTheLimit(_ hang: String, _ operation: String, _ command: [String]) throws {
        let args = command + ["--timeout", "1"] + (command[0] == "info" ? [] : object)
        let run = try lockmgr(args, hang: hang)
        #expect(!run.result.timedOut, "lockmgr hung in \(operation) despite --timeout 1: \(run.result)")
        #expect(run.result.status == 69, "\(run.result)")
        #expect(
            run.result.stderr.contains(
                "lockmgr: lock plugin 'probe' did not return from \(operation) within 1 s (limit from --timeout 1)"),
            "\(run.result)")
        #expect(run.seconds >= 1 && run.seconds < 1 + slack, "gave up after \(run.seconds) s")
    }

    /// The message names where the limit was set: environment, or host
    /// config file and line; the flag beats both.
    @Test func theMessageNamesWhereTheLimitWasSet() throws {
        let dir = TempDir.make("timeout-conf")
        let conf = "\(dir)/lockmgr.conf"
        TempDir.write("# host config\ncall_timeout = 1\n", to: conf)
        let fromConfig = try lockmgr(["acquire", "--config", conf] + object, hang: "acquire")
        #expect(fromConfig.result.status == 69, "\(fromConfig.result)")
        #expect(fromConfig.result.stderr.contains("within 1 s (limit from call_timeout = 1 at \(conf):2)"), "\(fromConfig.result)")

        let fromEnv = try lockmgr(
            ["acquire", "--config", conf] + object, hang: "acquire",
            environment: ["LOCKMGR_CALL_TIMEOUT": "2"])
        #expect(fromEnv.result.status == 69, "\(fromEnv.result)")
        #expect(fromEnv.result.stderr.contains("within 2 s (limit from LOCKMGR_CALL_TIMEOUT=2)"), "\(fromEnv.result)")

        let fromFlag = try lockmgr(
            ["acquire", "--config", conf, "--timeout", "1"] + object, hang: "acquire",
            environment: ["LOCKMGR_CALL_TIMEOUT": "2"])
        #expect(fromFlag.result.stderr.contains("within 1 s (limit from --timeout 1)"), "\(fromFlag.result)")

        let bad = try lockmgr(["acquire"] + object, hang: nil, environment: ["LOCKMGR_CALL_TIMEOUT": "soon"])
        #expect(bad.result.status == 78, "\(bad.result)")
        #expect(bad.result.stderr.contains("LOCKMGR_CALL_TIMEOUT='soon' is not a number of seconds"), "\(bad.result)")
    }

    /// 0 means no limit: the stuck call is still stuck when the test gives up on it.
    @Test func zeroMeansNoLimit() throws {
        let run = try lockmgr(["acquire", "--timeout", "0"] + object, hang: "acquire", timeout: 3)
        #expect(run.result.timedOut, "lockmgr should still be waiting on the plugin: \(run.result)")
        #expect(!run.result.stderr.contains("did not return"), "\(run.result)")
    }

    /// `run` acquires under the limit, then execs: the command may run far
    /// longer than the limit, and no timer or signal reaches it.
    @Test func runDisarmsTheTimerBeforeExec() throws {
        let run = try lockmgr(["run", "--timeout", "1"] + object + ["--", "sh", "-c", "sleep 2.5; echo alive"], hang: nil)
        #expect(run.result.status == 0, "the command was killed after exec: \(run.result)")
        #expect(run.result.stdout == "alive\n", "\(run.result)")
        #expect(run.seconds >= 2.5)
    }

    /// A stuck acquire under `run` ends lockmgr before the command starts.
    @Test func runWithAStuckAcquireNeverStartsTheCommand() throws {
        let dir = TempDir.make("timeout-run")
        let marker = "\(dir)/started"
        let run = try lockmgr(["run", "--timeout", "1"] + object + ["--", "touch", marker], hang: "acquire")
        #expect(run.result.status == 69, "\(run.result)")
        #expect(run.result.stderr.contains("did not return from drvAcquire within 1 s"), "\(run.result)")
        #expect(!FileManager.default.fileExists(atPath: marker), "the command ran although its locks were never taken")
    }
}
