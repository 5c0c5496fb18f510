"""`python -m devstack` (`make run`): the whole of Agora in one process; Ctrl-C stops it.

PORT (default 8000) is the API's port, MOTO_PORT (default 5000) moto's; 0 picks a free port.
AGORA_LOCAL_TENANTS="tenant-a:key-a,..." and AGORA_ADMIN_KEY set the keys (else generated).
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import time


def _port(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip() or str(default)
    if not text.isdigit() or int(text) > 65535:
        raise SystemExit(f"{name} must be a port number, got {text!r}")
    return int(text)


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ("chalicelib", "devstack"):
        logging.getLogger(name).setLevel(logging.INFO)
    api_port, moto_port = _port("PORT", 8000), _port("MOTO_PORT", 5000)

    from devstack.persistence import DataDirError
    from devstack.server import banner, start

    try:
        stack = start(api_port=api_port, moto_port=moto_port)
    except DataDirError as exc:
        print(f"devstack: cannot start: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"devstack: cannot start ({exc}); is PORT={api_port} or MOTO_PORT={moto_port} in use?",
              file=sys.stderr)
        return 1
    # Ctrl-C must stop even when started in the background of a script (which ignores SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    print(banner(stack), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
        print("Agora local stack stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
