"""Domain values, exact numbers, the ledger and oracles. Nothing here does I/O."""
