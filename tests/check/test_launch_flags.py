"""launch-flag and env-var findings from the launch parsed with the installed release's flags."""

from __future__ import annotations

from pathlib import Path

from packaging.version import Version

from compat.launch import parse_launch, parse_launch_text
from compat.matrix.load import Matrix
from compat.models import Code, Severity
from compat.pipeline import Database, check
from tests.check.test_checks import env_of

LAUNCH = Path(__file__).parents[1] / "assets" / "launch"
NO_ADVISORIES = Database(Matrix(), ())


def test_env_var_the_release_no_longer_reads_is_a_warning() -> None:
    env = env_of("vllm==0.19.0", "torch==2.10.0")
    launch = parse_launch_text((LAUNCH / "vllm-ignored-env.sh").read_text(), Version("0.19.0"))
    found = [f for f in check(env, NO_ADVISORIES, launch) if f.code == Code.ENV_VAR.value]
    (f,) = found
    assert f.severity is Severity.WARNING
    assert f.message == (
        "VLLM_ATTENTION_BACKEND=FLASHINFER is ignored: vllm 0.19.0 no longer reads "
        "it (last read by vllm 0.14.1)"
    )
    assert f.fix == ("use --attention-backend instead",)
    assert "judged against vllm 0.19.0" in f.evidence
    # The same file with vLLM 0.10.2, which reads it: silent, and the backend is taken from it.
    older = parse_launch_text((LAUNCH / "vllm-ignored-env.sh").read_text(), Version("0.10.2"))
    assert not [
        f
        for f in check(env_of("vllm==0.10.2"), NO_ADVISORIES, older)
        if f.code in (Code.ENV_VAR.value, Code.LAUNCH_FLAG.value)
    ]
    assert older.settings["attention_backend"] == "flashinfer"


def test_env_var_in_the_probed_environment_counts_too() -> None:
    env = env_of("vllm==0.19.0", env={"VLLM_ATTENTION_BACKEND": "XFORMERS"})
    launch = parse_launch(["vllm", "serve", "m"], Version("0.19.0"))
    (f,) = [f for f in check(env, NO_ADVISORIES, launch) if f.code == Code.ENV_VAR.value]
    assert f.message.startswith("VLLM_ATTENTION_BACKEND=XFORMERS is ignored")


def test_removed_flag_is_an_error_naming_the_release() -> None:
    env = env_of("vllm==0.19.0")
    launch = parse_launch_text((LAUNCH / "vllm-removed-flag.sh").read_text(), Version("0.19.0"))
    (f,) = [f for f in check(env, NO_ADVISORIES, launch) if f.code == Code.LAUNCH_FLAG.value]
    assert f.severity is Severity.ERROR
    assert f.message == (
        "--use-v2-block-manager is not a flag of vllm 0.19.0: it was removed in "
        "vllm 0.10.0 (last in 0.9.2)"
    )
    assert any(e.startswith("launch data: vllm-0.19.0-") for e in f.evidence)


def test_mistyped_flag_and_bad_choice_are_errors() -> None:
    env = env_of("sglang==0.5.12")
    launch = parse_launch(
        [
            "python",
            "-m",
            "sglang.launch_server",
            "--model-path",
            "m",
            "--tensor-paralel-size",
            "2",
            "--attention-backend",
            "flashinfr",
        ],
        Version("0.5.12"),
    )
    found = [f for f in check(env, NO_ADVISORIES, launch) if f.code == Code.LAUNCH_FLAG.value]
    assert [f.severity for f in found] == [Severity.ERROR, Severity.ERROR]
    assert any("did you mean --tensor-parallel-size?" in f.fix for f in found)
    assert any("--attention-backend flashinfer" in f.fix for f in found)


def test_a_clean_launch_is_silent_and_unknown_version_is_info() -> None:
    env = env_of("vllm==0.19.0")
    clean = parse_launch(["vllm", "serve", "m", "-tp", "2"], Version("0.19.0"))
    assert [f for f in check(env, NO_ADVISORIES, clean) if f.code == Code.LAUNCH_FLAG.value] == []
    dev = parse_launch(["vllm", "serve", "m", "--use-v2-block-manager"], Version("0.18.2rc1.dev54"))
    (f,) = [f for f in check(env, NO_ADVISORIES, dev) if f.code == Code.LAUNCH_FLAG.value]
    assert f.severity is Severity.INFO


def test_compat_check_cli_reports_a_mistyped_flag() -> None:
    import subprocess
    import sys

    freeze = Path(__file__).parents[1] / "assets" / "freeze" / "vllm-0.10.1.1-good.txt"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "compat",
            "check",
            "--from",
            str(freeze),
            "--",
            "vllm",
            "serve",
            "m",
            "--tensor-paralel-size",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert (
        "[launch-flag] --tensor-paralel-size is not a flag of vllm 0.10.1.1, nor of any vllm "
        "release compat knows"
    ) in proc.stdout
    assert "did you mean --tensor-parallel-size?" in proc.stdout
