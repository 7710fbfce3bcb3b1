"""``model.tar.gz``: a model folder packed for SageMaker, and such an archive unpacked safely.

SageMaker deploys a model from a gzipped tar whose files sit at the archive's root (no leading
folder), the layout a training job's ``/opt/ml/model`` is tarred into. :func:`package` writes one:

* **what goes in**: every file of the folder, except what a deployed model has no use for
  (:data:`SKIPPED`): hidden files and folders (``.textclf.json.tmp-*``, an ``.export-*`` still
  being written, ``.git``), ``checkpoints/`` (a run's resume state) and Python's caches. A
  symbolic link is stored as the file it points to (a Hub cache snapshot packs as plain files).
* **the same bytes every time**: members sorted by name, with a fixed time, owner and mode, in
  a gzip stream without a time or name, so packing a folder twice gives identical archives.
* **all or nothing**: written to a hidden temporary file beside ``output`` and renamed into place.

With ``inference_code``, ``code/inference.py`` and ``code/textclf_codecs.py`` make SageMaker's
Hugging Face inference container answer as ``textclf serve`` does (JumpStart's
``application/x-text`` in, ``application/json;verbose`` out), with no textclf inside it (the file's
docstring says how). ``code/requirements.txt`` lists nothing: the container already has torch,
transformers and numpy, and anything listed there is pip-installed each time an instance starts.

:func:`unpack` extracts an archive into a new folder, refusing any member that would land outside
it (an absolute path, ``..``, a link pointing out, a device), with a one-line error naming the
member. :func:`unpacked` is what lets every command take a ``model.tar.gz`` where it takes a model
folder (:meth:`textclf.artifact.ModelFolder.read` calls it): the archive is unpacked once into
``$TEXTCLF_CACHE/archives/<sha256>/<name>`` (default cache ``~/.cache/textclf``) and reused while
its bytes stay the same, so ``serve --workers N`` and a resumed ``batch`` find the same folder.
"""

from __future__ import annotations

import gzip
import io
import os
import platform
import posixpath
import shutil
import tarfile
import tempfile
import uuid
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .artifact import ModelFolder
from .errors import ArtifactError

__all__ = ["CODE_FILES", "SKIPPED", "Packed", "is_packaged_code", "package", "unpack", "unpacked"]

SKIPPED = ("hidden files and folders (.*)", "checkpoints/", "__pycache__/", "*.pyc")
"""What :func:`package` leaves out of an archive."""
CODE_FILES = ("code/inference.py", "code/requirements.txt", "code/textclf_codecs.py")
"""What ``inference_code`` adds."""
MTIME = 0
"""Every member's modification time (the epoch): archives of the same files are the same bytes."""
WEIGHTS = ("*.safetensors", "pytorch_model*.bin", "tf_model.h5", "flax_model.msgpack")
SUFFIXES = (".tar.gz", ".tgz", ".tar")
CACHE_ENV = "TEXTCLF_CACHE"
_CODECS_IMPORT = "from .errors import RequestError, UnsupportedAccept, UnsupportedContentType\n"
_REQUEST_ERRORS = '''
class RequestError(ValueError):
    """A request body or header the endpoint cannot use (the container answers 400)."""


class UnsupportedContentType(RequestError):
    """The request's Content-Type is not one the endpoint can read."""


class UnsupportedAccept(RequestError):
    """The Accept header allows no type the endpoint can answer in."""
'''
_REQUIREMENTS = """\
# Nothing: code/inference.py needs torch, transformers and numpy, which SageMaker's Hugging Face
# inference container already has. A package listed here is pip-installed every time an instance
# starts (and needs the network then), so add only what your own changes to the code import.
"""


@dataclass(frozen=True)
class Packed:
    """What :func:`package` wrote: the archive, its members in order and its size."""

    path: Path
    members: tuple[str, ...]
    size: int

    def render(self) -> str:
        code = " with code/inference.py" if CODE_FILES[0] in self.members else ""
        return f"{self.path}: {len(self.members)} files{code}, {self.size / 1e6:.1f} MB."


