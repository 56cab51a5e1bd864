"""The served model's files where the server would find them: a local folder or the HF cache."""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional, Union

import msgspec
import msgspec.structs

from compat import answers
from compat.fileio import open_regular
from compat.jsondoc import depth_ok
from compat.model import ModelFacts, facts_from_config, guess_from_name
from compat.models import Unknown

# Limits on what is read: a config.json of a real model is a few KB, an index a few MB
# (DeepSeek-V3: ~9 MB), a safetensors header up to a few MB (the format caps it at 100 MB).
CONFIG_MAX_BYTES = 2 << 20
INDEX_MAX_BYTES = 64 << 20
HEADER_MAX_BYTES = 64 << 20
MAX_SHARDS = 4096
JSON_MAX_DEPTH = 64
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def hub_cache(environ: Mapping[str, str]) -> tuple[Path, str]:
    """The Hugging Face hub cache huggingface_hub uses, and which variable chose it.

    Precedence as documented for huggingface_hub (environment variables page): HF_HUB_CACHE,
    then the legacy HUGGINGFACE_HUB_CACHE, then $HF_HOME/hub, then
    $XDG_CACHE_HOME/huggingface/hub, then ~/.cache/huggingface/hub.
    """
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if environ.get(var):
            return Path(environ[var]).expanduser(), var
    if environ.get("HF_HOME"):
        return Path(environ["HF_HOME"]).expanduser() / "hub", "HF_HOME"
    if environ.get("XDG_CACHE_HOME"):
        return Path(
            environ["XDG_CACHE_HOME"]
        ).expanduser() / "huggingface" / "hub", "XDG_CACHE_HOME"
    home = environ.get("HOME")
    base = Path(home) if home else Path.home()
    return base / ".cache" / "huggingface" / "hub", "default"


def _read_json(path: Path, cap: int) -> Union[dict[str, Any], Unknown]:
    try:
        size = path.stat().st_size
        if size > cap:
            return Unknown(f"{path.name} is {size} bytes, over compat's limit of {cap}")
        with open_regular(path) as fh:
            raw = fh.read(cap + 1)
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return Unknown(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}")
    if cap <= CONFIG_MAX_BYTES and not depth_ok(text, JSON_MAX_DEPTH):
        return Unknown(f"{path.name} nests deeper than {JSON_MAX_DEPTH} levels")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return Unknown(f"{path.name} is not valid JSON ({str(exc).splitlines()[0][:80]})")
    if not isinstance(data, dict):
        return Unknown(f"{path.name} is not a JSON object")
    return data


_TOTAL_SIZE = re.compile(rb'"total_size"\s*:\s*([0-9]{1,20})')


def _index_total(path: Path) -> Union[int, Unknown]:
    """`metadata.total_size` of a *.index.json: from its head when it is there (the metadata
    comes first in the files the hub writes), else from the whole file under the size cap."""
    try:
        with open_regular(path) as fh:
            head = fh.read(64 << 10)
    except OSError as exc:
        return Unknown(f"cannot read {path}: {exc.strerror}")
    m = _TOTAL_SIZE.search(head)
    if m:
        return int(m.group(1))
    data = _read_json(path, INDEX_MAX_BYTES)
    if isinstance(data, Unknown):
        return data
    meta = data.get("metadata")
    total = meta.get("total_size") if isinstance(meta, dict) else None
    # a float past 2^63 (or Infinity) is not the size of any model's weights
    if isinstance(total, (int, float)) and not isinstance(total, bool) and 0 < total < 2**63:
        return int(total)
    return Unknown(f"{path.name} has no metadata.total_size")


