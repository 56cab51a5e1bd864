"""What people type and tools print for GPUs and drivers, read against the curated tables (pure)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Optional

from msgspec import Struct
from packaging.version import Version

from compat.errors import UsageError
from compat.matrix.schema import ArchSupport, DriverTables, GpuModel, OtherVendor, cc_str

# --- GPUs ------------------------------------------------------------------------------------

# Words that never tell two GPUs apart: vendor and brand words, memory types, filler.
_NOISE = frozenset(
    {"nvidia", "geforce", "tesla", "gpu", "graphics", "generation", "edition", "card", "hbm",
     "hbm2", "hbm2e", "hbm3", "hbm3e", "gddr5", "gddr5x", "gddr6", "gddr6x", "gddr7"}
)  # fmt: skip
# Form factors and packagings: a variant of one GPU, not another GPU.
_VARIANT = frozenset(
    {"sxm", "pcie", "nvl", "mobile", "maxq", "sff", "hgx", "server", "workstation", "embedded",
     "oem", "fhhl", "dgxs"}
)  # fmt: skip
# Laptop and embedded parts are other boards than the desktop card of the same number (other
# chips, other memory): 'rtx 4090' is the desktop card, 'rtx 4090 laptop' the laptop part.
PARTS = frozenset({"mobile", "maxq", "embedded"})
_MEM = re.compile(r"^[0-9]{1,4}gb$")
_SERIES = re.compile(r"^(rtx|gtx|gts|gt|mx)([0-9].*)$")
_SUFFIX = re.compile(r"^([0-9]{3,4})(ti|super|d)$")
_COUNT_FIRST = re.compile(r"^\s*([0-9]+)\s*[x\u00d7*]\s*(.+?)\s*$", re.IGNORECASE)
_COUNT_LAST = re.compile(r"^\s*(.+?)\s*(?:[:*]|\s[x\u00d7])\s*([0-9]+)\s*$", re.IGNORECASE)
_CC_PREFIXED = re.compile(r"^(?:sm|compute|cc)[_\-\s]?([0-9]{2,4})([af]?)$")
_CC_DOTTED = re.compile(r"^(?:sm|compute|cc)?[_\-\s]?([0-9]{1,2})\.([0-9])([af]?)$")
MAX_COUNT = 4096


def tokens(text: str) -> list[str]:
    """Lower-case words of a GPU name, normalised so spellings compare: 'NVIDIA A100-SXM4-80GB'
    -> ['a100', 'sxm', '80gb']; 'RTX4090' -> ['rtx', '4090']; '4070Ti' -> ['4070', 'ti']."""
    t = text.lower()
    t = re.sub(r"max-?q", " maxq ", t)
    t = re.sub(r"\blaptop\b", " mobile ", t)
    t = re.sub(r"([0-9])\s*gb\b", r"\1gb", t)
    t = re.sub(r"([0-9])g\b", r"\1gb", t)
    out: list[str] = []
    for word in re.split(r"[^a-z0-9]+", t):
        if not word or word in _NOISE:
            continue
        if re.fullmatch(r"sxm[0-9]*", word):
            word = "sxm"
        elif re.fullmatch(r"nvl[0-9]*", word):
            word = "nvl"
        elif word in ("pci", "pcie4", "pcie5"):
            word = "pcie"
        m = _SERIES.match(word)
        parts = [m.group(1), m.group(2)] if m else [word]
        for part in parts:
            s = _SUFFIX.match(part)
            out.extend([s.group(1), s.group(2)] if s else [part])
    return out


def _kind(tok: str) -> str:
    if _MEM.match(tok):
        return "memory"
    return "variant" if tok in _VARIANT else "core"


class NameWords(Struct, frozen=True):
    """A GPU name's words by kind: what tells GPUs apart (core), the form factor or packaging
    (variant), and the sizes it states (memory)."""

    core: frozenset[str]
    variant: frozenset[str]
    memory: frozenset[str]

    @property
    def part(self) -> frozenset[str]:
        """Variant words that name another board (a laptop or embedded part), not a packaging."""
        return self.variant & PARTS


def name_words(text: str, drop: Iterable[str] = ()) -> NameWords:
    """The words of a GPU name by kind, leaving out the words in `drop` (a chip code)."""
    toks = [t for t in tokens(text) if t not in set(drop)]
    return NameWords(
        frozenset(t for t in toks if _kind(t) == "core"),
        frozenset(t for t in toks if _kind(t) == "variant"),
        frozenset(t for t in toks if _kind(t) == "memory"),
    )


class GpuSpec(Struct, frozen=True):
    """One --gpu value read: how many GPUs, and what each is."""

    count: int
    name: str
    compute_capability: tuple[int, int]
    memory_gib: Optional[float]
    architecture: str = ""
    matched: tuple[str, ...] = ()
    text: str = ""

    @property
    def sm(self) -> str:
        return f"sm_{self.compute_capability[0]}{self.compute_capability[1]}"


class _Row(Struct, frozen=True):
    model: GpuModel
    core: frozenset[str]
    variant: frozenset[str]
    memory: frozenset[str]
    key: str  # the name's words run together, for 'did you mean'


class GpuCatalog:
    """The GPU names (curated/gpus.toml), other vendors' names, and the compute capabilities
    NVIDIA has made, indexed for matching what people type."""

    def __init__(
        self,
        gpus: Sequence[GpuModel],
        vendors: Sequence[OtherVendor] = (),
        known_ccs: Iterable[tuple[int, int]] = (),
    ) -> None:
        self.gpus = tuple(gpus)
        self.vendors = tuple(vendors)
        self.known_ccs = frozenset(known_ccs) | {g.compute_capability for g in gpus}
        self._rows = tuple(self._row(g) for g in self.gpus)
        self._arch = {g.compute_capability: g.architecture for g in self.gpus}

    @staticmethod
    def _row(g: GpuModel) -> _Row:
        w = name_words(g.name)
        return _Row(g, w.core, w.variant, w.memory, "".join(tokens(g.name)))

    def architecture(self, cc: tuple[int, int]) -> str:
        return self._arch.get(cc, "")

    def lookup(self, text: str) -> list[GpuModel]:
        """The table rows a name matches best (possibly several of one GPU), or []."""
        found, _ = self._match(tokens(text))
        return [r.model for r in found]

    def _match(self, toks: list[str]) -> tuple[list[_Row], bool]:
        """(best rows, exact): rows holding every typed word, fewest other words first; when
        none holds the form factor or memory typed, rows of the same model (exact = False)."""
        core = {t for t in toks if _kind(t) == "core"}
        variant = {t for t in toks if _kind(t) == "variant"}
        memory = {t for t in toks if _kind(t) == "memory"}
        if not core:
            return [], False
        for strict in (True, False):
            best: list[_Row] = []
            best_extra = None
            for r in self._rows:
                if not core <= r.core:
                    continue
                if strict:
                    if not variant <= r.variant:
                        continue
                    mem_ok = all(
                        m in r.memory
                        or (r.model.memory_gib is not None and f"{r.model.memory_gib:g}gb" == m)
                        for m in memory
                    )
                    if not mem_ok:
                        continue
                extra = len(r.core - core)
                if best_extra is None or extra < best_extra:
                    best, best_extra = [r], extra
                elif extra == best_extra:
                    best.append(r)
            if not variant & PARTS:
                # No laptop or embedded word typed: the desktop card, where there is one.
                best = [r for r in best if not r.variant & PARTS] or best
            if best:
                return best, strict
        return [], False

    def closest(self, text: str, n: int = 5) -> list[str]:
        """Up to n known names nearest to the text (for 'did you mean')."""
        import difflib

        want = "".join(tokens(text)) or text.lower()
        scored = []
        seen: set[str] = set()
        matcher = difflib.SequenceMatcher(None, "", want)
        for r in self._rows:
            name = r.model.name
            if name in seen:
                continue
            seen.add(name)
            matcher.set_seq1(r.key)
            scored.append((matcher.ratio(), name))
        scored.sort(key=lambda x: (-x[0], x[1]))
        return [name for score, name in scored[:n] if score >= 0.3] or [s[1] for s in scored[:3]]

    def other_vendor(self, text: str) -> Optional[OtherVendor]:
        toks = re.split(r"[^a-z0-9]+", text.lower())
        compact = "".join(toks)
        for v in self.vendors:
            if any(t in v.words for t in toks):
                return v
        for v in self.vendors:
            for pat in v.patterns:
                if re.fullmatch(pat, compact) or any(re.fullmatch(pat, t) for t in toks if t):
                    return v
        return None


def split_count(text: str) -> tuple[int, str]:
    """'8xH100', '8 x h100', 'h100:8', 'h100*8', 'h100 x8' -> (8, 'h100'); else (1, text)."""
    t = text.strip()
    m = _COUNT_FIRST.match(t)
    if m:
        count, rest = int(m.group(1)), m.group(2)
    else:
        m = _COUNT_LAST.match(t)
        if not m:
            return 1, t
        rest, count = m.group(1), int(m.group(2))
    if not 1 <= count <= MAX_COUNT:
        raise UsageError(
            f"--gpu {text!r}: a count of {count} GPUs", hint=f"give 1 to {MAX_COUNT}, e.g. 8xH100"
        )
    return count, rest


def _cc_reading(t: str) -> Optional[tuple[int, int]]:
    """A compute capability written sm_90 / sm90 / compute_90 / sm_100a / 9.0, else None."""
    s = t.strip().lower()
    m = _CC_PREFIXED.match(s)
    if m:
        digits = m.group(1)
        return int(digits[:-1]), int(digits[-1])
    m = _CC_DOTTED.match(s)
    if m:
        return int(m.group(1)), int(m.group(2))
    return None


def _label(cc: tuple[int, int]) -> str:
    return f"sm_{cc[0]}{cc[1]}"


# The longest GPU name with a count is well under this ("8 x NVIDIA RTX PRO 6000 Blackwell ...").
MAX_GPU_TEXT = 200


def parse_gpu(text: str, catalog: GpuCatalog) -> GpuSpec:
    """A --gpu value: a count and a GPU name or a compute capability. UsageError (exit 2) for an
    ambiguous, unknown or non-NVIDIA value, saying what to type instead."""
    raw = text
    if len(text) > MAX_GPU_TEXT:
        raise UsageError(
            f"--gpu: a value of {len(text)} characters is not a GPU",
            hint="e.g. --gpu h100, --gpu 8xH100, --gpu sm_90",
        )
    count, t = split_count(text)
    if not t:
        raise UsageError("--gpu needs a value", hint="e.g. --gpu h100, --gpu 8xH100, --gpu sm_90")
    cc = _cc_reading(t)
    if cc is not None:
        if cc not in catalog.known_ccs:
            known = ", ".join(_label(c) for c in sorted(catalog.known_ccs))
            raise UsageError(
                f"--gpu {raw!r}: {_label(cc)} is not a compute capability of any NVIDIA GPU",
                hint=f"compute capabilities compat knows: {known}",
            )
        return GpuSpec(count, _label(cc), cc, None, catalog.architecture(cc), (), raw)
    if re.fullmatch(r"[0-9]+", t):
        raise _bare_number(raw, t, catalog)
    vendor = catalog.other_vendor(t) if _explicit_vendor(t, catalog) else None
    if vendor is not None:
        raise _vendor_error(raw, vendor)
    toks = tokens(t)
    rows, _ = catalog._match(toks)
    if not rows:
        vendor = catalog.other_vendor(t)
        if vendor is not None:
            raise _vendor_error(raw, vendor)
        near = catalog.closest(t)
        raise UsageError(
            f"--gpu {raw!r}: not a GPU compat knows",
            hint="closest known: "
            + ", ".join(near)
            + "; or give the compute capability: --gpu sm_90",
        )
    ccs = sorted({r.model.compute_capability for r in rows})
    if len(ccs) > 1:
        options = []
        for c in ccs:
            names = sorted({r.model.name for r in rows if r.model.compute_capability == c})
            options.append(f"{names[0]!r} ({_label(c)})")
        raise UsageError(
            f"--gpu {raw!r} names GPUs of different compute capabilities",
            hint="did you mean " + " or ".join(options) + "? Give the full name, or --gpu sm_XY",
        )
    models = [r.model for r in rows]
    memory = _memory(toks, models)
    names = [m.name for m in models]
    name = _common_name(names, toks)
    # Several rows of one GPU named by their common words: add the size they (or you) agree on.
    several = len(set(names)) > 1
    if several and memory is not None and not any(_kind(x) == "memory" for x in tokens(name)):
        name = f"{name} {memory:g}GB"
    return GpuSpec(
        count,
        name,
        ccs[0],
        memory,
        models[0].architecture,
        tuple(sorted({m.name for m in models})),
        raw,
    )


def _explicit_vendor(t: str, catalog: GpuCatalog) -> bool:
    toks = re.split(r"[^a-z0-9]+", t.lower())
    return any(tok in v.words for v in catalog.vendors for tok in toks)


def _vendor_error(raw: str, vendor: OtherVendor) -> UsageError:
    return UsageError(
        f"--gpu {raw!r} is an {vendor.vendor} accelerator: {vendor.stack} stacks are not checked "
        "yet; compat checks NVIDIA CUDA stacks only",
        hint="for an NVIDIA GPU give its name or compute capability: --gpu h100, --gpu sm_90",
    )


def _bare_number(raw: str, t: str, catalog: GpuCatalog) -> UsageError:
    """'4090' or '90': a GPU's number or a compute capability? Ask, listing the readings."""
    readings = []
    names = sorted({r.model.name for r in catalog._rows if t in r.core})
    if names:
        rows, _ = catalog._match(["rtx", t] if any("RTX" in n for n in names) else [t])
        best = sorted({r.model.name for r in rows}) or names
        cc = rows[0].model.compute_capability if rows else None
        readings.append(f"--gpu '{best[0]}'" + (f" ({_label(cc)})" if cc else ""))
    cc_guess = (int(t[:-1]), int(t[-1])) if len(t) >= 2 else None
    if cc_guess is not None and cc_guess in catalog.known_ccs:
        readings.append(f"--gpu {_label(cc_guess)} (compute capability {cc_str(cc_guess)})")
    if not readings:
        return UsageError(
            f"--gpu {raw!r}: a bare number is neither a GPU compat knows nor a compute capability",
            hint="give a name (--gpu 'rtx 4090') or a compute capability (--gpu sm_90)",
        )
    return UsageError(
        f"--gpu {raw!r} is ambiguous: a bare number can be a GPU model or a compute capability",
        hint="did you mean " + " or ".join(readings) + "?",
    )


