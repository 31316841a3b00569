"""The project API (PageIndex), reached through llm-proxy, which names the key's owner: a project is its owner's
alone, and any other caller gets 404 for it, as for an id that does not exist.

    POST   /v1/projects                      {"name"}                               -> 201 project
    GET    /v1/projects                                                             -> {"object": "list", "data"}
    GET    /v1/projects/{id}                                                        -> project
    DELETE /v1/projects/{id}                                                        -> {"id", "deleted": true}
    POST   /v1/projects/{id}/diff            {"files": {path: sha256}}             -> {"upload", "delete", "unchanged"}
    POST   /v1/projects/{id}/files           {"files": [{path, content}], "delete"} -> what was written, and the project
    POST   /v1/projects/{id}/search          {"query", "k", "mode"}                 -> {"mode", "results", "note"}
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse

from atlas_core.errors import ApiError
from atlas_pageindex.service import PageIndex
from atlas_rag.deps import Owner, require_proxy
from atlas_rag.projects import answered

router = APIRouter(dependencies=[Depends(require_proxy)])
ProjectId = Annotated[str, Path(max_length=64, description="The project's id (p_ and 24 hex digits).")]


def _pages(request: Request) -> PageIndex:
    pages: PageIndex = request.app.state.pages
    return pages


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except (ValueError, RecursionError):
        raise ApiError(400, "the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


@router.post("/v1/projects", status_code=201)
async def create(request: Request, owner: Owner) -> JSONResponse:
    body = await _body(request)
    project = await answered(_pages(request).store.create(owner, body.get("name")))
    return JSONResponse(project.public(), status_code=201)


@router.get("/v1/projects")
async def listed(request: Request, owner: Owner) -> dict[str, Any]:
    projects = await answered(_pages(request).store.owned(owner))
    return {"object": "list", "data": [p.public() for p in projects]}


@router.get("/v1/projects/{project_id}")
async def show(project_id: ProjectId, request: Request, owner: Owner) -> dict[str, Any]:
    return (await answered(_pages(request).store.get(owner, project_id))).public()


@router.delete("/v1/projects/{project_id}")
async def delete(project_id: ProjectId, request: Request, owner: Owner) -> dict[str, Any]:
    await answered(_pages(request).store.delete(owner, project_id))
    return {"id": project_id, "object": "project", "deleted": True}


@router.post("/v1/projects/{project_id}/diff")
async def diff(project_id: ProjectId, request: Request, owner: Owner) -> dict[str, Any]:
    body = await _body(request)
    return await answered(_pages(request).store.diff(owner, project_id, body.get("files")))


@router.post("/v1/projects/{project_id}/files")
async def files(project_id: ProjectId, request: Request, owner: Owner) -> dict[str, Any]:
    body = await _body(request)
    if extra := set(body) - {"files", "delete"}:
        raise ApiError(400, f"unknown field '{sorted(extra)[0]}': send 'files' and 'delete'", param=sorted(extra)[0])
    pages = _pages(request)
    result = await answered(pages.store.write(owner, project_id, body.get("files", []), body.get("delete")))
    pages.count_write(len(result.written), result.unchanged, len(result.skipped), result.deleted)
    project = await answered(pages.store.get(owner, project_id))
    return {"written": len(result.written), "unchanged": result.unchanged, "deleted": result.deleted,
            "skipped": result.skipped, "reindexed": result.written, "project": project.public()}


@router.post("/v1/projects/{project_id}/search")
async def search(project_id: ProjectId, request: Request, owner: Owner) -> dict[str, Any]:
    body = await _body(request)
    found = await answered(_pages(request).search(owner, project_id, body.get("query"), body.get("k", 10),
                                               body.get("mode", "auto")))
    return {"object": "search", "mode": found.mode, "note": found.note, "results": [h.public() for h in found.hits]}

