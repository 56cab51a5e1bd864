"""Load and validate the database; generated project files are read only when a check asks.

A check touches a handful of projects (torch, triton, the framework), so `Matrix.releases(name)`
parses that project's file on first use; curated files are small and read at once.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional

from packaging.version import Version

from compat import resources
from compat.errors import DataError
from compat.hardware import DriverCatalog, GpuCatalog, parse_gpu
from compat.matrix.schema import (
    BuildFacts,
    CondaPackage,
    CudaImage,
    DriverTables,
    ExportsTable,
    GpuFamilies,
    GpuModel,
    ImageRepository,
    MemoryData,
    Problems,
    Release,
    Toolkit,
    TorchBuildInfo,
    WheelIndex,
    read_builds,
    read_conda,
    read_drivers,
    read_exports,
    read_generated,
    read_gpu_families,
    read_gpus,
    read_images,
    read_indexes,
    read_memory,
    read_repositories,
    read_toolkits,
    read_torch_builds,
)
from compat.matrix.tomlfile import read_toml
from compat.models import canonicalize_name, parse_version

# A canonical project name (PEP 503), bounded: the name of a generated/ file.
_PROJECT = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,126}[a-z0-9])?")


class Matrix:
    """The version database: generated releases per project and the curated tables."""

    def __init__(self, root: Optional[Path] = None) -> None:
        self.root = root or resources.matrices_dir()
        self._releases: dict[str, dict[Version, Release]] = {}
        self._builds: dict[str, dict[Version, BuildFacts]] = {}
        self._build_docs: dict[str, Optional[dict[str, Any]]] = {}
        self._build_one: dict[tuple[str, Version], Optional[BuildFacts]] = {}
        self._exports: Optional[ExportsTable] = None
        self._curated: Optional[
            tuple[list[Toolkit], list[TorchBuildInfo], list[WheelIndex], list[CudaImage]]
        ] = None
        self._hardware: Optional[tuple[list[GpuModel], GpuFamilies]] = None
        self._drivers: Optional[DriverTables] = None
        self._gpu_catalog: Optional[GpuCatalog] = None
        self._driver_catalog: Optional[DriverCatalog] = None
        self._memory: Optional[MemoryData] = None
        self._inputs: dict[str, Any] = {}

    # Generated data -------------------------------------------------------------------------
    def projects(self) -> list[str]:
        folder = self.root / "generated"
        return sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []

    def releases(self, name: str) -> dict[Version, Release]:
        key = canonicalize_name(name)
        if key not in self._releases:
            path = self.root / "generated" / f"{key}.toml"
            # a name no project can have (a path, 5,000 characters) has no file to look for
            if not _PROJECT.fullmatch(key) or not path.is_file():
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

    def _builds_path(self, key: str) -> Path:
        return self.root / "generated" / "builds" / f"{key}.toml"

    def _builds_doc(self, key: str) -> Optional[dict[str, Any]]:
        """builds/<key>.toml as read (through the JSON cache), None when there is none."""
        if key not in self._build_docs:
            path = self._builds_path(key)
            ok = _PROJECT.fullmatch(key) is not None and path.is_file()
            self._build_docs[key] = read_toml(path, cached=True) if ok else None
        return self._build_docs[key]

    def builds(self, name: str) -> dict[Version, BuildFacts]:
        """Every release of `name` whose compiled wheel was read (read on first use)."""
        key = canonicalize_name(name)
        if key not in self._builds:
            doc = self._builds_doc(key)
            rows: dict[Version, BuildFacts] = {}
            if doc is not None:
                p = Problems(str(self._builds_path(key)))
                _, rows = read_builds(p, doc)
                if p.items:
                    raise DataError(p.items, hint="run `compat matrix validate`")
            self._builds[key] = rows
        return self._builds[key]

    def build_facts(self, name: str, version: Version) -> Optional[BuildFacts]:
        """What the PyPI wheel of `name` `version` links and imports. A version with a local
        tag (+cu126) came from another index: its wheel was not read, so None.

        Only that release's row is turned into facts (a check asks for the installed releases;
        vLLM's file holds a hundred): every row is read when all are asked for (`builds`), by
        `compat matrix validate`, and when a data update is staged."""
        key = canonicalize_name(name)
        if key in self._builds:
            return self._builds[key].get(version)
        if (key, version) not in self._build_one:
            self._build_one[key, version] = self._one_build(key, version)
        return self._build_one[key, version]

    def _one_build(self, key: str, version: Version) -> Optional[BuildFacts]:
        doc = self._builds_doc(key)
        rows = doc.get("releases") if doc is not None else None
        if doc is None or not isinstance(rows, dict):
            return self.builds(key).get(version)  # reported as the whole file is
        text = str(version)
        row = text if text in rows else None
        if row is None:
            row = next((k for k in rows if parse_version(k) == version), None)
        if row is None:
            return None
        p = Problems(str(self._builds_path(key)))
        _, got = read_builds(p, {"meta": doc.get("meta", {}), "releases": {row: rows[row]}})
        if p.items:
            raise DataError(p.items, hint="run `compat matrix validate`")
        return got.get(version)

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
    def _read(self, name: str, fn: Any, empty: Any, problems: list[str]) -> Any:
        path = self.root / "curated" / name
        if not path.is_file():
            return empty
        p = Problems(str(path))
        out = fn(p, read_toml(path, cached=True))
        problems.extend(p.items)
        return out

    def _load_curated(
        self,
    ) -> tuple[list[Toolkit], list[TorchBuildInfo], list[WheelIndex], list[CudaImage]]:
        if self._curated is None:
            problems: list[str] = []
            toolkits = self._read("cuda.toml", read_toolkits, [], problems)
            builds = self._read("torch_builds.toml", read_torch_builds, [], problems)
            indexes = self._read("indexes.toml", read_indexes, [], problems)
            images = self._read("images.toml", read_images, [], problems)
            if problems:
                raise DataError(problems, hint="run `compat matrix validate`")
            self._curated = (toolkits, builds, indexes, images)
        return self._curated

    def _load_hardware(self) -> tuple[list[GpuModel], GpuFamilies]:
        """GPU names and chip families: read only when a GPU name is matched (gpus.toml is the
        largest curated file)."""
        if self._hardware is None:
            problems: list[str] = []
            gpus = self._read("gpus.toml", read_gpus, [], problems)
            families = self._read(
                "gpu_families.toml", read_gpu_families, GpuFamilies((), (), (), (), ()), problems
            )
            if problems:
                raise DataError(problems, hint="run `compat matrix validate`")
            self._hardware = (gpus, families)
        return self._hardware

    def _load_drivers(self) -> DriverTables:
        if self._drivers is None:
            problems: list[str] = []
            drivers = self._read("drivers.toml", read_drivers, DriverTables((), (), ()), problems)
            if problems:
                raise DataError(problems, hint="run `compat matrix validate`")
            self._drivers = drivers
        return self._drivers

    @property
    def memory(self) -> MemoryData:
        """memory.toml (the fit check's figures), read when a check first needs it."""
        if self._memory is None:
            path = self.root / "curated" / "memory.toml"
            if not path.is_file():
                self._memory = MemoryData()
            else:
                p = Problems(str(path))
                mem = read_memory(p, read_toml(path, cached=True))
                if p.items:
                    raise DataError(p.items, hint="run `compat matrix validate`")
                self._memory = mem
        return self._memory

    def _curated_rows(self, name: str, fn: Any) -> Any:
        """Rows a reader takes from a curated file, read on first use ([] when it is absent)."""
        key = f"{name}:{getattr(fn, '__name__', '')}"
        if key not in self._inputs:
            problems: list[str] = []
            rows = self._read(name, fn, [], problems)
            if problems:
                raise DataError(problems, hint="run `compat matrix validate`")
            self._inputs[key] = rows
        return self._inputs[key]

    @property
    def conda_packages(self) -> list[CondaPackage]:
        """curated/conda.toml: conda packages that are packages of the stack or state a CUDA."""
        rows: list[CondaPackage] = self._curated_rows("conda.toml", read_conda)
        return rows

    @property
    def image_repositories(self) -> list[ImageRepository]:
        """curated/images.toml [[repository]]: framework and PyTorch images by tag."""
        rows: list[ImageRepository] = self._curated_rows("images.toml", read_repositories)
        return rows

    @property
    def toolkits(self) -> list[Toolkit]:
        return self._load_curated()[0]

    @property
    def torch_builds(self) -> list[TorchBuildInfo]:
        return self._load_curated()[1]

    @property
    def gpus(self) -> list[GpuModel]:
        return self._load_hardware()[0]

    @property
    def indexes(self) -> list[WheelIndex]:
        return self._load_curated()[2]

    @property
    def images(self) -> list[CudaImage]:
        return self._load_curated()[3]

    @property
    def gpu_catalog(self) -> GpuCatalog:
        """GPU names to match --gpu values against; compute capabilities of families and of
        every toolkit's targets count as known."""
        if self._gpu_catalog is None:
            gpus, families = self._load_hardware()
            known = {f.compute_capability for f in families.families}
            known |= {cc for t in self.toolkits for cc in t.archs}
            self._gpu_catalog = GpuCatalog(gpus, families.vendors, known)
        return self._gpu_catalog

    @property
    def driver_catalog(self) -> DriverCatalog:
        if self._driver_catalog is None:
            self._driver_catalog = DriverCatalog(self._load_drivers())
        return self._driver_catalog

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
        """The curated GPU a name means (NVML's 'NVIDIA H100 80GB HBM3', 'rtx 4090'), or None when
        it is unknown or names GPUs of different compute capabilities."""
        rows = self.gpu_catalog.lookup(text)
        if not rows or len({r.compute_capability for r in rows}) > 1:
            return None
        return rows[0]


def parse_gpu_arg(text: str, matrix: Matrix) -> tuple[str, tuple[int, int], Optional[float]]:
    """`--gpu` value -> (name, compute capability, memory GiB); compat.hardware.parse_gpu reads it
    (a count, if any, is left to the caller)."""
    spec = parse_gpu(text, matrix.gpu_catalog)
    return spec.name, spec.compute_capability, spec.memory_gib


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
    for load in (
        m._load_curated,
        m._load_hardware,
        m._load_drivers,
        lambda: m.memory,
        lambda: m.conda_packages,
        lambda: m.image_repositories,
    ):
        try:
            load()
        except DataError as exc:
            problems.extend(exc.problems)
    packages = root / "curated" / "packages.toml"
    if packages.is_file():
        from compat.families import read_packages

        try:
            _, found = read_packages(read_toml(packages), packages.name)
        except DataError as exc:
            found = exc.problems
        problems.extend(found)
    else:
        problems.append(f"{packages}: missing (the stack's package families)")
    from compat.matrix.launchdata import validate_launch_files

    problems.extend(validate_launch_files(root))
    rules = root / "curated" / "launch_rules.toml"
    if rules.is_file():
        from compat.launch.model import SETTINGS
        from compat.launch.rules import read_rules

        p = Problems(str(rules))
        try:
            read_rules(p, read_toml(rules), SETTINGS)
        except DataError as exc:
            problems.extend(exc.problems)
        problems.extend(p.items)
    adv = root / "advisories"
    if adv.is_dir():
        try:
            from compat.advisories import load_advisories

            load_advisories(adv, check_duplicates=True)
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
