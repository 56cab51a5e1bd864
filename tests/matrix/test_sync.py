"""The sync: record building, the TOML writer, determinism, atomic writes, committed data."""

from __future__ import annotations

import copy
import importlib.util
import io
import os
import sys
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from compat.errors import NetworkError
from compat.matrix import toml_write
from compat.matrix.pypi import DiskCache, PyPIClient, RetryPolicy
from compat.matrix.sync import (
    DEFAULT_PROJECTS,
    HEADER,
    SyncReport,
    choose_wheel,
    metadata_fields,
    run_sync,
    stack_fingerprint,
    sync,
)

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "tests" / "assets" / "pypi"
GENERATED = ROOT / "matrices" / "generated"
_spec = importlib.util.spec_from_file_location("fakeindex", ASSETS / "fakeindex.py")
assert _spec is not None and _spec.loader is not None
fakeindex: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fakeindex)

CHARS = st.characters(codec="utf-8")  # any str that UTF-8 can carry (no lone surrogates)
T0 = datetime(2026, 11, 22, 23, 10, tzinfo=timezone.utc)
TORCH_271 = "torch-2.7.1-cp312-cp312-manylinux_2_28_x86_64.whl"


def make_wheel(metadata: bytes, dist_info: str = "pkg-1.0.dist-info") -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("pkg/__init__.py", b"")
        archive.writestr("pkg/data.bin", bytes(range(256)) * 400, zipfile.ZIP_STORED)
        archive.writestr(f"{dist_info}/METADATA", metadata)
        archive.writestr(f"{dist_info}/RECORD", b"")
    return out.getvalue()


def wheel_files(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        f for files in data["releases"].values() for f in files if f["filename"].endswith(".whl")
    ]


def serve_recorded(index: Any) -> None:
    """The recorded pages; torch and vllm answer .metadata, sgl-kernel and sglang need ranges."""
    for name in ("torch", "vllm"):
        data = fakeindex.load_json(name)
        index.add_project(name, data)
        for f in wheel_files(data):
            if (ASSETS / f"{f['filename']}.metadata").is_file():
                index.metadata[f["filename"]] = fakeindex.load_metadata(f["filename"])
    for name in ("sgl-kernel", "sglang"):
        data = fakeindex.load_json(name)
        index.add_project(name, data)
        for f in wheel_files(data):
            if (ASSETS / f"{f['filename']}.metadata").is_file():
                index.blobs[f["filename"]] = make_wheel(fakeindex.load_metadata(f["filename"]))


@pytest.fixture
def index() -> Any:
    with fakeindex.FakeIndex() as served:
        serve_recorded(served)
        yield served


def client_for(index: Any, cache: Path | None = None) -> PyPIClient:
    return PyPIClient(
        index.index_url,
        cache=DiskCache(cache),
        retry=RetryPolicy(attempts=3, first_pause=0.0),
        sleep=lambda _seconds: None,
    )


def run(
    index: Any,
    out: Path,
    projects: tuple[str, ...] = ("sglang", "vllm", "torch", "sgl-kernel", "flashinfer-jit-cache"),
    write: bool = True,
    cache: Path | None = None,
    when: datetime = T0,
) -> SyncReport:
    with client_for(index, cache) as client:
        return sync(client, projects, out, write=write, now=lambda: when)


def load(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text(encoding="utf-8"))


# -- the TOML writer ------------------------------------------------------------------------


@given(st.text(alphabet=CHARS))
def test_quote_round_trips_any_string(text: str) -> None:
    assert tomllib.loads(f"v = {toml_write.quote(text)}\n")["v"] == text


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=8, alphabet=CHARS),
        st.one_of(
            st.booleans(),
            st.integers(min_value=-(2**63), max_value=2**63 - 1),
            st.text(alphabet=CHARS),
            st.lists(st.text(max_size=5, alphabet=CHARS)),
        ),
        max_size=5,
    )
)
def test_dumps_round_trips_tables(table: dict[str, Any]) -> None:
    data = {"meta": table, "releases": {"1.0": {"source": table}, "2.0": table}}
    assert tomllib.loads(toml_write.dumps(data, header="h")) == data


