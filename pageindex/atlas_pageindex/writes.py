"""A write's request checked before it touches Redis, and the error the project store raises."""

from __future__ import annotations

from atlas_pageindex.paths import PathRefused, clean_path
from atlas_pageindex.settings import PageIndexSettings


class ProjectError(Exception):
    """A request the store refuses: ``status`` (404 unknown or not yours, 409 busy or too many, 413 too large, 507
    the platform's total full), the message names the field and the fix."""

    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param


def clean(raw: object, param: str) -> str:
    try:
        return clean_path(raw, param)
    except PathRefused as exc:
        raise ProjectError(400, str(exc), exc.field) from None


def validate(files: object, delete: object, s: PageIndexSettings) -> tuple[dict[str, str], list[str]]:
    """The files and deletions of a write, checked whole before anything is written: a path, a size or a type
    that is wrong refuses the request (400 or 413), naming the field."""
    if not isinstance(files, list):
        raise ProjectError(400, "'files' must be a list of {\"path\": ..., \"content\": ...}", "files")
    if delete is None:
        delete = []
    if not isinstance(delete, list):
        raise ProjectError(400, "'delete' must be a list of paths", "delete")
    if len(files) + len(delete) > s.project_max_files:
        raise ProjectError(413, f"one request may name at most {s.project_max_files} files "
                           "(ATLAS_PROJECT_MAX_FILES)", "files")
    incoming: dict[str, str] = {}
    for i, item in enumerate(files):
        if not isinstance(item, dict) or set(item) - {"path", "content"}:
            raise ProjectError(400, f"'files.{i}' must be an object with 'path' and 'content'", f"files.{i}")
        path = clean(item.get("path"), f"files.{i}.path")
        content = item.get("content")
        if not isinstance(content, str):
            raise ProjectError(400, f"'files.{i}.content' must be the file's text (binary files are not "
                               "indexed: leave them out)", f"files.{i}.content")
        if "\x00" in content:
            raise ProjectError(400, f"'files.{i}.content' holds a NUL character: binary files are not indexed",
                               f"files.{i}.content")
        size = len(content.encode("utf-8", "surrogatepass"))
        if size > s.project_max_file_bytes:
            raise ProjectError(413, f"'{path}' has {size} bytes; a file may have at most "
                               f"{s.project_max_file_bytes} (ATLAS_PROJECT_MAX_FILE_BYTES): leave it out",
                               f"files.{i}.content")
        try:
            content.encode("utf-8")
        except UnicodeEncodeError:
            raise ProjectError(400, f"'files.{i}.content' is not valid Unicode (a lone surrogate)",
                               f"files.{i}.content") from None
        if path in incoming:
            raise ProjectError(400, f"'{path}' appears twice in 'files'", f"files.{i}.path")
        incoming[path] = content
    removals = list(dict.fromkeys(clean(p, f"delete.{i}") for i, p in enumerate(delete)))  # once each
    if clash := set(removals) & set(incoming):
        raise ProjectError(400, f"'{sorted(clash)[0]}' is both written and deleted", "delete")
    return incoming, removals
