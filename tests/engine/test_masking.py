"""``distsched.masking.mask_secrets``: the one masker of what the CLI and the web dashboard show."""

from __future__ import annotations

from distsched.masking import MAX_DEPTH, mask_secrets


def test_urls_and_secret_keys_are_masked_at_any_depth() -> None:
    value = {"target": "https://u:pw@h/x?token=t&page=2", "headers": {"Authorization": "Bearer b", "X-Api-Key": "k",
                                                                        "Accept": "json"},
             "args": ("plain", ["see https://u:pw2@h/"]), "kwargs": {"password": "p", "empty_token": ""}}
    assert mask_secrets(value) == {
        "target": "https://u:***@h/x?token=***&page=2",
        "headers": {"Authorization": "***", "X-Api-Key": "***", "Accept": "json"},
        "args": ["plain", ["see https://u:***@h/"]], "kwargs": {"password": "***", "empty_token": ""},
    }
    assert value["headers"]["Authorization"] == "Bearer b"  # a copy: the argument is unchanged


def test_what_is_nested_too_deep_is_hidden_not_shown() -> None:
    deep: object = {"password": "deep-canary"}
    for _ in range(MAX_DEPTH + 5):
        deep = {"next": deep}
    text = repr(mask_secrets(deep))
    assert "deep-canary" not in text and "***" in text


def test_other_values_pass_through() -> None:
    assert mask_secrets(3) == 3 and mask_secrets(None) is None and mask_secrets("no url") == "no url"