def _memory(toks: Sequence[str], models: Sequence[GpuModel]) -> Optional[float]:
    """The size typed ('a100 80gb', 'rtx 4090 48gb' for a modified card), unless the matched
    names carry it themselves (the '480GB' of 'GH200 120GB / 480GB' counts the CPU's memory:
    the row's sourced 96 GB holds); else the size every matched row agrees on. A GPU made in
    several sizes has rows that disagree, so its plain name stays unknown."""
    typed = {t for t in toks if _kind(t) == "memory"}
    if len(typed) == 1:
        t = next(iter(typed))
        if not all(t in name_words(m.name).memory for m in models):
            return float(t[:-2])
    sizes = {m.memory_gib for m in models}
    return sizes.pop() if len(sizes) == 1 else None


def _common_name(names: Sequence[str], toks: Sequence[str]) -> str:
    """One name for several rows of one GPU: their common leading words when those still hold
    what was typed ('H100 SXM5 80GB', 'H100 PCIe' -> 'H100'), else the typed words."""
    uniq = sorted(set(names))
    if len(uniq) == 1:
        return uniq[0]
    split = [re.split(r"[\s\-]+", n) for n in uniq]
    prefix: list[str] = []
    for words in zip(*split):
        if len({w.lower() for w in words}) != 1:
            break
        prefix.append(words[0])
    core = {t for t in toks if _kind(t) == "core"}
    if prefix and core <= set(tokens(" ".join(prefix))):
        return " ".join(prefix)
    return " ".join(w.upper() if any(c.isdigit() for c in w) else w.capitalize() for w in toks)


