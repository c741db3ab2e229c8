"""Ingest: landing files -> bronze (+ quarantine) -> silver. Pure transforms in ``records``,
``silver``, ``identity`` and ``privacy``; the streaming loop and writes in ``step``."""
