"""Where a model comes from: `hf://` addresses and URLs, checked before any request is made.

Hugging Face's own rules apply to `hf://owner/repo/path/in/repo[@revision]`:

- repo id: `owner/name`, each part 1-96 of A-Z a-z 0-9 _ . -, starting and ending with a letter,
  digit or _, with no `--` or `..` (huggingface_hub's validate_repo_id);
- revision: a branch, tag or commit as git allows it (git check-ref-format): no `.` or `..`
  part, no part starting with `.` or ending in `.lock`, no `..`, `//`, `@{`, spaces, control
  characters or any of ~ ^ : ? * [ \\, not ending in `/` or `.`, and not `@` alone;
- path in the repo: relative, parts not empty, `.` or `..`, no backslash or control characters.

What passes cannot name a cache path outside its own slot (see `hub.cache`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from ..errors import InvalidParameterError
from .cache import cache_dir, hf_hub_cache, in_slot

COMMIT = re.compile(r"[0-9a-f]{40}")
_REPO_PART = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?")
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HF_FORMAT = "expected hf://owner/repo/path/in/repo[@revision]"


def repo_id_problem(repo: str) -> str | None:
    """Why `repo` is not a Hugging Face repo id `owner/name`, or None when it is one."""
    parts = repo.split("/")
    if len(parts) != 2:
        return f"repo id {repo!r} must be owner/name"
    for part in parts:
        if not _REPO_PART.fullmatch(part):
            return (f"repo id part {part!r} must be 1-96 of A-Z a-z 0-9 _ . - and start and end with a letter, "
                    "digit or _")
        if "--" in part or ".." in part:
            return f"repo id part {part!r} must not contain '--' or '..'"
    return None


def revision_problem(revision: str) -> str | None:
    """Why `revision` is not a branch, tag or commit name git accepts, or None when it is one."""
    if not revision:
        return "the revision after @ is empty"
    if len(revision) > 255:
        return "the revision is longer than 255 characters"
    if revision == "@" or "@{" in revision or ".." in revision or "//" in revision:
        return f"revision {revision!r} is not a valid git branch, tag or commit"
    if _REF_FORBIDDEN.search(revision) or revision.startswith("/") or revision.endswith(("/", ".")):
        return f"revision {revision!r} is not a valid git branch, tag or commit"
    if any(part.startswith(".") or part.endswith(".lock") for part in revision.split("/")):
        return f"revision {revision!r} is not a valid git branch, tag or commit"
    return None


def repo_path_problem(path: str) -> str | None:
    """Why `path` is not a file path inside a repository, or None when it is one."""
    if not path:
        return "the path inside the repository is empty"
    if path.startswith("/") or "\\" in path or _CONTROL.search(path):
        return f"path {path!r} must be relative, without backslashes or control characters"
    if any(part in ("", ".", "..") for part in path.split("/")):
        return f"path {path!r} must not have empty, '.' or '..' parts"
    return None


@dataclass(frozen=True)
class HfFile:
    """One file of a Hugging Face repository at a revision (checked by `parse`)."""

    repo: str
    path: str
    revision: str = "main"

    @classmethod
    def parse(cls, uri: str) -> HfFile:
        """Parse and check `hf://owner/repo/path/inside[@revision]` (revision defaults to "main")."""
        parts = uri[len("hf://") :].split("/", 2)
        if len(parts) < 3 or not all(parts):
            raise InvalidParameterError(f"model_src: {uri!r} is not a valid Hugging Face address; {_HF_FORMAT}")
        owner, name, inner = parts
        path, at, revision = inner.rpartition("@")
        if not at:
            path, revision = inner, "main"
        hf = cls(f"{owner}/{name}", path, revision)
        problem = hf.problem()
        if problem:
            raise InvalidParameterError(
                f"model_src: {uri!r} is not a valid Hugging Face address ({problem}); {_HF_FORMAT}"
            )
        return hf

    def problem(self) -> str | None:
        """Why this is not a valid Hugging Face file address, or None."""
        return repo_id_problem(self.repo) or revision_problem(self.revision) or repo_path_problem(self.path)

    def __str__(self) -> str:
        return f"hf://{self.repo}/{self.path}@{self.revision}"

    def slot(self) -> Path:
        """This repository's folder in qvac_nb's old cache: <cache>/hf/<owner>--<repo>."""
        return cache_dir() / "hf" / self.repo.replace("/", "--")

    def legacy_path(self) -> Path:
        """Where qvac_nb kept this file before it used the hub cache: <cache>/hf/<owner>--<repo>/<revision>/<path>."""
        problem = self.problem()
        if problem:
            raise InvalidParameterError(f"model_src: not a valid Hugging Face file ({problem})")
        return in_slot(self.slot(), self.revision.replace("/", "--"), *self.path.split("/"), what="model_src")

    def repo_folder(self) -> Path:
        """This repository's folder in the hub cache: models--<owner>--<repo>."""
        return hf_hub_cache() / f"models--{self.repo.replace('/', '--')}"

    def hub_path(self) -> Path | None:
        """Where the hub cache holds (or would hold) this file, or None if its revision is unknown there."""
        base = self.repo_folder()
        commit = self.revision
        if not COMMIT.fullmatch(commit):
            # A branch or tag: the hub cache records which commit it pointed to.
            try:
                commit = (base / "refs" / self.revision).read_text(encoding="utf-8").strip()
            except OSError:
                return None
            if not COMMIT.fullmatch(commit):
                return None  # a refs file that does not hold a commit is not the hub cache's
        if self.problem():
            return None
        # Not resolved: hub snapshots are symlinks into blobs/ by design. The checked path has
        # no '..' part and the commit is 40 hex digits, so the path stays under snapshots/.
        return base / "snapshots" / commit / self.path


def check_url(url: str) -> None:
    """Refuse an http(s) URL that cannot be requested or stored, naming `model_src`."""
    try:
        url.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidParameterError(f"model_src: URL {url!r} contains a lone surrogate, not valid text") from None
    if _CONTROL.search(url) or " " in url:
        raise InvalidParameterError(f"model_src: URL {url!r} contains spaces or control characters")
    parsed = urlparse(url)
    if not parsed.hostname:
        raise InvalidParameterError(f"model_src: URL {url!r} has no host")
    name = unquote(parsed.path).rsplit("/", 1)[-1] if parsed.path else ""
    if _CONTROL.search(name) or "\\" in name:
        raise InvalidParameterError(
            f"model_src: URL {url!r} names a file {name!r} with control characters or a backslash (e.g. %00)"
        )


def url_cache_path(url: str) -> Path:
    """Where qvac_nb keeps a file downloaded from a URL: <cache>/url/<sha256(url)[:16]>/<basename>."""
    check_url(url)
    name = unquote(urlparse(url).path).rsplit("/", 1)[-1]
    if name in ("", ".", ".."):
        name = "download"
    slot = cache_dir() / "url" / hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    return in_slot(slot, name, what="model_src")
