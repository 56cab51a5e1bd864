"""A server's argument list read as the release's own argparse parser would read it."""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from msgspec import Struct, field

from compat.errors import InputError, UsageError
from compat.fileio import read_text
from compat.jsondoc import parse as parse_json
from compat.launch.data import Basis
from compat.launch.model import LaunchProblem
from compat.matrix.launchdata import FlagState
from compat.models import Severity, Unknown, small_int

_TRUTHY = frozenset({"1", "true", "yes", "on", "y", "t"})
_FALSY = frozenset({"0", "false", "no", "off", "n", "f"})
_NUMBER = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
# vLLM's JSON-valued flags whose keys may be given one by one (`--compilation-config.level 3`).
_DOTTED_ONLY_JSON = (
    "compilation_config",
    "speculative_config",
    "kv_transfer_config",
    "kernel_config",
    "attention_config",
)


class Parsed(Struct):
    """What the tokens set: values by argparse dest, with where each came from."""

    values: dict[str, object] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)  # dest -> option as written / file
    positionals: list[str] = field(default_factory=list)
    problems: list[LaunchProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    config_files: list[str] = field(default_factory=list)
    used: dict[str, FlagState] = field(default_factory=dict)  # option as written -> its flag

    def set(self, dest: str, value: object, origin: str) -> None:
        self.values[dest] = value
        self.origins[dest] = origin

    def problem(self, kind: str, severity: Severity, subject: str, message: str, *fix: str) -> None:
        if not any(p.kind == kind and p.subject == subject for p in self.problems):
            self.problems.append(
                LaunchProblem(kind, severity, subject, message, tuple(f for f in fix if f))
            )


def looks_like_value(tok: str) -> bool:
    return not tok.startswith("-") or bool(_NUMBER.match(tok)) or tok == "-"


class ArgParser:
    """argparse's reading of a command line, over one release's flags (or every release's)."""

    def __init__(self, basis: Optional[Basis], framework: str) -> None:
        self.basis = basis
        self.framework = framework
        self.features = basis.features if basis is not None else frozenset()

    # the token loop ---------------------------------------------------------------------------

    def parse(self, tokens: Sequence[str], out: Parsed, origin_label: str = "") -> None:
        i, n = 0, len(tokens)
        while i < n:
            tok = tokens[i]
            i += 1
            if tok == "--":
                out.positionals.extend(tokens[i:])
                return
            if looks_like_value(tok):
                out.positionals.append(tok)
                continue
            name, eq, inline = tok.partition("=")
            value: Optional[str] = inline if eq else None
            if name.startswith("--") and "underscore-dash" in self.features:
                # FlexibleArgumentParser rewrites up to the first '.': `--max_model_len`, but
                # not the JSON key of `--compilation-config.max_capture_size`.
                head, dot, key = name[2:].partition(".")
                name = "--" + head.replace("_", "-") + dot + key
            # -O3, -O.cudagraph_mode=FULL, -O 3 (vLLM's FlexibleArgumentParser).
            if self.framework == "vllm" and name.startswith("-O") and not name.startswith("--"):
                i = self._opt_level(tok, tokens, i, out, origin_label)
                continue
            if name == "--config" and self._config_flag():
                if value is None:
                    if i >= n:
                        raise UsageError("--config expects a file path")
                    value = tokens[i]
                    i += 1
                out.config_files.append(value)
                continue
            if "." in name and name.startswith("--"):
                base, key = name.split(".", 1)
                state = self._resolve(base, out, quiet=True)
                if (state is not None and state.type in ("json", "other")) or (
                    state is not None and state.dest in _DOTTED_ONLY_JSON
                ):
                    if value is None and i < n and looks_like_value(tokens[i]):
                        value = tokens[i]
                        i += 1
                    set_json_key(
                        out,
                        state.dest,
                        key,
                        value if value is not None else "true",
                        tok,
                        origin_label or base,
                    )
                    continue
            state = self._resolve(name, out)
            if state is None:
                i = self._skip_unknown(name, value, tokens, i, out)
                continue
            i = self._apply(state, name, value, tokens, i, out, origin_label or name)

    def _config_flag(self) -> bool:
        if self.basis is None:
            return True
        return "config-file" in self.features or self.basis.lookup("--config") is not None

    # which flag a token names --------------------------------------------------------------

    def _resolve(self, name: str, out: Parsed, quiet: bool = False) -> Optional[FlagState]:
        basis = self.basis
        if basis is None:
            return None
        state = basis.lookup(name)
        if state is not None:
            return state
        allow_abbrev = "no-abbrev" not in self.features
        if name.startswith("--") and allow_abbrev and len(name) > 2:
            hits = basis.prefix_matches(name)
            states = {id(s): s for s in (basis.lookup(h) for h in hits) if s is not None}
            if len(states) == 1:
                return next(iter(states.values()))
            if len(states) > 1:
                if not quiet:
                    out.problem(
                        "ambiguous-flag",
                        Severity.ERROR,
                        name,
                        f"{name} is ambiguous for {basis.release}: it could be "
                        f"{', '.join(sorted(hits)[:6])} (argparse refuses an abbreviation "
                        "that matches several flags)",
                        f"write the flag in full, e.g. {sorted(hits)[0]}",
                    )
                return None
        elif len(name) > 2 and name[1] != "-":
            # "-tp": a single-dash option of that name, else the short option "-t" with "p".
            hits = [h for h in basis.names() if h.startswith(name) and not h.startswith("--")]
            if len(hits) == 1:
                return basis.lookup(hits[0])
        return None

    def _opt_level(self, tok: str, tokens: Sequence[str], i: int, out: Parsed, origin: str) -> int:
        basis = self.basis
        level_flag = basis.lookup("--optimization-level") if basis is not None else None
        o_flag = basis.lookup("-O") if basis is not None else None
        rest = tok[2:]
        if level_flag is not None and (o_flag is None or o_flag is level_flag):
            # vLLM >= 0.19 rewrites -O3, -O=3 and `-O 3` to --optimization-level.
            if rest.startswith("="):
                rest = rest[1:]
            if not rest:
                if i < len(tokens) and tokens[i] in ("0", "1", "2", "3"):
                    rest = tokens[i]
                    i += 1
                else:
                    return (
                        self._apply(o_flag, tok, None, tokens, i, out, origin or tok)
                        if o_flag is not None
                        else self._skip_unknown(tok, None, tokens, i, out)
                    )
            return self._apply(level_flag, "-O", rest, tokens, i, out, origin or tok)
        if rest.startswith("."):
            key, _, val = rest[1:].partition("=")
            set_json_key(out, "compilation_config", key, val, tok, origin or tok)
            return i
        if rest.startswith("="):
            rest = rest[1:]
        if not rest:
            if i < len(tokens) and looks_like_value(tokens[i]):
                rest = tokens[i]
                i += 1
            else:
                raise UsageError("-O expects a value", hint="write `-O3` or `-O '{\"level\": 3}'`")
        value = parse_json_arg("-O", rest)
        merge_json(out, "compilation_config", value, origin or tok)
        return i

    # unknown flags -------------------------------------------------------------------------

    def _skip_unknown(
        self, name: str, value: Optional[str], tokens: Sequence[str], i: int, out: Parsed
    ) -> int:
        out.unknown.append(name)
        other = self._judge_unknown(name, out)
        if value is not None:
            return i
        takes = other.takes_value if other is not None else not _is_bare_switch(name)
        if not takes:
            return i
        # Its value(s), kept in argv. sglang takes no positional arguments, so every following
        # value belongs to the flag (nargs="+" options); vLLM's MODEL may follow, so only one.
        many = (other is not None and other.nargs in ("+", "*")) or (
            other is None and self.framework == "sglang"
        )
        taken = 0
        n = len(tokens)
        while i < n and looks_like_value(tokens[i]):
            if taken and _VAR.fullmatch(tokens[i]):
                break  # `--port $PORT $EXTRA_ARGS`: the second is its own thing
            i += 1
            taken += 1
            if not many:
                break
        return i

    def _judge_unknown(self, name: str, out: Parsed) -> Optional[FlagState]:
        """A problem for a flag the release does not have; the state it had elsewhere, if any."""
        basis = self.basis
        if basis is None:
            return None
        history = basis.history(name)
        if not history and any(
            p.kind == "ambiguous-flag" and p.subject == name for p in out.problems
        ):
            return None  # an abbreviation of several flags, not a misspelling
        if basis.index is None:
            if history:
                return history[-1]
            out.problem(
                "unknown-flag",
                Severity.ERROR,
                name,
                f"{name} is not a flag of any {self.framework} release compat knows",
                *_did_you_mean(suggestions(basis, name)),
            )
            return None
        here = basis.index
        release = basis.release
        if not history:
            out.problem(
                "unknown-flag",
                Severity.ERROR,
                name,
                f"{name} is not a flag of {release}, nor of any {self.framework} release "
                "compat knows",
                *_did_you_mean(suggestions(basis, name)),
            )
            return None
        before = [s for s in history if s.last < here]
        after = [s for s in history if s.first > here]
        severity = Severity.ERROR if basis.exact else Severity.INFO
        kind = "removed-flag" if basis.exact else "could-not-tell"
        fix: list[str] = []
        replacement = self._replacement(name, history)
        if replacement:
            fix.append(f"use {replacement} instead")
        if before:
            last = basis.version_at(before[-1].last)
            nxt = before[-1].last + 1
            gone = basis.version_at(nxt) if nxt < len(basis.data) else "?"
            msg = (
                f"{name} is not a flag of {release}: it was removed in {self.framework} {gone} "
                f"(last in {last})"
            )
            if after:
                msg += f"; it is back from {self.framework} {basis.version_at(after[0].first)}"
        else:
            first = basis.version_at(after[0].first)
            msg = f"{name} is not a flag of {release}: it was added in {self.framework} {first}"
            fix.append(f"or upgrade {self.framework} to >={first}")
        if not basis.exact:
            msg += f"; {self.framework} {basis.requested} itself is not in the launch data, so compat cannot tell"
        out.problem(kind, severity, name, msg, *fix)
        return history[-1]

    def _replacement(self, name: str, history: list[FlagState]) -> str:
        """A renamed flag: what stores the same dest in this release, or what it named itself."""
        basis = self.basis
        assert basis is not None
        for state in reversed(history):
            if state.replacement:
                return state.replacement
        dest = history[-1].dest
        now = basis.state_for_dest(dest)
        if now is not None and name not in now.options:
            return now.options[0]
        return ""

    # known flags ------------------------------------------------------------------------

    def _apply(
        self,
        state: FlagState,
        name: str,
        value: Optional[str],
        tokens: Sequence[str],
        i: int,
        out: Parsed,
        origin: str,
    ) -> int:
        basis = self.basis
        assert basis is not None
        out.used.setdefault(name, state)
        if state.deprecated and basis.index is not None:
            self._deprecated(state, name, out)
        negated = (
            state.action == "boolean" and name.startswith("--no-") and name not in state.options
        )
        if not state.takes_value:
            if value is not None:
                low = value.lower()
                if low not in _TRUTHY | _FALSY:
                    raise UsageError(f"{name} is a switch; it takes no value (got {value!r})")
                out.problem(
                    "bad-value",
                    Severity.ERROR,
                    name,
                    f"{name}={value}: {name} is a switch in {basis.release}; argparse "
                    'refuses a value for it ("ignored explicit argument")',
                    f"write `{name}` alone" if low in _TRUTHY else f"leave {name} out",
                )
                on = low in _TRUTHY
            else:
                on = True
            if negated:
                on = not on
            out.set(state.dest, _switch_value(state, on), origin)
            return i
        nargs = state.nargs
        values: list[str] = []
        n = len(tokens)
        if value is not None:
            values.append(value)
        elif nargs in ("", "1", "?"):
            if i < n and looks_like_value(tokens[i]):
                values.append(tokens[i])
                i += 1
            elif nargs != "?":
                raise UsageError(
                    f"{name} expects a value", hint=f"write `{name} VALUE` or `{name}=VALUE`"
                )
        if nargs in ("+", "*") or (nargs.isdigit() and int(nargs) > 1):
            limit = int(nargs) if nargs.isdigit() else None
            while i < n and looks_like_value(tokens[i]) and (limit is None or len(values) < limit):
                values.append(tokens[i])
                i += 1
            if nargs == "+" and not values:
                raise UsageError(f"{name} expects one or more values")
        converted = [self._convert(state, name, v, out) for v in values]
        if nargs in ("+", "*") or (nargs.isdigit() and int(nargs) > 1):
            result: object = converted
        elif not converted:
            result = state.const
        else:
            result = converted[0]
        if state.action == "append":
            prev = out.values.get(state.dest)
            result = [*(prev if isinstance(prev, list) else []), result]
        if state.type == "json" and isinstance(result, dict):
            merge_json(out, state.dest, result, origin)
            return i
        out.set(state.dest, result, origin)
        return i

    def _deprecated(self, state: FlagState, name: str, out: Parsed) -> None:
        basis = self.basis
        assert basis is not None
        if state.deprecated == "error":
            out.problem(
                "deprecated-flag",
                Severity.ERROR,
                name,
                f"{name} is retired in {basis.release}: "
                f"{state.message or 'the server refuses it at startup'}",
                f"use {state.replacement} instead" if state.replacement else "",
            )
            return
        out.problem(
            "deprecated-flag",
            Severity.WARNING,
            name,
            f"{name} is deprecated in {basis.release}"
            + (f"; use {state.replacement}" if state.replacement else ""),
            f"use {state.replacement} instead" if state.replacement else "",
        )

    def _convert(self, state: FlagState, name: str, raw: str, out: Parsed) -> object:
        if "$" in raw and _VAR.search(raw):
            if state.type in ("int", "float"):
                return Unknown(f"{name} is set from an unexpanded shell variable ({raw})")
            return raw
        value: object = raw
        if state.type in ("int", "float"):
            if raw in ("None", "none") and state.default is None:
                return None
            try:
                value = int(raw) if state.type == "int" else float(raw)
            except ValueError:
                what = "an integer" if state.type == "int" else "a number"
                raise UsageError(
                    f"{name} expects {what}, got {raw!r}",
                    hint="fix the launch command; compat parses it as the server would",
                ) from None
        self._check_choice(state, name, raw, value, out)
        return value

    def _check_choice(
        self, state: FlagState, name: str, raw: str, value: object, out: Parsed
    ) -> None:
        basis = self.basis
        assert basis is not None
        # Only where argparse compares the text itself (no custom type that rewrites it).
        if state.choices is None or state.type not in ("", "int", "float"):
            return
        text = str(value)
        choices = list(state.choices)
        if basis.index is None:
            pool: set[str] = set()
            for s in basis.history(name) or [state]:
                if s.choices is None:
                    return
                pool.update(s.choices)
            choices = sorted(pool)
        if text in choices:
            return
        shown = ", ".join(choices[:12]) + (", ..." if len(choices) > 12 else "")
        import difflib

        close = [c for c in choices if c.lower() == text.lower()] or difflib.get_close_matches(
            text, choices, n=2, cutoff=0.6
        )
        out.problem(
            "bad-choice",
            Severity.ERROR,
            f"{name} {raw}",
            f"{name} {raw}: not a choice of {basis.release} ({shown})",
            *(f"{name} {c}" for c in close),
        )


def _switch_value(state: FlagState, on: bool) -> object:
    if state.action == "store_false":
        return not on
    if state.action == "store_const":
        const = state.const if state.const is not None else True
        return const if on else state.default
    return on


def _did_you_mean(names: list[str]) -> tuple[str, ...]:
    return tuple(f"did you mean {n}?" for n in names[:2])


def suggestions(basis: Basis, name: str) -> list[str]:
    """Close spellings among the release's flags: typos, and the other dash form (`-tp` for
    `--tp`, `--tp-size` for `-tp`)."""
    out: list[str] = []
    names = list(basis.names())
    if name.startswith("--"):
        alt = "-" + name[2:]
        out.extend(n for n in names if n == alt)
    elif name.startswith("-"):
        alt = "-" + name
        out.extend(n for n in names if n == alt or n.startswith(alt + "-"))
    out.extend(basis.suggest(name, names))
    if not out:
        out.extend(basis.suggest(name, basis.union))
    return list(dict.fromkeys(out))


def _is_bare_switch(name: str) -> bool:
    # Unknown flags of these shapes are switches by convention in both frameworks.
    return name.startswith(("--enable-", "--disable-", "--no-", "--skip-", "--log-requests"))


# -- JSON values ------------------------------------------------------------------------------


def parse_json_arg(name: str, raw: str) -> dict[str, Any]:
    text = raw.strip()
    level = small_int(text, 4) if name in ("-O", "--compilation-config", "-cc") else None
    if level is not None and level >= 0:
        # -O3 / --compilation-config 3: a compilation level (vLLM < 0.11).
        return {"level": level}
    if not text.startswith("{"):
        raise UsageError(
            f"{name} expects a JSON object, got {raw!r}",
            hint="quote the JSON in the shell, e.g. " + name + " '{\"key\": 1}'",
        )
    try:
        value = parse_json(text, name)
    except InputError as exc:
        raise UsageError(f"{exc.message}: {raw!r}", hint="quote the JSON in the shell") from None
    if not isinstance(value, dict):
        raise UsageError(f"{name} expects a JSON object, got {raw!r}")
    return value


def merge_json(out: Parsed, dest: str, value: dict[str, Any], origin: str) -> None:
    prev = out.values.get(dest)
    merged = dict(prev) if isinstance(prev, dict) else {}
    merged.update(value)
    out.set(dest, merged, origin)


def _scalar(text: str) -> object:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if re.fullmatch(r"-?[0-9]+", text):
        return int(text)
    try:
        return json.loads(text)
    except ValueError:
        return text


def set_json_key(out: Parsed, dest: str, key: str, raw: str, tok: str, origin: str) -> None:
    if not key:
        raise UsageError(f"{tok}: missing key after '.'")
    prev = out.values.get(dest)
    obj: dict[str, object] = dict(prev) if isinstance(prev, dict) else {}
    cur = obj
    parts = key.split(".")
    for part in parts[:-1]:
        nxt = cur.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            cur[part] = nxt
        cur = nxt
    cur[parts[-1]] = _scalar(raw)
    out.set(dest, obj, origin)


# -- config files -------------------------------------------------------------------------------


# A config file is a flat mapping whose values nest a level or two (--compilation-config).
MAX_CONFIG_DEPTH = 32


def load_config_file(
    path_text: str, parser: ArgParser, config_dir: Optional[Path], out: Parsed
) -> None:
    """sglang and vLLM both accept `--config FILE.yaml`; read it when PyYAML is importable."""
    path = Path(path_text)
    if not path.is_absolute() and config_dir is not None:
        path = config_dir / path
    try:
        yaml: Any = importlib.import_module("yaml")
    except ImportError:
        out.unknown.append("--config")
        out.notes.append(
            f"--config {path_text}: PyYAML is not installed, so the settings in that "
            "file are not known to compat (pip install pyyaml to read it)"
        )
        return
    try:
        # A config file is a flat mapping of a few dozen options.
        text = read_text(path, limit=1024 * 1024, what="config file")
    except InputError as exc:
        out.unknown.append("--config")
        out.notes.append(
            f"--config {path_text}: {exc.message}; its settings are not known to compat"
        )
        return
    try:
        # Aliases are refused before anything is built: a few hundred bytes of nested aliases
        # (a "billion laughs") expand to gigabytes once walked. So is nesting past a few
        # levels: PyYAML's scanner is quadratic in it (50,000 `[` take minutes), and the
        # events come as it scans, so the walk stops at the first level too deep.
        depth = 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                depth += 1
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                depth -= 1
            why = (
                "uses YAML aliases, which compat does not expand"
                if isinstance(event, yaml.AliasEvent)
                else f"nests deeper than {MAX_CONFIG_DEPTH} levels"
                if depth > MAX_CONFIG_DEPTH
                else ""
            )
            if why:
                out.unknown.append("--config")
                out.notes.append(
                    f"--config {path_text}: {why}; its settings are not known to compat"
                )
                return
        data = yaml.safe_load(text)
    except RecursionError:
        out.notes.append(f"--config {path_text}: nested too deeply; its settings are ignored")
        return
    except Exception as exc:  # yaml.YAMLError; PyYAML is optional so it is not imported by name
        out.notes.append(f"--config {path_text}: not valid YAML ({exc}); its settings are ignored")
        return
    if data is None:
        return
    if not isinstance(data, dict):
        out.notes.append(f"--config {path_text}: expected a mapping of option names to values")
        return
    tokens: list[str] = []
    for key, val in data.items():
        name = "--" + str(key).replace("_", "-")
        if isinstance(val, bool):
            if val:
                tokens.append(name)
            else:
                state = (
                    parser.basis.lookup("--no-" + name[2:]) if parser.basis is not None else None
                )
                if state is not None or parser.basis is None:
                    tokens.append("--no-" + name[2:])
        elif isinstance(val, list):
            tokens.append(name)
            tokens.extend(str(v) for v in val)
        elif isinstance(val, dict):
            try:
                # YAML dates and other scalars JSON lacks become their text, as str() gives
                tokens.append(name + "=" + json.dumps(val, default=str))
            except (TypeError, ValueError, RecursionError):
                out.notes.append(f"--config {path_text}: {name} is not a JSON-like mapping")
        elif val is None:
            continue
        else:
            tokens.append(name + "=" + str(val))
    sub = Parsed()
    parser.parse(tokens, sub, origin_label=path.name)
    for k, v in sub.values.items():
        if k not in out.values:
            out.values[k] = v
            out.origins[k] = path.name
    out.unknown.extend(u for u in sub.unknown if u not in out.unknown)
    for problem in sub.problems:
        out.problems.append(
            LaunchProblem(
                problem.kind,
                problem.severity,
                problem.subject,
                f"{path.name}: {problem.message}",
                problem.fix,
            )
        )
    out.notes.extend(sub.notes)


def version_unknown_note(basis: Basis, out: Parsed) -> None:
    """Version unknown: one info naming the flags given that only some releases have."""
    if basis.index is None and out.used:
        last = len(basis.data) - 1
        partial = []
        for name in out.used:
            spans: list[tuple[int, int]] = []
            for a, b in sorted((s.first, s.last) for s in basis.history(name)):
                if spans and a <= spans[-1][1] + 1:
                    spans[-1] = (spans[-1][0], max(b, spans[-1][1]))
                else:
                    spans.append((a, b))
            if not spans:
                continue
            covered = (
                spans[0][0] == 0
                and spans[-1][1] == last
                and all(b[0] <= a[1] + 1 for a, b in zip(spans, spans[1:]))
            )
            if not covered:
                ranges = ", ".join(
                    f"{basis.version_at(a)}..{basis.version_at(b)}" for a, b in spans
                )
                partial.append(f"{name} ({ranges})")
        if partial:
            out.problem(
                "could-not-tell",
                Severity.INFO,
                ", ".join(n.split(" ")[0] for n in partial),
                f"{basis.framework} version unknown: these flags exist only in some releases, so "
                f"compat cannot tell whether the installed one has them: {'; '.join(partial)}",
                f"install {basis.framework} here, or check a snapshot of the machine that runs it",
            )
