"""Where the kit keeps things: data, figures, executed notebooks, and the real test files.

Defaults are folders of the repository (``data/``, ``runs/``, ``figures/``, ``outputs/``); each can be moved with
an environment variable (``PTACL_DATA``, ``PTACL_RUNS``, ``PTACL_FIGURES``, ``PTACL_OUTPUTS``), e.g. to a scratch
disk on a cluster.

How the kit writes into its folders, so that nothing previously good is lost (``written_atomically``: a table or
checkpoint is written to a temporary file of a unique name, then moved over the old one; ``refuse_links``: an output
folder must not be, or hold, symbolic links that would send writes elsewhere; ``check_free_space`` and
``DiskFullError``: a full disk is one clear error naming the folder and the bytes needed, up front where the size is
known).
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})  # no space, over quota, over a file-size limit
TEMPORARY = re.compile(r"^\..+\.\d+\.[0-9a-f]{8}\.tmp$")  # ``temporary_path``'s names: .<name>.<pid>.<random>.tmp


def project_root() -> Path:
    """The repository root when the kit is installed editable, else the current directory."""
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").exists():
        return here
    return Path.cwd()


def _from_env(variable: str, default: Path) -> Path:
    value = os.environ.get(variable)
    return Path(value).expanduser() if value else default


def data_root() -> Path:
    return _from_env("PTACL_DATA", project_root() / "data")


def runs_root() -> Path:
    """Where training runs go (``runs/<name>/``; the layout is ``ptacl_core.training.runs``)."""
    return _from_env("PTACL_RUNS", project_root() / "runs")


def figures_root() -> Path:
    return _from_env("PTACL_FIGURES", project_root() / "figures")


def outputs_root() -> Path:
    return _from_env("PTACL_OUTPUTS", project_root() / "outputs")


def notebooks_dir() -> Path:
    return project_root() / "notebooks"


def default_cohort_dir() -> Path:
    """The embedded default: the synthetic paired cohort."""
    return data_root() / "synthetic"


def null_cohort_dir() -> Path:
    """The null-control twin of the default cohort (``--coupling none``): the same hearts, ECG timing decoupled."""
    return data_root() / "synthetic_null"


def realdata_dir() -> Path | None:
    """``../shared/realdata`` beside the repository (real files for tests), or None when absent."""
    candidate = _from_env("PTACL_REALDATA", project_root().parent / "shared" / "realdata")
    return candidate if candidate.is_dir() else None


# --- writing safely ------------------------------------------------------------------------------------------------

class DiskFullError(OSError):
    """A write that did not fit: the disk (or the quota, or a file-size limit) is full. The message names the folder
    and, where known, the bytes needed and free."""

    def __str__(self) -> str:
        return str(self.strerror)  # the message alone, without OSError's "[Errno 28]"


def is_disk_full(error: BaseException | None) -> bool:
    """Whether ``error`` (or an error it was raised from or during, e.g. torch's writer around the OSError) is a
    full disk, quota or file-size limit (``DISK_FULL_ERRNOS``)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS:
            return True
        error = error.__cause__ or error.__context__
    return False


def free_bytes(folder: Path | str) -> int | None:
    """Free bytes on the filesystem of ``folder`` (or of its nearest existing parent); None when unknown."""
    folder = Path(folder).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def disk_full(folder: Path | str, what: str, needed: int | None = None, error: BaseException | None = None) -> DiskFullError:
    """The one error of a write that does not fit: ``<folder>: disk full writing <what> (N bytes needed, M free): ...``."""
    free = free_bytes(folder)
    sizes = ", ".join(part for part in (f"{needed:,} bytes needed" if needed is not None else "",
                                        f"{free:,} free" if free is not None else "") if part)
    cause = f": {error.strerror or error}" if isinstance(error, OSError) else ""
    return DiskFullError(errno.ENOSPC, f"{folder}: disk full writing {what}{f' ({sizes})' if sizes else ''}{cause}; "
                                       "free some space (or raise the quota / file-size limit) and run the command again")


def check_free_space(folder: Path | str, needed: int, what: str) -> None:
    """``DiskFullError`` before anything is written when the filesystem of ``folder`` has fewer than ``needed``
    free bytes (skipped where the free space is unknown)."""
    free = free_bytes(folder)
    if free is not None and free < needed:
        raise disk_full(folder, what, needed)


def temporary_path(path: Path | str) -> Path:
    """A temporary sibling of ``path`` no other process picks: ``.<name>.<pid>.<random>.tmp``."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def is_temporary(path: Path | str) -> bool:
    """Whether ``path`` is named as ``temporary_path`` names (a write in progress, or one a kill interrupted)."""
    return bool(TEMPORARY.match(Path(path).name))


@contextmanager
def written_atomically(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s new contents to; on success it replaces ``path`` (``os.replace``:
    a kill or a full disk mid-write leaves the previous file whole), on failure it is removed. A full disk is
    re-raised as ``DiskFullError`` naming the file."""
    path = Path(path)
    temporary = temporary_path(path)
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if is_disk_full(error) and not isinstance(error, DiskFullError):
            raise disk_full(path.parent, path.name, error=error) from error
        raise


def write_text_atomically(path: Path | str, text: str) -> None:
    """``path.write_text(text)``, atomically (``written_atomically``)."""
    with written_atomically(path) as temporary:
        temporary.write_text(text)


def links_inside(folder: Path | str, limit: int = 5) -> list[Path]:
    """Up to ``limit`` symbolic links at or under ``folder`` (``folder`` itself first; links are not followed)."""
    folder = Path(folder)
    if folder.is_symlink():
        return [folder]
    found: list[Path] = []
    if not folder.is_dir():
        return found
    stack = [folder]
    while stack and len(found) < limit:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_symlink():
                    found.append(Path(entry.path))
                elif entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
    return found[:limit]


def refuse_links(folder: Path | str, option: str = "--out") -> None:
    """ValueError when an output folder is a symbolic link or holds one: the kit's writes would land wherever the
    link points (overwriting files outside the folder). Names the links and where they point."""
    links = links_inside(folder)
    if links:
        shown = "; ".join(f"{link} -> {os.readlink(link)}" for link in links[:3])
        if links[0] == Path(folder):
            raise ValueError(f"{folder}: the {option} folder is a symbolic link ({shown}); writes would follow it: "
                             f"pass the folder itself ({Path(folder).resolve()})")
        raise ValueError(f"{folder}: the {option} folder holds symbolic links ({shown}); writes would follow them out "
                         "of the folder: remove them or choose another folder")
