"""Every RUNWARE_* setting is validated when read: a value typed wrong is a clear error
naming the variable and the form it takes, never a crash or a silent default."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from aiohttp.test_utils import make_mocked_request
from conftest import pack_module

config_mod = pack_module("nodes.runware.config")
cache_mod = pack_module("nodes.runware.cache")
errors = pack_module("nodes.runware.errors")
host = pack_module("nodes.host")
routes = pack_module("nodes.routes")

ALL_SETTINGS = ("RUNWARE_API_URL", "RUNWARE_JOB_TIMEOUT", "RUNWARE_MAX_DOWNLOAD_MB",
                "RUNWARE_CACHE_DIR", "RUNWARE_CACHE_MAX_GB", "RUNWARE_CACHE_MAX_DAYS",
                "RUNWARE_ALLOWED_HOSTS", "RUNWARE_OUTPUT_DIR", "RUNWARE_USER_DIR",
                "RUNWARE_TEMP_DIR")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ALL_SETTINGS:
        monkeypatch.delenv(name, raising=False)


def make_cache(default_root):
    """The result cache as the nodes make it: RUNWARE_CACHE_* settings, validated."""
    return cache_mod.ResultCache(**cache_mod.cache_settings_from_env(default_root))


def read_client(tmp_path):
    return config_mod.ClientConfig.from_env()


def read_cache(tmp_path):
    return make_cache(tmp_path / "default")


def read_dirs(tmp_path):
    return host.output_directory(), host.user_directory(), host.temp_directory()


def read_hosts(tmp_path):
    return routes._host_allowed("127.0.0.1:8188")


READER = {"RUNWARE_API_URL": read_client, "RUNWARE_JOB_TIMEOUT": read_client,
          "RUNWARE_MAX_DOWNLOAD_MB": read_client, "RUNWARE_CACHE_DIR": read_cache,
          "RUNWARE_CACHE_MAX_GB": read_cache, "RUNWARE_CACHE_MAX_DAYS": read_cache,
          "RUNWARE_ALLOWED_HOSTS": read_hosts, "RUNWARE_OUTPUT_DIR": read_dirs,
          "RUNWARE_USER_DIR": read_dirs, "RUNWARE_TEMP_DIR": read_dirs}

NUMBERS = ["20GB", "abc", "nan", "NaN", "inf", "-inf", "0", "-5", "1e400", "", "1,5",
           "0x10", "20 GB", "--1"]
BAD = {
    "RUNWARE_JOB_TIMEOUT": NUMBERS + ["20m", "1e9"],
    "RUNWARE_MAX_DOWNLOAD_MB": NUMBERS + ["4G"],
    "RUNWARE_CACHE_MAX_GB": NUMBERS + ["20GiB"],
    "RUNWARE_CACHE_MAX_DAYS": NUMBERS + ["30d", "1e9"],
    "RUNWARE_API_URL": ["api.runware.ai/v1", "ftp://api.runware.ai/v1", "http://",
                        "https:///v1", "https://api.runware.ai:port/v1",
                        "https://api.runware.ai:99999/v1", "https://exa mple.com/v1",
                        "//api.runware.ai/v1", "localhost:8765"],
    "RUNWARE_ALLOWED_HOSTS": ["http://mybox.lan", "mybox.lan:8188", "*", "my box.lan",
                              "mybox.lan/comfy", "mybox.lan,*.example.com", "-bad-.lan"],
}
GOOD = {
    "RUNWARE_JOB_TIMEOUT": [("1200", 1200.0), (" 90.5 ", 90.5), ("", 1200.0)],
    "RUNWARE_MAX_DOWNLOAD_MB": [("512", 512 * 1024**2), ("0.5", 512 * 1024)],
    "RUNWARE_CACHE_MAX_GB": [("20", 20 * 1024**3), ("0.5", 1024**3 // 2)],
    "RUNWARE_CACHE_MAX_DAYS": [("30", 30 * 86400.0), ("0.25", 6 * 3600.0)],
    "RUNWARE_API_URL": [("http://127.0.0.1:8765/v1", "http://127.0.0.1:8765/v1"),
                        ("HTTPS://api.runware.ai/v1", "HTTPS://api.runware.ai/v1"),
                        ("http://[::1]:8765/v1", "http://[::1]:8765/v1")],
}
# "" means unset (the default) for numbers; only "" is fine for the rest.
BAD["RUNWARE_JOB_TIMEOUT"].remove("")
for _name in ("RUNWARE_MAX_DOWNLOAD_MB", "RUNWARE_CACHE_MAX_GB", "RUNWARE_CACHE_MAX_DAYS"):
    BAD[_name].remove("")

CASES = [(name, value) for name, values in BAD.items() for value in values]


@pytest.mark.parametrize(("name", "value"), CASES)
def test_a_wrong_value_is_a_clear_error_naming_the_variable(monkeypatch, tmp_path, name,
                                                            value):
    monkeypatch.setenv(name, value)
    with pytest.raises(errors.SettingError) as info:
        READER[name](tmp_path)
    text = str(info.value)
    assert name in text and "must be" in text, text
    assert "restart ComfyUI" in text
    assert isinstance(info.value, ValueError)  # what callers of the old readers caught


@pytest.mark.parametrize("name", ["RUNWARE_JOB_TIMEOUT", "RUNWARE_CACHE_MAX_GB",
                                  "RUNWARE_CACHE_MAX_DAYS", "RUNWARE_MAX_DOWNLOAD_MB"])
def test_number_errors_say_the_unit_and_an_example(monkeypatch, tmp_path, name):
    monkeypatch.setenv(name, "20GB")
    with pytest.raises(errors.SettingError) as info:
        READER[name](tmp_path)
    assert re.search(r"a number of \w+.* greater than 0, without a unit \(like \d+\)",
                     str(info.value)), str(info.value)


@pytest.mark.parametrize(("name", "value", "expected"),
                         [(n, v, e) for n, pairs in GOOD.items() for v, e in pairs])
def test_good_values_are_read(monkeypatch, name, value, expected):
    monkeypatch.setenv(name, value)
    config = config_mod.ClientConfig.from_env()
    cache = config_mod.cache_settings_from_env(Path("/nowhere"))
    got = {"RUNWARE_JOB_TIMEOUT": config.job_timeout,
           "RUNWARE_MAX_DOWNLOAD_MB": config.max_download_bytes,
           "RUNWARE_API_URL": config.api_url,
           "RUNWARE_CACHE_MAX_GB": cache.max_bytes,
           "RUNWARE_CACHE_MAX_DAYS": cache.max_age}[name]
    assert got == expected


def test_cache_settings_defaults_and_overrides(monkeypatch, tmp_path):
    settings = config_mod.cache_settings_from_env(tmp_path / "d")
    assert settings == config_mod.CacheSettings(tmp_path / "d", 20 * 1024**3, 30 * 86400.0)
    monkeypatch.setenv("RUNWARE_CACHE_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("RUNWARE_CACHE_MAX_GB", "2.5")
    monkeypatch.setenv("RUNWARE_CACHE_MAX_DAYS", "7")
    cache = make_cache(tmp_path / "d")
    assert cache.root == tmp_path / "elsewhere"
    assert cache.max_bytes == int(2.5 * 1024**3) and cache.max_age == 7 * 86400.0


@pytest.mark.parametrize("name", ["RUNWARE_CACHE_DIR", "RUNWARE_OUTPUT_DIR",
                                  "RUNWARE_USER_DIR", "RUNWARE_TEMP_DIR"])
def test_a_folder_setting_that_names_a_file_is_refused(monkeypatch, tmp_path, name):
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    monkeypatch.setenv(name, str(a_file))
    with pytest.raises(errors.SettingError, match=f"{name}.*must be the path of a folder"):
        READER[name](tmp_path)
    monkeypatch.setenv(name, str(tmp_path / "new" / "folder"))  # missing is fine: made later
    READER[name](tmp_path)


def test_allowed_hosts_accepts_a_clean_list(monkeypatch):
    monkeypatch.setenv("RUNWARE_ALLOWED_HOSTS", " MyBox.lan , comfy.example.com,,192.168.1.5 ")
    assert config_mod.env_host_list("RUNWARE_ALLOWED_HOSTS") == {
        "mybox.lan", "comfy.example.com", "192.168.1.5"}


def test_a_bad_allowed_hosts_value_refuses_the_key_routes_clearly(monkeypatch, tmp_path):
    """Fail closed: a typo must not allow every host, and the page says what is wrong."""
    monkeypatch.setenv("RUNWARE_ALLOWED_HOSTS", "http://mybox.lan")
    store = pack_module("nodes.runware.keystore").KeyStore(tmp_path / "k")
    handlers = {m: h for m, _, h in routes.make_handlers(lambda: store)}
    request = make_mocked_request("GET", f"{routes.PREFIX}/key",
                                  headers={"Host": "mybox.lan:8188"})
    reply = asyncio.run(handlers["GET"](request))
    assert reply.status == 500
    assert "RUNWARE_ALLOWED_HOSTS" in reply.text and "without http://" in reply.text


def test_a_bad_api_url_is_named_when_a_node_runs(env, monkeypatch):
    """Through the node layer too: the error a user sees names the variable."""
    monkeypatch.setenv("RUNWARE_API_URL", "api.runware.ai")
    common = pack_module("nodes.run")
    with pytest.raises(errors.SettingError, match="RUNWARE_API_URL"):
        common.client_config()
    assert env.log == []  # the double is up; nothing was sent to it
