"""The output guard's git filter (``.gitattributes``: ``*.ipynb filter=nbstripout``; ``make notebook-guard``
configures it): a notebook enters git as nbstripout strips it (outputs, execution counts, widget state; cell ids
kept), and with the metadata JupyterLab rewrites on every open pinned to what the kit commits (kernelspec
display name, the details of ``language_info``), so opening and saving a notebook in JupyterLab leaves it
unmodified for git.

    python -m ptacl_core.tools.notebook_guard < in.ipynb > out.ipynb    git's clean filter
    python -m ptacl_core.tools.notebook_guard notebook.ipynb            git's diff textconv (the stripped file on stdout)

``strip_text`` is the same filter in memory (what the no-outputs test applies to the working copy)."""

from __future__ import annotations

import hashlib
import io
import sys
import warnings

import nbformat
import nbformat.reader

KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
LANGUAGE_INFO = {"name": "python"}
# what nbstripout's command line strips besides outputs and counts (its Python API leaves these to the caller)
EXTRA_KEYS = ("metadata.signature", "metadata.widgets", "cell.metadata.collapsed", "cell.metadata.ExecuteTime",
              "cell.metadata.execution", "cell.metadata.heading_collapsed", "cell.metadata.hidden",
              "cell.metadata.scrolled")


def strip(nb):
    """The notebook node as git stores it (modified in place and returned)."""
    from nbstripout import strip_output  # lazy: a dev dependency (``make setup``); the module imports without it

    nb = strip_output(nb, keep_output=False, keep_count=False, keep_id=True, extra_keys=list(EXTRA_KEYS))
    if "kernelspec" in nb.metadata and nb.metadata.kernelspec.get("language", "python") == "python":
        nb.metadata["kernelspec"] = nbformat.from_dict(KERNELSPEC)
    if nb.metadata.get("language_info", {}).get("name") == "python":
        nb.metadata["language_info"] = nbformat.from_dict(LANGUAGE_INFO)
    return nb


def repair_cell_ids(nb) -> None:
    """Give every cell of an nbformat >= 4.5 notebook a unique id, deterministically (in place): the first cell with an
    id keeps it; a later cell with the same id, or one without an id, gets ``<hash>`` (8 hex digits of the SHA-1 of
    its index, type and source; ``<hash>-<n>`` on a clash). nbformat would repair both with random ids, so the
    clean filter would write different bytes on each run (a diff that never goes away)."""
    if (nb.get("nbformat", 0), nb.get("nbformat_minor", 0)) < (4, 5):
        return  # cell ids are not part of the format before 4.5
    cells = [cell for cell in nb.get("cells", []) if isinstance(cell, dict)]
    taken: set[str] = set()
    to_name: list[tuple[int, dict]] = []
    for index, cell in enumerate(cells):
        cell_id = cell.get("id")
        if cell_id is None or (isinstance(cell_id, str) and cell_id in taken):
            to_name.append((index, cell))
        elif isinstance(cell_id, str):  # an id of another type is left for validation to report
            taken.add(cell_id)
    for index, cell in to_name:
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        digest = hashlib.sha1(f"{index}\n{cell.get('cell_type', '')}\n{source}".encode()).hexdigest()[:8]
        candidate, clash = digest, 0
        while candidate in taken:
            clash += 1
            candidate = f"{digest}-{clash}"
        cell["id"] = candidate
        taken.add(candidate)


def strip_text(text: str) -> str:
    """A notebook file's text as git stores it (byte-for-byte what the clean filter writes, the same on every run)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        nb = nbformat.reader.reads(text)  # as nbformat.reads(text, NO_CONVERT), with the ids repaired before validation
        repair_cell_ids(nb)
        try:
            nbformat.validate(nb)
        except nbformat.ValidationError as error:
            nbformat.get_logger().error("Notebook JSON is invalid: %s", error)
        out = io.StringIO()
        nbformat.write(strip(nb), out)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = open(argv[0], encoding="utf-8").read() if argv else sys.stdin.buffer.read().decode("utf-8")
    sys.stdout.buffer.write(strip_text(text).encode("utf-8"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
