"""`--deep` on real ELF files: shared objects compiled here with the C compiler, laid out as a
site-packages with torch and a kernel package, read by the probe and judged by the checks."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import msgspec.structs
import pytest
from packaging.version import Version

from compat import elf
from compat.matrix.load import Matrix
from compat.models import Environment, TorchBuild, Unknown
from compat.pipeline import Database, check
from compat.probe import deep
from compat.probe.distributions import scan
from compat.probe.torch import probe_torch
from tests.conftest import make_dist

CC = shutil.which("cc") or shutil.which("gcc")
pytestmark = pytest.mark.skipif(CC is None, reason="needs a C compiler")
NO_ADVISORIES = Database(Matrix(), ())


def _so(out: Path, source: str, *link: str) -> Path:
    """A shared object from C source (function names may be any identifier, mangled C++ too)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    src = out.with_suffix(".c")
    src.write_text(source)
    assert CC is not None
    subprocess.run([CC, "-shared", "-fPIC", "-o", str(out), str(src), *link], check=True)
    src.unlink()
    return out


def _record(folder: Path, *paths: str) -> None:
    (folder / "RECORD").write_text("".join(f"{p},sha256=x,1\n" for p in paths))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """torch 2.7.1+cu126 whose libc10 exports one symbol, and sgl-kernel importing that one and
    another torch does not export; it also links libcudart.so.13 (torch is CUDA 12)."""
    root = tmp_path_factory.mktemp("site")
    lib = root / "torch" / "lib"
    _so(lib / "libc10.so", "void _ZN3c104testEv(void) {}\n")
    _so(lib / "libtorch_cpu.so", "void _ZN2at3addEv(void) {}\n")
    (root / "torch" / "version.py").write_text("__version__ = '2.7.1+cu126'\ncuda = '12.6'\n")
    make_dist(root, "torch", "2.7.1+cu126")
    # A stand-in libcudart.so.13 to link against; it is not shipped in the site.
    stubs = tmp_path_factory.mktemp("stubs")
    _so(stubs / "libcudart.so.13", "int cudaRuntimeGetVersion(int *v) { *v = 13000; return 0; }\n")
    _so(
        root / "sgl_kernel" / "common_ops.abi3.so",
        "extern void _ZN3c104testEv(void); extern void _ZN3c107missingEv(void);\n"
        "void run(void) { _ZN3c104testEv(); _ZN3c107missingEv(); }\n",
        f"-L{lib}",
        "-lc10",
        f"-L{stubs}",
        "-Wl,--no-as-needed",
        "-l:libcudart.so.13",
    )
    kernel = make_dist(root, "sgl-kernel", "0.3.9")
    _record(kernel, "sgl_kernel/common_ops.abi3.so", "sgl_kernel/__init__.py")
    return root


def test_elf_reader_on_compiled_objects(site: Path) -> None:
    so = site / "sgl_kernel" / "common_ops.abi3.so"
    needed = elf.needed(str(so))
    assert "libc10.so" in needed and "libcudart.so.13" in needed
    defined, undefined = elf.dynamic_symbols(str(so))
    assert "run" in defined
    assert {"_ZN3c104testEv", "_ZN3c107missingEv"} <= undefined
    exported, _ = elf.dynamic_symbols(str(site / "torch" / "lib" / "libc10.so"))
    assert "_ZN3c104testEv" in exported
    assert elf.try_needed(str(site / "torch" / "version.py")) is None  # not ELF: None, no raise


def test_probe_reads_objects_of_torch_linked_packages(site: Path) -> None:
    dists = deep.with_objects(scan([str(site)]))
    kernel = next(d for d in dists if d.key == "sgl-kernel")
    (obj,) = kernel.objects
    assert obj.path == "sgl_kernel/common_ops.abi3.so" and obj.error == ""
    assert obj.torch_imports == 2
    assert obj.unresolved == ("_ZN3c107missingEv",) and obj.unresolved_count == 1
    torch = next(d for d in dists if d.key == "torch")
    assert torch.objects == ()  # torch itself is the reference, not judged


def _env(site: Path) -> Environment:
    dists = deep.with_objects(scan([str(site)]))
    tb = probe_torch(next(d for d in dists if d.key == "torch"))
    assert isinstance(tb, TorchBuild) and tb.version == Version("2.7.1+cu126")
    return Environment(
        python=Unknown("test"),
        distributions=dists,
        torch=tb,
        driver=Unknown("test"),
        gpus=Unknown("test"),
        context=Unknown("test"),
        deep=True,
    )


def test_kernel_torch_names_the_undefined_symbol_and_the_cuda_runtime(site: Path) -> None:
    found = [f for f in check(_env(site), NO_ADVISORIES) if f.code == "kernel-torch"]
    messages = " | ".join(f.message for f in found)
    assert (
        "common_ops.abi3.so imports 1 libtorch/c10 symbol(s) that torch 2.7.1+cu126 does not export"
        in messages
    )
    assert "links libcudart.so.13, torch is built for CUDA 12.6" in messages
    undefined = next(f for f in found if "does not export" in f.message)
    assert undefined.evidence == ("undefined: _ZN3c107missingEv",)
    assert undefined.fix == ("install the sgl-kernel build made for torch 2.7.1",)


def test_missing_torch_library_and_unreadable_objects(site: Path, tmp_path: Path) -> None:
    env = _env(site)
    kernel = next(d for d in env.distributions if d.key == "sgl-kernel")
    needs_cuda_lib = msgspec.structs.replace(
        kernel.objects[0],
        needed=("libtorch_cuda.so", "libc10.so"),
        unresolved_count=0,
        unresolved=(),
    )
    broken = msgspec.structs.replace(kernel.objects[0], error="not a readable ELF object")
    env = msgspec.structs.replace(
        env,
        distributions=tuple(
            msgspec.structs.replace(d, objects=(needs_cuda_lib, broken))
            if d.key == "sgl-kernel"
            else d
            for d in env.distributions
        ),
    )
    (f,) = [f for f in check(env, NO_ADVISORIES) if f.code == "kernel-torch"]
    assert "needs libtorch_cuda.so, which torch lacks" in f.message


def test_hostile_files_are_facts_with_an_error_not_exceptions(site: Path, tmp_path: Path) -> None:
    (tmp_path / "bad").mkdir()
    make_dist(tmp_path, "flash-attn", "2.7.0")
    _record(
        next(tmp_path.glob("flash_attn-*.dist-info")),
        "bad/a.so",
        "bad/b.so",
        "bad/c.so",
        "bad/fifo.so",
    )
    (tmp_path / "bad" / "a.so").write_bytes(b"\x7fELF\x02\x01" + b"\0" * 10)  # truncated header
    header = bytearray((site / "torch" / "lib" / "libc10.so").read_bytes()[:64])
    header[0x28:0x30] = (2**62).to_bytes(8, "little")  # e_shoff far past the end
    (tmp_path / "bad" / "b.so").write_bytes(bytes(header))
    (tmp_path / "bad" / "c.so").write_bytes(b"MZ not an ELF")
    import os

    os.mkfifo(tmp_path / "bad" / "fifo.so")
    dists = deep.with_objects(scan([str(tmp_path)]))
    (fa,) = dists
    errors = {o.path: o.error for o in fa.objects}
    assert set(errors) == {"bad/a.so", "bad/b.so", "bad/c.so", "bad/fifo.so"}
    assert all(errors.values()), errors
    assert errors["bad/fifo.so"] == "not a regular file"
