/* Test-only: a stand-in bcryptprimitives.dll for running preforkd.exe
 * under Wine 8.0 (tools/wine-test). Never shipped, never built for a real
 * Windows, which has this DLL.
 *
 * Why: since Rust 1.78, std on Windows imports ProcessPrng from
 * bcryptprimitives.dll for its random numbers (HashMap's keys); Wine 8.0
 * has no such DLL, so every Rust program fails to start. Placed next to
 * the exe, this one forwards ProcessPrng to advapi32's SystemFunction036
 * (RtlGenRandom), which Wine has.
 *
 * Built by tools/wine-test:
 *   x86_64-w64-mingw32-gcc -shared -O2 -o bcryptprimitives.dll \
 *       bcryptprimitives.c -ladvapi32
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG n = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!SystemFunction036(data, n))
            return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