def test_dumps_shape() -> None:
    data = {
        "meta": {"project": "x"},
        "releases": {"1.0": {"ok": True, "requires": ['a==1; extra == "b"'], "wheels": []}},
    }
    assert toml_write.dumps(data, header="Generated.") == (
        "# Generated.\n"
        "[meta]\n"
        'project = "x"\n'
        "\n"
        '[releases."1.0"]\n'
        "ok = true\n"
        "requires = [\n"
        '  "a==1; extra == \\"b\\"",\n'
        "]\n"
        "wheels = []\n"
    )
    with pytest.raises(TypeError, match="float"):
        toml_write.dumps({"t": {"x": 1.5}})


# -- choosing the wheel and reading METADATA ------------------------------------------------


def test_choose_wheel_rule() -> None:
    torch = fakeindex.load_json("torch")["releases"]
    assert choose_wheel(torch["2.7.1"])["filename"] == TORCH_271  # type: ignore[index]
    sglang = fakeindex.load_json("sglang")["releases"]["0.4.6.post1"]
    assert choose_wheel(sglang)["filename"] == "sglang-0.4.6.post1-py3-none-any.whl"  # type: ignore[index]
    only_new = [
        {"filename": "x-1-cp313-cp313-manylinux_2_28_x86_64.whl"},
        {"filename": "x-1-cp313-cp313t-manylinux_2_28_x86_64.whl"},
        {"filename": "x-1-cp312-cp312-manylinux_2_28_aarch64.whl"},
    ]
    assert choose_wheel(only_new)["filename"] == only_new[0]["filename"]  # type: ignore[index]
    assert choose_wheel([{"filename": "x-1.tar.gz"}]) is None
    yanked_best = [
        {"filename": "x-1-cp312-cp312-manylinux_2_28_x86_64.whl", "yanked": True},
        {"filename": "x-1-cp311-cp311-manylinux_2_28_x86_64.whl", "yanked": False},
    ]
    assert choose_wheel(yanked_best)["filename"].startswith("x-1-cp311")  # type: ignore[index]


def test_metadata_fields_real_torch() -> None:
    fields = metadata_fields(fakeindex.load_metadata(TORCH_271))
    assert fields["requires_python"] == ">=3.9.0"
    assert fields["cuda"] == "12.6"
    assert (
        'triton==3.3.1; platform_system == "Linux" and platform_machine == "x86_64"'
        in (fields["requires"])
    )
    assert not any(line.startswith(("filelock", "sympy")) for line in fields["requires"])
    assert fields["requires"] == sorted(fields["requires"])
    cu13 = metadata_fields(
        fakeindex.load_metadata("torch-2.11.0-cp312-cp312-manylinux_2_28_x86_64.whl")
    )
    assert cu13["cuda"] == "13.0"
    old = metadata_fields(fakeindex.load_metadata("torch-1.13.1-cp310-cp310-manylinux1_x86_64.whl"))
    assert old["cuda"] == "11.7"


@pytest.mark.parametrize(
    ("lines", "cuda"),
    [
        (["nvidia-cuda-runtime-cu12>=12.1"], "12"),
        (["nvidia-cuda-runtime==13.0.96; platform_system == 'Linux'"], "13.0"),
        (["cuda-toolkit[cudart,cublas]==13.0.2"], "13.0"),
        (["nvidia-cuda-runtime-cu12==12.8.90; platform_machine == 'aarch64'"], None),
        (["nvidia-cuda-runtime-cu12==12.8.90; extra == 'cuda'"], None),
        (["nvidia-nccl-cu12==2.26.2"], "12"),
        (["numpy", "triton==3.3.1"], None),
    ],
)
def test_cuda_derivation(lines: list[str], cuda: str | None) -> None:
    text = "Metadata-Version: 2.1\nName: x\n" + "".join(f"Requires-Dist: {x}\n" for x in lines)
    assert metadata_fields(text.encode()).get("cuda") == cuda


# -- the sync against a fake index ----------------------------------------------------------