def package(model_dir: str | Path, output: str | Path, inference_code: bool = False, overwrite: bool = False) -> Packed:
    """Pack ``model_dir`` (a model folder, or an archive to pack again) into the gzipped tar ``output``.

    >>> package("runs/reviews", "model.tar.gz", inference_code=True).render()  # doctest: +SKIP
    'model.tar.gz: 14 files with code/inference.py, 17.6 MB.'
    """
    folder = ModelFolder.read(model_dir)  # a model folder (or archive), or a one-line error
    output = Path(output)
    root = folder.path.resolve()
    if not any(any(root.glob(pattern)) for pattern in WEIGHTS):
        raise ArtifactError(f"{folder.path}: holds no weights ({', '.join(WEIGHTS)}); nothing to deploy.")
    if inference_code and not folder.is_classifier:
        raise ArtifactError(
            f"{folder.path}: not a text-classification model (architectures {folder.architectures or None}); "
            "--inference-code serves sequence classifiers only."
        )
    _check_output(output, root, overwrite)
    files = _files(root)
    added = {}
    if inference_code:
        if any(name.startswith("code/") for name in files) and not is_packaged_code(root):
            raise ArtifactError(
                f"{folder.path / 'code'}: the folder has its own code/; leave out --inference-code to pack it as it "
                "is, or remove it to get textclf's."
            )
        files = {name: path for name, path in files.items() if not name.startswith("code/")}
        added = _code_files()
    members = sorted({*files, *added, *_folders([*files, *added])})
    tmp = output.parent / f".{output.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with tmp.open("wb") as raw:
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=MTIME) as stream:
                with tarfile.open(fileobj=stream, mode="w", format=tarfile.PAX_FORMAT) as tar:
                    for name in members:
                        _add(tar, name, files.get(name), added.get(name))
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, output)
    except OSError as exc:
        raise ArtifactError(f"{output}: cannot write the archive ({exc.strerror or exc}).") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return Packed(output, tuple(m for m in members if m in files or m in added), output.stat().st_size)


def unpack(archive: str | Path, dest: str | Path) -> Path:
    """Extract the model archive ``archive`` into the new folder ``dest`` (all or nothing); ``dest``.

    Refused, with a one-line :class:`~textclf.errors.ArtifactError` naming the member: an absolute
    path, a ``..``, a link pointing outside the archive, a device or FIFO. The archive must hold a
    model at its root (``config.json``), as SageMaker requires.

        >>> unpack("model.tar.gz", "runs/reviews-copy")  # doctest: +SKIP
        PosixPath('runs/reviews-copy')
    """
    archive, dest = Path(archive), Path(dest)
    if dest.exists():
        raise ArtifactError(f"{dest}: already exists; unpack into a new folder.")
    if not _unpack(archive, dest):
        raise ArtifactError(f"{dest}: appeared while the archive was being unpacked; unpack into a new folder.")
    return dest


def unpacked(archive: str | Path) -> Path:
    """The folder ``archive`` unpacks to, in the cache (unpacked on first use; see the module docstring)."""
    from .backends import file_sha256

    archive, cache = Path(archive), _cache()
    stat = _archive_stat(archive)
    key = (str(archive.resolve()), stat.st_size, stat.st_mtime_ns, str(cache))
    if key in _UNPACKED and _UNPACKED[key].is_dir():
        return _UNPACKED[key]
    dest = cache / "archives" / file_sha256(archive)[:32] / _stem(archive.name)
    if not dest.is_dir():
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArtifactError(
                f"{dest.parent}: cannot create the folder to unpack {archive} into ({exc.strerror}); set "
                f"{CACHE_ENV} to a writable folder."
            ) from exc
        _unpack(archive, dest)  # False: another process unpacked the same bytes first; theirs is as good
    _UNPACKED[key] = dest
    return dest


_UNPACKED: dict[tuple[str, int, int, str], Path] = {}
"""This process's archives already found in the cache, so a second read does not hash them again."""


