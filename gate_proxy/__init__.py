"""Gate Proxy: write-path governance for AI agents, enforced at the network."""

__version__ = "0.1.0"
