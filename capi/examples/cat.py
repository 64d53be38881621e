#!/usr/bin/env python3
"""cat.py: `natpass cat` in Python over ctypes (natpass.py): stdin to the peer,
the peer's bytes to stdout, in natpass cat's stream protocol (an empty message
ends a direction), so it talks to `natpass cat` and to cat.c.

    NATPASS_LIB=./libnatpass.so python3 capi/examples/cat.py \\
        --server 127.0.0.1:3478 --id alice --insecure-dev [--connect bob]
"""
import os
import sys
import threading
import time

import natpass


def parse(argv):
    options, connect, i = {}, None, 0
    while i < len(argv):
        name = argv[i][2:]
        if name == "insecure-dev":
            options["insecure_dev"] = "1"
        elif name == "connect":
            i += 1
            connect = argv[i]
        else:
            i += 1
            options[name.replace("-", "_")] = argv[i]
        i += 1
    return options, connect


def send_all(conn, result):
    try:
        while True:
            chunk = os.read(0, 32 << 10)
            if not chunk:
                break
            conn.send(chunk)
        conn.send(b"")  # the end marker
        conn.flush()
    except natpass.Error as e:
        result.append(e)


def main():
    lib = natpass.load(os.environ.get("NATPASS_LIB", "libnatpass.so"))
    options, connect = parse(sys.argv[1:])
    node = natpass.Node(lib, **options)
    print("cat.py: registered at", node.local_addr(), file=sys.stderr)
    conn = node.connect(connect) if connect else node.accept()
    print("cat.py: connected to %r" % conn.peer(), file=sys.stderr)
    failed = []
    sender = threading.Thread(target=send_all, args=(conn, failed))
    sender.start()
    out = sys.stdout.buffer
    while True:
        m = conn.recv()
        if not m:  # the end marker (or the peer closed)
            break
        out.write(m)
    out.flush()
    sender.join()
    conn.close()
    time.sleep(0.3)  # the last acknowledgements and the close reach the peer
    node.close()
    if failed:
        print("cat.py:", failed[0], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
