"""docs/findings.md rendered from compat/codes.py, the one table of finding codes.

python scripts/findings_doc.py          # print the rendered page
python scripts/findings_doc.py --write  # write docs/findings.md
python scripts/findings_doc.py --check  # exit 1 when docs/findings.md differs
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from compat.codes import FINDINGS  # noqa: E402

DOC = ROOT / "docs" / "findings.md"
HEAD = """# Findings

Every finding has a stable `code`, a `severity` (`error`: will fail or crash; `warning`: likely
trouble; `info`: compat could not tell, or a note), a one-line message, the evidence it saw, a fix
(commands or flags), and references. `compat explain CODE` prints the entry below. This page is
rendered from compat/codes.py by `python scripts/findings_doc.py --write`.
"""


def render() -> str:
    out = [HEAD, "| code | what it means |", "|---|---|"]
    out += [f"| `{code}` | {t.meaning} |" for code, t in FINDINGS.items()]
    out += ["", "## How each is decided", ""]
    for code, t in FINDINGS.items():
        out.append(textwrap.fill(f"**{code}.** {t.decided}", 100, break_on_hyphens=False))
        out.append("")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    text = render()
    if "--write" in argv:
        DOC.write_text(text, encoding="utf-8")
        return 0
    if "--check" in argv:
        return 0 if DOC.read_text(encoding="utf-8") == text else 1
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
