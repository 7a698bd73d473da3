#!/usr/bin/python3
"""One command to HAProxy's runtime API (the socket /run/haproxy/admin.sock); prints the answer.

    haproxy-runtime "set map /run/haproxy/slot.map active green"

Exit 1 with one line when the socket does not answer or HAProxy refuses the command.
"""

import socket
import sys

SOCKET = "/run/haproxy/admin.sock"


def main() -> int:
    if len(sys.argv) != 2 or not sys.argv[1].strip():
        print('usage: haproxy-runtime "COMMAND"', file=sys.stderr)
        return 2
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(5)
            connection.connect(SOCKET)
            connection.sendall(sys.argv[1].strip().encode() + b"\n")
            answer = b""
            while chunk := connection.recv(65536):
                answer += chunk
    except OSError as error:
        print(f"haproxy-runtime: the runtime API did not answer ({error.strerror or error})", file=sys.stderr)
        return 1
    text = answer.decode(errors="replace")
    sys.stdout.write(text)
    refused = text.lstrip().startswith(("Unknown command", "Permission denied")) or "not found" in text.lower()
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main())