def is_packaged_code(model_dir: str | Path) -> bool:
    """True when ``model_dir/code`` holds exactly what ``inference_code`` writes (this textclf's version of it):
    ``textclf serve`` then serves the folder itself rather than run that code."""
    code = Path(model_dir) / "code"
    try:
        present = sorted(f"code/{p.name}" for p in code.iterdir() if p.name != "__pycache__")
        return present == sorted(CODE_FILES) and all(
            (code / Path(name).name).read_bytes() == content for name, content in _code_files().items()
        )
    except OSError:
        return False


# -- packing -------------------------------------------------------------------------------


def _check_output(output: Path, root: Path, overwrite: bool) -> None:
    if output.is_dir():
        raise ArtifactError(f"{output}: is a folder; --output names the archive file to write.")
    if output.exists() and not overwrite:
        raise ArtifactError(f"{output}: already exists; pass --overwrite to replace it, or choose another --output.")
    parent = output.parent.resolve()
    if parent == root or root in parent.parents:
        raise ArtifactError(f"{output}: is inside the model folder; write the archive somewhere else.")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArtifactError(f"{parent}: cannot create the output's folder ({exc.strerror}).") from exc
    if not os.access(parent, os.W_OK):
        raise ArtifactError(f"{parent}: not writable; choose another --output.")


def _files(root: Path) -> dict[str, Path]:
    """The folder's files to pack, by member name (links followed, :data:`SKIPPED` left out)."""
    found = {}
    for here, dirs, names in os.walk(root):
        base = Path(here)
        relative = base.relative_to(root).as_posix()
        dirs[:] = [d for d in dirs if not _skipped(d, relative == "." and d == "checkpoints")]
        for d in dirs:
            if (base / d).is_symlink():
                raise ArtifactError(f"{base / d}: a link to a folder; copy the folder in its place to pack it.")
        for name in names:
            if _skipped(name) or name.endswith(".pyc"):
                continue
            path = base / name
            if not path.is_file():
                raise ArtifactError(f"{path}: a broken link or not a regular file; remove it or replace it.")
            found[name if relative == "." else f"{relative}/{name}"] = path
    return found


def _skipped(name: str, checkpoints: bool = False) -> bool:
    return name.startswith(".") or name == "__pycache__" or checkpoints


def _folders(names: list[str]) -> set[str]:
    return {"/".join(name.split("/")[:i]) for name in names for i in range(1, name.count("/") + 1)}


def _add(tar: tarfile.TarFile, name: str, path: Path | None, content: bytes | None) -> None:
    info = tarfile.TarInfo(name)
    info.mtime, info.uid, info.gid, info.uname, info.gname = MTIME, 0, 0, "", ""
    if path is None and content is None:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
    elif content is not None:
        info.size, info.mode = len(content), 0o644
        tar.addfile(info, io.BytesIO(content))
    else:
        with path.open("rb") as f:
            info.size, info.mode = os.fstat(f.fileno()).st_size, 0o644
            tar.addfile(info, f)


def _code_files() -> dict[str, bytes]:
    """``code/``'s files as ``inference_code`` writes them: the template, the codecs made standalone, requirements."""
    codecs = resources.files("textclf.serving").joinpath("codecs.py").read_text(encoding="utf-8")
    if codecs.count(_CODECS_IMPORT) != 1:  # a change to codecs.py's imports must be mirrored here
        raise AssertionError("textclf/serving/codecs.py no longer imports its errors as packaging expects")
    header = "# textclf/serving/codecs.py, copied by `textclf package --inference-code` (its errors defined here).\n"
    return {
        "code/inference.py": resources.files("textclf").joinpath("hf_container").joinpath("inference.py").read_bytes(),
        "code/requirements.txt": _REQUIREMENTS.encode(),
        "code/textclf_codecs.py": (header + codecs.replace(_CODECS_IMPORT, _REQUEST_ERRORS)).encode("utf-8"),
    }


# -- unpacking -----------------------------------------------------------------------------


def _archive_stat(archive: Path) -> os.stat_result:
    try:
        stat = archive.stat()
    except OSError:
        raise ArtifactError(f"{archive}: not found; pass a model folder or a model.tar.gz.") from None
    if not archive.is_file():
        raise ArtifactError(f"{archive}: not a file; pass a model folder or a model.tar.gz.")
    return stat


