"""Profile: scored features -> the ``user_profile`` contract, with tags, lifecycle, RFM,
predicted value and recommendations; ``step`` writes it and the tables beside it."""
