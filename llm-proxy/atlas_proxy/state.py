"""Everything the proxy's routes share, built once in the lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from atlas_core.ratelimit import Limiter
from atlas_proxy.forward import Forwarder
from atlas_proxy.keys import KeyCache
from atlas_proxy.models import ModelCache
from atlas_proxy.settings import Settings
from atlas_proxy.stats import ProxyMetrics
from atlas_proxy.tasks import TaskRelay


@dataclass
class ProxyState:
    settings: Settings
    keys: KeyCache
    models: ModelCache
    limiter: Limiter
    forwarder: Forwarder
    tasks: TaskRelay
    stats: ProxyMetrics
