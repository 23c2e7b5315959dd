"""Rows of a Hugging Face hub dataset, failing in seconds with one line when the hub cannot be reached.

``HF_HUB_OFFLINE=1`` (or ``HF_DATASETS_OFFLINE=1``): only the local Hugging Face cache is read.
Otherwise a TCP connection to the hub (``HF_ENDPOINT``, default huggingface.co) is tried first for
at most HUB_TIMEOUT_S seconds, so a machine without network gets the error line at once instead of
the libraries' minute of retries.
"""

from __future__ import annotations

import functools
import os

from taorl.errors import UserError

HUB_TIMEOUT_S = 5.0


def hub_offline() -> bool:
    return any(os.environ.get(v, "0") not in ("0", "", "false", "False")
               for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT") or "https://huggingface.co"


@functools.lru_cache(maxsize=8)
def _reachable_once(url: str) -> bool:
    from taorl.models import _reachable

    return _reachable(url, HUB_TIMEOUT_S)


def hub_reachable() -> bool:
    """False when offline mode is set or no connection opens within HUB_TIMEOUT_S (asked once per
    endpoint and process: `taorl data list` resolves several sets)."""
    return not hub_offline() and _reachable_once(endpoint())


def local_copy_hint(repo: str) -> str:
    return (f"download it where there is network (hf download {repo} --repo-type dataset --local-dir "
            f"DIR/{repo}), then set TAORL_DATA_DIR=DIR, or point data.train at a local .parquet/.jsonl file")


def unreachable_reason() -> str:
    if hub_offline():
        return "HF_HUB_OFFLINE is set and it is not in the local Hugging Face cache"
    return f"the hub ({endpoint()}) cannot be reached within {HUB_TIMEOUT_S:.0f} s"


def download_hub_file(repo: str, filename: str, *, what: str) -> str:  # pragma: no cover - needs the network
    """One file of a hub dataset, downloaded once into the Hugging Face cache (where
    taorl.data.train_sets finds it offline afterwards); returns its local path."""
    if hub_offline() or not hub_reachable():
        raise UserError(f"{what}: not in the local data folder, and {unreachable_reason()}; "
                        f"{local_copy_hint(repo)}")
    import logging

    from huggingface_hub import hf_hub_download

    logging.getLogger("taorl.data").info(f"{what}: downloading {repo}/{filename} once into the Hugging Face cache")
    try:
        return hf_hub_download(repo, filename, repo_type="dataset")
    except Exception as e:  # noqa: BLE001 - the library raises many kinds; the user needs one line
        why = " ".join(str(e).split())[:200]
        raise UserError(f"{what}: {repo}/{filename} could not be downloaded ({type(e).__name__}: {why})") from None


def load_hub_rows(repo: str, *, what: str, split: str = "train", config: str | None = None,  # pragma: no cover
                  data_files: str | None = None, hint: str | None = None) -> list[dict]:
    """Every row of ``repo``'s ``split`` as dicts, via ``datasets.load_dataset`` (cached by it).
    ``hint``: how to use a local copy instead (default: local_copy_hint)."""
    hint = hint or local_copy_hint(repo)
    if not hub_offline() and not hub_reachable():
        raise UserError(f"{what}: not in the local data folder, and {unreachable_reason()}; "
                        f"{hint}")
    try:
        import datasets

        ds = datasets.load_dataset(repo, config, data_files=data_files, split=split)
    except Exception as e:  # noqa: BLE001 - the library raises many kinds; the user needs one line
        why = " ".join(str(e).split())[:200]
        if hub_offline():
            raise UserError(f"{what}: not in the local data folder, and {unreachable_reason()} "
                            f"({type(e).__name__}); {hint}") from None
        raise UserError(f"{what}: the hub dataset {repo} (split {split!r}) could not be loaded "
                        f"({type(e).__name__}: {why})") from None
    return [dict(r) for r in ds]
