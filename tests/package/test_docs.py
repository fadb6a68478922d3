"""The README and the guides in ``docs/``: their Python examples run, their links resolve, and the README's
test command is the one CI runs.

Which code blocks run: every fenced block opened with exactly ```` ```python ```` in ``README.md`` or
``docs/*.md`` is executed as written, in a fresh interpreter whose working directory is an empty folder, and
must exit 0. Two kinds are left out:

- a block whose fence is directly preceded by a line ``<!-- not-run: REASON -->`` (a fragment that needs
  names from elsewhere, or data a user has and CI has not); say the reason;
- the README's block between ``<!-- api-example ... -->`` and ``<!-- /api-example -->``, which
  ``tests/package/test_api.py`` runs and whose output it checks.

Blocks in other languages (``bash``, ``text``, ``ini``, ...) are never run. The examples load the embedded
demo model and track a few frames, hence ``slow``.

Which links must resolve: every Markdown link or image ``[text](target)`` outside code, whose target is not a
URL, names a file or folder that exists (relative to the Markdown file), and a ``#anchor`` on a Markdown
target (or alone, for the same file) names one of its headings, slugged as GitHub does.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\S*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """(line number of the fence, code) of each block of ``path`` that the rule above runs."""
    text = path.read_text()
    blocks = []
    for m in FENCE.finditer(text):
        if m.group(1) != "python":
            continue
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        if before.startswith(("<!-- not-run:", "<!-- api-example")):
            continue
        blocks.append((text.count("\n", 0, m.start()) + 1, m.group(2)))
    return blocks


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|<[^>]+>", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of ``path``; a repeated heading gets ``-1``, ``-2``, ... as on GitHub."""
    seen: dict[str, int] = {}
    out = set()
    for line in FENCE.sub("", path.read_text()).splitlines():
        m = re.match(r"#{1,6} (.+)", line)
        if m:
            s = slug(m.group(1))
            n = seen.get(s, 0)
            seen[s] = n + 1
            out.add(s if n == 0 else f"{s}-{n}")
    return out


def links(path: Path) -> list[str]:
    text = re.sub(r"`[^`\n]*`", "", FENCE.sub("", path.read_text()))
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]


EXAMPLES = [(p, line, code) for p in DOCS for line, code in python_blocks(p)]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("path", "line", "code"), EXAMPLES, ids=[f"{p.relative_to(ROOT)}:{line}" for p, line, _ in EXAMPLES]
)
def test_python_example_runs(path, line, code, tmp_path):
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, f"{path.relative_to(ROOT)}:{line}: the example failed\n{r.stderr[-2000:]}"


def test_some_guide_examples_are_run():
    # A changed fence or marker must not silently leave the test above with nothing to run.
    assert any(p.parent.name == "docs" for p, _, _ in EXAMPLES), "no runnable ```python block in docs/*.md"


@pytest.mark.parametrize("path", DOCS, ids=[str(p.relative_to(ROOT)) for p in DOCS])
def test_relative_links_resolve(path):
    bad = []
    for target in links(path):
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists():
            bad.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{target}: no heading with that anchor in {dest.name}")
    assert not bad, f"{path.relative_to(ROOT)}: " + "; ".join(bad)


def test_link_checker_sees_links():
    readme = links(ROOT / "README.md")
    assert any(t.startswith("docs/") for t in readme) and "model-stage-by-stage" in anchors(
        ROOT / "docs/fidelity.md"
    )
    assert slug("The small trackers against OpenCV's TrackerNano, side by side (issue 27)") == (
        "the-small-trackers-against-opencvs-trackernano-side-by-side-issue-27"
    )


def test_readme_test_command_is_the_ci_command():
    command = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert command in (ROOT / "README.md").read_text().splitlines(), (
        f"README.md lacks .ci/run's command: {command}"
    )


def test_readme_is_short():
    # Issue 26: the README says what the project is and where to read on; the details live in docs/.
    n = len((ROOT / "README.md").read_text().splitlines())
    assert n < 250, f"README.md: {n} lines (keep it under 250; move details to a guide in docs/)"
