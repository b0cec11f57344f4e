"""A PEP 517 build backend for function-types, standard library only.

pip can build this package with no index at hand (an isolated build needs nothing to
install, since ``requires = []``), which matters offline and in the tests. It builds
a pure-Python wheel (``py3-none-any``) of the ``function_types`` package, an sdist,
and an editable wheel (PEP 660) that points a ``.pth`` file at this folder.
Metadata comes from ``[project]`` in pyproject.toml.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import tarfile
import zipfile
from typing import Any, Dict, List, Mapping, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "function_types"
# Fixed times make the same tree give the same archive bytes.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def _project() -> Dict[str, Any]:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        data = f.read()
    try:
        import tomllib  # Python 3.11+
    except ImportError:
        return _project_fallback(data.decode("utf-8"))
    project: Dict[str, Any] = tomllib.loads(data.decode("utf-8"))["project"]
    return project


def _project_fallback(text: str) -> Dict[str, Any]:
    """The plain ``key = "value"`` lines of [project], for Pythons before tomllib."""
    section = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    if section is None:
        raise RuntimeError("pyproject.toml has no [project] table")
    fields: Dict[str, Any] = {}
    for key, value in re.findall(r'^([\w-]+)\s*=\s*"([^"]*)"\s*$', section.group(1), re.M):
        fields[key] = value
    return fields


def _names() -> Tuple[str, str, str]:
    project = _project()
    dist = re.sub(r"[-_.]+", "_", project["name"]).lower()
    return project["name"], dist, project["version"]


def _metadata() -> str:
    project = _project()
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {project['name']}",
        f"Version: {project['version']}",
        f"Summary: {project.get('description', '')}",
    ]
    if "requires-python" in project:
        lines.append(f"Requires-Python: {project['requires-python']}")
    for classifier in project.get("classifiers", []):
        lines.append(f"Classifier: {classifier}")
    readme = os.path.join(ROOT, "README.md")
    if os.path.exists(readme):
        lines.append("Description-Content-Type: text/markdown")
        with open(readme, encoding="utf-8") as f:
            return "\n".join(lines) + "\n\n" + f.read()
    return "\n".join(lines) + "\n"


def _package_files() -> List[str]:
    """The package's files, relative to ROOT, in a stable order (no bytecode)."""
    found = []
    for folder, dirs, files in os.walk(os.path.join(ROOT, PACKAGE)):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if not name.endswith((".pyc", ".pyo")):
                found.append(os.path.relpath(os.path.join(folder, name), ROOT))
    return found


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"{path},sha256={digest.decode('ascii')},{len(data)}"


def _write_wheel(directory: str, files: Mapping[str, bytes]) -> str:
    _, dist, version = _names()
    info = f"{dist}-{version}.dist-info"
    entries = dict(files)
    entries[f"{info}/METADATA"] = _metadata().encode("utf-8")
    entries[f"{info}/WHEEL"] = (
        "Wheel-Version: 1.0\n"
        "Generator: function_types_build\n"
        "Root-Is-Purelib: true\n"
        "Tag: py3-none-any\n"
    ).encode("ascii")
    record = [_record_line(path, data) for path, data in entries.items()]
    record.append(f"{info}/RECORD,,")
    entries[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode("utf-8")

    name = f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(directory, name), "w", zipfile.ZIP_DEFLATED) as whl:
        for path, data in entries.items():
            entry = zipfile.ZipInfo(path, ZIP_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            whl.writestr(entry, data)
    return name


def _read(path: str) -> bytes:
    with open(os.path.join(ROOT, path), "rb") as f:
        return f.read()


# ---- PEP 517 hooks ----

def get_requires_for_build_wheel(config_settings: Optional[Dict[str, Any]] = None) -> List[str]:
    return []


def get_requires_for_build_sdist(config_settings: Optional[Dict[str, Any]] = None) -> List[str]:
    return []


def get_requires_for_build_editable(
    config_settings: Optional[Dict[str, Any]] = None,
) -> List[str]:
    return []


def build_wheel(
    wheel_directory: str,
    config_settings: Optional[Dict[str, Any]] = None,
    metadata_directory: Optional[str] = None,
) -> str:
    files = {path.replace(os.sep, "/"): _read(path) for path in _package_files()}
    return _write_wheel(wheel_directory, files)


def build_editable(
    wheel_directory: str,
    config_settings: Optional[Dict[str, Any]] = None,
    metadata_directory: Optional[str] = None,
) -> str:
    _, dist, _ = _names()
    return _write_wheel(wheel_directory, {f"_{dist}_editable.pth": (ROOT + "\n").encode()})


def build_sdist(sdist_directory: str, config_settings: Optional[Dict[str, Any]] = None) -> str:
    _, dist, version = _names()
    base = f"{dist}-{version}"
    members = ["pyproject.toml", "README.md", "_backend/function_types_build.py"]
    members += _package_files()
    name = f"{base}.tar.gz"
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz", format=tarfile.PAX_FORMAT) as tar:
        def add(path: str, data: bytes) -> None:
            entry = tarfile.TarInfo(f"{base}/{path}")
            entry.size = len(data)
            entry.mode = 0o644
            entry.mtime = 315532800  # 1980-01-01
            tar.addfile(entry, io.BytesIO(data))

        for path in members:
            if os.path.exists(os.path.join(ROOT, path)):
                add(path.replace(os.sep, "/"), _read(path))
        add("PKG-INFO", _metadata().encode("utf-8"))
    return name
