"""``python -m spark_gateway_kernel install | start``."""

import sys

from .cli import main

sys.exit(main(prog="python -m spark_gateway_kernel"))
