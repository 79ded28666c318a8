import Foundation

/// A tiny C parent for daemons that fork children they do not wait for
/// (libvirtd daemonizes each QEMU). It marks itself a child subreaper, so
/// orphaned grandchildren are reparented to it and reaped at once instead
/// of by this machine's PID 1, which reaps only every 1-2 s and makes every
/// `virsh destroy` wait that long for its QEMU to vanish. It forwards
/// SIGTERM/SIGINT/SIGHUP to its child and exits with the child's status once
/// the child has exited.
public enum Subreaper {
    static let source = #"""
        #define _GNU_SOURCE
        #include <errno.h>
        #include <signal.h>
        #include <stdio.h>
        #include <string.h>
        #include <sys/prctl.h>
        #include <sys/wait.h>
        #include <unistd.h>

        static volatile pid_t child;

        /* kill() is async-signal-safe: forward from the handler itself. */
        static void forward(int sig) { kill(child, sig); }

        int main(int argc, char **argv)
        {
            if (argc < 2) {
                fprintf(stderr, "usage: %s PROGRAM [ARG...]\n", argv[0]);
                return 2;
            }
            if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
                perror("subreaper: prctl(PR_SET_CHILD_SUBREAPER)");
                return 2;
            }
            child = fork();
            if (child < 0) {
                perror("subreaper: fork");
                return 2;
            }
            if (child == 0) {
                execvp(argv[1], argv + 1);
                fprintf(stderr, "subreaper: cannot run %s: %s\n", argv[1], strerror(errno));
                _exit(127);
            }
            struct sigaction sa;
            memset(&sa, 0, sizeof sa);
            sa.sa_handler = forward;
            sa.sa_flags = SA_RESTART;
            sigaction(SIGTERM, &sa, NULL);
            sigaction(SIGINT, &sa, NULL);
            sigaction(SIGHUP, &sa, NULL);
            for (;;) {
                int status;
                pid_t pid = waitpid(-1, &status, 0);
                if (pid < 0 && errno == EINTR)
                    continue;
                if (pid < 0)
                    return 2;
                if (pid == child) {
                    /* Whatever the child left running now belongs to PID 1. */
                    while (waitpid(-1, NULL, WNOHANG) > 0)
                        ;
                    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                }
            }
        }
        """#

    /// The compiled program, built once per test run.
    public static func path() throws -> String {
        try built.get()
    }

    private static let built: Result<String, Error> = Result {
        try CProgram.build(source, name: "subreaper")
    }
}
