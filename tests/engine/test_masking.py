"""``distsched.masking.mask_secrets``: the one masker of what the CLI and the web dashboard show."""

from __future__ import annotations

from distsched.config import EngineConfig
from distsched.masking import MAX_DEPTH, mask_secrets, mask_settings


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


def test_secret_pairs_in_free_text_are_masked() -> None:
    """An error message that quotes a secret as ``name=value`` was shown in clear wherever
    the task's error is shown (the task log, ``tasks show``, the dashboard): only URLs were
    redacted in text."""
    cases = {
        "cannot reach db postgres://admin:hunter2@db/prod (password=hunter2)":
            "cannot reach db postgres://admin:***@db/prod (password=***)",
        'login refused: {"api_key": "k123", "user": "bob"}': 'login refused: {"api_key": ***, "user": "bob"}',
        "upstream said Authorization: Bearer abc.def is expired": "upstream said Authorization: *** is expired",
        "retry with access_token=abc&page=2; secret='a b' db_password: pw":
            "retry with access_token=***&page=2; secret=*** db_password: ***",
        "X-Api-Key: k at 12:30:01": "X-Api-Key: *** at 12:30:01",
    }
    for text, shown in cases.items():
        assert mask_secrets(text) == shown
        assert mask_secrets({"error": text}) == {"error": shown}


def test_words_that_only_look_like_secret_names_are_shown() -> None:
    for text in ("tokenizer=bert", "max_tokens: 5", "at 12:30:01", "a password: ", "password=***", "no secret here"):
        assert mask_secrets(text) == text


def test_masking_a_long_hostile_text_takes_one_scan() -> None:
    """A first pattern for the pairs backtracked on long runs of name characters: 2,000
    characters of ``token_`` took 16 s, and an error message is up to a result's size. The
    pattern tries only a run's start now. Not a speed figure: a bound that a quadratic
    pattern misses by orders of magnitude (20,000 characters each, about 1 ms now)."""
    import time

    hostile = ["token_" * 3400 + "=", "pass." * 4000 + "=", "a" * 20000 + ":", '"token' * 3400 + "=1",
               'token="' * 2900, "token: bearer " * 1500]
    started = time.process_time()
    for text in hostile:
        mask_secrets(text)
    assert time.process_time() - started < 5.0


def test_a_plugin_settings_webhook_urls_show_only_scheme_host_and_port() -> None:
    """A Slack or Mattermost webhook URL's path is its token: ``--show-config`` and
    ``EngineConfig``'s repr (``mask_settings``) show it as ``/***`` - every URL under a key
    naming a hook, and under any key a URL whose path has a token-like segment - while
    ordinary values and URLs stay as they are."""
    table = {
        "webhook_urls": ["https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX",
                         "http://mattermost.local:8065/hooks/xkq9z8abc7defgh6ijk5lmno4p?channel=ops"],
        "slack_hook": "https://hooks.slack.com/services/T1/B1/short",
        "notify": {"url": "https://discord.com/api/webhooks/1234567890123/abcDEFghiJKL0123456789mnoPQRstu"},
        "dashboard_url": "https://distsched.example.com/ui",
        "api": "https://api.example.com/v1/reports/daily-summary-of-things",
        "smtp_host": "smtp.example.com",
        "email_to": ["ops@example.com", "On call <oncall@example.com>"],
        "min_interval": 60,
        "webhook_format": "json",
        "smtp_password_env": "DISTSCHED_SMTP_PASSWORD",
        "api_token": "s3cret",
    }
    shown = mask_settings(table)
    assert shown == {
        "webhook_urls": ["https://hooks.slack.com/***", "http://mattermost.local:8065/***"],
        "slack_hook": "https://hooks.slack.com/***",
        "notify": {"url": "https://discord.com/***"},
        "dashboard_url": "https://distsched.example.com/ui",
        "api": "https://api.example.com/v1/reports/daily-summary-of-things",
        "smtp_host": "smtp.example.com",
        "email_to": ["ops@example.com", "On call <oncall@example.com>"],
        "min_interval": 60,
        "webhook_format": "json",
        "smtp_password_env": "***",
        "api_token": "***",
    }
    assert table["webhook_urls"][0].endswith("XXXX"), "its argument is not changed"
    # a URL it cannot parse shows nothing after its scheme; a host alone stays
    assert mask_settings({"webhook_url": "https://[::1/services/x"}) == {"webhook_url": "https://***"}
    assert mask_settings({"webhook_url": "https://hooks.example.com/"}) == {"webhook_url": "https://hooks.example.com/"}
    config = EngineConfig(storage="memory://", plugin_settings={"alerts": {"webhook_urls": table["webhook_urls"]}})
    assert "XXXX" not in repr(config) and "xkq9" not in repr(config)
    assert "https://hooks.slack.com/***" in repr(config)
