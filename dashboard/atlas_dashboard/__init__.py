"""ATLAS dashboard: queue, throughput, pass rates, latencies, usage."""