def test_sync_builds_records(index: Any, tmp_path: Path) -> None:
    report = run(index, tmp_path)
    assert report.ok, report.summary()
    by_name = {p.project: p for p in report.projects}
    assert not by_name["flashinfer-jit-cache"].found
    assert not (tmp_path / "flashinfer-jit-cache.toml").exists()

    torch = load(tmp_path / "torch.toml")
    assert torch["meta"] == {
        "project": "torch",
        "index": f"{index.index_url}/torch/json",
        "synced": "2026-11-22",
        "stack": stack_fingerprint(),
    }
    assert list(torch["releases"]) == ["2.7.1", "2.11.0"]  # 1.x left out, version order
    r271 = torch["releases"]["2.7.1"]
    assert r271["cuda"] == "12.6"
    assert r271["requires_python"] == ">=3.9.0"
    assert r271["upload_time"] == "2025-06-04T17:34:58Z"
    assert r271["yanked"] is False and r271["sdist"] is False
    assert r271["wheels"] == sorted(r271["wheels"]) and len(r271["wheels"]) == 6
    assert "cp312-cp312-win_amd64" in r271["wheels"]
    assert r271["source"] == {
        "file": TORCH_271,
        "sha256": "c33360cfc2edd976c2633b3b66c769bdcbbf0e0b6550606d188431c81e7dd1fc",
        "method": "pep658",
        "read_at": "2026-11-22T23:10:00Z",
    }
    assert torch["releases"]["2.11.0"]["cuda"] == "13.0"
    # The recorded torch page has relative file URLs: they resolve against the JSON URL.
    assert any(p.startswith("/packages/packages/") for p, s, _ in index.log if s == 200)

    kernel = load(tmp_path / "sgl-kernel.toml")["releases"]
    assert {r["source"]["method"] for r in kernel.values()} == {"range"}
    sglang = load(tmp_path / "sglang.toml")["releases"]
    assert list(sglang) == ["0.4.6.post1"]  # 0.5.0rc0: a pre-release nobody pins
    assert 'torch==2.6.0; extra == "srt"' in sglang["0.4.6.post1"]["requires"]
    vllm = load(tmp_path / "vllm.toml")["releases"]
    assert list(vllm) == ["0.10.1.1"]  # 0.2.1: every file yanked, nobody pins it
    assert "torch==2.7.1" in vllm["0.10.1.1"]["requires"]
    assert vllm["0.10.1.1"]["sdist"] is True

    text = (tmp_path / "torch.toml").read_text(encoding="utf-8")
    assert text.startswith("# " + HEADER + "\n[meta]\n")
    assert toml_write.dumps(load(tmp_path / "torch.toml"), header=HEADER) == text


def test_pinned_prerelease_and_yanked_release_are_kept(index: Any, tmp_path: Path) -> None:
    sglang = fakeindex.load_json("sglang")
    wheel = copy.deepcopy(sglang["releases"]["0.4.6.post1"][1])
    wheel["filename"] = "sglang-0.9.0-py3-none-any.whl"
    wheel["url"] = wheel["url"].replace("sglang-0.4.6.post1", "sglang-0.9.0")
    wheel["digests"]["sha256"] = "9" * 64
    sglang["releases"]["0.9.0"] = [wheel]
    index.add_project("sglang", sglang)
    index.metadata[wheel["filename"]] = (
        b"Metadata-Version: 2.1\nName: sglang\nVersion: 0.9.0\n"
        b'Requires-Dist: torch==2.8.0rc1; extra == "srt"\nRequires-Dist: vllm==0.2.1\n'
    )
    torch = fakeindex.load_json("torch")
    rc = copy.deepcopy(torch["releases"]["2.7.1"][:1])
    rc[0]["filename"] = rc[0]["filename"].replace("2.7.1", "2.8.0rc1")
    rc[0]["url"] = rc[0]["url"].replace("2.7.1", "2.8.0rc1")
    torch["releases"]["2.8.0rc1"] = rc
    torch["releases"]["2.8.0rc2"] = copy.deepcopy(rc)  # not pinned: left out
    index.add_project("torch", torch)
    index.metadata[rc[0]["filename"]] = b"Metadata-Version: 2.1\nName: torch\nVersion: 2.8.0rc1\n"
    vllm_021 = choose_wheel(fakeindex.load_json("vllm")["releases"]["0.2.1"])
    assert vllm_021 is not None
    index.metadata[vllm_021["filename"]] = b"Metadata-Version: 2.1\nRequires-Dist: torch==2.1.0\n"

    report = run(index, tmp_path)
    assert report.ok, report.summary()
    assert list(load(tmp_path / "torch.toml")["releases"]) == ["2.7.1", "2.8.0rc1", "2.11.0"]
    vllm = load(tmp_path / "vllm.toml")["releases"]
    assert list(vllm) == ["0.2.1", "0.10.1.1"]
    assert vllm["0.2.1"]["yanked"] is True
    assert vllm["0.2.1"]["requires"] == ["torch==2.1.0"]


