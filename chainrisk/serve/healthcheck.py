"""`python -m chainrisk.serve.healthcheck`: exit 0 when this host's `chainrisk serve` answers /healthz with
200, else 1 (the container HEALTHCHECK). The port comes from the same settings the service reads."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request

TIMEOUT_S = 4


def main() -> int:
    from chainrisk.errors import ChainriskError
    from chainrisk.settings import load_settings

    try:
        settings = load_settings()
    except ChainriskError as exc:
        print(f"unhealthy: {exc}")
        return 1
    # The service may listen on every address; the probe runs beside it.
    host = "127.0.0.1" if settings.serve_addr in ("0.0.0.0", "") else settings.serve_addr
    host = "[::1]" if host == "::" else host
    url = f"http://{host}:{settings.serve_port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as answer:
            body = json.load(answer)
    except urllib.error.HTTPError as exc:
        print(f"unhealthy: {url} answered {exc.code}")
        return 1
    except (OSError, ValueError) as exc:
        print(f"unhealthy: {url}: {exc}")
        return 1
    print(f"{body.get('status')}: {body.get('role')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
