"""Launch data sync: real server_args.py bytes served as wheels by a fake index, read by range."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import sys
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from compat.matrix.launchdata import LaunchData, read_launch_data
from compat.matrix.launchsync import (
    MemberCache,
    run_launch_sync,
    select_members,
    sync_launch,
)
from compat.matrix.pypi import DiskCache, PyPIClient, RetryPolicy
from compat.matrix.schema import Problems

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ASSETS = Path(__file__).resolve().parents[1] / "assets"
SOURCES = ASSETS / "launch" / "sources"
_spec = importlib.util.spec_from_file_location("fakeindex", ASSETS / "pypi" / "fakeindex.py")
assert _spec is not None and _spec.loader is not None
fakeindex: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fakeindex)
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def wheel(version: str) -> bytes:
    """A wheel holding the recorded real members of sglang `version`, plus filler and metadata."""
    out = io.BytesIO()
    root = SOURCES / f"sglang-{version}"
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("sglang/__init__.py", b"")
        # Incompressible filler between members, as the real wheel's other modules are.
        archive.writestr("sglang/lang/blob.bin", bytes(range(256)) * 1200, zipfile.ZIP_STORED)
        # Recorded as *.py.txt so that no formatter or linter rewrites the real bytes.
        for path in sorted(root.rglob("*.py.txt")):
            archive.writestr(str(path.relative_to(root))[: -len(".txt")], path.read_bytes())
        archive.writestr(f"sglang-{version}.dist-info/METADATA", b"Name: sglang\n")
    return out.getvalue()


def page(index: Any, versions: list[str]) -> dict[str, Any]:
    releases: dict[str, Any] = {}
    for v in versions:
        blob = wheel(v)
        name = f"sglang-{v}-py3-none-any.whl"
        index.blobs[name] = blob
        releases[v] = [
            {
                "filename": name,
                "packagetype": "bdist_wheel",
                "size": len(blob),
                "yanked": False,
                "url": f"{index.base}/files/{name}",
                "upload_time_iso_8601": "2024-01-01T00:00:00Z",
                "digests": {"sha256": hashlib.sha256(blob).hexdigest()},
            }
        ]
    return {"info": {"name": "sglang"}, "releases": releases}


def database(folder: Path, versions: list[str]) -> None:
    body = "".join(f'[releases."{v}"]\nrequires_python = ""\n\n' for v in versions)
    (folder / "sglang.toml").write_text('[meta]\nproject = "sglang"\n\n' + body, encoding="utf-8")


@pytest.fixture
def index() -> Any:
    with fakeindex.FakeIndex() as served:
        yield served


def sync(index: Any, gen: Path, cache: Path, write: bool = True) -> Any:
    client = PyPIClient(
        index.index_url,
        cache=DiskCache(None),
        retry=RetryPolicy(attempts=2, first_pause=0.0),
        sleep=lambda _s: None,
    )
    with client:
        return sync_launch(client, MemberCache(cache), gen, ["sglang"], write, now=lambda: NOW)


def test_members_are_chosen_by_framework_layout() -> None:
    names = [
        "sglang/srt/server_args.py",
        "sglang/srt/environ.py",
        "sglang/srt/utils.py",
        "sglang/srt/arg_groups/arg_utils.py",
        "sglang/srt/arg_groups/moe_hook.py",
        "sglang/srt/arg_groups/fields/parallel.py",
    ]
    assert select_members("sglang", names) == [
        "sglang/srt/arg_groups/arg_utils.py",
        "sglang/srt/arg_groups/fields/parallel.py",
        "sglang/srt/environ.py",
        "sglang/srt/server_args.py",
    ]
    old = ["vllm/engine/arg_utils.py", "vllm/entrypoints/openai/api_server.py", "vllm/utils.py"]
    assert select_members("vllm", old) == sorted(old)  # no cli_args.py yet: the server's own flags
    new = [
        "vllm/engine/arg_utils.py",
        "vllm/entrypoints/openai/api_server.py",
        "vllm/envs.py",
        "vllm/entrypoints/common/cli_args.py",
        "vllm/utils/__init__.py",
        "vllm/utils/argparse_utils.py",
        "vllm/config/model.py",
        "vllm/config/__init__.py",
    ]
    assert select_members("vllm", new) == [
        "vllm/config/__init__.py",
        "vllm/config/model.py",
        "vllm/engine/arg_utils.py",
        "vllm/entrypoints/common/cli_args.py",
        "vllm/envs.py",
        "vllm/utils/argparse_utils.py",
    ]


def test_sync_reads_real_sources_by_range_then_only_new_releases(
    index: Any, tmp_path: Path
) -> None:
    gen = tmp_path / "generated"
    gen.mkdir()
    database(gen, ["0.1.3"])
    index.add_project("sglang", page(index, ["0.1.3", "0.1.5"]))
    report = sync(index, gen, tmp_path / "cache")
    assert report.ok, report.summary()
    (fw,) = report.frameworks
    assert (fw.releases, fw.read, fw.kept, fw.flags) == (1, 1, 0, (15, 15))
    # Ranges only: the tail, the central directory's neighbourhood, one block of members.
    assert all({k.lower() for k in h} >= {"range"} for _, _, h in index.requests_to("/files/")), (
        index.log
    )
    text = (gen / "launch" / "sglang.toml").read_text(encoding="utf-8")
    raw = tomllib.loads(text)
    problems = Problems("sglang.toml")
    data = read_launch_data(problems, raw, "sglang")
    assert problems.items == []
    view = data.view(0)
    tp = view.options["--tp-size"]
    assert (tp.type, tp.default, tp.action) == ("int", 1, "store")
    load = view.options["--load-format"]
    assert load.choices == ("auto", "pt", "safetensors", "npcache", "dummy")
    assert view.options["--trust-remote-code"].action == "store_true"
    mem = view.options["--mem-fraction-static"]
    assert mem.default is None and mem.computed  # set in __post_init__ from tp_size
    info = data.release(0)
    assert info.mem_fraction_tp == ("2:0.8", "1:0.9")
    assert info.mem_fraction_tp_source == "sglang/srt/server_args.py:28"
    assert info.source.method == "range" and info.source.read_at == "2026-12-01T12:00:00Z"
    assert info.source.members == ("sglang/launch_server.py", "sglang/srt/server_args.py")

    # Again: nothing to read, byte-identical file.
    before = len(index.log)
    again = sync(index, gen, tmp_path / "cache")
    assert again.frameworks[0].kept == 1 and again.frameworks[0].read == 0
    assert not again.frameworks[0].changes_file
    assert [p for p, _, _ in index.log[before:] if "/files/" in p] == []

    # A new release in the database: only it is read; history becomes change points.
    database(gen, ["0.1.3", "0.1.5"])
    third = sync(index, gen, tmp_path / "cache")
    (fw,) = third.frameworks
    assert (fw.kept, fw.read, fw.added) == (1, 1, ("0.1.5",))
    raw = tomllib.loads((gen / "launch" / "sglang.toml").read_text(encoding="utf-8"))
    assert raw["args"]["--tp-size"]["0.1.3"]["last"] == "0.1.5"  # unchanged: one state
    assert raw["releases"]["0.1.5"]["mem_fraction_tp"] == ["8:0.8", "4:0.82", "2:0.85", "1:0.9"]
    data = LaunchData(raw)
    assert set(data.view(1).options) - set(data.view(0).options)  # 0.1.5 added flags


def test_member_cache_makes_a_rebuild_offline(index: Any, tmp_path: Path) -> None:
    gen = tmp_path / "generated"
    gen.mkdir()
    database(gen, ["0.1.3"])
    index.add_project("sglang", page(index, ["0.1.3"]))
    sync(index, gen, tmp_path / "cache")
    (gen / "launch" / "sglang.toml").unlink()
    before = len(index.log)
    rebuilt = sync(index, gen, tmp_path / "cache")
    assert rebuilt.frameworks[0].cached == 1 and rebuilt.frameworks[0].read == 0
    assert [p for p, _, _ in index.log[before:] if "/files/" in p] == []


def test_dry_run_writes_nothing_and_a_broken_wheel_is_a_failure(index: Any, tmp_path: Path) -> None:
    gen = tmp_path / "generated"
    gen.mkdir()
    database(gen, ["0.1.3", "0.1.5"])
    data = page(index, ["0.1.3", "0.1.5"])
    index.blobs["sglang-0.1.5-py3-none-any.whl"] = b"not a zip at all" * 100
    index.add_project("sglang", data)
    report = sync(index, gen, tmp_path / "cache", write=False)
    assert not (gen / "launch").exists()
    (fw,) = report.frameworks
    assert [v for v, _ in fw.failures] == ["0.1.5"] and not report.ok
    assert "would write" in report.summary()


def test_committed_launch_data_covers_the_database() -> None:
    from compat import resources
    from compat.matrix.launchdata import validate_launch_files

    root = resources.matrices_dir()
    assert validate_launch_files(root) == []
    for fw in ("sglang", "vllm"):
        path = root / "generated" / "launch" / f"{fw}.toml"
        assert path.stat().st_size < 1024 * 1024
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        base = tomllib.loads((root / "generated" / f"{fw}.toml").read_text(encoding="utf-8"))
        assert set(raw["releases"]) == set(base["releases"])
        for version, rel in raw["releases"].items():
            assert rel["method"] in ("range", "sdist") and rel["sha256"], version
            assert rel["args"] > 10 and rel["members"], version


@pytest.mark.online
def test_online_one_real_release_end_to_end(tmp_path: Path) -> None:
    """sglang 0.4.6.post1 and vLLM 0.10.1.1 read from PyPI by range; same flags as committed."""
    from compat import resources

    gen = tmp_path / "generated"
    gen.mkdir()
    (gen / "sglang.toml").write_text('[meta]\n\n[releases."0.4.6.post1"]\n', encoding="utf-8")
    (gen / "vllm.toml").write_text('[meta]\n\n[releases."0.10.1.1"]\n', encoding="utf-8")
    report = run_launch_sync(gen, tmp_path / "cache", True)
    assert report.ok, report.summary()
    assert report.bytes_received < 20 * 1024 * 1024  # not whole wheels (vLLM's is ~400 MB)
    for fw, version in (("sglang", "0.4.6.post1"), ("vllm", "0.10.1.1")):
        fresh = LaunchData(tomllib.loads((gen / "launch" / f"{fw}.toml").read_text()))
        committed_raw = tomllib.loads(
            (resources.generated_dir() / "launch" / f"{fw}.toml").read_text()
        )
        committed = LaunchData(committed_raw)
        a = fresh.view(0)
        i = committed.index_of(Version(version))
        assert i is not None
        b = committed.view(i)
        assert set(a.options) == set(b.options)
        for name in (
            "--tp-size",
            "--tensor-parallel-size",
            "--mem-fraction-static",
            "--gpu-memory-utilization",
            "--attention-backend",
        ):
            if name in a.options:
                sa, sb = a.options[name], b.options[name]
                assert (sa.default, sa.choices, sa.type) == (sb.default, sb.choices, sb.type)


def test_validation_reports_every_problem_with_its_key(tmp_path: Path) -> None:
    import shutil

    from compat import resources
    from compat.matrix.launchdata import validate_launch_files

    root = tmp_path / "matrices"
    shutil.copytree(resources.matrices_dir(), root)
    path = root / "generated" / "launch" / "vllm.toml"
    text = path.read_text(encoding="utf-8")
    text = text.replace('action = "boolean"', 'action = "toggle"', 1)
    text = text.replace('VLLM_USE_V1 = ["0.6.4..0.11.0"]', 'VLLM_USE_V1 = ["0.6.4..9.9.9"]')
    path.write_text(text, encoding="utf-8")
    rules = root / "curated" / "launch_rules.toml"
    rules.write_text(
        rules.read_text(encoding="utf-8").replace(
            'setting = "cudagraph_mode"', 'setting = "cuda_graph_mode"', 1
        ),
        encoding="utf-8",
    )
    problems = validate_launch_files(root)
    assert any("unknown action 'toggle'" in p for p in problems), problems
    assert any("env.VLLM_USE_V1[0]: not a span of known releases" in p for p in problems), problems
    from compat.matrix.load import validate_all

    every = validate_all(root)
    assert set(problems) <= set(every)
    assert any("rule[0].setting: unknown launch setting 'cuda_graph_mode'" in p for p in every)