def test_resync_is_byte_identical_and_cheap(index: Any, tmp_path: Path) -> None:
    first = run(index, tmp_path / "out", cache=tmp_path / "cache")
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    index.log.clear()
    second = run(index, tmp_path / "out", cache=tmp_path / "cache", when=T0 + timedelta(days=3))
    after = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    assert after == before
    assert first.changed_files and not second.changed_files
    for project in second.projects:
        assert (project.read, project.cached, project.kept) == (0, 0, project.releases)
        assert not (project.added or project.removed or project.changed)
    # One conditional request per project, answered 304 (or 404 for the missing one).
    assert sorted(s for _, s, _ in index.log) == [304, 304, 304, 304, 404]
    assert "nothing to change" in second.summary()


def test_unchanged_release_keeps_read_at_changed_one_is_reread(index: Any, tmp_path: Path) -> None:
    run(index, tmp_path, projects=("torch",))
    torch = fakeindex.load_json("torch")
    for f in torch["releases"]["2.11.0"]:
        f["digests"]["sha256"] = "e" * 64  # a re-uploaded file
    index.add_project("torch", torch)
    later = T0 + timedelta(days=1)
    report = run(index, tmp_path, projects=("torch",), when=later)
    (project,) = report.projects
    assert project.changed == ("2.11.0",) and project.read == 1 and project.kept == 1
    data = load(tmp_path / "torch.toml")
    assert data["meta"]["synced"] == "2026-11-23"
    assert data["releases"]["2.7.1"]["source"]["read_at"] == "2026-11-22T23:10:00Z"
    assert data["releases"]["2.11.0"]["source"]["read_at"] == "2026-11-23T23:10:00Z"
    assert '+sha256 = "eeee' in report.unified_diff()


def test_dry_run_writes_nothing(index: Any, tmp_path: Path) -> None:
    report = run(index, tmp_path / "out", write=False)
    assert not (tmp_path / "out").exists()
    assert "would write" in report.summary()
    assert report.changed_files and not any(p.written for p in report.projects)
    assert "+[meta]" in report.unified_diff()


def test_failure_midway_leaves_every_file_untouched(index: Any, tmp_path: Path) -> None:
    run(index, tmp_path, projects=("torch", "sgl-kernel"))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    torch = fakeindex.load_json("torch")
    for f in torch["releases"]["2.11.0"]:
        f["digests"]["sha256"] = "e" * 64  # torch would change ...
    index.add_project("torch", torch)
    index.script["/pypi/sgl-kernel/json"].extend([(503, {}, b"")] * 3)  # ... but this fails
    with pytest.raises(NetworkError) as raised:
        run(index, tmp_path, projects=("torch", "sgl-kernel"))
    assert raised.value.exit_code == 4
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temp files either


