/*
 * no-uring: run a command in a sandbox that refuses io_uring.
 *
 *   cc -O2 -o no-uring tools/no-uring.c
 *   ./no-uring python -m pyparallel.examples.echo --port 8007
 *
 * Installs a seccomp-BPF filter (raw BPF, no libseccomp) under which
 * io_uring_setup, io_uring_enter and io_uring_register fail with EPERM, the way
 * container runtimes and hardened kernels refuse them, then execs the command.
 * The filter is inherited across exec and by every thread and child, so the
 * program under test sees io_uring refused from its first instruction.
 *
 * A kernel whose io_uring works but lacks a feature the engine uses is played
 * differently, without a filter: PX_URING_MASK=recv_multishot (or any of the
 * names px_uring_mask_parse knows) makes the engine's probe treat it as missing.
 *
 * Exit status: the command's, or 126 if the filter cannot be installed and 127
 * if the command cannot be executed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The io_uring system calls have the same numbers on every architecture. */
#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup 425
#endif
#ifndef __NR_io_uring_enter
#define __NR_io_uring_enter 426
#endif
#ifndef __NR_io_uring_register
#define __NR_io_uring_register 427
#endif

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#elif defined(__i386__)
#define NATIVE_ARCH AUDIT_ARCH_I386
#elif defined(__riscv) && __riscv_xlen == 64
#define NATIVE_ARCH AUDIT_ARCH_RISCV64
#else
#error "no-uring: unknown architecture; add its AUDIT_ARCH_* value"
#endif

static int install_filter(void)
{
    struct sock_filter code[] = {
        /* Only the native system call table is filtered; the numbers below
         * mean something else in a foreign one. */
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 0, 5),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_enter, 1, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_register, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {
        .len = (unsigned short)(sizeof(code) / sizeof(code[0])),
        .filter = code,
    };

    /* Required to install a filter without CAP_SYS_ADMIN; it also keeps the
     * command from gaining privileges that could lift the filter. */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -errno;
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0)
        return -errno;
    return 0;
}

int main(int argc, char **argv)
{
    int rc;

    if (argc < 2) {
        fprintf(stderr, "usage: %s COMMAND [ARG]...\n"
                        "Run COMMAND with io_uring refused (EPERM) by a seccomp filter.\n",
                argv[0]);
        return 2;
    }
    rc = install_filter();
    if (rc < 0) {
        fprintf(stderr, "no-uring: cannot install the seccomp filter: %s\n", strerror(-rc));
        return 126;
    }
    execvp(argv[1], argv + 1);
    fprintf(stderr, "no-uring: cannot execute %s: %s\n", argv[1], strerror(errno));
    return 127;
}
