"""The battery-passport connector node."""

__version__ = "0.1.0"
