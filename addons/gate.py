"""``mitmdump -s addons/gate.py``: the gate inside a plain mitmproxy.

A thin script: the addons live in ``gate_proxy/proxy/addons/`` (``gate-proxy serve`` embeds
the same set). See the README for the options (``--set gate_data_dir=...``).
"""

import sys
from pathlib import Path

# mitmdump runs this file as a script: from a checkout without `pip install`, make the
# package importable. (The only sys.path change in the project.)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gate_proxy.proxy.addons.standalone import StandaloneGate

addons = [StandaloneGate()]
