"""HTX spot REST client: signed calls, typed results, one error family.

Secrets live only inside this object for the duration of a job; they are never logged and never
put into an exception text (the signed query, which holds AccessKeyId and Signature, is not
logged either: see ``redact``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol
from urllib.parse import urlsplit

from exchanges.venues.kit.transport import HttpPool, Response, TransportError, shared_pool

from . import signing
from .errors import ErrorKind, HtxError, classify
from .types import Account, AccountBalance, ApiKeyInfo, BalanceLine, RateLimit

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.huobi.pro"
# (connect, read) seconds. HTX normally answers in well under a second.
DEFAULT_TIMEOUT = (3.05, 10.0)
# Longest pause we take in a job when HTX's rate-limit headers say the window is used up.
MAX_RATE_LIMIT_WAIT_MS = 2000

_SECRET_PARAMS = re.compile(r"(AccessKeyId|Signature|accessKey)=[^&\s]*")


def redact(text: str) -> str:
    """Strip signing parameters from a URL or query string before it reaches a log."""
    return _SECRET_PARAMS.sub(r"\1=[redacted]", text)


class Gate(Protocol):
    """Admission to HTX before each request (see ``exchanges.venues.kit.gate``)."""

    def slot(self, path: str, scope: str) -> AbstractContextManager[object]: ...


class HtxClient:
    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        access_key: str = "",
        secret_key: str = "",
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        pool: HttpPool | None = None,
        gate: Gate | None = None,
        scope: str = "",
    ):
        parts = urlsplit(base_url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("HTX base URL must look like https://api.huobi.pro")
        self.base_url = f"{parts.scheme}://{parts.netloc}{parts.path}"
        # The host we sign is the host we call: the netloc as sent in the Host header.
        self.host = parts.netloc.lower()
        self._path_prefix = parts.path
        self._access_key = access_key
        self._secret_key = secret_key
        self.timeout = timeout
        self.pool = pool or shared_pool()
        # Whose HTX limits signed calls count against (see gate.py); public calls count per IP.
        self.gate = gate
        self.scope = scope or f"key:{hashlib.sha256(access_key.encode()).hexdigest()[:16]}"
        self.clock_offset_ms = 0  # HTX time minus our time, measured by sync_clock()
        self.calls = 0  # HTTP requests sent by this client
        self.last_rate_limit = RateLimit(None, None)

    def __repr__(self) -> str:
        return f"<HtxClient {self.base_url}>"

    def close(self) -> None:
        """Nothing to release: connections go back to the shared pool after each call."""

    def __enter__(self) -> HtxClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Public endpoints -------------------------------------------------------------------

    def server_time_ms(self) -> int:
        with _parsing("/v1/common/timestamp"):
            return int(self._get("/v1/common/timestamp", signed=False))

    def sync_clock(self) -> int:
        """Measure HTX's clock against ours and sign with HTX's time from now on."""
        before = time.time() * 1000
        server = self.server_time_ms()
        after = time.time() * 1000
        self.clock_offset_ms = int(server - (before + after) / 2)
        return self.clock_offset_ms

    def tickers(self) -> dict[str, Decimal]:
        """Latest price (``close``) by lower-case symbol, e.g. ``{"btcusdt": Decimal(...)}``."""
        data = self._get("/market/tickers", signed=False)
        prices: dict[str, Decimal] = {}
        if not isinstance(data, list):
            raise HtxError(ErrorKind.UNKNOWN, message="unexpected HTX answer", path="/market/tickers")
        for row in data:
            try:
                # Prices are JSON numbers; go through str so no binary float leaks in.
                prices[str(row["symbol"])] = Decimal(str(row["close"]))
            except (KeyError, InvalidOperation, TypeError):
                continue
        return prices

    # Signed endpoints -------------------------------------------------------------------

    def uid(self) -> int:
        with _parsing("/v2/user/uid"):
            return int(self._get("/v2/user/uid"))

    def api_key_info(self, uid: int) -> ApiKeyInfo:
        rows = self._get("/v2/user/api-key", {"uid": str(uid), "accessKey": self._access_key})
        with _parsing("/v2/user/api-key"):
            for row in rows or ():
                if row.get("accessKey") == self._access_key:
                    return _parse_key_info(row)
        raise HtxError(ErrorKind.UNKNOWN, message="HTX did not return this key", path="/v2/user/api-key")

    def accounts(self) -> list[Account]:
        data = self._get("/v1/account/accounts")
        with _parsing("/v1/account/accounts"):
            return [
                Account(
                    id=int(a["id"]),
                    type=str(a["type"]),
                    state=str(a.get("state", "")),
                    subtype=str(a.get("subtype") or ""),
                )
                for a in data
            ]

    def balance(self, account: Account) -> AccountBalance:
        path = f"/v1/account/accounts/{account.id}/balance"
        data = self._get(path)
        lines = []
        with _parsing(path):
            for row in data.get("list", ()):
                try:
                    amount = Decimal(str(row["balance"]))
                except (KeyError, InvalidOperation):
                    continue
                lines.append(
                    BalanceLine(currency=str(row["currency"]), type=str(row["type"]), balance=amount)
                )
        return AccountBalance(account=account, lines=tuple(lines))

    # Transport --------------------------------------------------------------------------

    def _get(self, path: str, params: dict[str, str] | None = None, *, signed: bool = True) -> Any:
        if signed and (not self._access_key or not self._secret_key):
            raise ValueError("signed HTX call without keys")
        slot = self.gate.slot(path, self.scope if signed else "ip") if self.gate else nullcontext()
        with slot:
            # Signed once admitted, so time spent waiting for a slot does not age the timestamp.
            url = self._url(path, params, signed=signed)
            self.calls += 1
            try:
                response = self.pool.get(url, timeout=self.timeout)
            except TransportError as exc:
                # Never the URL in the message: it holds AccessKeyId and Signature.
                message = "HTX did not answer in time" if exc.timeout else f"could not reach HTX ({exc})"
                raise HtxError(ErrorKind.UNAVAILABLE, message=message, path=path) from None
        self._note_rate_limit(response)
        return _unwrap(response, path)

    def _url(self, path: str, params: dict[str, str] | None, *, signed: bool) -> str:
        if signed:
            self._respect_rate_limit(path)
            query = signing.signed_query(
                method="GET",
                host=self.host,
                path=self._path_prefix + path,
                access_key=self._access_key,
                secret=self._secret_key,
                timestamp=signing.htx_timestamp_at(time.time() + self.clock_offset_ms / 1000),
                params=params,
            )
        else:
            query = signing.canonical_query(params or {})
        return f"{self.base_url}{path}" + (f"?{query}" if query else "")

    def _respect_rate_limit(self, path: str) -> None:
        """HTX said no calls are left in this window: wait for the next one if it is near,
        otherwise give up for now (a transient error: the job is retried later)."""
        limit = self.last_rate_limit
        if limit.remaining != 0 or limit.expires_at_ms is None:
            return
        wait_ms = limit.expires_at_ms - (time.time() * 1000 + self.clock_offset_ms)
        if wait_ms <= 0:
            return
        if wait_ms > MAX_RATE_LIMIT_WAIT_MS:
            raise HtxError(ErrorKind.RATE_LIMITED, message="no HTX calls left in this window", path=path)
        time.sleep(wait_ms / 1000)

    def _note_rate_limit(self, response: Response) -> None:
        remain = response.headers.get("X-HB-RateLimit-Requests-Remain")
        expire = response.headers.get("X-HB-RateLimit-Requests-Expire")
        if remain is not None or expire is not None:
            self.last_rate_limit = RateLimit(_int_or_none(remain), _int_or_none(expire))


def _unwrap(response: Response, path: str) -> Any:
    try:
        body = json.loads(response.body)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        # Not HTX's API talking: a gateway, proxy or CDN page. Never a verdict on the key.
        status = response.status
        kind = ErrorKind.RATE_LIMITED if status == 429 else ErrorKind.UNAVAILABLE
        raise HtxError(
            kind, code=str(status), message=f"HTX answered HTTP {status} without an API answer", path=path
        )
    # v1 envelope first: auth failures on v2 paths may come back in it too (htx-api.md §5.1).
    if body.get("status") == "error":
        code = str(body.get("err-code") or body.get("err_code") or "")
        message = str(body.get("err-msg") or body.get("err_msg") or "")
        raise HtxError(classify(code, message), code=code, message=message, path=path)
    if body.get("status") == "ok":
        return body.get("data")
    if "code" in body:
        code = str(body["code"])
        if code == "200" and body.get("success", True) is not False:
            return body.get("data")
        message = str(body.get("message") or "")
        raise HtxError(classify(code, message), code=code, message=message, path=path)
    raise HtxError(ErrorKind.UNKNOWN, code=str(response.status), message="unexpected HTX answer", path=path)


@contextmanager
def _parsing(path: str) -> Iterator[None]:
    """An answer in HTX's envelope but not in the expected shape is an HtxError (retried), not
    a crash that would leave the job re-queued forever."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError, InvalidOperation):
        raise HtxError(ErrorKind.UNKNOWN, message="unexpected HTX answer", path=path) from None


def _parse_key_info(row: dict[str, Any]) -> ApiKeyInfo:
    permissions = frozenset(p.strip() for p in str(row.get("permission") or "").split(",") if p.strip())
    ips = tuple(ip.strip() for ip in str(row.get("ipAddresses") or "").split(",") if ip.strip())
    created = row.get("createTime")
    return ApiKeyInfo(
        access_key=str(row.get("accessKey", "")),
        status=str(row.get("status", "")),
        note=str(row.get("note") or ""),
        permissions=permissions,
        ip_addresses=ips,
        valid_days=int(row.get("validDays", -1)),
        created_at=datetime.fromtimestamp(int(created) / 1000, UTC) if created else None,
    )


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
