"""Safety helpers of the http/rpc executors: ``${NAME}`` resolution, secret scrubbing and
the host allow-list.

* ``${NAME}`` in a header value or in the URL is replaced at execution time by the worker's
  environment variable ``NAME``, if the worker lists ``NAME`` in its ``secrets`` setting
  (no list: nothing is expanded, so a job cannot read the worker's environment). The task
  is never changed: the resolved text exists only for the request. Every resolved value is a *secret*: it is replaced by ``***`` in the
  Outcome (value, error, meta) and in log records emitted while the request runs (ours and
  httpx/httpcore's), in its plain, percent-encoded and JSON-escaped forms (any mix of them,
  character by character: ``\\/``, ``\\u003c``...), without regard to case.
* The allow-list (worker setting ``http_allow``) names the hosts a worker may call: exact
  host names, ``*.suffix`` wildcards (sub-domains only) and IP networks. Networks match
  IP-literal URLs only; names are never resolved to check them.
* Link-local and cloud metadata addresses (:data:`BLOCKED_NETWORKS`) are refused whatever
  the allow-list says, unless an ``http_allow`` IP entry inside those ranges names them;
  the check is made on the addresses a name resolves to, at connection time (see
  :mod:`.client`), so it holds on every redirect hop and against DNS rebinding.
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


_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class VariableError(Exception):
    """A ``${NAME}`` reference the worker cannot expand (a ``ConfigError`` outcome)."""

    def __init__(self, message: str, name: str, where: str) -> None:
        super().__init__(message)
        self.name = name
        self.where = where


class MissingVariable(VariableError):
    """A ``${NAME}`` reference to a listed variable that is not set on this worker."""

    def __init__(self, name: str, where: str) -> None:
        super().__init__(
            f"environment variable {name!r} referenced in {where} is not set on this worker", name, where
        )


class UnlistedVariable(VariableError):
    """A ``${NAME}`` reference to a variable the worker does not list in ``secrets``."""

    def __init__(self, name: str, where: str, allowed: frozenset[str]) -> None:
        listed = f"it lists {', '.join(sorted(allowed))}" if allowed else "it lists none, so nothing is expanded"
        super().__init__(
            f"environment variable {name!r} referenced in {where} is not in this worker's secrets "
            f"({listed}); to allow it, add it to the worker's settings: [worker] secrets = [{name!r}]",
            name, where,
        )


def secrets_setting(value: Any) -> frozenset[str]:
    """The worker setting ``secrets``: the environment variables ``${NAME}`` may expand.

    None (not set) is the empty set: no expansion at all. ValueError naming the bad entry.
    """
    if value is None:
        return frozenset()
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ValueError(f"secrets must be a list of environment variable names, not {value!r}")
    for entry in value:
        if not isinstance(entry, str) or not _NAME_RE.fullmatch(entry):
            raise ValueError(
                f"secrets: entry {entry!r} is not an environment variable name (letters, digits, _)"
            )
    return frozenset(value)


def resolve(text: str, where: str, secrets: set[str], allowed: frozenset[str] = frozenset(),
            environ: Mapping[str, str] | None = None) -> str:
    """Replace every ``${NAME}`` in ``text``; add the values used to ``secrets``.

    Only names in ``allowed`` (the worker's ``secrets`` setting) are expanded: any other
    raises :class:`UnlistedVariable`, an unset one :class:`MissingVariable`.
    """
    env = os.environ if environ is None else environ

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in allowed:
            raise UnlistedVariable(name, where, allowed)
        value = env.get(name)
        if value is None:
            raise MissingVariable(name, where)
        if value:
            secrets.add(value)
        return value

    return ENV_REF.sub(substitute, text)


def _variants(secret: str) -> set[str]:
    """Whole forms a secret can take in a URL, a JSON body or an exception message (used to
    find a secret's prefix at the end of a truncated text; :func:`_pattern` covers more)."""
    forms = {
        secret,
        quote(secret, safe=""),
        quote(secret, safe="/:@!$&'()*+,;="),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        json.dumps(secret)[1:-1].replace("/", "\\/"),  # PHP's json_encode
        repr(secret)[1:-1],
    }
    try:
        forms.add(secret.encode("idna").decode("ascii"))  # a host name, as the client sends it
    except UnicodeError:
        pass
    return {form for form in forms if form}


#: The two-character JSON escapes (``\/`` is optional in JSON and written by PHP, Ruby...).
_JSON_SHORT = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n",
               "\r": "\\r", "\t": "\\t"}


def _char_forms(char: str) -> set[str]:
    """Every way one character of a secret can be written in a JSON string, a URL or a repr:
    itself, its JSON escapes (short, ``\\uXXXX`` - what Go writes for ``<>&``, PHP for
    non-ASCII - or a surrogate pair), its percent-encoding (``+`` for a space), its repr."""
    forms = {char, repr(char)[1:-1], "".join(f"%{b:02X}" for b in char.encode("utf-8", "surrogatepass"))}
    if char in _JSON_SHORT:
        forms.add(_JSON_SHORT[char])
    if char == "'":
        forms.add("\\'")
    if char == " ":
        forms.add("+")
    code = ord(char)
    if code > 0xFFFF:
        code -= 0x10000
        forms.add(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
    else:
        forms.add(f"\\u{code:04x}")
    return {form for form in forms if form}


def _pattern(secret: str) -> str:
    """A regular expression for ``secret`` written with any mix of the forms of
    :func:`_char_forms`, character by character (matched without regard to case: a host name
    comes back lower-cased, hex digits in either case)."""
    parts = []
    for char in secret:
        forms = sorted(_char_forms(char), key=len, reverse=True)
        parts.append("(?:" + "|".join(re.escape(form) for form in forms) + ")")
    return "".join(parts)


class Scrubber:
    """Removes known secret values from text, JSON values and Outcomes."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))
        forms: set[str] = set()
        for secret in self.secrets:
            forms |= _variants(secret)
        self._forms = tuple(sorted(forms, key=len, reverse=True))
        alternatives = [_pattern(secret) for secret in self.secrets]
        alternatives += [re.escape(form) for form in self._forms]
        self._regex = re.compile("|".join(alternatives), re.IGNORECASE) if alternatives else None

    def __bool__(self) -> bool:
        return bool(self._forms)

    def text(self, text: str) -> str:
        if self._regex is None:
            return text
        return self._regex.sub(REDACTED, text)

    def tail(self, text: str) -> str:
        """Scrub, and also drop a secret's prefix left at the end of a truncated text."""
        text = self.text(text)
        for form in self._forms:
            for n in range(min(len(form) - 1, len(text)), _MIN_TAIL - 1, -1):
                if text[-n:].casefold() == form[:n].casefold():
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


#: Refused whatever ``http_allow`` says unless an IP entry inside them names the address:
#: link-local (where cloud metadata services live) and the metadata addresses of clouds.
BLOCKED_NETWORKS: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = tuple(
    ipaddress.ip_network(n) for n in (
        "169.254.0.0/16",      # IPv4 link-local: AWS, GCP, Azure, OpenStack... metadata at 169.254.169.254
        "fe80::/10",           # IPv6 link-local
        "fd00:ec2::/32",       # AWS IPv6 metadata (fd00:ec2::254) and DNS
        "100.100.100.200/32",  # Alibaba Cloud metadata
    )
)


def parse_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address a URL host names (brackets, a zone, a trailing dot allowed), or None."""
    return _ip(normalise_host(host).split("%", 1)[0])


def _blocked(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    candidates = [address]
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        candidates.append(mapped)
    return any(a in net for a in candidates for net in BLOCKED_NETWORKS if a.version == net.version)


class AddressRefused(Exception):
    """A connection to a link-local or metadata address that ``http_allow`` does not name."""


def check_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address, allow: AllowList | None,
                  host: str | None = None) -> None:
    """Raise :class:`AddressRefused` if ``address`` is in :data:`BLOCKED_NETWORKS` and not
    named by an ``http_allow`` IP entry inside those ranges (``0.0.0.0/0`` does not count)."""
    if not _blocked(address) or (allow is not None and allow.names_blocked(address)):
        return
    via = f"host {host!r} resolves to " if host and parse_ip(host) is None else ""
    raise AddressRefused(
        f"{via}address {address} refused: link-local and cloud metadata addresses are called only "
        f"when http_allow lists them (for example http_allow = [\"{address}\"])"
    )


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
            if not _HOST_RE.fullmatch(host):
                raise ValueError(
                    f"http_allow: {entry!r} is not a host name, a '*.suffix' wildcard or an "
                    f"IP network (no schemes, ports or paths)"
                )
            if wildcard:
                suffixes.append("." + host)
            else:
                hosts.add(host)
        return cls(frozenset(hosts), tuple(suffixes), tuple(networks))

    def names_blocked(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        """An entry inside :data:`BLOCKED_NETWORKS` contains ``address`` (explicitly listed)."""
        candidates = [address]
        mapped = getattr(address, "ipv4_mapped", None)
        if mapped is not None:
            candidates.append(mapped)
        return any(
            a in net and any(net.version == b.version and net.subnet_of(b) for b in BLOCKED_NETWORKS)  # type: ignore[arg-type]
            for a in candidates for net in self.networks if a.version == net.version
        )

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
