"""mlpcli: build and run configured feed-forward networks."""

__version__ = "0.1.0"
