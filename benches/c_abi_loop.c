/* The per-call cost of the C ABI's hot calls, in one process: aclrtRecordNotify alone, a record
 * followed by a wait that consumes it inline, and a synchronize of an idle stream. For A/B runs
 * of two builds of libascendcl.so (BENCHMARKS.md, "Before and after"):
 *
 *   gcc -O2 -I crates/ascendcl-sim/include benches/c_abi_loop.c -o /tmp/abi_loop \
 *       -L target/release -lascendcl -Wl,-rpath,$PWD/target/release
 *   ASCEND_NOTIFY_SIM_NAMESPACE=abi-loop taskset -c 0 /tmp/abi_loop 1000000
 *
 * Each of five repetitions prints ns per call; read the last ones (the first warms up). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "acl/acl.h"

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

#define CHECK(call)                                             \
    do {                                                        \
        int rc_ = (call);                                       \
        if (rc_ != 0) {                                         \
            fprintf(stderr, "%s -> %d\n", #call, rc_);          \
            exit(1);                                            \
        }                                                       \
    } while (0)

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    aclrtNotify notify;
    aclrtStream stream;
    CHECK(aclInit(NULL));
    CHECK(aclrtSetDevice(0));
    CHECK(aclrtCreateNotify(&notify, 0));
    CHECK(aclrtCreateStream(&stream));
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now_ns();
        for (long i = 0; i < n; i++) {
            aclrtRecordNotify(notify, stream);
        }
        double t1 = now_ns();
        for (long i = 0; i < n; i++) {
            aclrtRecordNotify(notify, stream);
            aclrtWaitAndResetNotify(notify, stream, 0);
        }
        double t2 = now_ns();
        for (long i = 0; i < n; i++) {
            aclrtSynchronizeStream(stream);
        }
        double t3 = now_ns();
        printf("record %.1f  record+wait %.1f  sync %.1f ns\n", (t1 - t0) / n, (t2 - t1) / n,
               (t3 - t2) / n);
    }
    CHECK(aclrtSynchronizeStream(stream));
    CHECK(aclrtDestroyStream(stream));
    CHECK(aclrtDestroyNotify(notify));
    CHECK(aclrtResetDevice(0));
    CHECK(aclFinalize());
    return 0;
}
