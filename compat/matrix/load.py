"""Load and validate the database; generated project files are read only when a check asks.

A check touches a handful of projects (torch, triton, the framework), so `Matrix.releases(name)`
parses that project's file on first use; curated files are small and read at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from packaging.version import Version

from compat import resources
from compat.errors import DataError, InputError
from compat.matrix.schema import (
    BuildFacts,
    CudaImage,
    ExportsTable,
    GpuModel,
    Problems,
    Release,
    Toolkit,
    TorchBuildInfo,
    WheelIndex,
    parse_cc,
    read_builds,
    read_exports,
    read_generated,
    read_gpus,
    read_images,
    read_indexes,
    read_toolkits,
    read_torch_builds,
)
from compat.matrix.tomlfile import read_toml
from compat.models import canonicalize_name


class Matrix:
    """The version database: generated releases per project and the curated tables."""

    def __init__(self, root: Optional[Path] = None) -> None:
        self.root = root or resources.matrices_dir()
        self._releases: dict[str, dict[Version, Release]] = {}
        self._builds: dict[str, dict[Version, BuildFacts]] = {}
        self._exports: Optional[ExportsTable] = None
        self._curated: Optional[
            tuple[
                list[Toolkit],
                list[TorchBuildInfo],
                list[GpuModel],
                list[WheelIndex],
                list[CudaImage],
            ]
        ] = None

    # Generated data -------------------------------------------------------------------------
    def projects(self) -> list[str]:
        folder = self.root / "generated"
        return sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []

    def releases(self, name: str) -> dict[Version, Release]:
        key = canonicalize_name(name)
        if key not in self._releases:
            path = self.root / "generated" / f"{key}.toml"
            if not path.is_file():
                self._releases[key] = {}
            else:
                p = Problems(str(path))
                _, rels = read_generated(p, read_toml(path, cached=True), strict=False)
                if p.items:
                    raise DataError(
                        p.items,
                        hint="run `compat matrix validate`; refresh with "
                        "`compat matrix sync --write`",
                    )
                self._releases[key] = rels
        return self._releases[key]

    def release(self, name: str, version: Version) -> Optional[Release]:
        rels = self.releases(name)
        hit = rels.get(version)
        if hit is None and version.local:
            hit = rels.get(Version(version.public))
        return hit

    def knows(self, name: str) -> bool:
        return bool(self.releases(name))

    # Build facts (generated/builds/) ------------------------------------------------------------
    def build_projects(self) -> list[str]:
        """Projects whose compiled wheels have build facts."""
        folder = self.root / "generated" / "builds"
        if not folder.is_dir():
            return []
        return sorted(p.stem for p in folder.glob("*.toml") if p.stem != "torch-exports")

    def builds(self, name: str) -> dict[Version, BuildFacts]:
        """Every release of `name` whose compiled wheel was read (read on first use)."""
        key = canonicalize_name(name)
        if key not in self._builds:
            path = self.root / "generated" / "builds" / f"{key}.toml"
            rows: dict[Version, BuildFacts] = {}
            if path.is_file():
                p = Problems(str(path))
                _, rows = read_builds(p, read_toml(path, cached=True))
                if p.items:
                    raise DataError(p.items, hint="run `compat matrix validate`")
            self._builds[key] = rows
        return self._builds[key]

    def build_facts(self, name: str, version: Version) -> Optional[BuildFacts]:
        """What the PyPI wheel of `name` `version` links and imports. A version with a local
        tag (+cu126) came from another index: its wheel was not read, so None."""
        return self.builds(name).get(version)

    def torch_exports(self) -> ExportsTable:
        """torch's exports per release, over the tracked symbols (read on first use)."""
        if self._exports is None:
            path = self.root / "generated" / "builds" / "torch-exports.toml"
            table = ExportsTable((), {})
            if path.is_file():
                p = Problems(str(path))
                table = read_exports(p, read_toml(path, cached=True))
                if p.items:
                    raise DataError(p.items, hint="run `compat matrix validate`")
            self._exports = table
        return self._exports

    # Curated data ---------------------------------------------------------------------------
    def _load_curated(
        self,
    ) -> tuple[
        list[Toolkit], list[TorchBuildInfo], list[GpuModel], list[WheelIndex], list[CudaImage]
    ]:
        if self._curated is None:
            folder = self.root / "curated"
            problems: list[str] = []

            def read(name: str, fn: Any) -> list[Any]:
                path = folder / name
                if not path.is_file():
                    return []
                p = Problems(str(path))
                rows: list[Any] = fn(p, read_toml(path, cached=True))
                problems.extend(p.items)
                return rows

            toolkits = read("cuda.toml", read_toolkits)
            builds = read("torch_builds.toml", read_torch_builds)
            gpus = read("gpus.toml", read_gpus)
            indexes = read("indexes.toml", read_indexes)
            images = read("images.toml", read_images)
            if problems:
                raise DataError(problems, hint="run `compat matrix validate`")
            self._curated = (toolkits, builds, gpus, indexes, images)
        return self._curated

    @property
    def toolkits(self) -> list[Toolkit]:
        return self._load_curated()[0]

    @property
    def torch_builds(self) -> list[TorchBuildInfo]:
        return self._load_curated()[1]

    @property
    def gpus(self) -> list[GpuModel]:
        return self._load_curated()[2]

    @property
    def indexes(self) -> list[WheelIndex]:
        return self._load_curated()[3]

    @property
    def images(self) -> list[CudaImage]:
        return self._load_curated()[4]

    def toolkit(self, cuda: str) -> Optional[Toolkit]:
        """The curated row for a CUDA version ('12.4'), or for the nearest lower one of that major."""
        try:
            want = Version(cuda)
        except ValueError:
            return None
        best = None
        for t in self.toolkits:
            if (
                t.cuda.major == want.major
                and t.cuda <= want
                and (best is None or t.cuda > best.cuda)
            ):
                best = t
        return best

    def builds_of(self, torch: Version) -> list[TorchBuildInfo]:
        public = Version(torch.public)
        return [b for b in self.torch_builds if b.torch == public]

    def build_of(self, torch: Version, cuda: Optional[str]) -> Optional[TorchBuildInfo]:
        """The build row for an installed torch: by its CUDA, else the PyPI default build."""
        rows = self.builds_of(torch)
        if cuda:
            for b in rows:
                if b.cuda == cuda:
                    return b
            return None
        for b in rows:
            if b.pypi_default:
                return b
        return None

    def gpu(self, text: str) -> Optional[GpuModel]:
        """A curated GPU by alias ('h100'), by a substring of its NVML name, or None."""
        t = text.strip().lower()
        for g in self.gpus:
            if t in g.aliases or t == g.name.lower():
                return g
        # The longest match string wins: "NVIDIA L4" is inside "NVIDIA L40S", "H20" inside "H200".
        best: Optional[tuple[int, GpuModel]] = None
        for g in self.gpus:
            for m in g.match:
                if m.lower() in t and (best is None or len(m) > best[0]):
                    best = (len(m), g)
        return best[1] if best else None


