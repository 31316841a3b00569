"""A task that names no k: its first attempt is routed, and its events and attempt record say how."""

from __future__ import annotations

from tests.worker.test_failures import Platform, platform

__all__ = ["platform"]  # the fixture: a store, rag-api, the scripted model and workers


def test_a_task_that_names_no_k_is_routed_and_its_events_say_how(platform: Platform) -> None:
    platform.worker()
    task = platform.finished(platform.submit(budget={"self_tests": False, "repair_rounds": 0}))
    assert task["status"] == "succeeded"
    [attempt] = task["attempts"]
    assert attempt["route"]["route"] in ("fast", "standard", "deep") and attempt["route"]["steps"][0]["verified"]
    routes = [e for e in platform.events(task["task_id"]) if e["type"] == "progress" and e.get("stage") == "route"]
    assert routes and routes[0]["route"] == attempt["route"]["route"] and "difficulty" in routes[0]["message"]
