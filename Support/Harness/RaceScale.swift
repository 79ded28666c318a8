import Foundation

/// How big the race tests are: CI's short default, or what `make stress`
/// asks for through LOCKMGR_RACE_ROUNDS and LOCKMGR_RACE_HOSTS.
public enum RaceScale {
    public static func rounds(default standard: Int) -> Int {
        value("LOCKMGR_RACE_ROUNDS", minimum: 1) ?? standard
    }

    /// Never fewer than `minimum`: a race needs that many contenders to mean anything.
    public static func hosts(default standard: Int, minimum: Int) -> Int {
        max(value("LOCKMGR_RACE_HOSTS", minimum: minimum) ?? standard, minimum)
    }

    private static func value(_ name: String, minimum: Int) -> Int? {
        guard let text = ProcessInfo.processInfo.environment[name], !text.isEmpty else { return nil }
        guard let n = Int(text), n >= minimum else {
            fatalError("\(name)='\(text)' must be a whole number of at least \(minimum)")
        }
        return n
    }
}
