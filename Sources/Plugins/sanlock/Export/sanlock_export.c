#include "lock_driver.h"

LOCKMGR_EXPORT_DRIVER(sanlock, VIR_LOCK_MANAGER_USES_STATE)
