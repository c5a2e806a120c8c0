"""``python -m spark_gateway_client ...``: the ``spark-gateway query`` command line."""

import sys

from .cli import main

sys.exit(main(prog="python -m spark_gateway_client"))
