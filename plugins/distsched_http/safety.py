"""Safety helpers of the http/rpc executors: ``${NAME}`` resolution, secret scrubbing and
the host allow-list.

* ``${NAME}`` in a header value or in the URL is replaced at execution time by the worker's
  environment variable ``NAME``. The task is never changed: the resolved text exists only
  for the request. Every resolved value is a *secret*: it is replaced by ``***`` in the
  Outcome (value, error, meta) and in log records emitted while the request runs (ours and
  httpx/httpcore's), in its plain, percent-encoded and JSON-escaped forms.
* The allow-list (worker setting ``http_allow``) names the hosts a worker may call: exact
  host names, ``*.suffix`` wildcards (sub-domains only) and IP networks. Networks match
  IP-literal URLs only; names are never resolved to check them.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from typing import Any
from urllib.parse import quote, quote_plus

import attrs

from distsched.model import Outcome

REDACTED = "***"
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: Shortest secret prefix scrubbed at the end of a truncated excerpt.
_MIN_TAIL = 3


class MissingVariable(Exception):
    """A ``${NAME}`` reference to a variable that is not set on this worker."""

    def __init__(self, name: str, where: str) -> None:
        super().__init__(
            f"environment variable {name!r} referenced in {where} is not set on this worker"
        )
        self.name = name
        self.where = where


def resolve(text: str, where: str, secrets: set[str], environ: Mapping[str, str] | None = None) -> str:
    """Replace every ``${NAME}`` in ``text``; add the values used to ``secrets``."""
    env = os.environ if environ is None else environ

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        value = env.get(name)
        if value is None:
            raise MissingVariable(name, where)
        if value:
            secrets.add(value)
        return value

    return ENV_REF.sub(substitute, text)


def _variants(secret: str) -> set[str]:
    """The forms a secret can take in a URL, a JSON body or an exception message."""
    forms = {
        secret,
        quote(secret, safe=""),
        quote(secret, safe="/:@!$&'()*+,;="),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
    }
    return {form for form in forms if form}


class Scrubber:
    """Removes known secret values from text, JSON values and Outcomes."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))
        forms: set[str] = set()
        for secret in self.secrets:
            forms |= _variants(secret)
        self._forms = tuple(sorted(forms, key=len, reverse=True))

    def __bool__(self) -> bool:
        return bool(self._forms)

    def text(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, REDACTED)
        return text

    def tail(self, text: str) -> str:
        """Scrub, and also drop a secret's prefix left at the end of a truncated text."""
        text = self.text(text)
        for form in self._forms:
            for n in range(len(form) - 1, _MIN_TAIL - 1, -1):
                if text.endswith(form[:n]):
                    return text[:-n] + REDACTED
        return text

    def value(self, value: Any) -> Any:
        if not self._forms:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.value(k): self.value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(v) for v in value]
        return value

    def outcome(self, outcome: Outcome) -> Outcome:
        if not self._forms:
            return outcome
        return attrs.evolve(
            outcome,
            value=self.value(outcome.value),
            error=self.text(outcome.error) if outcome.error is not None else None,
            meta=self.value(outcome.meta),
        )


#: The secrets of the request the current asyncio task is running (read by the log filter).
ACTIVE: ContextVar[Scrubber | None] = ContextVar("distsched_http_secrets", default=None)


class ScrubFilter(logging.Filter):
    """Scrubs the current request's secrets from records of httpx, httpcore and ours.

    Logging runs in the caller's task, so the context variable holds exactly the secrets of
    the request that emitted the record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        scrubber = ACTIVE.get()
        if not scrubber:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken record is logging's problem, not ours
            return True
        clean = scrubber.text(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = scrubber.text(logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = scrubber.text(record.stack_info)
        return True


LOGGERS = (
    "distsched.http",
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
)
_FILTER = ScrubFilter()


def install_log_filter() -> None:
    """Attach the scrubbing filter to the loggers a request can emit on (idempotent).

    Logger filters do not apply to records of child loggers, hence the explicit list.
    """
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


# -- allow-list ----------------------------------------------------------------------------
_HOST_RE = re.compile(r"^[a-z0-9_]([a-z0-9_\-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_\-]*[a-z0-9_])?)*$")


def normalise_host(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


@attrs.frozen
class AllowList:
    hosts: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def from_setting(cls, value: Any) -> AllowList | None:
        """``None`` (no setting) allows every host; an empty list allows none."""
        if value is None:
            return None
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ValueError(
                f"http_allow must be a list of host names, '*.suffix' wildcards or IP networks, "
                f"not {value!r}"
            )
        hosts: set[str] = set()
        suffixes: list[str] = []
        networks: list[Any] = []
        for entry in value:
            if not isinstance(entry, str) or not entry.strip():
                raise ValueError(f"http_allow: entry {entry!r} is not a non-empty string")
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
                continue
            except ValueError:
                pass
            text = entry.strip()
            wildcard = text.startswith("*.")
            host = normalise_host(text[2:] if wildcard else text)
            if not _HOST_RE.match(host):
                raise ValueError(
                    f"http_allow: {entry!r} is not a host name, a '*.suffix' wildcard or an "
                    f"IP network (no schemes, ports or paths)"
                )
            if wildcard:
                suffixes.append("." + host)
            else:
                hosts.add(host)
        return cls(frozenset(hosts), tuple(suffixes), tuple(networks))

    def allows(self, host: str) -> bool:
        host = normalise_host(host)
        if not host:
            return False
        address = _ip(host.split("%", 1)[0])
        if address is not None:
            candidates = [address]
            mapped = getattr(address, "ipv4_mapped", None)
            if mapped is not None:
                candidates.append(mapped)
            return any(a in net for a in candidates for net in self.networks if a.version == net.version)
        if host in self.hosts:
            return True
        return any(host.endswith(suffix) for suffix in self.suffixes)
