"""The output guard: in a clone set up by `make setup`, git stores notebooks through nbstripout, so a notebook
executed and saved with its outputs is committed without them, and the committed notebooks pass unchanged."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from ptacl_core import paths

ROOT = paths.project_root()


def git(folder: Path, *args: str) -> str:
    # no user config anywhere: the guard must not need one (a fresh container, CI)
    command = ["git", "-c", "user.name=kit test", "-c", "user.email=test@example.invalid", *args]
    return subprocess.run(command, cwd=folder, check=True, capture_output=True, text=True).stdout


def guarded_clone(tmp_path: Path) -> Path:
    """A git work tree with the kit's .gitattributes and the guard installed by the Makefile's own recipe."""
    if shutil.which("git") is None or shutil.which("make") is None:
        pytest.skip("git and make are needed to install the output guard")
    repo = tmp_path / "clone"
    repo.mkdir()
    git(repo, "init", "-q")
    shutil.copy(ROOT / ".gitattributes", repo / ".gitattributes")
    venv = Path(sys.executable).parent.parent
    # the Makefile's own recipe (what `make setup` runs after installing the kit), in the clone
    result = subprocess.run(["make", "-s", "-f", str(ROOT / "Makefile"), "notebook-guard", f"VENV={venv}"], cwd=repo,
                            capture_output=True, text=True, env={**os.environ, "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ptacl_core.tools.notebook_guard" in git(repo, "config", "--get", "filter.nbstripout.clean")
    return repo


@pytest.fixture
def clone(tmp_path):
    return guarded_clone(tmp_path)


def test_an_executed_notebook_is_committed_without_its_outputs(clone):
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print('an output JupyterLab would save')"), nbformat.v4.new_code_cell("6 * 7")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"x": {}}}}  # saved widget state
    path = clone / "notebooks" / "06_explore.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, path)
    on_disk = json.loads(path.read_text())
    assert any(cell["outputs"] for cell in on_disk["cells"])  # what autosave writes into the work tree
    git(clone, "add", ".")
    git(clone, "commit", "-q", "-m", "executed notebook")
    committed = json.loads(git(clone, "show", "HEAD:notebooks/06_explore.ipynb"))
    assert all(not cell["outputs"] and cell["execution_count"] is None for cell in committed["cells"])
    assert "widgets" not in committed["metadata"]
    assert [cell["source"] for cell in committed["cells"]] == [cell["source"] for cell in on_disk["cells"]]
    assert git(clone, "status", "--porcelain") == ""  # the outputs stay on disk, invisible to git


def test_the_committed_notebooks_pass_the_guard_unchanged(clone):
    (clone / "notebooks").mkdir()
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    for notebook in notebooks:
        shutil.copy(notebook, clone / "notebooks" / notebook.name)
    git(clone, "add", ".")
    for notebook in notebooks:
        assert git(clone, "show", f":notebooks/{notebook.name}") == notebook.read_text(), notebook.name


def test_the_guard_is_skipped_outside_a_git_work_tree(tmp_path):
    venv = Path(sys.executable).parent.parent
    folder = tmp_path / "not_a_repo"
    folder.mkdir()
    result = subprocess.run(["make", "-s", "-f", str(ROOT / "Makefile"), "notebook-guard", f"VENV={venv}"], cwd=folder, capture_output=True, text=True,
                            env={**os.environ, "HOME": str(tmp_path), "GIT_CEILING_DIRECTORIES": str(tmp_path)})
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def test_a_notebook_jupyterlab_opened_and_saved_is_unmodified_for_git(clone):
    """JupyterLab rewrites the kernelspec (its kernel's display name) and fills in language_info on every open,
    and saves cell metadata such as ``execution`` timings: none of it may show as a change."""
    (clone / "notebooks").mkdir()
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        committed = notebook.read_text()
        nb = json.loads(committed)
        nb["metadata"]["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
        nb["metadata"]["language_info"] = {"codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py",
                                           "mimetype": "text/x-python", "name": "python", "nbconvert_exporter": "python",
                                           "pygments_lexer": "ipython3", "version": "3.11.2"}
        nb["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                cell["execution_count"] = 3
                cell["outputs"] = [{"name": "stdout", "output_type": "stream", "text": ["x\n"]}]
                cell["metadata"]["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00Z"}
        (clone / "notebooks" / notebook.name).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        git(clone, "add", f"notebooks/{notebook.name}")
        assert git(clone, "show", f":notebooks/{notebook.name}") == committed, notebook.name


def test_the_filter_repairs_duplicate_and_missing_cell_ids_the_same_way_every_run(tmp_path):
    """nbformat repairs a duplicate (or, in format 4.5, a missing) cell id with a random one: the clean filter wrote
    different bytes on each run, so the notebook never stopped showing as modified."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("a = 1"), nbformat.v4.new_code_cell("b = 2"),
                nbformat.v4.new_markdown_cell("# c"), nbformat.v4.new_code_cell("d = 4")]
    data = json.loads(nbformat.writes(nb))
    data["cells"][1]["id"] = data["cells"][0]["id"]  # a cell copied by hand, or a merge
    del data["cells"][2]["id"]
    path = tmp_path / "copied.ipynb"
    path.write_text(json.dumps(data, indent=1))
    command = [sys.executable, "-m", "ptacl_core.tools.notebook_guard"]
    runs = [subprocess.run(command, input=path.read_bytes(), capture_output=True, check=True).stdout for _ in range(2)]
    assert runs[0] == runs[1]
    assert subprocess.run([*command, str(path)], capture_output=True, check=True).stdout == runs[0]  # the textconv
    ids = [cell["id"] for cell in json.loads(runs[0])["cells"]]
    assert len(set(ids)) == 4  # unique, and every id nbformat kept is kept
    assert ids[0] == data["cells"][0]["id"] and ids[3] == data["cells"][3]["id"]
    assert [cell["source"] for cell in json.loads(runs[0])["cells"]] == [cell["source"] for cell in data["cells"]]
