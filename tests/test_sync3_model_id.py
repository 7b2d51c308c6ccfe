"""sync-3's two model ids (issue 12): the specification's `sync:lipsync@3` and the
`sync:3@0` Runware's docs pages show. A refusal as an unknown model costs nothing: the
other id is tried once (same taskUUID) and remembered per endpoint; RUNWARE_SYNC3_MODEL
picks one with no fallback. Both directions against the double."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from conftest import ovi_request, pack_module, sync3_request
from media_factory import write_mp4, write_wav

jobs = pack_module("nodes.runware.jobs")
cache_mod = pack_module("nodes.runware.cache")
config_mod = pack_module("nodes.runware.config")
errors = pack_module("nodes.runware.errors")
spec = pack_module("nodes.runware.spec")
store_mod = pack_module("nodes.runware.store")
tasks = pack_module("nodes.runware.tasks")
cli = pack_module("nodes.runware.double.cli")

SPEC_ID, DOCS_ID = "sync:lipsync@3", "sync:3@0"


def sync3_job(tmp_path, seconds=1.0):
    video = write_mp4(tmp_path / "v.mp4", frames=24, fps=12)
    audio = write_wav(tmp_path / f"a{seconds}.wav", seconds=seconds)
    facts = tasks.VideoFacts(96, 64, 12.0, 24, 2.0)
    return tasks.prepare_sync3(sync3_request(video_source=video, video_mime="video/mp4",
                                             video=facts, audio_source=audio,
                                             audio_mime="audio/wav"))


def run(job, config, cache):
    return asyncio.run(jobs.run_cached_job(job, config=config, cache=cache))


def submissions(double):
    """(model sent, accepted?) of every videoInference request, in order."""
    out = []
    for entry in double.log:
        for task in entry.get("tasks") or []:
            if isinstance(task, dict) and task.get("taskType") == "videoInference":
                out.append((task.get("model"), entry.get("status") == 200))
    return out


@pytest.fixture
def cache(tmp_path):
    return cache_mod.ResultCache(tmp_path / "cache")


def endpoint(config):
    return store_mod.api_endpoint(config.api_url)


def test_the_spec_id_is_sent_first(double, fast_config, cache, tmp_path):
    run(sync3_job(tmp_path), fast_config, cache)
    assert submissions(double) == [(SPEC_ID, True)]
    assert [t["model"] for t in double.accepted_submissions()] == [SPEC_ID]


def test_a_runware_that_knows_only_the_docs_id(double, fast_config, cache, tmp_path):
    double.sync3_model_ids = (DOCS_ID,)
    results = run(sync3_job(tmp_path), fast_config, cache)
    assert results[0].path.is_file()
    # refused as unknown (free), then the other id, under the same taskUUID
    assert submissions(double) == [(SPEC_ID, False), (DOCS_ID, True)]
    sent = [t for e in double.log for t in (e.get("tasks") or [])
            if isinstance(t, dict) and t.get("taskType") == "videoInference"]
    assert sent[0]["taskUUID"] == sent[1]["taskUUID"]
    assert len(double.accepted_submissions()) == 1
    # the ledger names the model, not the alias; the store remembers the alias
    job = cache.store.job(endpoint(fast_config), results[0].result.task_uuid)
    assert job.model == SPEC_ID and job.status == "succeeded"
    assert cache.store.get_meta(f"sync3_model|{endpoint(fast_config)}") == DOCS_ID

    # remembered: the next request (also after a restart) goes straight to the docs id
    double.reset_log()
    run(sync3_job(tmp_path, seconds=1.5), fast_config, cache_mod.ResultCache(cache.root))
    assert submissions(double) == [(DOCS_ID, True)]

    # the cache does not depend on the alias: the first request again costs nothing
    double.reset_log()
    again = run(sync3_job(tmp_path), fast_config, cache)
    assert double.log == [] and again[0].cached


def test_a_runware_that_knows_only_the_spec_id_after_the_docs_id_was_remembered(
        double, fast_config, cache, tmp_path):
    """The other direction: an endpoint remembered as sync:3@0 (say Runware switched)
    refuses it; the spec's id is tried and remembered."""
    cache.store.set_meta(f"sync3_model|{endpoint(fast_config)}", DOCS_ID)
    run(sync3_job(tmp_path), fast_config, cache)
    assert submissions(double) == [(DOCS_ID, False), (SPEC_ID, True)]
    assert cache.store.get_meta(f"sync3_model|{endpoint(fast_config)}") == SPEC_ID


