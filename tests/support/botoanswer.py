"""An HTTP answer made here for a botocore client, built the way its transport builds one
(an AWSResponse over a urllib3 response that has not read its body yet), so a `before-send`
handler can answer a call and nothing leaves this machine."""

from __future__ import annotations

import io
from typing import Any

import botocore.awsrequest
import urllib3


def http_answer(url: str, body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Any:
    """The answer `status` with `body` to a request for `url`, as botocore's transport hands it on."""
    raw = urllib3.response.HTTPResponse(body=io.BytesIO(body), status=status, preload_content=False)
    fields: Any = botocore.awsrequest.HeadersDict(headers or {})
    return botocore.awsrequest.AWSResponse(url, status, fields, raw)


def answer_with(body: bytes, seen: list[Any]) -> Any:
    """A `before-send` handler that records each request in `seen` and answers it with `body`."""

    def answer(request: Any, **_: Any) -> Any:
        seen.append(request)
        return http_answer(request.url, body, headers={"Content-Length": str(len(body))})

    return answer
