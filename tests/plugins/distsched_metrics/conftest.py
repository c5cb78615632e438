"""Scraping a real /metrics endpoint over HTTP and reading its samples."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families


class Samples(dict):
    """(sample name, frozenset of label pairs) -> value, from one scrape."""

    def get_value(self, name: str, **labels: str) -> float:
        return self.get((name, frozenset(labels.items())), 0.0)

    def total(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels``."""
        want = set(labels.items())
        return sum(v for (n, ls), v in self.items() if n == name and want <= ls)


def scrape_url(url: str) -> Samples:
    response = httpx.get(url, timeout=5.0)
    response.raise_for_status()
    assert response.headers["content-type"].startswith("text/plain")
    out = Samples()
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


@pytest.fixture
def scrape() -> Callable[[str], Samples]:
    return scrape_url
