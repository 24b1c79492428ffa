"""Schemathesis hooks for `make fuzz`: the caller's bearer token, fetched again whenever the API answers 401.

The run's own calls end sessions (logout, ``all: true``, a revoked session), so a token can die mid-run; a
fresh login (or client-credentials grant for the service account) on the next 401 keeps fuzzing authenticated.
The caller comes from the environment: ``FUZZ_BASE_URL``, ``FUZZ_TOKEN_PATH`` and ``FUZZ_TOKEN_BODY`` (JSON).
"""

import json
import os

import requests
import schemathesis

TOKEN_PATH = os.environ.get("FUZZ_TOKEN_PATH", "")

if TOKEN_PATH:

    @schemathesis.auth(retry_on=[401])
    class BearerToken:
        def get(self, case: schemathesis.Case, context: schemathesis.AuthContext) -> str:
            response = requests.post(
                os.environ["FUZZ_BASE_URL"] + TOKEN_PATH, json=json.loads(os.environ["FUZZ_TOKEN_BODY"]), timeout=30
            )
            response.raise_for_status()
            return response.json()["access_token"]

        def set(self, case: schemathesis.Case, data: str, context: schemathesis.AuthContext) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}
