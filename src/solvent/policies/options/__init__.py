"""Option margin policies: pricing, per-position standard margin, portfolio margin, liquidation auctions."""
