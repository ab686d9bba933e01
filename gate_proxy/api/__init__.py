"""The control API (aiohttp)."""
