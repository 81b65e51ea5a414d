"""The engines a runner generates with, each behind the protocol in `protocol.py`; `choice.py` picks one for MODEL."""
