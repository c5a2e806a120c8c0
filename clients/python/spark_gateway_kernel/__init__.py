"""A Jupyter kernel for spark-gateway: JupyterLab, VS Code and nbclient run cells on Spark through the gateway.

Install its kernelspec with ``spark-gateway kernel install --url ws://HOST:PORT/ws`` (or
``python -m spark_gateway_kernel install ...``); see docs/jupyter.md. Cells are Python run
in one gateway session (``spark`` is ready); ``%%sql`` makes a cell SQL, ``%sql`` a line.
"""

__version__ = "0.1.0"
