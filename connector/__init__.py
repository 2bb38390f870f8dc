"""The battery-passport connector node."""

from connector import logs as _logs

__version__ = "0.1.0"

# Before any module of the node makes its logger: no log call of the node can raise on its `extra` keys.
_logs.install()
