"""mitmproxy addons of the gate. Load them embedded (`gate-proxy serve`) or with
`mitmdump -s addons/gate.py`."""
