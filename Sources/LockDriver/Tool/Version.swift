/// The release, in one place: `--version` of every program prints it, and
/// the Makefile reads it from this line for the Debian package's version.
public enum LockmgrVersion {
    public static let string = "0.9.0"
}
