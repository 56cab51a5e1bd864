"""Reading a file a user hands over: its format detected, its pins or environment read."""

from __future__ import annotations

from typing import Optional

import msgspec
import msgspec.structs
from msgspec import Struct

from compat.inputs.base import Note, PinFile, ReadOptions
from compat.inputs.freeze import env_from_freeze
from compat.inputs.kinds import Kind, detect
from compat.matrix.load import Matrix
from compat.models import Environment, Finding, Severity


def read_pins(path: str, text: str, matrix: Matrix, opts: Optional[ReadOptions] = None) -> PinFile:
    """The pins of a file of any format compat reads (for `compat lint`); an InputError when the
    format is not one of them. Problems inside a file of a known format are in the result."""
    opts = opts or ReadOptions()
    kind = detect(path, text)
    if kind is Kind.PYPROJECT:
        from compat.inputs.requirements import read_pyproject

        return read_pyproject(text, path, opts.python)
    if kind is Kind.PYLOCK:
        from compat.inputs.requirements import read_pylock

        return read_pylock(text, path)
    if kind is Kind.UVLOCK:
        from compat.inputs.uvlock import read_uvlock

        return read_uvlock(text, path, opts)
    if kind is Kind.CONDA_ENV:
        from compat.inputs.conda import read_environment_yml

        return read_environment_yml(text, path, matrix, opts)
    if kind is Kind.CONDA_LIST:
        from compat.inputs.conda import read_conda_list

        return read_conda_list(text, path, matrix, opts)
    if kind is Kind.DOCKERFILE:
        from compat.inputs.dockerfile import read_dockerfile

        return read_dockerfile(text, path, matrix, opts)
    if kind is Kind.SNAPSHOT:
        return PinFile(
            path,
            (),
            ((path, 1, "a compat env --json snapshot has no pins: use compat check --from"),),
            kind=kind.value,
        )
    from compat.inputs.requirements import read_requirements_file

    return read_requirements_file(text, path, opts.read)


class Loaded(Struct, frozen=True):
    """An environment read from a file, with the file's own notes (a Dockerfile's unpinned stack
    package) as findings."""

    env: Environment
    notes: tuple[Note, ...] = ()
    kind: Kind = Kind.REQUIREMENTS


def load_input(path: str, matrix: Matrix, opts: Optional[ReadOptions] = None) -> Loaded:
    """The environment a file describes (for `compat check --from`): a snapshot as recorded, a
    freeze file's exact pins, or the pins of a lock, conda file or Dockerfile with what they pull
    in, for the declared Python and platform."""
    from compat.snapshot import loads, read_text

    opts = opts or ReadOptions()
    text = read_text(path)
    kind = detect(path, text)
    if kind is Kind.SNAPSHOT:
        return Loaded(loads(text, path), kind=kind)
    if kind is Kind.REQUIREMENTS:
        return Loaded(env_from_freeze(text, path, matrix), kind=kind)
    from compat.inputs.stack import environment_of, with_implied

    read = opts.read
    if read is None:
        from compat.fileio import read_text as bounded

        def read(p: str) -> str:
            return bounded(p, what="requirements file")

    pf = read_pins(path, text, matrix, msgspec.structs.replace(opts, read=read))
    if pf.problems:
        p, n, what = pf.problems[0]
        from compat.errors import InputError

        more = f" (and {len(pf.problems) - 1} more)" if len(pf.problems) > 1 else ""
        raise InputError(f"{p}:{n}: {what}{more}", hint="compat lint shows every line")
    python = opts.python or pf.python
    machine = pf.machine or opts.machine
    scope, pins = pf.scopes[0] if pf.scopes else ("", ())
    if kind in (Kind.DOCKERFILE, Kind.UVLOCK, Kind.CONDA_LIST, Kind.CONDA_ENV):
        pins = tuple(with_implied(pins, matrix, python, machine))
    env = environment_of(
        pins,
        path + scope,
        matrix,
        env={s.key: s.value for s in pf.env},
        python=python,
        machine=machine,
        launch=pf.launch,
    )
    notes = list(pf.notes)
    others = [name for name, _ in pf.scopes[1:]]
    if others:
        notes.append(
            Note(
                path,
                1,
                Finding(
                    "unknown-combination",
                    Severity.INFO,
                    f"{path}: checked without its extras ({', '.join(others)}); "
                    "`compat lint` checks each",
                ),
            )
        )
    return Loaded(env, tuple(notes), kind)


def load_from(path: str, matrix: Matrix, opts: Optional[ReadOptions] = None) -> Environment:
    """The environment a file describes (see `load_input`)."""
    return load_input(path, matrix, opts).env
