"""pygnc: GNC co-processor flight software for a PyCubed small satellite."""

__version__ = "0.1.0"
