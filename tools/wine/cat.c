/* Test-only: the small console program of tools/wine-test's exec checks.
 * Copies stdin to stdout in binary mode (no CR/LF translation, no ^Z as
 * end-of-file), flushing each read, and exits 0 at end-of-file; 1 if a
 * write fails. */
#include <fcntl.h>
#include <io.h>
#include <stdio.h>

int main(void)
{
    char buf[4096];
    int n;

    _setmode(0, _O_BINARY);
    _setmode(1, _O_BINARY);
    while ((n = _read(0, buf, sizeof buf)) > 0) {
        char *p = buf;
        while (n > 0) {
            int w = _write(1, p, n);
            if (w <= 0)
                return 1;
            p += w;
            n -= w;
        }
    }
    return n < 0 ? 1 : 0;
}
