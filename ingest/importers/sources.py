"""Text files from a directory, a single file, or a .tar.gz, in name order, decoded line by line."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path

from ingest.importers.cohort import SourceError


def text_files(path: str | Path, suffix: str) -> Iterator[tuple[str, list[str]]]:
    """(display name, lines without line ends) of every `suffix` file under `path`.

    `path` is a directory (searched recursively), one file, or a .tar.gz/.tgz archive. Bytes
    that are not UTF-8 are replaced (the bad cell then fails its own number check).
    """
    path = Path(path)
    if not path.exists():
        raise SourceError(f"{path}: no such file or directory")
    if path.is_dir():
        files = sorted(p for p in path.rglob(f"*{suffix}") if p.is_file())
        if not files:
            raise SourceError(f"{path}: no {suffix} files in it")
        for file in files:
            yield str(file), file.read_bytes().decode("utf-8", errors="replace").splitlines()
        return
    if path.name.endswith((".tar.gz", ".tgz", ".tar")):
        try:
            archive = tarfile.open(path, "r:*")
        except (tarfile.TarError, OSError) as exc:
            raise SourceError(f"{path}: not a readable tar archive ({exc})") from None
        found = False
        with archive:
            for member in sorted((m for m in archive.getmembers() if m.isfile() and m.name.endswith(suffix)), key=lambda m: m.name):
                handle = archive.extractfile(member)
                if handle is None:
                    continue
                found = True
                yield f"{path}:{member.name}", handle.read().decode("utf-8", errors="replace").splitlines()
        if not found:
            raise SourceError(f"{path}: no {suffix} files in the archive")
        return
    yield str(path), path.read_bytes().decode("utf-8", errors="replace").splitlines()
