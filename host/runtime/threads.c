#include "threads.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

// ---- the OpenMP wait policy: a re-exec before any library starts ----

static const char k_spin_var[] = "GOMP_SPINCOUNT=" THREADS_SPINCOUNT;
static const char *g_no_reexec; // why the re-exec did not happen, when it should have

static int env_has(char **envp, const char *name) {
    size_t n = strlen(name);
    for (char **e = envp; *e; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=') return 1;
    return 0;
}

bool threads_can_reexec(void) {
    // /proc/self/exe must be this program: run through ld.so or valgrind it is
    // that tool (AT_EXECFN still names the program), and executing it would
    // run the tool with our argv. Only stat and getauxval: safe before libc starts.
    const char *execfn = (const char *)getauxval(AT_EXECFN);
    struct stat self, prog;
    return stat("/proc/self/exe", &self) == 0 && execfn && stat(execfn, &prog) == 0 && self.st_dev == prog.st_dev &&
           self.st_ino == prog.st_ino;
}

// Runs from .preinit_array: after the dynamic linker has relocated everything
// but before any initializer (libc's, libgomp's, OpenBLAS's, MPI's, criterion's),
// so nothing has started and the process can be replaced by itself. libc is not
// initialized yet: no getenv (environ is still NULL), no malloc, no stdio.
// A setenv here does not help either: libc's initializer resets environ to the
// kernel's array before libgomp's reads it. execve keeps the pid, the open
// files and argv (argv[0] as given), so mpirun, criterion workers and shells
// see the same process.
static void threads_preinit(int argc, char **argv, char **envp) {
    (void)argc;
    if (!argv || !envp || env_has(envp, "OMP_WAIT_POLICY") || env_has(envp, "GOMP_SPINCOUNT")) return;
    if (getauxval(AT_SECURE)) return; // setuid and the like: the loader cleans the environment itself
    // run by a loader or a tool: keep libgomp's defaults
    if (!threads_can_reexec()) {
        g_no_reexec = "/proc/self/exe is not the program (a loader or tool runs it)";
        return;
    }
    size_t n = 0;
    while (envp[n]) n++;
    if (n > 100000) return; // the copy lives on the stack
    char *env[n + 2];
    memcpy(env, envp, n * sizeof *env);
    env[n] = (char *)k_spin_var;
    env[n + 1] = NULL;
    execve("/proc/self/exe", argv, env);
    g_no_reexec = "execve(/proc/self/exe) failed"; // still this process: go on with libgomp's defaults
}

__attribute__((section(".preinit_array"), used)) static void (*const threads_preinit_entry)(int, char **, char **) =
    threads_preinit;

const char *threads_wait_policy(void) {
    static char buf[200];
    const char *pol = getenv("OMP_WAIT_POLICY"), *spin = getenv("GOMP_SPINCOUNT");
    if (g_no_reexec)
        snprintf(buf, sizeof buf, "libgomp's default spinning (GOMP_SPINCOUNT not set: %s)", g_no_reexec);
    else if (!pol && spin && strcmp(spin, THREADS_SPINCOUNT) == 0)
        snprintf(buf, sizeof buf, "GOMP_SPINCOUNT=%s (elastilm's default)", spin);
    else
        snprintf(buf, sizeof buf, "OMP_WAIT_POLICY=%s GOMP_SPINCOUNT=%s (from the environment)", pol ? pol : "(unset)",
                 spin ? spin : "(unset)");
    return buf;
}

// ---- the default thread count ----

static int cpus_allowed(void) {
    for (int n = 1024; n <= (1 << 16); n *= 4) {
        cpu_set_t *set = CPU_ALLOC(n);
        if (!set) break;
        size_t size = CPU_ALLOC_SIZE(n);
        CPU_ZERO_S(size, set);
        if (sched_getaffinity(0, size, set) == 0) {
            int c = CPU_COUNT_S(size, set);
            CPU_FREE(set);
            return c;
        }
        CPU_FREE(set);
        if (errno != EINVAL) break; // EINVAL: the kernel's mask is larger than ours
    }
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    return c > 0 ? (int)c : 1;
}

// A cgroup v2 CPU quota ("cpu.max": "<quota> <period>" or "max ...") of this
// process's cgroup, in whole CPUs rounded up; 0 when there is none or it
// cannot be read (cgroup v1, no /sys/fs/cgroup).
static int cgroup_cpu_limit(void) {
    char path[600] = "/sys/fs/cgroup", line[512];
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (f) {
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "0::", 3) == 0) {
                line[strcspn(line, "\n")] = 0;
                if (strcmp(line + 3, "/") != 0) snprintf(path, sizeof path, "/sys/fs/cgroup%s", line + 3);
            }
        fclose(f);
    }
    int limit = 0;
    for (int attempt = 0; attempt < 2 && !limit; attempt++) { // own cgroup, then the namespace root
        char file[640];
        snprintf(file, sizeof file, "%s/cpu.max", attempt == 0 ? path : "/sys/fs/cgroup");
        f = fopen(file, "r");
        if (!f) continue;
        long long quota, period;
        if (fscanf(f, "%lld %lld", &quota, &period) == 2 && quota > 0 && period > 0)
            limit = (int)((quota + period - 1) / period);
        fclose(f); // "max <period>": no quota (fscanf stops at "max")
    }
    return limit;
}

