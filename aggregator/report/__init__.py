"""The per-site workbook: what an investor reads to compare candidate spots."""
