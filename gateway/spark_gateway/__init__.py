"""spark-gateway: an async websocket execution gateway for Spark Connect."""

__version__ = "0.1.0"

import warnings

# pyspark 4.3 warns on import that pandas >= 3 is "not yet fully supported", on every start of
# the gateway and of `spark-gateway` commands; the gateway's own paths through pandas are
# tested, so the notice only clutters what users read first (a busy port's one-line message).
warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