# --- Drivers ---------------------------------------------------------------------------------

_FULL = re.compile(r"^([0-9]{1,3})\.([0-9]{1,3})(?:\.([0-9]{1,3}))?$")
_BRANCH = re.compile(r"^[rR]?([0-9]{3})$")


def nvidia_text(version: Version) -> str:
    """A driver version as NVIDIA writes it: the third field has two digits (580.65.06)."""
    r = version.release
    return f"{r[0]}.{r[1]}.{r[2]:02d}" if len(r) == 3 else ".".join(map(str, r))


class Branch(Struct, frozen=True):
    """A driver branch: the CUDA version its drivers report and its lowest known release."""

    branch: int
    cuda: str
    first: str
    toolkits: tuple[str, ...]
    source: str
    verified: bool = True
    note: str = ""


class ArchFloor(Struct, frozen=True):
    """The drivers an architecture needs: at least min_branch (the driver of its first CUDA
    toolkit, None when older than every release known) and at most last_branch."""

    support: ArchSupport
    min_branch: Optional[int]
    min_release: str
    min_source: str

    @property
    def last_branch(self) -> Optional[int]:
        return self.support.last_branch


class DriverSpec(Struct, frozen=True):
    """A --driver value read: the release judged, as NVIDIA writes it, and what was assumed."""

    text: str
    version: Version
    branch: int
    cuda: Optional[str]
    assumed: str = ""
    typed: str = ""

    @property
    def source(self) -> str:
        """Where the value came from, with what was assumed: '--driver 535: read as ...'."""
        return f"--driver {self.typed}: {self.assumed}" if self.assumed else "--driver"


