"""``atlas-task-worker`` / ``python -m atlas_worker``: serve task-worker (settings: atlas.conf, environment)."""

from atlas_core.serve import run_service
from atlas_worker.app import create_app
from atlas_worker.settings import Settings


def main() -> None:
    run_service("task-worker", Settings, create_app)


if __name__ == "__main__":
    main()
