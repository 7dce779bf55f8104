// cuemu_selftest KERNELS_CU: the emulator's self-tests. Each case runs in a child
// process (a seeded bug ends it: abort, or ASan's report) under each schedule:
//  - a seeded bug must end the child with a failure whose stderr names
//    KERNELS_CU:LINE for every line marked `// expect: <case>` in KERNELS_CU
//    (the file and line of the bug, as the emulator or ASan reports it) and
//    carries the case's key phrase;
//  - a refused launch must return 10 (the error code checked) and name its line;
//  - a correct kernel must return 0 (its results checked in the child).
// Prints one line per case and schedule; exit 0 when every one behaves.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

extern "C" {
int case_missing_sync(void);
int case_war_race(void);
int case_divergent_barrier(void);
int case_barrier_after_exit(void);
int case_shfl_exited(void);
int case_shfl_outside_mask(void);
int case_smem_oob(void);
int case_wmma_misaligned(void);
int case_wmma_ldm(void);
int case_deadlock(void);
int case_wmma_race(void);
int case_warp_disagree(void);
int case_host_pointer(void);
int case_atomic_uninit(void);
int case_good_histogram(void);
int case_too_many_threads(void);
int case_smem_without_optin(void);
int case_good_block_sum(void);
int case_good_warp_ops(void);
int case_good_wmma(void);
int case_good_big_smem(void);
}

enum Expect { BUG, REFUSED, GOOD };

struct Case {
    const char *name; // the `// expect:` tag
    int (*fn)(void);
    Expect expect;
    const char *phrase; // in the report
};

static const Case CASES[] = {
    {"missing-sync", case_missing_sync, BUG, "shared-memory"},
    {"war-race", case_war_race, BUG, "shared-memory race"},
    {"divergent-barrier", case_divergent_barrier, BUG, "divergent"},
    {"barrier-after-exit", case_barrier_after_exit, BUG, "returned before reaching it"},
    {"shfl-exited", case_shfl_exited, BUG, "exited"},
    {"shfl-outside-mask", case_shfl_outside_mask, BUG, "not in the mask"},
    {"smem-oob", case_smem_oob, BUG, "AddressSanitizer"},
    {"wmma-misaligned", case_wmma_misaligned, BUG, "not 256-bit (32-byte) aligned"},
    {"wmma-ldm", case_wmma_ldm, BUG, "ldm 9"},
    {"wmma-race", case_wmma_race, BUG, "shared-memory race"},
    {"deadlock", case_deadlock, BUG, "deadlock"},
    {"warp-disagree", case_warp_disagree, BUG, "disagree"},
    {"host-pointer", case_host_pointer, BUG, "a host pointer passed to a kernel"},
    {"atomic-uninit", case_atomic_uninit, BUG, "uninitialised read"},
    {"too-many-threads", case_too_many_threads, REFUSED, "1025 threads per block"},
    {"smem-without-optin", case_smem_without_optin, REFUSED, "without cudaFuncSetAttribute"},
    {"block-sum", case_good_block_sum, GOOD, NULL},
    {"warp-ops", case_good_warp_ops, GOOD, NULL},
    {"histogram", case_good_histogram, GOOD, NULL},
    {"wmma-gemm", case_good_wmma, GOOD, NULL},
    {"big-smem-optin", case_good_big_smem, GOOD, NULL},
};

// The lines of `path` marked `// expect: name`.
static std::vector<int> marked_lines(const char *path, const char *name) {
    std::vector<int> lines;
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cuemu_selftest: cannot read %s\n", path);
        exit(2);
    }
    char buf[1024], tag[200];
    snprintf(tag, sizeof tag, "// expect: %s", name);
    for (int line = 1; fgets(buf, sizeof buf, f); line++) {
        char *p = strstr(buf, tag);
        if (p && (p[strlen(tag)] == '\n' || p[strlen(tag)] == 0 || p[strlen(tag)] == ' ')) lines.push_back(line);
    }
    fclose(f);
    return lines;
}

// Runs fn in a child under the schedule; its stderr into *err; the wait status back.
static int run_child(int (*fn)(void), const char *schedule, std::string *err) {
    int fds[2];
    if (pipe(fds) != 0) {
        perror("pipe");
        exit(2);
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        setenv("CUEMU_SCHEDULE", schedule, 1);
        setenv("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=0", 1); // leaks of a killed case are no finding
        _exit(fn());
    }
    close(fds[1]);
    char buf[4096];
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof buf)) > 0) err->append(buf, (size_t)n);
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: cuemu_selftest tests/cuemu/selftest/kernels.cu\n");
        return 2;
    }
    const char *path = argv[1];
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    const char *schedules[] = {"forward", "reverse", "random:7"};
    int failed = 0, ran = 0;
    for (const Case &c : CASES) {
        std::vector<int> lines = marked_lines(path, c.name);
        if (c.expect != GOOD && lines.empty()) {
            printf("FAIL  %-20s no line of %s is marked `// expect: %s`\n", c.name, path, c.name);
            failed++;
            continue;
        }
        for (const char *sched : schedules) {
            std::string err;
            int st = run_child(c.fn, sched, &err);
            bool exited = WIFEXITED(st);
            int code = exited ? WEXITSTATUS(st) : -1;
            std::string why;
            if (c.expect == GOOD) {
                if (!exited || code != 0) why = "a correct kernel failed";
            } else if (c.expect == REFUSED) {
                if (!exited || code != 10) why = "the launch was not refused with the expected error";
            } else if (exited && code == 0) {
                why = "the seeded bug went unreported";
            }
            if (why.empty() && c.expect != GOOD) {
                if (!strstr(err.c_str(), c.phrase)) why = std::string("the report lacks \"") + c.phrase + "\"";
                for (int line : lines) {
                    char at[300];
                    snprintf(at, sizeof at, "%s:%d", base, line);
                    if (!strstr(err.c_str(), at)) why = std::string("the report does not name ") + at;
                }
            }
            ran++;
            if (!why.empty()) {
                failed++;
                printf("FAIL  %-20s %-9s %s; its stderr:\n%s\n", c.name, sched, why.c_str(), err.c_str());
            } else {
                // the report's first line
                std::string first = err.substr(0, err.find('\n'));
                size_t asan = err.find("ERROR: AddressSanitizer");
                if (c.expect == BUG && asan != std::string::npos) { // its headline and the first frame in base
                    first = err.substr(asan, err.find('\n', asan) - asan);
                    size_t at = err.find(base, asan);
                    if (at != std::string::npos) first += " ... " + err.substr(at, err.find('\n', at) - at);
                }
                printf("PASS  %-20s %-9s %s\n", c.name, sched, c.expect == GOOD ? "(results checked)" : first.c_str());
            }
            fflush(stdout);
        }
    }
    printf("cuemu_selftest: %d runs, %d failed\n", ran, failed);
    return failed ? 1 : 0;
}