class DriverCatalog:
    """Driver branches (derived from the toolkit releases and their bundled drivers) and the
    driver range of each GPU architecture (curated/drivers.toml)."""

    def __init__(self, tables: DriverTables) -> None:
        self.tables = tables
        grouped: dict[int, list[tuple[Version, str, Version, str]]] = {}
        for r in tables.releases:
            v = Version(r.driver)
            grouped.setdefault(v.major, []).append((v, r.driver, r.cuda, r.source))
        branches: dict[int, Branch] = {}
        for b, rows in grouped.items():
            rows.sort()
            top = max(c for _, _, c, _ in rows)
            branches[b] = Branch(
                b,
                f"{top.major}.{top.minor}",
                rows[0][1],
                tuple(str(c) for _, _, c, _ in rows),
                rows[0][3],
            )
        for e in tables.branches:
            branches.setdefault(
                e.branch, Branch(e.branch, e.cuda, e.first, (), e.source, e.verified, e.note)
            )
        self.branches = dict(sorted(branches.items()))

    def branch(self, number: int) -> Optional[Branch]:
        return self.branches.get(number)

    def newest(self) -> Optional[Branch]:
        return next(reversed(self.branches.values()), None)

    def cuda_of(self, version: Version) -> Optional[str]:
        """The CUDA version a driver of this branch reports, when the branch is known."""
        b = self.branches.get(version.major)
        return b.cuda if b else None

    def drivers_for_cuda(self, cuda: str) -> list[str]:
        """Drivers bundled with the releases of a CUDA version ('12.4' or '12.4.1')."""
        want = Version(cuda)
        out = []
        for r in self.tables.releases:
            same = r.cuda.release[: len(want.release)] == want.release
            if same:
                out.append(r.driver)
        return out

    def floor(self, cc: tuple[int, int]) -> Optional[ArchFloor]:
        """The driver range of the architecture of a compute capability, or None."""
        for a in self.tables.architectures:
            if cc not in a.compute_capabilities:
                continue
            first = [
                (Version(r.driver), r.driver, r.source)
                for r in self.tables.releases
                if r.cuda.release[:2] == a.first_cuda.release[:2]
            ]
            if not first:
                return ArchFloor(a, None, "", "")
            v, text, source = min(first)
            return ArchFloor(a, v.major, text, source)
        return None


