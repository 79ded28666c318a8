import Foundation
import Harness

/// A C test plugin that records what it is asked to do: it writes one line
/// per call to `<config file>.report`, and its acquire returns an fd
/// (opened O_CLOEXEC, so only lockmgr's `run` can make it survive exec).
/// It is a probe for the host, not a lock manager. With PROBE_HANG=<call>
/// in its environment (init, new, add, acquire, release, inquire) that
/// call never returns, as a plugin stuck on dead storage would.
enum ProbePlugin {
    static let source = #"""
        #define _GNU_SOURCE
        #include <fcntl.h>
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>
        #include <unistd.h>
        #include "lock_driver.h"

        static char report[4096];
        static unsigned owner_pid;

        static void hang_if_asked(const char *call)
        {
            const char *hang = getenv("PROBE_HANG");
            if (hang && strcmp(hang, call) == 0)
                for (;;) pause();
        }

        static void note(const char *fmt, unsigned a, int b, int c)
        {
            FILE *f = fopen(report, "a");
            if (!f) return;
            fprintf(f, fmt, a, b, c);
            fputc('\n', f);
            fclose(f);
        }

        static int probe_init(unsigned version, const char *config, unsigned flags)
        {
            hang_if_asked("init");
            snprintf(report, sizeof(report), "%s.report", config ? config : "/tmp/probe");
            note("init version=%u flags=%d %d", version, (int)flags, 0);
            return 0;
        }
        static int probe_deinit(void) { return 0; }
        static int probe_new(virLockManager *m, unsigned type, size_t n, virLockManagerParam *p, unsigned flags)
        {
            hang_if_asked("new");
            for (size_t i = 0; i < n; i++)
                if (strcmp(p[i].key, "pid") == 0) owner_pid = p[i].value.ui;
            note("new type=%u nparams=%d flags=%d", type, (int)n, (int)flags);
            return 0;
        }
        static void probe_free(virLockManager *m) { }
        static int probe_add(virLockManager *m, unsigned type, const char *name, size_t n,
                             virLockManagerParam *p, unsigned flags)
        {
            hang_if_asked("add");
            note("add type=%u nparams=%d flags=%d", type, (int)n, (int)flags);
            return 0;
        }
        static int probe_acquire(virLockManager *m, const char *state, unsigned flags,
                                 virDomainLockFailureAction action, int *fd)
        {
            hang_if_asked("acquire");
            int lockfd = open(report, O_RDONLY | O_CLOEXEC);
            note("acquire pid=%u getpid=%d fd=%d", owner_pid, getpid(), lockfd);
            if (fd) *fd = lockfd;
            return 0;
        }
        static int probe_release(virLockManager *m, char **state, unsigned flags)
        {
            hang_if_asked("release");
            note("release pid=%u getpid=%d %d", owner_pid, getpid(), 0);
            if (state) *state = strdup("probe-state");
            return 0;
        }
        static int probe_inquire(virLockManager *m, char **state, unsigned flags)
        {
            hang_if_asked("inquire");
            if (state) *state = strdup("probe-state");
            return 0;
        }

        virLockDriver virLockDriverImpl = {
            VIR_LOCK_MANAGER_VERSION, VIR_LOCK_MANAGER_USES_STATE,
            probe_init, probe_deinit, probe_new, probe_free, probe_add,
            probe_acquire, probe_release, probe_inquire,
        };
        """#

    /// A plugin dir holding `probe.so` next to symlinks to the built plugins.
    /// A compile error fails every test that uses it, with gcc's message.
    static var pluginDir: String {
        get throws { try built.get() }
    }

    private static let built = Result { () throws -> String in
        let dir = TempDir.make("probe-plugins")
        _ = try CProgram.build(source, name: "probe.so", in: dir, shared: true)
        try FileManager.default.createSymbolicLink(atPath: "\(dir)/nop.so", withDestinationPath: BuildProducts.library("nop"))
        return dir
    }
}
