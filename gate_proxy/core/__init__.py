"""Pure decision core: no I/O, no mitmproxy import."""
