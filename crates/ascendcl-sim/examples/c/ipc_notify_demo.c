/*
 * The IPC Notify flow of the aclrtNotifyGetExportKey page, as two real processes.
 *
 *   A (device 0): aclInit, aclrtSetDevice(0), aclrtCreateNotify, aclrtNotifyGetExportKey
 *                 (flag 0x0: pid whitelist enforced), start B, learn B's bare tgid,
 *                 aclrtNotifySetImportPid, aclrtWaitAndResetNotify (10 s) on a stream,
 *                 aclrtSynchronizeStream, destroy, aclFinalize.
 *   B (device 1): aclInit, aclrtSetDevice(1), aclrtDeviceGetBareTgid (sent to A),
 *                 aclrtNotifyImportByKey (flag 0x2: ENABLE_PEER_ACCESS), aclrtRecordNotify on
 *                 the default stream, aclrtSynchronizeStream, destroy, aclFinalize.
 *
 * A starts B by fork + exec of its own executable with the arguments "b <key> <wfd> <rfd>":
 * B writes its bare tgid to A over one pipe and waits on the other for A's "go" (sent once the
 * whitelist holds B), so B never imports before it is allowed to.
 *
 * Build:  cc -I include examples/c/ipc_notify_demo.c -L<dir> -lascendcl -Wl,-rpath,<dir>
 * Run:    ASCEND_NOTIFY_SIM_NAMESPACE=demo ./ipc_notify_demo     (exit status 0 on success)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "acl_notify.h"

#define KEY_LEN 65 /* the minimum key buffer: 64 characters and the NUL */

static const char *role = "?";

static void say(const char *fmt, const char *what) {
    printf("[%s pid %d] ", role, (int)getpid());
    printf(fmt, what);
    printf("\n");
    fflush(stdout);
}

/* Runs one ACL call; on failure prints the code and aclGetRecentErrMsg, and exits 1. */
#define CHECK(call)                                                                          \
    do {                                                                                     \
        aclError rc_ = (call);                                                               \
        if (rc_ != ACL_SUCCESS) {                                                            \
            const char *msg_ = aclGetRecentErrMsg();                                         \
            fprintf(stderr, "[%s pid %d] %s failed: %d (%s)\n", role, (int)getpid(), #call,  \
                    rc_, msg_ ? msg_ : "no message");                                        \
            exit(1);                                                                         \
        }                                                                                    \
        say("%s: ok", #call);                                                                \
    } while (0)

static void die(const char *what) {
    fprintf(stderr, "[%s pid %d] %s: %s\n", role, (int)getpid(), what, strerror(errno));
    exit(1);
}

static void write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) die("write to pipe");
        p += n;
        len -= (size_t)n;
    }
}

static void read_all(int fd, void *buf, size_t len) {
    char *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n == 0) {
            fprintf(stderr, "[%s pid %d] the other process closed the pipe\n", role,
                    (int)getpid());
            exit(1);
        }
        if (n < 0) die("read from pipe");
        p += n;
        len -= (size_t)n;
    }
}

static int run_b(const char *key, int to_a, int from_a) {
    role = "B";
    say("started with key %s", key);
    CHECK(aclInit(NULL));
    CHECK(aclrtSetDevice(1));

    int32_t tgid = 0;
    CHECK(aclrtDeviceGetBareTgid(&tgid));
    printf("[B pid %d] bare tgid %d, sent to A\n", (int)getpid(), (int)tgid);
    fflush(stdout);
    write_all(to_a, &tgid, sizeof tgid);

    char go = 0;
    read_all(from_a, &go, 1); /* A has whitelisted us */

    aclrtNotify notify = NULL;
    CHECK(aclrtNotifyImportByKey(&notify, key, ACL_RT_NOTIFY_IMPORT_FLAG_ENABLE_PEER_ACCESS));
    uint32_t id = 0;
    CHECK(aclrtGetNotifyId(notify, &id));
    printf("[B pid %d] imported notify id %u\n", (int)getpid(), id);
    fflush(stdout);

    CHECK(aclrtRecordNotify(notify, NULL)); /* NULL: device 1's default stream */
    CHECK(aclrtSynchronizeStream(NULL));
    CHECK(aclrtDestroyNotify(notify));
    CHECK(aclrtResetDevice(1));
    CHECK(aclFinalize());
    close(to_a);
    close(from_a);
    say("%s", "done");
    return 0;
}

static int run_a(const char *argv0) {
    role = "A";
    CHECK(aclInit(NULL));
    CHECK(aclrtSetDevice(0));

    aclrtNotify notify = NULL;
    CHECK(aclrtCreateNotify(&notify, ACL_NOTIFY_DEFAULT));
    uint32_t id = 0;
    CHECK(aclrtGetNotifyId(notify, &id));
    printf("[A pid %d] created notify id %u\n", (int)getpid(), id);

    char key[KEY_LEN];
    memset(key, 0, sizeof key);
    CHECK(aclrtNotifyGetExportKey(notify, key, sizeof key, ACL_RT_NOTIFY_EXPORT_FLAG_DEFAULT));
    say("export key %s", key);

    /* Everything B's exec needs is prepared before fork. */
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
    } else {
        snprintf(self, sizeof self, "%s", argv0);
    }
    int b_to_a[2], a_to_b[2];
    if (pipe(b_to_a) != 0 || pipe(a_to_b) != 0) die("pipe");
    char wfd[16], rfd[16];
    snprintf(wfd, sizeof wfd, "%d", b_to_a[1]);
    snprintf(rfd, sizeof rfd, "%d", a_to_b[0]);

    fflush(stdout);
    pid_t child = fork();
    if (child < 0) die("fork");
    if (child == 0) {
        close(b_to_a[0]);
        close(a_to_b[1]);
        execl(self, self, "b", key, wfd, rfd, (char *)NULL);
        _exit(127);
    }
    close(b_to_a[1]);
    close(a_to_b[0]);
    printf("[A pid %d] started B as pid %d\n", (int)getpid(), (int)child);
    fflush(stdout);

    int32_t b_tgid = 0;
    read_all(b_to_a[0], &b_tgid, sizeof b_tgid);
    printf("[A pid %d] B's bare tgid is %d\n", (int)getpid(), (int)b_tgid);
    fflush(stdout);
    CHECK(aclrtNotifySetImportPid(notify, &b_tgid, 1));

    aclrtStream stream = NULL;
    CHECK(aclrtCreateStream(&stream));
    CHECK(aclrtWaitAndResetNotify(notify, stream, 10)); /* seconds */
    write_all(a_to_b[1], "g", 1);                       /* B may import now */
    CHECK(aclrtSynchronizeStream(stream));              /* returns once B has recorded */
    say("%s", "the wait completed: B recorded the notify");

    int status = 0;
    while (waitpid(child, &status, 0) < 0) {
        if (errno != EINTR) die("waitpid");
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "[A pid %d] B failed (status %d)\n", (int)getpid(), status);
        return 1;
    }
    say("%s", "B exited with status 0");

    CHECK(aclrtDestroyStream(stream));
    CHECK(aclrtDestroyNotify(notify));
    CHECK(aclrtResetDevice(0));
    CHECK(aclFinalize());
    close(b_to_a[0]);
    close(a_to_b[1]);
    say("%s", "done");
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "b") == 0) {
        return run_b(argv[2], atoi(argv[3]), atoi(argv[4]));
    }
    if (argc != 1) {
        fprintf(stderr, "usage: %s   (B is started by A itself)\n", argv[0]);
        return 2;
    }
    return run_a(argv[0]);
}