def _unpack(archive: Path, dest: Path) -> bool:
    """Extract into a hidden sibling of ``dest``, check the layout, rename it to ``dest``; False if ``dest``
    appeared meanwhile (the sibling is then removed)."""
    _archive_stat(archive)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    except OSError as exc:
        raise ArtifactError(f"{dest.parent}: cannot unpack {archive} there ({exc.strerror}).") from exc
    try:
        staging.chmod(0o755)  # mkdtemp's is 0o700
        _extract(archive, staging)
        _check_layout(archive, staging)
        try:
            os.replace(staging, dest)
        except OSError:
            if dest.is_dir():
                shutil.rmtree(staging, ignore_errors=True)
                return False
            raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return True


def _extract(archive: Path, staging: Path) -> None:
    try:
        tar = tarfile.open(archive, "r:*")
    except (tarfile.TarError, EOFError, zlib.error, OSError):
        raise ArtifactError(f"{archive}: neither a model folder nor a tar or tar.gz archive.") from None
    try:
        with tar:
            for member in tar:
                if posixpath.normpath(member.name) == ".":  # the root's own entry (`tar -C model .`)
                    continue
                _check_member(archive, member)
                try:
                    if hasattr(tarfile, "data_filter"):  # 3.12, and 3.10.12/3.11.4 on: its checks too
                        tar.extract(member, staging, filter="data")
                    else:
                        _refuse_links_without_filter(archive, member)
                        member.mode &= 0o755
                        tar.extract(member, staging)
                except getattr(tarfile, "FilterError", ()) as exc:
                    raise ArtifactError(
                        f"{archive}: member {member.name!r} refused ({exc}); refusing to unpack it."
                    ) from exc
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ArtifactError(f"{archive}: a damaged archive ({reason}); copy or pack it again.") from exc
    except OSError as exc:
        raise ArtifactError(f"{archive}: cannot unpack it into {staging.parent} ({exc.strerror or exc}).") from exc


def _check_member(archive: Path, member: tarfile.TarInfo) -> None:
    name = member.name
    problem = None
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        problem = "has an absolute path"
    elif ".." in name.split("/"):
        problem = "climbs out of the archive with '..'"
    elif member.issym() or member.islnk():
        kind = "symbolic" if member.issym() else "hard"
        base = posixpath.dirname(name) if member.issym() else ""  # a hard link's target is from the root
        target = posixpath.normpath(posixpath.join(base, member.linkname))
        if member.linkname.startswith("/") or target == ".." or target.startswith("../"):
            problem = f"is a {kind} link to {member.linkname!r}, outside the archive"
    elif not (member.isfile() or member.isdir()):
        problem = "is a device, FIFO or other special file"
    if problem:
        raise ArtifactError(f"{archive}: member {name!r} {problem}; refusing to unpack it.")


def _refuse_links_without_filter(archive: Path, member: tarfile.TarInfo) -> None:
    """Without tarfile's ``data`` filter a chain of links that each look inward (``a -> .``, ``a/b -> ..``) can
    still lead out of the folder, so a link is refused there: model folders have no need of links."""
    if member.issym() or member.islnk():
        raise ArtifactError(
            f"{archive}: member {member.name!r} is a link, which this Python ({platform.python_version()}) cannot "
            "unpack safely (3.10.12, 3.11.4 or newer can); unpack the archive yourself, or use a newer Python."
        )


def _check_layout(archive: Path, folder: Path) -> None:
    if (folder / "config.json").is_file():
        return
    inner = [p for p in folder.iterdir() if p.is_dir() and (p / "config.json").is_file()]
    if len(inner) == 1 and len(list(folder.iterdir())) == 1:
        raise ArtifactError(
            f"{archive}: its files are under '{inner[0].name}/', not at the archive's root as SageMaker expects; "
            f"pack it again with `textclf package --model-dir DIR --output {archive.name}`."
        )
    raise ArtifactError(f"{archive}: not a model archive (no config.json at its root).")


def _stem(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _cache() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "textclf"
