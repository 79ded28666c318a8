#ifndef LOCKMGR_SANITIZER_SUPPORT_H
#define LOCKMGR_SANITIZER_SUPPORT_H

/* Which sanitizer this test build was compiled with (swift test
 * --sanitize=...): SwiftPM compiles C targets with the same -fsanitize. */
enum lockmgr_test_sanitizer {
    LOCKMGR_TEST_SANITIZER_NONE = 0,
    LOCKMGR_TEST_SANITIZER_ADDRESS = 1,
    LOCKMGR_TEST_SANITIZER_THREAD = 2,
};

enum lockmgr_test_sanitizer lockmgr_test_sanitizer(void);

#endif
