"""wsloop: WebSockets on the event loop you already have."""

__version__ = "0.1.0"
