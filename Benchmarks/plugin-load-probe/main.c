/* plugin-load-probe: one sample of a lock plugin's load cost, in a fresh
 * process. Loads libvirt.so.0 first and initialises it (libvirt's plugins
 * need it, and in libvirtd it is always there), then measures dlopen +
 * dlsym + drvInit of the plugin: wall time, and resident memory before and
 * after (/proc/self/statm). The same steps for every plugin, ours or not.
 *
 * Resident memory is split as smaps_rollup does: pages the process
 * dirtied for itself (relocations, data, heap) and clean pages mapped
 * from the file, which the page cache shares with every other process.
 *
 * Usage: plugin-load-probe PLUGIN.so CONFIG|-
 * Prints: <µs load+init> <µs of it in dlopen> <KiB resident added> <KiB private dirty added>
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lock_driver.h"

/* A "Field:   <n> kB" line of /proc/self/smaps_rollup, or -1. */
static long rollup_kib(const char *field)
{
    char line[256];
    long value = -1;
    size_t len = strlen(field);
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, field, len) == 0 && line[len] == ':')
            value = strtol(line + len + 1, NULL, 10);
    fclose(f);
    return value;
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s PLUGIN.so CONFIG|-\n", argv[0]);
        return 64;
    }
    const char *config = strcmp(argv[2], "-") == 0 ? NULL : argv[2];

    void *libvirt = dlopen("libvirt.so.0", RTLD_NOW | RTLD_GLOBAL);
    int (*vir_initialize)(void) = libvirt ? (int (*)(void))dlsym(libvirt, "virInitialize") : NULL;
    if (!vir_initialize || vir_initialize() < 0) {
        fprintf(stderr, "cannot load and initialise libvirt.so.0: %s\n", dlerror());
        return 69;
    }

    long rss_before = rollup_kib("Rss"), dirty_before = rollup_kib("Private_Dirty");
    double start = now_us();
    void *plugin = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!plugin) {
        fprintf(stderr, "cannot load %s: %s\n", argv[1], dlerror());
        return 69;
    }
    double loaded = now_us();
    virLockDriver *driver = (virLockDriver *)dlsym(plugin, "virLockDriverImpl");
    if (!driver) {
        fprintf(stderr, "%s exports no virLockDriverImpl\n", argv[1]);
        return 69;
    }
    if (driver->drvInit(VIR_LOCK_MANAGER_VERSION, config, 0) < 0) {
        fprintf(stderr, "%s: drvInit failed with config %s\n", argv[1], argv[2]);
        return 69;
    }
    double end = now_us();
    long rss_after = rollup_kib("Rss"), dirty_after = rollup_kib("Private_Dirty");
    if (rss_before < 0 || rss_after < 0 || dirty_before < 0 || dirty_after < 0) {
        fprintf(stderr, "cannot read /proc/self/smaps_rollup\n");
        return 70;
    }
    printf("%.1f %.1f %ld %ld\n", end - start, loaded - start, rss_after - rss_before, dirty_after - dirty_before);
    return 0;
}
