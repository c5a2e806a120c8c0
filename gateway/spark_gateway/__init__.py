"""spark-gateway: an async websocket execution gateway for Spark Connect."""

__version__ = "0.1.0"