// /proc/stat's procs_running: threads runnable right now on all CPUs, this one included.
static int procs_running(void) {
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return -1;
    char line[256];
    int n = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "procs_running %d", &n) == 1) break;
    fclose(f);
    return n;
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

// Other processes' runnable threads: the median of 5 samples 1 ms apart, so that
// a short-lived process (a shell, a cc1 starting) neither counts nor hides a
// steady one. Minus 1 for the thread sampling. -1 when /proc/stat is unreadable.
static int others_running(void) {
    enum { SAMPLES = 5 };
    int s[SAMPLES];
    for (int i = 0; i < SAMPLES; i++) {
        if ((s[i] = procs_running()) < 0) return -1;
        if (i + 1 < SAMPLES) nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    qsort(s, SAMPLES, sizeof *s, cmp_int);
    return s[SAMPLES / 2] > 1 ? s[SAMPLES / 2] - 1 : 0;
}

int threads_default(void) {
    static int chosen = 0;
    if (chosen > 0) return chosen;
    const char *env = getenv("ELASTILM_THREADS");
    if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end == 0 && v >= 1 && v <= 1024) {
            chosen = (int)v;
            log_debug("%d thread%s (ELASTILM_THREADS); OpenMP waits: %s", chosen, chosen == 1 ? "" : "s",
                     threads_wait_policy());
            return chosen;
        }
        log_warn("ELASTILM_THREADS=%s is not a thread count from 1 to 1024; ignored", env);
    }
    int cpus = cpus_allowed(), quota = cgroup_cpu_limit();
    int usable = quota > 0 && quota < cpus ? quota : cpus;
    int others = others_running();
    // procs_running counts every CPU of the machine; this process may use only
    // `cpus` of them, so only that share of the others competes with it.
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int busy = others;
    if (busy > 0 && online > cpus) busy = (int)((busy * (long)cpus + online / 2) / online);
    int free_cpus = busy > 0 ? cpus - busy : cpus;
    chosen = free_cpus < usable ? free_cpus : usable;
    if (chosen < 1) chosen = 1;
    char why[160];
    int n = snprintf(why, sizeof why, "%d CPU%s usable", usable, usable == 1 ? "" : "s");
    if (quota > 0 && quota < cpus) n += snprintf(why + n, sizeof why - n, " (cgroup quota; %d in the affinity mask)", cpus);
    if (others < 0)
        snprintf(why + n, sizeof why - n, ", load unknown (/proc/stat unreadable)");
    else
        snprintf(why + n, sizeof why - n, ", %d kept busy by other processes", busy);
    // At debug level (ELASTILM_LOG=debug shows it): commands promise one line
    // on stderr for an error, and the tests hold them to it.
    log_debug("%d thread%s: %s (--threads N or ELASTILM_THREADS=N overrides); OpenMP waits: %s", chosen,
              chosen == 1 ? "" : "s", why, threads_wait_policy());
    return chosen;
}
