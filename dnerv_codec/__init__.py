"""dnerv: one D-NeRV network for a whole video collection, written to one archive."""

__version__ = "0.1.0"
