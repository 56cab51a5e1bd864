"""Build facts: what compiled wheels link and import, torch's exports, and the verdicts on them."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import shutil
import sys
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.version import Version

from compat.matrix.buildfacts import (
    agreement,
    copins,
    covering,
    cuda_agreement,
    cuda_changes,
    is_torch_symbol,
    release_facts,
    symbol_hash,
    torch_facts,
)
from compat.matrix.builtfor import built_for, releases_built_for, span
from compat.matrix.load import Matrix, validate_all
from compat.matrix.pypi import DiskCache, PyPIClient, RetryPolicy
from compat.matrix.schema import decode_ranges, encode_ranges
from compat.matrix.sync import choose_wheel, sync

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wheelbytes import make_elf

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "fakeindex", ROOT / "tests" / "assets" / "pypi" / "fakeindex.py"
)
assert _spec is not None and _spec.loader is not None
fakeindex: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fakeindex)

T0 = datetime(2026, 11, 22, 23, 10, tzinfo=timezone.utc)
OLD_ABI = "_ZN3c106detail14torchCheckFailEPKcS2_jRKSs"
NEW_ABI = (
    "_ZN3c106detail14torchCheckFailEPKcS2_jRKNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEE"
)
STREAM = "_ZN3c104cuda20getCurrentCUDAStreamEa"
BLAS = "_ZN2at4cuda26getCurrentCUDABlasHandleEv"


# -- small pieces ------------------------------------------------------------------------------


@given(st.sets(st.integers(0, 5000), max_size=200))
def test_ranges_round_trip(indices: set[int]) -> None:
    assert decode_ranges(encode_ranges(indices)) == indices


@pytest.mark.parametrize("text", ["1-", "a", "3-1", "1,,2", "0-99999999"])
def test_bad_ranges_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        decode_ranges(text)


def test_torch_symbols() -> None:
    for name in (
        OLD_ABI,
        STREAM,
        "_ZTIN3c105ErrorE",
        "_ZNK2at10TensorBase4sizeEl",
        "_Z16THPVariable_WrapN2at10TensorBaseE",
        "THPVariableClass",
        "aoti_torch_get_dim",
        "_ZN5torch3jit5fooEv",
    ):
        assert is_torch_symbol(name), name
    for name in ("_ZNSt6vectorIiSaIiEE9push_backEv", "memcpy", "cudaMalloc", "_ZN4cute3fooEv"):
        assert not is_torch_symbol(name), name
    assert symbol_hash(STREAM) == hashlib.sha256(STREAM.encode()).hexdigest()[:12]


def _reading(file: str, members: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "file": file,
        "sha256": "0" * 64,
        "read_at": "2026-11-22T23:10:00Z",
        "bytes_read": 1000,
        "members": members,
    }


def test_release_facts_and_coverage() -> None:
    tracked: dict[str, int] = {}
    facts = release_facts(
        _reading(
            "k-1.0-cp39-abi3-manylinux_2_28_x86_64.whl",
            [
                {
                    "name": "k/_C.abi3.so",
                    "size": 10,
                    "compressed": 5,
                    "how": "whole",
                    "bytes": 5,
                    "needed": ["libtorch.so", "libcudart.so.13", "libc.so.6"],
                    "needed_from": "dynamic",
                    "soname": "",
                    "symbols_from": "sections",
                    "notes": [],
                    "imports": [NEW_ABI, STREAM],
                    "sass": [90, 100],
                    "ptx": [100],
                },
                {
                    "name": "k/big.so",
                    "size": 10,
                    "compressed": 5,
                    "how": "ends",
                    "bytes": 5,
                    "needed": ["libnvrtc.so.13"],
                    "needed_from": "dynstr",
                    "soname": "",
                    "symbols_from": "sections",
                    "notes": [],
                    "imports": [],
                    "archs": "not read",
                },
            ],
        ),
        tracked,
    )
    assert facts["libraries"] == ["libcudart.so.13", "libnvrtc.so.13", "libtorch.so"]
    assert facts["cuda"] == "13" and facts["cuda_from"] == ["libcudart.so.13 in k/_C.abi3.so"]
    assert facts["import_count"] == 2 and decode_ranges(facts["imports"]) == {0, 1}
    assert facts["sass"] == ["9.0", "10.0"] and facts["ptx"] == ["10.0"]
    assert "1 not read" in facts["archs"]
    new = torch_facts(
        _reading(
            "torch-2.8.0.whl",
            [
                {
                    "name": "torch/lib/libc10.so",
                    "size": 1,
                    "compressed": 1,
                    "how": "whole",
                    "bytes": 1,
                    "symbols_from": "sections",
                    "exports": [symbol_hash(NEW_ABI), symbol_hash(STREAM)],
                }
            ],
        ),
        tracked,
    )
    old = torch_facts(
        _reading(
            "torch-2.6.0.whl",
            [
                {
                    "name": "torch/lib/libc10.so",
                    "size": 1,
                    "compressed": 1,
                    "how": "whole",
                    "bytes": 1,
                    "symbols_from": "sections",
                    "exports": [symbol_hash(OLD_ABI), symbol_hash(STREAM)],
                }
            ],
        ),
        tracked,
    )
    rows = {"2.6.0": old, "2.8.0": new}
    assert covering(frozenset({0, 1}), rows) == ["2.8.0"]
    assert covering(frozenset({1}), rows) == ["2.6.0", "2.8.0"]
    # A torch row that has not checked a symbol cannot answer for it.
    assert covering(frozenset({5}), rows) == []


def test_copins_need_the_same_extra() -> None:
    records = {
        "sglang": {
            "0.5.2": {
                "requires": [
                    'sgl-kernel==0.3.9.post2; extra == "srt"',
                    'torch==2.8.0; extra == "srt"',
                    'torch==2.7.1; extra == "srt-hip"',
                ]
            },
            "0.5.3": {
                "requires": ["sgl-kernel==0.3.14", "torch==2.8.0", 'torch==2.9.0; extra == "x"']
            },
        },
        "vllm": {"0.11.0": {"requires": ["torch==2.8.0", "xformers==0.0.32.post1"]}},
    }
    pins = copins(records)
    assert pins[("sgl-kernel", "0.3.9.post2")] == {"torch==2.8.0 (sglang 0.5.2)"}
    # The unconditional kernel pin goes with the unconditional torch pin; a kernel pinned for an
    # extra that has its own torch pin besides the unconditional one has no single answer.
    assert pins[("sgl-kernel", "0.3.14")] == {"torch==2.8.0 (sglang 0.5.3)"}
    assert ("sgl-kernel", "0.3.15") not in pins
    assert pins[("xformers", "0.0.32.post1")] == {"torch==2.8.0 (vllm 0.11.0)"}
    assert pins[("vllm", "0.11.0")] == {"torch==2.8.0 (its own pin)"}


def test_agreement_counts() -> None:
    facts = {
        "torchvision": {
            "0.23.0": {"import_count": 3, "torch": ["2.8.0", "2.9.0"]},
            "0.22.0": {"import_count": 3, "torch": ["2.8.0"]},
            "0.21.0": {"import_count": 3, "torch": []},
        }
    }
    records = {
        "torchvision": {
            "0.23.0": {"requires": ["torch==2.8.0"]},
            "0.22.0": {"requires": ["torch==2.7.1"]},
            "0.21.0": {"requires": ["torch==2.6.0"]},
        }
    }
    rows = {v: {} for v in ("2.6.0", "2.7.1", "2.8.0", "2.9.0")}
    got = agreement(facts, rows, records, {})
    assert (got.cases, got.agree, got.unique) == (3, 1, 0)
    assert len(got.disagree) == 1 and "0.22.0" in got.disagree[0]
    assert len(got.uncovered) == 1 and "0.21.0" in got.uncovered[0]


# -- the sync step, end to end over a fake index --------------------------------------------


def _wheel(members: dict[str, bytes], requires: list[str], name: str) -> bytes:
    out = io.BytesIO()
    meta = f"Metadata-Version: 2.1\nName: {name}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires
    )
    when = (2026, 1, 1, 0, 0, 0)  # fixed: the same inputs give the same bytes and sha256
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for member, data in members.items():
            z.writestr(zipfile.ZipInfo(member, when), data, zipfile.ZIP_DEFLATED)
        z.writestr(zipfile.ZipInfo(f"{name.replace('-', '_')}-x.dist-info/METADATA", when), meta)
    return out.getvalue()


def _project(index: Any, name: str, releases: dict[str, tuple[str, bytes]]) -> None:
    data: dict[str, Any] = {"info": {"name": name}, "releases": {}}
    for version, (filename, blob) in releases.items():
        index.blobs[filename] = blob
        data["releases"][version] = [
            {
                "filename": filename,
                "url": f"https://files.example/{filename}",
                "packagetype": "bdist_wheel",
                "size": len(blob),
                "yanked": False,
                "digests": {"sha256": hashlib.sha256(blob).hexdigest()},
                "upload_time_iso_8601": f"2026-0{len(data['releases']) + 1}-01T00:00:00Z",
                "requires_python": ">=3.9",
            }
        ]
    index.add_project(name, data)


def _serve(index: Any, sgl_11_symbols: tuple[str, ...] = (NEW_ABI, STREAM)) -> None:
    def torch_wheel(version: str, exports: list[str]) -> tuple[str, bytes]:
        lib = make_elf(needed=["libc.so.6"], defined=exports, middle=1_500_000, strings_at_end=True)
        f = f"torch-{version}-cp312-cp312-manylinux_2_28_x86_64.whl"
        return f, _wheel({"torch/lib/libc10.so": lib, "torch/__init__.py": b""}, [], "torch")

    _project(
        index,
        "torch",
        {
            "2.7.1": torch_wheel("2.7.1", [OLD_ABI, STREAM]),
            "2.8.0": torch_wheel("2.8.0", [NEW_ABI, STREAM, BLAS]),
        },
    )

    def kernel(version: str, imports: tuple[str, ...], cudart: str) -> tuple[str, bytes]:
        lib = make_elf(needed=["libtorch.so", cudart], undefined=list(imports), defined=["k"])
        f = f"sgl_kernel-{version}-cp39-abi3-manylinux2014_x86_64.whl"
        return f, _wheel({"sgl_kernel/common_ops.abi3.so": lib}, [], "sgl-kernel")

    _project(
        index,
        "sgl-kernel",
        {
            "1.0": kernel("1.0", (OLD_ABI, STREAM), "libcudart.so.12"),
            "1.1": kernel("1.1", sgl_11_symbols, "libcudart.so.13"),
        },
    )
    _project(
        index,
        "sglang",
        {
            "0.5.0": (
                "sglang-0.5.0-py3-none-any.whl",
                _wheel({"sglang/__init__.py": b""}, ["sgl-kernel==1.0", "torch==2.7.1"], "sglang"),
            ),
            "0.5.1": (
                "sglang-0.5.1-py3-none-any.whl",
                _wheel({"sglang/__init__.py": b""}, ["sgl-kernel==1.1", "torch==2.8.0"], "sglang"),
            ),
        },
    )


def _sync(index: Any, out: Path, cache: Path) -> Any:
    with PyPIClient(
        index.index_url,
        cache=DiskCache(cache),
        retry=RetryPolicy(attempts=2, first_pause=0.0),
        sleep=lambda _s: None,
    ) as c:
        return sync(
            c, ("sglang", "torch", "sgl-kernel"), out, write=True, now=lambda: T0, builds=True
        )


@pytest.fixture
def synced(tmp_path: Path) -> Any:
    root = tmp_path / "db"
    shutil.copytree(ROOT / "matrices" / "curated", root / "curated")
    out = root / "generated"
    with fakeindex.FakeIndex() as index:
        _serve(index)
        report = _sync(index, out, tmp_path / "cache")
        yield index, root, report, tmp_path


def test_sync_writes_build_facts_with_verdicts(synced: Any) -> None:
    index, root, report, _ = synced
    assert report.ok, report.summary()
    b = report.builds
    assert b is not None and b.torch_releases == 2 and b.tracked == 3
    assert (b.agreement.cases, b.agreement.agree) == (2, 2)
    m = Matrix(root)
    assert m.build_projects() == ["sgl-kernel"]
    old, new = (
        m.build_facts("sgl-kernel", Version("1.0")),
        m.build_facts("sgl-kernel", Version("1.1")),
    )
    assert old is not None and new is not None
    assert old.torch == (Version("2.7.1"),) and new.torch == (Version("2.8.0"),)
    assert old.cuda == (12,) and new.cuda == (13,)
    assert old.signals.copins == ("torch==2.7.1 (sglang 0.5.0)",)
    exports = m.torch_exports()
    yes = built_for(new, Version("2.8.0+cu128"), exports)
    assert (yes.answer, yes.method) == (True, "exports")
    no = built_for(new, Version("2.7.1"), exports)
    assert (no.answer, no.method, no.built_for) == (False, "exports", "torch 2.8.0")
    assert "lack 1 of them" in no.evidence[1]
    unknown = built_for(new, Version("2.9.0"), exports)  # torch not read: the co-pin speaks
    assert (unknown.answer, unknown.method) == (False, "copin")
    assert releases_built_for(m.builds("sgl-kernel"), Version("2.7.1"), exports) == [Version("1.0")]
    assert validate_all(root) == []
    # Only ranges of the large torch libraries were read, never a whole wheel.
    sizes = {name: len(blob) for name, blob in index.blobs.items() if name.startswith("torch-")}
    for name, size in sizes.items():
        assert index.sent[f"/files/{name}"] < size / 2, name


def test_resync_reads_nothing_and_is_byte_identical(synced: Any) -> None:
    index, root, _, tmp_path = synced
    before = {p: p.read_bytes() for p in (root / "generated" / "builds").glob("*.toml")}
    with index.lock:
        index.log.clear()
    report = _sync(index, root / "generated", tmp_path / "cache2")  # even with a cold cache
    assert report.ok and report.builds is not None
    assert all(p.read_bytes() == data for p, data in before.items())
    wheel_reads = [e for e in index.log if e[0].startswith(("/files/torch-", "/files/sgl_kernel-"))]
    assert wheel_reads == []
    assert sum(p.read for p in report.builds.projects) == 0


def test_new_symbol_rereads_torch_from_the_cache(tmp_path: Path) -> None:
    root = tmp_path / "db"
    shutil.copytree(ROOT / "matrices" / "curated", root / "curated")
    with fakeindex.FakeIndex() as index:
        _serve(index)
        first = _sync(index, root / "generated", tmp_path / "cache")
        assert first.builds is not None and first.builds.tracked == 3
    with fakeindex.FakeIndex() as index:
        # 1.1 re-published importing one more symbol: a new file and sha256.
        _serve(index, sgl_11_symbols=(NEW_ABI, STREAM, BLAS))
        second = _sync(index, root / "generated", tmp_path / "cache")
    assert second.builds is not None and second.builds.tracked == 4
    assert second.builds.torch_read == 0  # the torch readings came from the cache
    assert [(p.read, p.kept) for p in second.builds.projects] == [(1, 1)]
    facts = Matrix(root).build_facts("sgl-kernel", Version("1.1"))
    assert facts is not None and facts.torch == (Version("2.8.0"),)


def test_broken_builds_files_are_reported(tmp_path: Path) -> None:
    folder = tmp_path / "generated" / "builds"
    folder.mkdir(parents=True)
    (folder / "torch-exports.toml").write_text(
        '[tracked]\nsymbols = ["aaaaaaaaaaaa", "bad"]\n', encoding="utf-8"
    )
    (folder / "sgl-kernel.toml").write_text(
        '[meta]\nproject = "other"\n[releases."1.0"]\nfile = "f"\nsha256 = "x"\nread_at = ""\n'
        'bytes_read = 1\nmembers = []\nimports = "0-5"\nimport_count = 2\ncuda = "12;13"\n'
        "surprise = 1\n",
        encoding="utf-8",
    )
    problems = "\n".join(validate_all(tmp_path))
    for needle in (
        "tracked.symbols[1]: expected 12 lowercase hex digits",
        "meta.project: 'other' does not match",
        "releases.1.0.sha256: expected 64 lowercase hex digits",
        "releases.1.0.import_count: 2 but imports lists 6",
        "releases.1.0.cuda: expected CUDA majors",
        "releases.1.0.surprise: unknown key",
        "releases.1.0.imports: indices past the 2 tracked symbols",
    ):
        assert needle in problems, needle


def test_span_words() -> None:
    assert span([]) == ""
    assert span([Version("2.8.0")]) == "torch 2.8.0"
    vs = [Version(v) for v in ("2.4.0", "2.4.1", "2.5.0", "2.5.1")]
    assert span(vs) == "torch 2.4.0 ... 2.5.1 (4 releases)"


@pytest.mark.online
def test_online_real_kernel_wheel_end_to_end(tmp_path: Path) -> None:
    """sglang-kernel 0.4.10 from PyPI: a ~350 MB wheel read by ranges; CUDA 13, torch symbols."""
    from compat.matrix.buildfacts import read_release

    with PyPIClient(cache=DiskCache(tmp_path)) as client:
        page = client.project("sglang-kernel")
        assert page is not None
        wheel = choose_wheel(page.data["releases"]["0.4.10"])
        assert wheel is not None
        url = urljoin(page.url, str(wheel["url"]))
        reading, cached = read_release(
            client, url, wheel["filename"], wheel["digests"]["sha256"], False, T0
        )
        assert not cached
    tracked: dict[str, int] = {}
    facts = release_facts(reading, tracked)
    assert facts["cuda"] == "13" and any("libcudart.so.13" in c for c in facts["cuda_from"])
    assert facts["import_count"] > 100
    assert "libtorch_cuda.so" in facts["libraries"]
    assert reading["fetched"] < wheel["size"] / 50  # ranges, never the wheel


def test_cuda_changes_and_agreement() -> None:
    facts = {
        "vllm": {
            "0.9.0": {"cuda": "12", "torch": ["2.7.0"]},
            "0.9.1": {"cuda": "12"},
            "0.10.0": {"cuda": "13", "torch": ["2.8.0"]},
            "0.11.0": {"cuda": ""},
        },
        "nixl": {"1.0": {"cuda": "12,13", "signals": {"requires_cuda": "13.0"}}},
    }
    assert cuda_changes(facts) == ("vllm: CUDA 12 0.9.0 ... 0.9.1; CUDA 13 0.10.0",)
    agree, cases, odd = cuda_agreement(
        facts, {"2.7.0": {"cuda": "12.6"}, "2.8.0": {"cuda": "12.8"}}
    )
    assert (agree, cases) == (2, 3)
    assert odd == ("vllm 0.10.0: links CUDA 13, its torch build (or requirements) CUDA 12",)


def test_one_extension_per_torch() -> None:
    """mooncake ships pg_2_9_0.so and pg_2_10_0.so: no torch covers both, each is covered."""
    from compat.matrix.buildfacts import member_variants
    from compat.matrix.schema import BuildFacts, BuildSignals, ExportsTable, TorchExports

    tracked: dict[str, int] = {}
    member = {
        "size": 1,
        "compressed": 1,
        "how": "whole",
        "bytes": 1,
        "needed": [],
        "symbols_from": "sections",
        "needed_from": "dynamic",
    }
    facts = release_facts(
        _reading(
            "m-1.0.whl",
            [
                {**member, "name": "m/pg_2_7.so", "imports": [OLD_ABI, STREAM]},
                {**member, "name": "m/pg_2_8.so", "imports": [NEW_ABI, STREAM]},
            ],
        ),
        tracked,
    )
    old, new, stream = (tracked[symbol_hash(x)] for x in (OLD_ABI, NEW_ABI, STREAM))
    first, second = encode_ranges({old, stream}), encode_ranges({new, stream})
    assert facts["member_imports"] == [f"m/pg_2_7.so: {first}", f"m/pg_2_8.so: {second}"]
    rows = {
        "2.7.1": {"complete": True, "checked": 3, "provides": first},
        "2.8.0": {"complete": True, "checked": 3, "provides": second},
    }
    assert covering(decode_ranges(facts["imports"]), rows) == []
    assert member_variants(facts["member_imports"], rows) == {
        "m/pg_2_7.so": ["2.7.1"],
        "m/pg_2_8.so": ["2.8.0"],
    }
    exports = ExportsTable(
        tuple(tracked),
        {
            Version(v): TorchExports(
                Version(v), "t.whl", "", "", 1, (), 2, 3, decode_ranges(r["provides"]), True
            )
            for v, r in rows.items()
        },
    )
    built = BuildFacts(
        "mooncake-transfer-engine",
        Version("1.0"),
        "m-1.0.whl",
        "",
        "",
        1,
        (),
        (),
        (),
        (),
        decode_ranges(facts["imports"]),
        3,
        (Version("2.7.1"), Version("2.8.0")),
        (),
        (),
        "",
        BuildSignals(),
        member_imports=(
            ("m/pg_2_7.so", frozenset({old, stream})),
            ("m/pg_2_8.so", frozenset({new, stream})),
        ),
        variants=("m/pg_2_7.so: 2.7.1", "m/pg_2_8.so: 2.8.0"),
    )
    yes = built_for(built, Version("2.8.0"), exports)
    assert yes.answer is True and "m/pg_2_8.so" in yes.evidence[-1]
    # A torch whose exports cover neither extension.
    exports.releases[Version("2.9.0")] = TorchExports(
        Version("2.9.0"), "t.whl", "", "", 1, (), 1, 3, frozenset({stream}), True
    )
    assert built_for(built, Version("2.9.0"), exports).answer is False
