"""driftgate: compares a canary model with the live one on Kafka traffic and says go or no-go."""

__version__ = "0.1.0"

__all__ = ["__version__"]