def parse_gpu_arg(text: str, matrix: Matrix) -> tuple[str, tuple[int, int], Optional[float]]:
    """`--gpu` value: 'sm_90', '9.0' or a curated name -> (name, compute capability, memory GiB)."""
    t = text.strip()
    if t.lower().startswith("sm_") or t.replace(".", "", 1).isdigit():
        try:
            cc = parse_cc(t)
        except ValueError as exc:
            raise InputError(f"--gpu {text!r}: {exc}") from exc
        return t, cc, None
    model = matrix.gpu(t)
    if model is None:
        from compat.errors import UsageError

        known = ", ".join(sorted({a for g in matrix.gpus for a in g.aliases[:1]}))
        raise UsageError(
            f"--gpu {text!r}: not a GPU compat knows",
            hint=f"give a compute capability such as sm_90, or one of: {known}",
        )
    return model.name, model.compute_capability, model.memory_gib


def validate_all(root: Optional[Path] = None) -> list[str]:
    """Every problem in every database file (generated, curated, advisories)."""
    root = root or resources.matrices_dir()
    problems: list[str] = []
    for path in sorted((root / "generated").glob("*.toml")):
        p = Problems(str(path))
        try:
            project, _ = read_generated(p, read_toml(path))
        except DataError as exc:
            problems.extend(exc.problems)
            continue
        if project and project != path.stem:
            p.add("meta.project", f"{project!r} does not match the file name {path.stem!r}")
        problems.extend(p.items)
    problems.extend(_validate_builds(root / "generated" / "builds"))
    m = Matrix(root)
    try:
        m._load_curated()
    except DataError as exc:
        problems.extend(exc.problems)
    adv = root / "advisories"
    if adv.is_dir():
        try:
            from compat.advisories import load_advisories

            load_advisories(adv)
        except DataError as exc:
            problems.extend(exc.problems)
    return problems


def _validate_builds(folder: Path) -> list[str]:
    """builds/*.toml against their schema, and every import index against the tracked list."""
    if not folder.is_dir():
        return []
    problems: list[str] = []
    tracked = 0
    exports = folder / "torch-exports.toml"
    if exports.is_file():
        p = Problems(str(exports))
        try:
            tracked = len(read_exports(p, read_toml(exports)).tracked)
        except DataError as exc:
            problems.extend(exc.problems)
        problems.extend(p.items)
    for path in sorted(folder.glob("*.toml")):
        if path == exports:
            continue
        p = Problems(str(path))
        try:
            project, rows = read_builds(p, read_toml(path))
        except DataError as exc:
            problems.extend(exc.problems)
            continue
        if project and project != path.stem:
            p.add("meta.project", f"{project!r} does not match the file name {path.stem!r}")
        for version, facts in rows.items():
            if any(i >= tracked for i in facts.imports):
                p.add(f"releases.{version}.imports", f"indices past the {tracked} tracked symbols")
        problems.extend(p.items)
    return problems
