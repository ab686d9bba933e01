import sys

from gate_proxy.cli import main

sys.exit(main())
