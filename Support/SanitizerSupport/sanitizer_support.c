/* Runtime options for sanitized test runs (swift test --sanitize=address
 * or thread), kept next to the suppression files they point at.
 *
 * The runner reads its options through the runtime's default-options hook;
 * the programs it starts (lockmgr, pr-keeper, pr-tool, C hosts) read them
 * from the environment, which a constructor fills in before any test thread
 * exists. LOCKMGR_SANITIZER_DIR (Package.swift) is this directory. A plain
 * build compiles none of this in. */
#include "sanitizer_support.h"

#include <stdio.h>
#include <stdlib.h>

#if defined(__has_feature)
#  if __has_feature(address_sanitizer)
     /* LeakSanitizer runs inside ASan; only leaks need suppressing. */
#    define OPTIONS_HOOK __lsan_default_options
#    define OPTIONS_VARIABLE "LSAN_OPTIONS"
#    define SUPPRESSIONS "lsan.supp"
#    define CURRENT LOCKMGR_TEST_SANITIZER_ADDRESS
#  elif __has_feature(thread_sanitizer)
#    define OPTIONS_HOOK __tsan_default_options
#    define OPTIONS_VARIABLE "TSAN_OPTIONS"
#    define SUPPRESSIONS "tsan.supp"
#    define CURRENT LOCKMGR_TEST_SANITIZER_THREAD
#  endif
#endif

enum lockmgr_test_sanitizer lockmgr_test_sanitizer(void)
{
#if defined(CURRENT)
    return CURRENT;
#else
    return LOCKMGR_TEST_SANITIZER_NONE;
#endif
}

#if defined(OPTIONS_HOOK)
/* Called while the runtime starts, before it can run instrumented code or
 * libc: a literal only. */
const char *OPTIONS_HOOK(void)
{
    return "suppressions=" LOCKMGR_SANITIZER_DIR "/" SUPPRESSIONS;
}

/* For the children; what the user already set comes last, so it wins. */
__attribute__((constructor)) static void export_options(void)
{
    const char *current = getenv(OPTIONS_VARIABLE);
    char value[8192];
    snprintf(value, sizeof value, "%s%s%s", OPTIONS_HOOK(), current && *current ? ":" : "", current ? current : "");
    setenv(OPTIONS_VARIABLE, value, 1);
}
#endif
