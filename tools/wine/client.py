"""Test-only: the Linux clients of tools/wine-test that `preforkd load`
cannot be. Every socket operation times out after 20 s.

    client.py discard PORT N   N clients at once each send 64 KiB, then EOF,
                               and must get EOF back with nothing else
    client.py chargen PORT N   N clients at once each read 64 KiB of RFC 864
                               lines, then close
    client.py relay PORT       sends every byte value (0..255, 256 times)
                               then EOF, and must get exactly them back, then EOF
    client.py read PORT        prints what the server sends until EOF
    client.py idle PORT        sends nothing; prints how long until EOF
    client.py hold PORT        sends b'x', reads it back, prints 'held', then
                               prints 'eof' when the server closes
Exits non-zero, with the reason on stderr, on any mismatch or timeout.
"""
import socket
import sys
import threading
import time

TIMEOUT = 20


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    s.settimeout(TIMEOUT)
    return s


def read_all(s):
    got = bytearray()
    while True:
        b = s.recv(65536)
        if not b:
            return bytes(got)
        got += b


def discard(port):
    s = connect(port)
    s.sendall(b"\x00\xff" * 32768)
    s.shutdown(socket.SHUT_WR)
    got = read_all(s)
    if got:
        raise Exception(f"discard answered {len(got)} bytes")


def chargen(port):
    s = connect(port)
    got = bytearray()
    while len(got) < 65536:
        b = s.recv(65536)
        if not b:
            raise Exception(f"chargen ended after {len(got)} bytes")
        got += b
    lines = bytes(got[: 74 * 800]).split(b"\r\n")[:-1]
    for line in lines:
        if len(line) != 72 or any(c < 32 or c > 126 for c in line):
            raise Exception(f"not a chargen line: {line[:80]!r}")
    s.close()


def concurrently(fn, port, n):
    errors = []

    def one():
        try:
            fn(port)
        except Exception as e:  # noqa: BLE001 - every failure is reported
            errors.append(repr(e))

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 3)
    alive = sum(t.is_alive() for t in threads)
    if errors or alive:
        sys.exit(f"{len(errors)} of {n} clients failed, {alive} hung: {errors[:3]}")
    print(f"{n} clients at once: all served")


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode in ("discard", "chargen"):
        concurrently({"discard": discard, "chargen": chargen}[mode], port, int(sys.argv[3]))
    elif mode == "relay":
        data = bytes(range(256)) * 256
        s = connect(port)
        sender = threading.Thread(target=lambda: (s.sendall(data), s.shutdown(socket.SHUT_WR)))
        sender.start()
        got = read_all(s)
        sender.join(TIMEOUT)
        if got != data:
            first = next((i for i, (a, b) in enumerate(zip(got, data)) if a != b), min(len(got), len(data)))
            sys.exit(f"got {len(got)} bytes back of {len(data)}, first difference at {first}")
        print(f"{len(data)} bytes (every value 0..255) back, then EOF")
    elif mode == "read":
        sys.stdout.write(read_all(connect(port)).decode("latin-1"))
    elif mode == "idle":
        s = connect(port)
        start = time.monotonic()
        got = read_all(s)
        print(f"{time.monotonic() - start:.1f} {len(got)}")
    elif mode == "hold":
        s = connect(port)
        s.sendall(b"x")
        if s.recv(1) != b"x":
            sys.exit("no echo of b'x'")
        print("held", flush=True)
        s.settimeout(60)
        print("eof" if read_all(s) == b"" else "data", flush=True)
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
