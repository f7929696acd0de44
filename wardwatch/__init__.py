"""wardwatch: streaming patient monitoring. The application on top: CLI, demo, local broker."""

__version__ = "0.1.0"
