"""Writers for `bindrift scan` results: JSON Lines, a rich table, SARIF 2.1.0."""
