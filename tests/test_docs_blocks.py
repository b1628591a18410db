"""Every code block in docs/ and README.md runs, or says why it cannot run here.

The convention (README.md says it under its table of docs):

- Fenced blocks only. The info string says what a block is:
  ``python`` is run, the page's python blocks in order in one namespace (a page reads as one
  session), in a temporary working folder; ``bash`` / ``sh`` is run with ``bash -eu`` in a
  temporary folder; ``toml`` is parsed; ``text`` (file trees, listings, output) and ``mermaid``
  (a diagram) are not code. Any other info string, or none, fails.
- ``<!-- not run: REASON -->`` on the line just before a block: not run here (a licensed file, a
  GPU, hours, the network...), with the reason. A python block marked so is still compiled, a
  shell one still parsed (``bash -n``), and its ``extpose`` commands must be real commands.
- No indented (unfenced) code blocks, but README.md's first two commands: the install lines,
  which CI runs.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import attrs
import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the SDK depends on tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
RUN = {"python", "bash", "sh", "toml"}
NOT_CODE = {"text", "mermaid"}
MARKER = re.compile(r"^<!--\s*not run:\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^(`{3,})(.*)$")


@attrs.frozen
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    not_run: str | None  # the reason, when marked

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of ``page``, with the marker before each (a marker before no block, or
    a fence left open, is an error)."""
    lines = page.read_text().splitlines()
    found, marker, i = [], None, 0
    while i < len(lines):
        line = lines[i]
        if (m := MARKER.match(line.strip())) is not None:
            if not m[1]:
                raise AssertionError(f"{page.name}:{i + 1}: 'not run:' without a reason")
            marker = (i, m[1])
        elif (m := FENCE.match(line.lstrip())) is not None:
            indent = len(line) - len(line.lstrip())
            end = next((j for j in range(i + 1, len(lines))
                        if lines[j].strip() == m[1] and lines[j].startswith(" " * indent)), None)
            if end is None:
                raise AssertionError(f"{page.name}:{i + 1}: a code fence that is never closed")
            code = "\n".join(x[indent:] for x in lines[i + 1:end]) + "\n"
            reason = marker[1] if marker is not None and marker[0] == i - 1 else None
            if marker is not None and reason is None:
                raise AssertionError(f"{page.name}:{marker[0] + 1}: a 'not run' marker that is "
                                     "not on the line just before a code block")
            found.append(Block(page, i + 1, m[2].strip().split(" ")[0], code, reason))
            marker, i = None, end
        elif marker is not None and line.strip():
            raise AssertionError(f"{page.name}:{marker[0] + 1}: a 'not run' marker that is not "
                                 "on the line just before a code block")
        i += 1
    return found


ALL = [block for page in PAGES for block in blocks(page)]
LIST_ITEM = re.compile(r"^\s*([-*+]|\d+[.)])\s")


def indented_code(page: Path) -> list[tuple[int, str]]:
    """Indented (unfenced) code blocks of ``page`` outside fences and lists: ``(line, first
    line)``. They would escape the convention, so there must be none (but README's two)."""
    lines, found, fenced, in_list = page.read_text().splitlines(), [], False, False
    for i, line in enumerate(lines):
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if fenced:
            continue
        if LIST_ITEM.match(line):
            in_list = True
        elif line.strip() and not line.startswith(" "):
            in_list = False
        if (line.startswith("    ") and line.strip() and not in_list
                and (i == 0 or not lines[i - 1].strip())):
            found.append((i + 1, line.strip()))
    return found


def test_every_block_says_what_it_is():
    unknown = [f"{b.where} ({b.lang or 'no info string'})" for b in ALL
               if b.lang not in RUN | NOT_CODE and b.not_run is None]
    assert not unknown, ("code blocks without a known info string (python, bash, sh, toml; "
                         f"text or mermaid for what is not code): {unknown}")


def test_no_code_escapes_the_convention_as_an_indented_block():
    found = {str(p.relative_to(ROOT)): indented_code(p) for p in PAGES}
    readme = found.pop("README.md")
    # README's first two commands: the install lines that CI runs, kept on one line each
    assert [text.split(" && ")[0] for _, text in readme] == ["python3 -m venv .venv"] * 2, readme
    found = {page: code for page, code in found.items() if code}
    assert not found, f"indented code blocks: fence them (```python, ```bash...): {found}"