def test_the_memory_is_per_endpoint(double, fast_config, cache, tmp_path):
    cache.store.set_meta("sync3_model|https://api.runware.ai:443", DOCS_ID)
    run(sync3_job(tmp_path), fast_config, cache)
    assert submissions(double) == [(SPEC_ID, True)]


def test_neither_id_known_is_one_clear_refusal_each_and_no_charge(
        double, fast_config, cache, tmp_path):
    double.sync3_model_ids = ()
    with pytest.raises(errors.ValidationError) as info:
        run(sync3_job(tmp_path), fast_config, cache)
    assert submissions(double) == [(SPEC_ID, False), (DOCS_ID, False)]
    assert double.accepted_submissions() == []
    assert "model" in str(info.value)
    assert cache.store.journal_get(endpoint(fast_config), jobs.job_fingerprint(
        sync3_job(tmp_path), endpoint(fast_config))[0]) is None


@pytest.mark.parametrize("override,known,expect", [
    (DOCS_ID, (DOCS_ID,), [(DOCS_ID, True)]),
    (DOCS_ID, (SPEC_ID,), [(DOCS_ID, False)]),  # the user's choice: no fallback
    (SPEC_ID, (DOCS_ID,), [(SPEC_ID, False)]),
])
def test_runware_sync3_model_picks_one_id(double, fast_config, cache, tmp_path, override,
                                          known, expect):
    double.sync3_model_ids = known
    config = dataclasses.replace(fast_config, sync3_model=override)
    if expect[-1][1]:
        run(sync3_job(tmp_path), config, cache)
    else:
        with pytest.raises(errors.ValidationError):
            run(sync3_job(tmp_path), config, cache)
    assert submissions(double) == expect
    # an explicit choice is not "remembered" over the automatic one
    assert cache.store.get_meta(f"sync3_model|{endpoint(fast_config)}") is None


def test_the_setting_is_read_and_checked(monkeypatch):
    monkeypatch.setenv("RUNWARE_SYNC3_MODEL", " sync:3@0 ")
    assert config_mod.ClientConfig.from_env(api_key="k").sync3_model == DOCS_ID
    monkeypatch.setenv("RUNWARE_SYNC3_MODEL", "lipsync 3")
    with pytest.raises(errors.SettingError) as info:
        config_mod.ClientConfig.from_env(api_key="k")
    assert "RUNWARE_SYNC3_MODEL" in str(info.value) and "sync:lipsync@3" in str(info.value)
    monkeypatch.delenv("RUNWARE_SYNC3_MODEL")
    assert config_mod.ClientConfig.from_env(api_key="k").sync3_model is None


def test_ovi_is_never_renamed(double, fast_config, cache):
    job = tasks.prepare_ovi(ovi_request(prompt="A fox says <S>hi<E>", seed=1, steps=30,
                                        fps=12, video_cfg_scale=5.0, audio_cfg_scale=4.0))
    double.sync3_model_ids = (DOCS_ID,)
    run(job, fast_config, cache)
    assert submissions(double) == [(spec.OVI_MODEL, True)]


def test_the_double_command_line_takes_the_ids():
    args = cli.build_parser().parse_args(["--sync3-model-ids", "sync:3@0, sync:lipsync@3"])
    assert args.sync3_model_ids == "sync:3@0, sync:lipsync@3"
    assert cli.build_parser().parse_args([]).sync3_model_ids == SPEC_ID
