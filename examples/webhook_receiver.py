"""A webhook receiver for driftgate's verdict changes: verifies the signature, ignores repeats.

Run it with the secret the webhook is configured with:

    DRIFTGATE_WEBHOOK_SECRET=... python webhook_receiver.py 9000

and point `webhooks[].url` at http://<this host>:9000/. Standard library only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def verified(body: bytes, signature: str | None, secret: str) -> bool:
    """Whether X-Driftgate-Signature is the HMAC-SHA256 of these exact bytes with the secret."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return signature is not None and hmac.compare_digest(signature, expected)


class VerdictHandler(BaseHTTPRequestHandler):
    secret = os.environ.get("DRIFTGATE_WEBHOOK_SECRET", "")
    seen: set[str] = set()  # Idempotency-Key of every delivery handled (keep it bounded in real use)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if not verified(body, self.headers.get("X-Driftgate-Signature"), self.secret):
            self.send_response(401)  # a 4xx: driftgate does not retry it
        else:
            key = self.headers.get("Idempotency-Key", "")
            if key not in self.seen:  # a retry of a delivery already handled is acknowledged only
                self.seen.add(key)
                verdict = json.loads(body)
                print(f"{verdict['deployment']}: {verdict['verdict']} for canary {verdict['canary_version']}")
            self.send_response(204)
        self.end_headers()


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
    ThreadingHTTPServer(("0.0.0.0", port), VerdictHandler).serve_forever()