def test_most_blocks_run():
    """Marking is for what cannot run here: more blocks run than are marked."""
    run = [b for b in ALL if b.lang in RUN and b.not_run is None]
    marked = [b for b in ALL if b.not_run is not None]
    assert len(run) >= len(marked), (len(run), len(marked))


def extpose_commands() -> set[str]:
    from extpose_sdk import cli

    parser = cli.build_parser()
    actions = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    return {name for action in actions for name in action.choices}


@pytest.mark.parametrize("block", [b for b in ALL if b.not_run is not None],
                         ids=lambda b: b.where)
def test_a_block_not_run_still_parses(block):
    if block.lang == "python":
        compile(block.code, block.where, "exec")
    elif block.lang in ("bash", "sh"):
        subprocess.run(["bash", "-n"], input=block.code, text=True, check=True)
        known = extpose_commands()
        for line in block.code.splitlines():
            words = line.split()
            if len(words) > 1 and words[0] == "extpose":
                assert words[1] in known or words[1].startswith("-"), (block.where, line)
    elif block.lang == "toml":
        tomllib.loads(block.code)


def python_pages() -> list[Path]:
    return [p for p in PAGES if any(b.page == p and b.lang == "python" and b.not_run is None
                                    for b in ALL)]


@pytest.mark.parametrize("page", python_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_python_blocks_of_a_page_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # tempfile.mkdtemp() lands here
    namespace = {"__name__": f"docs_{page.stem.replace('-', '_')}"}
    for block in ALL:
        if block.page != page or block.lang != "python" or block.not_run is not None:
            continue
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                exec(compile(block.code, block.where, "exec"), namespace)
            except Exception as error:
                raise AssertionError(f"{block.where}: {type(error).__name__}: {error}") from error


@pytest.mark.parametrize("block", [b for b in ALL if b.lang in ("bash", "sh")
                                   and b.not_run is None], ids=lambda b: b.where)
def test_a_shell_block_runs(block, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    assert shutil.which("extpose", path=env["PATH"]), "the extpose command is not installed"
    done = subprocess.run(["bash", "-eu", "-o", "pipefail"], input=block.code, text=True,
                          cwd=tmp_path, env=env, capture_output=True, timeout=300)
    assert done.returncode == 0, f"{block.where}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"


@pytest.mark.parametrize("block", [b for b in ALL if b.lang == "toml" and b.not_run is None],
                         ids=lambda b: b.where)
def test_a_toml_block_parses(block):
    tomllib.loads(block.code)


def test_the_tokens_and_masks_diagram_is_what_its_script_draws_from_the_sdks_masks():
    import importlib.util

    script = ROOT / "docs" / "images" / "tokens_and_masks.py"
    spec = importlib.util.spec_from_file_location("tokens_and_masks", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.OUT.read_text() == module.draw(), (
        f"docs/images/tokens-and-masks.svg is stale: run python {script.relative_to(ROOT)}")
    for page in ("architecture.md", "concepts.md"):
        assert "images/tokens-and-masks.svg" in (ROOT / "docs" / page).read_text(), page


def test_every_page_is_in_the_readmes_table_and_every_link_resolves():
    readme = (ROOT / "README.md").read_text()
    missing = [p.name for p in PAGES[:-1] if f"(docs/{p.name})" not in readme]
    assert not missing, f"docs pages not linked from README.md's table of docs: {missing}"
    broken = []
    for page in PAGES:
        text = page.read_text()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            path = target.split("#")[0]
            if path and not re.match(r"^[a-z]+:", path) and not (page.parent / path).exists():
                broken.append(f"{page.name}: ({target})")
        for named in set(re.findall(r"\b(docs/[\w./-]+\.(?:md|svg|py))", text)):
            if not (ROOT / named).exists():
                broken.append(f"{page.name}: {named}")
    assert not broken, f"links to nothing: {broken}"
