"""Official reference files as vendored by public repositories, read at build time only.

The build reads each official file from a local git mirror of the repository that vendors it
(``JOINEDUP_MIRROR``, default ``/work/.mirror``; ``<owner>+<name>/repo``), writes a compact extract
under ``geodata/official/`` and records where it came from (repository, commit, path, blob checksum,
publisher, vintage, licence). Tests compare the committed derived files with those extracts, so they
pass without the mirror; a build without the mirror re-derives from the committed extracts.
"""
from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

GEODATA = Path(__file__).resolve().parents[2] / "geodata"
OFFICIAL = GEODATA / "official"


def mirror_root() -> Path:
    return Path(os.environ.get("JOINEDUP_MIRROR", "/work/.mirror"))


@dataclass(frozen=True)
class Source:
    """One official file: where it is vendored and what it is."""

    key: str
    repo: str  # owner/name on GitHub
    path: str  # path inside the repository
    publisher: str
    title: str
    vintage: str
    licence: str
    extract: str  # file name under geodata/official/

    def git_dir(self) -> Path:
        return mirror_root() / self.repo.replace("/", "+") / "repo"

    def available(self) -> bool:
        return (self.git_dir() / "HEAD").exists() or (self.git_dir() / "objects").exists()


def read_blob(source: Source) -> tuple[bytes, dict]:
    """Bytes of the vendored file at the mirror's HEAD, and its provenance."""
    git = ["git", "-C", str(source.git_dir())]
    commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    data = subprocess.run([*git, "show", f"HEAD:{source.path}"], check=True, capture_output=True).stdout
    if not data:
        raise RuntimeError(f"{source.repo}:{source.path} is empty in the mirror (large file not fetched?)")
    info = {**asdict(source), "commit": commit, "source_sha256": hashlib.sha256(data).hexdigest(),
            "source_bytes": len(data)}
    return data, info


def read_r(source: Source):
    """The first object of a vendored .rda/.rds file, as a DataFrame (pyreadr, build time only)."""
    import pyreadr

    data, info = read_blob(source)
    suffix = Path(source.path).suffix
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"file{suffix}"
        path.write_bytes(data)
        result = pyreadr.read_r(str(path))
    frame = next(iter(result.values()))
    return frame, info


def read_text(source: Source) -> tuple[str, dict]:
    data, info = read_blob(source)
    return data.decode("utf-8"), info


def read_csv(source: Source, **kwargs):
    import pandas as pd

    text, info = read_text(source)
    return pd.read_csv(io.StringIO(text), **kwargs), info


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def ensure_extracts(folder: Path, sources) -> None:
    """Without the mirror, a build into another folder starts from the committed extracts."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    for source in sources:
        target = folder / source.extract
        if not target.exists():
            committed = OFFICIAL / source.extract
            if not committed.exists():
                raise FileNotFoundError(f"{committed}: official extract missing and no mirror of {source.repo}")
            shutil.copyfile(committed, target)


def provenance_from_manifest(*folders: Path) -> dict[str, dict]:
    """The recorded provenance of the extracts (a build without the mirror keeps what the last one found)."""
    import json

    for folder in folders:
        path = Path(folder) / "manifest.json"
        if path.exists():
            found = json.loads(path.read_text(encoding="utf-8")).get("official", {})
            if found:
                return found
    return {}


def refresh_or_recall(out_dir: Path, sources: list, refresh_official, refresh: bool | None = None
                      ) -> tuple[Path, dict[str, dict]]:
    """The extracts folder of a build into ``out_dir`` and the extracts' provenance: re-extracted by
    ``refresh_official(folder)`` from the mirror when it is present (or ``refresh``), else the vendored
    extracts with the provenance the last build recorded."""
    folder = out_dir / "official"
    if refresh is None:
        refresh = all(s.available() for s in sources)
    if refresh:
        return folder, refresh_official(folder)
    ensure_extracts(folder, sources)
    return folder, provenance_from_manifest(out_dir, GEODATA)
