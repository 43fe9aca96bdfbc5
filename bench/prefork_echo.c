/* prefork_echo: the reference server of bench/run, the most a pre-fork
 * server can do on this machine. Usage: prefork_echo PORT NCHILDREN
 * The parent binds 127.0.0.1:PORT and forks NCHILDREN children that each
 * loop: accept, echo every read back until the client closes (RFC 862),
 * close. The parent only waits; the children die with it. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static void serve(int lfd)
{
    char buf[4096];
    for (;;) {
        int c = accept(lfd, NULL, NULL);
        if (c < 0)
            continue;
        ssize_t n;
        while ((n = read(c, buf, sizeof buf)) > 0)
            if (write(c, buf, (size_t)n) != n)
                break;
        close(c);
    }
}

int main(int argc, char **argv)
{
    int port = argc == 3 ? atoi(argv[1]) : 0, nchildren = argc == 3 ? atoi(argv[2]) : 0;
    if (port <= 0 || port > 65535 || nchildren <= 0) {
        fprintf(stderr, "usage: prefork_echo PORT NCHILDREN\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int one = 1, lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0
        || bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 1024) < 0) {
        perror("prefork_echo: 127.0.0.1");
        return 1;
    }
    pid_t parent = getpid();
    for (int i = 0; i < nchildren; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("prefork_echo: fork");
            return 1;
        }
        if (pid == 0) {
            if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                _exit(1); /* the parent is already gone */
            serve(lfd);
        }
    }
    fprintf(stderr, "listening on 127.0.0.1:%d\n", port);
    while (wait(NULL) > 0 || errno == EINTR)
        ;
    return 0;
}