def safetensors_bytes(path: Path) -> Union[int, Unknown]:
    """Tensor bytes of one .safetensors file from its header: an 8-byte little-endian length,
    then that many bytes of JSON (name -> dtype, shape, data_offsets); the data is not read."""
    try:
        with open_regular(path) as fh:
            prefix = fh.read(8)
            if len(prefix) < 8:
                return Unknown(f"{path.name}: shorter than a safetensors header")
            (n,) = struct.unpack("<Q", prefix)
            if n > HEADER_MAX_BYTES:
                return Unknown(f"{path.name}: header of {n} bytes is over compat's limit")
            raw = fh.read(n)
    except OSError as exc:
        return Unknown(f"cannot read {path}: {exc.strerror}")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return Unknown(f"{path.name}: the header is not valid JSON")
    if not isinstance(header, dict):
        return Unknown(f"{path.name}: the header is not a JSON object")
    total = 0
    for name, t in header.items():
        if name == "__metadata__":
            continue
        off = t.get("data_offsets") if isinstance(t, dict) else None
        if (
            not isinstance(off, list)
            or len(off) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in off)
            or off[1] < off[0]
        ):
            return Unknown(f"{path.name}: tensor {name!r} has no valid data_offsets")
        total += off[1] - off[0]
    return total


def find_model_dir(
    model: str,
    environ: Mapping[str, str],
    revision: Optional[str] = None,
    download_dir: Optional[str] = None,
) -> Union[Path, Unknown]:
    """The folder holding the model's config.json: the path itself when it is a folder, else the
    snapshot in the hub cache (refs/<revision or main> names the commit)."""
    text = model.strip()
    expanded = Path(os.path.expanduser(text))
    try:
        if expanded.is_dir():
            return expanded
        if expanded.is_file():
            return Unknown(
                f"{text} is a file, not a model folder (GGUF and single files are not read)"
            )
    except (OSError, ValueError) as exc:
        return Unknown(f"cannot look at {text}: {exc}")
    if text.startswith(("/", "./", "../", "~")) or not _REPO_ID.match(text):
        return Unknown(f"{text} does not exist on this machine")
    if download_dir:
        cache, via = Path(download_dir).expanduser(), "--download-dir"
    else:
        cache, via = hub_cache(environ)
    repo = cache / ("models--" + text.replace("/", "--"))
    snapshots = repo / "snapshots"
    try:
        if not snapshots.is_dir():
            return Unknown(
                f"{text} is not in the Hugging Face cache at {cache} (from {via}); "
                "the server would download it"
            )
        ref = revision or "main"
        commit: Optional[str] = None
        if _COMMIT.match(ref):
            commit = ref
        else:
            ref_file = repo / "refs" / ref
            if ref_file.is_file() and ref_file.stat().st_size <= 256:
                value = ref_file.read_text(encoding="utf-8", errors="replace").strip()
                commit = value if _COMMIT.match(value) else None
        if commit and (snapshots / commit).is_dir():
            return snapshots / commit
        found = sorted(
            (p for p in snapshots.iterdir() if p.is_dir()),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
    except OSError as exc:
        return Unknown(f"cannot read the Hugging Face cache at {cache}: {exc.strerror}")
    if revision:
        return Unknown(f"revision {revision!r} of {text} is not in the cache at {cache}")
    if not found:
        return Unknown(f"{text} has no snapshot in the Hugging Face cache at {cache}")
    return found[0]


def _weights(folder: Path) -> tuple[Optional[int], str, list[str]]:
    notes: list[str] = []
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        p = folder / index
        if p.is_file():
            total = _index_total(p)
            if isinstance(total, int):
                return total, f"{index} total_size", notes
            notes.append(total.reason)
    try:
        shards = sorted(folder.glob("*.safetensors"))[: MAX_SHARDS + 1]
    except OSError:
        shards = []
    if len(shards) > MAX_SHARDS:
        notes.append(f"more than {MAX_SHARDS} safetensors files: not summed")
        shards = []
    if shards:
        total = 0
        for s in shards:
            n = safetensors_bytes(s)
            if isinstance(n, Unknown):
                notes.append(n.reason)
                return None, "", notes
            total += n
        return (
            total,
            f"safetensors headers ({len(shards)} file{'s' if len(shards) > 1 else ''})",
            notes,
        )
    return None, "", notes


def read_model(
    model: str,
    environ: Mapping[str, str],
    revision: Optional[str] = None,
    download_dir: Optional[str] = None,
) -> Union[ModelFacts, Unknown]:
    """The model's facts from its local files, a labelled guess from its name, or why neither."""
    folder = find_model_dir(model, environ, revision, download_dir)
    if isinstance(folder, Unknown):
        guess = guess_from_name(model)
        if guess is not None:
            return msgspec.structs.replace(guess, notes=(folder.reason, *guess.notes))
        return folder
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        return Unknown(f"{folder} has no config.json")
    config = _read_json(cfg_path, CONFIG_MAX_BYTES)
    if isinstance(config, Unknown):
        return config
    extra: Optional[dict[str, Any]] = None
    hq = folder / "hf_quant_config.json"  # ModelOpt exports (NVFP4/FP8) name their algorithm here
    if hq.is_file():
        got = _read_json(hq, CONFIG_MAX_BYTES)
        extra = got if isinstance(got, dict) else None
    weight, how, notes = _weights(folder)
    if weight is None:
        notes.append(
            "no weight index or safetensors files: the weight size is estimated from "
            "the config's shapes"
        )
    return facts_from_config(
        config,
        source=str(cfg_path),
        weight_bytes=weight,
        weight_source=how,
        quant_extra=extra,
        notes=tuple(notes),
    )


def model_of_launch(launch: Any, env_vars: Mapping[str, str]) -> Union[ModelFacts, Unknown, None]:
    """The facts of the model a parsed launch serves; None when it names none. Variables come
    from this process, then the checked environment, then the launch's own exports."""
    asked = _served(launch, env_vars)
    return None if asked is None else read_model(*asked)


def _served(
    launch: Any, env_vars: Mapping[str, str]
) -> Optional[tuple[str, dict[str, str], Optional[str], Optional[str]]]:
    """The model a launch serves, as `read_model` takes it: name, variables, revision, download
    folder; None when it names none."""
    from compat.families import families

    if launch is None or launch.framework not in families().frameworks:
        return None
    name = launch.settings.get("model")
    if not isinstance(name, str) or not name:
        return None
    environ = {**os.environ, **env_vars, **launch.env}
    revision = launch.settings.get("revision")
    download = launch.settings.get("download_dir")
    return (
        name,
        environ,
        revision if isinstance(revision, str) else None,
        download if isinstance(download, str) else None,
    )


# Where the hub cache may be named (hub_cache's precedence): a value there starting `~user` is
# resolved through the password database, which a kept answer does not watch.
_HUB_VARS = ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME", "HOME")


def watched(launch: Any, env_vars: Mapping[str, str]) -> Optional[list[tuple[str, bool]]]:
    """What `model_of_launch` reads for this launch, as (path, follow links), for a kept answer
    (compat.answers): the model's path as given and as pathlib spells it, the hub cache's
    folders on the way to its snapshots, each snapshot (the newest is taken by its mtime), and
    every entry of the folder the facts come from (config.json, the quantization file, the
    indexes, the shards). None when a path is another user's home (`~name`): what that is comes
    from the password database."""
    asked = _served(launch, env_vars)
    if asked is None:
        return []
    name, environ, revision, download = asked
    named = [name.strip(), download or "", *(environ.get(v, "") for v in _HUB_VARS)]
    if any(answers.another_home(t) for t in named):
        return None
    text = name.strip()
    expanded = os.path.expanduser(text)
    out = [(p, follow) for p in (expanded, str(Path(expanded))) for follow in (True, False)]
    cache = Path(download).expanduser() if download else hub_cache(environ)[0]
    repo = cache / ("models--" + text.replace("/", "--"))
    snapshots = repo / "snapshots"
    for p in (cache, repo, repo / "refs", repo / "refs" / (revision or "main"), snapshots):
        out.append((str(p), True))
    out += [(str(p), True) for p in _entries(snapshots)]
    folder = find_model_dir(name, environ, revision, download)
    if isinstance(folder, Path):
        out.append((str(folder), True))
        for p in _entries(folder):
            out += [(str(p), True), (str(p), False)]
    return out


def _entries(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except (OSError, ValueError):
        return []
