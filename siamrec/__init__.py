"""siamrec: cold-start music recommendation from what tracks sound like."""

__version__ = "0.1.0"
