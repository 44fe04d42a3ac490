"""Sink stage: scan reports (table, JSON Lines, SARIF); later the durable store, exports and the API/UI."""
