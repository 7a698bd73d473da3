#!/usr/bin/python3
"""One command to HAProxy's runtime API (the socket /tmp/haproxy.sock, on the container's tmpfs); prints the answer.

    haproxy-runtime "set map /tmp/slot.map active green"

Exit 1 with one line when the socket does not answer or HAProxy refuses the command.
"""

import socket
import sys

SOCKET = "/tmp/haproxy.sock"  # noqa: S108 (the container's own tmpfs, mode 0600)


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
