"""A sibling service in miniature: verifies one token in a loop and reports when it becomes refused.

Run as a separate process by test_revocation_e2e.py; configured through environment variables.
"""

import os
import sys
import time

from clients.exceptions import TokenRejected
from clients.revocations import RevocationPoller, RevocationSubscriber
from clients.tokens import TokenVerifier


def main() -> None:
    env = os.environ
    verifier = TokenVerifier(jwks_url=env["JWKS_URL"], issuer=env["ISSUER"])
    verifier.refresh_keys()
    if env.get("SUBSCRIBE") == "1":
        subscriber = RevocationSubscriber(verifier, redis_url=env["REDIS_URL"], channel=env["CHANNEL"]).start()
        subscriber.ready.wait(10)
    RevocationPoller(
        verifier,
        base_url=env["BASE_URL"],
        client_id=env["CLIENT_ID"],
        client_secret=env["CLIENT_SECRET"],
        interval_seconds=float(env["POLL_SECONDS"]),
    ).start()
    token = sys.stdin.readline().strip()
    announced = False
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            verifier.verify(token)
            if not announced:
                print("accepted", flush=True)
                announced = True
        except TokenRejected as exc:
            print(f"refused {time.time():.6f} {exc.code}", flush=True)
            return
        time.sleep(0.02)
    print("timeout", flush=True)


if __name__ == "__main__":
    main()