def test_failure_while_writing_leaves_every_file_untouched(
    index: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "torch.toml").write_text("old torch\n", encoding="utf-8")
    (tmp_path / "sgl-kernel.toml").write_text("old sgl-kernel\n", encoding="utf-8")
    real_fsync = os.fsync
    calls: list[int] = []

    def failing_fsync(fd: int) -> None:
        calls.append(1)
        if len(calls) == 2:  # the second staged file: the disk is full
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="No space"):
        run(index, tmp_path, projects=("torch", "sgl-kernel"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sgl-kernel.toml", "torch.toml"]
    assert (tmp_path / "torch.toml").read_text(encoding="utf-8") == "old torch\n"


def test_truncated_wheel_is_a_failure_not_a_crash(index: Any, tmp_path: Path) -> None:
    name = "sgl_kernel-0.1.0-cp39-abi3-manylinux2014_x86_64.whl"
    whole = index.blobs[name]
    index.blobs[name] = whole[: len(whole) // 2]
    report = run(index, tmp_path, projects=("sgl-kernel",))
    (project,) = report.projects
    assert [(f.version, f.file) for f in project.failures] == [("0.1.0", name)]
    assert "end of central directory" in project.failures[0].reason
    assert list(load(tmp_path / "sgl-kernel.toml")["releases"]) == ["0.3.9.post2"]
    assert "failed 0.1.0" in report.summary()

    # Once readable, the next sync adds it.
    index.blobs[name] = whole
    again = run(index, tmp_path, projects=("sgl-kernel",))
    assert again.projects[0].added == ("0.1.0",)
    assert list(load(tmp_path / "sgl-kernel.toml")["releases"]) == ["0.1.0", "0.3.9.post2"]


def test_server_ignoring_range_is_reported(index: Any, tmp_path: Path) -> None:
    for f in wheel_files(fakeindex.load_json("sgl-kernel")):
        index.blobs[f["filename"]] = 64 * 2**20
        index.ignore_range.add(f["filename"])
    report = run(index, tmp_path, projects=("sgl-kernel",))
    reasons = {f.reason for f in report.projects[0].failures}
    assert reasons == {"server ignores Range"}
    assert sum(n for path, n in index.sent.items() if path.startswith("/files/")) < 32 * 2**20


def test_run_sync_entry_point(index: Any, tmp_path: Path) -> None:
    progress: list[str] = []
    report = run_sync(
        ["torch"],
        write=True,
        out_dir=tmp_path / "out",
        cache_dir=tmp_path / "cache",
        index_url=index.index_url,
        progress=progress.append,
    )
    assert [p.project for p in report.projects] == ["torch"]
    assert (tmp_path / "out" / "torch.toml").is_file()
    assert any("torch" in line for line in progress)
    assert report.projects[0].via_pep658 == 2


# -- the committed database -----------------------------------------------------------------


def generated(project: str) -> dict[str, Any]:
    path = GENERATED / f"{project}.toml"
    return load(path)


def test_committed_files_are_in_writer_form() -> None:
    files = sorted(GENERATED.glob("*.toml"))
    assert {p.stem for p in files} == set(DEFAULT_PROJECTS) - {"flashinfer-jit-cache"}
    for path in files:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
        assert data["meta"]["project"] == path.stem
        assert toml_write.dumps(data, header=HEADER) == text, path.name


def test_committed_torch_facts() -> None:
    torch = generated("torch")["releases"]
    assert all(not v.startswith("1.") for v in torch)
    r271 = torch["2.7.1"]
    assert r271["cuda"] == "12.6"
    assert (
        'triton==3.3.1; platform_system == "Linux" and platform_machine == "x86_64"'
        in (r271["requires"])
    )
    assert any(r.startswith("nvidia-cuda-runtime-cu12==12.6.") for r in r271["requires"])
    assert torch["2.11.0"]["cuda"] == "13.0"


def test_committed_framework_pins() -> None:
    sglang = generated("sglang")["releases"]["0.4.6.post1"]
    assert 'torch==2.6.0; extra == "srt"' in sglang["requires"]
    vllm = generated("vllm")["releases"]["0.10.1.1"]
    assert "torch==2.7.1" in vllm["requires"]


@pytest.mark.online
def test_online_sync_of_a_small_project(tmp_path: Path) -> None:
    report = run_sync(["flashinfer-cubin"], write=True, out_dir=tmp_path, cache_dir=tmp_path / "c")
    (project,) = report.projects
    assert project.found and project.releases > 0 and not project.failures
    data = load(tmp_path / "flashinfer-cubin.toml")
    assert {r["source"]["method"] for r in data["releases"].values()} <= {"pep658", "range"}


def test_an_incremental_sync_refreshes_yanked_flags(index: Any, tmp_path: Path) -> None:
    """A kept record (same file, same sha256: nothing read again) still takes what the index
    says now: a release yanked upstream after it was read is marked, un-yanked is cleared."""
    # A framework release that pins torch 2.7.1 (so a yanked 2.7.1 stays in the data).
    (tmp_path / "sglang.toml").write_text('[releases."9.0"]\nrequires = ["torch==2.7.1"]\n')
    run(index, tmp_path, projects=("torch",))
    assert load(tmp_path / "torch.toml")["releases"]["2.7.1"]["yanked"] is False
    torch = fakeindex.load_json("torch")
    for f in torch["releases"]["2.7.1"]:
        f["yanked"] = True
    index.add_project("torch", torch)
    report = run(index, tmp_path, projects=("torch",))
    (got,) = report.projects
    assert got.read == 0 and got.changed == ("2.7.1",)  # kept (same bytes), not read again
    assert load(tmp_path / "torch.toml")["releases"]["2.7.1"]["yanked"] is True
    for f in torch["releases"]["2.7.1"]:
        f["yanked"] = False
    index.add_project("torch", torch)
    run(index, tmp_path, projects=("torch",))
    assert load(tmp_path / "torch.toml")["releases"]["2.7.1"]["yanked"] is False
