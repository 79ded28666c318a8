#include "lock_driver.h"

LOCKMGR_EXPORT_DRIVER(0)
