"""Loaded by schemathesis (SCHEMATHESIS_HOOKS) when tests/e2e/test_fuzzing.py runs it: every
case is authenticated as a real account, signed up on the server under test. Fuzzing may
delete that account or change it; a 401 then makes schemathesis ask for a fresh one."""

from __future__ import annotations

import os
import uuid
from typing import Any

import httpx
import schemathesis


@schemathesis.auth()
class FreshAccount:
    def get(self, case: Any, context: Any) -> str:
        name = f"fuzz_{uuid.uuid4().hex[:12]}"
        answer = httpx.post(os.environ["ALPHABET_FUZZ_URL"] + "/api/auth/signup", timeout=60,
                            json={"username": name, "email": f"{name}@example.com",
                                  "password": "correct horse battery"})
        answer.raise_for_status()
        return str(answer.json()["access"])

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}
