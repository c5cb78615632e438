"""The one URL redactor: every secret form of a storage URL is hidden, the rest is kept."""

import pytest

from distsched.config import EngineConfig, check_storage_url
from distsched.model import ValidationError
from distsched.urls import redact_url, userinfo_end

CANARY = "CanaryPw"


@pytest.mark.parametrize(("url", "expected"), [
    # user:PASSWORD@
    (f"redis://default:{CANARY}@127.0.0.1:6379/0", "redis://default:***@127.0.0.1:6379/0"),
    (f"redis://:{CANARY}@h", "redis://:***@h"),
    (f"rediss://u:{CANARY}@h:6390/1?ssl_cert_reqs=none", "rediss://u:***@h:6390/1?ssl_cert_reqs=none"),
    # unencoded special characters in the password
    (f"redis://default:p?w{CANARY}@h:1/0", "redis://default:***@h:1/0"),
    (f"redis://user:Pass#w/rd{CANARY}@host/0", "redis://user:***@host/0"),
    (f"redis://user:se/cret{CANARY}@host/0?namespace=x", "redis://user:***@host/0?namespace=x"),
    (f"redis://u:p@ss{CANARY}@h/0", "redis://u:***@h/0"),
    (f"redis://u:p?x={CANARY}@h/0", "redis://u:***@h/0"),
    (f"redis://u:{CANARY}%40x@h/0", "redis://u:***@h/0"),
    # sentinel_password and other secret query parameters
    (f"redis+sentinel://s1:26379,s2/mymaster/0?namespace=a&sentinel_password={CANARY}",
     "redis+sentinel://s1:26379,s2/mymaster/0?namespace=a&sentinel_password=***"),
    (f"redis+sentinel://u:{CANARY}@s1,s2/m?sentinel_password=a@b{CANARY}&namespace=n",
     "redis+sentinel://u:***@s1,s2/m?sentinel_password=***&namespace=n"),
    (f"redis+sentinel://s1/m?sentinel_password=Pass#w/rd{CANARY}", "redis+sentinel://s1/m?sentinel_password=***"),
    (f"redis://h/0?password={CANARY}", "redis://h/0?password=***"),
    (f"redis://h/0?password=a&b{CANARY}", "redis://h/0?password=***"),
    (f"postgresql://h/db?sslmode=require&sslpassword={CANARY}", "postgresql://h/db?sslmode=require&sslpassword=***"),
    (f"x://h/?access_token={CANARY}&api_key={CANARY}&X-Auth={CANARY}&client_secret={CANARY}",
     "x://h/?access_token=***&api_key=***&X-Auth=***&client_secret=***"),
    (f"redis://h/0?token={CANARY};namespace=n", "redis://h/0?token=***;namespace=n"),
    (f"redis://h/0?sentinel%5Fpassword={CANARY}", "redis://h/0?sentinel%5Fpassword=***"),
    # without a scheme, as a careless user may type it
    (f"default:{CANARY}@host:6379", "default:***@host:6379"),
])
def test_every_secret_form_is_hidden(url, expected):
    shown = redact_url(url)
    assert shown == expected
    assert CANARY not in shown


@pytest.mark.parametrize("url", [
    "memory://", "memory://test-1", "redis://localhost:6379/0", "redis://user@h/0?namespace=prod.eu&retention=1d",
    "redis+sentinel://s1:26379,[::1]:26380/mymaster/2?namespace=x", "rediss://h/0?ssl_ca_certs=/etc/ca.pem",
])
def test_urls_without_secrets_are_unchanged(url):
    assert redact_url(url) == url


def test_userinfo_end_agrees_with_the_redactor():
    assert userinfo_end("redis://u:p?w@h/0") == len("redis://u:p?w")
    assert userinfo_end("redis://h/0?sentinel_password=p@ss") == -1
    assert userinfo_end("redis://h/0") == -1
    assert redact_url(12345) == "12345"


def test_the_engine_config_never_shows_the_password():
    config = EngineConfig(storage=f"redis://default:{CANARY}@h/0?sentinel_password={CANARY}",
                          election=f"redis://u:{CANARY}@h/0")
    assert CANARY not in repr(config)
    assert config.storage.endswith(CANARY)  # the value itself is untouched
    with pytest.raises(ValidationError) as info:
        check_storage_url(f"default:{CANARY}@localhost")
    assert CANARY not in str(info.value) and "must be a URL" in str(info.value)


def test_urls_inside_a_text_are_redacted():
    from distsched.urls import redact_text

    text = (f"could not open redis://default:{CANARY}@db:6379/0: AuthenticationError; "
            f"tried 'redis+sentinel://s1/m?sentinel_password=Pass#w/rd{CANARY}' and (rediss://u:p?w{CANARY}@h/1)")
    shown = redact_text(text)
    assert CANARY not in shown
    assert shown == ("could not open redis://default:***@db:6379/0: AuthenticationError; "
                     "tried 'redis+sentinel://s1/m?sentinel_password=*** and (rediss://u:***@h/1)")
    assert redact_text("no url here: a:b@c") == "no url here: a:b@c"


@pytest.mark.parametrize("value, message", [
    ("0s", "must be between 1 and 3.16224e+07 seconds, not '0s'"),
    ("367d", "must be between 1 and 3.16224e+07 seconds, not '367d'"),
    ("abc", "must be a number of seconds (or a duration such as '5s'), not 'abc'"),
])
def test_a_duration_option_out_of_its_range_says_the_range(value, message):
    """A duration with units out of the option's range was reported as not a duration
    ("must be a number of seconds ... not '0s'"), without the range."""
    from distsched.model import ValidationError
    from distsched.urls import option_seconds

    with pytest.raises(ValidationError) as info:
        option_seconds("redis://h/0", "retention", value, 1, 366 * 86400)
    assert message in str(info.value)