def parse_driver(text: str, catalog: DriverCatalog) -> DriverSpec:
    """A --driver value: a full version (535.104.05), or a branch (535, R535) judged at its lowest
    known release. A CUDA version given by mistake (12.4) is a UsageError naming its driver."""
    t = text.strip()
    m = _BRANCH.match(t)
    if m:
        return _branch_spec(int(m.group(1)), t, catalog)
    m = _FULL.match(t)
    if m:
        major = int(m.group(1))
        if major < 100:
            raise _cuda_given(t, catalog)
        third = f".{int(m.group(3)):02d}" if m.group(3) is not None else ""
        nv = f"{major}.{m.group(2)}{third}"
        v = Version(nv)
        return DriverSpec(nv, v, major, catalog.cuda_of(v), "", t)
    raise UsageError(
        f"--driver {text!r} is not a driver version",
        hint="give the version nvidia-smi prints as 'Driver Version' (e.g. 550.54.15), "
        "or a branch (535 or R535)",
    )


def _branch_spec(number: int, typed: str, catalog: DriverCatalog) -> DriverSpec:
    b = catalog.branch(number)
    if b is not None:
        v = Version(b.first)
        assumed = (
            f"read as the R{number} branch, judged at its lowest known release {b.first} "
            f"(CUDA {b.cuda}); give the full version for an exact check"
        )
        return DriverSpec(b.first, v, number, b.cuda, assumed, typed)
    newest = catalog.newest()
    if newest is not None and number > newest.branch:
        assumed = (
            f"R{number} is newer than every branch compat knows (newest R{newest.branch}, "
            f"CUDA {newest.cuda}); judged as running at least CUDA {newest.cuda}"
        )
        return DriverSpec(str(number), Version(str(number)), number, newest.cuda, assumed, typed)
    assumed = f"compat knows no release of R{number}; judged as {number}.0"
    return DriverSpec(str(number), Version(str(number)), number, None, assumed, typed)


def _cuda_given(t: str, catalog: DriverCatalog) -> UsageError:
    drivers = catalog.drivers_for_cuda(t)
    if drivers:
        newest = max(drivers, key=Version)
        branch = Version(newest).major
        hint = (
            f"the driver looks like {newest} (CUDA {t} ships with R{branch}); nvidia-smi prints "
            "it as 'Driver Version'"
        )
    else:
        want = Version(t)
        rows = [b for b in catalog.branches.values() if b.cuda == f"{want.major}.{want.minor}"]
        hint = (
            f"a driver of CUDA {t} is R{rows[0].branch} (e.g. {rows[0].first}); "
            if rows
            else "a driver version looks like 550.54.15; "
        ) + "nvidia-smi prints it as 'Driver Version'"
    return UsageError(f"--driver {t!r} is a CUDA version, not a driver version", hint=hint)
